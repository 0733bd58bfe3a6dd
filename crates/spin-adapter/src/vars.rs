//! Spin variables (`[variables]` in spin.toml, `SPIN_VARIABLE_*`).

/// A Spin variable; empty counts as unset.
pub fn variable(name: &str) -> Option<String> {
    spin_sdk::variables::get(name)
        .ok()
        .filter(|v| !v.is_empty())
}

/// A numeric Spin variable with a default.
pub fn variable_i64(name: &str, default: i64) -> i64 {
    variable(name)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// How a family without a per-request choice makes clones: the Spin
/// variable `clone_mode`, `branch` (copy-on-write, the default) or `copy`
/// (physical copies in chunks). Anything else is a misconfiguration,
/// reported on stderr, and the default applies.
pub fn clone_mode() -> engine::CloneMode {
    match variable("clone_mode") {
        None => engine::CloneMode::Branch,
        Some(v) => engine::CloneMode::parse(v.trim()).unwrap_or_else(|e| {
            eprintln!("spinoff: variable clone_mode: {}; using branch", e.message);
            engine::CloneMode::Branch
        }),
    }
}
