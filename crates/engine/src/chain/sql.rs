//! The SQL fragments that read through a list of arms: the rows an arm
//! shows, the newest version of a key, a union over the arms. Pure: they
//! only build text (containers' ids and bounds inline, integers from the
//! database; collection filters as quoted literals).
//!
//! Uses: `db` (the dialect).

use super::Arm;
use crate::db::Dialect;

/// `'a','b'`: a quoted SQL list.
pub(crate) fn literal_list(items: &[String]) -> String {
    items
        .iter()
        .map(|s| format!("'{}'", s.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(",")
}

/// `alias.container = c AND alias.lsn <= b AND <visible at b> [AND
/// alias.collection IN (…)]`.
pub(crate) fn arm_rows(arm: &Arm, alias: &str) -> String {
    arm_rows_with(arm, alias, "")
}

/// [`arm_rows`] with no index on `lsn` usable (`+lsn`): a walk along the
/// primary key, in key order.
pub(crate) fn arm_rows_by_key(arm: &Arm, alias: &str) -> String {
    arm_rows_with(arm, alias, "+")
}

fn arm_rows_with(arm: &Arm, alias: &str, lsn_prefix: &str) -> String {
    let mut s = format!(
        "{alias}.container = {c} AND {lsn_prefix}{alias}.lsn <= {b} \
         AND ({alias}.visible_from IS NULL OR {alias}.visible_from <= {b})",
        c = arm.container,
        b = arm.bound
    );
    if let Some(cols) = &arm.collections {
        s.push_str(&format!(
            " AND {alias}.collection IN ({})",
            literal_list(cols)
        ));
    }
    s
}

/// [`arm_rows`] where the walk must go along the primary key: on
/// PostgreSQL, whose planner cannot tell the two indexes apart on a table
/// it has no statistics for yet, [`arm_rows_by_key`].
pub(crate) fn arm_rows_keyed(d: Dialect, arm: &Arm, alias: &str) -> String {
    match d {
        Dialect::Sqlite => arm_rows(arm, alias),
        Dialect::Postgres => arm_rows_by_key(arm, alias),
    }
}

/// The greatest LSN of (`coll`, `key`) across `arms`, each within its
/// bound and filter; -1 (or NULL for one arm) when there is none.
///
/// A seek on the primary key `(container, collection, key, lsn)`: see
/// [`Dialect::lsn_by_key`], which every `max(lsn)` of a key goes through.
pub(crate) fn newest(d: Dialect, arms: &[Arm], coll: &str, key: &str) -> String {
    let parts: Vec<String> = arms
        .iter()
        .map(|a| {
            format!(
                "(SELECT max({}) FROM records x WHERE {} AND x.collection = {coll} AND x.key = {key})",
                d.lsn_by_key("x.lsn"),
                arm_rows(a, "x")
            )
        })
        .collect();
    if parts.len() == 1 {
        parts.into_iter().next().unwrap_or_default()
    } else {
        format!(
            "{}({})",
            d.greatest(),
            parts
                .iter()
                .map(|p| format!("coalesce({p}, -1)"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// The rows of `arms[i]` that show through it (alias `r`): within bound and
/// filter, and under a cut only the live version at the cut.
pub(crate) fn visible(d: Dialect, arms: &[Arm], i: usize) -> String {
    let arm = &arms[i];
    // PostgreSQL's planner took `records_lsn` for the bound and sorted the
    // whole container for every chunk (a copy ran at 0.01 of one INSERT …
    // SELECT): there the walk goes along the primary key, as the chunks'
    // order is.
    let mut s = arm_rows_keyed(d, arm, "r");
    if let Some(cut) = cut_shows(d, arms, i) {
        s.push_str(&format!(" AND {cut}"));
    }
    s
}

/// 1 when a row of `arms[i]` within its bound and filter (alias `r`, see
/// [`arm_rows_keyed`]) shows through it, else 0 (see [`cut_shows`]).
pub(crate) fn shown(d: Dialect, arms: &[Arm], i: usize) -> String {
    let cut = cut_shows(d, arms, i);
    cut.map_or("1".into(), |c| format!("CASE WHEN {c} THEN 1 ELSE 0 END"))
}

/// Under a cut, the condition that row `r` of `arms[i]` is the live
/// version at the cut, the one that shows (None: the arm has no cut).
fn cut_shows(d: Dialect, arms: &[Arm], i: usize) -> Option<String> {
    arms[i].cut.map(|(_, first)| {
        format!(
            "r.deleted = 0 AND r.lsn = {}",
            newest(d, &arms[first..], "r.collection", "r.key")
        )
    })
}

/// `IN (c0, c1, …)` over the arms' containers.
pub(crate) fn containers_in(arms: &[Arm]) -> String {
    let mut ids: Vec<i64> = arms.iter().map(|a| a.container).collect();
    ids.sort_unstable();
    ids.dedup();
    format!(
        "IN ({})",
        ids.iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    )
}

/// `SELECT {cols} FROM records r WHERE <arm i shows r> AND {range}` for
/// every arm, joined by `join` (`UNION` also drops a version two
/// containers hold).
pub(crate) fn union(d: Dialect, arms: &[Arm], cols: &str, range: &str, join: &str) -> String {
    (0..arms.len())
        .map(|i| {
            format!(
                "SELECT {cols} FROM records r WHERE {} AND {range}",
                visible(d, arms, i)
            )
        })
        .collect::<Vec<_>>()
        .join(join)
}
