//! Hydration: an operation (kind `hydrate`) that copies every version a
//! branch reads through its ancestors into the branch itself, in the same
//! bounded, leased chunks as a copy. The branch stays readable and
//! writable throughout (its own writes are newer than anything copied, and
//! a copied version answers exactly as the ancestor's did); when the last
//! chunk commits, its levels are dropped and it depends on nothing.
//!
//! Started by the user ([`Engine::hydrate`]), by a clone that asks for it or
//! whose chain is deeper than [`Config::max_branch_depth`](crate::handle::Config),
//! and when a parent is deleted (its rows are freed only once no branch
//! reads through it).
//!
//! A hydration is an operation of the data API (family `native`) whatever
//! the branch's family, so it never shows among a vendor family's clones.

use serde_json::json;

use super::rows::{insert_in_place, load};
use super::types::{OpKind, Operation};
use crate::containers::{self, Container};
use crate::db::{exec, transaction, Db};
use crate::error::{Error, Result};
use crate::events::append;
use crate::handle::Engine;
use crate::util::new_id;

/// The exclusive key of a container's hydration: one at a time.
fn key(container: i64) -> String {
    format!("hydrate:{container}")
}

impl Engine<'_> {
    /// Start hydrating `container` unless a hydration is already active;
    /// returns the active or new operation's id, or None when the container
    /// reads through nothing. Its chunks start at
    /// [`Config::initial_chunk`](crate::handle::Config) records.
    pub(crate) fn start_hydration(
        &self,
        db: &dyn Db,
        container: i64,
        reason: &str,
        now: i64,
    ) -> Result<Option<String>> {
        let Some(c) = containers::by_id(db, container)? else {
            return Ok(None);
        };
        if c.chain.is_empty() {
            return Ok(None);
        }
        let snapshot = c.chain.iter().map(|l| l.bound).max().unwrap_or(0);
        if let Some(id) = super::lifecycle::active_with_key(db, &key(container))? {
            let active = load(db, &id)?.ok_or_else(|| Error::corrupt("operation vanished"))?;
            if active.snapshot_lsn < snapshot {
                restart(db, &id, container, snapshot, reason, now)?;
            }
            return Ok(Some(id));
        }
        let (records, bytes) = totals(db, container)?;
        let id = new_id(self.env);
        let op = insert_in_place(
            db,
            &id,
            OpKind::Hydrate,
            &c,
            snapshot,
            &key(container),
            (records, bytes),
            self.config.initial_chunk,
            &json!({ "reason": reason }),
            now,
        )?;
        let mut data = op.progress_json();
        data["reason"] = json!(reason);
        append(db, &id, now, "created", &data)?;
        Ok(Some(id))
    }
}

/// What a hydration of `container` reads through: the versions and bytes
/// its statistics count.
fn totals(db: &dyn Db, container: i64) -> Result<(i64, i64)> {
    let t = crate::stats::totals(db, container)?;
    Ok((t.versions, t.version_bytes))
}

/// A level was added under an active hydration (an import committed into
/// the container): the hydration's cursor may already have passed keys
/// the new level holds, and its last chunk drops every level, so it starts
/// over from the first key. Rows it copied before stay (a copy is `INSERT
/// OR IGNORE`, so they are not counted twice); only the scan repeats.
fn restart(
    db: &dyn Db,
    id: &str,
    container: i64,
    snapshot: i64,
    reason: &str,
    now: i64,
) -> Result<()> {
    let (records, bytes) = totals(db, container)?;
    exec(
        db,
        &format!(
            "UPDATE operations SET cur_collection = '', cur_key = '', cur_lsn = 0, snapshot_lsn = ?2, \
               records_total = {max}(CAST(?3 AS BIGINT), records_copied), \
               bytes_total = {max}(CAST(?4 AS BIGINT), bytes_copied), updated_at = ?5 WHERE id = ?1",
            max = db.dialect().greatest()
        ),
        &[id.into(), snapshot.into(), records.into(), bytes.into(), now.into()],
    )?;
    let op = load(db, id)?.ok_or_else(|| Error::corrupt("operation vanished"))?;
    let mut data = op.progress_json();
    data["restarted"] = json!(reason);
    append(db, id, now, "progress", &data).map(|_| ())
}

/// Cancel the operations that read a container being deleted and change
/// nothing else: its hydration and its verification (its own copies and
/// clones from it refuse the deletion instead). They end here, inside the
/// deletion's cascade, without `finish`: the container goes, so there is
/// no target state to set and no one to notify.
pub(crate) fn cancel_for_deleted(db: &dyn Db, container: i64, now: i64) -> Result<()> {
    for key in [key(container), super::verify::key(container)] {
        if let Some(id) = super::lifecycle::active_with_key(db, &key)? {
            exec(
                db,
                "UPDATE operations SET status = 'canceled', completed_at = ?2, updated_at = ?2, lease_owner = NULL, \
                 lease_expires = 0 WHERE id = ?1",
                &[id.as_str().into(), now.into()],
            )?;
            append(
                db,
                &id,
                now,
                "canceled",
                &json!({ "status": "canceled", "reason": "the resource was deleted" }),
            )?;
        }
    }
    Ok(())
}

impl Engine<'_> {
    /// Hydrate a branch: an operation that copies what it reads through its
    /// ancestors into it. Returns the active hydration if one runs, a new
    /// one otherwise; `None` when the container reads through nothing
    /// (nothing to do).
    pub fn hydrate(&self, c: &Container) -> Result<Option<Operation>> {
        let now = self.env.now_us();
        transaction(self.db, |db| {
            let Some(fresh) = containers::by_id(db, c.id)? else {
                return Err(Error::not_found(format!("{} not found", c.reference())));
            };
            match self.start_hydration(db, fresh.id, "requested", now)? {
                Some(id) => Ok(load(db, &id)?),
                None => Ok(None),
            }
        })
    }
}
