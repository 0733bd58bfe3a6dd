//! The levels of copy-on-write branches (`branch_levels`): this module
//! is the table's only writer. A branch is made here ([`create_branch`]:
//! its levels and its statistics as of the base, in one place), loses its
//! levels when hydrated or deleted, and gains one when an import commits
//! into it ([`add_staging`]).
//!
//! Uses: `chain` (the values and SQL fragments), `stats`, `db`, `error`.

use crate::chain::{self, arm_rows, containers_in, newest, read_arms, Level};
use crate::db::{exec, one, query, Db, Dialect};
use crate::error::Result;
use crate::mask::Mask;
use crate::stats::{self, Deltas};

/// The SQL expression reading a container's chain (outer table
/// `containers`): a JSON array of its levels, NULL for none.
pub(crate) fn chain_column(d: Dialect) -> String {
    format!(
        "(SELECT {} FROM branch_levels b WHERE b.container = containers.id)",
        d.json_rows_agg(&[
            "b.depth",
            "b.ancestor",
            "b.bound",
            "json:b.collections",
            "b.cut_depth",
            "b.from_lsn",
            "b.since_lsn",
            "b.until_lsn",
            "json:b.mask",
        ])
    )
}

/// A container's levels, as its row's chain column reads them.
pub(crate) fn chain_of(db: &dyn Db, container: i64) -> Result<Vec<Level>> {
    let chain = one(
        db,
        &format!("SELECT {} FROM containers WHERE id = ?1", chain_column(db.dialect())),
        &[container.into()],
    )?
    .map(|r| r.opt_text(0))
    .transpose()?
    .flatten();
    chain::parse_chain(chain)
}

/// Store a new branch's levels.
fn insert(db: &dyn Db, container: i64, levels: &[Level]) -> Result<()> {
    for l in levels {
        exec(
            db,
            "INSERT INTO branch_levels (container, depth, ancestor, bound, collections, cut_depth, from_lsn, \
               since_lsn, until_lsn, mask) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
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
                l.since.into(),
                (l.until != i64::MAX).then_some(l.until).into(),
                l.mask.to_column().into(),
            ],
        )?;
    }
    Ok(())
}

/// A branch no longer reads through its ancestors (it was hydrated): drop
/// the levels its reads at the head use, and in every branch that reads
/// through it, the current levels below it (they now find those versions
/// in it). Windows of the past (`until`) stay: a hydration copies only what
/// the head reads.
pub(crate) fn detach(db: &dyn Db, container: i64) -> Result<()> {
    // The hydration copied what reads at the head see, which shows from the
    // latest edge of a window on (the `since` of the levels it read, the
    // `until` of a window of the past it never copies): a reader that
    // reads this container as of an earlier point still needs its levels.
    let since = one(
        db,
        "SELECT coalesce(max(CASE WHEN until_lsn IS NULL THEN since_lsn ELSE until_lsn END), 0) \
         FROM branch_levels WHERE container = ?1",
        &[container.into()],
    )?
    .map(|r| r.i64(0))
    .transpose()?
    .unwrap_or(0);
    exec(
        db,
        "DELETE FROM branch_levels WHERE container = ?1 AND until_lsn IS NULL",
        &[container.into()],
    )?;
    exec(
        db,
        "DELETE FROM branch_levels WHERE (container, depth) IN (SELECT d.container, d.depth \
         FROM branch_levels a JOIN branch_levels d ON d.container = a.container AND d.depth > a.depth \
         WHERE a.ancestor = ?1 AND a.until_lsn IS NULL AND a.bound >= ?2 AND d.until_lsn IS NULL)",
        &[container.into(), since.into()],
    )?;
    Ok(())
}

/// Branches whose parent (depth 1) is `container` and that still exist.
/// (A reset's past windows name the container they were; their depth is
/// never 1.)
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
    source: i64,
    chain: &[Level],
    base: i64,
    history: bool,
    filter: Option<&[String]>,
) -> Result<Deltas> {
    // Before a reset of the source, its reads were the retired container's
    // (the window onto it that was open at the base): ask it.
    if let Some(prev) = chain
        .iter()
        .filter(|l| !l.is_current() && l.since <= base && base < l.until && l.until > l.since)
        .min_by_key(|l| l.depth)
    {
        // What the window let through of it: a filtered branch's window
        // onto its parent's past shows only the branch's collections.
        let prev_chain = chain_of(db, prev.ancestor)?;
        let through = chain::intersect(filter, prev.collections.as_deref());
        return stats_at_base(db, prev.ancestor, &prev_chain, base, history, through.as_deref());
    }
    let keep = |c: &str| filter.is_none_or(|f| f.iter().any(|x| x == c));
    let mut stats: Deltas = stats::of(db, source)?;
    stats.retain(|name, _| keep(name));
    let now_arms = read_arms(source, chain, i64::MAX);
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
        let base_arms = read_arms(source, chain, base);
        let sql = format!(
            "WITH chg(collection, key, lsn, size) AS ({chg}), \
             k AS (SELECT collection, key, count(*) AS n, sum(size) AS nbytes FROM chg GROUP BY collection, key), \
             s AS (SELECT k.collection, k.key, k.n, k.nbytes, {head} AS hl, {at} AS bl FROM k) \
             SELECT s.collection, sum(s.n), sum(s.nbytes), \
               sum(coalesce((SELECT 1 - x.deleted FROM records x WHERE x.container {cin} AND x.collection = s.collection AND x.key = s.key AND x.lsn = s.hl LIMIT 1), 0)), \
               sum(coalesce((SELECT CASE WHEN x.deleted = 1 THEN 0 ELSE x.size END FROM records x WHERE x.container {cin} AND x.collection = s.collection AND x.key = s.key AND x.lsn = s.hl LIMIT 1), 0)), \
               sum(coalesce((SELECT 1 - x.deleted FROM records x WHERE x.container {cin} AND x.collection = s.collection AND x.key = s.key AND x.lsn = s.bl LIMIT 1), 0)), \
               sum(coalesce((SELECT CASE WHEN x.deleted = 1 THEN 0 ELSE x.size END FROM records x WHERE x.container {cin} AND x.collection = s.collection AND x.key = s.key AND x.lsn = s.bl LIMIT 1), 0)) \
             FROM s GROUP BY s.collection",
            head = newest(db.dialect(), &now_arms, "k.collection", "k.key"),
            at = newest(db.dialect(), &base_arms, "k.collection", "k.key"),
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

/// Drop a container's own levels: a deleted branch no longer reads
/// through anything (the branches below it keep their own levels).
pub(crate) fn clear(db: &dyn Db, container: i64) -> Result<()> {
    exec(
        db,
        "DELETE FROM branch_levels WHERE container = ?1",
        &[container.into()],
    )
}

/// Make `target` a branch of `source` (whose levels are `chain`) at
/// `base`: its levels, and its statistics as of the base. Returns those
/// statistics. The one place a branch is made (a clone's branch and an
/// import's staging branch alike). A masked branch's levels carry `mask`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn create_branch(
    db: &dyn Db,
    target: i64,
    source: i64,
    chain: &[Level],
    base: i64,
    history: bool,
    filter: Option<&[String]>,
    mask: Option<&Mask>,
) -> Result<Deltas> {
    insert(
        db,
        target,
        &chain::derive_levels(source, chain, base, history, filter, mask),
    )?;
    let stats = stats_at_base(db, source, chain, base, history, filter)?;
    stats::apply(db, target, &stats)?;
    Ok(stats)
}

/// An import committed into `container` at `at`: it reads its staging
/// branch `stage` from `at` on, then what it read before
/// ([`chain::with_staging`]).
pub(crate) fn add_staging(
    db: &dyn Db,
    container: i64,
    chain: &[Level],
    stage: i64,
    at: i64,
) -> Result<()> {
    clear(db, container)?;
    insert(db, container, &chain::with_staging(chain, stage, at))
}

/// How many levels a container reads through.
pub(crate) fn depth(db: &dyn Db, container: i64) -> Result<usize> {
    Ok(one(
        db,
        "SELECT count(*) FROM branch_levels WHERE container = ?1",
        &[container.into()],
    )?
    .map(|r| r.i64(0))
    .transpose()?
    .unwrap_or(0) as usize)
}

/// The containers that read through `ancestor` with its history (no
/// skip-history boundary above it) at the head: they count its versions in
/// their own statistics (a reset's window of the past counts nothing).
pub(crate) fn history_readers(db: &dyn Db, ancestor: i64) -> Result<Vec<i64>> {
    query(
        db,
        "SELECT DISTINCT container FROM branch_levels WHERE ancestor = ?1 AND cut_depth IS NULL \
         AND until_lsn IS NULL",
        &[ancestor.into()],
    )?
    .iter()
    .map(|r| r.i64(0))
    .collect()
}

/// Make `target` what a reset at `r` makes (see [`chain::for_reset`]): its
/// levels, and its statistics as the parent `source` stood at `base`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn create_reset(
    db: &dyn Db,
    target: i64,
    source: i64,
    chain: &[Level],
    base: i64,
    r: i64,
    old: i64,
    old_chain: &[Level],
    mask: Option<&Mask>,
) -> Result<Deltas> {
    insert(db, target, &chain::for_reset(source, chain, base, r, old, old_chain, mask))?;
    let stats = stats_at_base(db, source, chain, base, true, None)?;
    stats::apply(db, target, &stats)?;
    Ok(stats)
}

