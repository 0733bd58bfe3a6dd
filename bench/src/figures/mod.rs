//! One file per figure; each prints its rows and returns what the
//! side-by-side tables need.

pub mod branches;
pub mod copy;
pub mod diff;
pub mod export_import;
pub mod latency;
pub mod phases;
pub mod workflows;
