//! The imports table (`imports`): this module is its only writer. An
//! import's life — open, stage, commit, abandon, idle expiry — is
//! [`crate::staging`]'s; a container's open import is abandoned by
//! [`crate::deletion`]'s cascade.
//!
//! Uses: `containers` (the type, for messages), `db`, `error`.

use crate::containers::Container;
use crate::db::{exec, one, query, Db};
use crate::error::{Error, ErrorKind, Result};

pub use crate::containers::STAGING_FAMILY;

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

/// `Conflict` when the container has an import open, or is the branch of
/// a merge under way (its changes are being read into its parent).
pub(crate) fn check_no_open_import(db: &dyn Db, c: &Container) -> Result<()> {
    let open = one(
        db,
        "SELECT id, merge_from IS NOT NULL FROM imports WHERE container = ?1 AND state = 'open'",
        &[c.id.into()],
    )?;
    if let Some(r) = open {
        let message = match r.bool(1)? {
            true => format!(
                "{} is taking a merge (merge {}); it takes writes again once the merge ends",
                c.reference(),
                r.text(0)?
            ),
            false => format!(
                "{} is loading import {}; it takes writes again once the import is committed or abandoned",
                c.reference(),
                r.text(0)?
            ),
        };
        return Err(Error::new(ErrorKind::Conflict { active: None }, message));
    }
    let merging = one(
        db,
        "SELECT id FROM imports WHERE merge_from = ?1 AND state = 'open' LIMIT 1",
        &[c.id.into()],
    )?;
    match merging {
        None => Ok(()),
        Some(r) => Err(Error::new(
            ErrorKind::Conflict { active: None },
            format!(
                "{} is being merged into the resource it was cloned from (merge {}); it takes writes again once the merge ends",
                c.reference(),
                r.text(0)?
            ),
        )),
    }
}

/// What the import of a merge carries (`merging`): none for a client's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MergeSpec {
    /// The branch merged.
    pub from: i64,
    /// Its merge base when the merge started.
    pub base: i64,
    /// The LSN every staged version of the merge has.
    pub lsn: i64,
    /// `ours` | `theirs` | none (conflicts end the merge).
    pub resolve: Option<String>,
    /// A masked branch's JSON pointers that may flow back (a JSON array).
    pub paths: Option<String>,
    /// Examined up to this key.
    pub after: (String, String),
    /// Keys of the branch examined so far.
    pub examined: i64,
}

/// An import as stored.
pub(crate) struct Row {
    pub id: String,
    pub tenant: String,
    pub container: i64,
    /// Its staging branch.
    pub stage: i64,
    pub state: String,
    pub staged: i64,
    pub committed_lsn: Option<i64>,
    /// Why it ended without a commit, when it says.
    pub outcome: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub merge: Option<MergeSpec>,
}

/// The columns [`Row::from`] reads.
const COLUMNS: &str = "id, tenant, container, stage, state, staged, committed_lsn, outcome, created_at, updated_at, \
     merge_from, merge_base, merge_lsn, merge_resolve, merge_paths, merge_after_collection, merge_after_key, examined";

impl Row {
    fn from(r: &crate::db::Row) -> Result<Row> {
        let merge = match r.opt_i64(10)? {
            None => None,
            Some(from) => Some(MergeSpec {
                from,
                base: r.i64(11)?,
                lsn: r.i64(12)?,
                resolve: r.opt_text(13)?,
                paths: r.opt_text(14)?,
                after: (r.text(15)?, r.text(16)?),
                examined: r.i64(17)?,
            }),
        };
        Ok(Row {
            id: r.text(0)?,
            tenant: r.text(1)?,
            container: r.i64(2)?,
            stage: r.i64(3)?,
            state: r.text(4)?,
            staged: r.i64(5)?,
            committed_lsn: r.opt_i64(6)?,
            outcome: r.opt_text(7)?,
            created_at: r.i64(8)?,
            updated_at: r.i64(9)?,
            merge,
        })
    }
}

/// An import of `tenant`, or `NotFound`.
pub(crate) fn load(db: &dyn Db, tenant: &str, id: &str) -> Result<Row> {
    let r = one(
        db,
        &format!("SELECT {COLUMNS} FROM imports WHERE id = ?1"),
        &[id.into()],
    )?;
    if let Some(r) = r {
        let row = Row::from(&r)?;
        if row.tenant == tenant {
            return Ok(row);
        }
    }
    Err(Error::not_found(format!("import {id} not found")))
}

/// `NotFound` unless the import loads into `c`; `InvalidState` unless open.
pub(crate) fn check_open(row: &Row, c: &Container) -> Result<()> {
    if row.container != c.id {
        return Err(Error::not_found(format!(
            "import {} not found for {}",
            row.id,
            c.reference()
        )));
    }
    if row.merge.is_some() {
        return Err(Error::state(
            "merging",
            format!(
                "import {} carries a merge into {}: it ends with the merge (DELETE the branch's /merge to cancel it)",
                row.id,
                c.reference()
            ),
        ));
    }
    if row.state != "open" {
        return Err(Error::state(
            &row.state,
            format!("import {} is {}", row.id, row.state),
        ));
    }
    Ok(())
}

/// The open import of a container, if any.
pub(crate) fn open_of(db: &dyn Db, container: i64) -> Result<Option<Row>> {
    one(
        db,
        &format!("SELECT {COLUMNS} FROM imports WHERE container = ?1 AND state = 'open'"),
        &[container.into()],
    )?
    .map(|r| Row::from(&r))
    .transpose()
}

/// Open imports idle past their expiry, oldest first (a merge's never
/// idles: the worker fills it).
pub(crate) fn idle(db: &dyn Db, now: i64, limit: i64) -> Result<Vec<Row>> {
    query(
        db,
        &format!(
            "SELECT {COLUMNS} FROM imports WHERE state = 'open' AND expires_at <= ?1 AND merge_from IS NULL \
             ORDER BY expires_at LIMIT ?2"
        ),
        &[now.into(), limit.into()],
    )?
    .iter()
    .map(Row::from)
    .collect()
}

/// A new open import of `container` staged in `stage` (a merge's when
/// `merge` is given).
pub(crate) fn insert(
    db: &dyn Db,
    id: &str,
    c: &Container,
    stage: i64,
    expires_at: i64,
    now: i64,
    merge: Option<&MergeSpec>,
) -> Result<()> {
    exec(
        db,
        "INSERT INTO imports (id, tenant, container, stage, state, staged, expires_at, created_at, updated_at, \
         merge_from, merge_base, merge_lsn, merge_resolve, merge_paths) \
         VALUES (?1, ?2, ?3, ?4, 'open', 0, ?5, ?6, ?6, ?7, ?8, ?9, ?10, ?11)",
        &[
            id.into(),
            c.tenant.as_str().into(),
            c.id.into(),
            stage.into(),
            expires_at.into(),
            now.into(),
            merge.map(|m| m.from).into(),
            merge.map(|m| m.base).into(),
            merge.map(|m| m.lsn).into(),
            merge.and_then(|m| m.resolve.clone()).into(),
            merge.and_then(|m| m.paths.clone()).into(),
        ],
    )
}

/// The oldest merge under way (`id`: that one), if any.
pub(crate) fn next_merge(db: &dyn Db, id: Option<&str>) -> Result<Option<Row>> {
    one(
        db,
        &format!(
            "SELECT {COLUMNS} FROM imports WHERE state = 'open' AND merge_from IS NOT NULL \
             AND (CAST(?1 AS TEXT) IS NULL OR id = ?1) ORDER BY created_at, id LIMIT 1"
        ),
        &[id.into()],
    )?
    .map(|r| Row::from(&r))
    .transpose()
}

/// The merges of branch `from`, newest first: the one under way, or the
/// last that ended.
pub(crate) fn merges_of(db: &dyn Db, from: i64, limit: i64) -> Result<Vec<Row>> {
    query(
        db,
        &format!(
            "SELECT {COLUMNS} FROM imports WHERE merge_from = ?1 ORDER BY created_at DESC, id DESC LIMIT ?2"
        ),
        &[from.into(), limit.into()],
    )?
    .iter()
    .map(Row::from)
    .collect()
}

/// A merge examined `examined` more keys, up to `after`, and staged
/// `staged` of them.
pub(crate) fn merge_progress(
    db: &dyn Db,
    id: &str,
    after: (&str, &str),
    examined: i64,
    staged: i64,
    now: i64,
) -> Result<()> {
    exec(
        db,
        "UPDATE imports SET merge_after_collection = ?2, merge_after_key = ?3, examined = examined + ?4, \
         staged = staged + ?5, updated_at = ?6 WHERE id = ?1",
        &[
            id.into(),
            after.0.into(),
            after.1.into(),
            examined.into(),
            staged.into(),
            now.into(),
        ],
    )
}

/// Why an import ended without a commit.
pub(crate) fn set_outcome(db: &dyn Db, id: &str, outcome: &str) -> Result<()> {
    exec(
        db,
        "UPDATE imports SET outcome = ?2 WHERE id = ?1",
        &[id.into(), outcome.into()],
    )
}

/// `lines` more were staged; the idle expiry moves to `expires_at`.
pub(crate) fn add_staged(
    db: &dyn Db,
    id: &str,
    lines: i64,
    expires_at: i64,
    now: i64,
) -> Result<()> {
    exec(
        db,
        "UPDATE imports SET staged = staged + ?2, expires_at = ?3, updated_at = ?4 WHERE id = ?1",
        &[id.into(), lines.into(), expires_at.into(), now.into()],
    )
}

/// Committed at `lsn`.
pub(crate) fn set_committed(db: &dyn Db, id: &str, lsn: i64, now: i64) -> Result<()> {
    exec(
        db,
        "UPDATE imports SET state = 'committed', committed_lsn = ?2, updated_at = ?3 WHERE id = ?1",
        &[id.into(), lsn.into(), now.into()],
    )
}

/// Abandoned: nothing of it ever shows.
pub(crate) fn set_abandoned(db: &dyn Db, id: &str, now: i64) -> Result<()> {
    exec(
        db,
        "UPDATE imports SET state = 'abandoned', updated_at = ?2 WHERE id = ?1",
        &[id.into(), now.into()],
    )
}

/// What is wrong with a container's import bookkeeping: an open import
/// whose staging branch is gone, or a committed one whose staging branch
/// was never released.
pub(crate) fn problems(db: &dyn Db, container: i64) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for r in query(
        db,
        "SELECT i.id, i.state, i.stage, s.id, s.deleting FROM imports i LEFT JOIN containers s ON s.id = i.stage \
         WHERE i.container = ?1 AND i.state IN ('open', 'committed')",
        &[container.into()],
    )? {
        let (id, state, stage) = (r.text(0)?, r.text(1)?, r.i64(2)?);
        let exists = r.opt_i64(3)?.is_some();
        let deleting = r.bool(4)?;
        if state == "open" && (!exists || deleting) {
            out.push(format!("import {id} is open, but its staging branch {stage} is gone"));
        }
        if state == "committed" && exists && !deleting {
            out.push(format!(
                "import {id} is committed, but its staging branch {stage} was never released"
            ));
        }
    }
    Ok(out)
}
