//! Verification: an fsck of one container, as an operation (kind
//! `verify`, family `native`) that the worker advances in the same bounded,
//! leased chunks as a copy, so a container of any size is checked without a
//! long request.
//!
//! It reads the container as of the LSN it started at, through its levels,
//! exactly as a history copy would (the same `(collection, key, lsn)`
//! cursor), but writes nothing: each chunk adds what it saw — versions and
//! their bytes, live records and their bytes, per collection — to the
//! operation's `meta.counted`. The last chunk compares the counts with the
//! container's statistics as of that LSN (the statistics now, less what
//! changed after it: `levels::stats_at_base`), checks the level chain and
//! the staging bookkeeping, and stores the report in `meta.report`:
//! `{"clean": bool, "lsn", "problems": [..], "collections": {name:
//! {"counted": .., "statistics": ..}}}`. A verification never changes the
//! container: it ends `succeeded` with the report either way.

use std::collections::BTreeMap;

use serde_json::{json, Value as Json};

use super::chunks::{chunk_range, chunk_stats};
use super::rows::{insert_in_place, load};
use super::types::{OpKind, Operation};
use crate::containers::{self, Container};
use crate::db::{exec, one, transaction, Db};
use crate::error::{Error, Result};
use crate::events::append;
use crate::handle::Engine;
use crate::stats::Delta;
use crate::util::new_id;
use crate::{imports, levels, stats};

pub(super) fn key(container: i64) -> String {
    format!("verify:{container}")
}

fn delta_json(d: &Delta) -> Json {
    json!({"records": d.records, "bytes": d.bytes, "versions": d.versions, "version_bytes": d.version_bytes})
}

fn delta_of(v: &Json) -> Delta {
    let n = |k: &str| v.get(k).and_then(Json::as_i64).unwrap_or(0);
    Delta {
        records: n("records"),
        bytes: n("bytes"),
        versions: n("versions"),
        version_bytes: n("version_bytes"),
    }
}

impl Engine<'_> {
    /// Verify a container: the active verification if one runs, else a new
    /// one (pending; the worker, or a status read's nudge, advances it).
    pub fn verify(&self, c: &Container) -> Result<Operation> {
        let now = self.env.now_us();
        let id = new_id(self.env);
        let limits = self.config.limits();
        transaction(self.db, |db| {
            let c = containers::by_id(db, c.id)?
                .ok_or_else(|| Error::not_found(format!("{} not found", c.reference())))?;
            if let Some(id) = super::lifecycle::active_with_key(db, &key(c.id))? {
                return load(db, &id)?.ok_or_else(|| Error::corrupt("operation vanished"));
            }
            crate::limits::check_start(db, &limits, &c.tenant, now)?;
            let head = crate::lsn::head(db)?;
            let t = stats::totals(db, c.id)?;
            let total = (t.versions, t.version_bytes);
            let op = insert_in_place(
                db,
                &id,
                OpKind::Verify,
                &c,
                head,
                &key(c.id),
                total,
                self.config.initial_chunk,
                &json!({"counted": {}}),
                now,
            )?;
            append(db, &id, now, "created", &op.progress_json())?;
            Ok(op)
        })
    }
}

/// What one verification chunk saw.
pub(super) struct Seen {
    pub versions: i64,
    pub bytes: i64,
    /// The chunk's last row (None: the scan reached the end).
    pub end: Option<(String, String, i64)>,
}

/// Count at most `n` versions after the cursor, as of the operation's LSN,
/// into `meta.counted` (the caller stores the cursor).
pub(super) fn chunk(db: &dyn Db, op: &Operation, n: i64) -> Result<Seen> {
    let c = containers::by_id(db, op.target)?
        .ok_or_else(|| Error::corrupt("verified container vanished"))?;
    let arms = c.arms(op.snapshot_lsn);
    let range = chunk_range(db, &arms, &op.cursor, n)?;
    let counted = chunk_stats(db, &arms, &range)?;
    let mut meta = op.meta.clone();
    let mut versions = 0;
    let mut bytes = 0;
    for (name, d) in &counted {
        versions += d.versions;
        bytes += d.version_bytes;
        let mut sum = delta_of(&meta["counted"][name]);
        sum.records += d.records;
        sum.bytes += d.bytes;
        sum.versions += d.versions;
        sum.version_bytes += d.version_bytes;
        meta["counted"][name] = delta_json(&sum);
    }
    exec(
        db,
        "UPDATE operations SET meta = ?2 WHERE id = ?1",
        &[op.id.as_str().into(), meta.to_string().into()],
    )?;
    Ok(Seen {
        versions,
        bytes,
        end: range.end,
    })
}

/// The last chunk's verdict: counts against statistics, the level chain,
/// the staging bookkeeping. Stored in `meta.report`.
pub(super) fn report(db: &dyn Db, op: &Operation) -> Result<Json> {
    let c = containers::by_id(db, op.target)?
        .ok_or_else(|| Error::corrupt("verified container vanished"))?;
    let mut problems: Vec<String> = Vec::new();
    let stats = levels::stats_at_base(db, c.id, &c.chain, op.snapshot_lsn, true, None)?;
    let counted: BTreeMap<String, Delta> = op.meta["counted"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), delta_of(v))).collect())
        .unwrap_or_default();
    let mut collections = serde_json::Map::new();
    let names: std::collections::BTreeSet<&String> = stats.keys().chain(counted.keys()).collect();
    for name in names {
        let zero = Delta::default();
        let s = stats.get(name).unwrap_or(&zero);
        let n = counted.get(name).unwrap_or(&zero);
        for (what, stat, data) in [
            ("records", s.records, n.records),
            ("bytes", s.bytes, n.bytes),
            ("versions", s.versions, n.versions),
            ("version bytes", s.version_bytes, n.version_bytes),
        ] {
            if stat != data {
                problems.push(format!(
                    "collection {name}: the statistics count {stat} {what}, the data holds {data}"
                ));
            }
        }
        collections.insert(
            name.clone(),
            json!({"counted": delta_json(n), "statistics": delta_json(s)}),
        );
    }
    for name in stats::impossible(db, c.id)? {
        problems.push(format!(
            "collection {name}: impossible statistics (negative, or more records than versions)"
        ));
    }
    // The level chain: depths from 1 and increasing (a hydration leaves
    // windows of the past in place), every ancestor still stored, bounds
    // within the clock.
    let head = crate::lsn::head(db)?;
    for (i, l) in c.chain.iter().enumerate() {
        let placed = if i == 0 {
            l.depth >= 1
        } else {
            l.depth > c.chain[i - 1].depth
        };
        if !placed {
            problems.push(format!(
                "level chain: depth {} is out of place (level {} of {})",
                l.depth,
                i + 1,
                c.chain.len()
            ));
        }
        if one(
            db,
            "SELECT 1 FROM containers WHERE id = ?1",
            &[l.ancestor.into()],
        )?
        .is_none()
        {
            problems.push(format!(
                "level {}: ancestor {} is gone, yet read through",
                l.depth, l.ancestor
            ));
        }
        if l.bound > head || l.from > head {
            problems.push(format!(
                "level {}: bound {} or from {} is past the head {head}",
                l.depth, l.bound, l.from
            ));
        }
    }
    // Staging: an open import's staging branch exists and is live; a
    // committed import's still shows through a level or is being freed.
    problems.extend(imports::problems(db, c.id)?);
    Ok(json!({
        "clean": problems.is_empty(),
        "lsn": op.snapshot_lsn,
        "problems": problems,
        "collections": collections,
    }))
}

/// Store the report with the operation (the caller ends it).
pub(super) fn store_report(db: &dyn Db, op: &Operation, report: &Json) -> Result<()> {
    let mut meta = op.meta.clone();
    meta["report"] = report.clone();
    exec(
        db,
        "UPDATE operations SET meta = ?2 WHERE id = ?1",
        &[op.id.as_str().into(), meta.to_string().into()],
    )
}
