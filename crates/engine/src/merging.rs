//! Merges too large for one transaction (issue 29.3): the same merge as
//! [`crate::merge`], run by the worker a chunk at a time, visible at once.
//!
//! Starting one opens an import into the parent — the staging machinery of
//! [`crate::staging`]: a hidden branch of the parent at its head, which no
//! reader of the parent sees — and takes one LSN for every version the
//! merge will write. The import carries the merge (`imports.merge_*`): the
//! branch, its merge base, the strategy and paths, and the key it was
//! examined up to. Each [`Engine::merge_step`] is one short transaction: it
//! examines the next keys the branch wrote after its merge base (the rule
//! of [`crate::merge`]: `merge::page`), stages what the merge writes, and
//! moves the cursor — so two workers at once, or a step retried after a
//! crash, never stage a key twice or skip one. The step that examines the
//! last key commits the import (the parent shows all of the merge at one
//! new LSN, or none of it) and moves the branch's merge base there.
//!
//! While it runs, the parent refuses other writes (its import is open) and
//! so does the branch (`imports::check_no_open_import`): both sides stay
//! as they were when it started, so the chunks examine one state. A
//! conflict with no strategy ends the merge (`conflicts`) and nothing shows;
//! the branch's conflicts are then listed as for a small merge. Deleting the
//! branch or the parent ends it too (`deletion`'s cascade); so does
//! [`Engine::cancel_merge`]. A merge's import never idles out: the worker
//! advances it.
//!
//! Uses: `staging` (open and commit inside a transaction), `deletion`
//! (abandoning), `merge` (sides, pages), `records` (`write_at`),
//! `imports`, `containers`, `limits`, `lookup`, `lsn`, `db`, `error`.

use crate::containers::{self, Container};
use crate::db::{read, transaction, Db, LockWait};
use crate::error::{Error, ErrorKind, Result};
use crate::handle::Engine;
use crate::imports::{self, MergeSpec};
use crate::merge::{self, Resolve};
use crate::records::{batch_bytes, write_at, Write};
use crate::util::new_id;
use crate::{lookup, lsn};

/// A chunked merge as its branch's status shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeRun {
    pub id: String,
    /// `running`, `merged`, `conflicts` (nothing merged: list them with
    /// [`Engine::merge_conflicts`]), `canceled`, or `abandoned` (`message`
    /// says why).
    pub state: &'static str,
    /// The branch merged.
    pub from: i64,
    /// The parent merged into.
    pub into: i64,
    /// The branch's merge base when it started.
    pub base: i64,
    /// The LSN every version it writes has.
    pub versions_lsn: i64,
    /// Keys of the branch examined so far.
    pub examined: i64,
    /// Writes staged so far (all of them once merged).
    pub applied: i64,
    /// The LSN the parent shows the merge from, once merged.
    pub lsn: Option<i64>,
    pub message: Option<String>,
    pub started_at: i64,
    pub updated_at: i64,
}

impl MergeRun {
    fn from(row: &imports::Row) -> Result<MergeRun> {
        let spec = row
            .merge
            .as_ref()
            .ok_or_else(|| Error::corrupt(format!("import {} carries no merge", row.id)))?;
        let state = match (row.state.as_str(), row.outcome.as_deref()) {
            ("open", _) => "running",
            ("committed", _) => "merged",
            (_, Some(CONFLICTS)) => "conflicts",
            (_, Some(CANCELED)) => "canceled",
            _ => "abandoned",
        };
        Ok(MergeRun {
            id: row.id.clone(),
            state,
            from: spec.from,
            into: row.container,
            base: spec.base,
            versions_lsn: spec.lsn,
            examined: spec.examined,
            applied: row.staged,
            lsn: row.committed_lsn,
            message: row.outcome.clone(),
            started_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// The outcome of a merge that met a conflict and had no strategy.
const CONFLICTS: &str = "conflicts";
/// The outcome of a canceled merge.
const CANCELED: &str = "canceled";

impl Engine<'_> {
    /// Start merging a branch into its parent in chunks (see the module's
    /// documentation). Refused as a small merge is (a masked branch
    /// without `paths`, a parent reset since, an import open on either
    /// side), and with `Conflict` while one is under way.
    pub fn start_merge(
        &self,
        family: &str,
        tenant: &str,
        name: &str,
        resolve: Option<Resolve>,
        paths: Option<&[String]>,
    ) -> Result<MergeRun> {
        let now = self.env.now_us();
        let id = new_id(self.env);
        let limits = self.config.limits();
        let paths = paths
            .map(|p| serde_json::to_string(p).map_err(|e| Error::invalid(e.to_string())))
            .transpose()?;
        transaction(self.db, |db| {
            let branch = containers::find(db, family, tenant, name)?;
            let parsed = parse_paths(paths.as_deref())?;
            let (_, theirs, base) = merge::sides(db, &branch, parsed.as_deref())?;
            imports::check_no_open_import(db, &branch)?;
            crate::limits::check_resources(db, &limits, tenant)?;
            let (at, _) = lsn::next(db, self.env)?;
            let spec = MergeSpec {
                from: branch.id,
                base,
                lsn: at,
                resolve: resolve.map(|r| r.as_str().to_string()),
                paths: paths.clone(),
                after: (String::new(), String::new()),
                examined: 0,
            };
            self.open_in(db, &theirs.container, &id, i64::MAX, now, Some(&spec))?;
            MergeRun::from(&imports::load(db, tenant, &id)?)
        })
    }

    /// The worker: advance the oldest merge under way by up to `limit` keys
    /// of its branch, in one transaction; the step that examines the last
    /// key commits it. Returns the merge as it now is (None: none runs).
    pub fn merge_step(&self, limit: i64) -> Result<Option<MergeRun>> {
        self.step_merge(None, limit)
    }

    /// Bounded progress on a branch's merge from a status read (where no
    /// worker runs, reads advance it): one step of up to `limit` keys,
    /// given up at once when another writer holds the database. Returns
    /// the merge as it now is (None: it never ran one).
    pub fn nudge_merge(&self, branch: &Container, limit: i64) -> Result<Option<MergeRun>> {
        let Some(run) = self.merge_run(branch)? else {
            return Ok(None);
        };
        if run.state != "running" {
            return Ok(Some(run));
        }
        let _ = self.db.lock_wait(LockWait::Never);
        let stepped = self.step_merge(Some(&run.id), limit);
        let _ = self.db.lock_wait(LockWait::Default);
        match stepped {
            Ok(Some(r)) => Ok(Some(r)),
            Ok(None) => self.merge_run(branch),
            Err(e) if e.is_retryable() => Ok(Some(run)),
            Err(e) => Err(e),
        }
    }

    fn step_merge(&self, id: Option<&str>, limit: i64) -> Result<Option<MergeRun>> {
        let now = self.env.now_us();
        let limits = self.config.limits();
        transaction(self.db, |db| {
            let Some(row) = imports::next_merge(db, id)? else {
                return Ok(None);
            };
            match self.advance(db, &row, limit.max(1), &limits, now) {
                Ok(()) => {}
                // The merge cannot go on: it ends, and nothing of it shows.
                Err(e) if ends_merge(&e) => {
                    let why = match e.kind {
                        ErrorKind::Conflict { .. } if e.message == CONFLICTS => CONFLICTS.to_string(),
                        _ => e.message,
                    };
                    imports::set_outcome(db, &row.id, &why)?;
                    self.abandon(db, &row, now)?;
                }
                Err(e) => return Err(e),
            }
            MergeRun::from(&imports::load(db, &row.tenant, &row.id)?).map(Some)
        })
    }

    /// One step of merge `row` inside the caller's transaction.
    fn advance(
        &self,
        db: &dyn Db,
        row: &imports::Row,
        limit: i64,
        limits: &crate::limits::Limits,
        now: i64,
    ) -> Result<()> {
        let spec = row.merge.as_ref().ok_or_else(|| Error::corrupt("not a merge"))?;
        let branch = containers::by_id(db, spec.from)?
            .ok_or_else(|| Error::not_found("the branch was deleted"))?;
        let paths = parse_paths(spec.paths.as_deref())?;
        let (ours, theirs, _) = merge::sides(db, &branch, paths.as_deref())?;
        if theirs.container.id != row.container {
            return Err(Error::invalid(format!(
                "{} no longer reads the resource it was merging into",
                branch.reference()
            )));
        }
        let resolve = spec.resolve.as_deref().map(Resolve::parse).transpose()?;
        let mut cursor = spec.after.clone();
        let (mut examined, mut writes) = (0i64, Vec::<Write>::new());
        let mut last = false;
        let walk = self.merge_walk(db, &ours, &theirs, spec.base)?;
        while examined < limit {
            let n = (limit - examined).min(lookup::ROWS as i64);
            let (keys, seen, next) = merge::page(
                db,
                &ours,
                &theirs,
                spec.base,
                paths.as_deref(),
                walk,
                (&cursor.0, &cursor.1),
                n,
            )?;
            examined += seen as i64;
            for k in keys {
                match (k.theirs_changed, resolve) {
                    (true, None) => {
                        return Err(Error::new(ErrorKind::Conflict { active: None }, CONFLICTS))
                    }
                    (true, Some(Resolve::Theirs)) => {}
                    _ => writes.push(merge::as_write(k)),
                }
            }
            match next {
                Some(n) => cursor = n,
                None => {
                    last = true;
                    break;
                }
            }
        }
        let stage = containers::by_id(db, row.stage)?
            .ok_or_else(|| Error::corrupt("a merge's staging branch vanished"))?;
        if !writes.is_empty() {
            let adding = batch_bytes(&writes, usize::MAX)?;
            crate::limits::count_writes(db, limits, &row.tenant, writes.len() as i64, now)?;
            crate::limits::check_stored_bytes(db, limits, &row.tenant, adding)?;
            write_at(db, &stage, &writes, spec.lsn, now)?;
        }
        imports::merge_progress(
            db,
            &row.id,
            (&cursor.0, &cursor.1),
            examined,
            writes.len() as i64,
            now,
        )?;
        if last {
            let row = imports::load(db, &row.tenant, &row.id)?;
            let into = containers::by_id(db, row.container)?
                .ok_or_else(|| Error::not_found("the resource merged into was deleted"))?;
            let done = self.commit_in(db, &row, &into)?;
            containers::set_merge_base(db, branch.id, done.lsn)?;
        }
        Ok(())
    }

    /// Cancel a branch's merge under way: nothing of it shows.
    /// `InvalidState` when none runs.
    pub fn cancel_merge(&self, branch: &Container) -> Result<MergeRun> {
        let now = self.env.now_us();
        transaction(self.db, |db| {
            let b = containers::find(db, &branch.family, &branch.tenant, &branch.name)?;
            let row = imports::merges_of(db, b.id, 1)?.into_iter().next();
            match row {
                Some(row) if row.state == "open" => {
                    imports::set_outcome(db, &row.id, CANCELED)?;
                    self.abandon(db, &row, now)?;
                    MergeRun::from(&imports::load(db, &row.tenant, &row.id)?)
                }
                _ => Err(Error::state(
                    "idle",
                    format!("{} has no merge under way", b.reference()),
                )),
            }
        })
    }

    /// A branch's merge under way, or the last that ended (None: it never
    /// ran a chunked merge).
    pub fn merge_run(&self, branch: &Container) -> Result<Option<MergeRun>> {
        read(self.db, |db| {
            let b = containers::find(db, &branch.family, &branch.tenant, &branch.name)?;
            imports::merges_of(db, b.id, 1)?
                .first()
                .map(MergeRun::from)
                .transpose()
        })
    }
}

/// Errors after which a merge cannot go on (its sides changed, a conflict
/// with no strategy, a quota it would pass): everything else (a busy
/// database, the per-minute write rate) is retried by the next step.
fn ends_merge(e: &Error) -> bool {
    matches!(
        e.kind,
        ErrorKind::Conflict { .. }
            | ErrorKind::NotFound
            | ErrorKind::InvalidInput
            | ErrorKind::InvalidState { .. }
            | ErrorKind::TooLarge
    ) || matches!(
        &e.kind,
        ErrorKind::LimitExceeded { limit, .. } if !limit.is_rate()
    )
}

/// A merge's stored paths (a JSON array of pointers).
fn parse_paths(paths: Option<&str>) -> Result<Option<Vec<String>>> {
    paths
        .map(|p| {
            serde_json::from_str(p)
                .map_err(|e| Error::corrupt(format!("a merge's paths are not a JSON array: {e}")))
        })
        .transpose()
}
