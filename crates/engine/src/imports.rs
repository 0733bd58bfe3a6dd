//! Staged imports: a load of any size, all or nothing, in short
//! transactions.
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

use serde_json::json;

use crate::branches::{self, Level};
use crate::containers::{self, Container, ContainerState};
use crate::db::{exec, one, transaction, Db};
use crate::error::{Error, ErrorKind, Result};
use crate::records::{write_in, Committed, Write};
use crate::util::new_id;
use crate::{lsn, Engine};

/// The family of staging branches: never routed, never listed.
pub const STAGING_FAMILY: &str = "staging";

/// An open import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    pub id: String,
    /// The container it loads into.
    pub container: i64,
    /// Lines staged so far.
    pub staged: i64,
    /// When the worker abandons it without another request (µs).
    pub expires_at: i64,
}

/// The open import of a container, if any.
pub(crate) fn open_for(db: &dyn Db, container: i64) -> Result<Option<String>> {
    one(
        db,
        "SELECT id FROM imports WHERE container = ?1 AND state = 'open'",
        &[container.into()],
    )?
    .map(|r| r.text(0))
    .transpose()
}

/// `Conflict` when the container has an import open.
pub(crate) fn check_no_open_import(db: &dyn Db, c: &Container) -> Result<()> {
    match open_for(db, c.id)? {
        None => Ok(()),
        Some(id) => Err(Error::new(
            ErrorKind::Conflict { active: None },
            format!(
                "{} is loading import {id}; it takes writes again once the import is committed or abandoned",
                c.reference()
            ),
        )),
    }
}

struct Row {
    id: String,
    tenant: String,
    container: i64,
    stage: i64,
    state: String,
    staged: i64,
}

/// The columns [`Row::from`] reads.
const COLUMNS: &str = "id, tenant, container, stage, state, staged";

impl Row {
    fn from(r: &crate::db::Row) -> Result<Row> {
        Ok(Row {
            id: r.text(0)?,
            tenant: r.text(1)?,
            container: r.i64(2)?,
            stage: r.i64(3)?,
            state: r.text(4)?,
            staged: r.i64(5)?,
        })
    }
}

fn load(db: &dyn Db, tenant: &str, id: &str) -> Result<Row> {
    let r = one(
        db,
        &format!("SELECT {COLUMNS} FROM imports WHERE id = ?1"),
        &[id.into()],
    )?;
    let row = match r {
        Some(r) => Row::from(&r)?,
        None => return Err(Error::not_found(format!("import {id} not found"))),
    };
    if row.tenant != tenant {
        return Err(Error::not_found(format!("import {id} not found")));
    }
    Ok(row)
}

fn check_open(row: &Row, c: &Container) -> Result<()> {
    if row.container != c.id {
        return Err(Error::not_found(format!(
            "import {} not found for {}",
            row.id,
            c.reference()
        )));
    }
    if row.state != "open" {
        return Err(Error::state(
            &row.state,
            format!("import {} is {}", row.id, row.state),
        ));
    }
    Ok(())
}

/// Abandon an import inside the caller's transaction: its staging branch
/// is deleted (its rows purged in chunks).
fn abandon_in(db: &dyn Db, env: &dyn crate::Env, row: &Row, now: i64) -> Result<()> {
    exec(
        db,
        "UPDATE imports SET state = 'abandoned', updated_at = ?2 WHERE id = ?1",
        &[row.id.as_str().into(), now.into()],
    )?;
    containers::mark_deleting(db, env, row.stage, now)
}

/// Abandon the open import of a container being deleted, if any.
pub(crate) fn abandon_open(
    db: &dyn Db,
    env: &dyn crate::Env,
    container: i64,
    now: i64,
) -> Result<()> {
    let Some(r) = one(
        db,
        "SELECT id, tenant FROM imports WHERE container = ?1 AND state = 'open'",
        &[container.into()],
    )?
    else {
        return Ok(());
    };
    let row = load(db, &r.text(1)?, &r.text(0)?)?;
    abandon_in(db, env, &row, now)
}

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
            check_no_open_import(db, &c)?;
            crate::limits::check_resources(db, &limits, &c.tenant)?;
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
            let levels = branches::derive_levels(&c, base, true, None);
            branches::insert_levels(db, stage.id, &levels)?;
            let stats = branches::stats_at_base(db, &c, base, true, None)?;
            crate::records::apply_stats(db, stage.id, &stats)?;
            let expires_at = now.saturating_add(idle_us);
            exec(
                db,
                "INSERT INTO imports (id, tenant, container, stage, state, staged, expires_at, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, 'open', 0, ?5, ?6, ?6)",
                &[
                    id.as_str().into(),
                    c.tenant.as_str().into(),
                    c.id.into(),
                    stage.id.into(),
                    expires_at.into(),
                    now.into(),
                ],
            )?;
            Ok(Import {
                id: id.clone(),
                container: c.id,
                staged: 0,
                expires_at,
            })
        })
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
            let row = load(db, &c.tenant, id)?;
            check_open(&row, c)?;
            let stage = containers::by_id(db, row.stage)?
                .ok_or_else(|| Error::corrupt("staging branch vanished"))?;
            crate::limits::count_writes(db, &limits, &c.tenant, writes.len() as i64, now)?;
            crate::limits::check_stored_bytes(db, &limits, &c.tenant, adding)?;
            let done = write_in(db, self.env, &stage, writes)?;
            let expires_at = now.saturating_add(idle_us);
            exec(
                db,
                "UPDATE imports SET staged = staged + ?2, expires_at = ?3, updated_at = ?4 WHERE id = ?1",
                &[id.into(), (writes.len() as i64).into(), expires_at.into(), now.into()],
            )?;
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
            let row = load(db, &c.tenant, id)?;
            check_open(&row, c)?;
            let c = containers::by_id(db, row.container)?
                .ok_or_else(|| Error::not_found(format!("{} not found", c.reference())))?;
            let stage = containers::by_id(db, row.stage)?
                .ok_or_else(|| Error::corrupt("staging branch vanished"))?;
            let (at, committed_at) = lsn::next(db, self.env)?;
            // The container now reads the staging branch's own versions
            // from `at` on, then what it read before.
            let mut levels = vec![Level {
                depth: 1,
                ancestor: stage.id,
                bound: at,
                collections: None,
                cut_depth: None,
                from: at,
            }];
            levels.extend(c.chain.iter().map(|l| Level {
                depth: l.depth + 1,
                cut_depth: l.cut_depth.map(|d| d + 1),
                ..l.clone()
            }));
            exec(
                db,
                "DELETE FROM branch_levels WHERE container = ?1",
                &[c.id.into()],
            )?;
            branches::insert_levels(db, c.id, &levels)?;
            exec(
                db,
                "DELETE FROM collection_stats WHERE container = ?1",
                &[c.id.into()],
            )?;
            exec(
                db,
                "INSERT INTO collection_stats (container, collection, records, bytes, versions, version_bytes) \
                 SELECT ?1, collection, records, bytes, versions, version_bytes FROM collection_stats WHERE container = ?2",
                &[c.id.into(), stage.id.into()],
            )?;
            exec(
                db,
                "UPDATE containers SET head_lsn = ?2, updated_at = ?3 WHERE id = ?1",
                &[c.id.into(), at.into(), committed_at.into()],
            )?;
            exec(
                db,
                "UPDATE imports SET state = 'committed', committed_lsn = ?2, updated_at = ?3 WHERE id = ?1",
                &[id.into(), at.into(), committed_at.into()],
            )?;
            // The staging branch goes; its rows stay until the container,
            // which now reads through it, is hydrated (started here).
            containers::mark_deleting(db, self.env, stage.id, committed_at)?;
            Ok(Committed {
                lsn: at,
                committed_at,
                applied: row.staged as usize,
            })
        })
    }

    /// Abandon an import: nothing of it ever shows; its rows are freed.
    pub fn abandon_import(&self, c: &Container, id: &str) -> Result<()> {
        let now = self.env.now_us();
        transaction(self.db, |db| {
            let row = load(db, &c.tenant, id)?;
            check_open(&row, c)?;
            abandon_in(db, self.env, &row, now)
        })
    }

    /// The worker: abandon up to `limit` imports idle past their expiry.
    /// Returns how many.
    pub fn expire_imports(&self, limit: i64) -> Result<usize> {
        let now = self.env.now_us();
        transaction(self.db, |db| {
            let due = crate::db::query(
                db,
                &format!(
                    "SELECT {COLUMNS} FROM imports \
                     WHERE state = 'open' AND expires_at <= ?1 ORDER BY expires_at LIMIT ?2"
                ),
                &[now.into(), limit.into()],
            )?;
            for r in &due {
                let row = Row::from(r)?;
                abandon_in(db, self.env, &row, now)?;
            }
            Ok(due.len())
        })
    }
}
