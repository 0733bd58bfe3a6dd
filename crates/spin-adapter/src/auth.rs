//! Tokens. A tenant token is shown once at creation and stored only as its
//! SHA-256 in key-value (`token:<hex hash>` → `{"tenant", "created_at",
//! "id"}`), with `token-id:<id>` → `<hex hash>` so it can be revoked by id.
//! The admin token is the Spin variable `admin_token`. Comparisons of secrets
//! are constant-time.

use sha2::{Digest, Sha256};
use spin_sdk::key_value::Store;
use subtle::ConstantTimeEq;

use crate::http::Reply;

/// Who a request is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Admin,
    Tenant(String),
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether `presented` is the admin token. Constant-time in the token's
/// content (both sides are hashed to the same length first).
pub fn is_admin(presented: &str) -> Result<bool, Reply> {
    let Some(admin) = crate::vars::variable("admin_token") else {
        return Err(Reply::problem(
            503,
            "not_configured",
            "the admin token is not set: give the Spin variable admin_token a value (SPIN_VARIABLE_ADMIN_TOKEN)",
        ));
    };
    Ok(bool::from(hash(presented).ct_eq(&hash(&admin))))
}

/// A minted token: the secret (never stored) and its public id.
pub struct Minted {
    pub token: String,
    pub id: String,
}

/// Mint a token for `tenant`.
pub fn mint(tenant: &str, now_us: i64) -> Result<Minted, Reply> {
    let token = format!("spk_{}", crate::ids::random_hex(32));
    let id = format!("tok_{}", crate::ids::random_hex(8));
    let store = open()?;
    let digest = hex::encode(hash(&token));
    let record = serde_json::json!({"tenant": tenant, "created_at": engine::util::rfc3339(now_us), "id": id});
    // The id first: a crash between the two writes leaves an id that
    // points at nothing, never a token that cannot be revoked.
    set(&store, &format!("token-id:{id}"), digest.as_bytes())?;
    set(
        &store,
        &format!("token:{digest}"),
        record.to_string().as_bytes(),
    )?;
    Ok(Minted { token, id })
}

fn set(store: &Store, key: &str, value: &[u8]) -> Result<(), Reply> {
    store
        .set(key, value)
        .map_err(|e| Reply::problem(500, "storage_error", &format!("storing the token: {e:?}")))
}

/// What is known of a token by its id: its record, or `None`.
fn record_of_id(store: &Store, id: &str) -> Result<Option<(String, serde_json::Value)>, Reply> {
    if id.len() > 64 {
        return Ok(None);
    }
    let err = |e| Reply::problem(500, "storage_error", &format!("{e:?}"));
    let Some(digest) = store.get(&format!("token-id:{id}")).map_err(err)? else {
        return Ok(None);
    };
    let digest = String::from_utf8_lossy(&digest).into_owned();
    let record = store.get(&format!("token:{digest}")).map_err(err)?;
    let v = record
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::Value::Null);
    Ok(Some((digest, v)))
}

/// Revoke the token `id`. A tenant may revoke only its own tokens; the
/// admin any. `Ok(false)` when there is no such token for the caller (the
/// same answer for another tenant's, so ids reveal nothing). Safe to
/// retry: the record goes first, then the id.
pub fn revoke(id: &str, by: &Principal) -> Result<bool, Reply> {
    let store = open()?;
    let Some((digest, record)) = record_of_id(&store, id)? else {
        return Ok(false);
    };
    if let Principal::Tenant(t) = by {
        if record["tenant"].as_str() != Some(t.as_str()) {
            return Ok(false);
        }
    }
    let err = |e| Reply::problem(500, "storage_error", &format!("revoking the token: {e:?}"));
    store.delete(&format!("token:{digest}")).map_err(err)?;
    store.delete(&format!("token-id:{id}")).map_err(err)?;
    Ok(true)
}

/// The record of a presented tenant token (`{"tenant", "created_at", "id"}`).
pub fn describe(presented: &str) -> Result<Option<serde_json::Value>, Reply> {
    if presented.len() > 512 {
        return Ok(None);
    }
    let key = format!("token:{}", hex::encode(hash(presented)));
    let bytes = open()?
        .get(&key)
        .map_err(|e| Reply::problem(500, "storage_error", &format!("{e:?}")))?;
    Ok(bytes.and_then(|b| serde_json::from_slice(&b).ok()))
}

fn open() -> Result<Store, Reply> {
    Store::open_default().map_err(|e| {
        Reply::problem(
            500,
            "storage_error",
            &format!("opening key-value store default: {e:?}"),
        )
    })
}

/// Resolve a presented token: the admin, a tenant, or `None`.
pub fn resolve(presented: &str) -> Result<Option<Principal>, Reply> {
    if presented.len() > 512 {
        return Ok(None);
    }
    // Components without the admin_token variable (the families) never
    // treat a token as the admin's.
    if let Some(admin) = crate::vars::variable("admin_token") {
        if bool::from(hash(presented).ct_eq(&hash(&admin))) {
            return Ok(Some(Principal::Admin));
        }
    }
    let digest = hash(presented);
    let key = format!("token:{}", hex::encode(digest));
    let Some(bytes) = open()?
        .get(&key)
        .map_err(|e| Reply::problem(500, "storage_error", &format!("{e:?}")))?
    else {
        return Ok(None);
    };
    // The secret itself is never compared: the lookup is by its SHA-256, so
    // timing reveals nothing about the token.
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    Ok(v["tenant"]
        .as_str()
        .map(|t| Principal::Tenant(t.to_string())))
}

/// The tenant of a request carrying `Authorization: <scheme> <token>`, or the
/// 401/403 reply to send.
pub fn tenant(req: &crate::http::Req, scheme: &str) -> Result<String, Reply> {
    let Some(token) = req.credential(scheme) else {
        return Err(Reply::problem(
            401,
            "unauthorized",
            &format!("send Authorization: {scheme} <token>"),
        )
        .with_header("www-authenticate", scheme));
    };
    match resolve(token)? {
        Some(Principal::Tenant(t)) => Ok(t),
        Some(Principal::Admin) => {
            Err(Reply::problem(403, "forbidden", "the admin token only mints tenant tokens (POST /data/v1/tokens); use a tenant token here"))
        }
        None => Err(Reply::problem(401, "unauthorized", "the token is not valid").with_header("www-authenticate", scheme)),
    }
}

/// The tenant of a request whose token travels in a vendor header (e.g.
/// Typesense's `X-TYPESENSE-CLOUD-MANAGEMENT-API-KEY`), or the 401 to send.
pub fn tenant_from_header(req: &crate::http::Req, header: &str) -> Result<String, Reply> {
    let token = req.header(header).map(str::trim).filter(|t| !t.is_empty());
    let Some(token) = token else {
        return Err(Reply::problem(
            401,
            "unauthorized",
            &format!("send the API key in the {header} header"),
        ));
    };
    match resolve(token)? {
        Some(Principal::Tenant(t)) => Ok(t),
        Some(Principal::Admin) => Err(Reply::problem(
            403,
            "forbidden",
            "the admin token only mints tenant tokens; use a tenant token",
        )),
        None => Err(Reply::problem(
            401,
            "unauthorized",
            &format!("the key in {header} is not valid"),
        )),
    }
}

/// Require the admin token, or the 401/503 reply to send.
pub fn admin(req: &crate::http::Req, scheme: &str) -> Result<(), Reply> {
    match req.credential(scheme) {
        Some(t) if is_admin(t)? => Ok(()),
        _ => Err(Reply::problem(
            401,
            "unauthorized",
            &format!("this route needs the admin token: Authorization: {scheme} <admin_token>"),
        )),
    }
}
