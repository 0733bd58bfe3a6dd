//! Snapshots (`snapshots`): a snapshot is an LSN of a container, taken on
//! demand or on a schedule by the worker. `last_snapshot` forks read as of
//! the newest one. This module is the table's only writer.
//!
//! Uses: `containers`, `lsn`, `db`, `error`, `util`.

use crate::containers::{self, Container};
use crate::db::{exec, one, query, returning_one, transaction, Db, Row};
use crate::error::{Error, ErrorKind, Result};
use crate::handle::Engine;
use crate::lsn;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub id: i64,
    pub container: i64,
    pub lsn: i64,
    pub name: Option<String>,
    pub scheduled: bool,
    pub created_at: i64,
}

const COLUMNS: &str = "id, container, lsn, name, scheduled, created_at";

fn from_row(r: &Row) -> Result<Snapshot> {
    Ok(Snapshot {
        id: r.i64(0)?,
        container: r.i64(1)?,
        lsn: r.i64(2)?,
        name: r.opt_text(3)?,
        scheduled: r.bool(4)?,
        created_at: r.i64(5)?,
    })
}

pub(crate) fn insert(
    db: &dyn Db,
    container: i64,
    name: Option<&str>,
    scheduled: bool,
    now: i64,
) -> Result<Snapshot> {
    let head = lsn::head(db)?;
    let row = returning_one(
        db,
        &format!(
            "INSERT INTO snapshots (container, lsn, name, scheduled, created_at) VALUES (?1, ?2, ?3, ?4, ?5) \
             RETURNING {COLUMNS}"
        ),
        &[container.into(), head.into(), name.into(), scheduled.into(), now.into()],
    )?
    .ok_or_else(|| Error::corrupt("INSERT … RETURNING gave no row"))?;
    from_row(&row)
}

pub(crate) fn newest(db: &dyn Db, container: i64) -> Result<Option<Snapshot>> {
    one(
        db,
        &format!("SELECT {COLUMNS} FROM snapshots WHERE container = ?1 ORDER BY lsn DESC, id DESC LIMIT 1"),
        &[container.into()],
    )?
    .map(|r| from_row(&r))
    .transpose()
}

/// Scheduled snapshots taken before `before` (µs) expire with the
/// retention window.
pub(crate) fn expire_scheduled(db: &dyn Db, before: i64) -> Result<()> {
    exec(
        db,
        "DELETE FROM snapshots WHERE scheduled = 1 AND created_at < ?1",
        &[before.into()],
    )
}

/// A reset's successor takes the container's snapshots (their LSNs are
/// all before the reset, which reads before it still answer).
pub(crate) fn hand_over(db: &dyn Db, from: i64, to: i64) -> Result<()> {
    exec(
        db,
        "UPDATE snapshots SET container = ?2 WHERE container = ?1",
        &[from.into(), to.into()],
    )
}

/// A purged container's snapshots go with it.
pub(crate) fn clear(db: &dyn Db, container: i64) -> Result<()> {
    exec(
        db,
        "DELETE FROM snapshots WHERE container = ?1",
        &[container.into()],
    )
}

impl Engine<'_> {
    /// Take a snapshot of a container now: its current state, by LSN.
    pub fn snapshot(&self, c: &Container, name: Option<&str>) -> Result<Snapshot> {
        if let Some(n) = name {
            crate::util::check_name("snapshot name", n)?;
        }
        let now = self.env.now_us();
        transaction(self.db, |db| {
            let c = containers::find(db, &c.family, &c.tenant, &c.name)?;
            insert(db, c.id, name, false, now)
        })
    }

    /// A container's snapshots, newest first.
    pub fn snapshots(&self, c: &Container, limit: i64) -> Result<Vec<Snapshot>> {
        query(
            self.db,
            &format!("SELECT {COLUMNS} FROM snapshots WHERE container = ?1 ORDER BY lsn DESC, id DESC LIMIT ?2"),
            &[c.id.into(), limit.clamp(1, self.config.max_page).into()],
        )?
        .iter()
        .map(from_row)
        .collect()
    }

    /// The newest snapshot, or `NoSnapshot`.
    pub fn last_snapshot(&self, c: &Container) -> Result<Snapshot> {
        newest(self.db, c.id)?.ok_or_else(|| {
            Error::new(
                ErrorKind::NoSnapshot,
                format!("{} has no snapshot yet", c.reference()),
            )
        })
    }

    /// Take scheduled snapshots of up to `limit` containers whose newest
    /// snapshot is older than `interval_us` and that changed since. Returns
    /// how many were taken.
    pub fn take_scheduled_snapshots(&self, interval_us: i64, limit: i64) -> Result<usize> {
        if interval_us <= 0 {
            return Ok(0);
        }
        let now = self.env.now_us();
        transaction(self.db, |db| {
            let due = query(
                db,
                "SELECT c.id FROM containers c WHERE c.deleting = 0 AND c.state = 'ready' AND c.head_lsn > \
                   coalesce((SELECT max(s.lsn) FROM snapshots s WHERE s.container = c.id), 0) \
                 AND coalesce((SELECT max(s.created_at) FROM snapshots s WHERE s.container = c.id), 0) <= ?1 \
                 ORDER BY c.id LIMIT ?2",
                &[(now - interval_us).into(), limit.into()],
            )?;
            for r in &due {
                insert(db, r.i64(0)?, None, true, now)?;
            }
            Ok(due.len())
        })
    }
}
