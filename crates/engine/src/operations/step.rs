//! The chunk step: one transaction that copies at most N rows after the
//! cursor with `INSERT OR IGNORE … SELECT`, updates the target's statistics,
//! the cursor, counters and lease, and ends the operation after the last
//! chunk. A copy and a hydration share it: both read a list of containers
//! (see [`crate::branches`]) in (collection, key, LSN) order, so the cursor
//! means the same thing when a level is dropped between two chunks.

use super::rows::load;
use super::types::{Operation, Status, StepOutcome};
use crate::branches::{self, Arm};
use crate::containers;
use crate::db::{changes, exec, one, query, transaction, Db, Value};
use crate::error::{Error, ErrorKind, Result};
use crate::events::append;
use crate::records::{apply_stats, Delta};
use crate::{Config, Engine};

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
            let chunk = if op.kind == "verify" {
                let seen = super::verify::chunk(db, &op, n)?;
                Chunk {
                    copied: seen.versions,
                    bytes: seen.bytes,
                    end: seen.end,
                }
            } else {
                copy_chunk(db, &op, n)?
            };
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
                if op.kind == "verify" {
                    let report = super::verify::report(db, &op)?;
                    super::verify::store_report(db, &op, &report)?;
                }
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

/// The containers a step reads and whether it keeps the target's
/// statistics: a copy reads the source as of its snapshot through the
/// source's levels and adds what it copies to the target's statistics; a
/// hydration reads the branch's own levels, and the branch's statistics
/// already count everything it reads through.
fn plan(db: &dyn Db, op: &Operation) -> Result<(Vec<Arm>, bool)> {
    if op.kind == "hydrate" {
        let target = containers::by_id(db, op.target)?
            .ok_or_else(|| Error::corrupt("hydration target vanished"))?;
        return Ok((branches::copy_arms(&target.chain), false));
    }
    let source =
        containers::by_id(db, op.source)?.ok_or_else(|| Error::corrupt("copy source vanished"))?;
    let levels = branches::derive_levels(
        &source,
        op.snapshot_lsn,
        op.history,
        op.collections.as_deref(),
    );
    Ok((branches::copy_arms(&levels), true))
}

/// `SELECT {cols} FROM records r WHERE <arm i shows r> AND {range}` for
/// every arm, joined by `UNION` (which also drops a version two containers
/// hold).
pub(super) fn union(arms: &[Arm], cols: &str, range: &str, join: &str) -> String {
    (0..arms.len())
        .map(|i| {
            format!(
                "SELECT {cols} FROM records r WHERE {} AND {range}",
                branches::visible(arms, i)
            )
        })
        .collect::<Vec<_>>()
        .join(join)
}

/// The rows of one chunk: at most `n` rows after `cursor` through `arms`,
/// in `(collection, key, lsn)` order, as an SQL condition on alias `r` with
/// its parameters (`?1`…`?6`).
pub(super) struct ChunkRange {
    /// The chunk's last row (None: the rows run out within `n`).
    pub end: Option<(String, String, i64)>,
    pub sql: String,
    pub params: Vec<Value>,
}

/// The range of the next chunk: its last row is the n-th row after the
/// cursor (an ORDER BY on the compound itself: SQLite merges the arms'
/// index orders and stops at the LIMIT).
pub(super) fn chunk_range(
    db: &dyn Db,
    arms: &[Arm],
    cursor: &(String, String, i64),
    n: i64,
) -> Result<ChunkRange> {
    let (cc, ck, cl) = cursor.clone();
    let after = "(r.collection, r.key, r.lsn) > (?1, ?2, ?3)";
    let end = one(
        db,
        &format!(
            "{} ORDER BY 1, 2, 3 LIMIT 1 OFFSET ?4",
            union(arms, "r.collection, r.key, r.lsn", after, " UNION ")
        ),
        &[
            cc.as_str().into(),
            ck.as_str().into(),
            cl.into(),
            (n - 1).into(),
        ],
    )?
    .map(|e| -> Result<_> { Ok((e.text(0)?, e.text(1)?, e.i64(2)?)) })
    .transpose()?;
    let mut sql = after.to_string();
    let mut params: Vec<Value> = vec![cc.into(), ck.into(), cl.into()];
    if let Some((ec, ek, el)) = &end {
        sql.push_str(" AND (r.collection, r.key, r.lsn) <= (?4, ?5, ?6)");
        params.push(ec.into());
        params.push(ek.into());
        params.push((*el).into());
    }
    Ok(ChunkRange { end, sql, params })
}

/// Statistics of a chunk's rows per collection: versions and their bytes,
/// and the live ones (the newest through `arms` and not a deletion).
pub(super) fn chunk_stats(
    db: &dyn Db,
    arms: &[Arm],
    range: &ChunkRange,
) -> Result<std::collections::BTreeMap<String, Delta>> {
    let live = format!(
        "(r.deleted = 0 AND r.lsn = {})",
        branches::newest(arms, "r.collection", "r.key")
    );
    let rows = query(
        db,
        &format!(
            "SELECT collection, count(*), sum(size), sum(live), sum(live * size) FROM ({}) GROUP BY collection",
            union(
                arms,
                &format!("r.collection, r.key, r.lsn, r.size, {live} AS live"),
                &range.sql,
                " UNION "
            )
        ),
        &range.params,
    )?;
    let mut out = std::collections::BTreeMap::new();
    for s in &rows {
        out.insert(
            s.text(0)?,
            Delta {
                versions: s.i64(1)?,
                version_bytes: s.i64(2)?,
                records: s.i64(3)?,
                bytes: s.i64(4)?,
            },
        );
    }
    Ok(out)
}

/// Copy at most `n` rows after the operation's cursor into its target (and
/// for a copy, add them to the target's statistics).
fn copy_chunk(db: &dyn Db, op: &Operation, n: i64) -> Result<Chunk> {
    let (arms, keep_stats) = plan(db, op)?;
    if arms.is_empty() {
        return Ok(Chunk {
            copied: 0,
            bytes: 0,
            end: None,
        });
    }
    let chunk = chunk_range(db, &arms, &op.cursor, n)?;
    let mut copied = 0;
    let mut bytes = 0;
    if keep_stats {
        let deltas = chunk_stats(db, &arms, &chunk)?;
        for d in deltas.values() {
            copied += d.versions;
            bytes += d.version_bytes;
        }
        apply_stats(db, op.target, &deltas)?;
    }
    let ChunkRange {
        end,
        sql: range,
        params: p,
    } = chunk;
    let tparam = p.len() + 1;
    let mut ins = p;
    ins.push(op.target.into());
    // A copied row keeps when it shows: its own `visible_from`, or its
    // level's `from` when later.
    let parts: Vec<String> = (0..arms.len())
        .map(|i| {
            format!(
                "SELECT ?{tparam}, r.collection, r.key, r.lsn, r.deleted, r.body, r.size, \
                 CASE WHEN {from} > coalesce(r.visible_from, 0) THEN {from} ELSE r.visible_from END \
                 FROM records r WHERE {} AND {range}",
                branches::visible(&arms, i),
                from = arms[i].from
            )
        })
        .collect();
    exec(
        db,
        &format!(
            "INSERT OR IGNORE INTO records (container, collection, key, lsn, deleted, body, size, visible_from) {}",
            parts.join(" UNION ALL ")
        ),
        &ins,
    )?;
    if !keep_stats {
        copied = changes(db)?;
    }
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
