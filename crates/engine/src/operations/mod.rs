//! Copy operations: create, read, list, cancel, retry, and the chunked,
//! leased copy that moves them forward.
//!
//! State machine: `pending → in_progress → succeeded | failed`,
//! `pending → canceled`, `in_progress → canceled` (only under
//! [`CancelPolicy::RemoveTarget`]), `failed → pending` (retry).
//!
//! Files:
//! - `types`: the operation types (strategy, status, request, operation, reports);
//! - `rows`: row mapping, loading and listing;
//! - `accept`: accepting a copy (`create_operation`) and destination checks;
//! - `lifecycle`: retry, fail and `finish`; the one-active-per-key rule
//!   (canceling, which deletes a copy's target, is `crate::deletion`'s);
//! - `leases`: claim, release, next runnable;
//! - `chunks`: a chunk's range and statistics (shared by `step` and `verify`);
//! - `step`: the chunk step and its chunk-size rule;
//! - `hydrate`: materialising a branch (a `hydrate` operation);
//! - `verify`: an fsck of one container (a `verify` operation): counts against statistics;
//! - `tick`: the worker tick and `nudge`.

mod accept;
mod chunks;
mod hydrate;
mod leases;
mod lifecycle;
mod rows;
mod step;
mod tick;
mod types;
mod verify;

pub use accept::check_destination;
pub(crate) use hydrate::cancel_for_deleted;
pub(crate) use rows::load_for;
pub(crate) use types::IN_PLACE;
pub use types::{
    CancelPolicy, CloneMode, CloneRequest, OpFilter, OpKind, Operation, Status, StepOutcome,
    Strategy, TickReport,
};
