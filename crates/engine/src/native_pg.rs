//! The storage seam over the `postgres` crate (feature `native-pg`), for
//! native tests, the simulation and benchmarks on PostgreSQL. It behaves
//! as the app's backend over Spin's `spin:postgres/postgres@4.0.0` does
//! (`spin_adapter`'s PostgreSQL `Db`): the same placeholders, transactions,
//! error kinds and values ([`crate::dialect::postgres`]), and parameters
//! typed strictly by what the server inferred (an integer only where it
//! expects a `BIGINT`), as Spin's host passes them.

use std::cell::{Cell, RefCell};

use postgres::types::{FromSql, IsNull, ToSql, Type};

use crate::db::{Db, DbError, Dialect, LockWait, Maintenance, Row, TxMode, Value};
use crate::dialect::postgres as pg;

/// One connection to a PostgreSQL database.
pub struct NativePgDb {
    client: RefCell<postgres::Client>,
    changes: Cell<u64>,
    wait: Cell<LockWait>,
    /// Never wait for the write lock, whatever [`Db::lock_wait`] says.
    never_wait: bool,
}

impl NativePgDb {
    /// Connect to `url` (`postgres://user@host:port/db`), without TLS.
    pub fn open(url: &str) -> Result<NativePgDb, DbError> {
        let client = postgres::Client::connect(url, postgres::NoTls).map_err(map_err)?;
        Ok(NativePgDb {
            client: RefCell::new(client),
            changes: Cell::new(0),
            wait: Cell::new(LockWait::Default),
            never_wait: false,
        })
    }

    /// A connection that never waits: the write lock is tried once
    /// ([`DbError::Busy`] when taken), and a statement waits at most a few
    /// milliseconds for a row another connection locked (`lock_timeout`,
    /// `Busy` too). For the simulation, where a waiting actor would hold
    /// the baton.
    pub fn never_waiting(mut self) -> Result<NativePgDb, DbError> {
        self.never_wait = true;
        self.execute("SET lock_timeout = 5", &[])?;
        Ok(self)
    }
}

fn map_err(e: postgres::Error) -> DbError {
    match e.as_db_error() {
        Some(d) => pg::classify(d.code().code(), format!("{}: {}", d.code().code(), d.message())),
        None if e.is_closed() => DbError::Unavailable(e.to_string()),
        None => DbError::Other(e.to_string()),
    }
}

/// A parameter as the server typed it: a NULL fits any type.
#[derive(Debug)]
enum Param<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
}

impl ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Param::Null => Ok(IsNull::Yes),
            Param::Int(v) => v.to_sql(ty, out),
            Param::Real(v) => v.to_sql(ty, out),
            Param::Text(v) => v.to_sql(ty, out),
            Param::Blob(v) => v.to_sql(ty, out),
        }
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    fn to_sql_checked(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        // Strict, as Spin's host: each value only where its own type is.
        let ok = match self {
            Param::Null => true,
            Param::Int(_) => <i64 as ToSql>::accepts(ty),
            Param::Real(_) => <f64 as ToSql>::accepts(ty),
            Param::Text(_) => <&str as ToSql>::accepts(ty),
            Param::Blob(_) => <&[u8] as ToSql>::accepts(ty),
        };
        if !ok {
            return Err(format!("cannot pass {self:?} as a {ty}").into());
        }
        self.to_sql(ty, out)
    }
}

/// A column's value, as the engine's [`Value`].
struct Cell_(Value);

impl<'a> FromSql<'a> for Cell_ {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Cell_, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Cell_(match *ty {
            Type::BOOL => Value::Integer(bool::from_sql(ty, raw)? as i64),
            Type::INT2 => Value::Integer(i16::from_sql(ty, raw)? as i64),
            Type::INT4 => Value::Integer(i32::from_sql(ty, raw)? as i64),
            Type::INT8 => Value::Integer(i64::from_sql(ty, raw)?),
            Type::FLOAT4 => Value::Real(f32::from_sql(ty, raw)? as f64),
            Type::FLOAT8 => Value::Real(f64::from_sql(ty, raw)?),
            Type::BYTEA => Value::Blob(raw.to_vec()),
            Type::NUMERIC => pg::numeric_text(raw)
                .and_then(|t| pg::numeric_value(&t))
                .map_err(|e| format!("{e:?}"))?,
            _ => Value::Text(String::from_sql(&Type::TEXT, raw)?),
        }))
    }
    fn from_sql_null(_: &Type) -> Result<Cell_, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Cell_(Value::Null))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

impl NativePgDb {
    fn run(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        let (sql, order) = pg::placeholders(sql);
        let params: Vec<Param> = pg::pick(params, &order)?
            .into_iter()
            .map(|v| match v {
                Value::Null => Param::Null,
                Value::Integer(i) => Param::Int(*i),
                Value::Real(f) => Param::Real(*f),
                Value::Text(s) => Param::Text(s),
                Value::Blob(b) => Param::Blob(b),
            })
            .collect();
        let refs: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let mut client = self.client.borrow_mut();
        let stmt = client.prepare(&sql).map_err(map_err)?;
        if pg::answers_rows(&sql) {
            let rows = client.query(&stmt, &refs).map_err(map_err)?;
            self.changes.set(rows.len() as u64);
            rows.iter()
                .map(|r| {
                    (0..r.len())
                        .map(|i| {
                            r.try_get::<_, Cell_>(i)
                                .map(|c| c.0)
                                .map_err(|e| DbError::Other(format!("column {i}: {e}")))
                        })
                        .collect::<Result<Vec<_>, _>>()
                        .map(Row)
                })
                .collect()
        } else {
            let n = client.execute(&stmt, &refs).map_err(map_err)?;
            self.changes.set(n);
            Ok(Vec::new())
        }
    }
}

impl Db for NativePgDb {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn execute(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        let r = self.run(sql, params);
        if let Err(e) = &r {
            if std::env::var_os("SPINOFF_TRACE_SQL").is_some() {
                eprintln!("sql error {e:?} in: {sql}  params {params:?}");
            }
        }
        r
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
        let wait = !self.never_wait && self.wait.get() == LockWait::Default;
        crate::dialect::begin(self, mode, wait)
    }

    fn maintain(&self, task: Maintenance) -> Result<(), DbError> {
        crate::dialect::maintain(self, task)
    }

    fn lock_wait(&self, wait: LockWait) -> Result<(), DbError> {
        self.wait.set(wait);
        Ok(())
    }
}
