//! Property: random interleavings of source writes, chunk steps, lease
//! expiries and takeovers, stale workers, aborted transactions, connections
//! that die mid-transaction, and retention passes always end with the clone
//! equal, record for record, to the source as of the snapshot LSN — with and
//! without history, with and without a collection filter.

mod common;
use std::cell::Cell;
use std::collections::BTreeMap;

use common::*;
use engine::native::NativeDb;
use engine::{Config, Db, DbError, Engine, ErrorKind, Row, Status, Value, Write};
use proptest::prelude::*;

/// A Db that fails (or panics, to simulate a crash) at its n-th statement.
struct Faulty<'a> {
    inner: &'a dyn Db,
    countdown: Cell<i64>,
    panic: bool,
}

impl Db for Faulty<'_> {
    fn dialect(&self) -> engine::Dialect {
        self.inner.dialect()
    }
    fn changes(&self) -> Result<u64, DbError> {
        self.inner.changes()
    }
    fn begin(&self, mode: engine::TxMode) -> Result<(), DbError> {
        engine::dialect::begin(self, mode, true)
    }
    fn execute(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        let n = self.countdown.get();
        self.countdown.set(n - 1);
        if n == 0 && sql != "ROLLBACK" {
            if self.panic {
                panic!("simulated crash");
            }
            return Err(DbError::Other("injected failure".into()));
        }
        self.inner.execute(sql, params)
    }
}

#[derive(Debug, Clone)]
enum Action {
    /// Writes to the source: (collection index, key index, Some(value) or delete).
    Write(Vec<(u8, u8, Option<u16>)>),
    /// A chunk by worker 0 or 1 of at most n records (claiming first).
    Step(u8, i64),
    /// The clock passes the lease: the other worker may take over.
    ExpireLease,
    /// A step whose transaction fails at its k-th statement.
    Abort(i64),
    /// A step on a fresh connection that dies (panics) at its k-th statement.
    Crash(i64),
    /// A retention pass with a short window.
    Prune,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        3 => prop::collection::vec((0u8..3, 0u8..12, prop::option::weighted(0.8, 0u16..1000)), 1..6).prop_map(Action::Write),
        4 => (0u8..2, 1i64..7).prop_map(|(w, n)| Action::Step(w, n)),
        1 => Just(Action::ExpireLease),
        1 => (0i64..12).prop_map(Action::Abort),
        1 => (0i64..12).prop_map(Action::Crash),
        1 => Just(Action::Prune),
    ]
}

const COLLECTIONS: [&str; 3] = ["alpha", "beta", "gamma"];

fn writes(batch: &[(u8, u8, Option<u16>)]) -> Vec<Write> {
    batch
        .iter()
        .map(|(c, k, v)| match v {
            Some(v) => put(
                COLLECTIONS[*c as usize],
                &format!("key-{k:02}"),
                &format!("{{\"v\":{v}}}"),
            ),
            None => del(COLLECTIONS[*c as usize], &format!("key-{k:02}")),
        })
        .collect()
}

fn run(
    pre: Vec<Vec<(u8, u8, Option<u16>)>>,
    actions: Vec<Action>,
    history: bool,
    filter: bool,
) -> Result<(), TestCaseError> {
    let fx = Fx::new();
    let path = fx.dir.path().join("db.sqlite");
    let cfg = Config {
        lease_us: 1_000_000,
        ..Config::default()
    };
    let e = fx.engine().with_config(cfg.clone());
    let src = e
        .create_container("native", "t", "src", &serde_json::json!({}))
        .unwrap();
    for b in &pre {
        let _ = e.write("native", "t", "src", &writes(b));
        fx.env.advance(1_000);
    }
    let mut req = clone_req(&src, "dst", engine::Strategy::Now, history);
    if filter {
        req.collections = Some(vec!["alpha".into(), "gamma".into()]);
    }
    let (op, _) = e.create_operation(&req).unwrap();
    // The source's versions up to the snapshot, as they stand when the copy
    // is accepted (pruning may shorten the source's history once it ends).
    let source_at_snapshot: Vec<_> = all_versions(&e, &src)
        .into_iter()
        .filter(|v| v.2 <= op.snapshot_lsn)
        .collect();
    let workers = ["w0", "w1"];
    for a in actions {
        match a {
            Action::Write(b) => {
                let _ = e.write("native", "t", "src", &writes(&b));
            }
            Action::Step(w, n) => {
                let w = workers[w as usize];
                if e.claim(&op.id, w).unwrap() {
                    match e.step(&op.id, w, Some(n)) {
                        Ok(_) => {}
                        Err(err) => prop_assert!(
                            matches!(err.kind, ErrorKind::InvalidState { .. }),
                            "{err:?}"
                        ),
                    }
                } else {
                    // Without the lease a step commits nothing.
                    let before = e.operation("t", &op.id).unwrap();
                    if before.status == Status::InProgress {
                        prop_assert_eq!(
                            e.step(&op.id, w, Some(n)).unwrap_err().kind,
                            ErrorKind::LeaseLost
                        );
                        prop_assert_eq!(
                            e.operation("t", &op.id).unwrap().records_copied,
                            before.records_copied
                        );
                    }
                }
            }
            Action::ExpireLease => fx.env.advance(cfg.lease_us + 1),
            Action::Abort(k) => {
                let before = e.operation("t", &op.id).unwrap();
                let faulty = Faulty {
                    inner: &fx.db,
                    countdown: Cell::new(i64::MAX),
                    panic: false,
                };
                let fe = Engine::open(&faulty, &fx.env)
                    .unwrap()
                    .with_config(cfg.clone());
                faulty.countdown.set(k);
                if fe.claim(&op.id, "w0").unwrap_or(false) {
                    let r = fe.step(&op.id, "w0", Some(3));
                    if r.is_err() {
                        let after = e.operation("t", &op.id).unwrap();
                        prop_assert_eq!(after.records_copied, before.records_copied);
                    }
                }
            }
            Action::Crash(k) => {
                let conn = NativeDb::open(&path).unwrap();
                let faulty = Faulty {
                    inner: &conn,
                    countdown: Cell::new(i64::MAX),
                    panic: true,
                };
                let crashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let fe = Engine::open(&faulty, &fx.env)
                        .unwrap()
                        .with_config(cfg.clone());
                    faulty.countdown.set(k);
                    if fe.claim(&op.id, "crasher").unwrap() {
                        faulty.countdown.set(k);
                        let _ = fe.step(&op.id, "crasher", Some(4));
                    }
                }));
                drop(conn); // the process "dies": SQLite rolls back the open transaction
                let _ = crashed;
            }
            Action::Prune => {
                fx.env.advance(500);
                let _ = e.prune_step(1_000, 5);
            }
        }
        fx.env.advance(100);
    }
    // Finish: any worker, after leases expire.
    fx.env.advance(cfg.lease_us + 1);
    let done = run_to_end(&e, &op.id, Some(5));
    prop_assert_eq!(done.status, Status::Succeeded);
    let dst = e.container("native", "t", "dst").unwrap();
    let src = e.container("native", "t", "src").unwrap();
    let keep = |c: &str| !filter || c != "beta";
    // Live state: the clone equals the source as of the snapshot: per key,
    // the newest version at or below it, when not a deletion.
    let _ = &src;
    let mut newest: BTreeMap<(String, String), (bool, Option<String>)> = BTreeMap::new();
    for v in &source_at_snapshot {
        newest.insert((v.0.clone(), v.1.clone()), (v.3, v.4.clone()));
    }
    let want: Vec<_> = newest
        .into_iter()
        .filter(|((c, _), (deleted, _))| keep(c) && !deleted)
        .map(|((c, k), (_, b))| (c, k, b.unwrap()))
        .collect();
    prop_assert_eq!(export(&e, &dst, i64::MAX), want);
    if history {
        // Every retained version up to the snapshot, record for record.
        let floor = dst.floor_lsn;
        let want: Vec<_> = source_at_snapshot
            .into_iter()
            .filter(|v| keep(&v.0) && v.2 >= floor)
            .collect();
        let got: Vec<_> = all_versions(&e, &dst)
            .into_iter()
            .filter(|v| v.2 >= floor)
            .collect();
        prop_assert_eq!(got, want);
    } else {
        prop_assert!(all_versions(&e, &dst).iter().all(|v| !v.3));
    }
    // Counters and stats agree with the rows.
    let rows = all_versions(&e, &dst).len() as i64;
    prop_assert_eq!(done.records_copied, rows);
    let stats = e.collections(&dst).unwrap();
    prop_assert_eq!(stats.iter().map(|s| s.versions).sum::<i64>(), rows);
    let live = export(&e, &dst, i64::MAX).len() as i64;
    prop_assert_eq!(stats.iter().map(|s| s.records).sum::<i64>(), live);
    let mut by_collection: BTreeMap<String, i64> = BTreeMap::new();
    for r in export(&e, &dst, i64::MAX) {
        *by_collection.entry(r.0).or_default() += 1;
    }
    for s in stats {
        prop_assert_eq!(by_collection.get(&s.name).copied().unwrap_or(0), s.records);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn the_clone_equals_the_source_as_of_its_snapshot(
        pre in prop::collection::vec(prop::collection::vec((0u8..3, 0u8..12, prop::option::weighted(0.8, 0u16..1000)), 1..8), 1..8),
        actions in prop::collection::vec(action(), 0..40),
        history in any::<bool>(),
        filter in any::<bool>(),
    ) {
        run(pre, actions, history, filter)?;
    }
}
