//! The engine's `Db` on Spin's outbound PostgreSQL
//! (`spin:postgres/postgres@4.0.0`, `spin_sdk::pg4`): the server at the
//! Spin variable `postgres_url`. What PostgreSQL decides differently from
//! SQLite (placeholders, the write lock, error kinds, values) is
//! [`engine::dialect::postgres`]'s; this type only carries it out over
//! Spin's interface.
//!
//! Failures: a statement the server could not answer because the
//! connection failed marks the connection poisoned; the next statement
//! outside a transaction opens a fresh one (the engine runs a transaction
//! the database gave up on again, [`engine::db::transaction`]). A
//! statement is never sent twice here.

use std::cell::{Cell, RefCell};

use engine::dialect::postgres as pg;
use engine::{Db, DbError, Dialect, LockWait, Maintenance, Row, TxMode, Value};
use spin_sdk::pg4::{Connection, DbValue, ParameterValue, PgError, QueryError};

/// One connection to the PostgreSQL server of `postgres_url`.
pub struct PgDb {
    url: String,
    conn: RefCell<Connection>,
    changes: Cell<u64>,
    wait: Cell<LockWait>,
    in_tx: Cell<bool>,
    poisoned: Cell<bool>,
}

impl PgDb {
    /// Connect to `url`.
    pub fn open(url: &str) -> Result<PgDb, engine::Error> {
        let conn = Connection::open(url).map_err(|e| {
            engine::Error::new(
                engine::ErrorKind::Unavailable,
                format!("connecting to PostgreSQL: {}", describe(&e)),
            )
        })?;
        Ok(PgDb {
            url: url.to_string(),
            conn: RefCell::new(conn),
            changes: Cell::new(0),
            wait: Cell::new(LockWait::Default),
            in_tx: Cell::new(false),
            poisoned: Cell::new(false),
        })
    }

    fn run(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        if self.poisoned.get() && !self.in_tx.get() {
            let conn = Connection::open(&self.url)
                .map_err(|e| DbError::Unavailable(format!("reconnecting: {}", describe(&e))))?;
            *self.conn.borrow_mut() = conn;
            self.poisoned.set(false);
        }
        let (sql, order) = pg::placeholders(sql);
        let params: Vec<ParameterValue> = pg::pick(params, &order)?
            .into_iter()
            .map(|v| match v {
                Value::Null => ParameterValue::DbNull,
                Value::Integer(i) => ParameterValue::Int64(*i),
                Value::Real(f) => ParameterValue::Floating64(*f),
                Value::Text(s) => ParameterValue::Str(s.clone()),
                Value::Blob(b) => ParameterValue::Binary(b.clone()),
            })
            .collect();
        let conn = self.conn.borrow();
        let out = if pg::answers_rows(&sql) {
            conn.query(&sql, &params).map_err(map_err).and_then(|set| {
                self.changes.set(set.rows.len() as u64);
                set.rows
                    .iter()
                    .map(|r| r.iter().map(value).collect::<Result<Vec<_>, _>>().map(Row))
                    .collect()
            })
        } else {
            conn.execute(&sql, &params).map_err(map_err).map(|n| {
                self.changes.set(n);
                Vec::new()
            })
        };
        if let Err(DbError::Unavailable(_)) = &out {
            self.poisoned.set(true);
        }
        out
    }
}

/// A column's value as the engine reads it (a boolean as 0 or 1, a
/// `NUMERIC` as an integer where it is one).
fn value(v: &DbValue) -> Result<Value, DbError> {
    Ok(match v {
        DbValue::DbNull => Value::Null,
        DbValue::Boolean(b) => Value::Integer(*b as i64),
        DbValue::Int8(i) => Value::Integer(*i as i64),
        DbValue::Int16(i) => Value::Integer(*i as i64),
        DbValue::Int32(i) => Value::Integer(*i as i64),
        DbValue::Int64(i) => Value::Integer(*i),
        DbValue::Floating32(f) => Value::Real(*f as f64),
        DbValue::Floating64(f) => Value::Real(*f),
        DbValue::Str(s) => Value::Text(s.clone()),
        DbValue::Binary(b) => Value::Blob(b.clone()),
        DbValue::Decimal(d) => pg::numeric_value(d)?,
        DbValue::Jsonb(b) => Value::Text(
            String::from_utf8(b.clone())
                .map_err(|_| DbError::Other("jsonb that is not UTF-8".into()))?,
        ),
        other => {
            return Err(DbError::Other(format!(
                "a column of a type the engine does not read: {other:?}"
            )))
        }
    })
}

fn describe(e: &PgError) -> String {
    match e {
        PgError::ConnectionFailed(m) => format!("connection failed: {m}"),
        PgError::QueryFailed(QueryError::DbError(d)) => format!("{}: {}", d.code, d.message),
        PgError::QueryFailed(QueryError::Text(m)) => m.clone(),
        other => format!("{other:?}"),
    }
}

fn map_err(e: PgError) -> DbError {
    match &e {
        PgError::QueryFailed(QueryError::DbError(d)) => pg::classify(&d.code, describe(&e)),
        PgError::ConnectionFailed(_) => DbError::Unavailable(describe(&e)),
        PgError::QueryFailed(QueryError::Text(m))
            if m.contains("connection closed") || m.contains("broken pipe") =>
        {
            DbError::Unavailable(describe(&e))
        }
        _ => DbError::Other(describe(&e)),
    }
}

impl Db for PgDb {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn execute(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        self.run(sql, params)
    }

    fn changes(&self) -> Result<u64, DbError> {
        Ok(self.changes.get())
    }

    fn last_insert_rowid(&self) -> Result<i64, DbError> {
        Err(DbError::Unsupported(
            "PostgreSQL has no last_insert_rowid(); use RETURNING".into(),
        ))
    }

    fn begin(&self, mode: TxMode) -> Result<(), DbError> {
        engine::dialect::begin(self, mode, self.wait.get() == LockWait::Default)?;
        self.in_tx.set(true);
        Ok(())
    }

    fn commit(&self) -> Result<(), DbError> {
        let r = self.run("COMMIT", &[]).map(|_| ());
        if r.is_ok() {
            self.in_tx.set(false);
        }
        r
    }

    fn rollback(&self) -> Result<(), DbError> {
        let r = self.run("ROLLBACK", &[]).map(|_| ());
        self.in_tx.set(false);
        r
    }

    fn maintain(&self, task: Maintenance) -> Result<(), DbError> {
        engine::dialect::maintain(self, task)
    }

    fn lock_wait(&self, wait: LockWait) -> Result<(), DbError> {
        self.wait.set(wait);
        Ok(())
    }
}
