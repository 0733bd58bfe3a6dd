//! Spinoff's engine: versioned records, snapshots, and crash-safe chunked
//! copy operations, over a storage seam. No I/O of its own: it is handed a
//! [`Db`] (one SQLite connection) and an [`Env`] (clock, randomness).
//!
//! Module map:
//! - [`db`]: the seam (`Db`, `Env`, values and rows, transactions);
//! - [`schema`]: tables, indexes and idempotent migrations;
//! - [`lsn`]: the global LSN clock and time → LSN;
//! - [`containers`]: resources (cluster, namespace, service, dataset, database);
//! - [`branches`]: copy-on-write branches: levels, reads through ancestors;
//! - [`imports`]: staged imports of any size, all or nothing, in short transactions;
//! - [`records`]: versioned writes, latest and as-of reads, history, export pages;
//! - [`snapshots`]: named, on-demand and scheduled snapshots;
//! - [`operations`]: the copy state machine, leases, chunked `INSERT … SELECT`,
//!   ticks, hydration, verification (a folder: types, rows, accept, lifecycle,
//!   leases, step, hydrate, verify, tick);
//! - [`events`]: per-operation events and the notification outbox;
//! - [`limits`]: per-tenant quotas and rates, checked inside the guarded transaction;
//! - [`webhooks`]: webhook URL rules (no server-side request forgery) and signatures;
//! - [`owners`]: projects, organizations, environments owned by tenants;
//! - [`retention`]: pruning of superseded history;
//! - [`error`]: the one error type, every kind documented;
//! - `native` (feature `native`): the seam over rusqlite, for tests, benchmarks and tools.
//!
//! Invariants are listed in ARCHITECTURE.md ("Engine").

pub mod chain;
pub mod containers;
pub mod db;
pub mod handle;
pub mod deletion;
pub mod error;
pub mod events;
pub mod imports;
pub mod levels;
pub mod limits;
pub mod lookup;
pub mod lsn;
#[cfg(feature = "native")]
pub mod native;
pub mod operations;
pub mod owners;
pub mod reads;
pub mod records;
pub mod retention;
pub mod schema;
pub mod snapshots;
pub mod staging;
pub mod stats;
pub mod util;
pub mod webhooks;

pub use containers::{Container, ContainerState};
pub use db::{Db, DbError, Env, LockWait, Maintenance, Row, TxMode, Value};
pub use handle::{Config, Engine};
pub use error::{Error, ErrorKind, Result};
pub use events::{Event, Notification};
pub use imports::Import;
pub use operations::{
    CancelPolicy, CloneMode, CloneRequest, OpFilter, OpKind, Operation, Status, StepOutcome, Strategy,
    TickReport,
};
pub use owners::Owned;
pub use reads::{AsOf, Version};
pub use records::{Committed, Write};
pub use stats::CollectionStats;
pub use snapshots::Snapshot;

