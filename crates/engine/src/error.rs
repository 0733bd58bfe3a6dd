//! The engine's one error type. Every kind is documented with when it
//! happens and what a caller should do; components map kinds to HTTP
//! statuses through `spin_adapter::errors::status_of` (four families
//! answer invalid input as 400 where their vendors do). [`Limit`], the
//! per-tenant limit a `LimitExceeded` names, lives here too, so that this
//! module needs no other.

use std::fmt;

/// What went wrong. Match on this, not on messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// The caller's input is malformed or out of range: an empty or overlong
    /// name, a body that is not JSON, an unknown strategy, a time in the
    /// future. Not retryable without changing the input.
    InvalidInput,
    /// No such resource, record, snapshot or operation *for this tenant*.
    /// Another tenant's resources answer this too, so existence never leaks.
    NotFound,
    /// A resource with this family, tenant and name already exists.
    AlreadyExists,
    /// The request conflicts with another operation: the resource already has
    /// an active operation (`active` names it) under a family's
    /// one-active-operation rule, or is the source or target of one and
    /// cannot be deleted.
    Conflict { active: Option<String> },
    /// The request does not fit the object's state: writing to a resource
    /// that is still being filled by a clone, canceling a finished
    /// operation, retrying one that has not failed. `state` is the current state.
    InvalidState { state: String },
    /// A point-in-time request outside the retained history. `from` and `to`
    /// are the window (microseconds since the Unix epoch) that is available.
    OutsideRetention { from: i64, to: i64 },
    /// `last_snapshot` was asked for a resource that has no snapshot yet.
    NoSnapshot,
    /// An `Idempotency-Key` was reused with a different request.
    IdempotencyMismatch,
    /// A request exceeds a documented limit (batch size, page size, body size).
    TooLarge,
    /// A per-tenant limit ([`crate::limits`]) refuses the request; nothing
    /// was done. `limit` names it (and the Spin variable that sets it). A
    /// rate (`limit.is_rate()`, HTTP 429) clears after `retry_after_s`; a
    /// quota (HTTP 403, or 409 for active operations) when the tenant frees
    /// some of it.
    LimitExceeded {
        limit: Limit,
        retry_after_s: Option<i64>,
    },
    /// The resource is protected: it refuses direct writes, imports and
    /// deletes (a merge into it is accepted). Unprotect it first (HTTP 423).
    Protected,
    /// The worker no longer holds the operation's lease (it expired and was
    /// taken over): nothing was committed. The worker should move on.
    LeaseLost,
    /// The database is locked by another writer beyond the busy timeout.
    /// Nothing was committed; retry later (HTTP 503 with Retry-After).
    Busy,
    /// The database gave up on the transaction (a remote libSQL server's
    /// `TRANSACTION_TIMEOUT` or `STREAM_EXPIRED`, a dropped connection) and
    /// rolled it back: nothing was committed. The engine already ran the
    /// transaction again a few times; retry later (HTTP 503 with
    /// Retry-After).
    Unavailable,
    /// The storage failed (I/O, full disk, constraint the engine did not
    /// expect). Nothing of the failed transaction was committed.
    Storage,
    /// Stored data does not have the shape the engine wrote (a bug or a
    /// foreign writer). Nothing was committed.
    Corrupt,
}

/// An engine error: a kind and a message for humans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
        }
    }
    pub fn invalid(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::InvalidInput, message)
    }
    pub fn not_found(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::NotFound, message)
    }
    pub fn state(state: &str, message: impl Into<String>) -> Error {
        Error::new(
            ErrorKind::InvalidState {
                state: state.to_string(),
            },
            message,
        )
    }
    pub fn corrupt(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Corrupt, message)
    }
    /// Seconds after which the same call may succeed (HTTP `Retry-After`).
    pub fn retry_after_s(&self) -> Option<i64> {
        match &self.kind {
            ErrorKind::Busy | ErrorKind::Unavailable => Some(1),
            ErrorKind::LimitExceeded { retry_after_s, .. } => *retry_after_s,
            _ => None,
        }
    }

    /// True when the same call may succeed later unchanged.
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, ErrorKind::Busy | ErrorKind::Unavailable)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// One limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Operations pending or in progress at once.
    ActiveOperations,
    /// Resources (containers) alive at once, clone targets included.
    Resources,
    /// Bytes of record versions stored, history included.
    StoredBytes,
    /// Operations started in any 60 s.
    StartsPerMinute,
    /// Records written (imports, puts, deletes) per clock minute.
    WritesPerMinute,
}

impl Limit {
    /// The Spin variable that sets it.
    pub fn variable(self) -> &'static str {
        match self {
            Limit::ActiveOperations => "limit_active_operations",
            Limit::Resources => "limit_resources",
            Limit::StoredBytes => "limit_stored_bytes",
            Limit::StartsPerMinute => "limit_starts_per_minute",
            Limit::WritesPerMinute => "limit_writes_per_minute",
        }
    }

    /// A rate (retry later: HTTP 429) rather than a quota.
    pub fn is_rate(self) -> bool {
        matches!(self, Limit::StartsPerMinute | Limit::WritesPerMinute)
    }

    pub const ALL: [Limit; 5] = [
        Limit::ActiveOperations,
        Limit::Resources,
        Limit::StoredBytes,
        Limit::StartsPerMinute,
        Limit::WritesPerMinute,
    ];
}
