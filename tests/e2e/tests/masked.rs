//! Masked branches through every read route of every family: the data
//! API's clone with `"mask"`, Sanity's dataset copy and Mixpeek's
//! namespace clone with Spinoff's `mask` extension. The test reads the
//! route tables of every component from their source and fails for a read
//! route (every GET, and every POST that lists) it does not classify here:
//! a route that returns records is called over masked resources and must
//! show masked values and never a secret; any other names why it holds no
//! record.

use std::collections::BTreeSet;

use spinoff_e2e::*;

const SECRET: &str = "ann.secret@corp.example";

/// What a read route returns.
enum Reads {
    /// Records: called below over masked resources.
    Records,
    /// No record bodies, and why.
    Not(&'static str),
}
use Reads::*;

/// Every read route of every component (component, method, route as its
/// router writes it).
const ROUTES: &[(&str, &str, &str, Reads)] = &[
    ("data-api", "GET", "openapi.json", Not("the API document")),
    ("data-api", "GET", "openapi/*", Not("a family's API document")),
    ("data-api", "GET", "tokens/current", Not("the token's tenant")),
    ("data-api", "GET", "webhooks/secret", Not("the signing secret's metadata")),
    ("data-api", "GET", "resources/*", Not("a resource's metadata: statistics, spec, mask rules")),
    ("data-api", "GET", "resources", Not("resources' metadata: statistics, parents, mask rules")),
    ("data-api", "GET", "tenants", Not("tenant names (admin)")),
    ("data-api", "GET", "resources/*/collections/*/records", Records),
    ("data-api", "GET", "resources/*/collections/*/records/*", Records),
    ("data-api", "GET", "resources/*/collections/*/records/*/history", Records),
    ("data-api", "GET", "resources/*/export", Records),
    ("data-api", "GET", "resources/*/diff", Records),
    ("data-api", "GET", "resources/*/merge/conflicts", Records),
    ("data-api", "GET", "resources/*/merge", Not("a chunked merge's progress: counts and LSNs")),
    ("data-api", "GET", "resources/*/snapshots", Not("snapshot names and LSNs")),
    ("data-api", "GET", "operations", Not("operations' progress")),
    ("data-api", "GET", "operations/*", Not("an operation's progress")),
    ("data-api", "GET", "operations/*/events", Not("an operation's progress events")),
    ("console", "GET", "", Not("the console's page: no data (it reads through the data API's routes above)")),
    ("console", "GET", "index.html", Not("the console's page")),
    ("console", "GET", "app.js", Not("the console's script")),
    ("console", "GET", "app.css", Not("the console's style")),
    ("dataset-copy", "GET", "data/doc/*/*", Records),
    ("dataset-copy", "GET", "data/export/*", Records),
    ("dataset-copy", "GET", "aliases", Not("dataset aliases")),
    ("dataset-copy", "GET", "datasets", Not("dataset names")),
    ("dataset-copy", "GET", "features", Not("the project's features")),
    ("dataset-copy", "GET", "jobs/*", Not("a copy job's progress")),
    ("dataset-copy", "GET", "jobs/*/listen", Not("a copy job's progress events")),
    ("dataset-copy", "GET", "projects/*/datasets", Not("dataset names")),
    ("dataset-copy", "GET", "projects/*/datasets/copy", Not("copy jobs' progress")),
    ("namespace-clone", "GET", "namespaces/*/documents/*", Records),
    ("namespace-clone", "POST", "documents/list", Records),
    ("namespace-clone", "POST", "collections/*/documents/list", Records),
    ("namespace-clone", "GET", "namespaces", Not("namespaces' settings")),
    ("namespace-clone", "POST", "namespaces/list", Not("namespaces' settings")),
    ("namespace-clone", "GET", "namespaces/*", Not("a namespace's settings")),
    ("namespace-clone", "GET", "tasks/*", Not("a clone task's progress")),
    ("cluster-cloning", "GET", "clusters", Not("Typesense clusters' settings: no record reads")),
    ("cluster-cloning", "GET", "clusters/*", Not("a cluster's settings")),
    ("cluster-cloning", "GET", "clusters/*/cloning-operations", Not("cloning operations' progress")),
    ("cluster-cloning", "GET", "clusters/*/cloning-operations/*", Not("a cloning operation's progress")),
    ("service-fork", "GET", "projects/*/services", Not("Timescale services' settings: no record reads")),
    ("service-fork", "GET", "projects/*/services/*", Not("a service's settings")),
    ("service-fork", "GET", "projects/*/services/*/snapshots", Not("snapshot names")),
    ("database-clone", "GET", "database/*", Not("a Qovery database's settings: no record reads")),
    ("database-clone", "GET", "database/*/status", Not("a database's status")),
    ("database-clone", "GET", "environment/*", Not("an environment")),
    ("database-clone", "GET", "environment/*/database", Not("an environment's databases")),
    ("database-clone", "GET", "organization", Not("organizations")),
    ("database-clone", "GET", "organization/*", Not("an organization")),
    ("database-clone", "GET", "organization/*/project", Not("projects")),
    ("database-clone", "GET", "project/*", Not("a project")),
    ("database-clone", "GET", "project/*/environment", Not("environments")),
];

/// The read routes the components' routers declare: every GET, and every
/// POST that lists.
fn declared() -> BTreeSet<(String, String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../components");
    let mut out = BTreeSet::new();
    for comp in std::fs::read_dir(&root).unwrap() {
        let comp = comp.unwrap().path();
        let name = comp.file_name().unwrap().to_string_lossy().to_string();
        let mut stack = vec![comp.join("src")];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for f in entries {
                let f = f.unwrap().path();
                if f.is_dir() {
                    stack.push(f);
                } else if f.extension().is_some_and(|x| x == "rs") {
                    // One line per route, however rustfmt wrapped it.
                    let text = std::fs::read_to_string(&f)
                        .unwrap()
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                        .replace("( \"", "(\"");
                    for m in ["GET", "POST"] {
                        let open = format!("(\"{m}\", \"");
                        for (i, _) in text.match_indices(&open) {
                            let rest = &text[i + open.len()..];
                            let r = &rest[..rest.find('"').unwrap()];
                            if m == "GET" || r.ends_with("list") {
                                out.insert((name.clone(), m.to_string(), r.to_string()));
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

#[test]
fn every_read_route_is_classified() {
    let want: BTreeSet<(String, String, String)> = ROUTES
        .iter()
        .map(|(c, m, r, _)| (c.to_string(), m.to_string(), r.to_string()))
        .collect();
    for (c, m, r, reads) in ROUTES {
        if let Not(why) = reads {
            assert!(!why.is_empty(), "{c} {m} {r}: say why it holds no record");
        }
    }
    let got = declared();
    let missing: Vec<_> = got.difference(&want).collect();
    let stale: Vec<_> = want.difference(&got).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "read routes not covered by the masked-branch test: {missing:?}; routes listed here that no longer exist: {stale:?}"
    );
}

/// A response over a masked resource: it returned records (`marker`, a
/// masked value, shows) and no secret.
fn masked(what: &str, r: &Reply, marker: &str) {
    assert_eq!(r.status, 200, "{what}: {}", r.body);
    assert!(!r.body.contains(SECRET) && !r.body.contains("Ann Secret"), "{what} shows an unmasked value: {}", r.body);
    assert!(r.body.contains(marker), "{what} returned no masked record: {}", r.body);
}

#[test]
fn no_read_route_returns_an_unmasked_value() {
    let app = App::start();
    let token = app.token("acme");
    let auth = format!("Bearer {token}");
    let h = [("authorization", auth.as_str())];
    let mut called: BTreeSet<(&str, &str, &str)> = BTreeSet::new();

    // --- The data API: a masked branch, a branch of it, and the same
    // after hydration.
    assert_eq!(app.request("PUT", "/data/v1/resources/native:prod", &h, None).status, 201);
    let lines: String = (0..300)
        .map(|i| json!({"collection": "users", "key": format!("u{i:03}"), "body": {"i": i, "email": SECRET, "name": "Ann Secret", "phone": "555"}}).to_string() + "\n")
        .collect();
    let r = app.request("POST", "/data/v1/resources/native:prod/import", &h, Some(lines.as_bytes()));
    assert_eq!(r.status, 200, "{}", r.body);
    let at = r.json()["lsn"].as_i64().unwrap();
    let mask = json!({"users": {"/email": "fake_email", "/name": "redact"}, "*": {"/phone": "hash"}});
    let r = app.send_json("POST", "/data/v1/resources/native:prod/clones", &h, &json!({"target": "native:staging", "mask": mask}));
    assert_eq!(r.status, 202, "{}", r.body);
    let r = app.get("/data/v1/resources/native:staging", &h);
    assert_eq!(r.json()["mask"], mask, "the rules show, never the salt: {}", r.body);
    let r = app.send_json("POST", "/data/v1/resources/native:staging/clones", &h, &json!({"target": "native:child"}));
    assert_eq!(r.status, 202, "{}", r.body);
    // A change on each side, so that the diff and the conflicts have lines.
    // (What the branch writes is its own, stored and shown as written.)
    for (res, body) in [
        ("native:staging", json!({"email": "me@staging.example", "status": "s"})),
        ("native:prod", json!({"email": SECRET, "status": "p", "name": "Ann Secret"})),
    ] {
        let r = app.request("PUT", &format!("/data/v1/resources/{res}/collections/users/records/u001"), &h,
            Some(body.to_string().as_bytes()));
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let data_api = |res: &str, called: &mut BTreeSet<(&str, &str, &str)>| {
        let base = format!("/data/v1/resources/{res}");
        let reads: Vec<(&'static str, String)> = vec![
            ("resources/*/collections/*/records", format!("{base}/collections/users/records?limit=1000")),
            ("resources/*/collections/*/records", format!("{base}/collections/users/records?as_of={at}")),
            ("resources/*/collections/*/records/*", format!("{base}/collections/users/records/u002")),
            ("resources/*/collections/*/records/*", format!("{base}/collections/users/records/u002?as_of={at}")),
            ("resources/*/collections/*/records/*/history", format!("{base}/collections/users/records/u002/history")),
            ("resources/*/export", format!("{base}/export")),
            ("resources/*/export", format!("{base}/export?as_of={at}")),
        ];
        for (route, path) in reads {
            masked(&path, &app.get(&path, &h), "@example.invalid");
            called.insert(("data-api", "GET", route));
        }
    };
    data_api("native:staging", &mut called);
    data_api("native:child", &mut called);
    // The diff: the parent's side through the mask too.
    let d = app.get("/data/v1/resources/native:staging/diff", &h);
    masked("diff", &d, "\"status\":\"p\"");
    called.insert(("data-api", "GET", "resources/*/diff"));
    // A merge of a masked branch is refused without paths; with them, its
    // conflicts show the parent's side masked.
    let r = app.send_json("POST", "/data/v1/resources/native:staging/merge", &h, &json!({}));
    assert_eq!(r.status, 422, "{}", r.body);
    let r = app.send_json("POST", "/data/v1/resources/native:staging/merge", &h, &json!({"paths": ["/status"]}));
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(!r.body.contains(SECRET), "{}", r.body);
    let c = app.get("/data/v1/resources/native:staging/merge/conflicts?paths=/status", &h);
    masked("merge conflicts", &c, "\"status\":\"p\"");
    called.insert(("data-api", "GET", "resources/*/merge/conflicts"));
    // Hydrated: the same answers, from masked rows.
    let r = app.request("POST", "/data/v1/resources/native:staging/hydrate", &h, None);
    assert_eq!(r.status, 202, "{}", r.body);
    for _ in 0..200 {
        app.tick().unwrap();
    }
    let r = app.get("/data/v1/resources/native:staging", &h);
    assert_eq!(r.json()["branch"], Value::Null, "hydrated: {}", r.body);
    data_api("native:staging", &mut called);
    data_api("native:child", &mut called);

    // --- Sanity: a masked dataset copy, read through the Sanity routes.
    let r = app.send_json("PUT", "/v1/projects/proj1/datasets/production", &h, &json!({"aclMode": "private"}));
    assert_eq!(r.status, 200, "{}", r.body);
    let docs: String = (0..50)
        .map(|i| json!({"collection": "author", "key": format!("a{i}"), "body": {"_id": format!("a{i}"), "_type": "author", "email": SECRET, "name": "Ann Secret"}}).to_string() + "\n")
        .collect();
    let r = app.request("POST", "/data/v1/resources/sanity:proj1:production/import", &h, Some(docs.as_bytes()));
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app.send_json("PUT", "/v1/projects/proj1/datasets/production/copy", &h,
        &json!({"targetDataset": "masked", "mask": {"*": {"/email": "fake_email", "/name": "redact"}}}));
    assert_eq!(r.status, 200, "{}", r.body);
    masked("sanity doc", &app.get("/v2021-06-07/data/doc/masked/a1", &h), "@example.invalid");
    called.insert(("dataset-copy", "GET", "data/doc/*/*"));
    masked("sanity export", &app.get("/v2021-06-07/data/export/masked", &h), "@example.invalid");
    called.insert(("dataset-copy", "GET", "data/export/*"));
    // The source still shows its own values (so the check above can fail).
    assert!(app.get("/v2021-06-07/data/doc/production/a1", &h).body.contains(SECRET));

    // --- Mixpeek: a masked namespace clone, read through the document routes.
    let r = app.send_json("POST", "/v1/namespaces", &h, &json!({"namespace_name": "production",
        "feature_extractors": [{"feature_extractor_name": "text_extractor", "version": "v1"}]}));
    assert_eq!(r.status, 200, "{}", r.body);
    let docs: Vec<Value> = (0..20)
        .map(|i| json!({"document_id": format!("d{i}"), "vectors": {"v": [0.5]}, "payload": {"email": SECRET, "name": "Ann Secret"}}))
        .collect();
    let r = app.send_json("POST", "/v1/namespaces/production/documents/upsert", &h, &json!({"collection_id": "people", "documents": docs}));
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app.send_json("POST", "/v1/namespaces/production/clone", &h,
        &json!({"namespace_name": "masked", "mask": {"points:people": {"/payload/email": "fake_email", "/payload/name": "redact"}}}));
    assert_eq!(r.status, 200, "{}", r.body);
    masked("mixpeek document", &app.get("/v1/namespaces/masked/documents/d1", &h), "@example.invalid");
    called.insert(("namespace-clone", "GET", "namespaces/*/documents/*"));
    let hx = [("authorization", auth.as_str()), ("x-namespace", "masked")];
    masked("mixpeek list", &app.send_json("POST", "/v1/documents/list", &hx, &json!({})), "@example.invalid");
    called.insert(("namespace-clone", "POST", "documents/list"));
    masked("mixpeek collection list", &app.send_json("POST", "/v1/collections/people/documents/list", &hx, &json!({})), "@example.invalid");
    called.insert(("namespace-clone", "POST", "collections/*/documents/list"));
    assert!(app.get("/v1/namespaces/production/documents/d1", &h).body.contains(SECRET));

    // Every route that returns records was called over masked resources.
    let records: BTreeSet<(&str, &str, &str)> = ROUTES
        .iter()
        .filter(|x| matches!(x.3, Records))
        .map(|(c, m, r, _)| (*c, *m, *r))
        .collect();
    assert_eq!(called, records);
}

/// The README's staging workflow through the CLI: a masked clone, work on
/// it, diff, merge back the named paths, reset.
#[test]
fn the_staging_workflow_through_the_cli() {
    let app = App::start();
    let token = app.token("acme");
    let auth = format!("Bearer {token}");
    let h = [("authorization", auth.as_str())];
    assert_eq!(app.request("PUT", "/data/v1/resources/native:prod", &h, None).status, 201);
    let lines: String = (0..20)
        .map(|i| json!({"collection": "users", "key": format!("u{i}"), "body": {"email": SECRET, "name": "Ann Secret", "plan": "free"}}).to_string() + "\n")
        .collect();
    assert_eq!(app.request("POST", "/data/v1/resources/native:prod/import", &h, Some(lines.as_bytes())).status, 200);
    let mask = r#"{"users": {"/email": "fake_email", "/name": "redact"}}"#;
    let (ok, _, err) = spinoff(&app, &token, &["clone", "native:prod", "native:staging", "--mask", mask]);
    assert!(ok, "{err}");
    let (ok, out, err) = spinoff(&app, &token, &["export", "native:staging"]);
    assert!(ok && out.lines().count() == 20 && !out.contains(SECRET), "{out}{err}");
    // Work on it: one record read masked, changed, written back.
    let r = app.get("/data/v1/resources/native:staging/collections/users/records/u3", &h);
    let mut body = r.json()["body"].clone();
    body["plan"] = json!("pro");
    assert_eq!(app.request("PUT", "/data/v1/resources/native:staging/collections/users/records/u3", &h, Some(body.to_string().as_bytes())).status, 200);
    let (ok, out, err) = spinoff(&app, &token, &["diff", "native:staging"]);
    assert!(ok && !out.contains(SECRET) && out.contains("\"pro\""), "{out}{err}");
    let (ok, _, err) = spinoff(&app, &token, &["merge", "native:staging"]);
    assert!(!ok && err.contains("paths"), "a masked branch needs --paths: {err}");
    let (ok, out, err) = spinoff(&app, &token, &["merge", "native:staging", "--paths", "/plan"]);
    assert!(ok && out.contains("1 keys written"), "{out}{err}");
    let r = app.get("/data/v1/resources/native:prod/collections/users/records/u3", &h);
    assert_eq!(r.json()["body"], json!({"email": SECRET, "name": "Ann Secret", "plan": "pro"}), "only /plan flowed back");
    let (ok, _, err) = spinoff(&app, &token, &["reset", "native:staging"]);
    assert!(ok, "{err}");
    let r = app.get("/data/v1/resources/native:staging/collections/users/records/u3", &h);
    let b = &r.json()["body"];
    assert_eq!((b["plan"].as_str(), b["name"].as_str()), (Some("pro"), Some("[redacted]")), "reset: the parent again, still masked");
}
