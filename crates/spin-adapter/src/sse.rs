//! One writer of an operation's events as `text/event-stream`, for every
//! family that streams them (the data API's `events`, Sanity's `listen`).
//! The writer polls the event log, sends new events in the family's format
//! (a [`Feed`]), makes the same bounded progress a status read does while
//! nothing happens, sends a keep-alive comment after 15 quiet seconds, and
//! ends when the operation has ended (or after ten minutes).

use std::time::{Duration, Instant};

use engine::{Engine, Event, Operation};

use crate::http::Chunks;
use crate::store::{SpinDb, SpinEnv};

/// Events read per poll.
const BATCH: i64 = 100;
/// The longest a stream stays open.
const MAX_OPEN: Duration = Duration::from_secs(600);
/// Quiet time before a keep-alive comment.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Pause between polls when nothing moved.
const POLL: Duration = Duration::from_millis(200);

/// A family's side of an event stream: its event format and its progress.
pub trait Feed: 'static {
    /// Sent before any event (Sanity's `welcome`).
    fn opening(&mut self) -> Option<String> {
        None
    }

    /// Append `ev` to `out` in the family's format. `last`: the event ends
    /// the operation, which is no longer active; nothing follows it.
    fn event(&mut self, ev: &Event, last: bool, out: &mut String);

    /// Sent when the operation is found ended with no event left to send.
    fn closing(&mut self, _op: &Operation) -> Option<String> {
        None
    }

    /// Bounded progress on the operation while the stream waits (whether
    /// anything moved).
    fn nudge(&mut self, e: &Engine, id: &str) -> bool;
}

/// Whether an event kind ends an operation.
fn terminal(kind: &str) -> bool {
    matches!(kind, "succeeded" | "failed" | "canceled")
}

/// The stream of operation `id`'s events after sequence `after`.
pub fn stream(db: SpinDb, id: String, mut after: i64, mut feed: impl Feed) -> Chunks {
    let started = Instant::now();
    let mut quiet_since = Instant::now();
    let mut opened = false;
    let mut ended = false;
    Box::new(move || loop {
        if ended || started.elapsed() > MAX_OPEN {
            return Ok(None);
        }
        if !opened {
            opened = true;
            if let Some(s) = feed.opening() {
                return Ok(Some(s.into_bytes()));
            }
        }
        // A database that fails mid-stream ends it with an error, never
        // as if the operation had nothing more to say.
        let e = Engine::open(&db, &SpinEnv)?;
        let events = e.events(&id, after, BATCH)?;
        let op = e.operation_by_id(&id)?;
        let active = op.as_ref().is_some_and(|o| o.status.is_active());
        if !events.is_empty() {
            let mut out = String::new();
            for ev in &events {
                after = ev.seq;
                let last = terminal(&ev.kind) && !active;
                feed.event(ev, last, &mut out);
                if last {
                    ended = true;
                    break;
                }
            }
            quiet_since = Instant::now();
            return Ok(Some(out.into_bytes()));
        }
        let Some(op) = op else {
            return Err(engine::Error::not_found(format!("operation {id} vanished")));
        };
        if !active {
            ended = true;
            return Ok(feed.closing(&op).map(String::into_bytes));
        }
        if !feed.nudge(&e, &id) {
            if quiet_since.elapsed() > KEEP_ALIVE {
                quiet_since = Instant::now();
                return Ok(Some(b": keep-alive\n\n".to_vec()));
            }
            std::thread::sleep(POLL);
        }
    })
}

/// One SSE message: `id:` when given, `event:`, `data:` (one line of JSON).
pub fn message(id: Option<i64>, event: &str, data: &serde_json::Value) -> String {
    match id {
        Some(id) => format!("id: {id}\nevent: {event}\ndata: {data}\n\n"),
        None => format!("event: {event}\ndata: {data}\n\n"),
    }
}
