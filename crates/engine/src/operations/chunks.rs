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
    let mut params: Vec<Value> = vec![cc.into(), ck.into(), cl.into()];
    if let Some((ec, ek, el)) = &end {
        sql.push_str(" AND (r.collection, r.key, r.lsn) <= (?4, ?5, ?6)");
        params.push(ec.into());
        params.push(ek.into());
        params.push((*el).into());
    }
    Ok(ChunkRange { end, sql, params })
}

/// Statistics of a chunk's rows per collection: versions and their bytes,
/// and the live ones (the newest through `arms` and not a deletion).
pub(super) fn chunk_stats(db: &dyn Db, arms: &[Arm], range: &ChunkRange) -> Result<Deltas> {
    let live = format!(
        "CASE WHEN r.deleted = 0 AND r.lsn = {} THEN 1 ELSE 0 END",
        chain::newest(db.dialect(), arms, "r.collection", "r.key")
    );
    let rows = query(
        db,
        &format!(
            "SELECT collection, count(*), sum(size), sum(live), sum(live * size) FROM ({}) AS u GROUP BY collection",
            chain::union(
                db.dialect(),
                arms,
                &format!("r.collection, r.key, r.lsn, r.size, {live} AS live"),
                &range.sql,
                " UNION "
            )
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
