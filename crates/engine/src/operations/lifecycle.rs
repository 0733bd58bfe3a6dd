//! Ending and restarting operations: retry, fail, and `finish`, which
//! every end goes through (status, target state, events, notifications) —
//! except a hydration or verification canceled because its container is
//! being deleted (`hydrate::cancel_for_deleted`, inside the deletion's
//! cascade: the container goes, so there is no target state to set and no
//! one to notify). Canceling is [`crate::deletion`]'s: a canceled copy's
//! target is deleted.

use serde_json::json;

use super::rows::{load, load_for};
use super::types::{OpKind, Operation, Status};
use crate::containers::{self, ContainerState};
use crate::db::{exec, one, transaction, Db};
use crate::error::{Error, ErrorKind, Result};
use crate::events::{append, enqueue};
use crate::handle::Engine;
use crate::schema::ACTIVE;
use crate::util::rfc3339;

impl Engine<'_> {
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
                ensure_none_active(db, &key, &op.source_ref)?;
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
    pub(crate) fn finish(
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
        match (op.op_kind(), status) {
            // A verification reads its container and changes nothing of it.
            (OpKind::Verify, _) => {}
            // A hydrated branch reads through nothing any more; one that
            // failed or was canceled keeps reading through its ancestors.
            (OpKind::Hydrate, Status::Succeeded) => crate::levels::detach(db, op.target)?,
            (OpKind::Hydrate, _) => {}
            (OpKind::Copy, Status::Succeeded) => {
                containers::set_state(db, op.target, ContainerState::Ready, now)?
            }
            (OpKind::Copy, Status::Failed) => {
                containers::set_state(db, op.target, ContainerState::Failed, now)?
            }
            // A canceled copy's target is deleted by the caller
            // (`Engine::cancel`, whose cascade is above this module).
            (OpKind::Copy, _) => {}
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
}

/// The one-active-operation-per-key rule (also a partial unique index on
/// `operations(exclusive_key)`): `Conflict`, naming the active operation,
/// when an operation with `key` is pending or in progress. `source` names
/// the source in the message.
pub(super) fn ensure_none_active(db: &dyn Db, key: &str, source: &str) -> Result<()> {
    let Some(active) = active_with_key(db, key)? else {
        return Ok(());
    };
    Err(Error::new(
        ErrorKind::Conflict {
            active: Some(active.clone()),
        },
        format!("{source} already has an operation in progress ({active})"),
    ))
}

/// The active operation holding exclusive `key`, if any (at most one: a
/// partial unique index).
pub(crate) fn active_with_key(db: &dyn Db, key: &str) -> Result<Option<String>> {
    one(
        db,
        &format!("SELECT id FROM operations WHERE exclusive_key = ?1 AND status IN {ACTIVE}"),
        &[key.into()],
    )?
    .map(|r| r.text(0))
    .transpose()
}
