//! Adapts the engine to Spin. The one place components touch `spin_sdk`
//! for storage, auth and error mapping:
//!
//! - [`reply`]: JSON responses and the fallback for unknown routes.
//!
//! Further modules (the `Db` seam over `spin_sdk::sqlite`, hashed tokens in
//! key-value, the engine-error → HTTP-status function) grow here as the
//! engine lands.

pub mod reply;
