//! `fermyon:spin/sqlite@2.0.0`: database `default` is `<state>/sqlite_db.db`,
//! as under `spin up`.
//!
//! Each `connection.open` gets its own rusqlite connection (journal mode as the
//! file has it, 5 s busy timeout), so statements on one connection share a
//! transaction and are isolated from other connections, as in Spin. A
//! connection the guest drops goes back to a small idle list — after a
//! `ROLLBACK` if the guest left a transaction open, so nothing crosses from
//! one open to the next but warm caches — and the next open reuses it
//! instead of opening the file and parsing the schema again. A connection
//! of an instance that traps is closed, never reused. A
//! component may open only the databases its manifest lists in
//! `sqlite_databases` (`access-denied` otherwise); names other than `default`
//! would need Spin's runtime configuration, which this host does not read
//! (`no-such-database`).

use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::Connection;
use wasmtime::component::Resource;

use crate::runtime::fermyon::spin::sqlite::{self, Error, QueryResult, RowResult, Value};
use crate::runtime::{blocking, State};

/// A guest's open connection (the resource behind `connection`).
pub struct OpenConnection {
    conn: Connection,
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

impl State {
    fn sqlite_open_impl(
        &mut self,
        database: String,
    ) -> wasmtime::Result<Result<Resource<OpenConnection>, Error>> {
        if !self
            .manifest
            .sqlite_databases
            .iter()
            .any(|d| d == &database)
        {
            return Ok(Err(Error::AccessDenied));
        }
        if database != "default" {
            return Ok(Err(Error::NoSuchDatabase));
        }
        if let Some(conn) = self.shared.sqlite_idle.take() {
            return Ok(Ok(self.table.push(OpenConnection { conn })?));
        }
        let path = self.shared.state_dir.join("sqlite_db.db");
        let opened = blocking(|| -> rusqlite::Result<Connection> {
            let conn = Connection::open(&path)?;
            conn.busy_timeout(std::time::Duration::from_secs(5))?;
            Ok(conn)
        });
        match opened {
            Ok(conn) => Ok(Ok(self.table.push(OpenConnection { conn })?)),
            Err(e) => Ok(Err(Error::Io(e.to_string()))),
        }
    }

    fn sqlite_execute_impl(
        &mut self,
        c: &Resource<OpenConnection>,
        statement: &str,
        parameters: Vec<Value>,
    ) -> wasmtime::Result<Result<QueryResult, Error>> {
        let conn = &self.table.get(c)?.conn;
        Ok(blocking(|| execute(conn, statement, parameters)).map_err(map_error))
    }
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

impl sqlite::Host for State {}

impl sqlite::HostConnection for State {
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
        let open = self.table.delete(c)?;
        // A rollback may touch the file: keep it off the async threads too.
        let idle = &self.shared.sqlite_idle;
        blocking(move || idle.give_back(open.conn));
        Ok(())
    }
}
