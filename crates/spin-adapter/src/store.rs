//! The engine's seams over Spin: `Db` on `spin_sdk::sqlite` (database
//! `default`), `Env` on WASI's wall clock and random.

use engine::{Db, DbError, Env, Row, Value};
use spin_sdk::sqlite::{Connection, Error as SqlError, Value as SqlValue};

/// One Spin SQLite connection.
pub struct SpinDb {
    conn: Connection,
}

impl SpinDb {
    /// Open database `default`.
    pub fn open() -> Result<SpinDb, engine::Error> {
        Connection::open_default()
            .map(|conn| SpinDb { conn })
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

fn map_err(e: SqlError) -> DbError {
    match e {
        SqlError::Io(m) => {
            let l = m.to_ascii_lowercase();
            if l.contains("locked") || l.contains("busy") {
                DbError::Busy(m)
            } else if l.contains("constraint") {
                DbError::Constraint(m)
            } else {
                DbError::Other(m)
            }
        }
        other => DbError::Other(format!("{other:?}")),
    }
}

impl Db for SpinDb {
    fn execute(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        let params: Vec<SqlValue> = params.iter().map(to_sql).collect();
        let result = self.conn.execute(sql, &params).map_err(map_err)?;
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
