//! Figure 7b: what one request costs, phase by phase — requests to the
//! data API that stop earlier, each from one connection for 4 s (wrk) —
//! and, on the local file, what a fresh connection and engine cost.

use std::time::{Duration, Instant};

use spinoff_e2e::*;

use crate::harness::Ctx;
use crate::load::{wrk_load, Load};
use crate::stats::ms;

/// Needs wrk. `fresh_costs`: also the statement-level costs of a fresh
/// connection (the host on a local file only).
pub fn request_phases(
    ctx: &Ctx,
    name: &str,
    n: usize,
    fresh_costs: bool,
) -> Vec<(&'static str, Load)> {
    let app = ctx.app;
    let mut out = Vec::new();
    // 7. What one request costs on this runtime, phase by phase: requests
    // to the data API that stop earlier, each from 1 connection for 4 s.
    let op = app
        .send_json(
            "POST",
            &format!("/data/v1/resources/native:src{n}/clones"),
            &ctx.h(),
            &json!({"target": format!("native:phases-{n}"), "mode": "copy"}),
        )
        .json();
    let id = op["id"].as_str().unwrap().to_string();
    while app
        .get(&format!("/data/v1/operations/{id}"), &ctx.h())
        .json()["status"]
        != "succeeded"
    {
        app.tick().unwrap();
    }
    let phases: [(&str, String, Option<&str>, u16); 4] = [
        (
            "404 from the router (instantiate, route)",
            "/data/v1/no-such-route".into(),
            None,
            404,
        ),
        (
            "401 unknown token (+ admin_token variable, key-value get)",
            format!("/data/v1/operations/{id}"),
            Some("Bearer spk_unknown"),
            401,
        ),
        (
            "404 unknown operation (+ SQLite open, engine open, one query)",
            "/data/v1/operations/op_unknown".into(),
            Some(ctx.auth.as_str()),
            404,
        ),
        (
            "200 finished clone (the status read)",
            format!("/data/v1/operations/{id}"),
            Some(ctx.auth.as_str()),
            200,
        ),
    ];
    for (what, path, auth, status) in phases {
        let url = format!("{}{path}", app.base);
        let r = app.get(
            &path,
            &auth.map(|a| vec![("authorization", a)]).unwrap_or_default(),
        );
        assert_eq!(r.status, status, "{what}: {}", r.body);
        let l = wrk_load(&url, auth, 1, 4, status == 200);
        println!(
            "| {name} | | request phases, 1 connection: {what} | {:.0} req/s, p50 {:.3} ms | | |",
            l.rate,
            ms(l.p50)
        );
        out.push((what, l));
    }
    if fresh_costs {
        fresh_connection_costs(&app.db_path(), "bench", &id);
    }
    out
}
/// A `Db` that counts and times the statements run through it.
struct Counting<'a> {
    inner: &'a engine::native::NativeDb,
    statements: std::cell::Cell<usize>,
    spent: std::cell::Cell<Duration>,
}

impl engine::Db for Counting<'_> {
    fn execute(
        &self,
        sql: &str,
        params: &[engine::Value],
    ) -> Result<Vec<engine::Row>, engine::DbError> {
        let t = Instant::now();
        let r = engine::Db::execute(self.inner, sql, params);
        self.statements.set(self.statements.get() + 1);
        self.spent.set(self.spent.get() + t.elapsed());
        r
    }
}

/// What the status read of a finished operation costs in SQLite, natively
/// (rusqlite, the same engine calls as the data API's handler), on a fresh
/// connection per request (as Spin opens one) and on one reused connection
/// (as the host's idle list gives): statements and time per phase, the mean
/// of 500 requests.
fn fresh_connection_costs(db_path: &std::path::Path, tenant: &str, id: &str) {
    use engine::native::{NativeDb, SystemEnv};
    const N: u32 = 500;
    let env = SystemEnv;
    let (mut open, mut engine_open, mut reads) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let (mut open_stmts, mut read_stmts) = (0, 0);
    for _ in 0..N {
        let t = Instant::now();
        let db = NativeDb::open(db_path).unwrap();
        open += t.elapsed();
        let c = Counting {
            inner: &db,
            statements: 0.into(),
            spent: Duration::ZERO.into(),
        };
        let t = Instant::now();
        let e = engine::Engine::open(&c, &env).unwrap();
        engine_open += t.elapsed();
        open_stmts = c.statements.get();
        let t = Instant::now();
        let op = e.operation(tenant, id).unwrap();
        assert!(!op.status.is_active());
        e.notifications_of(id).unwrap();
        reads += t.elapsed();
        read_stmts = c.statements.get() - open_stmts;
    }
    let db = NativeDb::open(db_path).unwrap();
    let e = engine::Engine::open(&db, &env).unwrap();
    let t = Instant::now();
    for _ in 0..N {
        e.operation(tenant, id).unwrap();
        e.notifications_of(id).unwrap();
    }
    let reused = t.elapsed();
    let us = |d: Duration| d.as_secs_f64() * 1e6 / N as f64;
    println!(
        "| native | | status read, fresh connection: open the file (µs) | {:.0} | | |",
        us(open)
    );
    println!(
        "| native | | status read, fresh connection: Engine::open, {open_stmts} statements: migration check, PRAGMAs (µs) | {:.0} | | |",
        us(engine_open)
    );
    println!(
        "| native | | status read, fresh connection: the {read_stmts} reads, first one parsing the schema (µs) | {:.0} | {:.0} (same reads, reused connection) | {:.1}× |",
        us(reads),
        us(reused),
        reads.as_secs_f64() / reused.as_secs_f64()
    );
}
