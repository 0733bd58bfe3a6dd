//! Spinoff's engine: versioned records, snapshots, and crash-safe chunked
//! copy operations, over a storage seam. No I/O of its own: it is handed a
//! [`Db`] (one connection to SQLite or PostgreSQL) and an [`Env`] (clock, randomness).
//!
//! Module map, floor by floor from the top (a module uses only lower
//! floors; each table has one writer: ARCHITECTURE.md, "Engine layers",
//! held by `tests/house.rs`):
//! - [`merging`]: merges too large for one transaction, in chunks the
//!   worker advances, visible at once;
//! - [`staging`]: staged imports of any size, all or nothing, in short transactions;
//!   [`reset`]: a resource reads its parent again, under the same name, in O(1);
//! - [`deletion`]: the one cascade: deleting a container and what follows,
//!   the purge, canceling an operation;
//! - [`merge`]: a branch's changes applied onto its parent, conflicts detected;
//! - [`operations`]: the copy state machine, leases, chunked `INSERT … SELECT`,
//!   ticks, hydration, verification (a folder: types, rows, chunks, accept,
//!   lifecycle, leases, step, hydrate, verify, tick);
//! - [`retention`]: pruning of superseded history;
//! - [`records`]: every write to `records`; [`reads`]: as-of reads, history,
//!   list and export pages; [`diff`]: what differs between two sides, key
//!   by key, at the cost of what changed;
//! - [`imports`]: the import rows; [`snapshots`]: named, on-demand and scheduled snapshots;
//! - [`containers`]: resources (cluster, namespace, service, dataset, database);
//! - [`levels`]: what a copy-on-write branch reads through, and the one
//!   `create_branch`; [`events`]: per-operation events and the notification
//!   outbox; [`owners`]: projects, organizations, environments owned by tenants;
//! - [`handle`]: [`Engine`] and [`Config`];
//! - [`stats`]: per-collection statistics; [`lookup`]: the one latest-version
//!   lookup through a branch's arms; [`limits`]: per-tenant quotas and rates;
//!   `native` (feature `native`): the seam over rusqlite, for tests,
//!   benchmarks and tools;
//! - [`chain`]: levels and arms as values, and their SQL (pure);
//!   [`lsn`]: the global LSN clock and time → LSN; [`schema`]: tables,
//!   indexes and idempotent migrations; [`util`]: validation, ids, times;
//!   [`webhooks`]: webhook URL rules (no server-side request forgery) and signatures;
//! - [`mask`]: what a masked branch shows of its ancestors' records (pure);
//!   [`dialect`]: what differs between SQLite and PostgreSQL, decided in
//!   one place (pure);
//! - [`db`]: the seam (`Db`, `Env`, values and rows, transactions);
//! - [`error`]: the one error type, every kind documented.
//!
//! Invariants are listed in ARCHITECTURE.md ("Engine").

pub mod chain;
pub mod containers;
pub mod db;
pub mod deletion;
pub mod dialect;
pub mod diff;
pub mod error;
pub mod events;
pub mod handle;
pub mod imports;
pub mod levels;
pub mod limits;
pub mod lookup;
pub mod lsn;
pub mod mask;
pub mod merge;
pub mod merging;
#[cfg(feature = "native")]
pub mod native;
#[cfg(feature = "native-pg")]
pub mod native_pg;
pub mod operations;
pub mod owners;
pub mod reads;
pub mod reset;
pub mod records;
pub mod retention;
pub mod schema;
pub mod snapshots;
pub mod staging;
pub mod stats;
pub mod util;
pub mod webhooks;

pub use containers::{Container, ContainerState};
pub use db::{Db, DbError, Dialect, Env, LockWait, Maintenance, Row, TxMode, Value};
pub use error::{Error, ErrorKind, Result};
pub use events::{Event, Notification};
pub use handle::{Config, Engine};
pub use imports::Import;
pub use operations::{
    CancelPolicy, CloneMode, CloneRequest, OpFilter, OpKind, Operation, Status, StepOutcome,
    Strategy, TickReport,
};
pub use owners::Owned;
pub use reads::{AsOf, Version};
pub use merge::{Merged, Resolve};
pub use merging::MergeRun;
pub use records::{Committed, Write};
pub use snapshots::Snapshot;
pub use stats::CollectionStats;
