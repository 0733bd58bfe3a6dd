//! The global LSN clock. Each record write (one batch of writes, in
//! [`crate::records`]) takes one LSN, strictly greater than every earlier
//! one, and records its commit time, never earlier than the previous
//! commit's (so time → LSN is monotonic). Other write transactions
//! (containers, snapshots, operations and their chunks, retention) take no
//! LSN: a chunk copies rows with the LSNs they have in the source.

use crate::db::{exec, one, query, returning_one, Db, Env};
use crate::error::{Error, Result};

/// Take the next LSN inside the caller's record-write transaction.
/// Returns `(lsn, committed_at)`.
pub fn next(db: &dyn Db, env: &dyn Env) -> Result<(i64, i64)> {
    let now = env.now_us();
    let row = returning_one(
        db,
        &format!(
            "INSERT INTO lsns (committed_at) \
             SELECT {}(CAST(?1 AS BIGINT), coalesce((SELECT committed_at FROM lsns ORDER BY lsn DESC LIMIT 1), 0)) \
             RETURNING lsn, committed_at",
            db.dialect().greatest()
        ),
        &[now.into()],
    )?
    .ok_or_else(|| Error::corrupt("INSERT … RETURNING gave no row"))?;
    Ok((row.i64(0)?, row.i64(1)?))
}

/// The newest committed LSN (0 before any write).
pub fn head(db: &dyn Db) -> Result<i64> {
    Ok(one(db, "SELECT coalesce(max(lsn), 0) FROM lsns", &[])?
        .map(|r| r.i64(0))
        .transpose()?
        .unwrap_or(0))
}

/// The greatest LSN committed at or before `at` (µs), or 0.
pub fn at_time(db: &dyn Db, at: i64) -> Result<i64> {
    let rows = query(
        db,
        "SELECT lsn FROM lsns WHERE committed_at <= ?1 ORDER BY committed_at DESC, lsn DESC LIMIT 1",
        &[at.into()],
    )?;
    rows.first().map(|r| r.i64(0)).unwrap_or(Ok(0))
}

/// When `lsn` committed, if it is still known.
pub fn time_of(db: &dyn Db, lsn: i64) -> Result<Option<i64>> {
    one(
        db,
        "SELECT committed_at FROM lsns WHERE lsn = ?1",
        &[lsn.into()],
    )?
    .map(|r| r.i64(0))
    .transpose()
}

/// Forget LSN → time rows no container can ask for any more: below every
/// live container's floor (the newest row always stays, so the clock never
/// goes back).
pub fn forget_below_floors(db: &dyn Db) -> Result<()> {
    exec(
        db,
        "DELETE FROM lsns WHERE lsn < (SELECT min(floor_lsn) FROM containers WHERE deleting = 0) \
         AND lsn < (SELECT max(lsn) FROM lsns)",
        &[],
    )
}
