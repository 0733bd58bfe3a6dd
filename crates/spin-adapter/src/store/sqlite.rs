//! The engine's `Db` on `spin_sdk::sqlite` (database `default`: a local
//! file or a remote libSQL server, as the runtime config says).

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use engine::{Db, DbError, LockWait, Maintenance, Row, TxMode, Value};
use spin_sdk::sqlite::{Connection, Error as SqlError, Value as SqlValue};

use crate::retry::{Next, Statement, Tries};

/// A write transaction never starts on a connection older than this. sqld
/// takes the write lock back from a connection that has held it, across
/// transactions, for a few seconds while another waits (its statements then
/// fail with SQLITE_INTERRUPT): a request that writes in many short
/// transactions (a staged import) would lose every one after that.
const WRITER_LIFETIME: Duration = Duration::from_millis(1000);

/// What this connection knows of itself, changed as statements run.
#[derive(Debug, Clone, Copy)]
struct Session {
    /// When the connection was opened (see [`WRITER_LIFETIME`]).
    opened_at: Instant,
    /// Between `begin` and `commit`/`rollback`.
    in_tx: bool,
    /// The server gave up on this connection's stream: the next statement
    /// outside a transaction, or the rollback, starts a fresh one.
    poisoned: bool,
}

/// What this connection knows of its backend.
#[derive(Debug, Clone, Copy, Default)]
struct Backend {
    /// A PRAGMA was refused: the backend is remote.
    remote: bool,
    /// The lock wait before [`LockWait::Never`], to restore.
    saved_wait: Option<i64>,
    /// [`LockWait::Never`] is in force: a busy database is answered at once.
    never_wait: bool,
}

/// One Spin SQLite connection: a local file or a remote libSQL database,
/// whichever the runtime config names. The guest cannot ask which, so file
/// maintenance is attempted and a refusal ([`DbError::Unsupported`], what a
/// libSQL server answers to PRAGMAs) is the sign of a remote backend: the
/// connection stops trying for the rest of its life.
///
/// When a statement runs again is [`crate::retry`]'s decision, in one
/// place; this type carries it out (sleeps, fresh connections).
pub struct SqliteDb {
    /// Replaced when the server gave up on it, and before a write
    /// transaction on one older than [`WRITER_LIFETIME`].
    conn: RefCell<Connection>,
    session: Cell<Session>,
    backend: Cell<Backend>,
    /// The worker's connection: it lets waiting requests go first
    /// ([`crate::turns`]); a request's announces its waits.
    background: bool,
    /// This request's mark while it waits for or holds the write lock.
    announced: Cell<Option<i64>>,
}

impl SqliteDb {
    /// Open database `default`.
    pub fn open() -> Result<SqliteDb, engine::Error> {
        Connection::open_default()
            .map(|conn| SqliteDb {
                conn: RefCell::new(conn),
                session: Cell::new(Session {
                    opened_at: Instant::now(),
                    in_tx: false,
                    poisoned: false,
                }),
                backend: Cell::new(Backend::default()),
                background: false,
                announced: Cell::new(None),
            })
            .map_err(|e| {
                engine::Error::new(
                    engine::ErrorKind::Storage,
                    format!("opening SQLite database default: {e:?}"),
                )
            })
    }
}

impl SqliteDb {
    /// The worker's connection: before each chunk it lets requests that
    /// wait for the write lock go first ([`crate::turns`]).
    pub fn background(mut self) -> SqliteDb {
        self.background = true;
        self
    }

    /// A request's write transaction on a local file, while the worker is
    /// at work: say so before waiting for the lock ([`crate::turns`]), so
    /// the worker lets it go before its next chunk. No statement is added:
    /// a remote server decides how writers wait, and is left alone.
    fn take_turn(&self) {
        if self.background || self.backend.get().never_wait || self.backend.get().remote {
            return;
        }
        if crate::turns::worker_active() {
            self.announced.set(crate::turns::announce());
        }
    }

    /// The transaction ended: a mark this request left goes.
    fn end_turn(&self) {
        if let Some(mark) = self.announced.take() {
            crate::turns::withdraw(mark);
        }
    }
}

fn to_sql(v: &Value) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Integer(i) => SqlValue::Integer(*i),
        Value::Real(f) => SqlValue::Real(*f),
        Value::Text(s) => SqlValue::Text(s.clone()),
        Value::Blob(b) => SqlValue::Blob(b.clone()),
    }
}

fn from_sql(v: &SqlValue) -> Value {
    match v {
        SqlValue::Null => Value::Null,
        SqlValue::Integer(i) => Value::Integer(*i),
        SqlValue::Real(f) => Value::Real(*f),
        SqlValue::Text(s) => Value::Text(s.clone()),
        SqlValue::Blob(b) => Value::Blob(b.clone()),
    }
}

/// Spin's interface reports every backend error as `io(message)`: the
/// message is all there is to classify. SQLite's own messages (a local
/// file) and libSQL's Hrana error codes (a remote server) are told apart
/// here, and nowhere else.
fn map_err(e: SqlError) -> DbError {
    match e {
        SqlError::Io(m) => {
            let l = m.to_ascii_lowercase();
            if l.contains("database is locked") || l.contains("database is busy") {
                DbError::Busy(m)
            } else if l.contains("transaction_timeout")
                // sqld interrupts a transaction that holds the write lock
                // while another writer waits: rolled back, safe to rerun.
                || l.contains("sqlite_interrupt")
                || l.contains("interrupted")
                || l.contains("stream_expired")
                || l.contains("stream expired")
                || l.contains("transaction timed out")
                // sqld has no connection free within a second (HTTP 429):
                // nothing ran.
                || l.contains("timed out while opening database connection")
                || l.contains("too many requests")
                || l.contains("connection refused")
                || l.contains("connection reset")
                || l.contains("broken pipe")
            {
                DbError::Unavailable(m)
            } else if l.contains("unsupported statement") || l.contains("sql_parse_error") {
                DbError::Unsupported(m)
            } else if l.contains("constraint") {
                DbError::Constraint(m)
            } else {
                DbError::Other(m)
            }
        }
        SqlError::DatabaseFull => DbError::Other("database is full".into()),
        other => DbError::Other(format!("{other:?}")),
    }
}

impl SqliteDb {
    fn update_session(&self, f: impl FnOnce(&mut Session)) {
        let mut s = self.session.get();
        f(&mut s);
        self.session.set(s);
    }

    fn update_backend(&self, f: impl FnOnce(&mut Backend)) {
        let mut b = self.backend.get();
        f(&mut b);
        self.backend.set(b);
    }

    /// A fresh connection in place of the current one.
    fn reconnect(&self) -> Result<(), DbError> {
        let conn = Connection::open_default()
            .map_err(|e| DbError::Unavailable(format!("reopening database default: {e:?}")))?;
        *self.conn.borrow_mut() = conn;
        self.update_session(|s| {
            s.poisoned = false;
            s.opened_at = Instant::now();
        });
        Ok(())
    }

    /// Run a PRAGMA unless the backend is known to refuse them.
    fn pragma(&self, sql: &str) -> Result<Vec<Row>, DbError> {
        if self.backend.get().remote {
            return Ok(Vec::new());
        }
        match self.run(sql, &[], Statement::Write) {
            Err(DbError::Unsupported(_)) => {
                self.update_backend(|b| b.remote = true);
                Ok(Vec::new())
            }
            r => r,
        }
    }

    /// Run one statement, and again as [`Tries::after`] decides.
    fn run(&self, sql: &str, params: &[Value], statement: Statement) -> Result<Vec<Row>, DbError> {
        let params: Vec<SqlValue> = params.iter().map(to_sql).collect();
        let mut tries = Tries::default();
        let result = loop {
            let session = self.session.get();
            if session.poisoned && !session.in_tx {
                self.reconnect()?;
            }
            let e = match self.conn.borrow().execute(sql, &params).map_err(map_err) {
                Ok(r) => break r,
                Err(e) => e,
            };
            let in_tx = self.session.get().in_tx;
            match tries.after(
                crate::retry::Failure::of(&e),
                statement,
                in_tx,
                self.backend.get().never_wait,
            ) {
                Next::Again => {}
                Next::Reconnect => self.reconnect()?,
                Next::Sleep(d) => std::thread::sleep(d),
                Next::Fail { poisoned } => {
                    if poisoned {
                        self.update_session(|s| s.poisoned = true);
                    }
                    return Err(e);
                }
            }
        };
        Ok(result
            .rows
            .iter()
            .map(|r| Row(r.values.iter().map(from_sql).collect()))
            .collect())
    }
}

impl Db for SqliteDb {
    fn page_size(&self) -> Option<i64> {
        // A libSQL server reports its fixed 4096. Where the PRAGMA fails,
        // `None` says "cannot tell", which the schema counts as small pages:
        // it only picks the records layout (correct on any page size, asked
        // once before the first migration); no user data passes here.
        match self.pragma("PRAGMA page_size") {
            Ok(rows) => rows.first().and_then(|r| r.opt_i64(0).ok().flatten()),
            Err(_) => None,
        }
    }

    fn maintain(&self, task: Maintenance) -> Result<(), DbError> {
        match task {
            Maintenance::Prepare => {
                self.pragma(&format!("PRAGMA page_size = {}", engine::schema::PAGE_SIZE))?;
                self.pragma("PRAGMA journal_mode = WAL")?;
            }
            Maintenance::BulkWork => {
                self.pragma("PRAGMA cache_size = -32768")?;
            }
            Maintenance::Checkpoint => {
                self.pragma("PRAGMA wal_checkpoint(PASSIVE)")?;
            }
        }
        Ok(())
    }

    fn lock_wait(&self, wait: LockWait) -> Result<(), DbError> {
        match wait {
            LockWait::Never => {
                self.update_backend(|b| b.never_wait = true);
                if self.backend.get().saved_wait.is_none() {
                    let now = self.pragma("PRAGMA busy_timeout")?;
                    match now.first().and_then(|r| r.i64(0).ok()) {
                        Some(ms) => self.update_backend(|b| b.saved_wait = Some(ms)),
                        None => return Ok(()), // remote: the server decides
                    }
                }
                self.pragma("PRAGMA busy_timeout = 0")?;
            }
            LockWait::Default => {
                self.update_backend(|b| b.never_wait = false);
                let saved = self.backend.get().saved_wait;
                if let Some(ms) = saved {
                    self.update_backend(|b| b.saved_wait = None);
                    self.pragma(&format!("PRAGMA busy_timeout = {ms}"))?;
                }
            }
        }
        Ok(())
    }

    fn execute(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        self.run(sql, params, Statement::Write)
    }

    fn select(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        self.run(sql, params, Statement::Read)
    }

    fn begin(&self, mode: TxMode) -> Result<(), DbError> {
        let session = self.session.get();
        if mode == TxMode::Write && !session.in_tx && session.opened_at.elapsed() > WRITER_LIFETIME {
            self.reconnect()?;
        }
        if mode == TxMode::Write {
            self.take_turn();
        }
        let sql = match mode {
            TxMode::Write => "BEGIN IMMEDIATE",
            TxMode::Read => "BEGIN",
        };
        if let Err(e) = self.run(sql, &[], Statement::Write) {
            self.end_turn();
            return Err(e);
        }
        self.update_session(|s| s.in_tx = true);
        Ok(())
    }

    fn commit(&self) -> Result<(), DbError> {
        let r = self.run("COMMIT", &[], Statement::Write).map(|_| ());
        // A failed commit leaves the transaction open: the engine rolls it
        // back, which ends it.
        if r.is_ok() {
            self.update_session(|s| s.in_tx = false);
            self.end_turn();
        }
        r
    }

    fn rollback(&self) -> Result<(), DbError> {
        if self.session.get().poisoned {
            // Roll back on the connection the server gave up on (releasing
            // any lock it still holds), then leave it for a fresh one.
            let _ = self.conn.borrow().execute("ROLLBACK", &[]);
            self.update_session(|s| s.in_tx = false);
            self.end_turn();
            return self.reconnect();
        }
        let r = self.run("ROLLBACK", &[], Statement::Write).map(|_| ());
        self.update_session(|s| s.in_tx = false);
        self.end_turn();
        r
    }

    fn yield_to_writers(&self) {
        if self.background && !self.backend.get().remote {
            crate::turns::pause_for_waiting();
        }
    }

    fn writers_waiting(&self) -> bool {
        !self.backend.get().remote && crate::turns::waiting()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What sqld 0.24.32 answered, word for word, through Spin's libsql client.
    const EXPIRED: &str = "Hrana: `api error: `{\"message\":\"The stream has expired due to inactivity\",\"code\":\"STREAM_EXPIRED\"}``";
    const NO_CONNECTION: &str =
        "Hrana: `api error: `{\"error\":\"Timed out while opening database connection\"}``";

    fn kind(m: &str) -> DbError {
        map_err(SqlError::Io(m.to_string()))
    }

    #[test]
    fn a_server_that_gave_up_is_unavailable_not_a_storage_error() {
        for m in [
            EXPIRED,
            NO_CONNECTION,
            "Hrana: TRANSACTION_TIMEOUT Transaction timed out",
            "SQLite error: SQLITE_INTERRUPT: interrupted",
        ] {
            assert!(matches!(kind(m), DbError::Unavailable(_)), "{m}");
        }
        assert!(matches!(kind("database is locked"), DbError::Busy(_)));
        assert!(matches!(
            kind("SQL_PARSE_ERROR: unsupported statement"),
            DbError::Unsupported(_)
        ));
    }
}
