//! The operation types: strategies, statuses, the request, the stored
//! operation with its progress, filters and step/tick reports.

use serde_json::{json, Value as Json};

use crate::containers::Container;
use crate::error::{Error, Result};

/// What an operation does. A copy's [`Operation::kind`] is its family's
/// label (`clone`, `fork`, `copy`, …); the two kinds that work on one
/// container in place are the data API's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// A physical copy or a branch of a source into a new target.
    Copy,
    /// Materialising a branch: copying what it reads through into it.
    Hydrate,
    /// An fsck of one container: counts against statistics.
    Verify,
}

impl OpKind {
    /// The kind of a stored `kind` label.
    pub fn of(label: &str) -> OpKind {
        match label {
            "hydrate" => OpKind::Hydrate,
            "verify" => OpKind::Verify,
            _ => OpKind::Copy,
        }
    }

    /// The stored label of an in-place kind (a copy's is its family's).
    pub fn label(self) -> &'static str {
        match self {
            OpKind::Copy => "copy",
            OpKind::Hydrate => "hydrate",
            OpKind::Verify => "verify",
        }
    }
}

/// The in-place kinds as an SQL list, for `kind NOT IN …`: the operations
/// that read a container without making another (a test holds it to
/// [`OpKind::label`]).
pub(crate) const IN_PLACE: &str = "('hydrate', 'verify')";

/// Which point of the source a copy reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// The head LSN when the request is accepted.
    Now,
    /// The newest snapshot.
    LastSnapshot,
    /// The greatest LSN committed at or before this time (µs).
    Pitr(i64),
}

impl Strategy {
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Now => "now",
            Strategy::LastSnapshot => "last_snapshot",
            Strategy::Pitr(_) => "pitr",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    InProgress,
    Succeeded,
    Failed,
    Canceled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::InProgress => "in_progress",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Canceled => "canceled",
        }
    }
    pub fn parse(s: &str) -> Result<Status> {
        Ok(match s {
            "pending" => Status::Pending,
            "in_progress" => Status::InProgress,
            "succeeded" => Status::Succeeded,
            "failed" => Status::Failed,
            "canceled" => Status::Canceled,
            _ => {
                return Err(Error::invalid(format!(
                    "unknown status {s:?}; use pending, in_progress, succeeded, failed or canceled"
                )))
            }
        })
    }
    pub fn is_active(self) -> bool {
        matches!(self, Status::Pending | Status::InProgress)
    }
}

/// What canceling an in-progress operation does; the family chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelPolicy {
    /// Refuse with `InvalidState` (only pending operations cancel).
    Refuse,
    /// Cancel and remove the partial target.
    RemoveTarget,
}

/// How a clone makes its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CloneMode {
    /// A copy-on-write branch: usable when the request returns, reading
    /// through the source until written or hydrated.
    #[default]
    Branch,
    /// A physical copy in chunks: the target is `cloning` until done.
    Copy,
}

impl CloneMode {
    pub fn as_str(self) -> &'static str {
        match self {
            CloneMode::Branch => "branch",
            CloneMode::Copy => "copy",
        }
    }
    /// `branch` or `copy`.
    pub fn parse(s: &str) -> Result<CloneMode> {
        match s {
            "branch" => Ok(CloneMode::Branch),
            "copy" => Ok(CloneMode::Copy),
            _ => Err(Error::invalid(format!(
                "mode {s:?} is not one of branch, copy"
            ))),
        }
    }
}

/// A request to copy `source` into a new container.
#[derive(Debug, Clone)]
pub struct CloneRequest {
    /// The family and kind label of the operation (`clone`, `fork`, `copy`).
    pub family: String,
    pub kind: String,
    pub tenant: String,
    pub source: Container,
    pub target_family: String,
    pub target_name: String,
    pub target_spec: Json,
    pub strategy: Strategy,
    /// Copy every version up to the snapshot (true) or only live records.
    pub history: bool,
    /// Only these collections (None: all).
    pub collections: Option<Vec<String>>,
    /// At most one active operation per key (e.g. the source's reference).
    pub exclusive_key: Option<String>,
    /// Webhook URLs and e-mail addresses to notify when it ends.
    pub notify: Vec<String>,
    /// Family extras, returned as stored.
    pub meta: Json,
    /// `(scope, key, fingerprint)`: the same scope and key return the
    /// operation the first request started; another fingerprint is refused.
    pub idempotency: Option<(String, String, String)>,
    /// Branch (default) or physical copy.
    pub mode: CloneMode,
    /// A branch also starts hydrating at once.
    pub hydrate: bool,
    /// The worker deletes the target this long (µs) after it is made.
    pub ttl_us: Option<i64>,
    /// A masked clone: `{collection | "*": {json-pointer: transform}}`
    /// ([`crate::mask`]); what it shows of the source goes through it.
    pub mask: Option<Json>,
}

/// An operation as stored, with its progress.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub id: String,
    pub family: String,
    pub tenant: String,
    pub kind: String,
    pub source: i64,
    pub source_ref: String,
    pub target: i64,
    pub target_ref: String,
    pub strategy: String,
    pub target_time: Option<i64>,
    pub snapshot_lsn: i64,
    pub history: bool,
    pub collections: Option<Vec<String>>,
    pub status: Status,
    pub records_copied: i64,
    pub bytes_copied: i64,
    pub records_total: i64,
    pub bytes_total: i64,
    pub chunk_size: i64,
    pub steps: i64,
    pub attempts: i64,
    pub error: Option<String>,
    pub lease_owner: Option<String>,
    pub lease_expires: i64,
    pub copy_us: i64,
    pub notify: Vec<String>,
    pub meta: Json,
    pub created_at: i64,
    pub updated_at: i64,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub(super) cursor: (String, String, i64),
    /// `branch` or `copy` (a hydration is a `copy`).
    pub mode: String,
}

impl Operation {
    /// What it does (from its stored label).
    pub fn op_kind(&self) -> OpKind {
        OpKind::of(&self.kind)
    }
}

impl Operation {
    /// 0–100; 100 only once succeeded.
    pub fn percent(&self) -> f64 {
        match self.status {
            Status::Succeeded => 100.0,
            _ if self.records_total <= 0 => 0.0,
            _ => (self.records_copied as f64 * 100.0 / self.records_total as f64).min(99.0),
        }
    }

    /// Seconds left at the rate copied so far; `Some(0)` when ended, `None`
    /// before the first chunk.
    pub fn eta_seconds(&self) -> Option<i64> {
        if !self.status.is_active() {
            return Some(0);
        }
        if self.records_copied == 0 || self.copy_us == 0 {
            return None;
        }
        let left = (self.records_total - self.records_copied).max(0) as f64;
        let per_record_us = self.copy_us as f64 / self.records_copied as f64;
        Some((left * per_record_us / 1e6).ceil() as i64)
    }

    /// A JSON summary for events and notifications.
    pub fn progress_json(&self) -> Json {
        json!({
            "status": self.status.as_str(),
            "records_copied": self.records_copied,
            "records_total": self.records_total,
            "bytes_copied": self.bytes_copied,
            "percent": self.percent(),
            "eta_seconds": self.eta_seconds(),
        })
    }
}

/// Filters for [`Engine::list_operations`](crate::handle::Engine::list_operations).
#[derive(Debug, Clone, Default)]
pub struct OpFilter {
    pub family: Option<String>,
    /// Operations whose source or target is this container.
    pub container: Option<i64>,
    /// Operations whose source is this container.
    pub source: Option<i64>,
    pub status: Option<Status>,
}

/// What one chunk did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepOutcome {
    pub copied: i64,
    pub bytes: i64,
    pub status: Status,
}

/// What one worker tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickReport {
    pub steps: i64,
    pub records_copied: i64,
    pub finished: Vec<String>,
    pub failed: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::{OpKind, IN_PLACE};

    #[test]
    fn the_in_place_list_names_the_in_place_kinds() {
        let list = format!(
            "('{}', '{}')",
            OpKind::Hydrate.label(),
            OpKind::Verify.label()
        );
        assert_eq!(IN_PLACE, list);
        for k in [OpKind::Hydrate, OpKind::Verify] {
            assert_eq!(OpKind::of(k.label()), k);
        }
        assert_eq!(OpKind::of("clone"), OpKind::Copy);
    }
}
