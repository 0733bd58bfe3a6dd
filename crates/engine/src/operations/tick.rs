//! Moving operations forward: the worker tick (round-robin under a time
//! budget) and `nudge` (bounded progress from a status read).

use super::rows::load;
use super::types::{Status, TickReport};
use crate::db::{LockWait, Maintenance};
use crate::error::{Error, ErrorKind, Result};
use crate::handle::Engine;
use crate::util::new_id;

impl Engine<'_> {
    /// One worker tick: step runnable operations round-robin until
    /// `budget_us` is spent, then give back every lease taken. A storage
    /// error fails the operation it hit (retry resumes it); `Busy` ends the
    /// tick early with nothing lost.
    pub fn tick(&self, worker: &str, budget_us: i64) -> Result<TickReport> {
        let deadline = self.env.now_us() + budget_us;
        // Chunks move many records: a local file gets a larger page cache
        // (best effort; a remote backend is only slower without it).
        let _ = self.db.maintain(Maintenance::BulkWork);
        let mut report = TickReport::default();
        let mut held: Vec<String> = Vec::new();
        let mut last_step = 0i64;
        let result = (|| -> Result<()> {
            // Stop when the next chunk, as long as the last one, would overrun.
            while self.env.now_us() + last_step < deadline {
                // A request waiting for the write lock goes before the next chunk.
                self.db.yield_to_writers();
                let step_started = self.env.now_us();
                let Some(id) = self.next_runnable(worker)? else {
                    break;
                };
                if !self.claim(&id, worker)? {
                    continue;
                }
                if !held.contains(&id) {
                    held.push(id.clone());
                }
                let stepped = self.step(&id, worker, None);
                last_step = self.env.now_us() - step_started;
                match stepped {
                    Ok(o) => {
                        report.steps += 1;
                        report.records_copied += o.copied;
                        match o.status {
                            Status::Succeeded => report.finished.push(id),
                            Status::Failed => report.failed.push(id),
                            _ => {}
                        }
                    }
                    Err(e) if e.is_retryable() => return Err(e),
                    Err(e) if e.kind == ErrorKind::LeaseLost => continue,
                    Err(e) if matches!(e.kind, ErrorKind::InvalidState { .. }) => continue,
                    Err(e) => {
                        self.fail(&id, &e.message)?;
                        report.failed.push(id);
                    }
                }
            }
            Ok(())
        })();
        for id in &held {
            let _ = self.release(id, worker);
        }
        result.map(|()| report)
    }

    /// Bounded progress on one operation from a status read, when it is
    /// runnable and no worker holds it: one chunk of at most
    /// [`Config::nudge_records`](crate::handle::Config::nudge_records) records.
    /// Returns whether a chunk ran.
    pub fn nudge(&self, id: &str) -> Result<bool> {
        // A request waiting for the write lock goes first: a status read's
        // progress is a courtesy, never a cause of waiting.
        if self.db.writers_waiting() {
            return Ok(false);
        }
        // A plain read first (WAL: never waits for a writer): when a worker
        // holds the operation, a reader does not queue for the write lock.
        match load(self.db, id)? {
            Some(op)
                if op.status.is_active()
                    && (op.lease_owner.is_none() || op.lease_expires < self.env.now_us()) => {}
            _ => return Ok(false),
        }
        let worker = format!("reader-{}", new_id(self.env));
        // A reader never queues for the write lock: while a worker commits a
        // chunk (of this operation or another), claiming and stepping give
        // up at once instead of waiting out the backend's lock wait. The
        // wait is restored before the release, which must not be skipped.
        let _ = self.db.lock_wait(LockWait::Never);
        let restore = || {
            let _ = self.db.lock_wait(LockWait::Default);
        };
        match self.claim(id, &worker) {
            Ok(true) => {}
            Ok(false)
            | Err(Error {
                kind: ErrorKind::Busy,
                ..
            }) => {
                restore();
                return Ok(false);
            }
            Err(e) => {
                restore();
                return Err(e);
            }
        }
        let r = self.step(id, &worker, Some(self.config.nudge_records));
        restore();
        let _ = self.release(id, &worker);
        match r {
            Ok(_) => Ok(true),
            Err(e)
                if matches!(
                    e.kind,
                    ErrorKind::Busy
                        | ErrorKind::Unavailable
                        | ErrorKind::LeaseLost
                        | ErrorKind::InvalidState { .. }
                ) =>
            {
                Ok(false)
            }
            Err(e) => {
                self.fail(id, &e.message)?;
                Ok(true)
            }
        }
    }
}
