//! `GET /data/v1/resources/{ref}/diff` and `spinoff diff`: a branch against
//! its parent (the default), a sibling, its own earlier point, and an
//! unrelated resource (scanned) — each equal to comparing both sides'
//! exports — with the summary line last; bad input is a clear 4xx.

use std::collections::BTreeMap;

use spinoff_e2e::*;

fn export(app: &App, h: &[(&str, &str)], r: &str, as_of: Option<i64>) -> BTreeMap<(String, String), Value> {
    let q = as_of.map(|l| format!("?as_of={l}")).unwrap_or_default();
    let reply = app.get(&format!("/data/v1/resources/{r}/export{q}"), h);
    assert_eq!(reply.status, 200, "{}", reply.body);
    ndjson(&reply.body)
        .into_iter()
        .map(|l| {
            (
                (l["collection"].as_str().unwrap().to_string(), l["key"].as_str().unwrap().to_string()),
                l["body"].clone(),
            )
        })
        .collect()
}

/// The diff lines a comparison of two exports gives, in key order.
fn expected(ours: &BTreeMap<(String, String), Value>, theirs: &BTreeMap<(String, String), Value>) -> Vec<Value> {
    let mut keys: Vec<&(String, String)> = ours.keys().chain(theirs.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| {
            let (o, t) = (ours.get(k), theirs.get(k));
            let op = match (o, t) {
                (Some(a), Some(b)) if a == b => return None,
                (Some(_), Some(_)) => "changed",
                (Some(_), None) => "added",
                (None, Some(_)) => "removed",
                (None, None) => return None,
            };
            Some(json!({"op": op, "collection": k.0, "key": k.1,
                "ours": o.cloned().unwrap_or(Value::Null), "theirs": t.cloned().unwrap_or(Value::Null)}))
        })
        .collect()
}

/// The diff's entry lines and its summary line.
fn diff(app: &App, h: &[(&str, &str)], r: &str, query: &str) -> (Vec<Value>, Value) {
    let reply = app.get(&format!("/data/v1/resources/{r}/diff{query}"), h);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("content-type"), Some("application/x-ndjson"));
    let mut lines = ndjson(&reply.body);
    let summary = lines.pop().expect("a summary line");
    assert!(summary.get("summary").is_some(), "{summary}");
    (lines, summary)
}

#[test]
fn a_branch_diffs_against_its_parent_a_sibling_its_past_and_a_stranger() {
    let app = App::start();
    let token = app.token("acme");
    let auth = format!("Bearer {token}");
    let h = [("authorization", auth.as_str())];
    assert_eq!(app.request("PUT", "/data/v1/resources/native:prod", &h, None).status, 201);
    let lines: String = (0..3_000)
        .map(|i| json!({"collection": (["users", "orders"][i % 2]), "key": format!("k{i:05}"), "body": {"i": i}}).to_string() + "\n")
        .collect();
    let r = app.request("POST", "/data/v1/resources/native:prod/import", &h, Some(lines.as_bytes()));
    assert_eq!(r.status, 200, "{}", r.body);
    for target in ["native:staging", "native:other-branch"] {
        let r = app.send_json("POST", "/data/v1/resources/native:prod/clones", &h, &json!({"target": target}));
        assert_eq!(r.status, 202, "{}", r.body);
    }
    let before = app.get("/data/v1/resources/native:staging", &h).json()["head_lsn"].as_i64().unwrap();
    let put = |r: &str, c: &str, k: &str, body: Value| {
        let reply = app.request("PUT", &format!("/data/v1/resources/{r}/collections/{c}/records/{k}"), &h, Some(body.to_string().as_bytes()));
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()["lsn"].as_i64().unwrap()
    };
    let lsn0 = put("native:staging", "users", "k00000", json!({"i": 0, "masked": true}));
    put("native:staging", "users", "new-user", json!({"n": 1}));
    let r = app.request("DELETE", "/data/v1/resources/native:staging/collections/orders/records/k00001", &h, None);
    assert_eq!(r.status, 200, "{}", r.body);
    put("native:prod", "orders", "k00003", json!({"i": 3, "paid": true}));
    put("native:other-branch", "users", "k00004", json!({"i": 4, "sibling": true}));
    let _ = before;

    // Against the parent (the default): the four keys, both bodies.
    let (got, summary) = diff(&app, &h, "native:staging", "");
    let want = expected(&export(&app, &h, "native:staging", None), &export(&app, &h, "native:prod", None));
    assert_eq!(got, want);
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(summary["against"], "native:prod");
    assert_eq!(summary["scan"], false);
    assert_eq!(summary["summary"]["users"], json!({"added": 1, "removed": 0, "changed": 1}));
    assert_eq!(summary["summary"]["orders"], json!({"added": 0, "removed": 1, "changed": 1}));

    // Against a sibling branch, and against its own point just before its
    // first write.
    let (got, summary) = diff(&app, &h, "native:staging", "?against=native:other-branch");
    assert_eq!(got, expected(&export(&app, &h, "native:staging", None), &export(&app, &h, "native:other-branch", None)));
    assert_eq!(summary["scan"], false);
    let (got, _) = diff(&app, &h, "native:staging", &format!("?against={}", lsn0 - 1));
    assert_eq!(got, expected(&export(&app, &h, "native:staging", None), &export(&app, &h, "native:staging", Some(lsn0 - 1))));
    assert_eq!(got.len(), 3);

    // A stranger: scanned, still exact.
    assert_eq!(app.request("PUT", "/data/v1/resources/native:stranger", &h, None).status, 201);
    put("native:stranger", "users", "k00000", json!({"i": 0}));
    let (got, summary) = diff(&app, &h, "native:staging", "?against=native:stranger");
    assert_eq!(got, expected(&export(&app, &h, "native:staging", None), &export(&app, &h, "native:stranger", None)));
    assert_eq!(summary["scan"], true);

    // The CLI prints the same lines and the summary on stderr.
    let (ok, stdout, stderr) = spinoff(&app, &token, &["diff", "native:staging"]);
    assert!(ok, "{stderr}");
    assert_eq!(ndjson(&stdout).len(), 5, "{stdout}");
    assert!(stderr.contains("4 differing keys"));

    // Bad input: clear 4xx, never a 5xx.
    let r = app.get("/data/v1/resources/native:prod/diff", &h);
    assert_eq!(r.status, 422, "a resource branched from nothing: {}", r.body);
    assert!(r.body.contains("against"), "{}", r.body);
    let r = app.get("/data/v1/resources/native:staging/diff?against=native:nope", &h);
    assert_eq!(r.status, 404, "{}", r.body);
    let r = app.get("/data/v1/resources/native:staging/diff?against=yesterday", &h);
    assert_eq!(r.status, 422, "{}", r.body);
    let r = app.get("/data/v1/resources/native:staging/diff?against=99999999", &h);
    assert_eq!(r.status, 422, "{}", r.body);
    // Another tenant's resource is not found, as everywhere.
    let other = format!("Bearer {}", app.token("globex"));
    let r = app.get("/data/v1/resources/native:staging/diff", &[("authorization", other.as_str())]);
    assert_eq!(r.status, 404, "{}", r.body);
}
