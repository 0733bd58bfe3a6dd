//! Containers (`containers`): a cluster, namespace, service, dataset or
//! database is a container of collections of versioned records. Scoped by
//! family and tenant: a lookup with another tenant answers `NotFound`.
//! This module is the table's only writer. Deleting one is a cascade, and
//! lives above it ([`crate::deletion`]): here a container is only marked.
//!
//! Uses: `levels` (a row's chain), `chain`, `stats`, `lsn`, `limits`, `db`,
//! `error`, `util`.

use serde_json::Value as Json;

use crate::chain::{self, Arm, Level};
use crate::db::{exec, one, query, returning_one, Db, Row};
use crate::error::{Error, ErrorKind, Result};
use crate::mask::Mask;
use crate::util::check_name;

/// Whether a container can be read and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    /// Usable.
    Ready,
    /// The target of a copy that has not finished: readable, not writable.
    Cloning,
    /// The target of a copy that failed or was canceled.
    Failed,
}

impl ContainerState {
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerState::Ready => "ready",
            ContainerState::Cloning => "cloning",
            ContainerState::Failed => "failed",
        }
    }
    fn parse(s: &str) -> Result<ContainerState> {
        Ok(match s {
            "ready" => ContainerState::Ready,
            "cloning" => ContainerState::Cloning,
            "failed" => ContainerState::Failed,
            _ => return Err(Error::corrupt(format!("unknown container state {s:?}"))),
        })
    }
}

/// A container as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Container {
    pub id: i64,
    pub family: String,
    pub tenant: String,
    pub name: String,
    pub spec: Json,
    pub state: ContainerState,
    /// The newest LSN written to this container (0 when empty).
    pub head_lsn: i64,
    /// History before this LSN has been pruned.
    pub floor_lsn: i64,
    /// Point-in-time reads work from this time (µs) on.
    pub floor_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// When the worker deletes it (µs), if it has a time-to-live.
    pub expires_at: Option<i64>,
    /// Refuses direct writes, imports and deletes ([`ErrorKind::Protected`]).
    pub protected: bool,
    /// The container it was cloned from, which a reset reads again (None:
    /// made empty, or from before migration 10 and no longer a branch).
    pub parent: Option<i64>,
    /// The LSN up to which its own changes are accounted for in `parent`:
    /// the clone's base, a reset's, or its last merge's. A merge considers
    /// the changes of both sides after it ([`crate::merge`]).
    pub merge_base: Option<i64>,
    /// The point it shares with `parent`: the clone's or the last reset's
    /// base (merges do not move it). A diff against the parent starts there.
    pub branch_base: Option<i64>,
    /// A masked branch's mask (rules and salt): what it shows of what it
    /// was cloned from ([`crate::mask`]).
    pub mask: Option<Mask>,
    /// The ancestors a branch reads through, parent first (empty: it holds
    /// all its versions itself). See [`crate::chain`].
    pub chain: Vec<Level>,
}

impl Container {
    /// `family:name`, the data API's resource reference.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.family, self.name)
    }

    /// What reading it as of `at` scans: itself, then its levels.
    pub(crate) fn arms(&self, at: i64) -> Vec<Arm> {
        chain::read_arms(self.id, &self.chain, at)
    }
}

/// The columns [`from_row`] reads, the last the branch levels (the outer
/// table must be `containers` unaliased).
pub(crate) fn columns(db: &dyn Db) -> String {
    format!("{BASE_COLUMNS}, {}", crate::levels::chain_column(db.dialect()))
}

const BASE_COLUMNS: &str =
    "id, family, tenant, name, spec, state, head_lsn, floor_lsn, floor_at, created_at, updated_at, expires_at, protected, parent, merge_base, mask, branch_base";

pub(crate) fn from_row(r: &Row) -> Result<Container> {
    Ok(Container {
        id: r.i64(0)?,
        family: r.text(1)?,
        tenant: r.text(2)?,
        name: r.text(3)?,
        spec: serde_json::from_str(&r.text(4)?)
            .map_err(|e| Error::corrupt(format!("container spec: {e}")))?,
        state: ContainerState::parse(&r.text(5)?)?,
        head_lsn: r.i64(6)?,
        floor_lsn: r.i64(7)?,
        floor_at: r.i64(8)?,
        created_at: r.i64(9)?,
        updated_at: r.i64(10)?,
        expires_at: r.opt_i64(11)?,
        protected: r.bool(12)?,
        parent: r.opt_i64(13)?,
        merge_base: r.opt_i64(14)?,
        mask: r
            .opt_text(15)?
            .map(|t| serde_json::from_str(&t))
            .transpose()
            .map_err(|e| Error::corrupt(format!("container mask: {e}")))?,
        branch_base: r.opt_i64(16)?,
        chain: chain::parse_chain(r.opt_text(17)?)?,
    })
}

pub(crate) fn find(db: &dyn Db, family: &str, tenant: &str, name: &str) -> Result<Container> {
    one(
        db,
        &format!("SELECT {} FROM containers WHERE family = ?1 AND tenant = ?2 AND name = ?3 AND deleting = 0", columns(db)),
        &[family.into(), tenant.into(), name.into()],
    )?
    .map(|r| from_row(&r))
    .transpose()?
    .ok_or_else(|| Error::not_found(format!("{family}:{name} not found")))
}

pub(crate) fn by_id(db: &dyn Db, id: i64) -> Result<Option<Container>> {
    one(
        db,
        &format!(
            "SELECT {} FROM containers WHERE id = ?1 AND deleting = 0",
            columns(db)
        ),
        &[id.into()],
    )?
    .map(|r| from_row(&r))
    .transpose()
}

pub(crate) fn insert(
    db: &dyn Db,
    now: i64,
    family: &str,
    tenant: &str,
    name: &str,
    spec: &Json,
    state: ContainerState,
) -> Result<Container> {
    check_name("family", family)?;
    check_name("tenant", tenant)?;
    check_name("resource name", name)?;
    let exists = one(
        db,
        "SELECT 1 FROM containers WHERE family = ?1 AND tenant = ?2 AND name = ?3 AND deleting = 0",
        &[family.into(), tenant.into(), name.into()],
    )?;
    if exists.is_some() {
        return Err(Error::new(
            ErrorKind::AlreadyExists,
            format!("{family}:{name} already exists"),
        ));
    }
    let row = returning_one(
        db,
        &format!(
            "INSERT INTO containers (family, tenant, name, spec, state, floor_lsn, floor_at, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, (SELECT coalesce(max(lsn), 0) FROM lsns), ?6, ?6, ?6) RETURNING {BASE_COLUMNS}, NULL"
        ),
        &[family.into(), tenant.into(), name.into(), spec.to_string().into(), state.as_str().into(), now.into()],
    )?
    .ok_or_else(|| Error::corrupt("INSERT … RETURNING gave no row"))?;
    from_row(&row)
}

pub(crate) fn set_state(db: &dyn Db, id: i64, state: ContainerState, now: i64) -> Result<()> {
    exec(
        db,
        "UPDATE containers SET state = ?2, updated_at = ?3 WHERE id = ?1",
        &[id.into(), state.as_str().into(), now.into()],
    )
}

/// Mark a container deleted: it disappears for readers and its name is free
/// at once. Only the mark: what follows is [`crate::deletion`]'s cascade.
pub(crate) fn set_deleting(db: &dyn Db, id: i64, now: i64) -> Result<()> {
    exec(
        db,
        "UPDATE containers SET deleting = 1, updated_at = ?2 WHERE id = ?1",
        &[id.into(), now.into()],
    )
}

/// A write committed at `lsn`.
pub(crate) fn set_head(db: &dyn Db, id: i64, lsn: i64, at: i64) -> Result<()> {
    exec(
        db,
        "UPDATE containers SET head_lsn = ?2, updated_at = ?3 WHERE id = ?1",
        &[id.into(), lsn.into(), at.into()],
    )
}

/// History before `lsn` (committed at `at`) is no longer read: a clone's
/// start, or retention's pin.
pub(crate) fn set_floor(db: &dyn Db, id: i64, lsn: i64, at: i64) -> Result<()> {
    exec(
        db,
        "UPDATE containers SET floor_lsn = ?2, floor_at = ?3 WHERE id = ?1",
        &[id.into(), lsn.into(), at.into()],
    )
}

/// When the worker deletes it (µs); `None`: never.
pub(crate) fn set_expiry(db: &dyn Db, id: i64, at: Option<i64>, now: i64) -> Result<()> {
    exec(
        db,
        "UPDATE containers SET expires_at = ?2, updated_at = ?3 WHERE id = ?1",
        &[id.into(), at.into(), now.into()],
    )
}

/// A deleted container no branch reads through any more: its rows can go.
pub(crate) fn next_to_purge(db: &dyn Db) -> Result<Option<i64>> {
    one(
        db,
        "SELECT id FROM containers c WHERE deleting = 1 \
         AND NOT EXISTS (SELECT 1 FROM branch_levels b WHERE b.ancestor = c.id) ORDER BY id LIMIT 1",
        &[],
    )?
    .map(|r| r.i64(0))
    .transpose()
}

/// Protect a container, or stop protecting it.
pub(crate) fn set_protected(db: &dyn Db, id: i64, protected: bool, now: i64) -> Result<()> {
    exec(
        db,
        "UPDATE containers SET protected = ?2, updated_at = ?3 WHERE id = ?1",
        &[id.into(), protected.into(), now.into()],
    )
}

/// `Protected` when the container refuses `what` (a write, an import, a
/// deletion) because it is protected.
pub(crate) fn check_unprotected(c: &Container, what: &str) -> Result<()> {
    if c.protected {
        return Err(Error::new(
            ErrorKind::Protected,
            format!(
                "{} is protected and refuses {what}; unprotect it first, or merge into it",
                c.reference()
            ),
        ));
    }
    Ok(())
}

/// The container a clone was made from.
/// Set the container it was cloned from, and the LSN its changes are
/// counted from for merges into it (the clone's or reset's base).
pub(crate) fn set_parent(db: &dyn Db, id: i64, parent: i64, base: i64) -> Result<()> {
    exec(
        db,
        "UPDATE containers SET parent = ?2, merge_base = ?3, branch_base = ?3 WHERE id = ?1",
        &[id.into(), parent.into(), base.into()],
    )
}

/// Make the container a masked branch with `mask`.
pub(crate) fn set_mask(db: &dyn Db, id: i64, mask: Option<&Mask>) -> Result<()> {
    exec(
        db,
        "UPDATE containers SET mask = ?2 WHERE id = ?1",
        &[
            id.into(),
            mask.map(|m| serde_json::to_string(m).unwrap_or_default()).into(),
        ],
    )
}

/// Rows of the container may now show from `lsn` (their `visible_from`).
pub(crate) fn raise_visible_max(db: &dyn Db, id: i64, lsn: i64) -> Result<()> {
    exec(
        db,
        "UPDATE containers SET visible_max = ?2 WHERE id = ?1 AND visible_max < ?2",
        &[id.into(), lsn.into()],
    )
}

/// The greatest `visible_from` the rows of each of `ids` may have (0: none
/// shows late).
pub(crate) fn visible_max(db: &dyn Db, ids: &[i64]) -> Result<std::collections::BTreeMap<i64, i64>> {
    if ids.is_empty() {
        return Ok(Default::default());
    }
    let list: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    query(
        db,
        &format!(
            "SELECT id, visible_max FROM containers WHERE id IN ({})",
            list.join(",")
        ),
        &[],
    )?
    .iter()
    .map(|r| Ok((r.i64(0)?, r.i64(1)?)))
    .collect()
}

/// A merge accounted for the container's changes up to `lsn`.
pub(crate) fn set_merge_base(db: &dyn Db, id: i64, lsn: i64) -> Result<()> {
    exec(
        db,
        "UPDATE containers SET merge_base = ?2 WHERE id = ?1",
        &[id.into(), lsn.into()],
    )
}

/// The family of containers a reset retired: never routed, never listed.
pub const HISTORY_FAMILY: &str = "history";

/// The family of an import's hidden staging branch: never routed, never
/// listed.
pub const STAGING_FAMILY: &str = "staging";

/// A reset retires the container that was: it keeps its id, rows and
/// levels (reads before the reset, and branches made from it, still read
/// it), leaves its name to its successor, and is never listed or routed
/// again (family `history`).
/// Its new name, `<family>:<name>@<r>` (`r`: the reset's LSN), says what
/// it was and until when.
pub(crate) fn retire(db: &dyn Db, id: i64, r: i64, now: i64) -> Result<()> {
    exec(
        db,
        "UPDATE containers SET family = 'history', name = family || ':' || name || '@' || ?3, updated_at = ?2 \
         WHERE id = ?1",
        &[id.into(), now.into(), r.to_string().into()],
    )
}

/// What a container was before its resets (retired, not deleted yet):
/// deleting it deletes them.
pub(crate) fn past_states(db: &dyn Db, c: &Container) -> Result<Vec<i64>> {
    query(
        db,
        "SELECT id FROM containers WHERE family = 'history' AND tenant = ?1 AND name LIKE ?2 ESCAPE '\\' \
         AND deleting = 0",
        &[
            c.tenant.as_str().into(),
            format!("{}:{}@%", c.family, c.name.replace('%', "\\%").replace('_', "\\_")).into(),
        ],
    )?
    .iter()
    .map(|r| r.i64(0))
    .collect()
}

/// The row of a purged container goes.
pub(crate) fn remove(db: &dyn Db, id: i64) -> Result<()> {
    exec(db, "DELETE FROM containers WHERE id = ?1", &[id.into()])
}

mod api;
