//! Adapts the engine to Spin. The one place components touch `spin_sdk`
//! for storage, variables, randomness, auth, routing and error mapping:
//!
//! - [`store`]: the engine's `Db` over `spin_sdk::sqlite`, and its `Env`;
//! - [`retry`]: when a statement runs again, and the worst-case wait;
//! - [`turns`]: requests waiting for a local file's write lock go before the worker's next chunk;
//! - [`vars`]: Spin variables;
//! - [`ids`]: randomness, random hex, UUIDs (random and name-derived);
//! - [`body`]: typed reads of JSON bodies, errors naming the field;
//! - [`ctx`]: a request's caller, database and error mapping;
//! - [`http`]: requests in, replies out (bounded bodies, streamed replies);
//! - [`auth`]: tokens hashed in key-value, constant-time comparison;
//! - [`errors`]: the one engine-error → HTTP-status function;
//! - [`sse`]: one writer of an operation's events as `text/event-stream`;
//! - [`router`]: one route table per component: dispatch, 404, 405 with `Allow`.

pub mod auth;
pub mod body;
pub mod ctx;
pub mod errors;
pub mod http;
pub mod ids;
pub mod retry;
pub mod router;
pub mod sse;
pub mod store;
pub mod turns;
pub mod vars;

pub use errors::status_of;
