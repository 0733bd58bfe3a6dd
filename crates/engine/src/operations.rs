//! Copy operations: create, read, list, cancel, retry, and the chunked,
//! leased copy that moves them forward.
//!
//! State machine: `pending → in_progress → succeeded | failed`,
//! `pending → canceled`, `in_progress → canceled` (only under
//! [`CancelPolicy::RemoveTarget`]), `failed → pending` (retry).

use serde_json::{json, Value as Json};

use crate::containers::{self, Container, ContainerState};
use crate::db::{exec, one, query, transaction, Db, Row, Value};
use crate::error::{Error, ErrorKind, Result};
use crate::events::{append, enqueue};
use crate::records::apply_stats;
use crate::util::{check_collection, new_id, rfc3339};
use crate::{lsn, snapshots, Engine};

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
    cursor: (String, String, i64),
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

const COLUMNS: &str = "id, family, tenant, kind, source, source_ref, target, target_ref, strategy, target_time, \
    snapshot_lsn, history, collections, status, records_copied, bytes_copied, records_total, bytes_total, \
    chunk_size, steps, attempts, error, lease_owner, lease_expires, copy_us, notify, meta, created_at, \
    updated_at, started_at, completed_at, cur_collection, cur_key, cur_lsn";

fn from_row(r: &Row) -> Result<Operation> {
    let json_list = |i: usize| -> Result<Option<Vec<String>>> {
        r.opt_text(i)?
            .map(|t| {
                serde_json::from_str(&t)
                    .map_err(|e| Error::corrupt(format!("operation list column: {e}")))
            })
            .transpose()
    };
    Ok(Operation {
        id: r.text(0)?,
        family: r.text(1)?,
        tenant: r.text(2)?,
        kind: r.text(3)?,
        source: r.i64(4)?,
        source_ref: r.text(5)?,
        target: r.i64(6)?,
        target_ref: r.text(7)?,
        strategy: r.text(8)?,
        target_time: r.opt_i64(9)?,
        snapshot_lsn: r.i64(10)?,
        history: r.bool(11)?,
        collections: json_list(12)?,
        status: Status::parse(&r.text(13)?).map_err(|e| Error::corrupt(e.message))?,
        records_copied: r.i64(14)?,
        bytes_copied: r.i64(15)?,
        records_total: r.i64(16)?,
        bytes_total: r.i64(17)?,
        chunk_size: r.i64(18)?,
        steps: r.i64(19)?,
        attempts: r.i64(20)?,
        error: r.opt_text(21)?,
        lease_owner: r.opt_text(22)?,
        lease_expires: r.i64(23)?,
        copy_us: r.i64(24)?,
        notify: json_list(25)?.unwrap_or_default(),
        meta: serde_json::from_str(&r.text(26)?)
            .map_err(|e| Error::corrupt(format!("operation meta: {e}")))?,
        created_at: r.i64(27)?,
        updated_at: r.i64(28)?,
        started_at: r.opt_i64(29)?,
        completed_at: r.opt_i64(30)?,
        cursor: (r.text(31)?, r.text(32)?, r.i64(33)?),
    })
}

pub(crate) fn load(db: &dyn Db, id: &str) -> Result<Option<Operation>> {
    one(
        db,
        &format!("SELECT {COLUMNS} FROM operations WHERE id = ?1"),
        &[id.into()],
    )?
    .map(|r| from_row(&r))
    .transpose()
}

fn load_for(db: &dyn Db, tenant: &str, id: &str) -> Result<Operation> {
    match load(db, id)? {
        Some(op) if op.tenant == tenant => Ok(op),
        _ => Err(Error::not_found(format!("operation {id} not found"))),
    }
}

/// Filters for [`Engine::list_operations`].
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

/// SQL filtering a source's rows to an operation: container ?1, snapshot
/// LSN ?2, collection filter ?3 (JSON array or NULL), and for skip-history
/// only the newest live version of each key.
fn chunk_filter(history: bool) -> String {
    let mut f = String::from(
        "r.container = ?1 AND r.lsn <= ?2 \
         AND (?3 IS NULL OR r.collection IN (SELECT value FROM json_each(?3)))",
    );
    if !history {
        f.push_str(
            " AND r.deleted = 0 AND r.lsn = (SELECT max(x.lsn) FROM records x WHERE x.container = ?1 \
             AND x.collection = r.collection AND x.key = r.key AND x.lsn <= ?2)",
        );
    }
    f
}

/// 1 when this row is the newest version of its key at the snapshot and live.
const FINAL_LIVE: &str =
    "(r.deleted = 0 AND r.lsn = (SELECT max(x.lsn) FROM records x WHERE x.container = ?1 \
    AND x.collection = r.collection AND x.key = r.key AND x.lsn <= ?2))";

impl Engine<'_> {
    /// Accept a copy: resolve the strategy to a snapshot LSN, create the
    /// target container (state `cloning`) and a pending operation, in one
    /// transaction. Returns the operation and whether it was replayed from
    /// an earlier request with the same idempotency key.
    pub fn create_operation(&self, req: &CloneRequest) -> Result<(Operation, bool)> {
        if let Some(cols) = &req.collections {
            if cols.is_empty() {
                return Err(Error::invalid(
                    "collections, when given, names at least one collection",
                ));
            }
            for c in cols {
                check_collection(c)?;
            }
        }
        for n in &req.notify {
            check_destination(n)?;
        }
        let now = self.env.now_us();
        let id = new_id(self.env);
        transaction(self.db, |db| {
            if let Some((scope, key, fingerprint)) = &req.idempotency {
                if let Some(r) = one(
                    db,
                    "SELECT fingerprint, op FROM idempotency WHERE scope = ?1 AND key = ?2",
                    &[scope.into(), key.into()],
                )? {
                    if &r.text(0)? != fingerprint {
                        return Err(Error::new(
                            ErrorKind::IdempotencyMismatch,
                            format!("Idempotency-Key {key:?} was used for a different request"),
                        ));
                    }
                    let op = load(db, &r.text(1)?)?
                        .ok_or_else(|| Error::corrupt("idempotency row without operation"))?;
                    return Ok((op, true));
                }
            }
            let source = containers::find(db, &req.source.family, &req.tenant, &req.source.name)?;
            if source.state != ContainerState::Ready {
                return Err(Error::state(
                    source.state.as_str(),
                    format!(
                        "{} is {} and cannot be copied yet",
                        source.reference(),
                        source.state.as_str()
                    ),
                ));
            }
            if let Some(key) = &req.exclusive_key {
                if let Some(r) = one(
                    db,
                    "SELECT id FROM operations WHERE exclusive_key = ?1 AND status IN ('pending', 'in_progress')",
                    &[key.into()],
                )? {
                    let active = r.text(0)?;
                    return Err(Error::new(
                        ErrorKind::Conflict { active: Some(active.clone()) },
                        format!("{} already has an operation in progress ({active})", source.reference()),
                    ));
                }
            }
            let (snapshot_lsn, target_time) = match req.strategy {
                Strategy::Now => (lsn::head(db)?, None),
                Strategy::LastSnapshot => {
                    let s = snapshots::newest(db, source.id)?.ok_or_else(|| {
                        Error::new(
                            ErrorKind::NoSnapshot,
                            format!("{} has no snapshot yet", source.reference()),
                        )
                    })?;
                    (s.lsn, None)
                }
                Strategy::Pitr(t) => {
                    if t > now || t < source.floor_at {
                        return Err(Error::new(
                            ErrorKind::OutsideRetention { from: source.floor_at, to: now },
                            format!(
                                "{} can be restored to a time from {} to {}; {} is outside that window",
                                source.reference(),
                                rfc3339(source.floor_at),
                                rfc3339(now),
                                rfc3339(t)
                            ),
                        ));
                    }
                    (lsn::at_time(db, t)?.max(source.floor_lsn), Some(t))
                }
            };
            let target = containers::insert(
                db,
                now,
                &req.target_family,
                &req.tenant,
                &req.target_name,
                &req.target_spec,
                ContainerState::Cloning,
            )?;
            // The clone's history starts where the source's does (with
            // history) or at the snapshot (without).
            let (floor_lsn, floor_at) = if req.history {
                (source.floor_lsn, source.floor_at)
            } else {
                (snapshot_lsn, lsn::time_of(db, snapshot_lsn)?.unwrap_or(now))
            };
            exec(
                db,
                "UPDATE containers SET floor_lsn = ?2, floor_at = ?3 WHERE id = ?1",
                &[target.id.into(), floor_lsn.into(), floor_at.into()],
            )?;
            // Estimated totals from the source's statistics (exact at the end).
            let cols_json = req
                .collections
                .as_ref()
                .map(|c| serde_json::to_string(c).unwrap_or_default());
            let est = one(
                db,
                "SELECT coalesce(sum(CASE WHEN ?2 THEN versions ELSE records END), 0), \
                        coalesce(sum(CASE WHEN ?2 THEN version_bytes ELSE bytes END), 0) \
                 FROM collection_stats WHERE container = ?1 \
                 AND (?3 IS NULL OR collection IN (SELECT value FROM json_each(?3)))",
                &[
                    source.id.into(),
                    req.history.into(),
                    cols_json.clone().into(),
                ],
            )?
            .ok_or_else(|| Error::corrupt("aggregate gave no row"))?;
            exec(
                db,
                "INSERT INTO operations (id, family, tenant, kind, source, source_ref, target, target_ref, strategy, \
                   target_time, snapshot_lsn, history, collections, status, exclusive_key, records_total, bytes_total, \
                   chunk_size, notify, meta, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 'pending', ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?20)",
                &[
                    id.as_str().into(),
                    req.family.as_str().into(),
                    req.tenant.as_str().into(),
                    req.kind.as_str().into(),
                    source.id.into(),
                    source.reference().into(),
                    target.id.into(),
                    target.reference().into(),
                    req.strategy.name().into(),
                    target_time.into(),
                    snapshot_lsn.into(),
                    req.history.into(),
                    cols_json.into(),
                    req.exclusive_key.clone().into(),
                    est.i64(0)?.into(),
                    est.i64(1)?.into(),
                    self.config.initial_chunk.into(),
                    if req.notify.is_empty() { Value::Null } else { serde_json::to_string(&req.notify).unwrap_or_default().into() },
                    req.meta.to_string().into(),
                    now.into(),
                ],
            )?;
            if let Some((scope, key, fingerprint)) = &req.idempotency {
                exec(
                    db,
                    "INSERT INTO idempotency (scope, key, fingerprint, op, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    &[scope.into(), key.into(), fingerprint.into(), id.as_str().into(), now.into()],
                )?;
            }
            let op = load(db, &id)?.ok_or_else(|| Error::corrupt("operation vanished"))?;
            append(db, &id, now, "created", &op.progress_json())?;
            Ok((op, false))
        })
    }

    /// An operation of this tenant, or `NotFound`.
    pub fn operation(&self, tenant: &str, id: &str) -> Result<Operation> {
        load_for(self.db, tenant, id)
    }

    /// An operation by id, without a tenant check (the worker; job ids that
    /// are their own credential).
    pub fn operation_by_id(&self, id: &str) -> Result<Option<Operation>> {
        load(self.db, id)
    }

    /// A tenant's operations, newest first, and how many match in all.
    pub fn list_operations(
        &self,
        tenant: &str,
        f: &OpFilter,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<Operation>, i64)> {
        let limit = limit.clamp(0, self.config.max_page);
        let where_ = "tenant = ?1 AND (?2 IS NULL OR family = ?2) AND (?3 IS NULL OR source = ?3 OR target = ?3) \
                      AND (?4 IS NULL OR status = ?4) AND (?5 IS NULL OR source = ?5)";
        let params = [
            tenant.into(),
            f.family.clone().into(),
            f.container.into(),
            f.status.map(|s| s.as_str()).into(),
            f.source.into(),
        ];
        let total = one(
            self.db,
            &format!("SELECT count(*) FROM operations WHERE {where_}"),
            &params,
        )?
        .map(|r| r.i64(0))
        .unwrap_or(Ok(0))?;
        let mut p = params.to_vec();
        p.push(limit.into());
        p.push(offset.max(0).into());
        let ops = query(
            self.db,
            &format!("SELECT {COLUMNS} FROM operations WHERE {where_} ORDER BY created_at DESC, id LIMIT ?6 OFFSET ?7"),
            &p,
        )?
        .iter()
        .map(from_row)
        .collect::<Result<Vec<_>>>()?;
        Ok((ops, total))
    }

    /// Cancel an operation. Pending ones always cancel; in-progress ones by
    /// `policy`; ended ones answer `InvalidState`. The target is removed.
    pub fn cancel(&self, tenant: &str, id: &str, policy: CancelPolicy) -> Result<Operation> {
        let now = self.env.now_us();
        transaction(self.db, |db| {
            let op = load_for(db, tenant, id)?;
            match (op.status, policy) {
                (Status::Pending, _) | (Status::InProgress, CancelPolicy::RemoveTarget) => {}
                (Status::InProgress, CancelPolicy::Refuse) => {
                    return Err(Error::state(
                        "in_progress",
                        format!("operation {id} is in progress and cannot be canceled"),
                    ))
                }
                (s, _) => {
                    return Err(Error::state(
                        s.as_str(),
                        format!("operation {id} has already ended ({})", s.as_str()),
                    ))
                }
            }
            self.finish(db, &op, Status::Canceled, None, now)
        })
    }

    /// Retry a failed operation: it becomes pending again and resumes from
    /// its cursor (nothing copied is copied twice).
    pub fn retry(&self, tenant: &str, id: &str) -> Result<Operation> {
        let now = self.env.now_us();
        transaction(self.db, |db| {
            let op = load_for(db, tenant, id)?;
            if op.status != Status::Failed {
                return Err(Error::state(
                    op.status.as_str(),
                    format!(
                        "only a failed operation can be retried; {id} is {}",
                        op.status.as_str()
                    ),
                ));
            }
            if containers::by_id(db, op.source)?.is_none() {
                return Err(Error::state(
                    "failed",
                    format!("the source {} no longer exists", op.source_ref),
                ));
            }
            if containers::by_id(db, op.target)?.is_none() {
                return Err(Error::state(
                    "failed",
                    format!("the target {} no longer exists", op.target_ref),
                ));
            }
            let key = one(
                db,
                "SELECT exclusive_key FROM operations WHERE id = ?1",
                &[id.into()],
            )?
            .map(|r| r.opt_text(0))
            .transpose()?
            .flatten();
            if let Some(key) = key {
                if let Some(r) = one(
                    db,
                    "SELECT id FROM operations WHERE exclusive_key = ?1 AND status IN ('pending', 'in_progress')",
                    &[key.into()],
                )? {
                    let active = r.text(0)?;
                    return Err(Error::new(
                        ErrorKind::Conflict { active: Some(active.clone()) },
                        format!("{} already has an operation in progress ({active})", op.source_ref),
                    ));
                }
            }
            exec(
                db,
                "UPDATE operations SET status = 'pending', error = NULL, completed_at = NULL, updated_at = ?2, \
                 lease_owner = NULL, lease_expires = 0 WHERE id = ?1",
                &[id.into(), now.into()],
            )?;
            containers::set_state(db, op.target, ContainerState::Cloning, now)?;
            let op = load(db, id)?.ok_or_else(|| Error::corrupt("operation vanished"))?;
            append(db, id, now, "retried", &op.progress_json())?;
            Ok(op)
        })
    }

    /// End an operation inside the caller's transaction: set the status,
    /// the target's state, events and notifications.
    fn finish(
        &self,
        db: &dyn Db,
        op: &Operation,
        status: Status,
        error: Option<&str>,
        now: i64,
    ) -> Result<Operation> {
        exec(
            db,
            "UPDATE operations SET status = ?2, error = ?3, completed_at = ?4, updated_at = ?4, lease_owner = NULL, \
             lease_expires = 0, records_total = CASE WHEN ?2 = 'succeeded' THEN records_copied ELSE records_total END, \
             bytes_total = CASE WHEN ?2 = 'succeeded' THEN bytes_copied ELSE bytes_total END WHERE id = ?1",
            &[op.id.as_str().into(), status.as_str().into(), error.into(), now.into()],
        )?;
        match status {
            Status::Succeeded => containers::set_state(db, op.target, ContainerState::Ready, now)?,
            Status::Failed => containers::set_state(db, op.target, ContainerState::Failed, now)?,
            Status::Canceled => containers::mark_deleting(db, op.target, now)?,
            _ => {}
        }
        let op = load(db, &op.id)?.ok_or_else(|| Error::corrupt("operation vanished"))?;
        let mut data = op.progress_json();
        if let Some(e) = error {
            data["error"] = json!(e);
        }
        append(db, &op.id, now, status.as_str(), &data)?;
        if !op.notify.is_empty() {
            let payload = json!({
                "operation": op.id,
                "kind": op.kind,
                "status": status.as_str(),
                "source": op.source_ref,
                "target": op.target_ref,
                "records_copied": op.records_copied,
                "error": error,
                "completed_at": rfc3339(now),
            });
            enqueue(db, &op.id, &op.notify, &payload, now)?;
        }
        Ok(op)
    }

    /// Fail an operation (e.g. after a chunk hit a storage error).
    pub fn fail(&self, id: &str, error: &str) -> Result<()> {
        let now = self.env.now_us();
        transaction(self.db, |db| match load(db, id)? {
            Some(op) if op.status.is_active() => self
                .finish(db, &op, Status::Failed, Some(error), now)
                .map(|_| ()),
            _ => Ok(()),
        })
    }

    /// Claim an operation's lease for `worker`: a conditional UPDATE, so of
    /// two workers at most one wins; an expired lease is taken over. Moves a
    /// pending operation to in_progress (one more attempt). Returns false if
    /// another worker holds it or it is not runnable.
    pub fn claim(&self, id: &str, worker: &str) -> Result<bool> {
        let now = self.env.now_us();
        let until = now + self.config.lease_us;
        transaction(self.db, |db| {
            let was = one(
                db,
                "SELECT status FROM operations WHERE id = ?1",
                &[id.into()],
            )?
            .map(|r| r.text(0))
            .transpose()?;
            let claimed = one(
                db,
                "UPDATE operations SET lease_owner = ?2, lease_expires = ?3, \
                   attempts = attempts + (status = 'pending'), started_at = coalesce(started_at, ?4), \
                   status = 'in_progress', updated_at = ?4 \
                 WHERE id = ?1 AND status IN ('pending', 'in_progress') \
                   AND (lease_owner IS NULL OR lease_owner = ?2 OR lease_expires < ?4) \
                 RETURNING attempts",
                &[id.into(), worker.into(), until.into(), now.into()],
            )?;
            let Some(r) = claimed else { return Ok(false) };
            if was.as_deref() == Some("pending") {
                // A new run (the first, or after a retry).
                let op = load(db, id)?.ok_or_else(|| Error::corrupt("operation vanished"))?;
                let mut data = op.progress_json();
                data["attempt"] = json!(r.i64(0)?);
                append(db, id, now, "started", &data)?;
            }
            Ok(true)
        })
    }

    /// Give a lease back (end of a tick) so the next worker need not wait
    /// for it to expire.
    pub fn release(&self, id: &str, worker: &str) -> Result<()> {
        exec(
            self.db,
            "UPDATE operations SET lease_owner = NULL, lease_expires = 0 WHERE id = ?1 AND lease_owner = ?2",
            &[id.into(), worker.into()],
        )
    }

    /// Copy one chunk of at most `limit` records (None: the operation's
    /// adaptive chunk size) in one transaction: `INSERT … SELECT` inside
    /// SQLite, the cursor and counters advanced in the same transaction.
    /// Fails with `LeaseLost` (committing nothing) unless `worker` holds a
    /// live lease. The last chunk ends the operation.
    pub fn step(&self, id: &str, worker: &str, limit: Option<i64>) -> Result<StepOutcome> {
        let started = self.env.now_us();
        transaction(self.db, |db| {
            let now = self.env.now_us();
            let op = load(db, id)?
                .ok_or_else(|| Error::not_found(format!("operation {id} not found")))?;
            if op.status != Status::InProgress {
                return Err(Error::state(
                    op.status.as_str(),
                    format!("operation {id} is {}", op.status.as_str()),
                ));
            }
            if op.lease_owner.as_deref() != Some(worker) || op.lease_expires < now {
                return Err(Error::new(
                    ErrorKind::LeaseLost,
                    format!("worker {worker} does not hold the lease on {id}"),
                ));
            }
            let source = containers::by_id(db, op.source)?;
            let target = containers::by_id(db, op.target)?;
            let (Some(_), Some(_)) = (&source, &target) else {
                let what = if source.is_none() {
                    format!("source {}", op.source_ref)
                } else {
                    format!("target {}", op.target_ref)
                };
                let done = self.finish(
                    db,
                    &op,
                    Status::Failed,
                    Some(&format!("the {what} was deleted")),
                    now,
                )?;
                return Ok(StepOutcome {
                    copied: 0,
                    bytes: 0,
                    status: done.status,
                });
            };
            let n = limit.unwrap_or(op.chunk_size).max(1);
            let filter = chunk_filter(op.history);
            let cols = op
                .collections
                .as_ref()
                .map(|c| serde_json::to_string(c).unwrap_or_default());
            let (cc, ck, cl) = op.cursor.clone();
            let base: Vec<Value> = vec![
                op.source.into(),
                op.snapshot_lsn.into(),
                cols.clone().into(),
                cc.into(),
                ck.into(),
                cl.into(),
            ];
            // The chunk's last row: the n-th row after the cursor.
            let mut p = base.clone();
            p.push((n - 1).into());
            let end = one(
                db,
                &format!(
                    "SELECT r.collection, r.key, r.lsn FROM records r WHERE {filter} \
                     AND (r.collection, r.key, r.lsn) > (?4, ?5, ?6) \
                     ORDER BY r.collection, r.key, r.lsn LIMIT 1 OFFSET ?7"
                ),
                &p,
            )?;
            let mut range = String::from("(r.collection, r.key, r.lsn) > (?4, ?5, ?6)");
            let mut p = base.clone();
            if let Some(e) = &end {
                range.push_str(" AND (r.collection, r.key, r.lsn) <= (?7, ?8, ?9)");
                p.push(e.text(0)?.into());
                p.push(e.text(1)?.into());
                p.push(e.i64(2)?.into());
            }
            // Statistics of the chunk per collection, then the copy itself.
            let stats = query(
                db,
                &format!(
                    "SELECT r.collection, count(*), sum(r.size), sum({FINAL_LIVE}), sum({FINAL_LIVE} * r.size) \
                     FROM records r WHERE {filter} AND {range} GROUP BY r.collection"
                ),
                &p,
            )?;
            let mut ins = p.clone();
            ins.push(op.target.into());
            let tparam = ins.len();
            exec(
                db,
                &format!(
                    "INSERT OR IGNORE INTO records (container, collection, key, lsn, deleted, body, size) \
                     SELECT ?{tparam}, r.collection, r.key, r.lsn, r.deleted, r.body, r.size FROM records r \
                     WHERE {filter} AND {range}"
                ),
                &ins,
            )?;
            let mut copied = 0;
            let mut bytes = 0;
            let mut deltas = std::collections::BTreeMap::new();
            for s in &stats {
                let (count, size, live, live_bytes) = (s.i64(1)?, s.i64(2)?, s.i64(3)?, s.i64(4)?);
                copied += count;
                bytes += size;
                deltas.insert(s.text(0)?, (live, live_bytes, count, size));
            }
            apply_stats(db, op.target, &deltas)?;
            let finished_copy = end.is_none();
            let (nc, nk, nl) = match &end {
                Some(e) => (e.text(0)?, e.text(1)?, e.i64(2)?),
                None => op.cursor.clone(),
            };
            // Adapt the chunk size toward the target chunk time.
            let elapsed = (self.env.now_us() - started).max(1);
            let target_us = self.config.target_chunk_us;
            let scaled = (n as f64 * target_us as f64 / elapsed as f64)
                .clamp(n as f64 / 2.0, n as f64 * 2.0) as i64;
            let next_chunk = if limit.is_some() {
                op.chunk_size
            } else {
                scaled.clamp(self.config.min_chunk, self.config.max_chunk)
            };
            exec(
                db,
                "UPDATE operations SET cur_collection = ?2, cur_key = ?3, cur_lsn = ?4, \
                   records_copied = records_copied + ?5, bytes_copied = bytes_copied + ?6, \
                   records_total = max(records_total, records_copied + ?5), bytes_total = max(bytes_total, bytes_copied + ?6), \
                   steps = steps + 1, chunk_size = ?7, copy_us = copy_us + ?8, last_step_at = ?9, updated_at = ?9, \
                   lease_expires = ?10 WHERE id = ?1",
                &[
                    id.into(),
                    nc.into(),
                    nk.into(),
                    nl.into(),
                    copied.into(),
                    bytes.into(),
                    next_chunk.into(),
                    elapsed.into(),
                    now.into(),
                    (now + self.config.lease_us).into(),
                ],
            )?;
            let op = load(db, id)?.ok_or_else(|| Error::corrupt("operation vanished"))?;
            if finished_copy {
                let done = self.finish(db, &op, Status::Succeeded, None, now)?;
                return Ok(StepOutcome {
                    copied,
                    bytes,
                    status: done.status,
                });
            }
            append(db, id, now, "progress", &op.progress_json())?;
            Ok(StepOutcome {
                copied,
                bytes,
                status: op.status,
            })
        })
    }

    /// The next runnable operation for `worker`, least recently stepped first
    /// (round-robin), skipping ones another worker holds.
    pub fn next_runnable(&self, worker: &str) -> Result<Option<String>> {
        let now = self.env.now_us();
        one(
            self.db,
            "SELECT id FROM operations WHERE status IN ('pending', 'in_progress') \
             AND (lease_owner IS NULL OR lease_owner = ?1 OR lease_expires < ?2) \
             ORDER BY last_step_at, created_at LIMIT 1",
            &[worker.into(), now.into()],
        )?
        .map(|r| r.text(0))
        .transpose()
    }

    /// One worker tick: step runnable operations round-robin until
    /// `budget_us` is spent, then give back every lease taken. A storage
    /// error fails the operation it hit (retry resumes it); `Busy` ends the
    /// tick early with nothing lost.
    pub fn tick(&self, worker: &str, budget_us: i64) -> Result<TickReport> {
        let deadline = self.env.now_us() + budget_us;
        let mut report = TickReport::default();
        let mut held: Vec<String> = Vec::new();
        let mut last_step = 0i64;
        let result = (|| -> Result<()> {
            // Stop when the next chunk, as long as the last one, would overrun.
            while self.env.now_us() + last_step < deadline {
                let step_started = self.env.now_us();
                let Some(id) = self.next_runnable(worker)? else {
                    break;
                };
                if !self.claim(&id, worker)? {
                    continue;
                }
                if !held.contains(&id) {
                    held.push(id.clone());
                }
                let stepped = self.step(&id, worker, None);
                last_step = self.env.now_us() - step_started;
                match stepped {
                    Ok(o) => {
                        report.steps += 1;
                        report.records_copied += o.copied;
                        match o.status {
                            Status::Succeeded => report.finished.push(id),
                            Status::Failed => report.failed.push(id),
                            _ => {}
                        }
                    }
                    Err(e) if e.kind == ErrorKind::Busy => return Err(e),
                    Err(e) if e.kind == ErrorKind::LeaseLost => continue,
                    Err(e) if matches!(e.kind, ErrorKind::InvalidState { .. }) => continue,
                    Err(e) => {
                        self.fail(&id, &e.message)?;
                        report.failed.push(id);
                    }
                }
            }
            Ok(())
        })();
        for id in &held {
            let _ = self.release(id, worker);
        }
        result.map(|()| report)
    }

    /// Bounded progress on one operation from a status read, when it is
    /// runnable and no worker holds it: one chunk of at most `limit` records.
    /// Returns whether a chunk ran.
    pub fn nudge(&self, id: &str, limit: i64) -> Result<bool> {
        // A plain read first (WAL: never waits for a writer): when a worker
        // holds the operation, a reader does not queue for the write lock.
        match load(self.db, id)? {
            Some(op)
                if op.status.is_active()
                    && (op.lease_owner.is_none() || op.lease_expires < self.env.now_us()) => {}
            _ => return Ok(false),
        }
        let worker = format!("reader-{}", new_id(self.env));
        // A reader never queues for the write lock: while a worker commits a
        // chunk (of this operation or another), claiming and stepping give
        // up at once instead of waiting out the busy timeout. The timeout is
        // restored before the release, which must not be skipped.
        let timeout = self
            .db
            .execute("PRAGMA busy_timeout", &[])
            .ok()
            .and_then(|r| r.first().and_then(|r| r.i64(0).ok()));
        let _ = self.db.execute("PRAGMA busy_timeout = 0", &[]);
        let restore = || {
            if let Some(t) = timeout {
                let _ = self.db.execute(&format!("PRAGMA busy_timeout = {t}"), &[]);
            }
        };
        match self.claim(id, &worker) {
            Ok(true) => {}
            Ok(false)
            | Err(Error {
                kind: ErrorKind::Busy,
                ..
            }) => {
                restore();
                return Ok(false);
            }
            Err(e) => {
                restore();
                return Err(e);
            }
        }
        let r = self.step(id, &worker, Some(limit));
        restore();
        let _ = self.release(id, &worker);
        match r {
            Ok(_) => Ok(true),
            Err(e)
                if matches!(
                    e.kind,
                    ErrorKind::Busy | ErrorKind::LeaseLost | ErrorKind::InvalidState { .. }
                ) =>
            {
                Ok(false)
            }
            Err(e) => {
                self.fail(id, &e.message)?;
                Ok(true)
            }
        }
    }
}

/// A notification destination: an http(s) URL or an e-mail address.
pub fn check_destination(d: &str) -> Result<()> {
    let ok = if d.starts_with("http://") || d.starts_with("https://") {
        d.len() <= 2048 && !d.chars().any(|c| c.is_whitespace() || c.is_control())
    } else {
        let mut parts = d.splitn(2, '@');
        let (local, domain) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        !local.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && d.len() <= 254
            && !d.chars().any(|c| c.is_whitespace() || c.is_control())
            && !domain.contains('@')
    };
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{d:?} is neither an http(s) URL nor an e-mail address"
        )))
    }
}
