//! The data API and the clone worker end to end: real HTTP to the built
//! components in the test host, real SQLite files.

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
    fn raw(&self, method: &str, path: &str, body: &[u8]) -> Reply {
        self.app
            .request(method, &format!("/data/v1{path}"), &self.h(), Some(body))
    }
    fn import(&self, r: &str, lines: &[Value]) -> Value {
        let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let reply = self.raw("POST", &format!("/resources/{r}/import"), body.as_bytes());
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()
    }
    fn export(&self, r: &str, as_of: Option<&str>) -> Vec<String> {
        let q = as_of.map(|a| format!("?as_of={a}")).unwrap_or_default();
        let reply = self.get(&format!("/resources/{r}/export{q}"));
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.header("content-type"), Some("application/x-ndjson"));
        let mut lines: Vec<String> = reply.body.lines().map(String::from).collect();
        lines.sort();
        lines
    }
    fn wait(&self, op: &str) -> Value {
        for _ in 0..2000 {
            let r = self.get(&format!("/operations/{op}"));
            assert_eq!(r.status, 200, "{}", r.body);
            let v = r.json();
            if !matches!(v["status"].as_str(), Some("pending" | "in_progress")) {
                return v;
            }
        }
        panic!("operation {op} never ended");
    }
}

fn records(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"collection": (["users", "orders", "events"][i % 3]), "key": format!("k{i:06}"), "body": {"i": i, "name": format!("record {i}")}}))
        .collect()
}

#[test]
fn clone_now_while_another_client_writes_equals_the_source_as_of_its_snapshot() {
    let app = App::start();
    let c = Client::new(&app, "acme");
    assert_eq!(
        c.send("PUT", "/resources/native:src", &json!({"owner": "team-a"}))
            .status,
        201
    );
    let imported = c.import("native:src", &records(10_000));
    assert_eq!(imported["imported"], 10_000);
    let res = c.get("/resources/native:src").json();
    let counts: Vec<i64> = res["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["records"].as_i64().unwrap())
        .collect();
    assert_eq!(counts, vec![3333, 3333, 3334]); // events, orders, users by name
    assert_eq!(res["head_lsn"], imported["lsn"]);

    let start = c.send(
        "POST",
        "/resources/native:src/clones",
        &json!({"target": "native:copy", "strategy": "now", "history": true, "mode": "copy"}),
    );
    assert_eq!(start.status, 202, "{}", start.body);
    let op = start.json();
    let id = op["id"].as_str().unwrap().to_string();
    assert_eq!(op["status"], "pending");
    assert_eq!(op["snapshot_lsn"], imported["lsn"]);

    // Another client keeps writing to the source while workers copy.
    let writer = std::thread::scope(|s| {
        let w = s.spawn(|| {
            let c2 = Client {
                app: &app,
                auth: c.auth.clone(),
            };
            for i in 0..40 {
                let r = c2.send(
                    "PUT",
                    &format!(
                        "/resources/native:src/collections/users/records/k{:06}",
                        i * 3
                    ),
                    &json!({"changed": i}),
                );
                assert_eq!(r.status, 200, "{}", r.body);
                if i % 10 == 0 {
                    let d = c2.app.request(
                        "DELETE",
                        &format!(
                            "/data/v1/resources/native:src/collections/orders/records/k{:06}",
                            i * 3 + 1
                        ),
                        &c2.h(),
                        None,
                    );
                    assert_eq!(d.status, 200, "{}", d.body);
                }
            }
        });
        let mut ticks = 0;
        loop {
            app.tick().unwrap();
            ticks += 1;
            let v = c.get(&format!("/operations/{id}")).json();
            if v["status"] == "succeeded" {
                break v;
            }
            assert!(ticks < 500, "{v}");
        }
        .pipe(|v| {
            w.join().unwrap();
            v
        })
    });
    assert_eq!(writer["progress"]["records_copied"], 10_000);
    assert_eq!(writer["progress"]["percent"], 100.0);
    let snap = writer["snapshot_lsn"].as_i64().unwrap().to_string();
    let clone = c.export("native:copy", None);
    assert_eq!(clone.len(), 10_000);
    assert_eq!(clone, c.export("native:src", Some(&snap)));
    assert_ne!(clone, c.export("native:src", None));
    // The clone is writable once done.
    assert_eq!(
        c.send(
            "PUT",
            "/resources/native:copy/collections/users/records/new",
            &json!({})
        )
        .status,
        200
    );
}

trait Pipe: Sized {
    fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
        f(self)
    }
}
impl<T> Pipe for T {}

#[test]
fn skip_history_collection_filters_and_pitr() {
    let app = App::start();
    let c = Client::new(&app, "acme");
    c.send("PUT", "/resources/native:src", &json!({}));
    let first = c.import("native:src", &records(300));
    std::thread::sleep(std::time::Duration::from_millis(20));
    let between = engine::util::rfc3339(engine::Env::now_us(&engine::native::SystemEnv));
    std::thread::sleep(std::time::Duration::from_millis(20));
    c.import(
        "native:src",
        &[
            json!({"collection": "users", "key": "k000000", "body": {"v": 2}}),
            json!({"collection": "orders", "key": "k000001", "deleted": true}),
        ],
    );

    // skip-history: one version per live key.
    let op = c
        .send(
            "POST",
            "/resources/native:src/clones",
            &json!({"target": "native:flat", "history": false}),
        )
        .json();
    let done = c.wait(op["id"].as_str().unwrap());
    assert_eq!(
        (
            done["status"].as_str(),
            done["progress"]["records_copied"].as_i64()
        ),
        (Some("succeeded"), Some(299))
    );
    let h = c
        .get("/resources/native:flat/collections/users/records/k000000/history")
        .json();
    assert_eq!(h["versions"].as_array().unwrap().len(), 1);
    let h = c
        .get("/resources/native:src/collections/users/records/k000000/history")
        .json();
    assert_eq!(h["versions"].as_array().unwrap().len(), 2);
    assert_eq!(c.export("native:flat", None), c.export("native:src", None));

    // collections filter.
    let op = c
        .send(
            "POST",
            "/resources/native:src/clones",
            &json!({"target": "native:users-only", "collections": ["users"]}),
        )
        .json();
    c.wait(op["id"].as_str().unwrap());
    let users: Vec<String> = c
        .export("native:src", None)
        .into_iter()
        .filter(|l| l.contains("\"collection\":\"users\""))
        .collect();
    assert_eq!(c.export("native:users-only", None), users);

    // PITR at a time between the two imports gives that time's state.
    let op = c
        .send(
            "POST",
            "/resources/native:src/clones",
            &json!({"target": "native:past", "strategy": "pitr", "target_time": between}),
        )
        .json();
    assert_eq!(op["snapshot_lsn"], first["lsn"], "{op}");
    c.wait(op["id"].as_str().unwrap());
    assert_eq!(
        c.export("native:past", None),
        c.export("native:src", Some(&first["lsn"].to_string()))
    );
    let old = c
        .get(&format!(
            "/resources/native:src/collections/users/records/k000000?as_of={between}"
        ))
        .json();
    assert_eq!(old["body"]["i"], 0);

    // PITR outside the window names the window.
    let r = c.send(
        "POST",
        "/resources/native:src/clones",
        &json!({"target": "native:x", "strategy": "pitr", "target_time": "2001-01-01T00:00:00Z"}),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.json()["error"], "outside_retention");
    assert!(r.json()["retained_from"].is_string());
}

#[test]
fn cancel_retry_idempotency_and_tenancy() {
    let app = App::start();
    let c = Client::new(&app, "acme");
    let other = Client::new(&app, "globex");
    c.send("PUT", "/resources/native:src", &json!({}));
    c.import("native:src", &records(50));

    // Idempotent start: the same key replays the same operation.
    // Physical copies: a branch succeeds when it starts, with nothing left to cancel.
    let body = json!({"target": "native:a", "mode": "copy"});
    let h1 = [
        ("authorization", c.auth.as_str()),
        ("idempotency-key", "k-1"),
    ];
    let r1 = app.send_json("POST", "/data/v1/resources/native:src/clones", &h1, &body);
    let r2 = app.send_json("POST", "/data/v1/resources/native:src/clones", &h1, &body);
    assert_eq!((r1.status, r2.status), (202, 202));
    assert_eq!(r1.json()["id"], r2.json()["id"]);
    assert_eq!(r2.header("idempotent-replayed"), Some("true"));
    let r3 = app.send_json(
        "POST",
        "/data/v1/resources/native:src/clones",
        &h1,
        &json!({"target": "native:b", "mode": "copy"}),
    );
    assert_eq!(r3.status, 422);
    assert_eq!(r3.json()["error"], "idempotency_key_reused");
    let id = r1.json()["id"].as_str().unwrap().to_string();

    // Other tenants see nothing.
    assert_eq!(other.get(&format!("/operations/{id}")).status, 404);
    assert_eq!(other.get("/resources/native:src").status, 404);
    assert_eq!(
        other
            .send("POST", &format!("/operations/{id}/cancel"), &json!({}))
            .status,
        404
    );
    assert_eq!(other.get("/operations").json()["total"], 0);

    // Cancel a pending operation: its target goes.
    let canceled = c.send("POST", &format!("/operations/{id}/cancel"), &json!({}));
    assert_eq!(canceled.status, 200, "{}", canceled.body);
    assert_eq!(canceled.json()["status"], "canceled");
    assert_eq!(c.get("/resources/native:a").status, 404);
    let again = c.send("POST", &format!("/operations/{id}/cancel"), &json!({}));
    assert_eq!(
        (again.status, again.json()["error"].as_str()),
        (409, Some("invalid_state"))
    );

    // Retry a failed operation: it resumes and finishes.
    let op = c
        .send(
            "POST",
            "/resources/native:src/clones",
            &json!({"target": "native:b", "mode": "copy"}),
        )
        .json();
    let id = op["id"].as_str().unwrap().to_string();
    assert_eq!(
        c.send("POST", &format!("/operations/{id}/retry"), &json!({}))
            .status,
        409
    );
    {
        // A worker hits a storage error on this operation (same engine code, same file).
        let db = app.database();
        let e = engine::Engine::open(db.as_ref(), &engine::native::SystemEnv).unwrap();
        e.fail(&id, "disk I/O error").unwrap();
    }
    let failed = c.get(&format!("/operations/{id}")).json();
    assert_eq!(
        (failed["status"].as_str(), failed["error"].as_str()),
        (Some("failed"), Some("disk I/O error"))
    );
    let retried = c.send("POST", &format!("/operations/{id}/retry"), &json!({}));
    assert_eq!(retried.status, 202, "{}", retried.body);
    let done = c.wait(&id);
    assert_eq!(
        (done["status"].as_str(), done["attempts"].as_i64()),
        (Some("succeeded"), Some(1))
    );
    let list = c
        .get("/operations?resource=native:src&status=succeeded&per_page=5")
        .json();
    assert_eq!(list["total"], 1);
    assert_eq!(list["operations"][0]["id"], id.as_str());
}

#[test]
fn events_stream_over_sse_and_resume_from_last_event_id() {
    let app = App::start();
    let c = Client::new(&app, "acme");
    c.send("PUT", "/resources/native:src", &json!({}));
    c.import("native:src", &records(2_000));
    let op = c
        .send(
            "POST",
            "/resources/native:src/clones",
            &json!({"target": "native:copy", "mode": "copy"}),
        )
        .json();
    let id = op["id"].as_str().unwrap().to_string();
    // The stream itself moves the copy forward (no cron, no ticks here).
    let sse = SseReader::open(
        &app,
        &format!("/data/v1/operations/{id}/events"),
        &[("authorization", c.auth.as_str())],
    );
    assert_eq!(
        (sse.status, sse.content_type.as_str()),
        (200, "text/event-stream")
    );
    let events: Vec<SseEvent> = sse.collect();
    let kinds: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"created"));
    assert_eq!(kinds.last(), Some(&"succeeded"));
    assert!(
        kinds.iter().filter(|k| **k == "progress").count() >= 3,
        "{kinds:?}"
    );
    let ids: Vec<i64> = events
        .iter()
        .map(|e| e.id.as_ref().unwrap().parse().unwrap())
        .collect();
    assert_eq!(ids, (1..=ids.len() as i64).collect::<Vec<_>>());
    let last: Value = serde_json::from_str(&events.last().unwrap().data).unwrap();
    assert_eq!(last["records_copied"], 2000);
    // Resume after event 2.
    let resumed: Vec<SseEvent> = SseReader::open(
        &app,
        &format!("/data/v1/operations/{id}/events"),
        &[("authorization", c.auth.as_str()), ("last-event-id", "2")],
    )
    .collect();
    assert_eq!(resumed.first().unwrap().id.as_deref(), Some("3"));
    assert_eq!(resumed.len(), events.len() - 2);
}

#[test]
fn errors_are_clear_and_never_500() {
    let app = App::start();
    // 401 without or with a bad token; the admin token cannot read data.
    assert_eq!(app.get("/data/v1/resources/native:x", &[]).status, 401);
    assert_eq!(
        app.get(
            "/data/v1/resources/native:x",
            &[("authorization", "Bearer nope")]
        )
        .status,
        401
    );
    let admin = format!("Bearer {ADMIN_TOKEN}");
    assert_eq!(
        app.get("/data/v1/resources/native:x", &[("authorization", &admin)])
            .status,
        403
    );
    assert_eq!(
        app.send_json(
            "POST",
            "/data/v1/tokens",
            &[("authorization", "Bearer nope")],
            &json!({"tenant": "x"})
        )
        .status,
        401
    );
    assert_eq!(
        app.request("POST", "/internal/worker/tick", &[], None)
            .status,
        401
    );
    let c = Client::new(&app, "acme");
    assert_eq!(
        c.send("PUT", "/resources/native:db", &json!({})).status,
        201
    );
    assert_eq!(
        c.send("PUT", "/resources/native:db", &json!({})).status,
        409
    );
    let cases: Vec<(Reply, u16, &str)> = vec![
        (
            c.raw(
                "PUT",
                "/resources/native:db/collections/c/records/k",
                b"{not json",
            ),
            400,
            "invalid_json",
        ),
        (
            c.raw("PUT", "/resources/native:bad%20name", b""),
            422,
            "invalid_input",
        ),
        (
            c.raw("PUT", "/resources/nosuch:x", b""),
            422,
            "invalid_input",
        ),
        (
            c.raw(
                "POST",
                "/resources/native:db/import",
                b"{\"collection\":\"c\",\"key\":\"1\",\"body\":1}\n{\"collection\":\"c\"}\n",
            ),
            400,
            "invalid_ndjson",
        ),
        (
            c.send(
                "POST",
                "/resources/native:db/clones",
                &json!({"target": "native:x", "strategy": "sometime"}),
            ),
            422,
            "invalid_input",
        ),
        (
            c.send(
                "POST",
                "/resources/native:db/clones",
                &json!({"target": "native:x", "strategy": "last_snapshot"}),
            ),
            422,
            "no_snapshot",
        ),
        (
            c.get("/resources/native:db/collections/c/records/k?as_of=yesterday"),
            400,
            "invalid_input",
        ),
        (
            c.get("/resources/native:db/collections/c/records?limit=0"),
            422,
            "invalid_input",
        ),
        (
            c.get("/resources/native:db/collections/c/records/missing"),
            404,
            "not_found",
        ),
        (c.get("/operations/nope"), 404, "not_found"),
    ];
    for (i, (r, status, code)) in cases.iter().enumerate() {
        assert_eq!(r.status, *status, "case {i}: {}", r.body);
        assert_eq!(r.json()["error"], *code, "case {i}: {}", r.body);
        assert!(!r.json()["message"].as_str().unwrap().is_empty());
    }
    let bad_line = c.raw(
        "POST",
        "/resources/native:db/import",
        b"{\"collection\":\"c\",\"key\":\"1\",\"body\":1}\n{\"collection\":\"c\"}\n",
    );
    assert!(
        bad_line.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("line 2:"),
        "{}",
        bad_line.body
    );
    // Nothing of a failed import was written.
    assert_eq!(
        c.get("/resources/native:db/collections/c/records/1").status,
        404
    );
    // 413 for a body over the limit, answered before the body is read.
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(app.base.trim_start_matches("http://")).unwrap();
    write!(s, "POST /data/v1/resources/native:db/import HTTP/1.1\r\nhost: x\r\nauthorization: {}\r\ncontent-length: {}\r\n\r\n", c.auth, (64 << 20) + 1).unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 413");
}

#[test]
fn the_openapi_document_is_served() {
    let app = App::start();
    let r = app.get("/data/v1/openapi.json", &[]);
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/tokens",
        "/resources/{ref}",
        "/resources/{ref}/clones",
        "/operations/{id}",
        "/operations/{id}/events",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
}

/// A one-shot HTTP receiver: accepts requests, answers 200, hands back bodies.
fn webhook_receiver() -> (String, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = tx.send(String::from_utf8_lossy(&body).into_owned());
        }
    });
    (url, rx)
}

#[test]
fn the_worker_tick_over_http_finishes_copies_and_the_notifier_delivers_webhooks() {
    let (url, bodies) = webhook_receiver();
    let host = url
        .trim_start_matches("http://")
        .trim_end_matches("/hook")
        .to_string();
    let app = App::start_with(|o| {
        o.variables.insert("webhook_allowed_hosts".into(), host);
    });
    let c = Client::new(&app, "acme");
    c.send("PUT", "/resources/native:src", &json!({}));
    c.import("native:src", &records(100));
    assert_eq!(c.raw("POST", "/webhooks/secret", b"").status, 201);
    let op = c
        .send(
            "POST",
            "/resources/native:src/clones",
            &json!({"target": "native:copy", "mode": "copy", "notify": [url]}),
        )
        .json();
    let id = op["id"].as_str().unwrap();
    let report = app.http_tick();
    assert_eq!(report["finished"], json!([id]), "{report}");
    assert_eq!(report["records_copied"], 100);
    // The clone worker makes no network call; the notifier delivers.
    assert_eq!(report.get("notifications"), None, "{report}");
    let sent = app.request(
        "POST",
        "/internal/notifier/tick",
        &[("authorization", &format!("Bearer {}", ADMIN_TOKEN))],
        None,
    );
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert_eq!(sent.json()["delivered"], 1, "{}", sent.body);
    let body: Value = serde_json::from_str(
        &bodies
            .recv_timeout(std::time::Duration::from_secs(10))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (body["operation"].as_str(), body["status"].as_str()),
        (Some(id), Some("succeeded"))
    );
    let seen = c.get(&format!("/operations/{id}")).json();
    assert_eq!(seen["notifications"][0]["status"], "delivered");
    // A second tick has nothing left to do.
    let idle = app.http_tick();
    assert_eq!(idle["steps"].as_i64(), Some(0), "{idle}");
}

#[test]
fn tokens_are_stored_only_as_hashes_and_an_empty_admin_token_is_a_503() {
    let app = App::start();
    let token = app.token("acme");
    let kv = app.kv_dump();
    assert!(!kv.contains(&token), "the token itself is stored");
    assert!(kv.contains("token:"), "{kv}");
    // An admin_token set to "" counts as unset: a clear 503, never open access.
    let app = App::start_with(|o| {
        o.variables.insert("admin_token".into(), String::new());
    });
    let r = app.send_json(
        "POST",
        "/data/v1/tokens",
        &[("authorization", "Bearer ")],
        &json!({"tenant": "x"}),
    );
    assert_eq!(r.status, 401);
    let r = app.send_json(
        "POST",
        "/data/v1/tokens",
        &[("authorization", "Bearer anything")],
        &json!({"tenant": "x"}),
    );
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("admin_token"));
}

// ---- Copy-on-write branches (the default clone mode) ----

impl<'a> Client<'a> {
    /// Start a clone; assert 202 and hand back the operation.
    fn clone_of(&self, src: &str, body: Value) -> Value {
        let r = self.send("POST", &format!("/resources/{src}/clones"), &body);
        assert_eq!(r.status, 202, "{}", r.body);
        r.json()
    }
    /// Everything a reader can see of a resource: export, per-collection
    /// record counts, the first list page of each collection, one record and
    /// one history.
    fn view(&self, r: &str) -> Value {
        let res = self.get(&format!("/resources/{r}"));
        assert_eq!(res.status, 200, "{}", res.body);
        let counts: Vec<Value> = res.json()["collections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| json!([c["name"], c["records"]]))
            .collect();
        let mut pages = vec![];
        for coll in ["users", "orders", "events"] {
            let p = self.get(&format!(
                "/resources/{r}/collections/{coll}/records?limit=25"
            ));
            assert_eq!(p.status, 200, "{}", p.body);
            pages.push(p.json());
            let p = self.get(&format!(
                "/resources/{r}/collections/{coll}/records?limit=25&after=k000600"
            ));
            assert_eq!(p.status, 200, "{}", p.body);
            pages.push(p.json());
        }
        let one = self.get(&format!("/resources/{r}/collections/users/records/k000000"));
        let hist = self.get(&format!(
            "/resources/{r}/collections/users/records/k000000/history"
        ));
        json!({
            "export": self.export(r, None),
            "counts": counts,
            "pages": pages,
            "one": [one.status, one.json()],
            "history": [hist.status, hist.json()],
        })
    }
    fn put(&self, r: &str, coll: &str, key: &str, body: Value) {
        let x = self.send(
            "PUT",
            &format!("/resources/{r}/collections/{coll}/records/{key}"),
            &body,
        );
        assert_eq!(x.status, 200, "{}", x.body);
    }
    fn del(&self, r: &str, coll: &str, key: &str) {
        let x = self.app.request(
            "DELETE",
            &format!("/data/v1/resources/{r}/collections/{coll}/records/{key}"),
            &self.h(),
            None,
        );
        assert_eq!(x.status, 200, "{}", x.body);
    }
    fn branch_of(&self, r: &str) -> Value {
        let res = self.get(&format!("/resources/{r}"));
        assert_eq!(res.status, 200, "{}", res.body);
        res.json()["branch"].clone()
    }
    /// Tick the worker until the resource no longer depends on a parent.
    fn tick_until_hydrated(&self, r: &str) {
        for _ in 0..200 {
            if self.branch_of(r).is_null() {
                return;
            }
            self.app.tick().unwrap();
        }
        panic!(
            "{r} never hydrated: {}",
            self.get(&format!("/resources/{r}")).body
        );
    }
}

/// A source with history: 3000 records, then updates and deletions.
fn branch_source(c: &Client) {
    assert_eq!(
        c.send("PUT", "/resources/native:src", &json!({})).status,
        201
    );
    c.import("native:src", &records(3_000));
    c.import(
        "native:src",
        &[
            json!({"collection": "users", "key": "k000000", "body": {"v": 2}}),
            json!({"collection": "orders", "key": "k000001", "deleted": true}),
            json!({"collection": "events", "key": "k000002", "body": {"v": 2}}),
        ],
    );
}

#[test]
fn a_branch_is_usable_when_its_clone_returns_and_isolated_both_ways() {
    let app = App::start();
    let c = Client::new(&app, "acme");
    let other = Client::new(&app, "globex");
    branch_source(&c);
    let src_view = c.view("native:src");

    // The start request answers with the branch done: no tick, no wait.
    let op = c.clone_of("native:src", json!({"target": "native:br"}));
    assert_eq!(
        (
            op["status"].as_str(),
            op["mode"].as_str(),
            op["kind"].as_str()
        ),
        (Some("succeeded"), Some("branch"), Some("clone")),
        "{op}"
    );
    let res = c.get("/resources/native:br").json();
    assert_eq!(res["state"], "ready", "{res}");
    assert_eq!(res["branch"]["depth"], 1, "{res}");
    assert_eq!(res["branch"]["base_lsn"], op["snapshot_lsn"], "{res}");
    assert_eq!(c.branch_of("native:src"), Value::Null);
    assert_eq!(c.view("native:br"), src_view);
    // The operation reads the same afterwards.
    let seen = c
        .get(&format!("/operations/{}", op["id"].as_str().unwrap()))
        .json();
    assert_eq!(
        (seen["status"].as_str(), seen["mode"].as_str()),
        (Some("succeeded"), Some("branch"))
    );

    // Writes to the parent after the branch never show in it.
    c.put("native:src", "users", "k000000", json!({"parent": 3}));
    c.put("native:src", "users", "p-new", json!({"parent": "new"}));
    c.del("native:src", "users", "k000003");
    c.import(
        "native:src",
        &[json!({"collection": "newcoll", "key": "x", "body": 1})],
    );
    assert_eq!(c.view("native:br"), src_view);
    let src_after = c.view("native:src");
    assert_ne!(src_after, src_view);

    // Writes and deletes in the branch never show in the parent.
    c.put("native:br", "users", "k000006", json!({"branch": 1}));
    c.put("native:br", "users", "b-new", json!({"branch": "new"}));
    c.del("native:br", "users", "k000000");
    c.del("native:br", "orders", "k000004");
    assert_eq!(c.view("native:src"), src_after);
    assert_eq!(
        c.get("/resources/native:br/collections/users/records/k000000")
            .status,
        404
    );
    assert_eq!(
        c.get("/resources/native:br/collections/users/records/k000006")
            .json()["body"],
        json!({"branch": 1})
    );
    assert_eq!(
        c.get("/resources/native:br/collections/users/records/p-new")
            .status,
        404
    );
    assert_eq!(
        c.get("/resources/native:src/collections/users/records/b-new")
            .status,
        404
    );
    let br_view = c.view("native:br");
    assert_eq!(
        br_view["export"].as_array().unwrap().len(),
        3_000 - 1 - 2 + 1
    );

    // A branch of a branch of a branch, with writes at every level after.
    let op2 = c.clone_of("native:br", json!({"target": "native:br2"}));
    assert_eq!(op2["status"], "succeeded", "{op2}");
    c.put("native:br", "users", "k000009", json!({"after": "br2"}));
    assert_eq!(c.view("native:br2"), br_view);
    c.put("native:br2", "events", "k000005", json!({"in": "br2"}));
    c.del("native:br2", "users", "k000012");
    let br2_view = c.view("native:br2");
    let op3 = c.clone_of("native:br2", json!({"target": "native:br3"}));
    assert_eq!(op3["status"], "succeeded", "{op3}");
    assert_eq!(c.branch_of("native:br3")["depth"], 3);
    assert_eq!(c.view("native:br3"), br2_view);
    c.put("native:br2", "users", "k000015", json!({"after": "br3"}));
    c.put("native:br", "users", "k000018", json!({"after": "br3"}));
    c.put("native:src", "users", "k000021", json!({"after": "br3"}));
    assert_eq!(c.view("native:br3"), br2_view);
    c.put("native:br3", "orders", "k000007", json!({"in": "br3"}));
    assert_eq!(
        c.get("/resources/native:br3/collections/orders/records/k000007")
            .json()["body"],
        json!({"in": "br3"})
    );
    assert_eq!(
        c.get("/resources/native:br2/collections/orders/records/k000007")
            .json()["body"]["i"],
        7
    );
    c.del("native:br3", "orders", "k000007");
    let gone = c.get("/resources/native:br3/collections/orders/records/k000007");
    assert_eq!(gone.status, 404, "{}", gone.body);
    assert_eq!(
        c.view("native:br3")["export"].as_array().unwrap().len(),
        br2_view["export"].as_array().unwrap().len() - 1
    );

    // Another tenant sees none of it and cannot hydrate or clone it.
    for r in ["native:br", "native:br3"] {
        assert_eq!(other.get(&format!("/resources/{r}")).status, 404);
        assert_eq!(
            other
                .send("POST", &format!("/resources/{r}/hydrate"), &json!({}))
                .status,
            404
        );
        assert_eq!(
            other
                .send(
                    "POST",
                    &format!("/resources/{r}/clones"),
                    &json!({"target": "native:steal"})
                )
                .status,
            404
        );
        assert_eq!(other.get(&format!("/resources/{r}/export")).status, 404);
    }
    assert_eq!(other.get("/operations").json()["total"], 0);

    // Hydration on request: 202, finished by worker ticks, reads unchanged.
    let before = c.view("native:br3");
    let h = c.send("POST", "/resources/native:br3/hydrate", &json!({}));
    assert_eq!(h.status, 202, "{}", h.body);
    let hop = h.json();
    assert_eq!(hop["kind"], "hydrate", "{hop}");
    // Asking again while it runs hands back the same operation.
    let again = c.send("POST", "/resources/native:br3/hydrate", &json!({}));
    if again.status == 202 {
        assert_eq!(again.json()["id"], hop["id"], "{}", again.body);
    }
    c.tick_until_hydrated("native:br3");
    let done = c
        .get(&format!("/operations/{}", hop["id"].as_str().unwrap()))
        .json();
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(c.view("native:br3"), before);
    assert_eq!(c.get("/resources/native:br3").json()["state"], "ready");
    let idle = c.send("POST", "/resources/native:br3/hydrate", &json!({}));
    assert_eq!(idle.status, 200, "{}", idle.body);
    // Its parents are untouched and still branches.
    assert_eq!(c.branch_of("native:br2")["depth"], 2);
    // Writes after hydration still stay in the branch.
    c.put("native:br3", "users", "after-hydrate", json!({}));
    assert_eq!(
        c.get("/resources/native:br2/collections/users/records/after-hydrate")
            .status,
        404
    );
}

#[test]
fn deleting_a_parent_answers_at_once_and_its_branches_keep_everything() {
    let app = App::start();
    let c = Client::new(&app, "acme");
    branch_source(&c);
    let src_view = c.view("native:src");
    let op = c.clone_of("native:src", json!({"target": "native:br"}));
    assert_eq!(op["status"], "succeeded", "{op}");
    let op = c.clone_of("native:br", json!({"target": "native:br2"}));
    assert_eq!(op["status"], "succeeded", "{op}");
    c.put("native:src", "users", "k000000", json!({"gone": true}));

    let d = app.request("DELETE", "/data/v1/resources/native:src", &c.h(), None);
    assert_eq!(d.status, 204, "{}", d.body);
    assert_eq!(c.get("/resources/native:src").status, 404);
    // Nothing a branch reads went away, before or after its hydration.
    assert_eq!(c.view("native:br"), src_view);
    assert_eq!(c.view("native:br2"), src_view);
    c.tick_until_hydrated("native:br");
    assert_eq!(c.view("native:br"), src_view);
    assert_eq!(c.view("native:br2"), src_view);
    // br2 reads through br now, or was hydrated too; either way it is whole.
    let hydrations = c.get("/operations?per_page=50").json();
    assert!(
        hydrations["operations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["kind"] == "hydrate" && o["target"] == "native:br"),
        "{hydrations}"
    );
    // Deleting br too leaves br2 whole.
    let d = app.request("DELETE", "/data/v1/resources/native:br", &c.h(), None);
    assert_eq!(d.status, 204, "{}", d.body);
    assert_eq!(c.view("native:br2"), src_view);
    c.tick_until_hydrated("native:br2");
    for _ in 0..5 {
        app.tick().unwrap();
    }
    assert_eq!(c.view("native:br2"), src_view);
    assert_eq!(c.get("/resources/native:br2").json()["state"], "ready");
}

#[test]
fn hydrate_at_start_and_a_branch_ttl() {
    let app = App::start();
    let c = Client::new(&app, "acme");
    branch_source(&c);
    let src_view = c.view("native:src");

    // `hydrate: true`: a branch at once, physical after worker ticks.
    let op = c.clone_of("native:src", json!({"target": "native:h", "hydrate": true}));
    assert_eq!(
        (op["status"].as_str(), op["mode"].as_str()),
        (Some("succeeded"), Some("branch")),
        "{op}"
    );
    assert_eq!(c.view("native:h"), src_view);
    c.tick_until_hydrated("native:h");
    assert_eq!(c.view("native:h"), src_view);
    // A copy cannot hydrate; bad modes and TTLs are 422.
    for body in [
        json!({"target": "native:x", "mode": "copy", "hydrate": true}),
        json!({"target": "native:x", "mode": "fork"}),
        json!({"target": "native:x", "ttl_seconds": 0}),
    ] {
        let r = c.send("POST", "/resources/native:src/clones", &body);
        assert_eq!(
            (r.status, r.json()["error"].as_str()),
            (422, Some("invalid_input")),
            "{body}: {}",
            r.body
        );
    }
    // A copy's operation says so.
    let op = c.clone_of("native:src", json!({"target": "native:cp", "mode": "copy"}));
    assert_eq!(op["mode"], "copy", "{op}");
    assert_eq!(c.wait(op["id"].as_str().unwrap())["status"], "succeeded");
    assert_eq!(c.branch_of("native:cp"), Value::Null);
    assert_eq!(c.view("native:cp"), src_view);

    // ttl_seconds: the worker deletes the branch once it has passed (1 s).
    let op = c.clone_of(
        "native:src",
        json!({"target": "native:tmp", "ttl_seconds": 1}),
    );
    assert_eq!(op["status"], "succeeded", "{op}");
    assert_eq!(c.view("native:tmp"), src_view);
    let report = app.http_tick();
    assert_eq!(report["expired"], 0, "{report}");
    assert_eq!(c.get("/resources/native:tmp").status, 200);
    std::thread::sleep(std::time::Duration::from_millis(1_300));
    let report = app.http_tick();
    assert_eq!(report["expired"], 1, "{report}");
    assert_eq!(c.get("/resources/native:tmp").status, 404);
    // Its source is untouched.
    assert_eq!(c.view("native:src"), src_view);
}
