//! Per-collection statistics (`collection_stats`): live records and their
//! bytes, versions and their bytes, per container and collection. This
//! module is the table's only writer; every change to a container's
//! records hands it a [`Delta`] in the same transaction, so the statistics
//! are exact at every commit (`spinoff verify` checks them against the
//! data).
//!
//! Uses: `db`, `error`. Nothing of the engine below it.

use std::collections::BTreeMap;

use crate::db::{exec, one, query, Db};
use crate::error::{Error, Result};

/// A change to one collection's statistics: live records and their bytes,
/// versions and their bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Delta {
    pub records: i64,
    pub bytes: i64,
    pub versions: i64,
    pub version_bytes: i64,
}

/// Live records and versions of one collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionStats {
    pub name: String,
    pub records: i64,
    pub bytes: i64,
    pub versions: i64,
    pub version_bytes: i64,
}

/// Per-collection deltas, by collection name.
pub(crate) type Deltas = BTreeMap<String, Delta>;

/// Add per-collection deltas to a container's statistics.
pub(crate) fn apply(db: &dyn Db, container: i64, deltas: &Deltas) -> Result<()> {
    for (collection, d) in deltas {
        exec(
            db,
            "INSERT INTO collection_stats (container, collection, records, bytes, versions, version_bytes) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT (container, collection) DO UPDATE SET \
             records = collection_stats.records + excluded.records, \
             bytes = collection_stats.bytes + excluded.bytes, \
             versions = collection_stats.versions + excluded.versions, \
             version_bytes = collection_stats.version_bytes + excluded.version_bytes",
            &[
                container.into(),
                collection.into(),
                d.records.into(),
                d.bytes.into(),
                d.versions.into(),
                d.version_bytes.into(),
            ],
        )?;
    }
    Ok(())
}

/// `container`'s statistics become `from`'s (a committed import's
/// container takes its staging branch's).
pub(crate) fn take(db: &dyn Db, container: i64, from: i64) -> Result<()> {
    clear(db, container)?;
    exec(
        db,
        "INSERT INTO collection_stats (container, collection, records, bytes, versions, version_bytes) \
         SELECT ?1, collection, records, bytes, versions, version_bytes FROM collection_stats WHERE container = ?2",
        &[container.into(), from.into()],
    )
}

/// Drop a container's statistics (its rows are gone).
pub(crate) fn clear(db: &dyn Db, container: i64) -> Result<()> {
    exec(
        db,
        "DELETE FROM collection_stats WHERE container = ?1",
        &[container.into()],
    )
}

/// A container's statistics by collection (collections with a version).
pub(crate) fn of(db: &dyn Db, container: i64) -> Result<Deltas> {
    let mut out = Deltas::new();
    for s in list(db, container)? {
        out.insert(
            s.name,
            Delta {
                records: s.records,
                bytes: s.bytes,
                versions: s.versions,
                version_bytes: s.version_bytes,
            },
        );
    }
    Ok(out)
}

/// A container's collections with a version, by name.
pub(crate) fn list(db: &dyn Db, container: i64) -> Result<Vec<CollectionStats>> {
    query(
        db,
        "SELECT collection, records, bytes, versions, version_bytes FROM collection_stats \
         WHERE container = ?1 AND versions > 0 ORDER BY collection",
        &[container.into()],
    )?
    .iter()
    .map(|r| {
        Ok(CollectionStats {
            name: r.text(0)?,
            records: r.i64(1)?,
            bytes: r.i64(2)?,
            versions: r.i64(3)?,
            version_bytes: r.i64(4)?,
        })
    })
    .collect()
}

/// What a container counts in all: `(records, bytes, versions,
/// version_bytes)`.
pub(crate) fn totals(db: &dyn Db, container: i64) -> Result<Delta> {
    let r = one(
        db,
        "SELECT coalesce(sum(records), 0), coalesce(sum(bytes), 0), coalesce(sum(versions), 0), \
         coalesce(sum(version_bytes), 0) FROM collection_stats WHERE container = ?1",
        &[container.into()],
    )?
    .ok_or_else(|| Error::corrupt("aggregate gave no row"))?;
    Ok(Delta {
        records: r.i64(0)?,
        bytes: r.i64(1)?,
        versions: r.i64(2)?,
        version_bytes: r.i64(3)?,
    })
}

/// A copy's estimated `(records, bytes)`: versions with history, live
/// records without, over `collections` (a JSON array; None: all).
pub(crate) fn estimate(
    db: &dyn Db,
    container: i64,
    history: bool,
    collections: Option<String>,
) -> Result<(i64, i64)> {
    let est = one(
        db,
        &format!(
            "SELECT coalesce(sum(CASE WHEN CAST(?2 AS BIGINT) = 1 THEN versions ELSE records END), 0), \
                    coalesce(sum(CASE WHEN CAST(?2 AS BIGINT) = 1 THEN version_bytes ELSE bytes END), 0) \
             FROM collection_stats WHERE container = ?1 \
             AND (CAST(?3 AS TEXT) IS NULL OR collection IN (SELECT value FROM {}))",
            db.dialect().json_strings(3)
        ),
        &[container.into(), history.into(), collections.into()],
    )?
    .ok_or_else(|| Error::corrupt("aggregate gave no row"))?;
    Ok((est.i64(0)?, est.i64(1)?))
}

/// Collections whose statistics cannot be: a negative count, or more live
/// records than versions.
pub(crate) fn impossible(db: &dyn Db, container: i64) -> Result<Vec<String>> {
    query(
        db,
        "SELECT collection FROM collection_stats WHERE container = ?1 \
         AND (records < 0 OR bytes < 0 OR versions < 0 OR version_bytes < 0 OR records > versions)",
        &[container.into()],
    )?
    .iter()
    .map(|r| r.text(0))
    .collect()
}
