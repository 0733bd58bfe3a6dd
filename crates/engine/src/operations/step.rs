//! The chunk step: one transaction that copies at most N rows after the
//! cursor with `INSERT OR IGNORE … SELECT`, updates the target's statistics,
//! the cursor, counters and lease, and ends the operation after the last
//! chunk. A copy and a hydration share it: both read a list of containers
//! (see [`crate::chain`]) in (collection, key, LSN) order, so the cursor
//! means the same thing when a level is dropped between two chunks.

use super::chunks::{chunk_range, chunk_stats, ChunkRange};
use super::rows::load;
use super::types::{OpKind, Operation, Status, StepOutcome};
use crate::chain::{self, Arm};
use crate::containers;
use crate::db::{exec, transaction, Db};
use crate::error::{Error, ErrorKind, Result};
use crate::events::append;
use crate::handle::{Config, Engine};
use crate::{records, stats};

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
            let chunk = if op.op_kind() == OpKind::Verify {
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
                &format!("UPDATE operations SET cur_collection = ?2, cur_key = ?3, cur_lsn = ?4, \
                   records_copied = records_copied + ?5, bytes_copied = bytes_copied + ?6, \
                   records_total = {max}(records_total, records_copied + ?5), \
                   bytes_total = {max}(bytes_total, bytes_copied + ?6), \
                   steps = steps + 1, chunk_size = ?7, copy_us = copy_us + ?8, last_step_at = ?9, updated_at = ?9, \
                   lease_expires = ?10 WHERE id = ?1", max = db.dialect().greatest()),
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
                if op.op_kind() == OpKind::Verify {
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
    if op.op_kind() == OpKind::Hydrate {
        let target = containers::by_id(db, op.target)?
            .ok_or_else(|| Error::corrupt("hydration target vanished"))?;
        return Ok((chain::copy_arms(&target.chain), false));
    }
    let source =
        containers::by_id(db, op.source)?.ok_or_else(|| Error::corrupt("copy source vanished"))?;
    // A masked copy writes what its mask shows.
    let mask = containers::by_id(db, op.target)?.and_then(|t| t.mask);
    let levels = chain::derive_levels(
        source.id,
        &source.chain,
        op.snapshot_lsn,
        op.history,
        op.collections.as_deref(),
        mask.as_ref(),
    );
    Ok((chain::copy_arms(&levels), true))
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
        stats::apply(db, op.target, &deltas)?;
    }
    let ChunkRange { end, sql, params } = chunk;
    let written = records::copy_rows(db, op.target, &arms, &sql, &params)?;
    if !keep_stats {
        copied = written;
    }
    Ok(Chunk { copied, bytes, end })
}

#[cfg(test)]
mod tests {
    use super::next_chunk_size;
    use crate::handle::Config;

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
