//! When a statement runs again: the adapter's whole retry policy over
//! Spin's SQLite interface, as one pure function ([`Tries::after`]) that a
//! test can drive without a server.
//!
//! Two layers retry, and each does only its own part:
//! - **here, one statement.** A read the server interrupted
//!   (SQLITE_INTERRUPT and nothing more) runs again where it is, inside a
//!   transaction too: an interrupted read leaves the transaction as it was.
//!   Outside a transaction, a statement the server gave up on otherwise
//!   (an expired stream, a dropped connection, no connection free) runs
//!   again on a fresh connection, and one that a remote server refused as
//!   busy (sqld refuses writers while a checkpoint holds its write queue)
//!   waits and runs again, as SQLite's `busy_timeout` waits on a file.
//!   Inside a transaction nothing else runs again here: the error goes up.
//! - **the engine, one transaction** (`engine::db::transaction` and
//!   `read`): a transaction the database gave up on (`Unavailable`) runs
//!   again from its `BEGIN`, up to [`engine::db::TRANSACTION_ATTEMPTS`]
//!   times. `Busy` is not run again there: it answers 503 with
//!   `Retry-After`.
//!
//! Whether a statement reads is what the engine declares (`Db::select`
//! against `Db::execute`); whether a transaction is open is what it
//! opened (`Db::begin`, `commit`, `rollback`). Neither is read from SQL
//! text. The server's error arrives as a message (Spin's `io(string)`):
//! [`Failure::of`] is the one place that reads one.
//!
//! **The worst case**, from a request's point of view: this adapter sleeps
//! only before a statement outside a transaction that a remote server
//! answered busy, at most [`REMOTE_BUSY_WAIT`] per statement. Inside a
//! transaction it never sleeps. A write transaction's only statement
//! outside one is its `BEGIN IMMEDIATE`, and the engine runs a transaction
//! at most `TRANSACTION_ATTEMPTS` times, so one transaction sleeps at most
//! [`worst_case_sleep_per_transaction`] (3 × 5 s = 15 s) before `Busy` or
//! `Unavailable` reaches the request; besides sleeping, it sends each
//! statement at most [`STATEMENT_ATTEMPTS`] times per run, each bounded by
//! the server's own timeouts. A request runs one to three transactions
//! (a worker tick stops at its budget, and at the first `Busy`).

use std::time::Duration;

use engine::DbError;

/// How long, in all, a statement outside a transaction waits while a
/// remote server answers SQLITE_BUSY at once.
pub const REMOTE_BUSY_WAIT: Duration = Duration::from_secs(5);

/// Runs of one statement, the first included.
pub const STATEMENT_ATTEMPTS: u32 = 5;

/// The first pause between two runs of a busy statement; it doubles up to
/// [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(10);
const MAX_PAUSE: Duration = Duration::from_millis(250);

/// The longest this adapter sleeps within one engine transaction, all its
/// runs counted.
pub fn worst_case_sleep_per_transaction() -> Duration {
    REMOTE_BUSY_WAIT * engine::db::TRANSACTION_ATTEMPTS
}

/// What the statement is, as the engine declared it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Statement {
    /// `Db::select`: it only reads.
    Read,
    /// `Db::execute`, `Db::begin`: it writes, or opens a transaction.
    Write,
}

/// What went wrong, as far as running again is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The server interrupted the statement and nothing more: the stream
    /// and any transaction on it are intact.
    Interrupted,
    /// The server gave up on the stream (expired, timed out, dropped, no
    /// connection free): only a fresh connection helps.
    Gone,
    /// A remote server refused the statement as busy: nothing ran.
    RemoteBusy,
    /// Anything else: not run again here.
    Final,
}

impl Failure {
    /// Classify a backend error (already typed by `store::map_err`; the
    /// message tells an interruption from a lost stream, and a remote
    /// server's busy from a local file's, which waited its `busy_timeout`
    /// already).
    pub fn of(e: &DbError) -> Failure {
        match e {
            DbError::Unavailable(m) => {
                let l = m.to_ascii_lowercase();
                if (l.contains("sqlite_interrupt") || l.contains("interrupted"))
                    && !l.contains("transaction_timeout")
                    && !l.contains("stream_expired")
                {
                    Failure::Interrupted
                } else {
                    Failure::Gone
                }
            }
            // The libsql client names its protocol, Hrana, in every error
            // it reports; a local file's SQLite never does.
            DbError::Busy(m) if m.to_ascii_lowercase().contains("hrana") => Failure::RemoteBusy,
            _ => Failure::Final,
        }
    }
}

/// What to do after a failed run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Run it again on the same connection.
    Again,
    /// Run it again on a fresh connection.
    Reconnect,
    /// Sleep this long, then run it again.
    Sleep(Duration),
    /// Give the error to the caller. `poisoned`: the connection's stream is
    /// gone, so the next statement outside a transaction (or the rollback)
    /// must start on a fresh one.
    Fail { poisoned: bool },
}

/// The runs of one statement so far.
#[derive(Debug, Clone, Copy)]
pub struct Tries {
    runs: u32,
    slept: Duration,
    pause: Duration,
}

impl Default for Tries {
    fn default() -> Tries {
        Tries {
            runs: 1,
            slept: Duration::ZERO,
            pause: FIRST_PAUSE,
        }
    }
}

impl Tries {
    /// The decision after a run failed with `failure`: `in_tx` when a
    /// transaction is open on the connection, `never_wait` under
    /// `LockWait::Never` (a busy database is answered at once).
    pub fn after(&mut self, failure: Failure, statement: Statement, in_tx: bool, never_wait: bool) -> Next {
        let runs_left = self.runs < STATEMENT_ATTEMPTS;
        match failure {
            Failure::Interrupted if statement == Statement::Read && runs_left => {
                self.runs += 1;
                Next::Again
            }
            Failure::Interrupted | Failure::Gone => {
                if in_tx || !runs_left {
                    return Next::Fail { poisoned: true };
                }
                self.runs += 1;
                Next::Reconnect
            }
            Failure::RemoteBusy if !in_tx && !never_wait && self.slept < REMOTE_BUSY_WAIT => {
                let pause = self.pause.min(REMOTE_BUSY_WAIT - self.slept);
                self.slept += pause;
                self.pause = (self.pause * 2).min(MAX_PAUSE);
                Next::Sleep(pause)
            }
            Failure::RemoteBusy | Failure::Final => Next::Fail { poisoned: false },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPIRED: &str = "Hrana: `api error: `{\"message\":\"The stream has expired due to inactivity\",\"code\":\"STREAM_EXPIRED\"}``";
    const REMOTE_BUSY: &str = "Hrana: `cursor error: `error at step 0: (error code: SQLITE_BUSY) `SQLite error: database is locked```";
    const INTERRUPT: &str = "SQLite error: SQLITE_INTERRUPT: interrupted";

    #[test]
    fn failures_are_told_apart() {
        assert_eq!(Failure::of(&DbError::Unavailable(INTERRUPT.into())), Failure::Interrupted);
        assert_eq!(Failure::of(&DbError::Unavailable(EXPIRED.into())), Failure::Gone);
        assert_eq!(
            Failure::of(&DbError::Unavailable(
                "Hrana: TRANSACTION_TIMEOUT Transaction timed out (interrupted)".into()
            )),
            Failure::Gone
        );
        assert_eq!(Failure::of(&DbError::Busy(REMOTE_BUSY.into())), Failure::RemoteBusy);
        assert_eq!(Failure::of(&DbError::Busy("database is locked".into())), Failure::Final);
        assert_eq!(Failure::of(&DbError::Other("disk I/O error".into())), Failure::Final);
    }

    #[test]
    fn an_interrupted_read_runs_again_in_place_even_inside_a_transaction() {
        let mut t = Tries::default();
        for _ in 1..STATEMENT_ATTEMPTS {
            assert_eq!(t.after(Failure::Interrupted, Statement::Read, true, false), Next::Again);
        }
        assert_eq!(
            t.after(Failure::Interrupted, Statement::Read, true, false),
            Next::Fail { poisoned: true }
        );
    }

    #[test]
    fn a_write_is_never_run_again_inside_a_transaction() {
        for f in [Failure::Interrupted, Failure::Gone] {
            assert_eq!(
                Tries::default().after(f, Statement::Write, true, false),
                Next::Fail { poisoned: true }
            );
        }
        assert_eq!(
            Tries::default().after(Failure::RemoteBusy, Statement::Write, true, false),
            Next::Fail { poisoned: false }
        );
    }

    #[test]
    fn outside_a_transaction_a_lost_stream_reconnects_a_bounded_number_of_times() {
        let mut t = Tries::default();
        let mut reconnects = 0;
        while t.after(Failure::Gone, Statement::Write, false, false) == Next::Reconnect {
            reconnects += 1;
        }
        assert_eq!(reconnects, STATEMENT_ATTEMPTS - 1);
    }

    #[test]
    fn a_busy_server_is_waited_for_at_most_the_busy_wait_then_failed() {
        let mut t = Tries::default();
        let mut slept = Duration::ZERO;
        loop {
            match t.after(Failure::RemoteBusy, Statement::Write, false, false) {
                Next::Sleep(d) => slept += d,
                Next::Fail { poisoned: false } => break,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(slept, REMOTE_BUSY_WAIT);
        // Under LockWait::Never, and inside a transaction, not at all.
        assert_eq!(
            Tries::default().after(Failure::RemoteBusy, Statement::Write, false, true),
            Next::Fail { poisoned: false }
        );
    }

    /// The documented worst case, played out: a server that keeps a
    /// writer busy until just before the wait runs out, then gives up on
    /// the transaction at its commit, every time. The engine runs the
    /// transaction `TRANSACTION_ATTEMPTS` times; this adapter's sleeps add
    /// up to the bound and not past it.
    #[test]
    fn one_transaction_sleeps_at_most_the_documented_worst_case() {
        let mut slept = Duration::ZERO;
        for _run in 0..engine::db::TRANSACTION_ATTEMPTS {
            // BEGIN IMMEDIATE, outside a transaction: busy every time it
            // may still wait.
            let mut begin = Tries::default();
            while let Next::Sleep(d) = begin.after(Failure::RemoteBusy, Statement::Write, false, false) {
                slept += d;
            }
            // (The last BEGIN succeeds.) Then the commit, inside it: the
            // server gave up; no sleep, the error goes up to the engine.
            assert_eq!(
                Tries::default().after(Failure::Gone, Statement::Write, true, false),
                Next::Fail { poisoned: true }
            );
        }
        assert_eq!(slept, worst_case_sleep_per_transaction());
        assert_eq!(worst_case_sleep_per_transaction(), Duration::from_secs(15));
    }
}
