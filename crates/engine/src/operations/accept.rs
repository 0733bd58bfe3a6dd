//! Accepting an operation: validate the request, replay an idempotent
//! request, resolve the strategy to a snapshot LSN, create the target,
//! estimate the totals and insert the pending operation. A branch (the
//! default mode) is made whole here: its levels and statistics, and the
//! operation ends in the same transaction.

use super::lifecycle::ensure_none_active;
use super::rows::load;
use super::types::{CloneMode, CloneRequest, Operation, Status, Strategy};
use crate::containers::{self, Container, ContainerState};
use crate::db::{exec, one, transaction, Db, Value};
use crate::error::{Error, ErrorKind, Result};
use crate::events::append;
use crate::handle::Engine;
use crate::mask::Mask;
use crate::util::{check_collection, new_id, rfc3339};
use crate::webhooks::AllowList;
use crate::{levels, limits, stats};
use crate::{lsn, snapshots};

impl Engine<'_> {
    /// Accept a copy: resolve the strategy to a snapshot LSN, create the
    /// target container (state `cloning`) and a pending operation, in one
    /// transaction. Returns the operation and whether it was replayed from
    /// an earlier request with the same idempotency key.
    pub fn create_operation(&self, req: &CloneRequest) -> Result<(Operation, bool)> {
        validate(req, &self.config.webhook_allow)?;
        self.ensure_signing_secret(req)?;
        let now = self.env.now_us();
        let id = new_id(self.env);
        let limits = &self.config.limits();
        // Salted per masked branch: its hashes join within it only.
        let mask = req
            .mask
            .as_ref()
            .map(|m| Mask::parse(m, new_id(self.env)))
            .transpose()?;
        transaction(self.db, |db| {
            if let Some(op) = replay(db, req)? {
                return Ok((op, true));
            }
            let source = ready_source(db, req)?;
            if let Some(key) = &req.exclusive_key {
                ensure_none_active(db, key, &source.reference())?;
            }
            limits::check_start(db, limits, &req.tenant, now)?;
            let (snapshot_lsn, target_time) = resolve_snapshot(db, req.strategy, &source, now)?;
            limits::check_resources(db, limits, &req.tenant)?;
            let target = create_target(db, req, &source, snapshot_lsn, now, mask.as_ref())?;
            let collections = collections_json(req);
            let (records_total, bytes_total) = match req.mode {
                CloneMode::Copy => {
                    stats::estimate(db, source.id, req.history, collections.clone())?
                }
                CloneMode::Branch => make_branch(db, req, &source, &target, snapshot_lsn)?,
            };
            // A branch stores nothing until written or hydrated: what the
            // tenant stores counts containers that hold their versions.
            if req.mode == CloneMode::Copy {
                limits::check_stored_bytes(db, limits, &req.tenant, bytes_total)?;
            }
            let draft = Draft {
                id: &id,
                req,
                source: &source,
                target: &target,
                snapshot_lsn,
                target_time,
                collections,
                records_total,
                bytes_total,
            };
            self.insert(db, &draft, now)?;
            let op = load(db, &id)?.ok_or_else(|| Error::corrupt("operation vanished"))?;
            append(db, &id, now, "created", &op.progress_json())?;
            if req.mode == CloneMode::Copy {
                return Ok((op, false));
            }
            // A branch is whole as soon as it exists: the operation ends in
            // the same transaction, with everything it reads counted.
            exec(
                db,
                "UPDATE operations SET status = 'in_progress', started_at = ?2, attempts = 1, \
                 records_copied = records_total, bytes_copied = bytes_total WHERE id = ?1",
                &[id.as_str().into(), now.into()],
            )?;
            let op = load(db, &id)?.ok_or_else(|| Error::corrupt("operation vanished"))?;
            let op = self.finish(db, &op, Status::Succeeded, None, now)?;
            let deep = levels::depth(db, target.id)? > self.config.max_branch_depth;
            if req.hydrate || deep {
                let reason = if req.hydrate {
                    "requested"
                } else {
                    "the branch is too deep"
                };
                self.start_hydration(db, target.id, reason, now)?;
            }
            Ok((op, false))
        })
    }

    /// Insert the pending operation, and its idempotency key if any.
    fn insert(&self, db: &dyn Db, d: &Draft, now: i64) -> Result<()> {
        let req = d.req;
        exec(
            db,
            "INSERT INTO operations (id, family, tenant, kind, source, source_ref, target, target_ref, strategy, \
               target_time, snapshot_lsn, history, collections, status, exclusive_key, records_total, bytes_total, \
               chunk_size, notify, meta, created_at, updated_at, mode) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 'pending', ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?20, ?21)",
            &[
                d.id.into(),
                req.family.as_str().into(),
                req.tenant.as_str().into(),
                req.kind.as_str().into(),
                d.source.id.into(),
                d.source.reference().into(),
                d.target.id.into(),
                d.target.reference().into(),
                req.strategy.name().into(),
                d.target_time.into(),
                d.snapshot_lsn.into(),
                req.history.into(),
                d.collections.clone().into(),
                req.exclusive_key.clone().into(),
                d.records_total.into(),
                d.bytes_total.into(),
                self.config.initial_chunk.into(),
                if req.notify.is_empty() { Value::Null } else { serde_json::to_string(&req.notify).unwrap_or_default().into() },
                req.meta.to_string().into(),
                now.into(),
                req.mode.as_str().into(),
            ],
        )?;
        if let Some((scope, key, fingerprint)) = &req.idempotency {
            exec(
                db,
                "INSERT INTO idempotency (scope, key, fingerprint, op, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                &[scope.into(), key.into(), fingerprint.into(), d.id.into(), now.into()],
            )?;
        }
        Ok(())
    }
}

/// A new operation as resolved, about to be inserted.
struct Draft<'a> {
    id: &'a str,
    req: &'a CloneRequest,
    source: &'a Container,
    target: &'a Container,
    snapshot_lsn: i64,
    /// The requested time under PITR.
    target_time: Option<i64>,
    /// The collection filter as a JSON array (None: all).
    collections: Option<String>,
    records_total: i64,
    bytes_total: i64,
}

/// Checks that need no database: the collection filter and destinations.
fn validate(req: &CloneRequest, allow: &AllowList) -> Result<()> {
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
        check_destination(n, allow)?;
    }
    Ok(())
}

impl Engine<'_> {
    /// Webhook deliveries are always signed: a request naming a webhook
    /// needs its tenant's signing secret first.
    fn ensure_signing_secret(&self, req: &CloneRequest) -> Result<()> {
        if req.notify.iter().any(|d| is_webhook(d))
            && self.webhook_signing_secrets(&req.tenant)?.is_empty()
        {
            return Err(Error::invalid(
                "webhooks are signed with the tenant's signing secret: create one first \
                 (POST /data/v1/webhooks/secret)",
            ));
        }
        Ok(())
    }
}

fn is_webhook(d: &str) -> bool {
    d.starts_with("http://") || d.starts_with("https://")
}

/// The operation an earlier request with the same idempotency scope and key
/// started, or `IdempotencyMismatch` if that request had another fingerprint.
fn replay(db: &dyn Db, req: &CloneRequest) -> Result<Option<Operation>> {
    let Some((scope, key, fingerprint)) = &req.idempotency else {
        return Ok(None);
    };
    let Some(r) = one(
        db,
        "SELECT fingerprint, op FROM idempotency WHERE scope = ?1 AND key = ?2",
        &[scope.into(), key.into()],
    )?
    else {
        return Ok(None);
    };
    if &r.text(0)? != fingerprint {
        return Err(Error::new(
            ErrorKind::IdempotencyMismatch,
            format!("Idempotency-Key {key:?} was used for a different request"),
        ));
    }
    let op = load(db, &r.text(1)?)?
        .ok_or_else(|| Error::corrupt("idempotency row without operation"))?;
    Ok(Some(op))
}

/// The source, which must be ready.
fn ready_source(db: &dyn Db, req: &CloneRequest) -> Result<Container> {
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
    Ok(source)
}

/// The LSN the copy reads the source at, and the requested time under PITR
/// (refused outside the source's retained window).
fn resolve_snapshot(
    db: &dyn Db,
    strategy: Strategy,
    source: &Container,
    now: i64,
) -> Result<(i64, Option<i64>)> {
    Ok(match strategy {
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
                    ErrorKind::OutsideRetention {
                        from: source.floor_at,
                        to: now,
                    },
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
    })
}

/// Create the target container (state `cloning`) with its history floor.
fn create_target(
    db: &dyn Db,
    req: &CloneRequest,
    source: &Container,
    snapshot_lsn: i64,
    now: i64,
    mask: Option<&Mask>,
) -> Result<Container> {
    let state = match req.mode {
        CloneMode::Branch => ContainerState::Ready,
        CloneMode::Copy => ContainerState::Cloning,
    };
    let target = containers::insert(
        db,
        now,
        &req.target_family,
        &req.tenant,
        &req.target_name,
        &req.target_spec,
        state,
    )?;
    // The clone's history starts where the source's does (with
    // history) or at the snapshot (without).
    // A physical copy holds its rows itself, and a row has no end: what
    // the source was before its last reset (a window of levels) is not
    // copied, so the copy's history starts at that reset.
    let reset = match req.mode {
        CloneMode::Copy => source
            .chain
            .iter()
            .filter(|l| !l.is_current() && l.until <= snapshot_lsn)
            .map(|l| l.until)
            .max(),
        CloneMode::Branch => None,
    };
    let (floor_lsn, floor_at) = match (req.history, reset) {
        (true, Some(r)) if r > source.floor_lsn => (r, lsn::time_of(db, r)?.unwrap_or(now)),
        (true, _) => (source.floor_lsn, source.floor_at),
        (false, _) => (snapshot_lsn, lsn::time_of(db, snapshot_lsn)?.unwrap_or(now)),
    };
    containers::set_floor(db, target.id, floor_lsn, floor_at)?;
    containers::set_parent(db, target.id, source.id, snapshot_lsn)?;
    containers::set_mask(db, target.id, mask)?;
    let target = Container {
        mask: mask.cloned(),
        ..target
    };
    if let Some(ttl) = req.ttl_us {
        containers::set_expiry(db, target.id, Some(now.saturating_add(ttl)), now)?;
    }
    Ok(target)
}

/// Make the target a branch of `source` at `snapshot_lsn`: its levels, and
/// its statistics as of the base. Returns `(records, bytes)` it shows (all
/// versions with history, live records without).
fn make_branch(
    db: &dyn Db,
    req: &CloneRequest,
    source: &Container,
    target: &Container,
    snapshot_lsn: i64,
) -> Result<(i64, i64)> {
    let stats = levels::create_branch(
        db,
        target.id,
        source.id,
        &source.chain,
        snapshot_lsn,
        req.history,
        req.collections.as_deref(),
        target.mask.as_ref(),
    )?;
    Ok(stats
        .values()
        .fold((0, 0), |(n, b), d| (n + d.versions, b + d.version_bytes)))
}

/// The collection filter as a JSON array (None: all collections).
fn collections_json(req: &CloneRequest) -> Option<String> {
    req.collections
        .as_ref()
        .map(|c| serde_json::to_string(c).unwrap_or_default())
}

/// A notification destination: an http(s) URL to a public address (or a
/// host `allow` names; [`crate::webhooks::check_url`]) or an e-mail address.
pub fn check_destination(d: &str, allow: &AllowList) -> Result<()> {
    if is_webhook(d) {
        return crate::webhooks::check_url(d, allow)
            .map(|_| ())
            .map_err(Error::invalid);
    }
    let mut parts = d.splitn(2, '@');
    let (local, domain) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let ok = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && d.len() <= 254
        && !d.chars().any(|c| c.is_whitespace() || c.is_control())
        && !domain.contains('@');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{d:?} is neither an http(s) URL nor an e-mail address"
        )))
    }
}
