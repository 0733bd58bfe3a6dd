//! Staged imports: a load of any size, all or nothing, in short
//! transactions (the `imports` rows are [`crate::imports`]').
//!
//! One transaction holding the write lock for a whole large import is what
//! a remote libSQL server refuses (it rolls back a writer that holds the
//! lock past 5 s while another waits). So an import is staged in a hidden
//! branch of its container instead — a container of family `staging` that
//! no tenant can address, made like any branch (levels, statistics) at the
//! container's head — and each batch of lines is an ordinary write to it in
//! its own short transaction. Readers of the container see nothing of it.
//! Committing is one small transaction: the container gains the staging
//! branch as a level that shows only for reads at or after the commit LSN
//! (`branch_levels.from_lsn`), takes the staging branch's statistics, and
//! the staging branch is marked deleted — which starts the container's
//! hydration (its parent is gone), after which the staging rows are freed.
//! While an import is open the container refuses other writes (so the
//! staging branch's base stays the container's state); an import left
//! without a request for its idle time is abandoned by the worker and its
//! rows freed.

//!
//! Uses: `deletion` (releasing a staging branch), `records`, `levels`,
//! `containers`, `imports`, `stats`, `limits`, `lsn`, `db`, `error`.

use serde_json::json;

use crate::containers::Container;
use crate::containers::{self, ContainerState};
use crate::db::{transaction, Db};
use crate::error::{Error, Result};
use crate::handle::Engine;
use crate::imports::{self, check_open, Import, STAGING_FAMILY};
use crate::records::{write_in, Committed, Write};
use crate::util::new_id;
use crate::{levels, lsn, stats};

impl Engine<'_> {
    /// Open an import into `c`: a hidden staging branch at its head. The
    /// container refuses other writes until the import is committed or
    /// abandoned; `idle_us` without a request abandons it.
    pub fn open_import(&self, c: &Container, idle_us: i64) -> Result<Import> {
        let now = self.env.now_us();
        let id = new_id(self.env);
        let limits = self.config.limits();
        transaction(self.db, |db| {
            let c = containers::find(db, &c.family, &c.tenant, &c.name)?;
            crate::records::check_writable(&c)?;
            imports::check_no_open_import(db, &c)?;
            crate::limits::check_resources(db, &limits, &c.tenant)?;
            let expires_at = now.saturating_add(idle_us);
            self.open_in(db, &c, &id, expires_at, now, None)?;
            Ok(Import {
                id: id.clone(),
                container: c.id,
                staged: 0,
                expires_at,
            })
        })
    }

    /// Open import `id` into `c` inside the caller's transaction (a
    /// merge's when `merge` is given): a hidden staging branch at its head.
    /// `Conflict` when `c` has an import open already or is being merged.
    pub(crate) fn open_in(
        &self,
        db: &dyn Db,
        c: &Container,
        id: &str,
        expires_at: i64,
        now: i64,
        merge: Option<&imports::MergeSpec>,
    ) -> Result<Container> {
        imports::check_no_open_import(db, c)?;
        let base = lsn::head(db)?;
        let stage = containers::insert(
            db,
            now,
            STAGING_FAMILY,
            &c.tenant,
            &format!("import-{id}"),
            &json!({"import": id, "into": c.reference()}),
            ContainerState::Ready,
        )?;
        levels::create_branch(db, stage.id, c.id, &c.chain, base, true, None, None)?;
        imports::insert(db, id, c, stage.id, expires_at, now, merge)?;
        Ok(stage)
    }

    /// Stage a batch of writes in an open import, in one short transaction
    /// (callers keep batches small: a few thousand lines). Nothing shows in
    /// the container until [`Engine::commit_import`]. Returns the import and
    /// the batch as written to the staging branch (its LSN shows in the
    /// versions' history; they become visible at the commit's LSN).
    pub fn stage_import(
        &self,
        c: &Container,
        id: &str,
        writes: &[Write],
        idle_us: i64,
    ) -> Result<(Import, Committed)> {
        let adding = crate::records::batch_bytes(writes, self.config.max_batch)?;
        let now = self.env.now_us();
        let limits = self.config.limits();
        transaction(self.db, |db| {
            let row = imports::load(db, &c.tenant, id)?;
            check_open(&row, c)?;
            let into = containers::by_id(db, row.container)?
                .ok_or_else(|| Error::not_found(format!("{} not found", c.reference())))?;
            containers::check_unprotected(&into, "imports")?;
            let stage = containers::by_id(db, row.stage)?
                .ok_or_else(|| Error::corrupt("staging branch vanished"))?;
            crate::limits::count_writes(db, &limits, &c.tenant, writes.len() as i64, now)?;
            crate::limits::check_stored_bytes(db, &limits, &c.tenant, adding)?;
            let done = write_in(db, self.env, &stage, writes)?;
            let expires_at = now.saturating_add(idle_us);
            imports::add_staged(db, id, writes.len() as i64, expires_at, now)?;
            Ok((
                Import {
                    id: row.id.clone(),
                    container: row.container,
                    staged: row.staged + writes.len() as i64,
                    expires_at,
                },
                done,
            ))
        })
    }

    /// Commit an import: everything staged shows in the container at once,
    /// at a new LSN, in one small transaction.
    pub fn commit_import(&self, c: &Container, id: &str) -> Result<Committed> {
        transaction(self.db, |db| {
            let row = imports::load(db, &c.tenant, id)?;
            check_open(&row, c)?;
            let c = containers::by_id(db, row.container)?
                .ok_or_else(|| Error::not_found(format!("{} not found", c.reference())))?;
            containers::check_unprotected(&c, "imports")?;
            self.commit_in(db, &row, &c)
        })
    }

    /// Commit open import `row` into `c` inside the caller's transaction.
    pub(crate) fn commit_in(&self, db: &dyn Db, row: &imports::Row, c: &Container) -> Result<Committed> {
        let stage = containers::by_id(db, row.stage)?
            .ok_or_else(|| Error::corrupt("staging branch vanished"))?;
        let (at, committed_at) = lsn::next(db, self.env)?;
        // The container now reads the staging branch's own versions
        // from `at` on, then what it read before; it counts what the
        // staging branch counts.
        levels::add_staging(db, c.id, &c.chain, stage.id, at)?;
        stats::take(db, c.id, stage.id)?;
        containers::set_head(db, c.id, at, committed_at)?;
        imports::set_committed(db, &row.id, at, committed_at)?;
        // The staging branch goes; its rows stay until the container,
        // which now reads through it, is hydrated (started here).
        self.mark_deleting(db, stage.id, committed_at)?;
        Ok(Committed {
            lsn: at,
            committed_at,
            applied: row.staged as usize,
        })
    }

    /// Abandon an import: nothing of it ever shows; its rows are freed.
    pub fn abandon_import(&self, c: &Container, id: &str) -> Result<()> {
        let now = self.env.now_us();
        transaction(self.db, |db| {
            let row = imports::load(db, &c.tenant, id)?;
            check_open(&row, c)?;
            self.abandon(db, &row, now)
        })
    }

    /// The worker: abandon up to `limit` imports idle past their expiry.
    /// Returns how many.
    pub fn expire_imports(&self, limit: i64) -> Result<usize> {
        let now = self.env.now_us();
        transaction(self.db, |db| {
            let due = imports::idle(db, now, limit)?;
            for row in &due {
                self.abandon(db, row, now)?;
            }
            Ok(due.len())
        })
    }
}
