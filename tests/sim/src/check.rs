//! The checker: after every round (light) and at the end (full), every
//! container the model knows must answer exactly as the model says.
//!
//! - every acknowledged write is readable where it should be (export at
//!   the head each round; get, as-of reads and history at the end);
//! - nothing unacknowledged shows (the comparison is exact);
//! - statistics equal the data (records and bytes per collection; versions
//!   while nothing was pruned);
//! - a clone equals its source at its snapshot, and branches are isolated
//!   both ways (the model defines a clone by its source at its base);
//! - a deleted container answers `NotFound`.

use std::collections::{BTreeMap, BTreeSet};

use engine::{AsOf, Container, Engine, ErrorKind, Status};

use crate::actors::{COLLECTIONS, KEYS};
use crate::model::{Live, Model, M};

/// Whether container `i` must answer now: not deleted, not expired (the
/// worker may have removed it), and for a physical copy, once its copy
/// succeeded.
pub fn checkable(m: &Model, e: &Engine, i: usize, now: i64) -> bool {
    let c = &m.cs[i];
    if c.deleted || c.retired || c.expires_at.is_some_and(|t| t <= now + 1_000_000) {
        return false;
    }
    // An ancestor that expired may take the branch's data with it only
    // through hydration, which keeps it: no reason to skip.
    match &c.copy_op {
        None => true,
        Some(op) => matches!(e.operation_by_id(op), Ok(Some(o)) if o.status == Status::Succeeded),
    }
}

/// The containers that must answer now (`checkable`), each with its row.
fn must_answer<'m>(
    m: &'m Model,
    e: &Engine,
    now: i64,
) -> Result<Vec<(usize, &'m M, Container)>, String> {
    let mut out = Vec::new();
    for (i, mc) in m.cs.iter().enumerate() {
        if checkable(m, e, i, now) {
            let c = e
                .container("native", "t", &mc.name)
                .map_err(|x| format!("{}: {x}", mc.name))?;
            out.push((i, mc, c));
        }
    }
    Ok(out)
}

fn export(e: &Engine, name: &str, at: i64) -> Result<Live, String> {
    let c = e
        .container("native", "t", name)
        .map_err(|x| format!("{name}: {x}"))?;
    let mut got = BTreeMap::new();
    let mut after: Option<(String, String)> = None;
    loop {
        let page = e
            .export_page(
                &c,
                at,
                after.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
                3,
            )
            .map_err(|x| format!("export {name}: {x}"))?;
        let Some(last) = page.last() else { break };
        after = Some((last.collection.clone(), last.key.clone()));
        for v in &page {
            let prev = got.insert(
                (v.collection.clone(), v.key.clone()),
                (v.lsn, v.body.clone().ok_or("export of a deletion")?),
            );
            if prev.is_some() {
                return Err(format!(
                    "export of {name}: {}/{} twice",
                    v.collection, v.key
                ));
            }
        }
    }
    Ok(got)
}

/// Export at the head and statistics of every checkable container;
/// deleted ones answer `NotFound`.
pub fn light(m: &Model, e: &Engine, now: i64, pruned: bool) -> Result<(), String> {
    for (i, mc) in m.cs.iter().enumerate() {
        if mc.retired {
            continue;
        }
        if mc.deleted {
            match e.container("native", "t", &mc.name) {
                Err(x) if x.kind == ErrorKind::NotFound => continue,
                other => return Err(format!("{} was deleted, yet answers {other:?}", mc.name)),
            }
        }
        if !checkable(m, e, i, now) {
            continue;
        }
        let want = m.live(i, i64::MAX);
        let got = export(e, &mc.name, i64::MAX)?;
        if got != want {
            let lost: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).collect();
            let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).collect();
            let changed: Vec<_> = want
                .iter()
                .filter(|(k, v)| got.get(*k).is_some_and(|g| g != *v))
                .map(|(k, v)| (k, v, &got[k]))
                .collect();
            return Err(format!(
                "export of {} disagrees with what was acknowledged: lost {lost:?}, unacknowledged {extra:?}, \
                 changed (key, want, got) {changed:?}",
                mc.name
            ));
        }
        let c = e
            .container("native", "t", &mc.name)
            .map_err(|x| x.to_string())?;
        let stats = e.collections(&c).map_err(|x| x.to_string())?;
        let visible = m.visible(i);
        // A masked clone counts the sizes of what it was made from.
        let raw = m.live_with(i, i64::MAX, false);
        for col in COLLECTIONS {
            let s = stats.iter().find(|s| s.name == col);
            let records = want.keys().filter(|(c, _)| c == col).count() as i64;
            let bytes: i64 = raw
                .iter()
                .filter(|((c, _), _)| c == col)
                .map(|(_, (_, b))| b.len() as i64)
                .sum();
            let got = s.map(|s| (s.records, s.bytes)).unwrap_or((0, 0));
            if got != (records, bytes) {
                return Err(format!(
                    "statistics of {}/{col}: (records, bytes) {got:?}, the data has {:?}",
                    mc.name,
                    (records, bytes)
                ));
            }
            if !pruned {
                let versions = visible.keys().filter(|(c, _, _)| c == col).count() as i64;
                let got = s.map(|s| s.versions).unwrap_or(0);
                if got != versions {
                    return Err(format!(
                        "statistics of {}/{col}: {got} versions, the data has {versions}",
                        mc.name
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Every key of every checkable container: latest, as of LSNs, history.
pub fn full(m: &Model, e: &Engine, now: i64) -> Result<(), String> {
    for (i, mc, c) in must_answer(m, e, now)? {
        let visible = m.visible(i);
        let want = m.live(i, i64::MAX);
        let lsns: BTreeSet<i64> = visible
            .iter()
            .flat_map(|((_, _, l), (_, from))| [*l, *from])
            .filter(|l| *l >= c.floor_lsn && *l > 0)
            .collect();
        for at in lsns.iter().step_by(2) {
            match export(e, &mc.name, *at) {
                Ok(got) => {
                    let want_at = m.live(i, *at);
                    if got != want_at {
                        return Err(format!(
                            "export of {} as of {at}:\n got  {got:?}\n want {want_at:?}",
                            mc.name
                        ));
                    }
                }
                Err(x) if x.contains("retention") || x.contains("window") => {}
                Err(x) => return Err(x),
            }
        }
        for col in COLLECTIONS {
            for k in 0..KEYS {
                let key = format!("k{k}");
                let got = match e.get(&c, col, &key, AsOf::Head) {
                    Ok(v) => Some((v.lsn, v.body.unwrap_or_default())),
                    Err(x) if x.kind == ErrorKind::NotFound => None,
                    Err(x) => return Err(format!("get {}/{col}/{key}: {x}", mc.name)),
                };
                let w = want.get(&(col.to_string(), key.clone())).cloned();
                if got != w {
                    return Err(format!(
                        "get {}/{col}/{key}: got {got:?}, want {w:?}",
                        mc.name
                    ));
                }
                let hist: Vec<(i64, Option<String>)> = e
                    .history(&c, col, &key, None, 1000)
                    .map_err(|x| x.to_string())?
                    .into_iter()
                    .filter(|v| v.lsn > c.floor_lsn)
                    .map(|v| (v.lsn, v.body))
                    .collect();
                let mut want_hist: Vec<(i64, Option<String>)> = visible
                    .iter()
                    .filter(|((c2, k2, l), _)| c2 == col && *k2 == key && *l > c.floor_lsn)
                    .map(|((_, _, l), (b, _))| (*l, b.clone()))
                    .collect();
                want_hist.reverse();
                if hist != want_hist {
                    return Err(format!(
                        "history of {}/{col}/{key}: got {hist:?}, want {want_hist:?}",
                        mc.name
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Every verification that ran beside the other calls found nothing; and
/// one of every checkable container now, run to its end, finds nothing.
pub fn verifications(m: &Model, e: &Engine, now: i64) -> Result<(), String> {
    for (_, mc, c) in must_answer(m, e, now)? {
        let op = e
            .verify(&c)
            .map_err(|x| format!("verify {}: {x}", mc.name))?;
        if !e.claim(&op.id, "verifier").map_err(|x| x.to_string())? {
            return Err(format!("verify {}: the lease is taken", mc.name));
        }
        for _ in 0..10_000 {
            let o = e
                .step(&op.id, "verifier", Some(7))
                .map_err(|x| format!("verify {}: {x}", mc.name))?;
            if o.status != Status::InProgress {
                break;
            }
        }
    }
    let ids: Vec<String> = e
        .db()
        .execute(
            "SELECT id FROM operations WHERE kind = 'verify' AND status = 'succeeded'",
            &[],
        )
        .map_err(|x| format!("{x:?}"))?
        .iter()
        .map(|r| r.text(0).expect("id"))
        .collect();
    for id in ids {
        let op = e
            .operation_by_id(&id)
            .map_err(|x| x.to_string())?
            .ok_or("vanished")?;
        if op.meta["report"]["clean"] != true {
            return Err(format!(
                "verification of {} (as of LSN {}) found problems: {}",
                op.target_ref, op.snapshot_lsn, op.meta["report"]
            ));
        }
    }
    Ok(())
}
