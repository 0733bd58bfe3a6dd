//! Imports end to end: a large import in one request is staged in short
//! transactions and shows all at once; an import session loads in parts,
//! all or nothing; abandoned and idle sessions leave nothing behind. On
//! both backends (a remote libSQL server refuses a writer that holds the
//! lock for seconds, which a one-transaction import of this size did).

use spinoff_e2e::*;

struct Client<'a> {
    app: &'a App,
    auth: String,
}

impl<'a> Client<'a> {
    fn new(app: &'a App, tenant: &str) -> Client<'a> {
        Client {
            app,
            auth: format!("Bearer {}", app.token(tenant)),
        }
    }
    fn h(&self) -> Vec<(&str, &str)> {
        vec![("authorization", self.auth.as_str())]
    }
    fn get(&self, path: &str) -> Reply {
        self.app.get(&format!("/data/v1{path}"), &self.h())
    }
    fn send(&self, method: &str, path: &str, body: &Value) -> Reply {
        self.app
            .send_json(method, &format!("/data/v1{path}"), &self.h(), body)
    }
    fn raw(&self, method: &str, path: &str, body: Option<&[u8]>) -> Reply {
        self.app
            .request(method, &format!("/data/v1{path}"), &self.h(), body)
    }
    fn export(&self, r: &str) -> Vec<String> {
        let reply = self.get(&format!("/resources/{r}/export"));
        assert_eq!(reply.status, 200, "{}", reply.body);
        let mut lines: Vec<String> = reply.body.lines().map(String::from).collect();
        lines.sort();
        lines
    }
    fn count(&self, r: &str) -> i64 {
        let res = self.get(&format!("/resources/{r}")).json();
        res["collections"]
            .as_array()
            .unwrap_or_else(|| panic!("{res}"))
            .iter()
            .map(|c| c["records"].as_i64().unwrap())
            .sum()
    }
}

fn ndjson(from: usize, to: usize, tag: &str) -> String {
    (from..to)
        .map(|i| format!("{}\n", json!({"collection": (["a", "b"][i % 2]), "key": format!("k{i:06}"), "body": {"i": i, "tag": tag}})))
        .collect()
}

fn count_rows(app: &App, sql: &str) -> i64 {
    app.database().execute(sql, &[]).unwrap()[0].i64(0).unwrap()
}

#[test]
fn a_large_import_is_staged_and_shows_at_once_or_not_at_all() {
    let app = App::start();
    let c = Client::new(&app, "acme");
    assert_eq!(
        c.send("PUT", "/resources/native:big", &json!({})).status,
        201
    );
    // 12 000 lines: more than one transaction takes (2 000), so staged.
    let r = c.raw(
        "POST",
        "/resources/native:big/import",
        Some(ndjson(0, 12_000, "one").as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["imported"], 12_000);
    assert_eq!(v["applied"], 12_000);
    assert_eq!(c.count("native:big"), 12_000);
    assert_eq!(c.export("native:big").len(), 12_000);
    let res = c.get("/resources/native:big").json();
    assert_eq!(res["head_lsn"], v["lsn"], "{res}");
    assert_eq!(
        count_rows(&app, "SELECT count(*) FROM imports WHERE state = 'open'"),
        0
    );

    // A bad line deep in a second import: 422 naming it, nothing of the
    // import shows, and the resource takes writes again at once.
    let mut body = ndjson(12_000, 20_000, "two");
    body.push_str("{\"collection\": \"a\", \"key\": \"\", \"body\": {}}\n");
    let r = c.raw(
        "POST",
        "/resources/native:big/import",
        Some(body.as_bytes()),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("line 8001"), "{}", r.body);
    assert_eq!(c.count("native:big"), 12_000);
    assert_eq!(c.export("native:big").len(), 12_000);
    let put = c.send(
        "PUT",
        "/resources/native:big/collections/a/records/after",
        &json!({"ok": true}),
    );
    assert_eq!(put.status, 200, "{}", put.body);
    // The worker frees what the failed import staged.
    for _ in 0..20 {
        app.tick().unwrap();
    }
    assert_eq!(
        count_rows(
            &app,
            "SELECT count(*) FROM containers WHERE family = 'staging'"
        ),
        0,
        "the staging branches are purged"
    );
    assert_eq!(c.count("native:big"), 12_001);
}

#[test]
fn an_import_session_loads_in_parts_all_or_nothing() {
    let app = App::start_with(|o| {
        o.variables.insert("import_idle_seconds".into(), "2".into());
    });
    let c = Client::new(&app, "acme");
    let other = Client::new(&app, "globex");
    assert_eq!(c.send("PUT", "/resources/native:s", &json!({})).status, 201);
    let r = c.raw(
        "POST",
        "/resources/native:s/import",
        Some(ndjson(0, 100, "before").as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let before = c.export("native:s");

    let open = c.raw("POST", "/resources/native:s/imports", None);
    assert_eq!(open.status, 201, "{}", open.body);
    let id = open.json()["id"].as_str().unwrap().to_string();
    // A second session on the same resource waits its turn.
    assert_eq!(
        c.raw("POST", "/resources/native:s/imports", None).status,
        409
    );
    // Three parts; rewriting the first 50 keys and adding 9 900.
    for (from, to) in [(50, 3_000), (3_000, 6_000), (6_000, 10_000)] {
        let r = c.raw(
            "POST",
            &format!("/resources/native:s/imports/{id}/lines"),
            Some(ndjson(from, to, "session").as_bytes()),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        // Nothing shows yet; other writes wait; another tenant cannot see it.
        assert_eq!(c.export("native:s"), before);
        let w = c.send(
            "PUT",
            "/resources/native:s/collections/a/records/x",
            &json!({}),
        );
        assert_eq!(w.status, 409, "{}", w.body);
        let o = other.raw(
            "POST",
            &format!("/resources/native:s/imports/{id}/lines"),
            Some(ndjson(0, 1, "x").as_bytes()),
        );
        assert_eq!(o.status, 404, "{}", o.body);
    }
    // A branch made now reads the resource as it was.
    let b = c.send(
        "POST",
        "/resources/native:s/clones",
        &json!({"target": "native:during"}),
    );
    assert_eq!(b.status, 202, "{}", b.body);
    let done = c.raw(
        "POST",
        &format!("/resources/native:s/imports/{id}/commit"),
        None,
    );
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.json()["imported"], 9_950);
    if std::env::var("DEBUG_IMPORTS").is_ok() {
        for r in app
            .database()
            .execute(
                "SELECT container, collection, records, versions FROM collection_stats",
                &[],
            )
            .unwrap()
        {
            eprintln!("stats {:?}", r);
        }
        for r in app
            .database()
            .execute(
                "SELECT container, count(*) FROM records GROUP BY container",
                &[],
            )
            .unwrap()
        {
            eprintln!("rows {:?}", r);
        }
        eprintln!("res {}", c.get("/resources/native:s").body);
    }
    assert_eq!(c.count("native:s"), 10_000);
    let after = c.export("native:s");
    assert_eq!(after.len(), 10_000);
    assert!(after.iter().filter(|l| l.contains("\"session\"")).count() == 9_950);
    assert_eq!(
        c.export("native:during"),
        before,
        "the branch never sees the import"
    );
    // Committing twice answers 409; the resource takes writes again.
    assert_eq!(
        c.raw(
            "POST",
            &format!("/resources/native:s/imports/{id}/commit"),
            None
        )
        .status,
        409
    );
    let w = c.send(
        "PUT",
        "/resources/native:s/collections/a/records/x",
        &json!({"n": 1}),
    );
    assert_eq!(w.status, 200, "{}", w.body);
    // The worker hydrates the resource from its staging branch and frees it;
    // reads are the same before and after.
    for _ in 0..30 {
        app.tick().unwrap();
    }
    let res = c.get("/resources/native:s").json();
    assert!(res["branch"].is_null(), "{res}");
    assert_eq!(c.export("native:s").len(), 10_001);
    assert_eq!(
        count_rows(
            &app,
            "SELECT count(*) FROM containers WHERE family = 'staging'"
        ),
        0
    );

    // An abandoned session leaves nothing.
    let id2 = c.raw("POST", "/resources/native:s/imports", None).json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = c.raw(
        "POST",
        &format!("/resources/native:s/imports/{id2}/lines"),
        Some(ndjson(20_000, 21_000, "abandoned").as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        c.raw(
            "DELETE",
            &format!("/resources/native:s/imports/{id2}"),
            None
        )
        .status,
        204
    );
    assert_eq!(c.count("native:s"), 10_001);

    // An idle one is abandoned by the worker after import_idle_seconds.
    let id3 = c.raw("POST", "/resources/native:s/imports", None).json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = c.raw(
        "POST",
        &format!("/resources/native:s/imports/{id3}/lines"),
        Some(ndjson(30_000, 30_010, "idle").as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    std::thread::sleep(std::time::Duration::from_millis(2_200));
    app.tick().unwrap();
    assert_eq!(
        c.raw(
            "POST",
            &format!("/resources/native:s/imports/{id3}/commit"),
            None
        )
        .status,
        409,
        "an idle session is abandoned"
    );
    for _ in 0..10 {
        app.tick().unwrap();
    }
    assert_eq!(c.count("native:s"), 10_001);
    assert!(!c
        .export("native:s")
        .iter()
        .any(|l| l.contains("abandoned") || l.contains("\"idle\"")));
    assert_eq!(
        count_rows(
            &app,
            "SELECT count(*) FROM containers WHERE family = 'staging'"
        ),
        0
    );
}
