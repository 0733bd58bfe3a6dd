//! `spin:postgres/postgres@4.0.0` as the project's host serves it, against a
//! real PostgreSQL server: the probe guest (tests/guests/probe, `POST
//! /probe/pg`) runs statements on one connection and answers what the
//! interface gave it. Under real Spin the same guest and interface are
//! Spin's own; these tests pin the host to the same behaviour.

use std::sync::Arc;

use serde_json::{json, Value};
use spinoff_e2e::postgres::Postgres;
use spinoff_e2e::repo_root;
use spinoff_host::{Host, HostOptions};

struct Probe {
    base: String,
    agent: ureq::Agent,
    _rt: tokio::runtime::Runtime,
    _host: Arc<Host>,
    _state: tempfile::TempDir,
}

fn start(pg: &Postgres) -> Probe {
    let state = tempfile::tempdir().unwrap();
    let mut opts = HostOptions::new(repo_root().join("host/tests/fixtures/spin.toml"), state.path());
    opts.cache_dir = Some(repo_root().join("target/spinoff-host-cache"));
    opts.variables.insert("secret_thing".into(), "x".into());
    opts.variables.insert("pg_port".into(), pg.port.to_string());
    opts.inherit_stdio = false;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let host = Arc::new(Host::new(opts).expect("host starts"));
    let (addr, _task) = rt
        .block_on(spinoff_host::server::bind(host.clone(), "127.0.0.1:0".parse().unwrap()))
        .unwrap();
    Probe {
        base: format!("http://{addr}"),
        agent: ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into(),
        _rt: rt,
        _host: host,
        _state: state,
    }
}

impl Probe {
    /// Run `statements` on one connection to `address` through `route`.
    fn run_at(&self, route: &str, address: &str, statements: Value) -> (u16, Value) {
        let mut r = self
            .agent
            .post(format!("{}{route}", self.base))
            .send(json!({"address": address, "statements": statements}).to_string())
            .unwrap();
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
    fn run(&self, address: &str, statements: Value) -> (u16, Value) {
        self.run_at("/probe/pg", address, statements)
    }
}

fn q(sql: &str, params: Value) -> Value {
    json!({"sql": sql, "params": params, "query": true})
}
fn x(sql: &str, params: Value) -> Value {
    json!({"sql": sql, "params": params, "query": false})
}

fn server() -> Option<Postgres> {
    match Postgres::start() {
        Ok(pg) => Some(pg),
        Err(why) if std::env::var("SPINOFF_REQUIRE_SERVICES").as_deref() == Ok("1") => {
            panic!("{why}, and SPINOFF_REQUIRE_SERVICES=1")
        }
        Err(why) => {
            eprintln!("SKIPPED: {why}");
            None
        }
    }
}

#[test]
fn values_round_trip_and_statements_share_one_connection() {
    let Some(pg) = server() else { return };
    let url = pg.create_database();
    let app = start(&pg);
    let (s, r) = app.run(
        &url,
        json!([
            x("CREATE TABLE t (id BIGINT PRIMARY KEY, name TEXT, flag BOOLEAN, n INTEGER, f DOUBLE PRECISION, b BYTEA, j JSONB)", json!([])),
            x("INSERT INTO t VALUES ($1, $2, $3, $4, $5, $6, $7), ($8, NULL, NULL, NULL, NULL, NULL, NULL)", json!([
                {"int64": 9007199254740993i64}, {"str": "ünï ✓"}, {"boolean": true}, {"int32": -7},
                {"floating64": 1.5}, {"binary": [0, 255, 7]}, {"jsonb": {"a": [1, "two"]}},
                {"int64": 2}
            ])),
            q("SELECT id, name, flag, n, f, b, j FROM t ORDER BY id", json!([])),
            // A NULL parameter fits whatever type the server inferred.
            q("SELECT count(*) FROM t WHERE name IS NOT DISTINCT FROM $1", json!([null])),
            // sum() over BIGINT is a NUMERIC: a decimal, as Spin gives it.
            q("SELECT sum(id) FROM t", json!([])),
        ]),
    );
    assert_eq!(s, 200, "{r}");
    assert_eq!(r[1], json!(2), "execute answers the rows it changed");
    assert_eq!(
        r[2]["rows"],
        json!([
            [{"int64": 2}, null, null, null, null, null, null],
            [{"int64": 9007199254740993i64}, {"str": "ünï ✓"}, {"boolean": true}, {"int32": -7},
             {"floating64": 1.5}, {"binary": [0, 255, 7]}, {"jsonb": {"a": [1, "two"]}}],
        ])
    );
    assert_eq!(r[2]["columns"][0], json!(["id", "DbDataType::Int64"]));
    assert_eq!(r[2]["columns"][6], json!(["j", "DbDataType::Jsonb"]));
    assert_eq!(r[3]["rows"], json!([[{"int64": 1}]]));
    assert_eq!(r[4]["rows"], json!([[{"other": "DbValue::Decimal(\"9007199254740995\")"}]]));

    // A transaction spans statements on the one connection.
    let (s, r) = app.run(
        &url,
        json!([
            x("BEGIN", json!([])),
            x("INSERT INTO t (id) VALUES (3)", json!([])),
            q("SELECT count(*) FROM t", json!([])),
            x("ROLLBACK", json!([])),
            q("SELECT count(*) FROM t", json!([])),
        ]),
    );
    assert_eq!(s, 200, "{r}");
    assert_eq!(r[2]["rows"], json!([[{"int64": 3}]]));
    assert_eq!(r[4]["rows"], json!([[{"int64": 2}]]));
}

#[test]
fn a_connection_dropped_inside_a_transaction_leaves_nothing_behind() {
    let Some(pg) = server() else { return };
    let url = pg.create_database();
    let app = start(&pg);
    let (s, r) = app.run(&url, json!([x("CREATE TABLE t (id BIGINT PRIMARY KEY)", json!([]))]));
    assert_eq!(s, 200, "{r}");
    // BEGIN, write, then the request ends without COMMIT; the connection
    // goes back to the pool. Many times, so the pool reuses connections.
    for i in 0..40 {
        let (s, r) = app.run(
            &url,
            json!([x("BEGIN", json!([])), x("INSERT INTO t VALUES ($1)", json!([{"int64": i}]))]),
        );
        assert_eq!(s, 200, "{r}");
        let (s, r) = app.run(
            &url,
            json!([q("SELECT count(*), count(*) FILTER (WHERE now() = statement_timestamp()) FROM t", json!([]))]),
        );
        assert_eq!(s, 200, "{r}");
        assert_eq!(
            r[0]["rows"],
            json!([[{"int64": 0}, {"int64": 0}]]),
            "a later request saw an uncommitted write or ran inside an old transaction"
        );
    }
}

#[test]
fn server_errors_reach_the_guest_with_their_sqlstate() {
    let Some(pg) = server() else { return };
    let url = pg.create_database();
    let app = start(&pg);
    let (s, r) = app.run(
        &url,
        json!([
            x("CREATE TABLE t (id BIGINT PRIMARY KEY)", json!([])),
            x("INSERT INTO t VALUES (1)", json!([])),
            x("INSERT INTO t VALUES (1)", json!([])),
        ]),
    );
    assert_eq!(s, 409);
    let text = r.as_str().unwrap();
    assert!(text.contains("QueryFailed(QueryError::DbError(") && text.contains("code: \"23505\""), "{text}");
    let (s, r) = app.run(&url, json!([q("SELEKT 1", json!([]))]));
    assert_eq!(s, 409);
    assert!(r.as_str().unwrap().contains("code: \"42601\""), "{r}");
    // A parameter the server typed otherwise is refused, never coerced.
    let (s, r) = app.run(&url, json!([q("SELECT id FROM t WHERE id = $1", json!([{"str": "1"}]))]));
    assert_eq!(s, 409, "{r}");
    // A database that is not there: the server's error, not a trap.
    let (s, r) = app.run(&pg.url("nope"), json!([q("SELECT 1", json!([]))]));
    assert_eq!(s, 409);
    assert!(r.as_str().unwrap().contains("ConnectionFailed"), "{r}");
}

#[test]
fn only_allowed_outbound_hosts_are_reached() {
    let Some(pg) = server() else { return };
    let url = pg.create_database();
    let app = start(&pg);
    // The probe may reach 127.0.0.1 on the variable's port only.
    let other = url.replace(&format!(":{}/", pg.port), ":1/");
    let (s, r) = app.run(&other, json!([q("SELECT 1", json!([]))]));
    assert_eq!(s, 409);
    assert!(r.as_str().unwrap().contains("is not permitted"), "{r}");
    let (s, r) = app.run(&url.replace("127.0.0.1", "localhost"), json!([q("SELECT 1", json!([]))]));
    assert_eq!(s, 409);
    assert!(r.as_str().unwrap().contains("is not permitted"), "{r}");
    // A component without allowed_outbound_hosts reaches nothing.
    let (s, r) = app.run_at("/bare/pg", &url, json!([q("SELECT 1", json!([]))]));
    assert_eq!(s, 409);
    assert!(r.as_str().unwrap().contains("is not permitted"), "{r}");
    let (s, r) = app.run(&url, json!([q("SELECT 1::bigint", json!([]))]));
    assert_eq!((s, r[0]["rows"].clone()), (200, json!([[{"int64": 1}]])));
}
