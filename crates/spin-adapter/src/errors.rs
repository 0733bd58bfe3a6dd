//! The mapping of engine errors to HTTP statuses (`status_of`), and the
//! JSON error body every family's default shape uses. Four families adjust
//! the status where their vendor does: Timescale, Sanity, Mixpeek and
//! Qovery answer invalid input as 400, not 422 (each family's `error`).

use engine::{Error, ErrorKind};

/// The HTTP status for an engine error.
pub fn status_of(e: &Error) -> u16 {
    match e.kind {
        ErrorKind::InvalidInput => 422,
        ErrorKind::NotFound => 404,
        ErrorKind::AlreadyExists => 409,
        ErrorKind::Conflict { .. } => 409,
        ErrorKind::InvalidState { .. } => 409,
        ErrorKind::OutsideRetention { .. } => 422,
        ErrorKind::NoSnapshot => 422,
        ErrorKind::IdempotencyMismatch => 422,
        ErrorKind::TooLarge => 413,
        ErrorKind::LimitExceeded { limit, .. } if limit.is_rate() => 429,
        ErrorKind::LimitExceeded {
            limit: engine::limits::Limit::ActiveOperations,
            ..
        } => 409,
        ErrorKind::LimitExceeded { .. } => 403,
        ErrorKind::Protected => 423,
        ErrorKind::LeaseLost => 409,
        ErrorKind::Busy | ErrorKind::Unavailable => 503,
        ErrorKind::Storage | ErrorKind::Corrupt => 500,
    }
}

/// A short machine-readable code for an engine error.
pub fn code_of(e: &Error) -> &'static str {
    match e.kind {
        ErrorKind::InvalidInput => "invalid_input",
        ErrorKind::NotFound => "not_found",
        ErrorKind::AlreadyExists => "already_exists",
        ErrorKind::Conflict { .. } => "conflict",
        ErrorKind::InvalidState { .. } => "invalid_state",
        ErrorKind::OutsideRetention { .. } => "outside_retention",
        ErrorKind::NoSnapshot => "no_snapshot",
        ErrorKind::IdempotencyMismatch => "idempotency_key_reused",
        ErrorKind::TooLarge => "too_large",
        ErrorKind::LimitExceeded { limit, .. } if limit.is_rate() => "rate_limited",
        ErrorKind::LimitExceeded { .. } => "quota_exceeded",
        ErrorKind::LeaseLost => "lease_lost",
        ErrorKind::Busy => "busy",
        ErrorKind::Unavailable => "unavailable",
        ErrorKind::Storage => "storage_error",
        ErrorKind::Corrupt => "corrupt",
        ErrorKind::Protected => "protected",
    }
}

/// `{"error": code, "message": …}` plus the window or active operation
/// when the kind carries one.
pub fn body_of(e: &Error) -> serde_json::Value {
    let mut b = serde_json::json!({"error": code_of(e), "message": e.message});
    match &e.kind {
        ErrorKind::OutsideRetention { from, to } => {
            b["retained_from"] = engine::util::rfc3339(*from).into();
            b["retained_to"] = engine::util::rfc3339(*to).into();
        }
        ErrorKind::Conflict { active: Some(op) } => b["active_operation"] = op.clone().into(),
        ErrorKind::InvalidState { state } => b["state"] = state.clone().into(),
        ErrorKind::LimitExceeded { limit, .. } => b["limit"] = limit.variable().into(),
        _ => {}
    }
    b
}
