//! The benchmarks' shared parts; the binaries (`spinoff-bench`,
//! `spinoff-soak`, `spinoff-bench-sanity-cli`) are thin mains over them.
//!
//! - [`harness`]: what every figure does with the app (load, settle,
//!   clone with ticks, export, checksums, sizes on disk);
//! - [`figures`]: one file per figure of `spinoff-bench`;
//! - [`load`]: load generation for the latency figures (wrk, or threads);
//! - [`stats`]: percentiles (`hdrhistogram`), medians;
//! - [`report`]: the side-by-side tables;
//! - [`soak`]: the soak's families table, receivers and process figures.

pub mod figures;
pub mod harness;
pub mod load;
pub mod report;
pub mod soak;
pub mod stats;
