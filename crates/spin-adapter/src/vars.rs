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
