//! Retention: superseded versions older than the window are pruned, in
//! bounded passes, never one a snapshot or an active operation still needs.
//!
//! A pass over a container fixes a pin LSN P = min(now − window, its oldest
//! snapshot, the snapshot LSN of every active or failed (retryable)
//! skip-history operation reading it, directly or through a branch's levels;
//! an operation copying (or verifying) history pins the whole retained
//! history; every branch reading through it: its floor, or
//! the level's bound when lower; every resource cloned from it, live and
//! not retired by a reset: its branch base, so that a diff or a merge
//! still sees every change the container made after it; and its own merge base while
//! what it was cloned from lives, so that a merge still sees every change
//! it made itself) and
//! *first* raises the container's floor to P, so no read below P is answered
//! from then on; then it deletes, key range by key range, every version
//! that a newer version at or below P supersedes, and deletions that are a
//! key's only version at or below P. Reads at or above P see exactly what
//! they saw before.
//!
//! A branch that still reads through ancestors is not pruned until it is
//! hydrated: its statistics count what it sees through them, which its own
//! pruning could not account for.
//!
//! This module owns `prune_passes`; what it deletes and recounts goes
//! through the owners of those tables (`records`, `stats`, `containers`,
//! `snapshots`, `lsn`).
//!
//! Uses: `records`, `stats`, `levels`, `chain`, `containers`, `snapshots`,
//! `lsn`, `db`, `error`.

use crate::db::{exec, one, transaction, Db, Value};
use crate::error::Result;
use crate::handle::Engine;
use crate::stats::{self, Delta, Deltas};
use crate::{chain, containers, levels, lsn, records, snapshots};

impl Engine<'_> {
    /// One bounded pruning step over at most `limit` rows of one container.
    /// Returns how many versions were deleted. Call until it returns 0 and
    /// no pass is open (the worker calls it a few times per tick).
    pub fn prune_step(&self, retention_us: i64, limit: i64) -> Result<i64> {
        let now = self.env.now_us();
        let cutoff_time = now - retention_us;
        transaction(self.db, |db| {
            // Scheduled snapshots expire with the window.
            snapshots::expire_scheduled(db, cutoff_time)?;
            // An open pass, or a container whose floor can rise.
            let open = one(
                db,
                "SELECT c.id, p.pin, p.collection, p.key FROM prune_passes p JOIN containers c ON c.id = p.container \
                 WHERE c.deleting = 0 ORDER BY p.container LIMIT 1",
                &[],
            )?;
            let (container, pin, cc, ck) = match open {
                Some(r) => (r.i64(0)?, r.i64(1)?, r.text(2)?, r.text(3)?),
                None => {
                    let cutoff = lsn::at_time(db, cutoff_time)?;
                    let Some(r) = one(
                        db,
                        &format!("SELECT c.id, {least}(CAST(?1 AS BIGINT), \
                            coalesce((SELECT min(s.lsn) FROM snapshots s WHERE s.container = c.id), ?1), \
                            coalesce((SELECT min(CASE WHEN o.history = 1 THEN c.floor_lsn ELSE o.snapshot_lsn END) \
                                      FROM operations o WHERE (o.source = c.id OR o.source IN \
                                      (SELECT b2.container FROM branch_levels b2 WHERE b2.ancestor = c.id)) \
                                      AND o.status IN ('pending', 'in_progress', 'failed')), ?1), \
                            coalesce((SELECT min({least}(x.floor_lsn, b.bound)) FROM branch_levels b \
                                      JOIN containers x ON x.id = b.container WHERE b.ancestor = c.id), ?1), \
                            coalesce((SELECT min(x.branch_base) FROM containers x WHERE x.parent = c.id \
                                      AND x.deleting = 0 AND x.family != 'history'), ?1), \
                            coalesce((SELECT c.merge_base FROM containers p WHERE p.id = c.parent \
                                      AND p.deleting = 0 AND p.family != 'history'), ?1)) AS pin \
                         FROM containers c WHERE c.deleting = 0 AND c.state = 'ready' AND c.floor_lsn < ?1 \
                         AND c.head_lsn > c.floor_lsn \
                         AND NOT EXISTS (SELECT 1 FROM branch_levels b WHERE b.container = c.id) \
                         ORDER BY c.floor_at LIMIT 1", least = db.dialect().least()),
                        &[cutoff.into()],
                    )?
                    else {
                        return Ok(0);
                    };
                    let (container, pin) = (r.i64(0)?, r.i64(1)?);
                    let floor = one(
                        db,
                        "SELECT floor_lsn FROM containers WHERE id = ?1",
                        &[container.into()],
                    )?
                    .map(|r| r.i64(0))
                    .unwrap_or(Ok(0))?;
                    if pin <= floor {
                        return Ok(0);
                    }
                    let floor_at = lsn::time_of(db, pin)?.unwrap_or(cutoff_time);
                    containers::set_floor(db, container, pin, floor_at)?;
                    exec(
                        db,
                        "INSERT INTO prune_passes (container, pin, collection, key) VALUES (?1, ?2, '', '')",
                        &[container.into(), pin.into()],
                    )?;
                    (container, pin, String::new(), String::new())
                }
            };
            // This step's key range: up to `limit` rows after the cursor.
            let end = one(
                db,
                "SELECT collection, key FROM records WHERE container = ?1 AND (collection, key) > (?2, ?3) \
                 ORDER BY collection, key, lsn LIMIT 1 OFFSET ?4",
                &[container.into(), cc.as_str().into(), ck.as_str().into(), (limit - 1).max(0).into()],
            )?;
            let (range, p) = match &end {
                Some(e) => (
                    format!(
                        "(r.collection, r.key) > (?2, ?3) AND {}",
                        crate::dialect::range_end(e.text(0)? == cc, 5, 6, None)
                    ),
                    vec![
                        container.into(),
                        cc.as_str().into(),
                        ck.as_str().into(),
                        pin.into(),
                        e.text(0)?.into(),
                        e.text(1)?.into(),
                    ],
                ),
                None => (
                    "(r.collection, r.key) > (?2, ?3)".to_string(),
                    vec![
                        container.into(),
                        cc.as_str().into(),
                        ck.as_str().into(),
                        pin.into(),
                    ],
                ),
            };
            // Superseded versions first, then deletions left as a key's
            // only version (after the first statement removed what they hid).
            let superseded = "EXISTS (SELECT 1 FROM records x WHERE x.container = ?1 AND x.collection = r.collection \
                 AND x.key = r.key AND x.lsn > r.lsn AND x.lsn <= ?4 \
                 AND (x.visible_from IS NULL OR x.visible_from <= ?4))";
            let lone_tombstone =
                "r.deleted = 1 AND NOT EXISTS (SELECT 1 FROM records x WHERE x.container = ?1 \
                 AND x.collection = r.collection AND x.key = r.key AND x.lsn < r.lsn)";
            let mut gone = 0;
            for rule in [superseded, lone_tombstone] {
                let doomed = format!("r.container = ?1 AND {range} AND r.lsn <= ?4 AND {rule}");
                // What every branch that sees them loses, while they are
                // still there to count; then they go.
                dependents_lose(db, container, &doomed, &p)?;
                let (n, lost) = records::delete_versions(db, &doomed, &p)?;
                gone += n;
                stats::apply(db, container, &lost)?;
            }
            match &end {
                Some(e) => {
                    exec(
                        db,
                        "UPDATE prune_passes SET collection = ?2, key = ?3 WHERE container = ?1",
                        &[container.into(), e.text(0)?.into(), e.text(1)?.into()],
                    )?;
                }
                None => {
                    exec(
                        db,
                        "DELETE FROM prune_passes WHERE container = ?1",
                        &[container.into()],
                    )?;
                    lsn::forget_below_floors(db)?;
                }
            }
            Ok(gone)
        })
    }
}

/// The branches that read through `container` with history (an open
/// import's staging branch among them) count its versions in their own
/// statistics: each loses, like the container, the doomed versions it
/// sees only there — not one it holds itself (copied by a hydration) or
/// sees through another of its levels. A level below a skip-history
/// boundary shows only the version live at the cut, which no pruned
/// version is (every pruned version is superseded, or a deletion, at or
/// below the pin, and the pin is at or below every dependent's bound).
fn dependents_lose(db: &dyn Db, container: i64, doomed: &str, p: &[Value]) -> Result<()> {
    for id in levels::history_readers(db, container)? {
        let Some(x) = containers::by_id(db, id)? else {
            continue;
        };
        let arms = x.arms(i64::MAX);
        // What x sees of `container`: its level's filter (a history level).
        let Some(level) = x
            .chain
            .iter()
            .find(|l| l.ancestor == container && l.cut_depth.is_none() && l.is_current())
        else {
            continue;
        };
        let mut only = String::new();
        if let Some(cols) = &level.collections {
            only = format!(" AND r.collection IN ({})", chain::literal_list(cols));
        }
        let elsewhere: Vec<String> = arms
            .iter()
            .filter(|a| a.container != container)
            .map(|a| chain::arm_rows(a, "y"))
            .collect();
        let held = if elsewhere.is_empty() {
            String::new()
        } else {
            format!(
                " AND NOT EXISTS (SELECT 1 FROM records y WHERE y.collection = r.collection AND y.key = r.key \
                 AND y.lsn = r.lsn AND (({})))",
                elsewhere.join(") OR (")
            )
        };
        let lost = crate::db::query(
            db,
            &format!(
                "SELECT r.collection, count(*), sum(r.size) FROM records r WHERE {doomed}{only} \
                 AND r.lsn <= {bound} AND (r.visible_from IS NULL OR r.visible_from <= {bound}){held} \
                 GROUP BY r.collection",
                bound = level.bound
            ),
            p,
        )?;
        let mut deltas = Deltas::new();
        for s in &lost {
            deltas.insert(
                s.text(0)?,
                Delta {
                    versions: -s.i64(1)?,
                    version_bytes: -s.i64(2)?,
                    ..Delta::default()
                },
            );
        }
        stats::apply(db, id, &deltas)?;
    }
    Ok(())
}
