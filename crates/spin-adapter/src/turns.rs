//! Turns at the write lock of a local file. The worker writes in chunks
//! of up to ~100 ms, one after another; a request that needs the write lock
//! meanwhile waits in SQLite's busy handler, which polls with growing
//! sleeps (up to 100 ms apart) and so mostly misses the instant between
//! two chunks: a branch start or a reset could wait seconds behind a large
//! copy. So the worker, before each chunk, says it is at work
//! ([`pause_for_waiting`] sets [`ACTIVE`]) and pauses while a request's
//! fresh mark is there, at most [`MAX_PAUSE`]; a request's write
//! transaction, while the worker is at work ([`worker_active`]), leaves a
//! mark before it waits for the lock ([`announce`]) and takes it back once
//! its transaction ends ([`withdraw`]). A status read's bounded progress
//! (`Engine::nudge`) skips its chunk while a mark is there ([`waiting`]);
//! and while requests have written beside the worker lately
//! ([`contended_within`]) it keeps its chunks short, so that a request's
//! wait for the one under way is short too.
//!
//! Only a hint about scheduling: no data passes here, and a key-value error
//! costs at most the wait it would have saved, so errors are ignored. It
//! adds no statement to the database: a remote server (sqld) queues writers
//! itself and is left alone.

use std::time::{Duration, Instant};

use spin_sdk::key_value::Store;

/// The key-value key holding the newest waiting request's mark (µs).
const KEY: &str = "spinoff:writer-waiting";

/// When the worker last started a chunk (µs).
const ACTIVE: &str = "spinoff:worker-active";

/// The worker counts as at work this long after its last chunk began.
const ACTIVE_FOR: Duration = Duration::from_secs(1);

/// When a request last waited (µs): kept, unlike [`KEY`].
const SEEN: &str = "spinoff:writer-waited-at";

/// A mark older than this is stale: its request got the lock and ended, or
/// died, without taking it back.
const FRESH: Duration = Duration::from_millis(300);

/// The longest the worker pauses before one chunk.
pub const MAX_PAUSE: Duration = Duration::from_millis(200);

/// How often a pausing worker looks again.
const LOOK_EVERY: Duration = Duration::from_millis(2);

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Say that a request is about to wait for the write lock; its mark, to
/// withdraw.
///
/// Every failure in this module (a key-value store that cannot be opened
/// or answers an error, a mark that is not a number) becomes "no turn":
/// these keys carry only scheduling hints, never user data. Without a
/// turn a request waits for the lock as it would without this module (the
/// busy timeout), and the worker does not pause; nothing is lost or
/// skipped, only the fairness the marks add.
pub fn announce() -> Option<i64> {
    let mark = now_us();
    let store = Store::open_default().ok()?;
    store.set(KEY, mark.to_string().as_bytes()).ok()?;
    let _ = store.set(SEEN, mark.to_string().as_bytes());
    Some(mark)
}

/// Whether `key` holds a time within `d` of now.
fn within(key: &str, d: Duration) -> bool {
    let Ok(store) = Store::open_default() else {
        return false;
    };
    match store.get(key) {
        Ok(Some(v)) => std::str::from_utf8(&v)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .is_some_and(|m| now_us() - m < d.as_micros() as i64),
        _ => false,
    }
}

/// Whether a request waited for the write lock within `d`.
pub fn contended_within(d: Duration) -> bool {
    within(SEEN, d)
}

/// Whether the worker is at work: a request then takes a turn.
pub fn worker_active() -> bool {
    within(ACTIVE, ACTIVE_FOR)
}

/// Take `mark` back (unless a later request's replaced it).
pub fn withdraw(mark: i64) {
    let Ok(store) = Store::open_default() else {
        return;
    };
    if let Ok(Some(v)) = store.get(KEY) {
        if v == mark.to_string().as_bytes() {
            let _ = store.delete(KEY);
        }
    }
}

/// The newest mark, when it is fresh.
fn fresh_mark(store: &Store) -> Option<i64> {
    let v = store.get(KEY).ok()??;
    let m = std::str::from_utf8(&v).ok()?.parse::<i64>().ok()?;
    (now_us() - m < FRESH.as_micros() as i64).then_some(m)
}

/// Whether a request waits for the write lock now (a fresh mark).
pub fn waiting() -> bool {
    Store::open_default().ok().is_some_and(|s| fresh_mark(&s).is_some())
}

/// The worker, before a chunk: say it is at work, then wait while a
/// request's fresh mark is there (at most [`MAX_PAUSE`]). Returns how long
/// it paused.
pub fn pause_for_waiting() -> Duration {
    let Ok(store) = Store::open_default() else {
        return Duration::ZERO;
    };
    let _ = store.set(ACTIVE, now_us().to_string().as_bytes());
    let started = Instant::now();
    while started.elapsed() < MAX_PAUSE && fresh_mark(&store).is_some() {
        std::thread::sleep(LOOK_EVERY);
    }
    started.elapsed()
}
