//! The tenant's webhook signing secret (Standard Webhooks).
//!
//! `POST /webhooks/secret` creates or rotates it and shows it once;
//! `GET /webhooks/secret` tells whether there is one and when it was made.

use engine::util::rfc3339;
use spin_adapter::http::Reply;

use crate::Ctx;

/// `POST /webhooks/secret` → 201 `{"secret", "rotated_at"}`.
pub fn rotate(c: &Ctx) -> Result<Reply, Reply> {
    let e = c.engine()?;
    let secret = e
        .rotate_webhook_secret(&c.tenant)
        .map_err(|e| Reply::error(&e))?;
    let at = e
        .webhook_secret_rotated_at(&c.tenant)
        .map_err(|e| Reply::error(&e))?
        .unwrap_or_default();
    Ok(Reply::json(
        201,
        &serde_json::json!({"secret": secret, "rotated_at": rfc3339(at)}),
    ))
}

/// `GET /webhooks/secret` → 200 `{"exists", "rotated_at"}` (never the secret).
pub fn describe(c: &Ctx) -> Result<Reply, Reply> {
    let e = c.engine()?;
    let at = e
        .webhook_secret_rotated_at(&c.tenant)
        .map_err(|e| Reply::error(&e))?;
    Ok(Reply::json(
        200,
        &serde_json::json!({"exists": at.is_some(), "rotated_at": at.map(rfc3339)}),
    ))
}
