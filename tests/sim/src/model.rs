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
}

/// How a container came to be.
#[derive(Debug, Clone)]
pub struct Base {
    pub parent: usize,
    pub lsn: i64,
    pub history: bool,
    pub filter: Option<Vec<String>>,
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
}

/// What a container shows: (collection, key, lsn) → (body, visible from).
pub type Shown = BTreeMap<(String, String, i64), (Option<String>, i64)>;

/// Live records by (collection, key): (lsn, body).
pub type Live = BTreeMap<(String, String), (i64, String)>;

impl Model {
    /// Every version container `i` sees.
    pub fn visible(&self, i: usize) -> Shown {
        let c = &self.cs[i];
        let mut out = BTreeMap::new();
        if let Some(b) = &c.base {
            let parent = self.visible(b.parent);
            let keep = |col: &str| b.filter.as_ref().is_none_or(|f| f.iter().any(|x| x == col));
            let mut newest: BTreeMap<(String, String), (i64, Option<String>, i64)> =
                BTreeMap::new();
            for ((col, key, lsn), (body, from)) in parent {
                if lsn > b.lsn || from > b.lsn || !keep(&col) {
                    continue;
                }
                if b.history {
                    out.insert((col, key, lsn), (body, from));
                } else {
                    newest.insert((col, key), (lsn, body, from));
                }
            }
            for ((col, key), (lsn, body, from)) in newest {
                if body.is_some() {
                    out.insert((col, key, lsn), (body, from));
                }
            }
        }
        for v in &c.own {
            out.insert(
                (v.collection.clone(), v.key.clone(), v.lsn),
                (v.body.clone(), v.from),
            );
        }
        out
    }

    /// Live records of `i` as of `at`.
    pub fn live(&self, i: usize, at: i64) -> Live {
        let mut newest: BTreeMap<(String, String), (i64, Option<String>)> = BTreeMap::new();
        for ((col, key, lsn), (body, from)) in self.visible(i) {
            if lsn <= at && from <= at {
                newest.insert((col, key), (lsn, body));
            }
        }
        newest
            .into_iter()
            .filter_map(|(k, (lsn, b))| b.map(|b| (k, (lsn, b))))
            .collect()
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
            })
        })
        .collect()
}
