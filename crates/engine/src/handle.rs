//! The handle on the engine over one connection ([`Engine`]) and its tunables
//! ([`Config`]). Every module with an `impl Engine` block adds its part of
//! the API; this file holds only what they share.
//!
//! Uses: `schema` (migrations on open), `limits`, `webhooks`, `lsn`, `db`,
//! `error`.

use crate::db::{Db, Env, Maintenance};
use crate::error::Result;
use crate::{limits, lsn, schema, webhooks};

/// Tunables. Defaults suit one Spin instance on one machine.
#[derive(Debug, Clone)]
pub struct Config {
    /// Most writes in one batch (an import request).
    pub max_batch: usize,
    /// Largest page a list or export returns.
    pub max_page: i64,
    /// How long a claimed operation stays leased without a step (µs).
    pub lease_us: i64,
    /// Chunk size of a new operation, and its bounds as it adapts.
    pub initial_chunk: i64,
    pub min_chunk: i64,
    pub max_chunk: i64,
    /// The time one chunk should take (µs); chunk sizes adapt toward it.
    pub target_chunk_us: i64,
    /// Most records one [`Engine::nudge`] (a status read) copies.
    pub nudge_records: i64,
    /// A branch deeper than this many levels starts hydrating when made.
    pub max_branch_depth: usize,
    /// How diffs and merges walk a side's changes: `None` decides by their
    /// number (`diff::walk_for`); `Some(true)` always along the key,
    /// `Some(false)` always through the LSN (tests run both).
    pub walk_by_key: Option<bool>,
    /// Webhook hosts the operator allows despite the address rules
    /// (Spin variable `webhook_allowed_hosts`).
    pub webhook_allow: webhooks::AllowList,
    /// Per-tenant limits (Spin variables `limit_*`).
    pub limits: limits::Limits,
    /// Where the limits come from instead, read only when a check needs
    /// them (most requests never do): the defaults overridden by
    /// `lookup(variable)` ([`limits::Limits::from_lookup`]).
    pub limits_lookup: Option<fn(&str) -> Option<String>>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_batch: 50_000,
            max_page: 1_000,
            lease_us: 5_000_000,
            initial_chunk: 2_000,
            min_chunk: 16,
            max_chunk: 20_000,
            target_chunk_us: 100_000,
            nudge_records: 500,
            max_branch_depth: 8,
            walk_by_key: None,
            webhook_allow: webhooks::AllowList::default(),
            limits: limits::Limits::default(),
            limits_lookup: None,
        }
    }
}

impl Config {
    /// The limits in force: from [`Config::limits_lookup`] when set, else
    /// [`Config::limits`].
    pub fn limits(&self) -> limits::Limits {
        match self.limits_lookup {
            Some(lookup) => limits::Limits::from_lookup(lookup),
            None => self.limits,
        }
    }
}

/// The engine over one connection. Cheap to create: [`Engine::open`] runs
/// the migrations, which cost one indexed read when up to date.
pub struct Engine<'a> {
    pub(crate) db: &'a dyn Db,
    pub(crate) env: &'a dyn Env,
    pub config: Config,
}

impl<'a> Engine<'a> {
    /// The engine's clock (µs since the epoch), for callers that compute
    /// times the engine stores (an expiry).
    pub fn now_us(&self) -> i64 {
        self.env.now_us()
    }

    /// Migrate the schema if needed and return the engine.
    pub fn open(db: &'a dyn Db, env: &'a dyn Env) -> Result<Engine<'a>> {
        schema::migrate(db)?;
        Ok(Engine {
            db,
            env,
            config: Config::default(),
        })
    }

    pub fn with_config(mut self, config: Config) -> Engine<'a> {
        self.config = config;
        self
    }

    pub fn db(&self) -> &'a dyn Db {
        self.db
    }

    pub fn env(&self) -> &'a dyn Env {
        self.env
    }

    /// Fold the write-ahead log back into the database file without waiting
    /// for readers; call outside any transaction. Keeps the WAL from growing
    /// through a long copy. A no-op on backends without one.
    pub fn checkpoint(&self) {
        let _ = self.db.maintain(Maintenance::Checkpoint);
    }

    /// The newest committed LSN.
    pub fn head_lsn(&self) -> Result<i64> {
        lsn::head(self.db)
    }
}
