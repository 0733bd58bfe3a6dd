//! The reference model: what every container must show, built only from
//! what the engine acknowledged (and, for a call that crashed after its
//! commit, what the commit left).

use std::collections::BTreeMap;

use engine::Write;

/// One version in the model.
#[derive(Debug, Clone, PartialEq)]
pub struct V {
    pub collection: String,
    pub key: String,
    pub lsn: i64,
    pub body: Option<String>,
    /// Visible to reads at or after this LSN (an import's commit LSN).
    pub from: i64,
    /// Visible only to reads before this LSN (what a container was before
    /// a reset); `i64::MAX`: no end.
    pub until: i64,
}

/// How a container came to be.
#[derive(Debug, Clone)]
pub struct Base {
    pub parent: usize,
    pub lsn: i64,
    pub history: bool,
    pub filter: Option<Vec<String>>,
    /// The base's versions show only to reads at or after this LSN (a
    /// reset's); 0 for a clone.
    pub since: i64,
    /// A masked clone's mask: the base's bodies show through it.
    pub mask: Option<engine::mask::Mask>,
}

/// A container in the model.
#[derive(Debug, Clone)]
pub struct M {
    pub name: String,
    pub own: Vec<V>,
    pub base: Option<Base>,
    pub deleted: bool,
    /// A physical copy: its operation (the target is checked once it
    /// succeeded).
    pub copy_op: Option<String>,
    /// Expires (the worker may delete it): not checked once past its time.
    pub expires_at: Option<i64>,
    /// Protected: no write, import or deletion of it may be acknowledged.
    pub protected: bool,
    /// Reset away: its name belongs to its successor; it lives on only for
    /// the branches made from it.
    pub retired: bool,
    /// What a reset made of it.
    pub successor: Option<usize>,
    /// Its changes up to this LSN are accounted for in its parent (its
    /// base, then a merge's LSN).
    pub merge_base: i64,
}

/// What a merge of a container into its parent must do.
#[derive(Debug)]
pub struct MergePlan {
    /// Into which container.
    pub into: usize,
    /// The parent's side of the keys both sides changed, where they differ.
    pub conflicts: usize,
    /// The writes to the parent (in key order).
    pub writes: Vec<Write>,
}

/// An open import: its container and the versions staged so far.
#[derive(Debug, Clone)]
pub struct Import {
    pub container: usize,
    pub staged: Vec<V>,
}

#[derive(Default)]
pub struct Model {
    pub cs: Vec<M>,
    pub imports: BTreeMap<String, Import>,
    /// Chunked merges under way, by import id: the branch and strategy.
    pub merges: BTreeMap<String, (usize, Option<engine::Resolve>)>,
    /// Every chunked merge the model learnt of.
    pub merges_seen: std::collections::BTreeSet<String>,
}

/// What a container shows: (collection, key, lsn) → (body, visible from).
pub type Shown = BTreeMap<(String, String, i64), (Option<String>, i64)>;

/// Every version any read of a container may see: (collection, key, lsn)
/// → (body, visible from, visible until).
pub type Windowed = BTreeMap<(String, String, i64), (Option<String>, i64, i64)>;

/// The newest version of each key through a skip-history base: (lsn,
/// body, from, until).
type Newest = BTreeMap<(String, String), (i64, Option<String>, i64, i64)>;

/// Live records by (collection, key): (lsn, body).
pub type Live = BTreeMap<(String, String), (i64, String)>;

impl Model {
    /// Every version any read of container `i` may see, with its window.
    pub fn all(&self, i: usize) -> Windowed {
        self.all_with(i, true)
    }

    /// [`Model::all`], with the bodies masked clones show (`masked`) or
    /// the ones they were made from (whose sizes their statistics count).
    pub fn all_with(&self, i: usize, masked: bool) -> Windowed {
        let c = &self.cs[i];
        let mut out = BTreeMap::new();
        if let Some(b) = &c.base {
            let masks = engine::mask::Masks::default().then(b.mask.as_ref().filter(|_| masked));
            let parent = self.all_with(b.parent, masked);
            let keep = |col: &str| b.filter.as_ref().is_none_or(|f| f.iter().any(|x| x == col));
            let mut newest: Newest =
                BTreeMap::new();
            for ((col, key, lsn), (body, from, until)) in parent {
                if lsn > b.lsn || from > b.lsn || !keep(&col) {
                    continue;
                }
                let body = body.map(|x| masks.apply(&col, &x).expect("a body is JSON"));
                // A read as of t reads the parent as of min(t, base): a
                // window still open at the base stays open.
                let until = if until == i64::MAX || b.lsn < until {
                    i64::MAX
                } else {
                    until
                };
                let from = from.max(b.since);
                if b.history {
                    out.insert((col, key, lsn), (body, from, until));
                } else if until == i64::MAX {
                    newest.insert((col, key), (lsn, body, from, until));
                }
            }
            for ((col, key), (lsn, body, from, until)) in newest {
                if body.is_some() {
                    out.insert((col, key, lsn), (body, from, until));
                }
            }
        }
        for v in &c.own {
            let k = (v.collection.clone(), v.key.clone(), v.lsn);
            // One version seen through two windows that meet (what a reset
            // froze, and the same version through the new base from the
            // reset on) is seen through both: one window.
            // (The same version: the base's body, unmasked when asked
            // for, is the one a reset froze as it was shown.)
            let w = match out.get(&k) {
                Some((b, from, until)) if v.until >= *from && *until >= v.from => {
                    (b.clone(), v.from.min(*from), v.until.max(*until))
                }
                _ => (v.body.clone(), v.from, v.until),
            };
            out.insert(k, w);
        }
        out
    }

    /// Every version container `i` sees at the head (its history).
    pub fn visible(&self, i: usize) -> Shown {
        self.all(i)
            .into_iter()
            .filter(|(_, (_, _, until))| *until == i64::MAX)
            .map(|(k, (b, from, _))| (k, (b, from)))
            .collect()
    }

    /// Live records of `i` as of `at`.
    pub fn live(&self, i: usize, at: i64) -> Live {
        self.live_with(i, at, true)
    }

    /// [`Model::live`], masked or not ([`Model::all_with`]).
    pub fn live_with(&self, i: usize, at: i64, masked: bool) -> Live {
        let mut newest: BTreeMap<(String, String), (i64, Option<String>)> = BTreeMap::new();
        for ((col, key, lsn), (body, from, until)) in self.all_with(i, masked) {
            if lsn <= at && from <= at && (until == i64::MAX || at < until) {
                newest.insert((col, key), (lsn, body));
            }
        }
        newest
            .into_iter()
            .filter_map(|(k, (lsn, b))| b.map(|b| (k, (lsn, b))))
            .collect()
    }

    /// A reset of `i` at `r` to its parent's head: `i` retires, and a
    /// successor of the same name shows what `i` showed to reads before
    /// `r`, and its parent as of `r - 1` from `r` on. Returns its index.
    pub fn reset(&mut self, i: usize, r: i64) -> Option<usize> {
        let parent = self.cs[i].base.as_ref()?.parent;
        let own: Vec<V> = self
            .all(i)
            .into_iter()
            .map(|((collection, key, lsn), (body, from, until))| V {
                collection,
                key,
                lsn,
                body,
                from,
                until: until.min(r),
            })
            .collect();
        let old = &self.cs[i];
        let next = M {
            name: old.name.clone(),
            own,
            base: Some(Base {
                parent,
                lsn: r - 1,
                history: true,
                filter: None,
                since: r,
                mask: self.cs[i].base.as_ref().and_then(|b| b.mask.clone()),
            }),
            deleted: false,
            copy_op: None,
            expires_at: old.expires_at,
            protected: old.protected,
            retired: false,
            successor: None,
            merge_base: r - 1,
        };
        self.cs.push(next);
        let n = self.cs.len() - 1;
        self.cs[i].retired = true;
        self.cs[i].successor = Some(n);
        Some(n)
    }

    /// The merge of `i` into its parent, by the rule of `engine::merge`
    /// written over the model: the keys `i` wrote after its merge base;
    /// those its parent changed too (written or shown after it) and where
    /// the two differ are conflicts. None: nothing to merge into.
    pub fn merge_plan(&self, i: usize, resolve: Option<engine::Resolve>) -> Option<MergePlan> {
        let c = &self.cs[i];
        let into = c.base.as_ref()?.parent;
        // A masked branch merges only what a request names (the
        // simulation names nothing): refused.
        if self.cs[into].retired || self.cs[into].deleted || c.base.as_ref()?.mask.is_some() {
            return None;
        }
        let m = c.merge_base;
        let ours: std::collections::BTreeSet<(String, String)> = c
            .own
            .iter()
            .filter(|v| v.until == i64::MAX && v.lsn > m)
            .map(|v| (v.collection.clone(), v.key.clone()))
            .collect();
        let theirs: std::collections::BTreeSet<(String, String)> = self
            .all(into)
            .into_iter()
            .filter(|((_, _, lsn), (_, from, until))| *until == i64::MAX && (*lsn > m || *from > m))
            .map(|((col, key, _), _)| (col, key))
            .collect();
        let (mine, parent) = (self.live(i, i64::MAX), self.live(into, i64::MAX));
        let mut plan = MergePlan {
            into,
            conflicts: 0,
            writes: vec![],
        };
        for k in ours {
            let (o, t) = (mine.get(&k).map(|x| &x.1), parent.get(&k).map(|x| &x.1));
            if o == t {
                continue;
            }
            if theirs.contains(&k) {
                match resolve {
                    None => plan.conflicts += 1,
                    Some(engine::Resolve::Theirs) => {}
                    Some(engine::Resolve::Ours) => plan.writes.push(write_of(k, o)),
                }
            } else {
                plan.writes.push(write_of(k, o));
            }
        }
        Some(plan)
    }

    /// The container that answers to `i`'s name now: `i`, or what resets
    /// made of it.
    pub fn current(&self, mut i: usize) -> usize {
        while let Some(n) = self.cs[i].successor {
            i = n;
        }
        i
    }

    /// Live records of an import's staging branch: its container's, then
    /// the batches staged so far.
    pub fn staging_live(&self, im: &Import) -> Live {
        let mut live = self.live(im.container, i64::MAX);
        for v in &im.staged {
            let k = (v.collection.clone(), v.key.clone());
            match &v.body {
                Some(b) => {
                    live.insert(k, (v.lsn, b.clone()));
                }
                None => {
                    live.remove(&k);
                }
            }
        }
        live
    }
}

fn write_of((collection, key): (String, String), body: Option<&String>) -> Write {
    match body {
        Some(b) => Write::Put {
            collection,
            key,
            body: b.clone(),
        },
        None => Write::Delete { collection, key },
    }
}

/// The versions a batch writes, as the engine applies it: a later write of
/// a key replaces an earlier one; deleting a key not live writes nothing.
pub fn batch_versions(live: &Live, writes: &[Write], lsn: i64) -> Vec<V> {
    let mut state: BTreeMap<(String, String), Option<Option<String>>> = BTreeMap::new();
    for w in writes {
        match w {
            Write::Put {
                collection,
                key,
                body,
            } => {
                state.insert((collection.clone(), key.clone()), Some(Some(body.clone())));
            }
            Write::Delete { collection, key } => {
                let k = (collection.clone(), key.clone());
                let is_live = match state.get(&k) {
                    Some(Some(b)) => b.is_some(),
                    Some(None) => false,
                    None => live.contains_key(&k),
                };
                if is_live {
                    state.insert(k, Some(None));
                }
            }
        }
    }
    state
        .into_iter()
        .filter_map(|((collection, key), v)| {
            v.map(|body| V {
                collection,
                key,
                lsn,
                body,
                from: 0,
                until: i64::MAX,
            })
        })
        .collect()
}
