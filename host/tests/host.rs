//! The host's own tests: real HTTP to the probe guests (tests/guests) running
//! in the host, with real SQLite files in a temporary state directory.
//! Build the guests first: `scripts/build-wasm probe cron-probe`.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{json, Value};
use spinoff_host::{Host, HostOptions};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

struct App {
    base: String,
    host: Arc<Host>,
    rt: tokio::runtime::Runtime,
    state: tempfile::TempDir,
    agent: ureq::Agent,
}

fn options(state: &std::path::Path) -> HostOptions {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/spin.toml");
    let mut opts = HostOptions::new(manifest, state);
    opts.cache_dir = Some(repo_root().join("target/spinoff-host-cache"));
    opts.variables
        .insert("secret_thing".into(), "s3cret".into());
    opts
}

fn start_with(mutate: impl FnOnce(&mut HostOptions)) -> App {
    let state = tempfile::tempdir().unwrap();
    let mut opts = options(state.path());
    mutate(&mut opts);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let host = Arc::new(Host::new(opts).expect("host starts (did you run scripts/build-wasm?)"));
    let (addr, _task) = rt
        .block_on(spinoff_host::server::bind(
            host.clone(),
            "127.0.0.1:0".parse().unwrap(),
        ))
        .unwrap();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    App {
        base: format!("http://{addr}"),
        host,
        rt,
        state,
        agent,
    }
}

fn start() -> App {
    start_with(|_| {})
}

impl App {
    fn call(&self, method: &str, path: &str, body: Option<&[u8]>) -> (u16, String) {
        let url = format!("{}{}", self.base, path);
        let resp = match (method, body) {
            ("GET", _) => self.agent.get(&url).call(),
            ("HEAD", _) => self.agent.head(&url).call(),
            ("DELETE", _) => self.agent.delete(&url).call(),
            ("PUT", b) => self.agent.put(&url).send(b.unwrap_or_default()),
            ("POST", b) => self.agent.post(&url).send(b.unwrap_or_default()),
            _ => unreachable!(),
        };
        let mut resp = resp.expect("request reaches the host");
        let status = resp.status().as_u16();
        let text = if method == "HEAD" {
            String::new()
        } else {
            resp.body_mut().read_to_string().unwrap()
        };
        (status, text)
    }

    fn json(&self, path: &str) -> Value {
        let (status, body) = self.call("GET", path, None);
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    fn sql(&self, statements: Value) -> (u16, Value) {
        let (s, b) = self.call(
            "POST",
            "/probe/sql/default",
            Some(statements.to_string().as_bytes()),
        );
        (s, serde_json::from_str(&b).unwrap_or(Value::String(b)))
    }
}

#[test]
fn key_value_set_get_exists_delete_keys() {
    let app = start();
    assert_eq!(app.call("GET", "/probe/kv/default/a", None).0, 404);
    assert_eq!(app.call("HEAD", "/probe/kv/default/a", None).0, 404);
    assert_eq!(app.call("PUT", "/probe/kv/default/a", Some(b"one")).0, 204);
    assert_eq!(app.call("PUT", "/probe/kv/default/b", Some(b"two")).0, 204);
    assert_eq!(app.call("PUT", "/probe/kv/default/a", Some(b"uno")).0, 204);
    assert_eq!(
        app.call("GET", "/probe/kv/default/a", None),
        (200, "uno".to_string())
    );
    assert_eq!(app.call("HEAD", "/probe/kv/default/a", None).0, 200);
    assert_eq!(app.json("/probe/kv/default"), json!(["a", "b"]));
    assert_eq!(app.call("DELETE", "/probe/kv/default/a", None).0, 204);
    assert_eq!(
        app.call("DELETE", "/probe/kv/default/never-there", None).0,
        204
    );
    assert_eq!(app.json("/probe/kv/default"), json!(["b"]));

    // Stored in Spin's layout (store "default"), so the same state dir works under `spin up`.
    let kv =
        spinoff_host::kv::KvBackend::open(&app.state.path().join("sqlite_key_value.db")).unwrap();
    assert_eq!(kv.get("default", "b").unwrap(), Some(b"two".to_vec()));
}

#[test]
fn undeclared_store_and_database_are_denied() {
    let app = start();
    let (s, b) = app.call("GET", "/probe/kv/other/a", None);
    assert_eq!((s, b.as_str()), (409, "Error::AccessDenied"));
    let (s, b) = app.call("GET", "/bare/kv/default/a", None);
    assert_eq!((s, b.as_str()), (409, "Error::AccessDenied"));
    let (s, b) = app.call("POST", "/bare/sql/default", Some(b"[]"));
    assert_eq!((s, b.as_str()), (409, "Error::AccessDenied"));
    let (s, b) = app.call("GET", "/bare/var/greeting", None);
    assert_eq!(s, 409);
    assert!(b.starts_with("Error::Undefined("), "{b}");
}

#[test]
fn sqlite_every_value_type_round_trips_with_parameters() {
    let app = start();
    let (s, r) = app.sql(json!([
        {"sql": "CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n)"},
        {"sql": "INSERT INTO t VALUES (?, ?, ?, ?, ?)",
         "params": [{"integer": -9007199254740993i64}, {"real": 1.5}, {"text": "héllo \"q\""}, {"blob": [0, 1, 255]}, null]},
        {"sql": "SELECT i, r, s, b, n FROM t WHERE s = ?", "params": [{"text": "héllo \"q\""}]},
    ]));
    assert_eq!(s, 200, "{r}");
    assert_eq!(r[2]["columns"], json!(["i", "r", "s", "b", "n"]));
    assert_eq!(
        r[2]["rows"],
        json!([[{"integer": -9007199254740993i64}, {"real": 1.5}, {"text": "héllo \"q\""}, {"blob": [0, 1, 255]}, null]])
    );
    // Statements without rows still report their columns as empty.
    assert_eq!(r[1], json!({"columns": [], "rows": []}));
}

#[test]
fn sqlite_errors_are_io_errors_not_traps() {
    let app = start();
    let (s, r) = app.sql(json!([{"sql": "SELEKT nonsense"}]));
    assert_eq!(s, 409);
    assert!(r.as_str().unwrap().starts_with("Error::Io("), "{r}");
    // The host keeps serving afterwards.
    let (s, _) = app.sql(json!([{"sql": "SELECT 1"}]));
    assert_eq!(s, 200);
}

#[test]
fn sqlite_transaction_spans_statements_on_one_connection() {
    let app = start();
    let (s, _) = app.sql(json!([{"sql": "CREATE TABLE c (k INTEGER PRIMARY KEY)"}]));
    assert_eq!(s, 200);
    // Committed transaction: visible afterwards.
    let (s, r) = app.sql(json!([
        {"sql": "BEGIN IMMEDIATE"},
        {"sql": "INSERT INTO c VALUES (1)"},
        {"sql": "INSERT INTO c VALUES (2)"},
        {"sql": "SELECT count(*) FROM c"},
        {"sql": "COMMIT"},
    ]));
    assert_eq!(s, 200, "{r}");
    assert_eq!(r[3]["rows"], json!([[{"integer": 2}]]));
    // Rolled back: not visible.
    let (s, _) = app.sql(json!([
        {"sql": "BEGIN"},
        {"sql": "INSERT INTO c VALUES (3)"},
        {"sql": "ROLLBACK"},
    ]));
    assert_eq!(s, 200);
    // A transaction left open when the request ends is rolled back with the connection.
    let (s, _) = app.sql(json!([{"sql": "BEGIN"}, {"sql": "INSERT INTO c VALUES (4)"}]));
    assert_eq!(s, 200);
    let (_, r) = app.sql(json!([{"sql": "SELECT k FROM c ORDER BY k"}]));
    assert_eq!(r[0]["rows"], json!([[{"integer": 1}], [{"integer": 2}]]));
    // The host reuses idle connections: one left mid-transaction comes back
    // clean, so the next request can start its own transaction on it.
    for k in 5..8 {
        let (s, _) = app.sql(json!([{"sql": "BEGIN IMMEDIATE"}, {"sql": "INSERT INTO c VALUES (?)", "params": [{"integer": k}]}]));
        assert_eq!(s, 200);
        let (s, r) = app.sql(json!([{"sql": "BEGIN IMMEDIATE"}, {"sql": "SELECT count(*) FROM c"}, {"sql": "COMMIT"}]));
        assert_eq!(s, 200, "{r}");
        assert_eq!(r[1]["rows"], json!([[{"integer": 2}]]));
    }
    // The database is Spin's file in the state dir.
    assert!(app.state.path().join("sqlite_db.db").exists());
}

#[test]
fn variables_defaults_templates_and_overrides() {
    let app = start();
    assert_eq!(app.json("/probe/var/greeting"), json!("hello, world"));
    assert_eq!(app.json("/probe/var/secret"), json!("s3cret"));
    assert_eq!(app.json("/probe/var/env_var"), json!("from-default"));
    let (s, b) = app.call("GET", "/probe/var/missing", None);
    assert_eq!(s, 409);
    assert!(b.starts_with("Error::Undefined("), "{b}");
    let (s, b) = app.call("GET", "/probe/var/Bad-Name", None);
    assert_eq!(s, 409);
    assert!(b.starts_with("Error::InvalidName("), "{b}");

    let app = start_with(|o| {
        o.variables.insert("greeting".into(), "hi".into());
    });
    assert_eq!(app.json("/probe/var/greeting"), json!("hi, world"));
}

#[test]
fn environment_variable_beats_the_command_line() {
    // Only this test sets SPIN_VARIABLE_FROM_ENV.
    std::env::set_var("SPIN_VARIABLE_FROM_ENV", "from-env");
    let app = start_with(|o| {
        o.variables.insert("from_env".into(), "from-cli".into());
    });
    std::env::remove_var("SPIN_VARIABLE_FROM_ENV");
    assert_eq!(app.json("/probe/var/env_var"), json!("from-env"));
}

#[test]
fn missing_required_variable_stops_the_host() {
    let state = tempfile::tempdir().unwrap();
    let mut opts = options(state.path());
    opts.variables.clear();
    let err = Host::new(opts).err().expect("must not start").to_string();
    assert!(
        err.contains("no provider resolved required variable(s): secret_thing"),
        "{err}"
    );
}

#[test]
fn routing_precedence_and_spin_headers() {
    let app = start();
    let v = app.json("/probe/abc/def?x=1");
    assert_eq!(v["spin-path-info"], "/abc/def");
    assert_eq!(v["spin-matched-route"], "/probe/...");
    assert_eq!(v["spin-raw-component-route"], "/probe/...");
    assert_eq!(v["spin-component-route"], "/probe");
    assert_eq!(v["spin-base-path"], "/");
    assert_eq!(
        v["spin-full-url"],
        format!("{}/probe/abc/def?x=1", app.base)
    );
    assert_eq!(v["uri"], format!("{}/probe/abc/def?x=1", app.base));
    assert!(v["spin-client-addr"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));

    // The exact route beats the wildcard and goes to its own component (which has no stores).
    let v = app.json("/probe/special");
    assert_eq!(v["spin-matched-route"], "/probe/special");
    assert_eq!(v["spin-path-info"], "");
    let (s, b) = app.call("GET", "/probe/special/kv/default/x", None);
    assert_eq!(s, 200, "a longer path falls back to the wildcard: {b}");

    let v = app.json("/jobs/j123/listen");
    assert_eq!(v["spin-path-match-id"], "j123");
    assert_eq!(v["spin-matched-route"], "/jobs/:id/listen");

    assert_eq!(app.call("GET", "/nowhere", None).0, 404);
    assert_eq!(app.call("GET", "/jobs/j123", None).0, 404);
}

#[test]
fn cron_tick_on_demand_and_errors() {
    let app = start();
    app.rt.block_on(app.host.fire_cron("cron-probe")).unwrap();
    app.rt.block_on(app.host.fire_cron("cron-probe")).unwrap();
    assert_eq!(
        app.call("GET", "/probe/kv/default/ticks", None),
        (200, "2".to_string())
    );
    let (_, last) = app.call("GET", "/probe/kv/default/last", None);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let last: u64 = last.parse().unwrap();
    assert!(
        now.abs_diff(last) < 60,
        "timestamp is Unix seconds: {last} vs {now}"
    );

    app.call("PUT", "/probe/kv/default/fail", Some(b"1"));
    let err = app
        .rt
        .block_on(app.host.fire_cron("cron-probe"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("asked to fail"), "{err}");
    assert!(
        app.rt.block_on(app.host.fire_cron("probe")).is_err(),
        "an HTTP component has no cron export"
    );
}

#[test]
fn cron_schedule_fires_by_itself() {
    let app = start();
    let _tasks = app.rt.block_on(async { app.host.start_cron() }).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (s, b) = app.call("GET", "/probe/kv/default/ticks", None);
        if s == 200 && b.parse::<u64>().unwrap() >= 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "cron did not fire twice in 10 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn state_persists_across_host_restarts() {
    let app = start();
    assert_eq!(
        app.call("PUT", "/probe/kv/default/keep", Some(b"me")).0,
        204
    );
    let (s, r) = app
        .sql(json!([{"sql": "CREATE TABLE p (v TEXT)"}, {"sql": "INSERT INTO p VALUES ('kept')"}]));
    assert_eq!(s, 200, "{r}");
    let state = app.state;
    drop(app.rt);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let host = Arc::new(Host::new(options(state.path())).unwrap());
    let (addr, _t) = rt
        .block_on(spinoff_host::server::bind(
            host,
            "127.0.0.1:0".parse().unwrap(),
        ))
        .unwrap();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut r = agent
        .get(&format!("http://{addr}/probe/kv/default/keep"))
        .call()
        .unwrap();
    assert_eq!(r.body_mut().read_to_string().unwrap(), "me");
    // And the SQLite write.
    let mut r = agent
        .post(&format!("http://{addr}/probe/sql/default"))
        .send(json!([{"sql": "SELECT v FROM p"}]).to_string())
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let rows: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(rows[0]["rows"], json!([[{"text": "kept"}]]), "{rows}");
}

/// Raw bytes to the host and everything it answers before closing.
fn raw_exchange(app: &App, request: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let addr = app.base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

// What real Spin 3.5 does, observed with the same probe guest under `spin up`
// (each difference found was a host bug).

#[test]
fn the_guest_gets_the_headers_spin_gives_it() {
    let app = start();
    let r = app
        .agent
        .get(format!("{}/probe/echo/x?a=1", app.base))
        .header("x-custom", "1")
        .header("te", "trailers")
        .header("keep-alive", "timeout=5")
        .header("proxy-authorization", "Basic eA==")
        .header("upgrade", "h2c")
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let v: Value = serde_json::from_str(&r).unwrap();
    let h = &v["headers"];
    assert_eq!(h["x-custom"], "1", "{v}");
    assert_eq!(h["te"], "trailers", "{v}");
    // Hop-by-hop headers and `host` never reach the guest under Spin; the
    // authority travels in the URI and `spin-full-url`.
    for gone in [
        "host",
        "keep-alive",
        "proxy-authorization",
        "upgrade",
        "connection",
    ] {
        assert!(h.get(gone).is_none(), "{gone} reached the guest: {v}");
    }
    let url = format!("{}/probe/echo/x?a=1", app.base);
    assert_eq!(h["spin-full-url"], url, "{v}");
    assert_eq!(v["uri"], url, "{v}");
}

#[test]
fn the_runtime_answers_its_well_known_paths_itself() {
    let app = start();
    let r = raw_exchange(
        &app,
        b"GET /.well-known/spin/health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&r).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 200 ok\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nok"), "{text}");
    assert!(!text.contains("content-type"), "{text}");
    let v = app.json("/.well-known/spin/info");
    assert_eq!(
        v,
        serde_json::json!({"name": "host-probe", "version": "0.1.0"})
    );
    let r = raw_exchange(
        &app,
        b"POST /.well-known/spin/other HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&r).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 404 not found\r\n"), "{text}");
    assert!(text.contains("content-length: 0\r\n"), "{text}");
}

#[test]
fn requests_spin_refuses_are_refused_the_same_way() {
    let app = start();
    // No route: an empty 404.
    let r = raw_exchange(
        &app,
        b"GET /nowhere HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&r).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 404 not found\r\n"), "{text}");
    assert!(text.contains("content-length: 0\r\n"), "{text}");
    // A header value that is not UTF-8: an empty 500, the guest never runs.
    let r = raw_exchange(
        &app,
        b"GET /probe/echo HTTP/1.1\r\nhost: x\r\nx-bad: \xff\xfe\r\nconnection: close\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&r).to_ascii_lowercase();
    assert!(
        text.starts_with("http/1.1 500 internal server error\r\n"),
        "{text}"
    );
    assert!(text.contains("content-length: 0\r\n"), "{text}");
    // No authority at all: the connection closes without an answer.
    let r = raw_exchange(
        &app,
        b"GET /probe/echo HTTP/1.1\r\nconnection: close\r\n\r\n",
    );
    assert!(r.is_empty(), "{}", String::from_utf8_lossy(&r));
    // The same request with its Host header is served.
    let r = raw_exchange(
        &app,
        b"GET /probe/echo HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    );
    assert!(String::from_utf8_lossy(&r).starts_with("HTTP/1.1 200"));
}
