//! Copy-on-write branches, as values: a branch's chain of levels and the
//! arms a read or a copy scans, with the SQL fragments that read through
//! them. Pure: no I/O, no table (the levels are stored by [`crate::levels`]).
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
//! The SQL fragments that read through arms are in [`sql`].
//!
//! Uses: `mask`, `error`, `db` (the dialect, in `sql`). Nothing of the
//! engine with I/O.

use crate::error::{Error, Result};
use crate::mask::{Mask, Masks};

mod sql;
pub(crate) use sql::{
    arm_rows, arm_rows_by_key, arm_rows_keyed, containers_in, literal_list, newest, shown, union,
    visible,
};

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
    /// The level shows only once `min(bound, at) >= from` (a committed
    /// import's staging branch, see [`crate::staging`]); 0 for a branch's.
    pub from: i64,
    /// The level shows only to reads at or after this LSN (a reset's new
    /// levels); 0 for most.
    pub since: i64,
    /// The level shows only to reads before this LSN (a reset's old state);
    /// `i64::MAX` for most. Hydration never drops such a level.
    pub until: i64,
    /// What a read through this level shows of its rows: every mask of a
    /// masked branch between the reader and the ancestor ([`crate::mask`]).
    pub mask: Masks,
}

impl Level {
    /// Whether a read as of `at` sees this level.
    pub fn shows_at(&self, at: i64) -> bool {
        self.bound.min(at) >= self.from && at >= self.since && (self.is_current() || at < self.until)
    }

    /// A level of the reads at the head (not a window of the past).
    pub fn is_current(&self) -> bool {
        self.until == i64::MAX
    }
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
    /// The later of the level's `from` and `since` (0 for most): a copy of
    /// its rows keeps it as their `visible_from`, so a copy changes no read
    /// before it.
    pub from: i64,
    /// The level's masks: its rows are shown (and copied) through them.
    pub mask: Masks,
    /// The level's own `from` alone (an import's commit; 0 for most): a
    /// level whose versions are all at or below a point, and that is not an
    /// import's, changed nothing after it, whatever its `since`.
    pub import_from: i64,
}

/// The collections two filters both let through (None: all).
pub(crate) fn intersect(a: Option<&[String]>, b: Option<&[String]>) -> Option<Vec<String>> {
    match (a, b) {
        (None, None) => None,
        (Some(x), None) | (None, Some(x)) => Some(x.to_vec()),
        (Some(x), Some(y)) => Some(x.iter().filter(|c| y.contains(c)).cloned().collect()),
    }
}

/// The levels of a new branch of `source` (whose own levels are `chain`)
/// at `base`, with or without history, filtered to `filter`, masked by
/// `mask` (on top of the masks the source's levels already apply).
///
/// A read of the branch as of `t` reads the source as of `min(t, base)`,
/// so a source level's window (`since`, `until`) becomes: shown from
/// `since` on for good when the source showed it at `base`; the same
/// window when it had ended by `base`; never (an empty window, kept so
/// that depths stay in place) when it began after `base`.
pub(crate) fn derive_levels(
    source: i64,
    chain: &[Level],
    base: i64,
    history: bool,
    filter: Option<&[String]>,
    mask: Option<&Mask>,
) -> Vec<Level> {
    let mut out = vec![Level {
        depth: 1,
        ancestor: source,
        bound: base,
        collections: filter.map(|f| f.to_vec()),
        cut_depth: (!history).then_some(1),
        from: 0,
        since: 0,
        until: i64::MAX,
        mask: Masks::default().then(mask),
    }];
    for l in chain {
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
            since: l.since,
            until: if base < l.since {
                l.since
            } else if l.is_current() || base < l.until {
                i64::MAX
            } else {
                l.until
            },
            mask: l.mask.then(mask),
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
        .filter(|l| l.shows_at(at))
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
            from: l.from.max(l.since),
            mask: l.mask.clone(),
            import_from: l.from,
        })
        .collect()
}

/// The arms of reading `container` (whose levels are `chain`) as of `at`:
/// itself, then its levels.
pub(crate) fn read_arms(container: i64, chain: &[Level], at: i64) -> Vec<Arm> {
    let mut arms = vec![Arm {
        container,
        bound: at,
        collections: None,
        cut: None,
        from: 0,
        mask: Masks::default(),
        import_from: 0,
    }];
    arms.extend(level_arms(chain, 1, at));
    arms
}

/// The arms a copy or hydration reads: the levels alone.
pub(crate) fn copy_arms(levels: &[Level]) -> Vec<Arm> {
    level_arms(levels, 0, i64::MAX)
}

pub(crate) fn shows_collection(arm: &Arm, collection: &str) -> bool {
    arm.collections
        .as_ref()
        .is_none_or(|c| c.iter().any(|x| x == collection))
}

/// A level as the chain column holds it: `[depth, ancestor, bound,
/// collections, cut_depth, from_lsn, since_lsn, until_lsn, mask]`
/// (`until_lsn` null: no upper edge; `mask` null: none).
type StoredLevel = (
    i64,
    i64,
    i64,
    Option<Vec<String>>,
    Option<i64>,
    i64,
    i64,
    Option<i64>,
    Option<serde_json::Value>,
);

/// Parse the chain column of a container row (a JSON array of
/// [`StoredLevel`]s).
pub(crate) fn parse_chain(text: Option<String>) -> Result<Vec<Level>> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    let rows: Vec<StoredLevel> =
        serde_json::from_str(&text).map_err(|e| Error::corrupt(format!("branch levels: {e}")))?;
    let mut levels: Vec<Level> = rows
        .into_iter()
        .map(
            |(depth, ancestor, bound, collections, cut_depth, from, since, until, mask)| {
                Ok(Level {
                    depth,
                    ancestor,
                    bound,
                    collections,
                    cut_depth,
                    from,
                    since,
                    until: until.unwrap_or(i64::MAX),
                    mask: Masks::from_json(mask)?,
                })
            },
        )
        .collect::<Result<_>>()?;
    levels.sort_by_key(|l| l.depth);
    Ok(levels)
}

/// A container's chain after an import committed at `at` from staging
/// branch `stage`: the staging branch's own versions from `at` on (a level
/// that shows only to reads at or after `at`), then every level it read
/// through before, one deeper.
pub(crate) fn with_staging(chain: &[Level], stage: i64, at: i64) -> Vec<Level> {
    let mut levels = vec![Level {
        depth: 1,
        ancestor: stage,
        bound: at,
        collections: None,
        cut_depth: None,
        from: at,
        since: 0,
        until: i64::MAX,
        mask: Masks::default(),
    }];
    levels.extend(chain.iter().map(|l| Level {
        depth: l.depth + 1,
        cut_depth: l.cut_depth.map(|d| d + 1),
        ..l.clone()
    }));
    levels
}

/// A reset's chain, at LSN `r`: the parent `source` (whose levels are
/// `chain`) as of `base`, shown to reads from `r` on; then, for reads
/// before `r`, what the container read until then: itself (`old`, whose
/// levels are `old_chain`) up to `r`, and its levels. A masked
/// container's `mask` applies to the parent again.
pub(crate) fn for_reset(
    source: i64,
    chain: &[Level],
    base: i64,
    r: i64,
    old: i64,
    old_chain: &[Level],
    mask: Option<&Mask>,
) -> Vec<Level> {
    let mut out: Vec<Level> = derive_levels(source, chain, base, true, None, mask)
        .into_iter()
        .map(|l| Level {
            since: l.since.max(r),
            until: l.until,
            ..l
        })
        // A window of the parent's past stays the parent's: a read from r
        // on never reaches before it.
        .filter(|l| l.until > r)
        .collect();
    let n = out.len() as i64;
    for l in derive_levels(old, old_chain, r, true, None, None) {
        if l.since >= r {
            continue;
        }
        out.push(Level {
            depth: l.depth + n,
            cut_depth: l.cut_depth.map(|d| d + n),
            until: l.until.min(r),
            ..l
        });
    }
    out
}
