//! `db`: a transaction the database gave up on runs again and lands once.

mod common;
use common::*;
use engine::*;

/// A database that gives up on the first commits it sees, as a remote
/// libSQL server does on `TRANSACTION_TIMEOUT` (it rolls the transaction
/// back): the engine runs the transaction again, and the write lands once.
struct GivesUp<'a> {
    inner: &'a common::TestDb,
    refusals: std::cell::Cell<u32>,
}

impl engine::Db for GivesUp<'_> {
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
        self.inner.execute(sql, params)
    }
    fn commit(&self) -> Result<(), DbError> {
        if self.refusals.get() > 0 {
            self.refusals.set(self.refusals.get() - 1);
            self.inner.rollback()?;
            return Err(DbError::Unavailable(
                "Hrana: TRANSACTION_TIMEOUT Transaction timed out".into(),
            ));
        }
        self.inner.commit()
    }
}

#[test]
fn a_transaction_the_database_gave_up_on_runs_again_and_lands_once() {
    let fx = Fx::new();
    fx.engine()
        .create_container("native", "acme", "db", &serde_json::json!({}))
        .unwrap();
    let flaky = GivesUp {
        inner: &fx.db,
        refusals: std::cell::Cell::new(2),
    };
    let e = Engine::open(&flaky, &fx.env).unwrap();
    let done = e
        .write("native", "acme", "db", &[put("c", "k", "{\"v\":1}")])
        .unwrap();
    assert_eq!(flaky.refusals.get(), 0, "both refusals were met");
    let c = e.container("native", "acme", "db").unwrap();
    let versions = e.history(&c, "c", "k", None, 10).unwrap();
    assert_eq!(versions.len(), 1, "written once: {versions:?}");
    assert_eq!(versions[0].lsn, done.lsn);
    assert_eq!(
        e.head_lsn().unwrap(),
        done.lsn,
        "no LSN taken by the failed runs"
    );

    // More refusals than attempts: a retryable error, nothing committed.
    flaky.refusals.set(engine::db::TRANSACTION_ATTEMPTS);
    let err = e
        .write("native", "acme", "db", &[put("c", "k", "{\"v\":2}")])
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert!(err.is_retryable() && err.retry_after_s() == Some(1));
    assert_eq!(e.history(&c, "c", "k", None, 10).unwrap().len(), 1);
}

#[test]
fn an_insert_expecting_no_key_there_skips_one_that_is_and_the_transaction_goes_on() {
    // On PostgreSQL the plain insert fails in its savepoint and runs again
    // skipping the key; SQLite skips it at once. Either way one row is
    // written and the transaction can still commit.
    let fx = Fx::new();
    let db: &dyn engine::Db = &fx.db;
    db.execute("CREATE TABLE skip_test (k TEXT PRIMARY KEY)", &[]).unwrap();
    db.execute("INSERT INTO skip_test (k) VALUES ('a')", &[]).unwrap();
    db.begin(TxMode::Write).unwrap();
    let insert = "INSERT INTO skip_test (k) VALUES ('a'), ('b')";
    for expect_none in [true, false] {
        let written = engine::dialect::insert_skipping_present(db, insert, &[], expect_none).unwrap();
        let want = if expect_none { 1 } else { 0 };
        assert_eq!(written, want, "expect_none = {expect_none}");
    }
    let fresh = engine::dialect::insert_skipping_present(db, "INSERT INTO skip_test (k) VALUES ('c')", &[], true);
    assert_eq!(fresh.unwrap(), 1);
    db.commit().unwrap();
    let rows = db.execute("SELECT k FROM skip_test ORDER BY k", &[]).unwrap();
    let keys: Vec<String> = rows.iter().map(|r| r.text(0).unwrap()).collect();
    assert_eq!(keys, ["a", "b", "c"]);
}
