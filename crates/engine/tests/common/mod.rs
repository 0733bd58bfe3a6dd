#![allow(dead_code)]
//! Shared helpers: an engine over a temporary SQLite file and a fake clock.

use engine::native::{FakeEnv, NativeDb};
use engine::native_pg::NativePgDb;
use engine::*;

/// The database a fixture runs on: a temporary SQLite file, or, where
/// `SPINOFF_TEST_POSTGRES` names a PostgreSQL server (an admin URL,
/// `postgres://user@host:port/postgres`), a new database on it.
pub enum TestDb {
    Sqlite(NativeDb),
    Postgres(Box<NativePgDb>),
}

impl TestDb {
    fn inner(&self) -> &dyn Db {
        match self {
            TestDb::Sqlite(d) => d,
            TestDb::Postgres(d) => &**d,
        }
    }
}

impl Db for TestDb {
    fn dialect(&self) -> Dialect {
        self.inner().dialect()
    }
    fn execute(&self, sql: &str, params: &[Value]) -> std::result::Result<Vec<Row>, DbError> {
        self.inner().execute(sql, params)
    }
    fn select(&self, sql: &str, params: &[Value]) -> std::result::Result<Vec<Row>, DbError> {
        self.inner().select(sql, params)
    }
    fn changes(&self) -> std::result::Result<u64, DbError> {
        self.inner().changes()
    }
    fn last_insert_rowid(&self) -> std::result::Result<i64, DbError> {
        self.inner().last_insert_rowid()
    }
    fn begin(&self, mode: TxMode) -> std::result::Result<(), DbError> {
        self.inner().begin(mode)
    }
    fn commit(&self) -> std::result::Result<(), DbError> {
        self.inner().commit()
    }
    fn rollback(&self) -> std::result::Result<(), DbError> {
        self.inner().rollback()
    }
    fn page_size(&self) -> Option<i64> {
        self.inner().page_size()
    }
    fn maintain(&self, task: Maintenance) -> std::result::Result<(), DbError> {
        self.inner().maintain(task)
    }
    fn lock_wait(&self, wait: LockWait) -> std::result::Result<(), DbError> {
        self.inner().lock_wait(wait)
    }
    fn yield_to_writers(&self) {
        self.inner().yield_to_writers()
    }
    fn writers_waiting(&self) -> bool {
        self.inner().writers_waiting()
    }
}

/// Whether the fixtures run on PostgreSQL (`SPINOFF_TEST_POSTGRES`).
pub fn on_postgres() -> bool {
    std::env::var_os("SPINOFF_TEST_POSTGRES").is_some()
}

/// A property test's case count: `n` on SQLite, a fifth of it (at least
/// 10) on PostgreSQL, where every case pays a database of its own and its
/// migrations (200 cases took six minutes of CI). The SQL is the same in
/// both; the SQLite run keeps the full count.
pub fn cases(n: u32) -> u32 {
    if on_postgres() {
        (n / 5).max(10)
    } else {
        n
    }
}

/// Whether a test of SQLite's own storage (page sizes, query plans,
/// `user_version`) skips here: on PostgreSQL it says so and skips.
pub fn sqlite_only(what: &str) -> bool {
    if on_postgres() {
        eprintln!("SKIPPED on PostgreSQL: {what} is about SQLite's storage");
    }
    on_postgres()
}

/// A new database on the server `SPINOFF_TEST_POSTGRES` names; its URL.
fn new_pg_database() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let admin = std::env::var("SPINOFF_TEST_POSTGRES").unwrap();
    let name = format!("t_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
    let db = NativePgDb::open(&admin).expect("SPINOFF_TEST_POSTGRES answers");
    db.execute(&format!("CREATE DATABASE {name}"), &[]).unwrap();
    let (base, _) = admin.rsplit_once('/').expect("an admin URL ends in /dbname");
    format!("{base}/{name}")
}

pub const T0: i64 = 1_790_000_000_000_000; // 2026-09-21, µs

pub struct Fx {
    pub dir: tempfile::TempDir,
    pub db: TestDb,
    pub env: FakeEnv,
    /// The PostgreSQL database's URL, on PostgreSQL.
    pub pg_url: Option<String>,
}

impl Fx {
    pub fn new() -> Fx {
        let dir = tempfile::tempdir().unwrap();
        if on_postgres() {
            let url = new_pg_database();
            return Fx {
                dir,
                db: TestDb::Postgres(Box::new(NativePgDb::open(&url).unwrap())),
                env: FakeEnv::new(T0),
                pg_url: Some(url),
            };
        }
        let db = NativeDb::open(&dir.path().join("db.sqlite")).unwrap();
        Fx {
            dir,
            db: TestDb::Sqlite(db),
            env: FakeEnv::new(T0),
            pg_url: None,
        }
    }
    /// A database on SQLite's default 4 KiB pages, as a remote libSQL
    /// server has them (and as files made before the engine chose 16 KiB):
    /// the file gets its pages and a first table before the engine sees
    /// it, so the engine cannot choose its page size.
    pub fn on_small_pages() -> Fx {
        let dir = tempfile::tempdir().unwrap();
        let db = NativeDb::open(&dir.path().join("db.sqlite")).unwrap();
        for sql in [
            "PRAGMA page_size = 4096",
            "PRAGMA journal_mode = WAL",
            "CREATE TABLE made_elsewhere (x)",
        ] {
            db.execute(sql, &[]).unwrap();
        }
        Fx {
            dir,
            db: TestDb::Sqlite(db),
            env: FakeEnv::new(T0),
            pg_url: None,
        }
    }
    pub fn engine(&self) -> Engine<'_> {
        Engine::open(&self.db, &self.env).unwrap()
    }
    /// A second connection to the same file (another component instance).
    pub fn other_connection(&self) -> TestDb {
        match &self.pg_url {
            Some(url) => TestDb::Postgres(Box::new(NativePgDb::open(url).unwrap())),
            None => TestDb::Sqlite(NativeDb::open(&self.dir.path().join("db.sqlite")).unwrap()),
        }
    }
}

pub fn put(c: &str, k: &str, body: &str) -> Write {
    Write::Put {
        collection: c.into(),
        key: k.into(),
        body: body.into(),
    }
}

pub fn del(c: &str, k: &str) -> Write {
    Write::Delete {
        collection: c.into(),
        key: k.into(),
    }
}

pub fn clone_req(
    source: &Container,
    target: &str,
    strategy: Strategy,
    history: bool,
) -> CloneRequest {
    CloneRequest {
        family: "native".into(),
        kind: "clone".into(),
        tenant: source.tenant.clone(),
        source: source.clone(),
        target_family: "native".into(),
        target_name: target.into(),
        target_spec: serde_json::json!({}),
        strategy,
        history,
        collections: None,
        exclusive_key: None,
        notify: vec![],
        meta: serde_json::json!({}),
        idempotency: None,
        mode: CloneMode::Copy,
        hydrate: false,
        ttl_us: None,
        mask: None,
    }
}

/// A request for a copy-on-write branch.
pub fn branch_req(
    source: &Container,
    target: &str,
    strategy: Strategy,
    history: bool,
) -> CloneRequest {
    CloneRequest {
        mode: CloneMode::Branch,
        ..clone_req(source, target, strategy, history)
    }
}

/// Every version of a container: (collection, key, lsn, deleted, body).
pub fn all_versions(e: &Engine, c: &Container) -> Vec<(String, String, i64, bool, Option<String>)> {
    e.db()
        .execute(
            "SELECT collection, key, lsn, deleted, body FROM records WHERE container = ?1 ORDER BY collection, key, lsn",
            &[c.id.into()],
        )
        .unwrap()
        .iter()
        .map(|r| (r.text(0).unwrap(), r.text(1).unwrap(), r.i64(2).unwrap(), r.bool(3).unwrap(), r.opt_text(4).unwrap()))
        .collect()
}

/// Live records as of `at`, through the export pages.
pub fn export(e: &Engine, c: &Container, at: i64) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut after: Option<(String, String)> = None;
    loop {
        let page = e
            .export_page(
                c,
                at,
                after.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
                7,
            )
            .unwrap();
        if page.is_empty() {
            return out;
        }
        for v in &page {
            out.push((v.collection.clone(), v.key.clone(), v.body.clone().unwrap()));
        }
        let last = page.last().unwrap();
        after = Some((last.collection.clone(), last.key.clone()));
    }
}

/// Run an operation to the end with `worker`, `limit` records per chunk.
pub fn run_to_end(e: &Engine, op: &str, limit: Option<i64>) -> Operation {
    let now = e.operation_by_id(op).unwrap().unwrap();
    if !now.status.is_active() {
        return now;
    }
    assert!(e.claim(op, "w").unwrap(), "the lease is free");
    for _ in 0..100_000 {
        let o = e.step(op, "w", limit).unwrap();
        if o.status != Status::InProgress {
            return e.operation_by_id(op).unwrap().unwrap();
        }
    }
    panic!("operation never ended");
}

/// A source `acme/src` with `n` records in collections a, b and c.
pub fn seeded(e: &Engine, n: usize) -> Container {
    e.create_container("native", "acme", "src", &serde_json::json!({}))
        .unwrap();
    let writes: Vec<Write> = (0..n)
        .map(|i| {
            put(
                ["a", "b", "c"][i % 3],
                &format!("k{i:05}"),
                &format!("{{\"i\":{i}}}"),
            )
        })
        .collect();
    e.write("native", "acme", "src", &writes).unwrap();
    e.container("native", "acme", "src").unwrap()
}

/// Verify `c` to the end (an fsck): its report must be clean.
pub fn clean(e: &Engine, c: &Container) {
    let op = e.verify(c).unwrap();
    let op = run_to_end(e, &op.id, Some(7));
    assert_eq!(op.meta["report"]["clean"], true, "{}", op.meta["report"]);
}
