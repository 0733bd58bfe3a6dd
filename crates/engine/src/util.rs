//! Validation of names and keys, ids, and RFC 3339 times.

use crate::db::Env;
use crate::error::{Error, Result};

/// Longest resource name, collection name and record key, in bytes.
pub const MAX_NAME: usize = 128;
pub const MAX_KEY: usize = 512;

/// A resource name: 1–128 bytes of `A-Z a-z 0-9 . _ - : ~`.
pub fn check_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(Error::invalid(format!(
            "{what} must be 1 to {MAX_NAME} characters, got {}",
            name.len()
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._-:~".contains(*c)))
    {
        return Err(Error::invalid(format!(
            "{what} {name:?} contains {c:?}; use letters, digits, '.', '_', '-', ':' or '~'"
        )));
    }
    Ok(())
}

/// A collection name: 1–128 bytes, no control characters.
pub fn check_collection(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(Error::invalid(format!(
            "collection name must be 1 to {MAX_NAME} bytes, got {}",
            name.len()
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "collection name {name:?} contains a control character"
        )));
    }
    Ok(())
}

/// A record key: 1–512 bytes, no control characters.
pub fn check_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(Error::invalid(format!(
            "record key must be 1 to {MAX_KEY} bytes, got {}",
            key.len()
        )));
    }
    if key.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "record key {key:?} contains a control character"
        )));
    }
    Ok(())
}

/// A JSON document.
pub fn check_json(what: &str, text: &str) -> Result<()> {
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map(|_| ())
        .map_err(|e| Error::invalid(format!("{what} is not valid JSON: {e}")))
}

/// 32 lowercase hex digits: 128 random bits.
pub fn new_id(env: &dyn Env) -> String {
    format!("{:032x}", env.random_u128())
}

/// Format µs since the epoch as RFC 3339 UTC with millisecond precision
/// (e.g. `2026-11-22T10:00:00.123Z`).
pub fn rfc3339(us: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(us as i128 * 1000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&f).unwrap_or_default()
}

/// Parse an RFC 3339 time into µs since the epoch.
pub fn parse_rfc3339(s: &str) -> Result<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| Error::invalid(format!("{s:?} is not an RFC 3339 time: {e}")))?;
    Ok((t.unix_timestamp_nanos() / 1000) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        let us = parse_rfc3339("2026-11-22T10:00:00.123Z").unwrap();
        assert_eq!(rfc3339(us), "2026-11-22T10:00:00.123Z");
        assert_eq!(
            parse_rfc3339("2026-11-22T11:00:00+01:00").unwrap(),
            parse_rfc3339("2026-11-22T10:00:00Z").unwrap()
        );
        assert!(parse_rfc3339("yesterday").is_err());
    }

    #[test]
    fn names() {
        assert!(check_name("name", "prod.db-1:x~y").is_ok());
        assert!(check_name("name", "").is_err());
        assert!(check_name("name", "a b").is_err());
        assert!(check_name("name", &"a".repeat(129)).is_err());
        assert!(check_key("k\n").is_err());
        assert!(check_collection("users").is_ok());
    }
}
