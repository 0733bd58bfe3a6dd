//! Per-tenant limits: quotas (active operations, resources, stored bytes)
//! and rates (operation starts, imported records, per minute).
//!
//! Every check runs inside the transaction of the change it guards, before
//! anything is written, so a refused request leaves nothing behind; a
//! refusal is [`ErrorKind::LimitExceeded`] naming the limit (the Spin
//! variable that sets it) and, for rates, when to retry. `0` turns a limit
//! off.

use crate::db::{exec, one, Db};
use crate::error::{Error, ErrorKind, Result};

pub use crate::error::Limit;

/// Each tenant's limits; `0` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub active_operations: i64,
    pub resources: i64,
    pub stored_bytes: i64,
    pub starts_per_minute: i64,
    pub writes_per_minute: i64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            active_operations: 25,
            resources: 1_000,
            stored_bytes: 10 << 30,
            starts_per_minute: 120,
            writes_per_minute: 5_000_000,
        }
    }
}

impl Limits {
    /// No limit at all.
    pub fn unlimited() -> Limits {
        Limits {
            active_operations: 0,
            resources: 0,
            stored_bytes: 0,
            starts_per_minute: 0,
            writes_per_minute: 0,
        }
    }

    /// The defaults, overridden by `lookup(variable)` where it gives a
    /// whole number (an unset or malformed variable keeps the default).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Limits {
        let mut l = Limits::default();
        for limit in Limit::ALL {
            if let Some(v) = lookup(limit.variable()).and_then(|v| v.trim().parse::<i64>().ok()) {
                *l.get_mut(limit) = v.max(0);
            }
        }
        l
    }

    pub fn get(&self, limit: Limit) -> i64 {
        match limit {
            Limit::ActiveOperations => self.active_operations,
            Limit::Resources => self.resources,
            Limit::StoredBytes => self.stored_bytes,
            Limit::StartsPerMinute => self.starts_per_minute,
            Limit::WritesPerMinute => self.writes_per_minute,
        }
    }

    fn get_mut(&mut self, limit: Limit) -> &mut i64 {
        match limit {
            Limit::ActiveOperations => &mut self.active_operations,
            Limit::Resources => &mut self.resources,
            Limit::StoredBytes => &mut self.stored_bytes,
            Limit::StartsPerMinute => &mut self.starts_per_minute,
            Limit::WritesPerMinute => &mut self.writes_per_minute,
        }
    }
}

fn exceeded(limit: Limit, max: i64, what: String, retry_after_s: Option<i64>) -> Error {
    Error::new(
        ErrorKind::LimitExceeded {
            limit,
            retry_after_s,
        },
        format!(
            "{what}: the tenant's limit {} is {max}{}",
            limit.variable(),
            match retry_after_s {
                Some(s) => format!("; retry in {s} s"),
                None => String::new(),
            }
        ),
    )
}

fn count(db: &dyn Db, sql: &str, tenant: &str) -> Result<i64> {
    one(db, sql, &[tenant.into()])?
        .map(|r| r.i64(0))
        .unwrap_or(Ok(0))
}

/// Before a new resource: fewer than `limits.resources` alive.
pub(crate) fn check_resources(db: &dyn Db, limits: &Limits, tenant: &str) -> Result<()> {
    let max = limits.resources;
    if max == 0 {
        return Ok(());
    }
    let n = count(
        db,
        "SELECT count(*) FROM containers WHERE tenant = ?1 AND deleting = 0",
        tenant,
    )?;
    if n >= max {
        return Err(exceeded(
            Limit::Resources,
            max,
            format!("the tenant has {n} resources"),
            None,
        ));
    }
    Ok(())
}

/// Before storing `adding` more bytes.
pub(crate) fn check_stored_bytes(
    db: &dyn Db,
    limits: &Limits,
    tenant: &str,
    adding: i64,
) -> Result<()> {
    let max = limits.stored_bytes;
    if max == 0 || adding <= 0 {
        return Ok(());
    }
    let stored = count(
        db,
        "SELECT coalesce(sum(s.version_bytes), 0) FROM containers c \
         JOIN collection_stats s ON s.container = c.id \
         WHERE c.tenant = ?1 AND c.deleting = 0 \
         AND NOT EXISTS (SELECT 1 FROM branch_levels b WHERE b.container = c.id)",
        tenant,
    )?;
    if stored + adding > max {
        return Err(exceeded(
            Limit::StoredBytes,
            max,
            format!("the tenant stores {stored} bytes and this adds {adding}"),
            None,
        ));
    }
    Ok(())
}

/// Before starting an operation at `now`: active ones and starts in the
/// last 60 s under their limits.
pub(crate) fn check_start(db: &dyn Db, limits: &Limits, tenant: &str, now: i64) -> Result<()> {
    if limits.active_operations > 0 {
        let n = count(
            db,
            &format!(
                "SELECT count(*) FROM operations WHERE tenant = ?1 AND status IN {}",
                crate::schema::ACTIVE
            ),
            tenant,
        )?;
        if n >= limits.active_operations {
            return Err(exceeded(
                Limit::ActiveOperations,
                limits.active_operations,
                format!("the tenant has {n} operations pending or in progress"),
                None,
            ));
        }
    }
    let max = limits.starts_per_minute;
    if max > 0 {
        let since = now - 60_000_000;
        let r = one(
            db,
            "SELECT count(*), min(created_at) FROM operations WHERE tenant = ?1 AND created_at > ?2",
            &[tenant.into(), since.into()],
        )?;
        let (n, oldest) = match r {
            Some(r) => (r.i64(0)?, r.i64(1)?),
            None => (0, now),
        };
        if n >= max {
            let retry = ((oldest + 60_000_000 - now) / 1_000_000 + 1).clamp(1, 60);
            return Err(exceeded(
                Limit::StartsPerMinute,
                max,
                format!("the tenant started {n} operations in the last minute"),
                Some(retry),
            ));
        }
    }
    Ok(())
}

/// Count `n` written records against this clock minute's allowance.
pub(crate) fn count_writes(
    db: &dyn Db,
    limits: &Limits,
    tenant: &str,
    n: i64,
    now: i64,
) -> Result<()> {
    let max = limits.writes_per_minute;
    if max == 0 || n == 0 {
        return Ok(());
    }
    let window = now / 60_000_000;
    let used = one(
        db,
        "SELECT count FROM rate_windows WHERE tenant = ?1 AND kind = 'writes' AND minute = ?2",
        &[tenant.into(), window.into()],
    )?
    .map(|r| r.i64(0))
    .unwrap_or(Ok(0))?;
    if used + n > max {
        let retry = ((window + 1) * 60_000_000 - now) / 1_000_000 + 1;
        return Err(exceeded(
            Limit::WritesPerMinute,
            max,
            format!("the tenant wrote {used} records this minute and this writes {n}"),
            Some(retry.clamp(1, 60)),
        ));
    }
    exec(
        db,
        "DELETE FROM rate_windows WHERE tenant = ?1 AND kind = 'writes' AND minute < ?2",
        &[tenant.into(), window.into()],
    )?;
    exec(
        db,
        "INSERT INTO rate_windows (tenant, kind, minute, count) VALUES (?1, 'writes', ?2, ?3) \
         ON CONFLICT (tenant, kind, minute) DO UPDATE SET count = rate_windows.count + excluded.count",
        &[tenant.into(), window.into(), n.into()],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_override_the_defaults_and_zero_turns_a_limit_off() {
        let l = Limits::from_lookup(|v| match v {
            "limit_resources" => Some("7".into()),
            "limit_stored_bytes" => Some("0".into()),
            "limit_active_operations" => Some("lots".into()),
            _ => None,
        });
        assert_eq!(l.resources, 7);
        assert_eq!(l.stored_bytes, 0);
        assert_eq!(l.active_operations, Limits::default().active_operations);
    }
}
