//! Typed reads of JSON request bodies: a family derives `Deserialize` for
//! its request and calls [`parse`], whose messages name the field that does
//! not fit (`serde_path_to_error`); each family wraps the message in its own
//! error shape. `null` reads as an absent `Option`, as the vendors' APIs
//! treat it. [`object`] is there for the few bodies read as raw JSON.

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

/// A body that must be a JSON object, as `T` (serde-derived; `null`
/// reads as an absent `Option`), or a message naming the field that does
/// not fit (`serde_path_to_error`: `region_code: unknown variant ...`).
/// An empty body is `{}` when `empty_ok`.
pub fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8], empty_ok: bool) -> Result<T, String> {
    from_map(object(bytes, empty_ok)?)
}

/// A JSON object as `T`, with [`parse`]'s messages.
pub fn from_map<T: serde::de::DeserializeOwned>(m: Map<String, Value>) -> Result<T, String> {
    serde_path_to_error::deserialize(Value::Object(m)).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.inner().to_string()
        } else {
            format!("{path}: {}", e.inner())
        }
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Req {
        name: Option<String>,
        n: Option<i64>,
        tags: Option<Vec<String>>,
        mode: Option<Mode>,
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        Copy,
    }

    #[test]
    fn parse_names_the_field_that_does_not_fit() {
        let r: Req = parse(br#"{"name": "x", "n": null, "other": 1}"#, false).unwrap();
        assert_eq!(r.name.as_deref(), Some("x"));
        assert!(r.n.is_none());
        let e = parse::<Req>(br#"{"name": 5}"#, false).unwrap_err();
        assert!(e.starts_with("name: invalid type: integer `5`, expected a string"), "{e}");
        let e = parse::<Req>(br#"{"tags": ["a", 1]}"#, false).unwrap_err();
        assert!(e.starts_with("tags[1]: "), "{e}");
        let e = parse::<Req>(br#"{"mode": "move"}"#, false).unwrap_err();
        assert!(e.contains("mode: unknown variant `move`"), "{e}");
        assert!(parse::<Req>(b"[1]", false).unwrap_err().contains("not an array"));
        assert!(parse::<Req>(b"", true).is_ok());
        assert!(parse::<Req>(b" ", false).is_err());
        assert!(parse::<Req>(b"{", false).unwrap_err().contains("not valid JSON"));
    }
}
