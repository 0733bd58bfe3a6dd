//! The engine's seams over Spin: [`SpinDb`], the `Db` of a request or a
//! worker tick, on the backend the Spin variable `database` names —
//! `sqlite` (the default: Spin's database `default`, a local file or a
//! remote libSQL server as the runtime config says, [`sqlite`]) or
//! `postgres` (the server at `postgres_url`, through Spin's outbound
//! PostgreSQL, [`postgres`]) — and [`SpinEnv`], the engine's `Env` on
//! WASI's wall clock and random.

pub mod postgres;
pub mod sqlite;

use engine::{Db, DbError, Dialect, Env, LockWait, Maintenance, Row, TxMode, Value};

pub use postgres::PgDb;
pub use sqlite::SqliteDb;

/// One connection to the app's database.
pub enum SpinDb {
    Sqlite(SqliteDb),
    Postgres(PgDb),
}

impl SpinDb {
    /// Open the app's database, on the backend the variable `database`
    /// names (a component without the variable: SQLite).
    pub fn open() -> Result<SpinDb, engine::Error> {
        let choice = crate::vars::variable("database").unwrap_or_default();
        match choice.trim() {
            "" | "sqlite" => SqliteDb::open().map(SpinDb::Sqlite),
            "postgres" => {
                let url = crate::vars::variable("postgres_url").unwrap_or_default();
                if url.trim().is_empty() {
                    return Err(engine::Error::new(
                        engine::ErrorKind::Storage,
                        "database = \"postgres\" needs the variable postgres_url (e.g. SPIN_VARIABLE_POSTGRES_URL=postgres://user:password@host:5432/spinoff)",
                    ));
                }
                PgDb::open(url.trim()).map(SpinDb::Postgres)
            }
            other => Err(engine::Error::new(
                engine::ErrorKind::Storage,
                format!("variable database = {other:?}: expected \"sqlite\" or \"postgres\""),
            )),
        }
    }

    /// The worker's connection: before each chunk it lets requests that
    /// wait for the write lock go first ([`crate::turns`]; PostgreSQL
    /// queues writers itself).
    pub fn background(self) -> SpinDb {
        match self {
            SpinDb::Sqlite(d) => SpinDb::Sqlite(d.background()),
            pg => pg,
        }
    }

    fn inner(&self) -> &dyn Db {
        match self {
            SpinDb::Sqlite(d) => d,
            SpinDb::Postgres(d) => d,
        }
    }
}

impl Db for SpinDb {
    fn dialect(&self) -> Dialect {
        self.inner().dialect()
    }
    fn execute(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        self.inner().execute(sql, params)
    }
    fn select(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        self.inner().select(sql, params)
    }
    fn changes(&self) -> Result<u64, DbError> {
        self.inner().changes()
    }
    fn last_insert_rowid(&self) -> Result<i64, DbError> {
        self.inner().last_insert_rowid()
    }
    fn begin(&self, mode: TxMode) -> Result<(), DbError> {
        self.inner().begin(mode)
    }
    fn commit(&self) -> Result<(), DbError> {
        self.inner().commit()
    }
    fn rollback(&self) -> Result<(), DbError> {
        self.inner().rollback()
    }
    fn page_size(&self) -> Option<i64> {
        self.inner().page_size()
    }
    fn maintain(&self, task: Maintenance) -> Result<(), DbError> {
        self.inner().maintain(task)
    }
    fn lock_wait(&self, wait: LockWait) -> Result<(), DbError> {
        self.inner().lock_wait(wait)
    }
    fn yield_to_writers(&self) {
        self.inner().yield_to_writers()
    }
    fn writers_waiting(&self) -> bool {
        self.inner().writers_waiting()
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
