//! The storage seam. The engine never opens a connection: it is handed a
//! [`Db`] (one connection) and an [`Env`] (clock and randomness).
//!
//! Implementations: `spin_adapter::SpinDb` over `spin_sdk::sqlite`, and
//! [`crate::native::NativeDb`] over rusqlite (feature `native`) for tests,
//! benchmarks and the CLI.

use crate::error::{Error, ErrorKind, Result};

/// A SQLite value, as both Spin's `sqlite` interface and rusqlite know it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Integer(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Integer(v as i64)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Value {
        Value::Text(v.clone())
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map(Into::into).unwrap_or(Value::Null)
    }
}

/// One result row. Every getter fails with [`ErrorKind::Corrupt`] when the
/// column is missing or holds a type other than the one it reads; NULL is
/// read as follows:
///
/// | getter     | reads       | NULL      | any other type |
/// |------------|-------------|-----------|----------------|
/// | `i64`      | integer     | `0`       | `Corrupt`      |
/// | `bool`     | integer ≠ 0 | `false`   | `Corrupt`      |
/// | `opt_i64`  | integer     | `None`    | `Corrupt`      |
/// | `text`     | text        | `Corrupt` | `Corrupt`      |
/// | `opt_text` | text        | `None`    | `Corrupt`      |
///
/// So `i64` and `bool` cannot tell NULL from 0 (convenient for aggregates
/// such as `sum()` over no rows); use `opt_i64` where the difference matters.
/// A real (floating-point) value is never converted: it is `Corrupt`.
#[derive(Debug, Clone, PartialEq)]
pub struct Row(pub Vec<Value>);

impl Row {
    fn at(&self, i: usize) -> Result<&Value> {
        self.0
            .get(i)
            .ok_or_else(|| Error::corrupt(format!("row has no column {i}")))
    }
    /// An integer column; NULL reads as 0.
    pub fn i64(&self, i: usize) -> Result<i64> {
        match self.at(i)? {
            Value::Integer(v) => Ok(*v),
            Value::Null => Ok(0),
            v => Err(Error::corrupt(format!(
                "column {i}: expected integer, got {v:?}"
            ))),
        }
    }
    /// An integer column; NULL reads as `None`.
    pub fn opt_i64(&self, i: usize) -> Result<Option<i64>> {
        match self.at(i)? {
            Value::Null => Ok(None),
            _ => self.i64(i).map(Some),
        }
    }
    /// A text column; NULL is `Corrupt` (use `opt_text`).
    pub fn text(&self, i: usize) -> Result<String> {
        match self.at(i)? {
            Value::Text(s) => Ok(s.clone()),
            v => Err(Error::corrupt(format!(
                "column {i}: expected text, got {v:?}"
            ))),
        }
    }
    /// A text column; NULL reads as `None`.
    pub fn opt_text(&self, i: usize) -> Result<Option<String>> {
        match self.at(i)? {
            Value::Null => Ok(None),
            _ => self.text(i).map(Some),
        }
    }
    /// An integer column as a flag (non-zero: true); NULL reads as false.
    pub fn bool(&self, i: usize) -> Result<bool> {
        self.i64(i).map(|v| v != 0)
    }
}

/// Errors a [`Db`] reports. `Busy` means the database stayed locked beyond
/// the implementation's busy timeout; everything else is `Other`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbError {
    Busy(String),
    Constraint(String),
    Other(String),
}

impl From<DbError> for Error {
    fn from(e: DbError) -> Error {
        match e {
            DbError::Busy(m) => Error::new(ErrorKind::Busy, format!("database is busy: {m}")),
            DbError::Constraint(m) => {
                Error::new(ErrorKind::Storage, format!("constraint failed: {m}"))
            }
            DbError::Other(m) => Error::new(ErrorKind::Storage, format!("storage error: {m}")),
        }
    }
}

/// One SQLite connection.
///
/// Failure behaviour: a failed statement changes nothing by itself; inside a
/// transaction the engine rolls back. Implementations must keep one
/// connection for the life of the value, so `BEGIN`/`COMMIT` issued through
/// `execute` bracket the statements between them.
pub trait Db {
    /// Run one statement with positional parameters (`?1`, `?2`, …) and return
    /// its rows (empty for statements without a result).
    fn execute(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError>;
}

/// The clock and randomness the engine uses. Tests pass a fake.
pub trait Env {
    /// Microseconds since the Unix epoch.
    fn now_us(&self) -> i64;
    /// 128 random bits (for operation ids and job ids, which double as
    /// credentials for some streams: they must be unguessable).
    fn random_u128(&self) -> u128;
}

pub(crate) fn query(db: &dyn Db, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
    db.execute(sql, params).map_err(Error::from)
}

pub(crate) fn exec(db: &dyn Db, sql: &str, params: &[Value]) -> Result<()> {
    db.execute(sql, params).map(|_| ()).map_err(Error::from)
}

pub(crate) fn one(db: &dyn Db, sql: &str, params: &[Value]) -> Result<Option<Row>> {
    Ok(query(db, sql, params)?.into_iter().next())
}

/// Rows changed by the connection's last INSERT, UPDATE or DELETE.
pub(crate) fn changes(db: &dyn Db) -> Result<i64> {
    one(db, "SELECT changes()", &[])?
        .map(|r| r.i64(0))
        .unwrap_or(Ok(0))
}

/// Run `f` inside `BEGIN IMMEDIATE … COMMIT`: the write lock is taken first,
/// so the transaction never fails half-way on a lock upgrade, and everything
/// `f` reads stays valid until the commit. Any error rolls back.
pub fn transaction<T>(db: &dyn Db, f: impl FnOnce(&dyn Db) -> Result<T>) -> Result<T> {
    exec(db, "BEGIN IMMEDIATE", &[])?;
    match f(db) {
        Ok(v) => match exec(db, "COMMIT", &[]) {
            Ok(()) => Ok(v),
            Err(e) => {
                let _ = db.execute("ROLLBACK", &[]);
                Err(e)
            }
        },
        Err(e) => {
            let _ = db.execute("ROLLBACK", &[]);
            Err(e)
        }
    }
}

/// A read-only snapshot: `BEGIN` (deferred) … `COMMIT`, so several reads see
/// one state of the database.
pub fn read<T>(db: &dyn Db, f: impl FnOnce(&dyn Db) -> Result<T>) -> Result<T> {
    exec(db, "BEGIN", &[])?;
    let r = f(db);
    let _ = db.execute(if r.is_ok() { "COMMIT" } else { "ROLLBACK" }, &[]);
    r
}
