//! Deleting a container, and everything that follows from it: the one
//! cascade of the engine, above the tables it touches.
//!
//! [`Engine::mark_deleting`] marks the container (it disappears for readers
//! and its name is free at once), cancels its own hydration and
//! verification, abandons its open import (whose staging branch is deleted
//! the same way) and a merge of it under way, drops its levels, and starts hydrating every branch whose
//! parent it is. Its rows go later, in chunks ([`Engine::purge_step`]), once
//! no branch reads through it.
//!
//! Callers: deleting a resource, its expiry, canceling a copy (its target
//! goes), and an import's commit or abandonment (its staging branch goes).
//!
//! Uses: `operations` (hydration start and cancel, finish), `imports`,
//! `levels`, `containers`, `records`, `stats`, `snapshots`, `db`, `error`.

use crate::containers::{self, Container};
use crate::db::{one, transaction, Db};
use crate::error::{Error, ErrorKind, Result};
use crate::handle::Engine;
use crate::operations::{self, CancelPolicy, OpKind, Operation, Status, IN_PLACE};
use crate::schema::ACTIVE;
use crate::{imports, levels, records, snapshots, stats};

impl Engine<'_> {
    /// Mark a container deleted, inside the caller's transaction, with its
    /// cascade (see the module documentation).
    pub(crate) fn mark_deleting(&self, db: &dyn Db, id: i64, now: i64) -> Result<()> {
        let was = containers::by_id(db, id)?;
        containers::set_deleting(db, id, now)?;
        operations::cancel_for_deleted(db, id, now)?;
        if let Some(row) = imports::open_of(db, id)? {
            self.abandon(db, &row, now)?;
        }
        // A merge of it under way ends with it: nothing of it shows.
        for row in imports::merges_of(db, id, 1)? {
            if row.state == "open" {
                imports::set_outcome(db, &row.id, "the branch was deleted")?;
                self.abandon(db, &row, now)?;
            }
        }
        // What it was before its resets goes with it (their own branches
        // keep them until they hydrate). Only its own: a window it inherited
        // from a parent names the parent's past.
        if let Some(c) = &was {
            for past in containers::past_states(db, c)? {
                self.mark_deleting(db, past, now)?;
            }
        }
        levels::clear(db, id)?;
        for child in levels::children(db, id)? {
            self.start_hydration(db, child, "the parent was deleted", now)?;
        }
        Ok(())
    }

    /// Abandon an import inside the caller's transaction: its staging
    /// branch is deleted (its rows purged in chunks).
    pub(crate) fn abandon(&self, db: &dyn Db, row: &imports::Row, now: i64) -> Result<()> {
        imports::set_abandoned(db, &row.id, now)?;
        self.mark_deleting(db, row.stage, now)
    }

    /// Delete a container. Refused with `Conflict` while it is the source or
    /// target of an active copy (cancel that first); its own hydration is
    /// canceled. Branches that read through it keep working: they hydrate
    /// before its rows are freed.
    pub fn delete_container(&self, family: &str, tenant: &str, name: &str) -> Result<()> {
        let now = self.env.now_us();
        transaction(self.db, |db| {
            let c = containers::find(db, family, tenant, name)?;
            containers::check_unprotected(&c, "deletion")?;
            if let Some(r) = one(
                db,
                &format!(
                    "SELECT id FROM operations WHERE (source = ?1 OR target = ?1) AND status IN {ACTIVE} \
                     AND kind NOT IN {IN_PLACE} LIMIT 1"
                ),
                &[c.id.into()],
            )? {
                let op = r.text(0)?;
                return Err(Error::new(
                    ErrorKind::Conflict {
                        active: Some(op.clone()),
                    },
                    format!(
                        "{} has an active operation {op}; cancel it or wait for it to finish",
                        c.reference()
                    ),
                ));
            }
            self.mark_deleting(db, c.id, now)
        })
    }

    /// Mark up to `limit` expired containers deleting (their rows go with
    /// [`Engine::purge_step`]) and return them. A container that is the
    /// source or target of an active copy waits for it to end.
    pub fn expire_step(&self, limit: i64) -> Result<Vec<Container>> {
        let now = self.env.now_us();
        transaction(self.db, |db| {
            let due = crate::db::query(
                db,
                &format!(
                    "SELECT {} FROM containers WHERE expires_at IS NOT NULL AND expires_at <= ?1 \
                     AND deleting = 0 AND protected = 0 AND NOT EXISTS (SELECT 1 FROM operations o \
                     WHERE (o.source = containers.id OR o.target = containers.id) \
                       AND o.status IN {ACTIVE} AND o.kind NOT IN {IN_PLACE}) \
                     ORDER BY expires_at, id LIMIT ?2",
                    containers::columns(db),
                ),
                &[now.into(), limit.max(0).into()],
            )?
            .iter()
            .map(containers::from_row)
            .collect::<Result<Vec<_>>>()?;
            for c in &due {
                self.mark_deleting(db, c.id, now)?;
            }
            Ok(due)
        })
    }

    /// Purge up to `limit` rows of deleted containers; returns how many rows
    /// went. A container's last rows, statistics and snapshots go with its
    /// row.
    pub fn purge_step(&self, limit: i64) -> Result<i64> {
        transaction(self.db, |db| {
            let Some(id) = containers::next_to_purge(db)? else {
                return Ok(0);
            };
            let gone = records::purge(db, id, limit)?;
            if gone < limit {
                stats::clear(db, id)?;
                snapshots::clear(db, id)?;
                containers::remove(db, id)?;
            }
            Ok(gone)
        })
    }

    /// Cancel an operation. Pending ones always cancel; in-progress ones by
    /// `policy`; ended ones answer `InvalidState`. A copy's target is
    /// deleted with it.
    pub fn cancel(&self, tenant: &str, id: &str, policy: CancelPolicy) -> Result<Operation> {
        let now = self.env.now_us();
        transaction(self.db, |db| {
            let op = operations::load_for(db, tenant, id)?;
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
            let done = self.finish(db, &op, Status::Canceled, None, now)?;
            if op.op_kind() == OpKind::Copy {
                self.mark_deleting(db, op.target, now)?;
            }
            Ok(done)
        })
    }
}
