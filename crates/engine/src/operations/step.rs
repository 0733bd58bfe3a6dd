//! The chunk step: one transaction that copies at most N rows after the
//! cursor with `INSERT OR IGNORE … SELECT`, updates the target's statistics,
//! the cursor, counters and lease, and ends the operation after the last
//! chunk.

use super::rows::load;
use super::types::{Operation, Status, StepOutcome};
use crate::containers;
use crate::db::{exec, one, query, transaction, Db, Value};
use crate::error::{Error, ErrorKind, Result};
use crate::events::append;
use crate::records::{apply_stats, Delta};
use crate::{Config, Engine};

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
            check_runnable_by(&op, worker, now)?;
            if let Some(what) = missing_container(db, &op)? {
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
            }
            let n = limit.unwrap_or(op.chunk_size).max(1);
            let chunk = copy_chunk(db, &op, n)?;
            let finished_copy = chunk.end.is_none();
            let (nc, nk, nl) = chunk.end.unwrap_or_else(|| op.cursor.clone());
            // Adapt the chunk size toward the target chunk time (an explicit
            // limit leaves it as it was).
            let elapsed = (self.env.now_us() - started).max(1);
            let next_chunk = if limit.is_some() {
                op.chunk_size
            } else {
                next_chunk_size(n, elapsed, &self.config)
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
                    chunk.copied.into(),
                    chunk.bytes.into(),
                    next_chunk.into(),
                    elapsed.into(),
                    now.into(),
                    (now + self.config.lease_us).into(),
                ],
            )?;
            let op = load(db, id)?.ok_or_else(|| Error::corrupt("operation vanished"))?;
            let status = if finished_copy {
                self.finish(db, &op, Status::Succeeded, None, now)?.status
            } else {
                append(db, id, now, "progress", &op.progress_json())?;
                op.status
            };
            Ok(StepOutcome {
                copied: chunk.copied,
                bytes: chunk.bytes,
                status,
            })
        })
    }
}

/// The next adaptive chunk size after a chunk of `n` records took
/// `elapsed_us`: `n` scaled toward `config.target_chunk_us`, by at most half
/// or double per step, then kept within `[min_chunk, max_chunk]`.
pub(super) fn next_chunk_size(n: i64, elapsed_us: i64, config: &Config) -> i64 {
    let elapsed = elapsed_us.max(1) as f64;
    let n_f = n as f64;
    let scaled = (n_f * config.target_chunk_us as f64 / elapsed).clamp(n_f / 2.0, n_f * 2.0) as i64;
    scaled.clamp(config.min_chunk, config.max_chunk)
}

/// `InvalidState` unless the operation is in progress; `LeaseLost` unless
/// `worker` holds a live lease on it.
fn check_runnable_by(op: &Operation, worker: &str, now: i64) -> Result<()> {
    let id = &op.id;
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
    Ok(())
}

/// "source …" or "target …" when that container was deleted.
fn missing_container(db: &dyn Db, op: &Operation) -> Result<Option<String>> {
    let source = containers::by_id(db, op.source)?;
    let target = containers::by_id(db, op.target)?;
    Ok(if source.is_none() {
        Some(format!("source {}", op.source_ref))
    } else if target.is_none() {
        Some(format!("target {}", op.target_ref))
    } else {
        None
    })
}

/// What [`copy_chunk`] copied, and the chunk's last row (None: the copy
/// reached the end of the source).
struct Chunk {
    copied: i64,
    bytes: i64,
    end: Option<(String, String, i64)>,
}

/// Copy at most `n` rows after the operation's cursor into its target and
/// add them to the target's statistics.
fn copy_chunk(db: &dyn Db, op: &Operation, n: i64) -> Result<Chunk> {
    let filter = chunk_filter(op.history);
    let cols = op
        .collections
        .as_ref()
        .map(|c| serde_json::to_string(c).unwrap_or_default());
    let (cc, ck, cl) = op.cursor.clone();
    let base: Vec<Value> = vec![
        op.source.into(),
        op.snapshot_lsn.into(),
        cols.into(),
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
    )?
    .map(|e| -> Result<_> { Ok((e.text(0)?, e.text(1)?, e.i64(2)?)) })
    .transpose()?;
    let mut range = String::from("(r.collection, r.key, r.lsn) > (?4, ?5, ?6)");
    let mut p = base;
    if let Some((ec, ek, el)) = &end {
        range.push_str(" AND (r.collection, r.key, r.lsn) <= (?7, ?8, ?9)");
        p.push(ec.into());
        p.push(ek.into());
        p.push((*el).into());
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
    let mut ins = p;
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
        let d = Delta {
            records: live,
            bytes: live_bytes,
            versions: count,
            version_bytes: size,
        };
        deltas.insert(s.text(0)?, d);
    }
    apply_stats(db, op.target, &deltas)?;
    Ok(Chunk { copied, bytes, end })
}

#[cfg(test)]
mod tests {
    use super::next_chunk_size;
    use crate::Config;

    fn config() -> Config {
        Config {
            min_chunk: 16,
            max_chunk: 20_000,
            target_chunk_us: 100_000,
            ..Config::default()
        }
    }

    #[test]
    fn a_chunk_on_target_time_keeps_its_size() {
        assert_eq!(next_chunk_size(1_000, 100_000, &config()), 1_000);
    }

    #[test]
    fn a_chunk_scales_toward_the_target_time() {
        // Took 80% of the target: 25% more; 125% of it: 20% less.
        assert_eq!(next_chunk_size(1_000, 80_000, &config()), 1_250);
        assert_eq!(next_chunk_size(1_000, 125_000, &config()), 800);
    }

    #[test]
    fn a_chunk_at_most_doubles_or_halves_per_step() {
        assert_eq!(next_chunk_size(1_000, 1_000, &config()), 2_000);
        assert_eq!(next_chunk_size(1_000, 0, &config()), 2_000);
        assert_eq!(next_chunk_size(1_000, 10_000_000, &config()), 500);
    }

    #[test]
    fn a_chunk_stays_within_the_configured_bounds() {
        assert_eq!(next_chunk_size(15_000, 1_000, &config()), 20_000);
        assert_eq!(next_chunk_size(20, 10_000_000, &config()), 16);
    }
}
