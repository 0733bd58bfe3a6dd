//! The chunk step: one transaction that copies at most N rows after the
//! cursor with `INSERT OR IGNORE … SELECT`, updates the target's statistics,
//! the cursor, counters and lease, and ends the operation after the last
//! chunk.

use super::rows::load;
use super::types::{Status, StepOutcome};
use crate::containers;
use crate::db::{exec, one, query, transaction, Value};
use crate::error::{Error, ErrorKind, Result};
use crate::events::append;
use crate::records::apply_stats;
use crate::Engine;

/// SQL filtering a source's rows to an operation: container ?1, snapshot
/// LSN ?2, collection filter ?3 (JSON array or NULL), and for skip-history
/// only the newest live version of each key.
fn chunk_filter(history: bool) -> String {
    let mut f = String::from(
        "r.container = ?1 AND r.lsn <= ?2 \
         AND (?3 IS NULL OR r.collection IN (SELECT value FROM json_each(?3)))",
    );
    if !history {
        f.push_str(
            " AND r.deleted = 0 AND r.lsn = (SELECT max(x.lsn) FROM records x WHERE x.container = ?1 \
             AND x.collection = r.collection AND x.key = r.key AND x.lsn <= ?2)",
        );
    }
    f
}

/// 1 when this row is the newest version of its key at the snapshot and live.
const FINAL_LIVE: &str =
    "(r.deleted = 0 AND r.lsn = (SELECT max(x.lsn) FROM records x WHERE x.container = ?1 \
    AND x.collection = r.collection AND x.key = r.key AND x.lsn <= ?2))";

impl Engine<'_> {
    /// Copy one chunk of at most `limit` records (None: the operation's
    /// adaptive chunk size) in one transaction: `INSERT … SELECT` inside
    /// SQLite, the cursor and counters advanced in the same transaction.
    /// Fails with `LeaseLost` (committing nothing) unless `worker` holds a
    /// live lease. The last chunk ends the operation.
    pub fn step(&self, id: &str, worker: &str, limit: Option<i64>) -> Result<StepOutcome> {
        let started = self.env.now_us();
        transaction(self.db, |db| {
            let now = self.env.now_us();
            let op = load(db, id)?
                .ok_or_else(|| Error::not_found(format!("operation {id} not found")))?;
            if op.status != Status::InProgress {
                return Err(Error::state(
                    op.status.as_str(),
                    format!("operation {id} is {}", op.status.as_str()),
                ));
            }
            if op.lease_owner.as_deref() != Some(worker) || op.lease_expires < now {
                return Err(Error::new(
                    ErrorKind::LeaseLost,
                    format!("worker {worker} does not hold the lease on {id}"),
                ));
            }
            let source = containers::by_id(db, op.source)?;
            let target = containers::by_id(db, op.target)?;
            let (Some(_), Some(_)) = (&source, &target) else {
                let what = if source.is_none() {
                    format!("source {}", op.source_ref)
                } else {
                    format!("target {}", op.target_ref)
                };
                let done = self.finish(
                    db,
                    &op,
                    Status::Failed,
                    Some(&format!("the {what} was deleted")),
                    now,
                )?;
                return Ok(StepOutcome {
                    copied: 0,
                    bytes: 0,
                    status: done.status,
                });
            };
            let n = limit.unwrap_or(op.chunk_size).max(1);
            let filter = chunk_filter(op.history);
            let cols = op
                .collections
                .as_ref()
                .map(|c| serde_json::to_string(c).unwrap_or_default());
            let (cc, ck, cl) = op.cursor.clone();
            let base: Vec<Value> = vec![
                op.source.into(),
                op.snapshot_lsn.into(),
                cols.clone().into(),
                cc.into(),
                ck.into(),
                cl.into(),
            ];
            // The chunk's last row: the n-th row after the cursor.
            let mut p = base.clone();
            p.push((n - 1).into());
            let end = one(
                db,
                &format!(
                    "SELECT r.collection, r.key, r.lsn FROM records r WHERE {filter} \
                     AND (r.collection, r.key, r.lsn) > (?4, ?5, ?6) \
                     ORDER BY r.collection, r.key, r.lsn LIMIT 1 OFFSET ?7"
                ),
                &p,
            )?;
            let mut range = String::from("(r.collection, r.key, r.lsn) > (?4, ?5, ?6)");
            let mut p = base.clone();
            if let Some(e) = &end {
                range.push_str(" AND (r.collection, r.key, r.lsn) <= (?7, ?8, ?9)");
                p.push(e.text(0)?.into());
                p.push(e.text(1)?.into());
                p.push(e.i64(2)?.into());
            }
            // Statistics of the chunk per collection, then the copy itself.
            let stats = query(
                db,
                &format!(
                    "SELECT r.collection, count(*), sum(r.size), sum({FINAL_LIVE}), sum({FINAL_LIVE} * r.size) \
                     FROM records r WHERE {filter} AND {range} GROUP BY r.collection"
                ),
                &p,
            )?;
            let mut ins = p.clone();
            ins.push(op.target.into());
            let tparam = ins.len();
            exec(
                db,
                &format!(
                    "INSERT OR IGNORE INTO records (container, collection, key, lsn, deleted, body, size) \
                     SELECT ?{tparam}, r.collection, r.key, r.lsn, r.deleted, r.body, r.size FROM records r \
                     WHERE {filter} AND {range}"
                ),
                &ins,
            )?;
            let mut copied = 0;
            let mut bytes = 0;
            let mut deltas = std::collections::BTreeMap::new();
            for s in &stats {
                let (count, size, live, live_bytes) = (s.i64(1)?, s.i64(2)?, s.i64(3)?, s.i64(4)?);
                copied += count;
                bytes += size;
                deltas.insert(s.text(0)?, (live, live_bytes, count, size));
            }
            apply_stats(db, op.target, &deltas)?;
            let finished_copy = end.is_none();
            let (nc, nk, nl) = match &end {
                Some(e) => (e.text(0)?, e.text(1)?, e.i64(2)?),
                None => op.cursor.clone(),
            };
            // Adapt the chunk size toward the target chunk time.
            let elapsed = (self.env.now_us() - started).max(1);
            let target_us = self.config.target_chunk_us;
            let scaled = (n as f64 * target_us as f64 / elapsed as f64)
                .clamp(n as f64 / 2.0, n as f64 * 2.0) as i64;
            let next_chunk = if limit.is_some() {
                op.chunk_size
            } else {
                scaled.clamp(self.config.min_chunk, self.config.max_chunk)
            };
            exec(
                db,
                "UPDATE operations SET cur_collection = ?2, cur_key = ?3, cur_lsn = ?4, \
                   records_copied = records_copied + ?5, bytes_copied = bytes_copied + ?6, \
                   records_total = max(records_total, records_copied + ?5), bytes_total = max(bytes_total, bytes_copied + ?6), \
                   steps = steps + 1, chunk_size = ?7, copy_us = copy_us + ?8, last_step_at = ?9, updated_at = ?9, \
                   lease_expires = ?10 WHERE id = ?1",
                &[
                    id.into(),
                    nc.into(),
                    nk.into(),
                    nl.into(),
                    copied.into(),
                    bytes.into(),
                    next_chunk.into(),
                    elapsed.into(),
                    now.into(),
                    (now + self.config.lease_us).into(),
                ],
            )?;
            let op = load(db, id)?.ok_or_else(|| Error::corrupt("operation vanished"))?;
            if finished_copy {
                let done = self.finish(db, &op, Status::Succeeded, None, now)?;
                return Ok(StepOutcome {
                    copied,
                    bytes,
                    status: done.status,
                });
            }
            append(db, id, now, "progress", &op.progress_json())?;
            Ok(StepOutcome {
                copied,
                bytes,
                status: op.status,
            })
        })
    }
}
