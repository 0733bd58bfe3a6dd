//! The engine's seams over Spin: `Db` on `spin_sdk::sqlite` (database
//! `default`), `Env` on WASI's wall clock and random.

use std::cell::Cell;
use std::time::Duration;

use engine::{Db, DbError, Env, LockWait, Maintenance, Row, Value};
use spin_sdk::sqlite::{Connection, Error as SqlError, Value as SqlValue};

/// A write transaction never starts on a connection older than this. sqld
/// takes the write lock back from a connection that has held it, across
/// transactions, for a few seconds while another waits (its statements then
/// fail with SQLITE_INTERRUPT): a request that writes in many short
/// transactions (a staged import) would lose every one after that.
const WRITER_LIFETIME: Duration = Duration::from_millis(1000);

/// How long, in all, a statement outside a transaction waits while a
/// remote server answers SQLITE_BUSY at once — sqld refuses writers while a
/// checkpoint holds its write queue — as `busy_timeout` waits on a file.
const REMOTE_BUSY_WAIT: Duration = Duration::from_secs(5);

/// Runs of a statement the server gave up on (a read anywhere, a write
/// outside a transaction).
const STATEMENT_ATTEMPTS: u32 = 5;

/// A statement's first bytes, upper-cased: enough to tell `BEGIN`, `BEGIN
/// IMMEDIATE`, `COMMIT`, `ROLLBACK`, `SELECT` and `WITH` apart — the whole
/// of a shorter statement (`COMMIT` and `BEGIN` are shorter than 8 bytes;
/// cut to nothing, a `COMMIT` once left the connection counted inside its
/// transaction for good, so no later statement was retried).
fn head(sql: &str) -> String {
    let t = sql.trim_start();
    t.get(..8).unwrap_or(t).to_ascii_uppercase()
}

/// A statement that only reads: `SELECT …`, or `WITH …` ending in a SELECT.
/// (sqld interrupts statements on a stream now and then — SQLITE_INTERRUPT —
/// seen with libsql's cursor requests; a read can simply run again.)
fn read_only(head: &str, sql: &str) -> bool {
    if head.starts_with("SELECT") {
        return true;
    }
    if !head.starts_with("WITH") {
        return false;
    }
    let up = sql.to_ascii_uppercase();
    !["INSERT ", "UPDATE ", "DELETE ", "REPLACE "]
        .iter()
        .any(|w| up.contains(w))
}

/// sqld interrupted the statement and nothing more (SQLITE_INTERRUPT): the
/// stream, and any transaction open on it, are intact, so a read can run
/// again where it is. Every other `Unavailable` (an expired stream, a
/// transaction the server timed out, a dropped connection, no connection
/// free) leaves no stream to run on: the libsql client keeps sending the
/// dead stream's baton, so only a fresh connection helps.
fn interrupted_only(message: &str) -> bool {
    let l = message.to_ascii_lowercase();
    (l.contains("sqlite_interrupt") || l.contains("interrupted"))
        && !l.contains("transaction_timeout")
        && !l.contains("stream_expired")
}

/// The error came from a remote libSQL server (the `libsql` client names
/// its protocol, Hrana, in every error it reports); a local file's SQLite
/// never does. (`SpinDb::remote` is only known once a PRAGMA was refused,
/// which a request on a current schema never sends.)
fn from_remote_server(message: &str) -> bool {
    message.to_ascii_lowercase().contains("hrana")
}

/// One Spin SQLite connection: a local file or a remote libSQL database,
/// whichever the runtime config names. The guest cannot ask which, so file
/// maintenance is attempted and a refusal ([`DbError::Unsupported`], what a
/// libSQL server answers to PRAGMAs) is the sign of a remote backend: the
/// connection stops trying for the rest of its life.
pub struct SpinDb {
    /// Replaced after the server gave up on it (see `execute`).
    conn: std::cell::RefCell<Connection>,
    /// The server gave up on a statement of this connection: a remote
    /// server's stream can stay that way (sqld answers every later statement
    /// with SQLITE_INTERRUPT), so the next statement outside a transaction
    /// opens a new connection first.
    poisoned: Cell<bool>,
    /// When the connection was opened: a write transaction on a connection
    /// older than [`WRITER_LIFETIME`] starts on a fresh one (see `execute`).
    opened_at: Cell<std::time::Instant>,
    /// A PRAGMA was refused: the backend is remote.
    remote: Cell<bool>,
    /// The lock wait before [`LockWait::Never`], to restore.
    saved_wait: Cell<Option<i64>>,
    /// Inside `BEGIN … COMMIT/ROLLBACK`.
    in_tx: Cell<bool>,
    /// [`LockWait::Never`] is in force: a busy database is answered at once.
    never_wait: Cell<bool>,
}

impl SpinDb {
    /// Open database `default`.
    pub fn open() -> Result<SpinDb, engine::Error> {
        Connection::open_default()
            .map(|conn| SpinDb {
                conn: std::cell::RefCell::new(conn),
                poisoned: Cell::new(false),
                opened_at: Cell::new(std::time::Instant::now()),
                remote: Cell::new(false),
                saved_wait: Cell::new(None),
                in_tx: Cell::new(false),
                never_wait: Cell::new(false),
            })
            .map_err(|e| {
                engine::Error::new(
                    engine::ErrorKind::Storage,
                    format!("opening SQLite database default: {e:?}"),
                )
            })
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

impl SpinDb {
    /// A fresh connection in place of a poisoned one.
    fn reconnect(&self) -> Result<(), DbError> {
        let conn = Connection::open_default()
            .map_err(|e| DbError::Unavailable(format!("reopening database default: {e:?}")))?;
        *self.conn.borrow_mut() = conn;
        self.poisoned.set(false);
        self.opened_at.set(std::time::Instant::now());
        Ok(())
    }

    /// Run a PRAGMA unless the backend is known to refuse them.
    fn pragma(&self, sql: &str) -> Result<Vec<Row>, DbError> {
        if self.remote.get() {
            return Ok(Vec::new());
        }
        match self.execute(sql, &[]) {
            Err(DbError::Unsupported(_)) => {
                self.remote.set(true);
                Ok(Vec::new())
            }
            r => r,
        }
    }
}

impl Db for SpinDb {
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
                self.never_wait.set(true);
                if self.saved_wait.get().is_none() {
                    let now = self.pragma("PRAGMA busy_timeout")?;
                    match now.first().and_then(|r| r.i64(0).ok()) {
                        Some(ms) => self.saved_wait.set(Some(ms)),
                        None => return Ok(()), // remote: the server decides
                    }
                }
                self.pragma("PRAGMA busy_timeout = 0")?;
            }
            LockWait::Default => {
                self.never_wait.set(false);
                if let Some(ms) = self.saved_wait.take() {
                    self.pragma(&format!("PRAGMA busy_timeout = {ms}"))?;
                }
            }
        }
        Ok(())
    }

    fn execute(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        let params: Vec<SqlValue> = params.iter().map(to_sql).collect();
        let head = head(sql);
        if self.poisoned.get() && head.starts_with("ROLLBACK") {
            // Roll back on the connection the server gave up on (releasing
            // any lock it still holds), then leave it for a fresh one.
            let _ = self.conn.borrow().execute(sql, &params);
            self.in_tx.set(false);
            return self.reconnect().map(|()| Vec::new());
        }
        // Outside a transaction a statement the server gave up on did
        // nothing: it runs again on a fresh connection, a few times. Inside
        // one, the engine rolls back and reruns the whole transaction.
        if head.starts_with("BEGIN IM")
            && !self.in_tx.get()
            && self.opened_at.get().elapsed() > WRITER_LIFETIME
        {
            self.reconnect()?;
        }
        let mut attempt = 1;
        let (mut waited, mut pause) = (Duration::ZERO, Duration::from_millis(10));
        let result = loop {
            if self.poisoned.get() && !self.in_tx.get() {
                self.reconnect()?;
            }
            let r = self.conn.borrow().execute(sql, &params).map_err(map_err);
            match r {
                // An interrupted read changed nothing and, unlike an
                // interrupted write, leaves the transaction it is in as it
                // was (SQLite rolls a transaction back only for a write):
                // it runs again where it is.
                Err(DbError::Unavailable(m))
                    if read_only(&head, sql)
                        && interrupted_only(&m)
                        && attempt < STATEMENT_ATTEMPTS =>
                {
                    attempt += 1;
                }
                // A remote server busy with a checkpoint: nothing ran, so
                // outside a transaction (a `BEGIN IMMEDIATE`, a single
                // write) the statement waits and runs again.
                Err(DbError::Busy(m))
                    if from_remote_server(&m)
                        && !self.in_tx.get()
                        && !self.never_wait.get()
                        && waited < REMOTE_BUSY_WAIT =>
                {
                    std::thread::sleep(pause);
                    waited += pause;
                    pause = (pause * 2).min(Duration::from_millis(250));
                }
                Err(DbError::Unavailable(m)) => {
                    self.poisoned.set(true);
                    if self.in_tx.get() || attempt >= STATEMENT_ATTEMPTS {
                        return Err(DbError::Unavailable(m));
                    }
                    attempt += 1;
                }
                r => break r?,
            }
        };
        if head.starts_with("BEGIN") {
            self.in_tx.set(true);
        } else if head.starts_with("COMMIT")
            || head.starts_with("ROLLBACK")
            || head.starts_with("END")
        {
            self.in_tx.set(false);
        }
        Ok(result
            .rows
            .iter()
            .map(|r| Row(r.values.iter().map(from_sql).collect()))
            .collect())
    }
}

/// The wall clock and WASI randomness ([`crate::ids::random_bytes`]).
pub struct SpinEnv;

impl Env for SpinEnv {
    fn now_us(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0)
    }
    fn random_u128(&self) -> u128 {
        u128::from_le_bytes(crate::ids::random_bytes())
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

    #[test]
    fn short_statements_keep_their_head() {
        assert_eq!(head("COMMIT"), "COMMIT");
        assert_eq!(head("  begin"), "BEGIN");
        assert_eq!(head("BEGIN IMMEDIATE"), "BEGIN IM");
        assert_eq!(head("ROLLBACK"), "ROLLBACK");
    }

    #[test]
    fn a_busy_remote_server_is_told_from_a_busy_file() {
        let remote = "Hrana: `cursor error: `error at step 0: (error code: SQLITE_BUSY) `SQLite error: database is locked```";
        assert!(matches!(kind(remote), DbError::Busy(_)));
        assert!(from_remote_server(remote));
        assert!(!from_remote_server("database is locked"));
    }

    #[test]
    fn only_an_interrupted_read_runs_again_on_the_same_stream() {
        assert!(interrupted_only(
            "SQLite error: SQLITE_INTERRUPT: interrupted"
        ));
        // The stream is gone: the client would resend its dead baton.
        assert!(!interrupted_only(EXPIRED));
        assert!(!interrupted_only(NO_CONNECTION));
        assert!(!interrupted_only(
            "Hrana: TRANSACTION_TIMEOUT Transaction timed out (interrupted)"
        ));
    }
}
