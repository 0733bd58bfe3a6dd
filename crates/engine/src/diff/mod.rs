//! Diffs: what differs between a resource and another side — its parent
//! (or any resource it reads through), another resource of the tenant, or
//! itself at an earlier point — key by key, in pages.
//!
//! The cost follows what changed, not the size of the data, whenever the
//! two sides share a point: the *candidates* are the keys that either side
//! saw change after it (the same `records_lsn` / `records_visible_from`
//! lookups as [`crate::levels::stats_at_base`]); each candidate is resolved
//! on both sides with the one latest-version lookup and reported when the
//! live bodies differ. Two resources that share no point are compared by
//! scanning both (`scan: true`), in key order, a page at a time.
//!
//! Uses: `lookup`, `chain`, `containers`, `db`, `error`.

use std::collections::BTreeMap;

use crate::chain::Arm;

use crate::containers::{self, Container};
use crate::db::{read, Db};
use crate::error::{Error, Result};
use crate::handle::Engine;
use crate::lookup;
use crate::mask::{Mask, Masks};

mod changes;
pub(crate) use changes::{candidates, touched, Touch, Walk};

/// One side of a diff: a container read as of an LSN (`i64::MAX`: the head),
/// its bodies shown through `mask` on top of its own reads' masks.
#[derive(Debug, Clone)]
pub struct Side {
    pub container: Container,
    pub at: i64,
    pub mask: Masks,
}

impl Side {
    /// A container as of `at`, unmasked beyond its own reads.
    pub fn new(container: Container, at: i64) -> Side {
        Side {
            container,
            at,
            mask: Masks::default(),
        }
    }

    /// The other side as `ours` may see it: through the masks of the level
    /// by which ours reads it; else, when ours is masked or reads through
    /// masked levels, through all of those masks (a masked branch shows
    /// nothing unmasked, not even another resource's values).
    pub fn seen_by(mut self, ours: &Container) -> Side {
        if ours.id == self.container.id {
            return self;
        }
        let via = ours
            .chain
            .iter()
            .find(|l| l.is_current() && l.ancestor == self.container.id)
            .map(|l| l.mask.clone());
        self.mask = via.unwrap_or_else(|| {
            let mut all: Vec<Mask> = ours.mask.iter().cloned().collect();
            for l in &ours.chain {
                for m in &l.mask.0 {
                    if !all.iter().any(|x| x.salt == m.salt) {
                        all.push(m.clone());
                    }
                }
            }
            Masks(all)
        });
        self
    }
}

/// What happened to a key, from the other side to ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Live on our side only.
    Added,
    /// Live on the other side only.
    Removed,
    /// Live on both, with different bodies.
    Changed,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Removed => "removed",
            Change::Changed => "changed",
        }
    }
}

/// One differing key, with both live bodies (None: not live there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub change: Change,
    pub collection: String,
    pub key: String,
    pub ours: Option<String>,
    pub theirs: Option<String>,
}

/// How the candidates of a diff are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// The keys either side saw change after this LSN.
    Since(i64),
    /// Every key of both sides: they share no point.
    Scan,
}

/// The common point of two sides: the base of the level through which one
/// reads the other (as of the other side's point), or the earlier point of
/// the same container; else nothing in common.
pub fn basis(ours: &Side, theirs: &Side) -> Basis {
    if ours.container.id == theirs.container.id {
        let (lo, hi) = (ours.at.min(theirs.at), ours.at.max(theirs.at));
        // A reset between the two points replaced what it reads: nothing
        // in common to start from.
        let reset_between = ours.container.chain.iter().any(|l| {
            (l.since > lo && l.since <= hi) || (!l.is_current() && l.until > lo && l.until <= hi)
        });
        return if reset_between {
            Basis::Scan
        } else {
            Basis::Since(lo)
        };
    }
    let through = |a: &Side, b: &Side| {
        a.container
            .chain
            .iter()
            .filter(|l| l.ancestor == b.container.id && l.shows_at(a.at))
            .map(|l| l.bound.min(b.at))
            .max()
    };
    // Two branches of one ancestor: what either saw of it after the
    // earlier of their bases.
    let shared = ours
        .container
        .chain
        .iter()
        .filter(|a| a.shows_at(ours.at))
        .flat_map(|a| {
            theirs
                .container
                .chain
                .iter()
                .filter(move |b| b.ancestor == a.ancestor && b.shows_at(theirs.at))
                .map(move |b| a.bound.min(ours.at).min(b.bound.min(theirs.at)))
        })
        .max();
    // A clone and its parent at its head share the clone's base even once
    // a hydration dropped the levels that named it (its copies keep their
    // LSNs; retention keeps the parent's history after it).
    let cloned = |a: &Side, b: &Side| {
        (a.container.parent == Some(b.container.id) && b.at == i64::MAX)
            .then_some(a.container.branch_base)
            .flatten()
            .map(|x| x.min(a.at))
    };
    match (through(ours, theirs), through(theirs, ours), shared) {
        (Some(x), Some(y), _) => Basis::Since(x.max(y)),
        (Some(x), None, _) | (None, Some(x), _) => Basis::Since(x),
        (None, None, Some(x)) => Basis::Since(x),
        (None, None, None) => match cloned(ours, theirs).or_else(|| cloned(theirs, ours)) {
            Some(x) => Basis::Since(x),
            None => Basis::Scan,
        },
    }
}

/// The live bodies of `keys` on one side (None: absent or deleted), in
/// one statement per arm and chunk of keys ([`lookup::newest_rows`]).
pub(crate) fn live_many(
    db: &dyn Db,
    side: &Side,
    keys: &[(String, String)],
) -> Result<Vec<Option<String>>> {
    let arms: Vec<Arm> = side.container.arms(side.at);
    let refs: Vec<(&str, &str)> = keys.iter().map(|(c, k)| (c.as_str(), k.as_str())).collect();
    // (The newest version is what shows at the head, cut or not.)
    lookup::newest_rows(db, &arms, &refs, "r.deleted, r.body")?
        .into_iter()
        .zip(keys)
        .map(|(found, (collection, key))| match found {
            Some((a, r)) if !r.bool(0)? => {
                let body = r.opt_text(1)?.ok_or_else(|| {
                    Error::corrupt(format!("live version of {collection}/{key} without a body"))
                })?;
                let body = arms[a].mask.apply(collection, &body)?;
                Ok(Some(side.mask.apply(collection, &body)?))
            }
            _ => Ok(None),
        })
        .collect()
}

/// One page of a diff.
#[derive(Debug, Clone)]
pub struct Page {
    pub entries: Vec<Entry>,
    /// Where the next page starts (None: the diff is complete).
    pub next: Option<(String, String)>,
}

impl Engine<'_> {
    /// The next page of the diff of `ours` against `theirs` after `cursor`:
    /// up to `limit` candidate keys examined (so a page may hold fewer
    /// entries, or none, and still not be the last), in (collection, key)
    /// order. One read snapshot per page.
    pub fn diff_page(
        &self,
        ours: &Side,
        theirs: &Side,
        basis: Basis,
        cursor: Option<(&str, &str)>,
        limit: i64,
    ) -> Result<Page> {
        let limit = limit.clamp(1, self.config.max_page);
        let cursor = cursor.unwrap_or(("", ""));
        read(self.db, |db| {
            // Both sides' candidates, merged; the page ends at the smaller
            // of the two last keys so that neither side skips one.
            let (o, t) = (ours.container.id, theirs.container.id);
            // Many changes are walked along the key, few through the LSN.
            let wa = self.walk(db, ours, t, basis, Touch::Shown)?;
            let wb = self.walk(db, theirs, o, basis, Touch::Shown)?;
            let a = candidates(db, ours, t, basis, Touch::Shown, wa, cursor, limit)?;
            let b = candidates(db, theirs, o, basis, Touch::Shown, wb, cursor, limit)?;
            let full = |v: &Vec<(String, String)>| v.len() as i64 == limit;
            let end = match (full(&a), full(&b)) {
                (true, true) => a.last().min(b.last()).cloned(),
                (true, false) => a.last().cloned(),
                (false, true) => b.last().cloned(),
                (false, false) => None,
            };
            let mut keys: Vec<(String, String)> = a.into_iter().chain(b).collect();
            keys.sort();
            keys.dedup();
            if let Some(end) = &end {
                keys.retain(|k| k <= end);
            }
            let mut entries = Vec::new();
            let os = live_many(db, ours, &keys)?;
            let ts = live_many(db, theirs, &keys)?;
            for (((collection, key), o), t) in keys.iter().zip(os).zip(ts) {
                let change = match (&o, &t) {
                    (Some(x), Some(y)) if x == y => continue,
                    (None, None) => continue,
                    (Some(_), Some(_)) => Change::Changed,
                    (Some(_), None) => Change::Added,
                    (None, Some(_)) => Change::Removed,
                };
                entries.push(Entry {
                    change,
                    collection: collection.clone(),
                    key: key.clone(),
                    ours: o,
                    theirs: t,
                });
            }
            Ok(Page { entries, next: end })
        })
    }

    /// The other side a resource is compared with when none is named: the
    /// resource it was branched from (its first level that is not an
    /// import's), as of the branch's base. `None` for a resource that reads
    /// through nothing.
    pub fn diff_parent(&self, c: &Container) -> Result<Option<Side>> {
        let Some(parent) = c
            .chain
            .iter()
            .find(|l| l.from == 0 && l.is_current())
            .map(|l| l.ancestor)
            .or(c.parent)
        else {
            return Ok(None);
        };
        let parent = containers::by_id(self.db, parent)?.ok_or_else(|| {
            Error::not_found(format!("the parent of {} was deleted", c.reference()))
        })?;
        Ok(Some(Side::new(parent, i64::MAX).seen_by(c)))
    }
}

/// Counts per collection of a diff's entries: (added, removed, changed).
pub fn summarize(entries: &[Entry], into: &mut BTreeMap<String, [i64; 3]>) {
    for e in entries {
        let n = into.entry(e.collection.clone()).or_default();
        n[match e.change {
            Change::Added => 0,
            Change::Removed => 1,
            Change::Changed => 2,
        }] += 1;
    }
}
