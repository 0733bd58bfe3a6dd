//! The engine's seams over Spin: `Db` on `spin_sdk::sqlite` (database
//! `default`), `Env` on WASI's wall clock and random.

use std::cell::Cell;

use engine::{Db, DbError, Env, LockWait, Maintenance, Row, Value};
use spin_sdk::sqlite::{Connection, Error as SqlError, Value as SqlValue};

/// One Spin SQLite connection: a local file or a remote libSQL database,
/// whichever the runtime config names. The guest cannot ask which, so file
/// maintenance is attempted and a refusal ([`DbError::Unsupported`], what a
/// libSQL server answers to PRAGMAs) is the sign of a remote backend: the
/// connection stops trying for the rest of its life.
/// Runs of a statement outside a transaction that the server gave up on.
const STATEMENT_ATTEMPTS: u32 = 3;

pub struct SpinDb {
    conn: Connection,
    /// A PRAGMA was refused: the backend is remote.
    remote: Cell<bool>,
    /// The lock wait before [`LockWait::Never`], to restore.
    saved_wait: Cell<Option<i64>>,
    /// Inside `BEGIN … COMMIT/ROLLBACK`.
    in_tx: Cell<bool>,
}

impl SpinDb {
    /// Open database `default`.
    pub fn open() -> Result<SpinDb, engine::Error> {
        Connection::open_default()
            .map(|conn| SpinDb {
                conn,
                remote: Cell::new(false),
                saved_wait: Cell::new(None),
                in_tx: Cell::new(false),
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
                if let Some(ms) = self.saved_wait.take() {
                    self.pragma(&format!("PRAGMA busy_timeout = {ms}"))?;
                }
            }
        }
        Ok(())
    }

    fn execute(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        let params: Vec<SqlValue> = params.iter().map(to_sql).collect();
        // Outside a transaction a statement the server gave up on (sqld's
        // SQLITE_INTERRUPT) did nothing: it runs again, a few times. Inside
        // one, the engine reruns the whole transaction instead.
        let mut attempt = 1;
        let result = loop {
            match self.conn.execute(sql, &params).map_err(map_err) {
                Err(DbError::Unavailable(_))
                    if !self.in_tx.get() && attempt < STATEMENT_ATTEMPTS =>
                {
                    attempt += 1;
                }
                r => break r?,
            }
        };
        let head = sql.trim_start().get(..8).unwrap_or("").to_ascii_uppercase();
        if head.starts_with("BEGIN") {
            self.in_tx.set(true);
        } else if head.starts_with("COMMIT") || head.starts_with("ROLLBACK") || head.starts_with("END") {
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
