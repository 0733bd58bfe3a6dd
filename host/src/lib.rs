//! A Spin-compatible host on wasmtime, so Spinoff's components run (and are
//! tested) on machines without the `spin` CLI.
//!
//! It reads `spin.toml` and gives each component exactly what Spin 3 gives it:
//!
//! - [`manifest`]: the subset of Spin's manifest v2 the app uses (components,
//!   `[[trigger.http]]`, `[[trigger.cron]]`, variables, stores, databases).
//! - [`router`]: Spin's HTTP routing rules (exact beats wildcard, most
//!   specific wins, `:name` segments) and the `spin-*` request headers.
//! - [`kv`], [`sqlite`], [`variables`]: `fermyon:spin/{key-value,sqlite,variables}@2.0.0`,
//!   backed by files laid out like Spin's `.spin/` state directory, or by
//!   a remote libSQL server and Redis where [`runtime_config`] (Spin's
//!   `--runtime-config-file`) names them; [`hrana_transport`] is the HTTP
//!   connector the `libsql` client reaches a remote database with.
//! - [`postgres`]: `spin:postgres/postgres@4.0.0` (Spin's outbound
//!   PostgreSQL) over `tokio-postgres`, a `deadpool-postgres` pool per
//!   address, reaching only what `allowed_outbound_hosts` allows.
//! - [`bindings`]: the Rust side of the WIT the host serves (`bindgen!`);
//!   each interface module implements its part on a view of the store's
//!   state, never through the runtime.
//! - [`runtime`]: the wasmtime engine, the compiled-component cache and the
//!   per-request store state (WASI, `wasi:http`, each interface's view).
//! - [`server`]: the HTTP front end (hyper) that instantiates a component per request.
//! - [`cron`]: the `[[trigger.cron]]` scheduler and on-demand ticks.
//!
//! [`Host`] ties them together; [`cli`] is its command line (`main.rs`
//! only calls it).

pub mod bindings;
pub mod cli;
pub mod cron;
pub mod hrana_transport;
pub mod kv;
pub mod manifest;
pub mod postgres;
pub mod router;
pub mod runtime;
pub mod runtime_config;
pub mod server;
pub mod sqlite;
pub mod variables;

pub use runtime::{Host, HostOptions};
