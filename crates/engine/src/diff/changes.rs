//! A side's changes after a point: the row sources whose keys a diff or a
//! merge looks at, per arm — written after it (`records_lsn`), shown after
//! it (an import's level, a reset's, rows shown later than written through
//! `records_late`) — and the candidate keys they give.

use std::collections::BTreeSet;

use super::{Basis, Side};
use crate::chain::{arm_rows, newest, Arm};
use crate::containers::{self, Container};
use crate::db::{query, Db};
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
fn changed_rows(
    a: &Arm,
    basis: Basis,
    touch: Touch,
    late: i64,
    quiet: i64,
    other: i64,
    unchanged: &str,
) -> Vec<String> {
    let rows = arm_rows(a, "r");
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
            format!("records r INDEXED BY records_lsn WHERE {rows} AND r.lsn > {b}"),
            // A row shown after b and written at or before it shows later
            // than written.
            format!(
                "records r INDEXED BY records_late WHERE {rows} AND r.visible_from > {} AND r.visible_from > r.lsn AND {unchanged}",
                b.max(quiet)
            ),
        ],
        (Basis::Since(b), _) => vec![format!("records r INDEXED BY records_lsn WHERE {rows} AND r.lsn > {b}")],
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
fn side_rows(db: &dyn Db, side: &Side, other: i64, basis: Basis, touch: Touch) -> Result<Vec<String>> {
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
            "r.lsn IS NOT {}",
            newest(&side.container.arms(b.min(side.at)), "r.collection", "r.key")
        ),
        Basis::Scan => String::new(),
    };
    Ok(arms
        .iter()
        .flat_map(|a| {
            let quiet = if a.container == side.container.id { quiet } else { 0 };
            let late = late.get(&a.container).copied().unwrap_or(0);
            changed_rows(a, basis, touch, late, quiet, other, &unchanged)
        })
        .collect())
}

/// The candidate keys of one side after `cursor`, at most `limit`, in
/// (collection, key) order: those it saw change after the basis (or all,
/// when scanning).
pub(crate) fn candidates(
    db: &dyn Db,
    side: &Side,
    other: i64,
    basis: Basis,
    touch: Touch,
    cursor: (&str, &str),
    limit: i64,
) -> Result<Vec<(String, String)>> {
    let parts: Vec<String> = side_rows(db, side, other, basis, touch)?
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
/// basis.
pub(crate) fn touched(
    db: &dyn Db,
    side: &Side,
    other: i64,
    basis: Basis,
    keys: &[(String, String)],
) -> Result<BTreeSet<(String, String)>> {
    let mut out = BTreeSet::new();
    let rows = side_rows(db, side, other, basis, Touch::Shown)?;
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

