//! The storage seam. The engine never opens a connection: it is handed a
//! [`Db`] (one connection) and an [`Env`] (clock and randomness).
//!
//! Implementations: `spin_adapter::SpinDb` over `spin_sdk::sqlite`, and
//! [`crate::native::NativeDb`] over rusqlite (feature `native`) for tests,
//! benchmarks and tools (the `spinoff` CLI speaks HTTP and uses no engine).

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

/// Errors a [`Db`] reports. Each backend classifies its own errors into
/// these kinds (the engine never looks at message text):
///
/// | kind          | meaning                                           | engine error        |
/// |---------------|---------------------------------------------------|---------------------|
/// | `Busy`        | the write lock stayed held past the backend's wait | `Busy` (retry)      |
/// | `Unavailable` | the database could not answer now (a remote       | `Unavailable`       |
/// |               | stream expired, a transaction timed out, the      |                     |
/// |               | connection dropped); nothing was committed        | (retried, then 503) |
/// | `Unsupported` | the backend refuses this kind of statement (a     | `Storage`           |
/// |               | remote libSQL server refuses most PRAGMAs)        |                     |
/// | `Constraint`  | a constraint failed                               | `Storage`           |
/// | `Other`       | anything else                                     | `Storage`           |
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbError {
    Busy(String),
    Unavailable(String),
    Unsupported(String),
    Constraint(String),
    Other(String),
}

impl From<DbError> for Error {
    fn from(e: DbError) -> Error {
        match e {
            DbError::Busy(m) => Error::new(ErrorKind::Busy, format!("database is busy: {m}")),
            DbError::Unavailable(m) => Error::new(
                ErrorKind::Unavailable,
                format!("database is unavailable, retry: {m}"),
            ),
            DbError::Unsupported(m) => Error::new(
                ErrorKind::Storage,
                format!("statement not supported by this database: {m}"),
            ),
            DbError::Constraint(m) => {
                Error::new(ErrorKind::Storage, format!("constraint failed: {m}"))
            }
            DbError::Other(m) => Error::new(ErrorKind::Storage, format!("storage error: {m}")),
        }
    }
}

/// Work on the database file that only a local backend can do and that
/// changes no data. A backend that cannot (a remote libSQL server) makes
/// each one a no-op: the engine is correct without them, only slower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Maintenance {
    /// The database is empty and about to get its first table: choose the
    /// page size and journal mode now, while they can still change
    /// (16 KiB pages keep ~1 KiB records out of overflow pages; WAL lets
    /// readers go on while a chunk is written).
    Prepare,
    /// Many records are about to be read and written on this connection
    /// (a copy chunk, a purge): a larger page cache.
    BulkWork,
    /// Outside any transaction, after bulk writes: fold the write-ahead log
    /// back into the file without waiting for readers.
    Checkpoint,
}

/// How long a statement waits for another connection's write lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockWait {
    /// The backend's own wait (Spin's local files: 5 s).
    Default,
    /// Fail at once with [`DbError::Busy`] instead of queueing.
    Never,
}

/// The kind of transaction [`Db::begin`] opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxMode {
    /// Take the write lock first (`BEGIN IMMEDIATE`): the transaction never
    /// fails half-way on a lock upgrade.
    Write,
    /// A read snapshot (`BEGIN`): several reads see one state.
    Read,
}

/// The SQL a backend speaks; what differs is decided in
/// [`crate::dialect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// SQLite: a local file, or a remote libSQL server.
    #[default]
    Sqlite,
    /// PostgreSQL (Spin's outbound PostgreSQL, or a native client).
    Postgres,
}

/// One connection to the engine's database: the seam between the engine
/// and a backend, shaped like Spin's own (`spin-factor-sqlite`'s
/// `Connection`: run a statement, changes, last insert id) plus the
/// transactions and maintenance the engine needs. The engine sends only
/// SQL that SQLite and a remote libSQL server both accept; everything
/// backend-specific (file tuning, lock waits) is behind [`Db::maintain`]
/// and [`Db::lock_wait`], which a backend may make no-ops.
///
/// Failure behaviour: a failed statement changes nothing by itself; inside a
/// transaction the engine rolls back. Implementations keep one connection
/// for the life of the value, so a transaction brackets the statements
/// between [`Db::begin`] and [`Db::commit`].
///
/// Implementations: `spin_adapter::SpinDb` over Spin's `sqlite` interface
/// (a local file or libSQL, whichever the runtime config names), and
/// [`crate::native::NativeDb`] over rusqlite (feature `native`) for tests,
/// benchmarks and tools.
pub trait Db {
    /// The SQL this backend speaks.
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    /// Run one statement with positional parameters (`?1`, `?2`, …) and return
    /// its rows (empty for statements without a result).
    fn execute(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError>;

    /// Run one statement that only reads (a `SELECT`, or a `WITH … SELECT`):
    /// the engine says so by calling this instead of [`Db::execute`], so a
    /// backend never has to guess it from the text. A backend may run a
    /// read again when the server interrupted it, inside a transaction too
    /// (an interrupted read leaves the transaction as it was; an interrupted
    /// write does not, and is never run again here).
    fn select(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        self.execute(sql, params)
    }

    /// Rows changed by the connection's last INSERT, UPDATE or DELETE.
    fn changes(&self) -> Result<u64, DbError> {
        let rows = self.select("SELECT changes()", &[])?;
        Ok(rows.first().and_then(|r| r.i64(0).ok()).unwrap_or(0).max(0) as u64)
    }

    /// The rowid of the connection's last successful INSERT (0 if none).
    fn last_insert_rowid(&self) -> Result<i64, DbError> {
        let rows = self.select("SELECT last_insert_rowid()", &[])?;
        Ok(rows.first().and_then(|r| r.i64(0).ok()).unwrap_or(0))
    }

    /// Open a transaction.
    fn begin(&self, mode: TxMode) -> Result<(), DbError> {
        self.execute(
            match mode {
                TxMode::Write => "BEGIN IMMEDIATE",
                TxMode::Read => "BEGIN",
            },
            &[],
        )
        .map(|_| ())
    }

    fn commit(&self) -> Result<(), DbError> {
        self.execute("COMMIT", &[]).map(|_| ())
    }

    fn rollback(&self) -> Result<(), DbError> {
        self.execute("ROLLBACK", &[]).map(|_| ())
    }

    /// The database's page size in bytes, where the backend can tell: a
    /// local file's, or a libSQL server's (it reports 4096 and refuses to
    /// change it). `None` where it cannot; the schema then counts the
    /// pages as small and lays records out for them
    /// (`schema::RECORDS_ON_SMALL_PAGES`).
    fn page_size(&self) -> Option<i64> {
        None
    }

    /// File maintenance; a no-op where the backend cannot do it.
    fn maintain(&self, _task: Maintenance) -> Result<(), DbError> {
        Ok(())
    }

    /// Set how long later statements wait for the write lock; a no-op
    /// where the backend decides that itself.
    fn lock_wait(&self, _wait: LockWait) -> Result<(), DbError> {
        Ok(())
    }

    /// Between two chunks of background work (the worker's copies,
    /// hydrations and merges): let a request that is waiting for the write
    /// lock go first. A hint, never an error: a no-op where no request can
    /// be waiting or the backend queues writers itself.
    fn yield_to_writers(&self) {}

    /// Whether a request waits for the write lock now: bounded progress
    /// from a status read ([`crate::Engine::nudge`]) then lets it be.
    fn writers_waiting(&self) -> bool {
        false
    }
}

/// The clock and randomness the engine uses. Tests pass a fake.
pub trait Env {
    /// Microseconds since the Unix epoch.
    fn now_us(&self) -> i64;
    /// 128 random bits (for operation ids and job ids, which double as
    /// credentials for some streams: they must be unguessable).
    fn random_u128(&self) -> u128;
}

/// Rows of a statement that only reads ([`Db::select`]).
pub(crate) fn query(db: &dyn Db, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
    db.select(sql, params).map_err(Error::from)
}

/// The first row of a statement that only reads, if any.
pub(crate) fn one(db: &dyn Db, sql: &str, params: &[Value]) -> Result<Option<Row>> {
    Ok(query(db, sql, params)?.into_iter().next())
}

/// Run a statement that writes.
pub(crate) fn exec(db: &dyn Db, sql: &str, params: &[Value]) -> Result<()> {
    db.execute(sql, params).map(|_| ()).map_err(Error::from)
}

/// Rows of a statement that writes and answers (`… RETURNING`).
pub(crate) fn returning(db: &dyn Db, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
    db.execute(sql, params).map_err(Error::from)
}

/// The first row of a statement that writes and answers (`… RETURNING`).
pub(crate) fn returning_one(db: &dyn Db, sql: &str, params: &[Value]) -> Result<Option<Row>> {
    Ok(returning(db, sql, params)?.into_iter().next())
}

/// Rows changed by the connection's last INSERT, UPDATE or DELETE.
pub(crate) fn changes(db: &dyn Db) -> Result<i64> {
    Ok(db.changes()? as i64)
}

/// Run `f` inside `BEGIN IMMEDIATE … COMMIT`: the write lock is taken first,
/// so the transaction never fails half-way on a lock upgrade, and everything
/// `f` reads stays valid until the commit. Any error rolls back. When the
/// database itself gave up on the transaction ([`ErrorKind::Unavailable`]),
/// `f` runs again, up to [`TRANSACTION_ATTEMPTS`] times in all: `f` must
/// not keep effects outside the database between runs.
pub fn transaction<T>(db: &dyn Db, mut f: impl FnMut(&dyn Db) -> Result<T>) -> Result<T> {
    let mut attempt = 1;
    loop {
        match transaction_once(db, &mut f) {
            // The database rolled the transaction back on its own (a remote
            // server's lock or stream timeout): nothing of it committed, so
            // running it again cannot double anything.
            Err(e) if e.kind == ErrorKind::Unavailable && attempt < TRANSACTION_ATTEMPTS => {
                attempt += 1;
            }
            r => return r,
        }
    }
}

/// Runs of a write transaction the database gave up on, before the
/// `Unavailable` error reaches the caller.
pub const TRANSACTION_ATTEMPTS: u32 = 3;

fn transaction_once<T>(db: &dyn Db, f: &mut impl FnMut(&dyn Db) -> Result<T>) -> Result<T> {
    db.begin(TxMode::Write)?;
    match f(db) {
        Ok(v) => match db.commit() {
            Ok(()) => Ok(v),
            Err(e) => {
                let _ = db.rollback();
                Err(e.into())
            }
        },
        Err(e) => {
            let _ = db.rollback();
            Err(e)
        }
    }
}

/// A read-only snapshot: `BEGIN` (deferred) … `COMMIT`, so several reads see
/// one state of the database. Run again (up to [`TRANSACTION_ATTEMPTS`])
/// when the database gave up on it (`Unavailable`): a read changes nothing.
pub fn read<T>(db: &dyn Db, mut f: impl FnMut(&dyn Db) -> Result<T>) -> Result<T> {
    let mut attempt = 1;
    loop {
        db.begin(TxMode::Read)?;
        let r = f(db);
        // A commit that fails leaves the transaction open on this
        // connection, and every later transaction on it would fail: roll
        // it back then too.
        if r.is_err() || db.commit().is_err() {
            let _ = db.rollback();
        }
        match r {
            Err(e) if e.kind == ErrorKind::Unavailable && attempt < TRANSACTION_ATTEMPTS => {
                attempt += 1;
            }
            r => return r,
        }
    }
}
