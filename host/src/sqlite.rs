//! `fermyon:spin/sqlite@2.0.0`: database `default` is `<state>/sqlite_db.db`,
//! as under `spin up`, unless the runtime config ([`crate::runtime_config`])
//! puts a database elsewhere: another local file, or a remote libSQL server
//! (sqld, Turso) reached over Hrana with the `libsql` crate, as Spin does.
//! A remote connection is a Hrana stream: statements between `BEGIN` and
//! `COMMIT` share it, and the server answers PRAGMAs it refuses with an
//! error the guest sees as it is.
//!
//! Each local `connection.open` gets its own rusqlite connection (journal mode as the
//! file has it, 5 s busy timeout), so statements on one connection share a
//! transaction and are isolated from other connections, as in Spin. A
//! connection the guest drops goes back to a small idle list — after a
//! `ROLLBACK` if the guest left a transaction open, so nothing crosses from
//! one open to the next but warm caches — and the next open reuses it
//! instead of opening the file and parsing the schema again. A connection
//! of an instance that traps is closed, never reused. A
//! component may open only the databases its manifest lists in
//! `sqlite_databases` (`access-denied` otherwise); names other than `default`
//! need the runtime configuration to name them (`no-such-database`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::Connection;
use wasmtime::component::Resource;

use crate::bindings::blocking;
use crate::bindings::fermyon::spin::sqlite::{self, Error, QueryResult, RowResult, Value};
use crate::runtime_config::SqliteConfig;

/// A guest's open connection (the resource behind `connection`).
pub enum OpenConnection {
    /// A local file; goes back to its backend's idle list when dropped.
    Local { conn: Connection, label: String },
    /// A stream to a remote libSQL server.
    Remote {
        conn: libsql::Connection,
        label: String,
    },
}

/// Where one database lives.
pub enum Backend {
    Local { path: PathBuf, idle: Idle },
    Remote(Remote),
}

/// A remote libSQL database. The `libsql` client is async; guest calls are
/// synchronous, so its futures run on a small runtime of the backend's own
/// (from a thread outside any runtime: see [`blocking`]).
pub struct Remote {
    db: libsql::Database,
    /// Always `Some` until dropped.
    rt: Option<tokio::runtime::Runtime>,
}

impl Remote {
    fn run<F: std::future::Future>(&self, f: F) -> F::Output {
        let rt = self.rt.as_ref().expect("runtime lives until drop");
        blocking(|| rt.block_on(f))
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        // The host may be dropped on an async thread, where dropping a
        // runtime (which waits for its threads) is not allowed.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// The app's databases by label: `default` is `<state>/sqlite_db.db` unless
/// the runtime config says otherwise.
pub struct Databases(BTreeMap<String, Backend>);

impl Databases {
    pub fn new(
        state_dir: &Path,
        config: &BTreeMap<String, SqliteConfig>,
    ) -> anyhow::Result<Databases> {
        let mut dbs = BTreeMap::new();
        dbs.insert(
            "default".to_string(),
            Backend::Local {
                path: state_dir.join("sqlite_db.db"),
                idle: Idle::default(),
            },
        );
        for (label, c) in config {
            let backend = match c {
                SqliteConfig::Local { path } => Backend::Local {
                    path: path
                        .clone()
                        .unwrap_or_else(|| state_dir.join(format!("sqlite_{label}.db"))),
                    idle: Idle::default(),
                },
                SqliteConfig::Libsql { url, token } => {
                    let rt = tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(1)
                        .thread_name("libsql")
                        .enable_all()
                        .build()?;
                    let connector = crate::hrana_transport::connector()
                        .with_context(|| format!("[sqlite_database.{label}]: TLS roots"))?;
                    let db = blocking(|| {
                        rt.block_on(
                            libsql::Builder::new_remote(url.clone(), token.clone())
                                .connector(connector)
                                .build(),
                        )
                    })
                    .with_context(|| format!("[sqlite_database.{label}]: libsql {url}"))?;
                    Backend::Remote(Remote { db, rt: Some(rt) })
                }
            };
            dbs.insert(label.clone(), backend);
        }
        Ok(Databases(dbs))
    }

    /// Whether `label` is a remote database (for tools and messages).
    pub fn is_remote(&self, label: &str) -> bool {
        matches!(self.0.get(label), Some(Backend::Remote(_)))
    }
}

/// At most this many idle connections are kept.
const MAX_IDLE: usize = 16;

/// Idle connections to the `default` database.
#[derive(Default)]
pub struct Idle(std::sync::Mutex<Vec<Connection>>);

impl Idle {
    fn take(&self) -> Option<Connection> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    /// Keep `conn` for a later open, once no transaction is open on it.
    fn give_back(&self, conn: Connection) {
        if !conn.is_autocommit() && conn.execute_batch("ROLLBACK").is_err() {
            return;
        }
        let mut idle = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }
}

/// What `fermyon:spin/sqlite` sees of a store's state: the app's
/// databases, the labels the component's manifest lists, and the resource
/// table.
pub struct SqliteView<'a> {
    pub databases: &'a Databases,
    pub allowed: &'a [String],
    pub table: &'a mut wasmtime::component::ResourceTable,
}

/// The linker's projection type for [`SqliteView`].
pub struct Sqlite;

impl wasmtime::component::HasData for Sqlite {
    type Data<'a> = SqliteView<'a>;
}

impl SqliteView<'_> {
    fn sqlite_open_impl(
        &mut self,
        database: String,
    ) -> wasmtime::Result<Result<Resource<OpenConnection>, Error>> {
        if !self.allowed.iter().any(|d| d == &database)
        {
            return Ok(Err(Error::AccessDenied));
        }
        let Some(backend) = self.databases.0.get(&database) else {
            return Ok(Err(Error::NoSuchDatabase));
        };
        let open = match backend {
            Backend::Local { path, idle } => {
                let conn = match idle.take() {
                    Some(conn) => conn,
                    None => {
                        let opened = blocking(|| -> rusqlite::Result<Connection> {
                            let conn = Connection::open(path)?;
                            conn.busy_timeout(std::time::Duration::from_secs(5))?;
                            Ok(conn)
                        });
                        match opened {
                            Ok(conn) => conn,
                            Err(e) => return Ok(Err(Error::Io(e.to_string()))),
                        }
                    }
                };
                OpenConnection::Local {
                    conn,
                    label: database,
                }
            }
            Backend::Remote(r) => match r.db.connect() {
                Ok(conn) => OpenConnection::Remote {
                    conn,
                    label: database,
                },
                Err(e) => return Ok(Err(Error::Io(e.to_string()))),
            },
        };
        Ok(Ok(self.table.push(open)?))
    }

    fn sqlite_execute_impl(
        &mut self,
        c: &Resource<OpenConnection>,
        statement: &str,
        parameters: Vec<Value>,
    ) -> wasmtime::Result<Result<QueryResult, Error>> {
        match self.table.get_mut(c)? {
            OpenConnection::Local { conn, .. } => {
                Ok(blocking(|| execute(conn, statement, parameters)).map_err(map_error))
            }
            OpenConnection::Remote { conn, label } => {
                let Some(Backend::Remote(r)) = self.databases.0.get(label.as_str()) else {
                    return Ok(Err(Error::InvalidConnection));
                };
                let t = std::time::Instant::now();
                let out = r.run(execute_remote(conn, statement, parameters));
                if std::env::var_os("SPINOFF_TRACE_SQL").is_some() {
                    eprintln!(
                        "sql {:>8.2} ms  {}",
                        t.elapsed().as_secs_f64() * 1000.0,
                        &statement[..statement.len().min(90)].replace('\n', " ")
                    );
                    if let Err(e) = &out {
                        eprintln!("sql error {e:?} in: {statement}");
                    }
                }
                Ok(out)
            }
        }
    }
}

/// One statement on a remote stream, rows read in full. (`libsql` drops
/// the cursor response at the step's end, before sqld has finished it; the
/// connector, [`crate::hrana_transport`], reads such a response to its end
/// so that sqld does not take it for a cancel.)
async fn execute_remote(
    conn: &libsql::Connection,
    statement: &str,
    parameters: Vec<Value>,
) -> Result<QueryResult, Error> {
    let params: Vec<libsql::Value> = parameters
        .into_iter()
        .map(|v| match v {
            Value::Integer(i) => libsql::Value::Integer(i),
            Value::Real(f) => libsql::Value::Real(f),
            Value::Text(s) => libsql::Value::Text(s),
            Value::Blob(b) => libsql::Value::Blob(b),
            Value::Null => libsql::Value::Null,
        })
        .collect();
    let io = |e: libsql::Error| Error::Io(e.to_string());
    let mut rows = conn.query(statement, params).await.map_err(io)?;
    let n = rows.column_count();
    let columns: Vec<String> = (0..n)
        .map(|i| rows.column_name(i).unwrap_or_default().to_string())
        .collect();
    let mut out = Vec::new();
    while let Some(row) = rows.next().await.map_err(io)? {
        let mut values = Vec::with_capacity(columns.len());
        for i in 0..n {
            values.push(match row.get_value(i).map_err(io)? {
                libsql::Value::Null => Value::Null,
                libsql::Value::Integer(i) => Value::Integer(i),
                libsql::Value::Real(f) => Value::Real(f),
                libsql::Value::Text(s) => Value::Text(s),
                libsql::Value::Blob(b) => Value::Blob(b),
            });
        }
        out.push(RowResult { values });
    }
    Ok(QueryResult { columns, rows: out })
}

fn execute(
    conn: &Connection,
    statement: &str,
    parameters: Vec<Value>,
) -> rusqlite::Result<QueryResult> {
    let mut st = conn.prepare_cached(statement)?;
    let columns: Vec<String> = st.column_names().into_iter().map(String::from).collect();
    let params: Vec<SqlValue> = parameters.into_iter().map(to_sql).collect();
    let mut rows = st.query(rusqlite::params_from_iter(params.iter()))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut values = Vec::with_capacity(columns.len());
        for i in 0..columns.len() {
            values.push(from_sql(row.get_ref(i)?));
        }
        out.push(RowResult { values });
    }
    Ok(QueryResult { columns, rows: out })
}

fn to_sql(v: Value) -> SqlValue {
    match v {
        Value::Integer(i) => SqlValue::Integer(i),
        Value::Real(f) => SqlValue::Real(f),
        Value::Text(s) => SqlValue::Text(s),
        Value::Blob(b) => SqlValue::Blob(b),
        Value::Null => SqlValue::Null,
    }
}

fn from_sql(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

fn map_error(e: rusqlite::Error) -> Error {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DiskFull) => Error::DatabaseFull,
        _ => Error::Io(e.to_string()),
    }
}

impl sqlite::Host for SqliteView<'_> {}

impl sqlite::HostConnection for SqliteView<'_> {
    fn open(
        &mut self,
        database: String,
    ) -> wasmtime::Result<Result<Resource<OpenConnection>, Error>> {
        self.sqlite_open_impl(database)
    }

    fn execute(
        &mut self,
        c: Resource<OpenConnection>,
        statement: String,
        parameters: Vec<Value>,
    ) -> wasmtime::Result<Result<QueryResult, Error>> {
        self.sqlite_execute_impl(&c, &statement, parameters)
    }

    fn drop(&mut self, c: Resource<OpenConnection>) -> wasmtime::Result<()> {
        match self.table.delete(c)? {
            OpenConnection::Local { conn, label } => {
                if let Some(Backend::Local { idle, .. }) = self.databases.0.get(&label) {
                    // A rollback may touch the file: keep it off the async threads too.
                    blocking(move || idle.give_back(conn));
                }
            }
            // Dropping the client ends the stream; a transaction left open
            // on it is rolled back by the server.
            OpenConnection::Remote { conn, .. } => drop(conn),
        }
        Ok(())
    }
}
