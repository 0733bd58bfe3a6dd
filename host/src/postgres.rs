//! `spin:postgres/postgres@4.0.0`, Spin's outbound PostgreSQL, as Spin 3.5's
//! host serves it: `connection.open(address)` takes a connection from a
//! pool per address (`deadpool-postgres` over `tokio-postgres`), `query`
//! and `execute` run one statement with the guest's parameters (typed by
//! the server's inference, a NULL fitting any type), and the connection
//! goes back to its pool when the guest drops it.
//!
//! A component may open only an address its manifest's
//! `allowed_outbound_hosts` allows (`postgres://host:port`, either part
//! may be `*`, `{{ variable }}` templates resolved as Spin does); other
//! addresses are `connection-failed`, as in Spin. No TLS: an address
//! asking for it (`sslmode=require`) is refused with a clear error (this
//! host serves tests and local runs; Spin itself speaks TLS).
//!
//! A guest that drops a connection inside a transaction (a trap, or a
//! missing `COMMIT`) leaves nothing behind: the connection is rolled back
//! before it is pooled again.

// The error type is the interface's own (WIT `error`), large by its design.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::sync::Mutex;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};
use wasmtime::component::Resource;

use crate::bindings::blocking;
use crate::bindings::spin::postgres::postgres::{
    self, Column, DbDataType, DbError, DbValue, Error, ParameterValue, QueryError, RowSet,
};

/// Connections at most per address and app (Spin's pool default is larger;
/// a test host runs many apps on one server).
const POOL_SIZE: usize = 16;

/// The app's pools by address, and the runtime their futures run on (guest
/// calls are synchronous; see [`blocking`]).
pub struct Pools {
    pools: Mutex<BTreeMap<String, Pool>>,
    rt: Option<tokio::runtime::Runtime>,
}

impl Pools {
    pub fn new() -> anyhow::Result<Pools> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("postgres")
            .enable_all()
            .build()?;
        Ok(Pools {
            pools: Mutex::new(BTreeMap::new()),
            rt: Some(rt),
        })
    }

    fn run<F: std::future::Future>(&self, f: F) -> F::Output {
        let rt = self.rt.as_ref().expect("runtime lives until drop");
        blocking(|| rt.block_on(f))
    }

    fn pool(&self, address: &str) -> Result<Pool, Error> {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = pools.get(address) {
            return Ok(p.clone());
        }
        let config: tokio_postgres::Config = address
            .parse()
            .map_err(|e| Error::ConnectionFailed(format!("invalid address: {e}")))?;
        if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
            return Err(Error::ConnectionFailed(
                "this host does not speak TLS to PostgreSQL (sslmode=require); use Spin, or a server on a trusted network with sslmode=disable".into(),
            ));
        }
        let manager = Manager::from_config(
            config,
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(std::time::Duration::from_secs(30)))
            .create_timeout(Some(std::time::Duration::from_secs(10)))
            .build()
            .map_err(|e| Error::ConnectionFailed(e.to_string()))?;
        pools.insert(address.to_string(), pool.clone());
        Ok(pool)
    }
}

impl Drop for Pools {
    fn drop(&mut self) {
        // The host may be dropped on an async thread, where dropping a
        // runtime (which waits for its threads) is not allowed.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// A guest's open connection (the resource behind `connection`).
pub struct OpenConnection {
    client: Option<Object>,
    /// A `BEGIN` went out and no `COMMIT`/`ROLLBACK` after it: roll back
    /// before the connection is pooled again.
    in_transaction: bool,
}

/// What `spin:postgres/postgres` sees: the app's pools, the addresses the
/// component may reach, and the store's resource table.
pub struct PostgresView<'a> {
    pub pools: &'a Pools,
    pub allowed: &'a [String],
    pub table: &'a mut wasmtime::component::ResourceTable,
}

/// Marks `spin:postgres/postgres` for the linker.
pub struct Postgres;

impl wasmtime::component::HasData for Postgres {
    type Data<'a> = PostgresView<'a>;
}

/// Whether `allowed` (a manifest's `allowed_outbound_hosts`, templates
/// already rendered) lets a component reach the server of `address`.
pub fn allows(allowed: &[String], address: &str) -> Result<(), String> {
    let config: tokio_postgres::Config = address
        .parse()
        .map_err(|e| format!("invalid address: {e}"))?;
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .collect();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let host = hosts
        .first()
        .ok_or_else(|| "the address names no host".to_string())?;
    let ok = allowed.iter().any(|a| {
        let Some(rest) = a.strip_prefix("postgres://") else {
            return a == "*://*:*";
        };
        let (h, p) = match rest.rsplit_once(':') {
            Some((h, p)) => (h, p),
            None => (rest, "5432"),
        };
        (h == "*" || h.eq_ignore_ascii_case(host)) && (p == "*" || p == port.to_string())
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "address postgres://{host}:{port} is not permitted (allowed_outbound_hosts)"
        ))
    }
}

impl PostgresView<'_> {
    /// One statement on the guest's connection: prepared (and cached on
    /// the connection), its parameters converted, then `f`.
    fn run<T, F>(
        &mut self,
        c: Resource<OpenConnection>,
        statement: &str,
        params: Vec<ParameterValue>,
        f: F,
    ) -> wasmtime::Result<Result<T, Error>>
    where
        F: AsyncFnOnce(&Object, tokio_postgres::Statement, Vec<&(dyn ToSql + Sync)>) -> Result<T, Error>,
    {
        let pools = self.pools;
        let open = self.table.get_mut(&c)?;
        note_transaction(open, statement);
        let Some(client) = open.client.as_ref() else {
            return Ok(Err(Error::ConnectionFailed("connection closed".into())));
        };
        let params = match to_params(params) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        Ok(pools.run(async {
            let stmt = client.prepare_cached(statement).await.map_err(query_error)?;
            let refs: Vec<&(dyn ToSql + Sync)> =
                params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
            f(client, stmt, refs).await
        }))
    }
}

impl postgres::Host for PostgresView<'_> {}

impl postgres::HostConnection for PostgresView<'_> {
    fn open(&mut self, address: String) -> wasmtime::Result<Result<Resource<OpenConnection>, Error>> {
        if let Err(why) = allows(self.allowed, &address) {
            return Ok(Err(Error::ConnectionFailed(why)));
        }
        let pool = match self.pools.pool(&address) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let client = match self.pools.run(pool.get()) {
            Ok(c) => c,
            Err(e) => return Ok(Err(Error::ConnectionFailed(e.to_string()))),
        };
        Ok(Ok(self.table.push(OpenConnection {
            client: Some(client),
            in_transaction: false,
        })?))
    }

    fn query(
        &mut self,
        c: Resource<OpenConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<Result<RowSet, Error>> {
        self.run(c, &statement, params, async |client, stmt, refs| {
            let rows = client.query(&stmt, &refs).await.map_err(query_error)?;
            let columns = stmt
                .columns()
                .iter()
                .map(|c| Column {
                    name: c.name().to_string(),
                    data_type: data_type(c.type_()),
                })
                .collect();
            let rows = rows
                .iter()
                .map(|r| (0..r.len()).map(|i| db_value(r, i)).collect::<Result<Vec<_>, _>>())
                .collect::<Result<Vec<_>, _>>()?;
            Ok(RowSet { columns, rows })
        })
    }

    fn execute(
        &mut self,
        c: Resource<OpenConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<Result<u64, Error>> {
        self.run(c, &statement, params, async |client, stmt, refs| {
            client.execute(&stmt, &refs).await.map_err(query_error)
        })
    }

    fn drop(&mut self, c: Resource<OpenConnection>) -> wasmtime::Result<()> {
        let mut open = self.table.delete(c)?;
        if let Some(client) = open.client.take() {
            if open.in_transaction {
                // Pooled again only once rolled back; a connection that
                // cannot roll back is closed instead.
                if self.pools.run(client.batch_execute("ROLLBACK")).is_err() {
                    drop(Object::take(client));
                }
            }
        }
        Ok(())
    }
}

/// Track `BEGIN … COMMIT` from the statement's first word.
fn note_transaction(open: &mut OpenConnection, statement: &str) {
    let word = statement
        .trim_start()
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    match word.as_str() {
        "BEGIN" | "START" => open.in_transaction = true,
        "COMMIT" | "ROLLBACK" | "END" | "ABORT" => open.in_transaction = false,
        _ => {}
    }
}

fn query_error(e: tokio_postgres::Error) -> Error {
    match e.as_db_error() {
        Some(db) => Error::QueryFailed(QueryError::DbError(DbError {
            as_text: db.to_string(),
            severity: db.severity().to_string(),
            code: db.code().code().to_string(),
            message: db.message().to_string(),
            detail: db.detail().map(str::to_string),
            extras: Vec::new(),
        })),
        None if e.is_closed() => Error::ConnectionFailed(e.to_string()),
        None => Error::QueryFailed(QueryError::Text(e.to_string())),
    }
}

/// A NULL parameter: fits whatever type the server inferred.
#[derive(Debug)]
struct Null;

impl ToSql for Null {
    fn to_sql(
        &self,
        _: &Type,
        _: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        Ok(IsNull::Yes)
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    to_sql_checked!();
}

type Param = Box<dyn ToSql + Send + Sync>;

fn to_params(params: Vec<ParameterValue>) -> Result<Vec<Param>, Error> {
    params
        .into_iter()
        .enumerate()
        .map(|(i, p)| -> Result<Param, Error> {
            Ok(match p {
                ParameterValue::Boolean(v) => Box::new(v),
                ParameterValue::Int8(v) => Box::new(v),
                ParameterValue::Int16(v) => Box::new(v),
                ParameterValue::Int32(v) => Box::new(v),
                ParameterValue::Int64(v) => Box::new(v),
                ParameterValue::Floating32(v) => Box::new(v),
                ParameterValue::Floating64(v) => Box::new(v),
                ParameterValue::Str(v) => Box::new(v),
                ParameterValue::Binary(v) => Box::new(v),
                ParameterValue::Jsonb(v) => Box::new(
                    serde_json::from_slice::<serde_json::Value>(&v).map_err(|e| {
                        Error::BadParameter(format!("parameter {}: jsonb: {e}", i + 1))
                    })?,
                ),
                ParameterValue::Uuid(v) => Box::new(uuid::Uuid::parse_str(&v).map_err(|e| {
                    Error::BadParameter(format!("parameter {}: uuid: {e}", i + 1))
                })?),
                ParameterValue::Timestamp(v) => Box::new(
                    chrono::DateTime::from_timestamp(v, 0)
                        .ok_or_else(|| {
                            Error::BadParameter(format!("parameter {}: timestamp out of range", i + 1))
                        })?
                        .naive_utc(),
                ),
                ParameterValue::DbNull => Box::new(Null),
                other => {
                    return Err(Error::BadParameter(format!(
                        "parameter {}: this host does not pass {other:?} parameters",
                        i + 1
                    )))
                }
            })
        })
        .collect()
}

fn data_type(t: &Type) -> DbDataType {
    match *t {
        Type::BOOL => DbDataType::Boolean,
        Type::CHAR => DbDataType::Int8,
        Type::INT2 => DbDataType::Int16,
        Type::INT4 => DbDataType::Int32,
        Type::INT8 => DbDataType::Int64,
        Type::FLOAT4 => DbDataType::Floating32,
        Type::FLOAT8 => DbDataType::Floating64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => DbDataType::Str,
        Type::BYTEA => DbDataType::Binary,
        Type::TIMESTAMP => DbDataType::Datetime,
        Type::UUID => DbDataType::Uuid,
        Type::JSONB | Type::JSON => DbDataType::Jsonb,
        Type::NUMERIC => DbDataType::Decimal,
        _ => DbDataType::Other(t.name().to_string()),
    }
}

/// Raw bytes of a value of a type this host does not convert.
struct Raw(Vec<u8>);

impl<'a> FromSql<'a> for Raw {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Raw, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(raw.to_vec()))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

fn db_value(row: &tokio_postgres::Row, i: usize) -> Result<DbValue, Error> {
    fn get<'a, T: FromSql<'a>>(row: &'a tokio_postgres::Row, i: usize) -> Result<Option<T>, Error> {
        row.try_get::<_, Option<T>>(i)
            .map_err(|e| Error::ValueConversionFailed(format!("column {i}: {e}")))
    }
    let t = row.columns()[i].type_().clone();
    let v = match t {
        Type::BOOL => get::<bool>(row, i)?.map(DbValue::Boolean),
        Type::CHAR => get::<i8>(row, i)?.map(DbValue::Int8),
        Type::INT2 => get::<i16>(row, i)?.map(DbValue::Int16),
        Type::INT4 => get::<i32>(row, i)?.map(DbValue::Int32),
        Type::INT8 => get::<i64>(row, i)?.map(DbValue::Int64),
        Type::FLOAT4 => get::<f32>(row, i)?.map(DbValue::Floating32),
        Type::FLOAT8 => get::<f64>(row, i)?.map(DbValue::Floating64),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
            get::<String>(row, i)?.map(DbValue::Str)
        }
        Type::BYTEA => get::<Vec<u8>>(row, i)?.map(DbValue::Binary),
        Type::UUID => get::<uuid::Uuid>(row, i)?.map(|u| DbValue::Uuid(u.to_string())),
        Type::NUMERIC => {
            get::<rust_decimal::Decimal>(row, i)?.map(|d| DbValue::Decimal(d.to_string()))
        }
        Type::JSONB | Type::JSON => get::<serde_json::Value>(row, i)?
            .map(|j| DbValue::Jsonb(serde_json::to_vec(&j).unwrap_or_default())),
        Type::TIMESTAMP => get::<chrono::NaiveDateTime>(row, i)?.map(|d| {
            use chrono::{Datelike, Timelike};
            DbValue::Datetime((
                d.year(),
                d.month() as u8,
                d.day() as u8,
                d.hour() as u8,
                d.minute() as u8,
                d.second() as u8,
                d.nanosecond(),
            ))
        }),
        _ => get::<Raw>(row, i)?.map(|r| DbValue::Unsupported(r.0)),
    };
    Ok(v.unwrap_or(DbValue::DbNull))
}

#[cfg(test)]
mod tests {
    use super::allows;

    #[test]
    fn outbound_hosts_decide_which_servers_a_component_reaches() {
        let allowed = vec!["postgres://db.internal:6543".to_string()];
        assert!(allows(&allowed, "postgres://u:p@db.internal:6543/app").is_ok());
        assert!(allows(&allowed, "host=db.internal port=6543 user=u").is_ok());
        let e = allows(&allowed, "postgres://u@db.internal/app").unwrap_err();
        assert!(e.contains("postgres://db.internal:5432 is not permitted"), "{e}");
        assert!(allows(&allowed, "postgres://u@other:6543/app").is_err());
        assert!(allows(&["postgres://*:*".into()], "postgres://u@any:1/x").is_ok());
        assert!(allows(&["postgres://*:5432".into()], "postgres://u@any/x").is_ok());
        assert!(allows(&["https://*:*".into()], "postgres://u@any/x").is_err());
        assert!(allows(&allowed, "postgres://[bad").is_err());
    }
}
