//! A side's changes after a point: the row sources whose keys a diff or a
//! merge looks at, per arm — written after it (`records_lsn`), shown after
//! it (an import's level, a reset's, rows shown later than written through
//! `records_late`) — and the candidate keys they give.

use std::collections::BTreeSet;

use super::{Basis, Side};
use crate::chain::{arm_rows, arm_rows_by_key, newest, Arm};
use crate::containers::{self, Container};
use crate::db::{query, Db, Dialect};
use crate::error::Result;
use crate::lookup;

/// Which rows of a side count as its changes after a point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Touch {
    /// Every version that shows after the point: written after it, or
    /// made visible after it (an import's commit, a hydrated copy).
    Shown,
    /// Versions written after it (a merge's own side: what a hydration
    /// copied keeps the LSN its ancestor wrote it at).
    Written,
}

/// How a side's rows written after a point are found, page after page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Walk {
    /// Through `records_lsn`: each page reads every row written after the
    /// point and keeps the first keys — for changes that are few.
    Changes,
    /// Along the primary key from the page's first key (no index on the
    /// LSN usable): all pages together read the arms once — for changes
    /// so many that reading them all on every page costs more.
    Keys,
}

/// The row sources (`records r … WHERE …`, each a whole `FROM` and
/// `WHERE`) whose rows of arm `a` are changes of its side after `basis`;
/// none: nothing of the arm is.
///
/// Rows written after b come from `records_lsn` (the planner would
/// otherwise walk the arm's primary key for the order it is asked for, a
/// scan of the arm to find the few changes).
///
/// `late` is the greatest `visible_from` the arm's rows may have: the
/// search for rows shown late happens only when some may show after b, and
/// reads the `records_late` index (rows shown later than written), never
/// the arm's rows.
///
/// A level's `since` (a reset's) shows its rows late: after b they are
/// changes of the side (its content was replaced at the reset) — except a
/// version the side showed at b already (`unchanged`: the same version
/// on both sides of the reset), and except through a level onto the other
/// side itself (`other`), whose rows at or below b the other side holds
/// too. Likewise the rows a hydration copied from a reset's levels (shown
/// from the reset on: `quiet`) are no change against the parent the reset
/// read.
#[allow(clippy::too_many_arguments)]
fn changed_rows(
    d: Dialect,
    a: &Arm,
    basis: Basis,
    touch: Touch,
    late: i64,
    quiet: i64,
    other: i64,
    unchanged: &str,
    walk: Walk,
) -> Vec<String> {
    let rows = arm_rows(a, "r");
    // Rows written after b: through `records_lsn`, or along the key.
    let written_after = |b: i64| match walk {
        Walk::Changes => format!(
            "records r{} WHERE {rows} AND r.lsn > {b}",
            d.indexed_by("records_lsn")
        ),
        Walk::Keys => format!("records r WHERE {} AND +r.lsn > {b}", arm_rows_by_key(a, "r")),
    };
    // When the arm's rows begin to show: an import's commit, a reset's
    // LSN; not a level onto the other side.
    let shows_from = if a.container == other { a.import_from } else { a.from };
    match (basis, touch) {
        (Basis::Scan, _) => vec![format!("records r WHERE {rows}")],
        // Nothing of this arm shows after b.
        (Basis::Since(b), _) if a.bound <= b && shows_from <= b => vec![],
        (Basis::Since(b), Touch::Shown) if a.import_from > b => {
            vec![format!("records r WHERE {rows}")]
        }
        (Basis::Since(b), Touch::Shown) if shows_from > b => {
            vec![format!("records r WHERE {rows} AND {unchanged}")]
        }
        (Basis::Since(b), Touch::Shown) if late > b.max(quiet) => vec![
            written_after(b),
            // A row shown after b and written at or before it shows later
            // than written.
            format!(
                "records r{} WHERE {rows} AND r.visible_from > {} AND r.visible_from > r.lsn AND {unchanged}",
                d.indexed_by("records_late"),
                b.max(quiet)
            ),
        ],
        (Basis::Since(b), _) => vec![written_after(b)],
    }
}

/// The latest reset of a container: its rows shown by then were its
/// parent's (0: never reset).
fn reset_point(c: &Container) -> i64 {
    c.chain
        .iter()
        .map(|l| if l.is_current() { l.since } else { l.until })
        .max()
        .unwrap_or(0)
}

/// The conditions of every arm of a side ([`changed_rows`]), compared
/// with the container `other`.
fn side_rows(
    db: &dyn Db,
    side: &Side,
    other: i64,
    basis: Basis,
    touch: Touch,
    walk: Walk,
) -> Result<Vec<String>> {
    let arms = side.container.arms(side.at);
    let ids: Vec<i64> = arms.iter().map(|a| a.container).collect();
    let late = containers::visible_max(db, &ids)?;
    // Compared with the parent its reset read, a side's own rows shown by
    // its latest reset are that parent's.
    let quiet = match side.container.parent == Some(other) {
        true => reset_point(&side.container),
        false => 0,
    };
    // A row is unchanged when it is the version the side showed at b.
    let unchanged = match basis {
        Basis::Since(b) => format!(
            "r.lsn IS DISTINCT FROM {}",
            newest(db.dialect(), &side.container.arms(b.min(side.at)), "r.collection", "r.key")
        ),
        Basis::Scan => String::new(),
    };
    Ok(arms
        .iter()
        .flat_map(|a| {
            let quiet = if a.container == side.container.id { quiet } else { 0 };
            let late = late.get(&a.container).copied().unwrap_or(0);
            changed_rows(db.dialect(), a, basis, touch, late, quiet, other, &unchanged, walk)
        })
        .collect())
}

/// The candidate keys of one side after `cursor`, at most `limit`, in
/// (collection, key) order: those it saw change after the basis (or all,
/// when scanning).
#[allow(clippy::too_many_arguments)]
pub(crate) fn candidates(
    db: &dyn Db,
    side: &Side,
    other: i64,
    basis: Basis,
    touch: Touch,
    walk: Walk,
    cursor: (&str, &str),
    limit: i64,
) -> Result<Vec<(String, String)>> {
    let parts: Vec<String> = side_rows(db, side, other, basis, touch, walk)?
        .into_iter()
        .map(|w| {
            // DISTINCT: a key has many versions in one arm (UNION
            // removes the duplicates across arms, not within one).
            format!("SELECT DISTINCT r.collection, r.key FROM {w} AND (r.collection, r.key) > (?1, ?2)")
        })
        .collect();
    if parts.is_empty() {
        return Ok(Vec::new());
    }
    query(
        db,
        &format!("{} ORDER BY 1, 2 LIMIT ?3", parts.join(" UNION ")),
        &[cursor.0.into(), cursor.1.into(), limit.into()],
    )?
    .iter()
    .map(|r| Ok((r.text(0)?, r.text(1)?)))
    .collect()
}

/// Which of `keys` (at most [`lookup::ROWS`]) a side saw change after the
/// basis, its changes walked as `walk` says.
pub(crate) fn touched(
    db: &dyn Db,
    side: &Side,
    other: i64,
    basis: Basis,
    walk: Walk,
    keys: &[(String, String)],
) -> Result<BTreeSet<(String, String)>> {
    let mut out = BTreeSet::new();
    // Along the key: a seek per key asked; through the LSN: every change.
    let rows = side_rows(db, side, other, basis, Touch::Shown, walk)?;
    for chunk in keys.chunks(lookup::ROWS) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("(?{}, ?{})", 2 * i + 1, 2 * i + 2))
            .collect();
        let parts: Vec<String> = rows
            .iter()
            .map(|w| {
                format!(
                    "SELECT r.collection, r.key FROM {w} AND (r.collection, r.key) IN (VALUES {})",
                    values.join(",")
                )
            })
            .collect();
        if parts.is_empty() {
            return Ok(out);
        }
        let params: Vec<crate::db::Value> = chunk
            .iter()
            .flat_map(|(c, k)| [c.as_str().into(), k.as_str().into()])
            .collect();
        for r in query(db, &parts.join(" UNION "), &params)? {
            out.insert((r.text(0)?, r.text(1)?));
        }
    }
    Ok(out)
}


impl crate::handle::Engine<'_> {
    /// How to walk a side's changes: as [`walk_for`] decides, unless
    /// [`Config::walk_by_key`](crate::handle::Config::walk_by_key) says.
    pub(crate) fn walk(
        &self,
        db: &dyn Db,
        side: &Side,
        other: i64,
        basis: Basis,
        touch: Touch,
    ) -> Result<Walk> {
        match self.config.walk_by_key {
            Some(true) => Ok(Walk::Keys),
            Some(false) => Ok(Walk::Changes),
            None => walk_for(db, side, other, basis, touch),
        }
    }
}

/// How to walk a side's changes after `basis` through many pages: along
/// the key ([`Walk::Keys`]) once reading every change on each page would
/// cost more than reading its arms once — more than √(ROWS × versions)
/// changes, the versions its arms hold (from their statistics); counted
/// up to that bound only.
fn walk_for(
    db: &dyn Db,
    side: &Side,
    other: i64,
    basis: Basis,
    touch: Touch,
) -> Result<Walk> {
    if basis == Basis::Scan {
        return Ok(Walk::Changes);
    }
    let mut versions = 0i64;
    for a in side.container.arms(side.at) {
        versions = versions.saturating_add(crate::stats::totals(db, a.container)?.versions);
    }
    let bound = ((lookup::ROWS as f64) * versions as f64).sqrt() as i64;
    let mut changes = 0i64;
    for w in side_rows(db, side, other, basis, touch, Walk::Changes)? {
        let n = query(
            db,
            &format!("SELECT count(*) FROM (SELECT 1 FROM {w} LIMIT ?1) AS n"),
            &[(bound - changes + 1).into()],
        )?;
        changes += n.first().map(|r| r.i64(0)).transpose()?.unwrap_or(0);
        if changes > bound {
            return Ok(Walk::Keys);
        }
    }
    Ok(Walk::Changes)
}
