//! Typed reads of JSON request bodies. Every accessor fails with a message
//! that names the field and the type it must have; each family wraps the
//! message in its own error shape. `null` counts as absent, as the vendors'
//! APIs treat it.

use serde_json::{Map, Value};

/// A body that must be a JSON object. An empty body is an empty object
/// when `empty_ok`, else an error.
pub fn object(bytes: &[u8], empty_ok: bool) -> Result<Map<String, Value>, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return if empty_ok {
            Ok(Map::new())
        } else {
            Err("the body must be a JSON object, and it is empty".into())
        };
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(format!(
            "the body must be a JSON object, not {}",
            kind(&other)
        )),
        Err(e) => Err(format!("the body is not valid JSON: {e}")),
    }
}

/// The JSON type name of `v`, for messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn wrong(k: &str, want: &str, v: &Value) -> String {
    format!("{k} must be {want}, not {}", kind(v))
}

/// An optional string field.
pub fn opt_str<'a>(m: &'a Map<String, Value>, k: &str) -> Result<Option<&'a str>, String> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(wrong(k, "a string", v)),
    }
}

/// An optional string field that must be one of `allowed`.
pub fn opt_enum<'a>(
    m: &'a Map<String, Value>,
    k: &str,
    allowed: &[&str],
) -> Result<Option<&'a str>, String> {
    match opt_str(m, k)? {
        Some(s) if !allowed.contains(&s) => {
            Err(format!("{k} {s:?} is not one of {}", allowed.join(", ")))
        }
        other => Ok(other),
    }
}

/// An optional boolean field.
pub fn opt_bool(m: &Map<String, Value>, k: &str) -> Result<Option<bool>, String> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(wrong(k, "true or false", v)),
    }
}

/// An optional array field.
pub fn opt_array<'a>(m: &'a Map<String, Value>, k: &str) -> Result<Option<&'a Vec<Value>>, String> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a)),
        Some(v) => Err(wrong(k, "an array", v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn accessors_name_the_field_and_the_type() {
        let b = m(json!({"s": "x", "n": 3, "b": true, "z": null, "a": [1]}));
        assert_eq!(opt_str(&b, "s").unwrap(), Some("x"));
        assert_eq!(opt_str(&b, "z").unwrap(), None);
        assert_eq!(
            opt_str(&b, "n").unwrap_err(),
            "n must be a string, not a number"
        );
        assert_eq!(
            opt_bool(&b, "s").unwrap_err(),
            "s must be true or false, not a string"
        );
        assert!(opt_enum(&b, "s", &["y"])
            .unwrap_err()
            .contains("is not one of y"));
        assert_eq!(opt_array(&b, "a").unwrap().unwrap().len(), 1);
        assert!(object(b"[1]", false).unwrap_err().contains("not an array"));
        assert!(object(b"", true).unwrap().is_empty());
        assert!(object(b" ", false).is_err());
        assert!(object(b"{", false).unwrap_err().contains("not valid JSON"));
    }
}
