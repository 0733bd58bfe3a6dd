//! The range of one chunk and what it holds: the `(collection, key, lsn)`
//! cursor's next `n` rows through a list of arms, as an SQL condition, and
//! their statistics. Shared by the copy step and verification.
//!
//! Uses: `chain`, `stats` (the delta type), `db`, `error`.

use crate::chain::{self, Arm};
use crate::db::{one, query, Db, Dialect, Value};
use crate::error::Result;
use crate::stats::{Delta, Deltas};

/// The rows of one chunk: at most `n` rows after `cursor` through `arms`,
/// in `(collection, key, lsn)` order, as an SQL condition on alias `r` with
/// its parameters (`?1`…`?6`).
pub(super) struct ChunkRange {
    /// The chunk's last row (None: the rows run out within `n`).
    pub end: Option<(String, String, i64)>,
    pub sql: String,
    pub params: Vec<Value>,
}

/// The range of the next chunk: its last row is the n-th row after the
/// cursor (an ORDER BY on the compound itself: SQLite merges the arms'
/// index orders and stops at the LIMIT).
pub(super) fn chunk_range(
    db: &dyn Db,
    arms: &[Arm],
    cursor: &(String, String, i64),
    n: i64,
) -> Result<ChunkRange> {
    let (cc, ck, cl) = cursor.clone();
    let after = "(r.collection, r.key, r.lsn) > (?1, ?2, ?3)";
    let d = db.dialect();
    let keys = "r.collection, r.key, r.lsn";
    let walk = match d {
        Dialect::Sqlite => chain::union(d, arms, keys, after, " UNION "),
        // PostgreSQL (15) sorts a UNION whole: every chunk would sort all
        // the rows after the cursor. Each arm's first `n` rows in key
        // order are all the chunk can take from it, and a LIMIT walks the
        // primary key and stops.
        Dialect::Postgres => (0..arms.len())
            .map(|i| {
                format!(
                    "SELECT * FROM (SELECT {keys} FROM records r WHERE {} AND {after} \
                     ORDER BY {keys} LIMIT {n}) AS a{i}",
                    chain::visible(d, arms, i)
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION "),
    };
    let end = crate::dialect::in_key_order(db, || {
        one(
            db,
            &format!("{walk} ORDER BY 1, 2, 3 LIMIT 1 OFFSET ?4"),
            &[
                cc.as_str().into(),
                ck.as_str().into(),
                cl.into(),
                (n - 1).into(),
            ],
        )
    })?
    .map(|e| -> Result<_> { Ok((e.text(0)?, e.text(1)?, e.i64(2)?)) })
    .transpose()?;
    let mut sql = after.to_string();
    if let Some((ec, _, _)) = &end {
        sql.push_str(" AND ");
        sql.push_str(&crate::dialect::range_end(*ec == cc, 4, 5, Some(6)));
    }
    let mut params: Vec<Value> = vec![cc.into(), ck.into(), cl.into()];
    if let Some((ec, ek, el)) = &end {
        params.push(ec.into());
        params.push(ek.into());
        params.push((*el).into());
    }
    Ok(ChunkRange { end, sql, params })
}

/// Statistics of a chunk's rows per collection: versions and their bytes,
/// and the live ones (the newest through `arms` and not a deletion).
///
/// One walk of the range: a version is the newest of its key when no row
/// of the key through `arms` in the range is newer (`max … OVER`), since a
/// key's rows before the range are all older than its rows in it. Only the
/// chunk's last key may have newer versions past the range: one seek
/// ([`chain::newest`], computed once) settles it. The walk reads every row
/// within the arms' bounds and filters, shown or not (a cut hides a row
/// that may still be the newest), so "newest" means what it means for a
/// read; it was a seek per row, which on PostgreSQL took most of a chunk.
pub(super) fn chunk_stats(db: &dyn Db, arms: &[Arm], range: &ChunkRange) -> Result<Deltas> {
    let d = db.dialect();
    let last_key = match range.end {
        // The range's parameters ?4 and ?5 are its last row's key.
        Some(_) => format!(
            " AND (collection <> ?4 OR key <> ?5 OR lsn >= {})",
            chain::newest(d, arms, "?4", "?5")
        ),
        None => String::new(),
    };
    let walk = (0..arms.len())
        .map(|i| {
            format!(
                "SELECT r.collection, r.key, r.lsn, r.size, r.deleted, {} AS shown \
                 FROM records r WHERE {} AND {}",
                chain::shown(d, arms, i),
                chain::arm_rows_keyed(d, &arms[i], "r"),
                range.sql
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ");
    let rows = query(
        db,
        &format!(
            "SELECT collection, sum(shown), sum(shown * size), sum(live), sum(live * size) FROM \
             (SELECT collection, size, shown, CASE WHEN shown = 1 AND deleted = 0 \
              AND lsn = max(lsn) OVER (PARTITION BY collection, key){last_key} THEN 1 ELSE 0 END AS live \
              FROM ({walk}) AS u) AS w \
             GROUP BY collection HAVING sum(shown) > 0"
        ),
        &range.params,
    )?;
    let mut out = Deltas::new();
    for s in &rows {
        out.insert(
            s.text(0)?,
            Delta {
                versions: s.i64(1)?,
                version_bytes: s.i64(2)?,
                records: s.i64(3)?,
                bytes: s.i64(4)?,
            },
        );
    }
    Ok(out)
}
