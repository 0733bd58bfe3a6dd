//! The storage seam over rusqlite, for native tests, benchmarks and tools.
//! Opens files the way Spin does (5 s busy timeout) and does the file
//! maintenance a local backend does (16 KiB pages and WAL for a new file, a
//! larger cache for bulk work, passive checkpoints).

use std::path::Path;
use std::time::Duration;

use rusqlite::types::ValueRef;

use crate::db::{Db, DbError, Env, LockWait, Maintenance, Row, Value};
use crate::schema::PAGE_SIZE;

/// One rusqlite connection.
pub struct NativeDb {
    conn: rusqlite::Connection,
}

impl NativeDb {
    pub fn open(path: &Path) -> Result<NativeDb, DbError> {
        let conn = rusqlite::Connection::open(path).map_err(map_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(map_err)?;
        Ok(NativeDb { conn })
    }

    pub fn in_memory() -> NativeDb {
        NativeDb {
            conn: rusqlite::Connection::open_in_memory().expect("in-memory SQLite"),
        }
    }

    pub fn connection(&self) -> &rusqlite::Connection {
        &self.conn
    }
}

fn map_err(e: rusqlite::Error) -> DbError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked => {
                DbError::Busy(e.to_string())
            }
            rusqlite::ErrorCode::ConstraintViolation => DbError::Constraint(e.to_string()),
            _ => DbError::Other(e.to_string()),
        },
        _ => DbError::Other(e.to_string()),
    }
}

/// The lock wait a [`NativeDb`] opens with, as Spin's local files.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

impl Db for NativeDb {
    fn changes(&self) -> Result<u64, DbError> {
        Ok(self.conn.changes())
    }

    fn last_insert_rowid(&self) -> Result<i64, DbError> {
        Ok(self.conn.last_insert_rowid())
    }

    fn maintain(&self, task: Maintenance) -> Result<(), DbError> {
        let sql = match task {
            Maintenance::Prepare => {
                // The page size only takes effect before the first table
                // and before WAL, so it goes first.
                self.conn
                    .execute_batch(&format!("PRAGMA page_size = {PAGE_SIZE}"))
                    .map_err(map_err)?;
                "PRAGMA journal_mode = WAL"
            }
            // 32 MiB instead of SQLite's 2 MiB: a copy of a large dataset
            // stays in memory instead of re-reading pages.
            Maintenance::BulkWork => "PRAGMA cache_size = -32768",
            Maintenance::Checkpoint => "PRAGMA wal_checkpoint(PASSIVE)",
        };
        // These PRAGMAs answer a row; run them as queries.
        self.execute(sql, &[]).map(|_| ())
    }

    fn page_size(&self) -> Option<i64> {
        self.conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .ok()
    }

    fn lock_wait(&self, wait: LockWait) -> Result<(), DbError> {
        self.conn
            .busy_timeout(match wait {
                LockWait::Default => BUSY_TIMEOUT,
                LockWait::Never => Duration::ZERO,
            })
            .map_err(map_err)
    }

    fn execute(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(map_err)?;
        let params: Vec<rusqlite::types::Value> = params
            .iter()
            .map(|v| match v {
                Value::Null => rusqlite::types::Value::Null,
                Value::Integer(i) => rusqlite::types::Value::Integer(*i),
                Value::Real(f) => rusqlite::types::Value::Real(*f),
                Value::Text(s) => rusqlite::types::Value::Text(s.clone()),
                Value::Blob(b) => rusqlite::types::Value::Blob(b.clone()),
            })
            .collect();
        let n = stmt.column_count();
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params))
            .map_err(map_err)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(map_err)? {
            let mut row = Vec::with_capacity(n);
            for i in 0..n {
                row.push(match r.get_ref(i).map_err(map_err)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(v) => Value::Integer(v),
                    ValueRef::Real(v) => Value::Real(v),
                    ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(b) => Value::Blob(b.to_vec()),
                });
            }
            out.push(Row(row));
        }
        Ok(out)
    }
}

/// The real clock and OS randomness.
pub struct SystemEnv;

impl Env for SystemEnv {
    fn now_us(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0)
    }
    fn random_u128(&self) -> u128 {
        let mut b = [0u8; 16];
        getrandom::fill(&mut b).expect("OS randomness");
        u128::from_le_bytes(b)
    }
}

/// A clock tests move by hand and deterministic ids.
pub struct FakeEnv {
    pub now: std::cell::Cell<i64>,
    pub counter: std::cell::Cell<u128>,
    /// Microseconds each `now_us` call advances the clock.
    pub tick: i64,
}

impl FakeEnv {
    pub fn new(start_us: i64) -> FakeEnv {
        FakeEnv {
            now: start_us.into(),
            counter: 0.into(),
            tick: 1,
        }
    }
    pub fn advance(&self, us: i64) {
        self.now.set(self.now.get() + us);
    }
}

impl Env for FakeEnv {
    fn now_us(&self) -> i64 {
        let t = self.now.get();
        self.now.set(t + self.tick);
        t
    }
    fn random_u128(&self) -> u128 {
        let c = self.counter.get() + 1;
        self.counter.set(c);
        c.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
    }
}
