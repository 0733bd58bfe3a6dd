//! Merges: a branch's changes applied onto the resource it was cloned
//! from (its parent), with conflicts detected (issue 29.3).
//!
//! The branch remembers its *merge base* (`containers.merge_base`): the
//! LSN up to which its own changes are accounted for in the parent — the
//! clone's base, then a reset's, then each merge's. A merge considers the
//! keys the branch *wrote* after it (its own versions and its imports';
//! what a hydration copied keeps its ancestor's LSN and is not a change),
//! and for each asks whether the parent saw that key change after it too
//! (the diff's rule: written, or made visible, after the base):
//!
//! | branch wrote | parent changed | branch = parent | result |
//! |---|---|---|---|
//! | yes | no | no | the branch's version is written to the parent |
//! | yes | yes | no | a **conflict**: refused, or resolved by the strategy |
//! | – | – | yes | nothing to do |
//!
//! Keys only the parent changed stay as they are. The cost is the keys the
//! branch wrote, not the size of the data. Everything is one transaction:
//! the parent shows all of the merge, at one LSN, or none of it; the
//! branch's merge base moves to that LSN, so a later merge starts there.
//! A protected parent accepts merges. A masked branch merges only the
//! JSON pointers the request names (`paths`), set into the parent's bodies:
//! the rest of a record is the parent's, never a masked value. A merge larger than `max_batch` keys
//! is refused with `TooLarge`: [`crate::merging`] runs it in chunks instead.
//!
//! Uses: `diff` (sides, candidates, live bodies), `records` (`write_in`),
//! `containers`, `imports`, `limits`, `lsn`, `db`, `error`.

use crate::containers::{self, Container, ContainerState};
use crate::db::{read, transaction, Db};
use crate::diff::{self, Basis, Change, Entry, Side, Touch, Walk};
use crate::error::{Error, ErrorKind, Result};
use crate::handle::Engine;
use crate::records::{write_in, Write};
use crate::{imports, lookup, lsn};

/// How conflicts are resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolve {
    /// The branch's version wins.
    Ours,
    /// The parent's version stays.
    Theirs,
}

impl Resolve {
    pub fn as_str(self) -> &'static str {
        match self {
            Resolve::Ours => "ours",
            Resolve::Theirs => "theirs",
        }
    }

    pub fn parse(s: &str) -> Result<Resolve> {
        match s {
            "ours" => Ok(Resolve::Ours),
            "theirs" => Ok(Resolve::Theirs),
            _ => Err(Error::invalid(format!(
                "unknown merge strategy {s:?}: use \"ours\" or \"theirs\""
            ))),
        }
    }
}

/// A merge that was applied.
#[derive(Debug, Clone)]
pub struct Merged {
    /// The LSN the parent shows the merge at (None: nothing to write).
    pub lsn: Option<i64>,
    /// Keys written to the parent.
    pub applied: usize,
    /// Conflicts the strategy resolved (the branch's version written for
    /// `ours`, the parent's kept for `theirs`).
    pub resolved: usize,
    /// The branch's merge base before the merge.
    pub base: i64,
    /// Its merge base now: the merge's LSN, or the head when there was
    /// nothing to write.
    pub next_base: i64,
    /// The parent as it now is.
    pub into: Container,
}

/// What a merge request answers.
#[derive(Debug, Clone)]
pub enum Outcome {
    Merged(Merged),
    /// Refused: keys changed on both sides (the first page of them, each
    /// with `ours` the branch's live body and `theirs` the parent's), and
    /// where the next page starts ([`Engine::merge_conflicts`]).
    Conflicts {
        entries: Vec<Entry>,
        next: Option<(String, String)>,
        into: Container,
    },
}

/// `InvalidState` unless `c` is ready (not a copy still being filled).
fn check_ready(c: &Container, refusal: &str) -> Result<()> {
    match c.state {
        ContainerState::Ready => Ok(()),
        s => Err(Error::state(
            s.as_str(),
            format!("{} is {} and {refusal}", c.reference(), s.as_str()),
        )),
    }
}

/// The branch and its parent as the two sides of a merge, and the merge
/// base. Refuses what cannot be merged: a masked branch (whose values the
/// parent must not take) unless `paths` names what may flow back.
pub(crate) fn sides(db: &dyn Db, branch: &Container, paths: Option<&[String]>) -> Result<(Side, Side, i64)> {
    check_ready(branch, "cannot be merged")?;
    let parent = branch.parent.ok_or_else(|| {
        Error::invalid(format!(
            "{} was not cloned from another resource: there is nothing to merge it into",
            branch.reference()
        ))
    })?;
    let parent = containers::by_id(db, parent)?.ok_or_else(|| {
        Error::not_found(format!(
            "the resource {} was cloned from no longer exists",
            branch.reference()
        ))
    })?;
    if parent.family == containers::HISTORY_FAMILY {
        return Err(Error::state(
            "reset",
            format!(
                "the resource {} was cloned from has been reset since; reset {} to it first",
                branch.reference(),
                branch.reference()
            ),
        ));
    }
    check_ready(&parent, "takes no merge")?;
    let ours = Side::new(branch.clone(), i64::MAX);
    let theirs = Side::new(parent, i64::MAX).seen_by(branch);
    match paths {
        None if !theirs.mask.is_empty() => {
            return Err(Error::invalid(format!(
                "{} is a masked branch: merging it would write masked values into {}; name the JSON pointers that may flow back in \"paths\"",
                branch.reference(),
                theirs.container.reference()
            )))
        }
        Some([]) => return Err(Error::invalid("paths names no JSON pointer")),
        Some(ps) => {
            for p in ps {
                crate::mask::check_pointer(p)?;
            }
        }
        None => {}
    }
    let base = match branch.merge_base {
        Some(b) => b,
        None => match diff::basis(&ours, &theirs) {
            Basis::Since(b) => b,
            Basis::Scan => {
                return Err(Error::invalid(format!(
                    "{} shares no point with the resource it was cloned from",
                    branch.reference()
                )))
            }
        },
    };
    Ok((ours, theirs, base))
}

/// What of the branch's body a merge writes: all of it, or (from a masked
/// branch) only the named JSON pointers, set into the parent's body.
fn merged_body(
    ours: Option<String>,
    theirs_raw: &Option<String>,
    paths: Option<&[String]>,
) -> Result<Option<String>> {
    let (Some(paths), Some(o)) = (paths, &ours) else {
        return Ok(ours);
    };
    let parse = |b: &str| -> Result<serde_json::Value> {
        serde_json::from_str(b).map_err(|e| Error::corrupt(format!("a stored body is not JSON: {e}")))
    };
    let o = parse(o)?;
    let mut out = match theirs_raw {
        Some(t) => parse(t)?,
        None => serde_json::json!({}),
    };
    for p in paths {
        let (parent, last) = p.rsplit_once('/').unwrap_or(("", p));
        let name = last.replace("~1", "/").replace("~0", "~");
        let Some(serde_json::Value::Object(at)) = out.pointer_mut(parent) else {
            continue;
        };
        match o.pointer(p) {
            Some(v) => {
                at.insert(name, v.clone());
            }
            None => {
                at.remove(&name);
            }
        }
    }
    Ok(Some(out.to_string()))
}

/// Where the next page starts (None: the last page).
pub(crate) type Cursor = Option<(String, String)>;

/// One key the branch wrote after the base, as both sides show it.
pub(crate) struct Key {
    /// As the branch may see it (under a mask, masked on both sides).
    pub entry: Entry,
    /// What the merge writes (None: a deletion).
    pub write: Option<String>,
    /// The parent changed it after the base too.
    pub theirs_changed: bool,
}

/// The keys the branch wrote after `base`, after `cursor` (walked as
/// [`Engine::merge_walk`] says): up to `limit`
/// of them examined, those that differ from the parent returned; how many
/// were examined; and where the next page starts (None: the last).
///
/// `ours` of each is what the merge writes (the branch's body, or under
/// `paths` the parent's with those pointers from the branch's); `theirs`
/// the parent's body as the branch may see it (masked for a masked branch).
#[allow(clippy::too_many_arguments)]
pub(crate) fn page(
    db: &dyn Db,
    ours: &Side,
    theirs: &Side,
    base: i64,
    paths: Option<&[String]>,
    walk: (Walk, Walk),
    cursor: (&str, &str),
    limit: i64,
) -> Result<(Vec<Key>, usize, Cursor)> {
    let basis = Basis::Since(base);
    let (o, t) = (ours.container.id, theirs.container.id);
    let keys = diff::candidates(db, ours, t, basis, Touch::Written, walk.0, cursor, limit)?;
    let seen = keys.len();
    let next = (keys.len() as i64 == limit).then(|| keys.last().cloned()).flatten();
    let changed = diff::touched(db, theirs, o, basis, walk.1, &keys)?;
    let raw = Side::new(theirs.container.clone(), theirs.at);
    let os = diff::live_many(db, ours, &keys)?;
    let ts = diff::live_many(db, &raw, &keys)?;
    let mut out = Vec::new();
    for (((collection, key), o), t_raw) in keys.into_iter().zip(os).zip(ts) {
        let o = merged_body(o, &t_raw, paths)?;
        if o == t_raw {
            continue;
        }
        let t = match &t_raw {
            Some(b) => Some(theirs.mask.apply(&collection, b)?),
            None => None,
        };
        let change = match (&o, &t_raw) {
            (Some(x), Some(y)) if x == y => continue,
            (None, None) => continue,
            (Some(_), Some(_)) => Change::Changed,
            (Some(_), None) => Change::Added,
            (None, Some(_)) => Change::Removed,
        };
        let theirs_changed = changed.contains(&(collection.clone(), key.clone()));
        // Under `paths` the body written is the parent's, unmasked: what
        // the branch is shown of it is masked.
        let shown = match &o {
            Some(b) => Some(theirs.mask.apply(&collection, b)?),
            None => None,
        };
        out.push(Key {
            entry: Entry {
                change,
                collection,
                key,
                ours: shown,
                theirs: t,
            },
            write: o,
            theirs_changed,
        });
    }
    Ok((out, seen, next))
}

impl Engine<'_> {
    /// How [`page`] walks the keys the branch wrote after `base`, and the
    /// parent's changes after it.
    pub(crate) fn merge_walk(
        &self,
        db: &dyn Db,
        ours: &Side,
        theirs: &Side,
        base: i64,
    ) -> Result<(Walk, Walk)> {
        let basis = Basis::Since(base);
        Ok((
            self.walk(db, ours, theirs.container.id, basis, Touch::Written)?,
            self.walk(db, theirs, ours.container.id, basis, Touch::Shown)?,
        ))
    }

    /// Merge a resource into the one it was cloned from. Conflicts refuse
    /// the merge (the first `limit` listed) unless `resolve` says which
    /// side wins. One transaction; see the module's documentation.
    pub fn merge(
        &self,
        family: &str,
        tenant: &str,
        name: &str,
        resolve: Option<Resolve>,
        paths: Option<&[String]>,
        limit: i64,
    ) -> Result<Outcome> {
        let now = self.env.now_us();
        let limits = self.config.limits();
        let max = self.config.max_batch;
        let limit = limit.clamp(1, self.config.max_page) as usize;
        transaction(self.db, |db| {
            let branch = containers::find(db, family, tenant, name)?;
            let (ours, theirs, base) = sides(db, &branch, paths)?;
            imports::check_no_open_import(db, &branch)?;
            imports::check_no_open_import(db, &theirs.container)?;
            let mut writes = Vec::new();
            let mut conflicts = Vec::new();
            let mut resolved = 0;
            let mut more_conflicts = None;
            let mut cursor = (String::new(), String::new());
            let walk = self.merge_walk(db, &ours, &theirs, base)?;
            loop {
                let (keys, _, next) = page(
                    db,
                    &ours,
                    &theirs,
                    base,
                    paths,
                    walk,
                    (&cursor.0, &cursor.1),
                    lookup::ROWS as i64,
                )?;
                for k in keys {
                    if k.theirs_changed {
                        match resolve {
                            None if conflicts.len() < limit => conflicts.push(k.entry),
                            None => {
                                if more_conflicts.is_none() {
                                    let last = conflicts.last().map(|e: &Entry| {
                                        (e.collection.clone(), e.key.clone())
                                    });
                                    more_conflicts = last;
                                }
                            }
                            Some(Resolve::Theirs) => resolved += 1,
                            Some(Resolve::Ours) => {
                                resolved += 1;
                                writes.push(as_write(k));
                            }
                        }
                    } else {
                        writes.push(as_write(k));
                    }
                    if writes.len() > max {
                        return Err(Error::new(
                            ErrorKind::TooLarge,
                            format!(
                                "{} wrote more than {max} keys since its merge base (LSN {base}); a merge applies at most {max} at once",
                                branch.reference()
                            ),
                        ));
                    }
                }
                match next {
                    Some(n) if more_conflicts.is_none() => cursor = n,
                    _ => break,
                }
            }
            if !conflicts.is_empty() {
                return Ok(Outcome::Conflicts {
                    entries: conflicts,
                    next: more_conflicts,
                    into: theirs.container,
                });
            }
            let into = theirs.container;
            let (lsn, next_base) = if writes.is_empty() {
                let head = lsn::head(db)?;
                containers::set_merge_base(db, branch.id, head)?;
                (None, head)
            } else {
                let adding = crate::records::batch_bytes(&writes, max)?;
                crate::limits::count_writes(db, &limits, tenant, writes.len() as i64, now)?;
                crate::limits::check_stored_bytes(db, &limits, tenant, adding)?;
                let done = write_in(db, self.env, &into, &writes)?;
                containers::set_merge_base(db, branch.id, done.lsn)?;
                (Some(done.lsn), done.lsn)
            };
            let into = containers::by_id(db, into.id)?
                .ok_or_else(|| Error::corrupt("a merge's parent vanished"))?;
            Ok(Outcome::Merged(Merged {
                lsn,
                applied: writes.len(),
                resolved,
                base,
                next_base,
                into,
            }))
        })
    }

    /// A page of a merge's conflicts after `cursor`: up to `limit` keys
    /// the branch wrote examined (a page may hold fewer conflicts, or none,
    /// and still not be the last). One read snapshot per page.
    pub fn merge_conflicts(
        &self,
        branch: &Container,
        paths: Option<&[String]>,
        cursor: Option<(&str, &str)>,
        limit: i64,
    ) -> Result<diff::Page> {
        let limit = limit.clamp(1, self.config.max_page);
        read(self.db, |db| {
            let branch = containers::find(db, &branch.family, &branch.tenant, &branch.name)?;
            let (ours, theirs, base) = sides(db, &branch, paths)?;
            let walk = self.merge_walk(db, &ours, &theirs, base)?;
            let (keys, _, next) = page(db, &ours, &theirs, base, paths, walk, cursor.unwrap_or(("", "")), limit)?;
            Ok(diff::Page {
                entries: keys
                    .into_iter()
                    .filter(|k| k.theirs_changed)
                    .map(|k| k.entry)
                    .collect(),
                next,
            })
        })
    }
}

/// The write that makes the parent show the branch's side of a key.
pub(crate) fn as_write(k: Key) -> Write {
    match k.write {
        Some(body) => Write::Put {
            collection: k.entry.collection,
            key: k.entry.key,
            body,
        },
        None => Write::Delete {
            collection: k.entry.collection,
            key: k.entry.key,
        },
    }
}
