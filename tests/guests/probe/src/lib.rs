//! A tiny guest that exposes each Spin interface over HTTP, so the host's
//! tests can exercise key-value, SQLite, variables and routing through real
//! requests:
//!
//! - `GET|PUT|DELETE /kv/{store}/{key}`, `HEAD` for exists, `GET /kv/{store}` for keys;
//! - `POST /sql/{database}`: a JSON list of `{sql, params}` run in order on one
//!   connection; each parameter is `{"integer": 1}`, `{"real": 1.5}`,
//!   `{"text": "x"}`, `{"blob": [1, 2]}` or `null`; rows come back the same way;
//! - `POST /pg`: `{address, statements: [{sql, params, query}]}` run in order
//!   on one `spin:postgres/postgres@4.0.0` connection (`query`: true for
//!   `query`, else `execute`); each parameter is `{"int64": 1}`,
//!   `{"int32": 1}`, `{"boolean": true}`, `{"floating64": 1.5}`,
//!   `{"str": "x"}`, `{"binary": [1, 2]}`, `{"jsonb": {...}}` or `null`;
//!   rows come back as `{type: value}` (the WIT case's name), `execute` as
//!   the count;
//! - `GET /var/{name}`: a variable's value;
//! - anything else: the method, URI and `spin-*` headers as JSON, and every
//!   header the guest received under `headers` (name → value).
//!
//! Errors answer 409 with the WIT error's debug text, so tests can match them.

use serde_json::{json, Value};
use spin_sdk::http::{IntoResponse, Method, Request, Response};
use spin_sdk::http_component;
use spin_sdk::{key_value, pg4, sqlite, variables};

fn reply(status: u16, body: impl Into<Vec<u8>>) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.into())
        .build()
}

fn err(e: impl std::fmt::Debug) -> Response {
    reply(409, format!("{e:?}"))
}

fn json_escape(s: &str) -> String {
    Value::from(s).to_string()
}

#[http_component]
fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let info = req
        .header("spin-path-info")
        .and_then(|h| h.as_str())
        .unwrap_or("")
        .to_string();
    let parts: Vec<&str> = info.split('/').filter(|s| !s.is_empty()).collect();
    Ok(match parts.as_slice() {
        ["kv", store, key] => kv(&req, store, key),
        ["kv", store] => match key_value::Store::open(store).and_then(|s| s.get_keys()) {
            Ok(mut keys) => {
                keys.sort();
                let list: Vec<String> = keys.iter().map(|k| json_escape(k)).collect();
                reply(200, format!("[{}]", list.join(",")))
            }
            Err(e) => err(e),
        },
        ["sql", db] => sql(db, req.body()),
        ["pg"] => pg(req.body()),
        ["var", name] => match variables::get(name) {
            Ok(v) => reply(200, json_escape(&v)),
            Err(e) => err(e),
        },
        _ => {
            let mut fields = vec![
                format!("\"method\":{}", json_escape(&format!("{:?}", req.method()))),
                format!("\"uri\":{}", json_escape(req.uri())),
            ];
            let all: Vec<String> = req
                .headers()
                .map(|(name, value)| {
                    format!(
                        "{}:{}",
                        json_escape(name),
                        json_escape(value.as_str().unwrap_or(""))
                    )
                })
                .collect();
            fields.push(format!("\"headers\":{{{}}}", all.join(",")));
            for (name, value) in req.headers() {
                if name.starts_with("spin-") {
                    fields.push(format!(
                        "{}:{}",
                        json_escape(name),
                        json_escape(value.as_str().unwrap_or(""))
                    ));
                }
            }
            reply(200, format!("{{{}}}", fields.join(",")))
        }
    })
}

fn kv(req: &Request, store: &str, key: &str) -> Response {
    let store = match key_value::Store::open(store) {
        Ok(s) => s,
        Err(e) => return err(e),
    };
    match req.method() {
        Method::Get => match store.get(key) {
            Ok(Some(v)) => reply(200, v),
            Ok(None) => reply(404, "null"),
            Err(e) => err(e),
        },
        Method::Put => match store.set(key, req.body()) {
            Ok(()) => reply(204, ""),
            Err(e) => err(e),
        },
        Method::Delete => match store.delete(key) {
            Ok(()) => reply(204, ""),
            Err(e) => err(e),
        },
        Method::Head => match store.exists(key) {
            Ok(true) => reply(200, ""),
            Ok(false) => reply(404, ""),
            Err(e) => err(e),
        },
        _ => reply(405, ""),
    }
}

fn sql(db: &str, body: &[u8]) -> Response {
    let Ok(Value::Array(stmts)) = serde_json::from_slice::<Value>(body) else {
        return reply(400, "\"expected a JSON array of {sql, params}\"");
    };
    let conn = match sqlite::Connection::open(db) {
        Ok(c) => c,
        Err(e) => return err(e),
    };
    let mut results = Vec::new();
    for st in stmts {
        let sql = st["sql"].as_str().unwrap_or("");
        let params: Vec<sqlite::Value> = st["params"]
            .as_array()
            .map(|ps| ps.iter().map(to_value).collect())
            .unwrap_or_default();
        match conn.execute(sql, &params) {
            Ok(r) => {
                let rows: Vec<Value> = r
                    .rows
                    .iter()
                    .map(|row| Value::Array(row.values.iter().map(from_value).collect()))
                    .collect();
                results.push(json!({"columns": r.columns, "rows": rows}));
            }
            Err(e) => return err(e),
        }
    }
    reply(200, Value::Array(results).to_string())
}

fn to_value(j: &Value) -> sqlite::Value {
    if let Some(i) = j.get("integer").and_then(Value::as_i64) {
        sqlite::Value::Integer(i)
    } else if let Some(f) = j.get("real").and_then(Value::as_f64) {
        sqlite::Value::Real(f)
    } else if let Some(s) = j.get("text").and_then(Value::as_str) {
        sqlite::Value::Text(s.to_string())
    } else if let Some(b) = j.get("blob").and_then(Value::as_array) {
        sqlite::Value::Blob(b.iter().map(|x| x.as_u64().unwrap_or(0) as u8).collect())
    } else {
        sqlite::Value::Null
    }
}

fn from_value(v: &sqlite::Value) -> Value {
    match v {
        sqlite::Value::Integer(i) => json!({ "integer": i }),
        sqlite::Value::Real(f) => json!({ "real": f }),
        sqlite::Value::Text(s) => json!({ "text": s }),
        sqlite::Value::Blob(b) => json!({ "blob": b }),
        sqlite::Value::Null => Value::Null,
    }
}

fn pg(body: &[u8]) -> Response {
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return reply(400, "\"expected {address, statements}\"");
    };
    let conn = match pg4::Connection::open(req["address"].as_str().unwrap_or("")) {
        Ok(c) => c,
        Err(e) => return err(e),
    };
    let mut results = Vec::new();
    for st in req["statements"].as_array().cloned().unwrap_or_default() {
        let sql = st["sql"].as_str().unwrap_or("");
        let params: Vec<pg4::ParameterValue> = st["params"]
            .as_array()
            .map(|ps| ps.iter().map(to_pg).collect())
            .unwrap_or_default();
        if st["query"].as_bool().unwrap_or(false) {
            match conn.query(sql, &params) {
                Ok(r) => {
                    let rows: Vec<Value> = r
                        .rows
                        .iter()
                        .map(|row| Value::Array(row.iter().map(from_pg).collect()))
                        .collect();
                    let columns: Vec<Value> = r
                        .columns
                        .iter()
                        .map(|c| json!([c.name, format!("{:?}", c.data_type)]))
                        .collect();
                    results.push(json!({"columns": columns, "rows": rows}));
                }
                Err(e) => return err(e),
            }
        } else {
            match conn.execute(sql, &params) {
                Ok(n) => results.push(json!(n)),
                Err(e) => return err(e),
            }
        }
    }
    reply(200, Value::Array(results).to_string())
}

fn to_pg(j: &Value) -> pg4::ParameterValue {
    use pg4::ParameterValue as P;
    let Some((k, v)) = j.as_object().and_then(|o| o.iter().next()) else {
        return P::DbNull;
    };
    match k.as_str() {
        "int64" => P::Int64(v.as_i64().unwrap_or(0)),
        "int32" => P::Int32(v.as_i64().unwrap_or(0) as i32),
        "boolean" => P::Boolean(v.as_bool().unwrap_or(false)),
        "floating64" => P::Floating64(v.as_f64().unwrap_or(0.0)),
        "str" => P::Str(v.as_str().unwrap_or("").to_string()),
        "binary" => P::Binary(
            v.as_array()
                .map(|b| b.iter().map(|x| x.as_u64().unwrap_or(0) as u8).collect())
                .unwrap_or_default(),
        ),
        "jsonb" => P::Jsonb(v.to_string().into_bytes()),
        _ => P::DbNull,
    }
}

fn from_pg(v: &pg4::DbValue) -> Value {
    use pg4::DbValue as D;
    match v {
        D::Boolean(b) => json!({ "boolean": b }),
        D::Int16(i) => json!({ "int16": i }),
        D::Int32(i) => json!({ "int32": i }),
        D::Int64(i) => json!({ "int64": i }),
        D::Floating64(f) => json!({ "floating64": f }),
        D::Str(s) => json!({ "str": s }),
        D::Binary(b) => json!({ "binary": b }),
        D::Jsonb(b) => json!({ "jsonb": serde_json::from_slice::<Value>(b).unwrap_or(Value::Null) }),
        D::DbNull => Value::Null,
        other => json!({ "other": format!("{other:?}") }),
    }
}
