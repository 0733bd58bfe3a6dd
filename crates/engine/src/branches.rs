//! Copy-on-write branches: a container that reads through its ancestors.
//!
//! A branch B of a source S at base LSN b has *levels*: S at bound b, then
//! every level of S with its bound lowered to b (a row of `branch_levels`
//! each, depth 1 the parent). Reading B as of L looks at B's own versions up
//! to L and at each level's versions up to min(L, bound), and takes the
//! version with the greatest LSN. That is "the branch's own versions first,
//! then the parent's as of the base, recursively": B's own versions were all
//! written after the branch was made (LSNs are global and only grow), so
//! they are newer than anything a level shows; and a level's versions are
//! newer than those of the levels below it for the same reason. A version
//! copied from one container into another keeps its (collection, key, LSN),
//! so the same coordinates always name the same version — which makes a
//! half-hydrated branch (some ancestor versions copied in, the rest still
//! read through) answer exactly what it answered before.
//!
//! Two options narrow what a level shows:
//! - a collection filter (the clone's `collections`): only those
//!   collections, intersected down the chain;
//! - skip-history (a clone without history): below that boundary only the
//!   version live at the boundary's base shows (`cut_depth` names the first
//!   level below the nearest such boundary; the cut LSN is that level's
//!   bound). Reads as of an LSN never see the difference — a skip-history
//!   branch's floor is its base — but its history and its hydration do.
//!
//! Every read here is an index seek or range scan per level on `records`'
//! primary key; a list or export page merges the levels' key ranges
//! (SQLite's ordered `UNION` merge, stopped by `LIMIT`), so no read scans an
//! ancestor to answer a page.
//!
//! SQL is built with the containers' ids and bounds inline (integers from
//! the database) and collection filters as quoted literals.

use std::collections::BTreeMap;

use crate::containers::Container;
use crate::db::{exec, query, Db, Row, Value};
use crate::error::{Error, Result};
use crate::records::Delta;

/// One ancestor a branch reads through (a row of `branch_levels`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Level {
    /// 1 for the parent, 2 for its parent, …
    pub depth: i64,
    pub ancestor: i64,
    /// The ancestor's versions at or below this LSN show.
    pub bound: i64,
    /// Only these collections show (None: all).
    pub collections: Option<Vec<String>>,
    /// The depth of the first level below the nearest skip-history boundary
    /// above this level, if any.
    pub cut_depth: Option<i64>,
    /// The level shows only to reads at or after this LSN (a committed
    /// import's staging branch, see [`crate::imports`]); 0 for a branch's.
    pub from: i64,
}

/// One container a read or a copy scans, and what of it shows.
#[derive(Debug, Clone)]
pub(crate) struct Arm {
    pub container: i64,
    pub bound: i64,
    pub collections: Option<Vec<String>>,
    /// `(cut LSN, first arm of the cut group)`: only a version live at the
    /// cut LSN across `arms[first..]` shows from this arm.
    pub cut: Option<(i64, usize)>,
    /// The level's `from` (0 for most): a copy of its rows keeps it as
    /// their `visible_from`.
    pub from: i64,
}

fn intersect(a: Option<&[String]>, b: Option<&[String]>) -> Option<Vec<String>> {
    match (a, b) {
        (None, None) => None,
        (Some(x), None) | (None, Some(x)) => Some(x.to_vec()),
        (Some(x), Some(y)) => Some(x.iter().filter(|c| y.contains(c)).cloned().collect()),
    }
}

/// The levels of a new branch of `source` at `base`, with or without
/// history, filtered to `filter`.
pub(crate) fn derive_levels(
    source: &Container,
    base: i64,
    history: bool,
    filter: Option<&[String]>,
) -> Vec<Level> {
    let mut out = vec![Level {
        depth: 1,
        ancestor: source.id,
        bound: base,
        collections: filter.map(|f| f.to_vec()),
        cut_depth: (!history).then_some(1),
        from: 0,
    }];
    for l in &source.chain {
        out.push(Level {
            depth: l.depth + 1,
            ancestor: l.ancestor,
            bound: l.bound.min(base),
            collections: intersect(l.collections.as_deref(), filter),
            cut_depth: if history {
                l.cut_depth.map(|d| d + 1)
            } else {
                Some(1)
            },
            from: l.from,
        });
    }
    out
}

/// Levels as arms, the first at index `offset` (1 when the container
/// itself is arm 0), bounds lowered to `at`; a level that shows only from a
/// later LSN than it is read at is left out.
fn level_arms(levels: &[Level], offset: usize, at: i64) -> Vec<Arm> {
    let shown: Vec<&Level> = levels
        .iter()
        .filter(|l| l.bound.min(at) >= l.from)
        .collect();
    shown
        .iter()
        .map(|l| Arm {
            container: l.ancestor,
            bound: l.bound.min(at),
            collections: l.collections.clone(),
            cut: l.cut_depth.map(|d| {
                let cut_lsn = levels
                    .iter()
                    .find(|x| x.depth == d)
                    .map(|f| f.bound)
                    .unwrap_or(l.bound);
                // The cut group starts at the first shown level at or
                // below depth d.
                let first = shown.iter().position(|x| x.depth >= d).unwrap_or(0);
                (cut_lsn, first + offset)
            }),
            from: l.from,
        })
        .collect()
}

/// The arms of reading `c` as of `at`: itself, then its levels.
pub(crate) fn read_arms(c: &Container, at: i64) -> Vec<Arm> {
    let mut arms = vec![Arm {
        container: c.id,
        bound: at,
        collections: None,
        cut: None,
        from: 0,
    }];
    arms.extend(level_arms(&c.chain, 1, at));
    arms
}

/// The arms a copy or hydration reads: the levels alone.
pub(crate) fn copy_arms(levels: &[Level]) -> Vec<Arm> {
    level_arms(levels, 0, i64::MAX)
}

fn shows_collection(arm: &Arm, collection: &str) -> bool {
    arm.collections
        .as_ref()
        .is_none_or(|c| c.iter().any(|x| x == collection))
}

/// `'a','b'`: a quoted SQL list.
fn literal_list(items: &[String]) -> String {
    items
        .iter()
        .map(|s| format!("'{}'", s.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(",")
}

/// `alias.container = c AND alias.lsn <= b AND <visible at b> [AND
/// alias.collection IN (…)]`.
pub(crate) fn arm_rows(arm: &Arm, alias: &str) -> String {
    let mut s = format!(
        "{alias}.container = {c} AND {alias}.lsn <= {b} \
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

/// The greatest LSN of (`coll`, `key`) across `arms`, each within its
/// bound and filter; -1 (or NULL for one arm) when there is none.
pub(crate) fn newest(arms: &[Arm], coll: &str, key: &str) -> String {
    let parts: Vec<String> = arms
        .iter()
        .map(|a| {
            format!(
                "(SELECT max(x.lsn) FROM records x WHERE {} AND x.collection = {coll} AND x.key = {key})",
                arm_rows(a, "x")
            )
        })
        .collect();
    if parts.len() == 1 {
        parts.into_iter().next().unwrap_or_default()
    } else {
        format!(
            "max({})",
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
pub(crate) fn visible(arms: &[Arm], i: usize) -> String {
    let arm = &arms[i];
    let mut s = arm_rows(arm, "r");
    if let Some((_, first)) = arm.cut {
        s.push_str(&format!(
            " AND r.deleted = 0 AND r.lsn = {}",
            newest(&arms[first..], "r.collection", "r.key")
        ));
    }
    s
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

/// A level as the chain column holds it: `[depth, ancestor, bound,
/// collections, cut_depth, from_lsn]`.
type StoredLevel = (i64, i64, i64, Option<Vec<String>>, Option<i64>, i64);

/// Parse the chain column of a container row (a JSON array of
/// `[depth, ancestor, bound, collections, cut_depth, from_lsn]`).
pub(crate) fn parse_chain(text: Option<String>) -> Result<Vec<Level>> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    let rows: Vec<StoredLevel> =
        serde_json::from_str(&text).map_err(|e| Error::corrupt(format!("branch levels: {e}")))?;
    let mut levels: Vec<Level> = rows
        .into_iter()
        .map(
            |(depth, ancestor, bound, collections, cut_depth, from)| Level {
                depth,
                ancestor,
                bound,
                collections,
                cut_depth,
                from,
            },
        )
        .collect();
    levels.sort_by_key(|l| l.depth);
    Ok(levels)
}

/// The SQL expression reading a container's chain (outer table `containers`).
pub(crate) const CHAIN_COLUMN: &str =
    "(SELECT CASE WHEN count(*) > 0 THEN json_group_array(json_array(b.depth, \
     b.ancestor, b.bound, json(b.collections), b.cut_depth, b.from_lsn)) END FROM branch_levels b \
     WHERE b.container = containers.id)";

/// Store a new branch's levels.
pub(crate) fn insert_levels(db: &dyn Db, container: i64, levels: &[Level]) -> Result<()> {
    for l in levels {
        exec(
            db,
            "INSERT INTO branch_levels (container, depth, ancestor, bound, collections, cut_depth, from_lsn) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            &[
                container.into(),
                l.depth.into(),
                l.ancestor.into(),
                l.bound.into(),
                l.collections
                    .as_ref()
                    .map(|c| serde_json::to_string(c).unwrap_or_default())
                    .into(),
                l.cut_depth.into(),
                l.from.into(),
            ],
        )?;
    }
    Ok(())
}

/// A branch no longer reads through its ancestors (it was hydrated): drop
/// its levels, and in every branch that reads through it, the levels below
/// it (they now find those versions in it).
pub(crate) fn detach(db: &dyn Db, container: i64) -> Result<()> {
    exec(
        db,
        "DELETE FROM branch_levels WHERE container = ?1",
        &[container.into()],
    )?;
    exec(
        db,
        "DELETE FROM branch_levels WHERE (container, depth) IN (SELECT d.container, d.depth \
         FROM branch_levels a JOIN branch_levels d ON d.container = a.container AND d.depth > a.depth \
         WHERE a.ancestor = ?1)",
        &[container.into()],
    )?;
    Ok(())
}

/// Branches whose parent (depth 1) is `container` and that still exist.
pub(crate) fn children(db: &dyn Db, container: i64) -> Result<Vec<i64>> {
    query(
        db,
        "SELECT b.container FROM branch_levels b JOIN containers c ON c.id = b.container \
         WHERE b.ancestor = ?1 AND b.depth = 1 AND c.deleting = 0 ORDER BY b.container",
        &[container.into()],
    )?
    .iter()
    .map(|r| r.i64(0))
    .collect()
}

/// Live per-collection statistics of a new branch of `source` at `base`:
/// the source's statistics as they stand, less what changed in the
/// source's view after `base` (found through `records_lsn`, so the cost is
/// the number of changes since the base, not the size of the source).
pub(crate) fn stats_at_base(
    db: &dyn Db,
    source: &Container,
    base: i64,
    history: bool,
    filter: Option<&[String]>,
) -> Result<BTreeMap<String, Delta>> {
    let keep = |c: &str| filter.is_none_or(|f| f.iter().any(|x| x == c));
    let mut stats: BTreeMap<String, Delta> = BTreeMap::new();
    for r in query(
        db,
        "SELECT collection, records, bytes, versions, version_bytes FROM collection_stats \
         WHERE container = ?1 AND versions > 0",
        &[source.id.into()],
    )? {
        let name = r.text(0)?;
        if keep(&name) {
            stats.insert(
                name,
                Delta {
                    records: r.i64(1)?,
                    bytes: r.i64(2)?,
                    versions: r.i64(3)?,
                    version_bytes: r.i64(4)?,
                },
            );
        }
    }
    let now_arms = read_arms(source, i64::MAX);
    // Always looked up (cheap when nothing changed: one `records_lsn` seek
    // per level): `head_lsn` does not cover versions a copy or a hydration
    // brought in.
    {
        // The versions the source's view gained after the base.
        // Per level: every row when the level itself shows only after the
        // base; else rows newer than the base, and rows that only became
        // visible after it (`records_visible_from`).
        let arms_after: Vec<String> = now_arms
            .iter()
            .filter(|a| a.bound > base)
            .flat_map(|a| {
                let rows = arm_rows(a, "r");
                if a.from > base {
                    vec![format!(
                        "SELECT r.collection, r.key, r.lsn, r.size FROM records r WHERE {rows}"
                    )]
                } else {
                    vec![
                        format!("SELECT r.collection, r.key, r.lsn, r.size FROM records r WHERE {rows} AND r.lsn > {base}"),
                        format!("SELECT r.collection, r.key, r.lsn, r.size FROM records r WHERE {rows} AND r.visible_from > {base}"),
                    ]
                }
            })
            .collect();
        let chg = arms_after.join(" UNION ");
        let base_arms = read_arms(source, base);
        let sql = format!(
            "WITH chg(collection, key, lsn, size) AS ({chg}), \
             k AS (SELECT collection, key, count(*) AS n, sum(size) AS nbytes FROM chg GROUP BY collection, key), \
             s AS (SELECT k.collection, k.key, k.n, k.nbytes, {head} AS hl, {at} AS bl FROM k) \
             SELECT s.collection, sum(s.n), sum(s.nbytes), \
               sum(coalesce((SELECT 1 - x.deleted FROM records x WHERE x.container {cin} AND x.collection = s.collection AND x.key = s.key AND x.lsn = s.hl LIMIT 1), 0)), \
               sum(coalesce((SELECT CASE WHEN x.deleted THEN 0 ELSE x.size END FROM records x WHERE x.container {cin} AND x.collection = s.collection AND x.key = s.key AND x.lsn = s.hl LIMIT 1), 0)), \
               sum(coalesce((SELECT 1 - x.deleted FROM records x WHERE x.container {cin} AND x.collection = s.collection AND x.key = s.key AND x.lsn = s.bl LIMIT 1), 0)), \
               sum(coalesce((SELECT CASE WHEN x.deleted THEN 0 ELSE x.size END FROM records x WHERE x.container {cin} AND x.collection = s.collection AND x.key = s.key AND x.lsn = s.bl LIMIT 1), 0)) \
             FROM s GROUP BY s.collection",
            head = newest(&now_arms, "k.collection", "k.key"),
            at = newest(&base_arms, "k.collection", "k.key"),
            cin = containers_in(&now_arms),
        );
        for r in query(db, &sql, &[])? {
            let name = r.text(0)?;
            if !keep(&name) {
                continue;
            }
            let d = stats.entry(name).or_default();
            d.versions -= r.i64(1)?;
            d.version_bytes -= r.i64(2)?;
            d.records -= r.i64(3)? - r.i64(5)?;
            d.bytes -= r.i64(4)? - r.i64(6)?;
        }
    }
    if !history {
        for d in stats.values_mut() {
            d.versions = d.records;
            d.version_bytes = d.bytes;
        }
    }
    stats.retain(|_, d| d.versions > 0);
    Ok(stats)
}

/// The latest version of one key across `arms` (None: no version).
pub(crate) fn latest(
    db: &dyn Db,
    arms: &[Arm],
    collection: &str,
    key: &str,
    columns: &str,
) -> Result<Option<Row>> {
    let arms: Vec<Arm> = arms
        .iter()
        .filter(|a| shows_collection(a, collection))
        .cloned()
        .collect();
    if arms.is_empty() {
        return Ok(None);
    }
    let rows = query(
        db,
        &format!(
            "SELECT {columns} FROM records r WHERE r.container {} AND r.collection = ?1 AND r.key = ?2 \
             AND r.lsn = {} LIMIT 1",
            containers_in(&arms),
            newest(&arms, "?1", "?2")
        ),
        &[collection.into(), key.into()],
    )?;
    Ok(rows.into_iter().next())
}

/// One key's versions through `arms` with an LSN below `before`, newest
/// first, at most `limit` (deduplicated by LSN; under a cut only the version
/// live at the cut).
pub(crate) fn history(
    db: &dyn Db,
    arms: &[Arm],
    collection: &str,
    key: &str,
    before: i64,
    limit: i64,
    columns: &str,
) -> Result<Vec<Row>> {
    let shown: Vec<usize> = (0..arms.len())
        .filter(|i| shows_collection(&arms[*i], collection))
        .collect();
    let mut out: BTreeMap<i64, Row> = BTreeMap::new();
    let uncut: Vec<&Arm> = shown
        .iter()
        .map(|i| &arms[*i])
        .filter(|a| a.cut.is_none())
        .collect();
    if !uncut.is_empty() {
        let parts: Vec<String> = uncut
            .iter()
            .map(|a| {
                format!(
                    "SELECT {columns} FROM records r WHERE {} AND r.collection = ?1 AND r.key = ?2 AND r.lsn < ?3",
                    arm_rows(a, "r")
                )
            })
            .collect();
        let sql = format!(
            "SELECT * FROM ({}) ORDER BY 3 DESC LIMIT ?4",
            parts.join(" UNION ")
        );
        for row in query(
            db,
            &sql,
            &[collection.into(), key.into(), before.into(), limit.into()],
        )? {
            out.insert(row.i64(2)?, row);
        }
    }
    // Each cut group shows one version: the live one at its cut.
    let mut groups: Vec<usize> = shown
        .iter()
        .filter_map(|i| arms[*i].cut.map(|c| c.1))
        .collect();
    groups.sort_unstable();
    groups.dedup();
    for first in groups {
        if let Some(row) = latest(db, &arms[first..], collection, key, columns)? {
            let lsn = row.i64(2)?;
            if !row.bool(3)? && lsn < before {
                out.insert(lsn, row);
            }
        }
    }
    Ok(out
        .into_values()
        .rev()
        .take(limit.max(0) as usize)
        .collect())
}

/// The arms that hold at least one version within their bound (one
/// `records_lsn` seek each, in one statement), for latest reads: an empty
/// level (a branch never written, an intermediate branch) costs nothing
/// per key. The cut is dropped (latest reads never need it).
pub(crate) fn nonempty(db: &dyn Db, arms: Vec<Arm>) -> Result<Vec<Arm>> {
    if arms.len() <= 1 {
        return Ok(arms);
    }
    let values: Vec<String> = arms
        .iter()
        .map(|a| format!("({}, {})", a.container, a.bound))
        .collect();
    let keep: Vec<i64> = query(
        db,
        &format!(
            "SELECT v.column1 FROM (VALUES {}) v WHERE EXISTS \
             (SELECT 1 FROM records r WHERE r.container = v.column1 AND r.lsn <= v.column2)",
            values.join(",")
        ),
        &[],
    )?
    .iter()
    .map(|r| r.i64(0))
    .collect::<Result<_>>()?;
    Ok(arms
        .into_iter()
        .filter(|a| keep.contains(&a.container))
        .map(|a| Arm { cut: None, ..a })
        .collect())
}

/// Latest versions (live and deleted) of the keys after `after` through
/// `arms`, in (collection, key) order, at most `fetch` keys; only
/// `collection` when given.
pub(crate) fn scan_latest(
    db: &dyn Db,
    arms: &[Arm],
    after: (&str, &str),
    collection: Option<&str>,
    fetch: i64,
    columns: &str,
) -> Result<Vec<Row>> {
    let arms: Vec<Arm> = arms
        .iter()
        .filter(|a| collection.is_none_or(|c| shows_collection(a, c)))
        .cloned()
        .collect();
    if arms.is_empty() {
        return Ok(Vec::new());
    }
    let only = if collection.is_some() {
        " AND r.collection = ?3"
    } else {
        ""
    };
    let distinct = if arms.len() == 1 { "DISTINCT " } else { "" };
    let parts: Vec<String> = arms
        .iter()
        .map(|a| {
            format!(
                "SELECT {distinct}r.collection, r.key FROM records r WHERE {} AND (r.collection, r.key) > (?1, ?2){only}",
                arm_rows(a, "r")
            )
        })
        .collect();
    let sql = format!(
        "WITH cand(collection, key) AS ({} ORDER BY 1, 2 LIMIT ?4) \
         SELECT {columns} FROM cand JOIN records r ON r.container {} AND r.collection = cand.collection \
           AND r.key = cand.key AND r.lsn = {} ORDER BY r.collection, r.key",
        parts.join(" UNION "),
        containers_in(&arms),
        newest(&arms, "cand.collection", "cand.key")
    );
    let rows = query(
        db,
        &sql,
        &[
            after.0.into(),
            after.1.into(),
            collection.unwrap_or("").into(),
            fetch.into(),
        ],
    )?;
    // A version held by two containers (copied by hydration) answers twice.
    let mut out: Vec<Row> = Vec::with_capacity(rows.len());
    for r in rows {
        if let Some(last) = out.last() {
            if last.0.first() == r.0.first() && last.0.get(1) == r.0.get(1) {
                continue;
            }
        }
        out.push(r);
    }
    Ok(out)
}

/// The newest version's `(deleted, size)` of each `(collection, key)` in
/// `keys` through `arms` (for a write's statistics): per arm one
/// set-based statement of simple seeks (a remote server answers a
/// statement folding several containers' subqueries into one expression
/// with SQLITE_INTERRUPT at times), the newest across arms kept here.
pub(crate) fn heads(
    db: &dyn Db,
    arms: &[Arm],
    keys: &[(&str, &str)],
) -> Result<Vec<Option<(bool, i64)>>> {
    // (lsn, deleted, size) per key.
    let mut best: Vec<Option<(i64, bool, i64)>> = vec![None; keys.len()];
    for arm in arms {
        for (part, chunk) in keys.chunks(ROWS).enumerate() {
            let base = part * ROWS;
            let mut params: Vec<Value> = Vec::with_capacity(chunk.len() * 3);
            let mut values = Vec::with_capacity(chunk.len());
            for (i, (c, k)) in chunk.iter().enumerate() {
                let n = params.len();
                values.push(format!("(?{}, ?{}, ?{})", n + 1, n + 2, n + 3));
                params.push(((base + i) as i64).into());
                params.push((*c).into());
                params.push((*k).into());
            }
            let sql = format!(
                "WITH w(i, collection, key) AS (VALUES {}) \
                 SELECT w.i, r.lsn, r.deleted, r.size FROM w JOIN records r ON r.container = {c} \
                   AND r.collection = w.collection AND r.key = w.key \
                   AND r.lsn = (SELECT max(x.lsn) FROM records x WHERE {rows} \
                                AND x.collection = w.collection AND x.key = w.key)",
                values.join(","),
                c = arm.container,
                rows = arm_rows(arm, "x"),
            );
            for row in query(db, &sql, &params)? {
                let i = usize::try_from(row.i64(0)?)
                    .ok()
                    .filter(|i| *i < keys.len())
                    .ok_or_else(|| Error::corrupt("head lookup answered an unknown row"))?;
                let lsn = row.i64(1)?;
                if best[i].is_none_or(|(l, _, _)| lsn > l) {
                    best[i] = Some((lsn, row.bool(2)?, row.i64(3)?));
                }
            }
        }
    }
    Ok(best
        .into_iter()
        .map(|b| b.map(|(_, deleted, size)| (deleted, size)))
        .collect())
}

/// Rows per multi-row statement (3 parameters each, under 999).
const ROWS: usize = 128;

/// A deleted branch no longer reads through anything (the branches below
/// it keep their own levels).
pub(crate) fn detach_deleted(db: &dyn Db, container: i64) -> Result<()> {
    exec(
        db,
        "DELETE FROM branch_levels WHERE container = ?1",
        &[container.into()],
    )
}
