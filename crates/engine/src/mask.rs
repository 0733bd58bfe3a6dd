//! Masks: what a masked branch shows of its ancestors' records (issue
//! 29.4). Pure: no I/O.
//!
//! A mask is given at clone time as rules per collection (or `"*"` for
//! every collection): JSON pointers to transforms,
//! `{"users": {"/email": "fake_email", "/ssn": "null"}, "*": {"/phone": "hash"}}`.
//! The engine adds a salt of its own, per masked branch, so that `hash`
//! and `fake_email` are deterministic within a branch (equal values still
//! join, and a half-hydrated branch answers what it answered before) and
//! differ across branches.
//!
//! The transforms (each replaces the value at its pointer; a pointer that
//! names nothing in a record leaves the record as it is):
//! - `null`: JSON `null`;
//! - `redact`: the string `"[redacted]"`;
//! - `hash`: `"h:"` and 32 hex digits of HMAC-SHA-256(salt, the value's JSON);
//! - `fake_email`: `"user-<12 hex digits of the same HMAC>@example.invalid"`.
//!
//! Rules for a collection apply before the `"*"` rules. A level's masks
//! ([`Masks`]) are every mask between the reader and that ancestor, in
//! order: a masked branch of a masked branch applies both.
//!
//! Uses: `error`.
//!
//! Errors: `InvalidInput` for a mask that is not such an object, a pointer
//! that is not an RFC 6901 JSON pointer into a value (it must start with
//! `/`), or an unknown transform; `Corrupt` for a stored record body that
//! is not JSON.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use sha2::Sha256;

use crate::error::{Error, Result};

/// One transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    Null,
    Redact,
    Hash,
    FakeEmail,
}

impl Transform {
    fn parse(s: &str) -> Result<Transform> {
        Ok(match s {
            "null" => Transform::Null,
            "redact" => Transform::Redact,
            "hash" => Transform::Hash,
            "fake_email" => Transform::FakeEmail,
            _ => {
                return Err(Error::invalid(format!(
                    "unknown mask transform {s:?}: use null, redact, hash or fake_email"
                )))
            }
        })
    }
}

/// One masked branch's mask: its rules and its salt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mask {
    /// Collection (or `"*"`) → JSON pointer → transform.
    pub rules: BTreeMap<String, BTreeMap<String, Transform>>,
    pub salt: String,
}

/// The most rules one mask holds.
pub const MAX_RULES: usize = 256;

impl Mask {
    /// A mask from a clone request's `"mask"` object, with `salt`.
    pub fn parse(spec: &Json, salt: String) -> Result<Mask> {
        let Json::Object(colls) = spec else {
            return Err(Error::invalid(
                "mask is an object: {collection or \"*\": {json-pointer: transform}}",
            ));
        };
        let mut rules = BTreeMap::new();
        let mut n = 0;
        for (coll, ptrs) in colls {
            if coll.is_empty() {
                return Err(Error::invalid("mask: a collection name is not empty"));
            }
            let Json::Object(ptrs) = ptrs else {
                return Err(Error::invalid(format!(
                    "mask.{coll} is an object of json-pointer: transform"
                )));
            };
            let mut out = BTreeMap::new();
            for (ptr, t) in ptrs {
                check_pointer(ptr)?;
                let t = t.as_str().ok_or_else(|| {
                    Error::invalid(format!("mask.{coll}.{ptr}: a transform is a string"))
                })?;
                out.insert(ptr.clone(), Transform::parse(t)?);
                n += 1;
            }
            rules.insert(coll.clone(), out);
        }
        if n == 0 {
            return Err(Error::invalid("mask names no field to mask"));
        }
        if n > MAX_RULES {
            return Err(Error::invalid(format!(
                "a mask holds at most {MAX_RULES} rules, got {n}"
            )));
        }
        Ok(Mask { rules, salt })
    }

    /// The rules as given (without the salt), for showing.
    pub fn rules_json(&self) -> Json {
        serde_json::to_value(&self.rules).unwrap_or(Json::Null)
    }

    /// The JSON pointers this mask touches in `collection`.
    pub fn pointers(&self, collection: &str) -> impl Iterator<Item = &String> {
        self.rules
            .get(collection)
            .into_iter()
            .chain(self.rules.get("*"))
            .flat_map(|m| m.keys())
    }

    fn apply_to(&self, collection: &str, v: &mut Json) {
        for rules in [self.rules.get(collection), self.rules.get("*")]
            .into_iter()
            .flatten()
        {
            for (ptr, t) in rules {
                if let Some(x) = v.pointer_mut(ptr) {
                    *x = self.transform(*t, x);
                }
            }
        }
    }

    fn digest(&self, x: &Json) -> String {
        // HMAC accepts a key of any length.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.salt.as_bytes())
            .expect("HMAC takes any key length");
        mac.update(x.to_string().as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn transform(&self, t: Transform, x: &Json) -> Json {
        match t {
            Transform::Null => Json::Null,
            Transform::Redact => Json::String("[redacted]".into()),
            Transform::Hash => Json::String(format!("h:{}", &self.digest(x)[..32])),
            Transform::FakeEmail => {
                Json::String(format!("user-{}@example.invalid", &self.digest(x)[..12]))
            }
        }
    }
}

/// The masks a level applies, outermost (nearest the ancestor) first.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Masks(pub Vec<Mask>);

impl Masks {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// These masks, then `m`.
    pub fn then(&self, m: Option<&Mask>) -> Masks {
        let mut out = self.0.clone();
        out.extend(m.cloned());
        Masks(out)
    }

    /// A body as the masks show it.
    pub fn apply(&self, collection: &str, body: &str) -> Result<String> {
        if self.0.is_empty() {
            return Ok(body.to_string());
        }
        let mut v: Json = serde_json::from_str(body)
            .map_err(|e| Error::corrupt(format!("a stored record body is not JSON: {e}")))?;
        for m in &self.0 {
            m.apply_to(collection, &mut v);
        }
        Ok(v.to_string())
    }

    /// As stored in a level's `mask` column (None: no mask).
    pub fn to_column(&self) -> Option<String> {
        (!self.0.is_empty()).then(|| serde_json::to_string(self).unwrap_or_default())
    }

    /// From a level's `mask` column, as the chain column reads it.
    pub fn from_json(v: Option<Json>) -> Result<Masks> {
        match v {
            None | Some(Json::Null) => Ok(Masks::default()),
            Some(v) => serde_json::from_value(v)
                .map_err(|e| Error::corrupt(format!("a level's mask: {e}"))),
        }
    }
}

/// `InvalidInput` unless `p` is an RFC 6901 pointer into a value.
pub fn check_pointer(p: &str) -> Result<()> {
    let bad = |why: &str| Err(Error::invalid(format!("mask pointer {p:?}: {why}")));
    if !p.starts_with('/') || p.len() < 2 {
        return bad("a JSON pointer starts with / and names a field (\"/email\")");
    }
    if p.len() > 512 {
        return bad("longer than 512 bytes");
    }
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return bad("~ is written ~0, and / inside a name ~1");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mask() -> Mask {
        Mask::parse(
            &json!({"users": {"/email": "fake_email", "/name": "redact", "/ssn": "null", "/a~1b": "hash"}, "*": {"/phone": "hash"}}),
            "salt-1".into(),
        )
        .unwrap()
    }

    #[test]
    fn each_transform_replaces_its_field_and_leaves_the_rest() {
        let m = Masks(vec![mask()]);
        let out: Json = serde_json::from_str(
            &m.apply("users", r#"{"email":"ann@corp.com","name":"Ann","ssn":"1","phone":"555","a/b":1,"keep":2}"#)
                .unwrap(),
        )
        .unwrap();
        assert!(out["email"].as_str().unwrap().ends_with("@example.invalid"));
        assert_eq!(out["name"], "[redacted]");
        assert_eq!(out["ssn"], Json::Null);
        assert!(out["phone"].as_str().unwrap().starts_with("h:"));
        assert!(out["a/b"].as_str().unwrap().starts_with("h:"));
        assert_eq!(out["keep"], 2);
        // Another collection: only "*".
        let out = m.apply("orders", r#"{"email":"x","phone":"555"}"#).unwrap();
        assert!(out.contains("\"email\":\"x\"") && !out.contains("555"));
        // A field that is not there stays absent.
        assert_eq!(m.apply("users", r#"{"k":1}"#).unwrap(), r#"{"k":1}"#);
    }

    #[test]
    fn hashes_join_within_a_branch_and_differ_across_branches() {
        let a = Masks(vec![mask()]);
        let b = Masks(vec![Mask {
            salt: "salt-2".into(),
            ..mask()
        }]);
        let x = a.apply("t", r#"{"phone":"555"}"#).unwrap();
        assert_eq!(x, a.apply("u", r#"{"phone":"555"}"#).unwrap());
        assert_ne!(x, b.apply("t", r#"{"phone":"555"}"#).unwrap());
    }

    #[test]
    fn bad_masks_are_invalid_input() {
        for bad in [
            json!([]),
            json!({"users": []}),
            json!({"users": {"email": "null"}}),
            json!({"users": {"/e~2": "null"}}),
            json!({"users": {"/email": "shuffle"}}),
            json!({"users": {"/email": 1}}),
            json!({"users": {}}),
            json!({"": {"/x": "null"}}),
        ] {
            let e = Mask::parse(&bad, "s".into()).unwrap_err();
            assert_eq!(e.kind, crate::error::ErrorKind::InvalidInput, "{bad}");
        }
    }

    #[test]
    fn masks_compose_and_survive_their_column() {
        let m = Masks::default().then(Some(&mask())).then(Some(&Mask::parse(&json!({"*": {"/email": "null"}}), "s".into()).unwrap()));
        let back = Masks::from_json(Some(serde_json::from_str(&m.to_column().unwrap()).unwrap())).unwrap();
        assert_eq!(back, m);
        assert_eq!(m.apply("users", r#"{"email":"a"}"#).unwrap(), r#"{"email":null}"#);
    }
}
