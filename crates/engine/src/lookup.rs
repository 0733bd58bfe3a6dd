//! Lookups through a container's arms (itself, then its levels; see
//! [`crate::chain`]): the one latest-version lookup, for one key
//! ([`latest`]) and for a batch of keys ([`heads`], a write's statistics),
//! a key's history, and the candidate keys of a page. Every statement is
//! index seeks and range scans on `records`' primary key, per arm.
//!
//! Uses: `chain`, `db`, `error`.

use std::collections::BTreeMap;

use crate::chain::{arm_rows, containers_in, newest, shows_collection, Arm};
use crate::db::{query, Db, Dialect, Row, Value};
use crate::error::{Error, Result};

/// Rows per multi-row statement: 128 rows of up to 5 parameters stay under
/// 999, the smallest limit on bound parameters any SQLite build has had.
pub(crate) const ROWS: usize = 128;

/// The latest version of one key across `arms` (None: no version).
pub(crate) fn latest(
    db: &dyn Db,
    arms: &[Arm],
    collection: &str,
    key: &str,
    columns: &str,
) -> Result<Option<Row>> {
    let arms: Vec<Arm> = arms
        .iter()
        .filter(|a| shows_collection(a, collection))
        .cloned()
        .collect();
    if arms.is_empty() {
        return Ok(None);
    }
    let rows = query(
        db,
        &format!(
            "SELECT {columns} FROM records r WHERE r.container {} AND r.collection = ?1 AND r.key = ?2 \
             AND {} = {} LIMIT 1",
            containers_in(&arms),
            db.dialect().lsn_by_key("r.lsn"),
            newest(db.dialect(), &arms, "?1", "?2")
        ),
        &[collection.into(), key.into()],
    )?;
    Ok(rows.into_iter().next())
}

/// One key's versions through `arms` with an LSN below `before`, newest
/// first, at most `limit` (deduplicated by LSN; under a cut only the version
/// live at the cut).
pub(crate) fn history(
    db: &dyn Db,
    arms: &[Arm],
    collection: &str,
    key: &str,
    before: i64,
    limit: i64,
    columns: &str,
) -> Result<Vec<Row>> {
    let shown: Vec<usize> = (0..arms.len())
        .filter(|i| shows_collection(&arms[*i], collection))
        .collect();
    let mut out: BTreeMap<i64, Row> = BTreeMap::new();
    let uncut: Vec<&Arm> = shown
        .iter()
        .map(|i| &arms[*i])
        .filter(|a| a.cut.is_none())
        .collect();
    if !uncut.is_empty() {
        let parts: Vec<String> = uncut
            .iter()
            .map(|a| {
                format!(
                    "SELECT {columns} FROM records r WHERE {} AND r.collection = ?1 AND r.key = ?2 AND r.lsn < ?3",
                    arm_rows(a, "r")
                )
            })
            .collect();
        let sql = format!(
            "SELECT * FROM ({}) AS h ORDER BY 3 DESC LIMIT ?4",
            parts.join(" UNION ")
        );
        for row in query(
            db,
            &sql,
            &[collection.into(), key.into(), before.into(), limit.into()],
        )? {
            out.insert(row.i64(2)?, row);
        }
    }
    // Each cut group shows one version: the live one at its cut.
    let mut groups: Vec<usize> = shown
        .iter()
        .filter_map(|i| arms[*i].cut.map(|c| c.1))
        .collect();
    groups.sort_unstable();
    groups.dedup();
    for first in groups {
        if let Some(row) = latest(db, &arms[first..], collection, key, columns)? {
            let lsn = row.i64(2)?;
            if !row.bool(3)? && lsn < before {
                out.insert(lsn, row);
            }
        }
    }
    Ok(out
        .into_values()
        .rev()
        .take(limit.max(0) as usize)
        .collect())
}

/// The arms that hold at least one version within their bound (one
/// `records_lsn` seek each, in one statement), for latest reads: an empty
/// level (a branch never written, an intermediate branch) costs nothing
/// per key. The cut is dropped (latest reads never need it).
pub(crate) fn nonempty(db: &dyn Db, arms: Vec<Arm>) -> Result<Vec<Arm>> {
    if arms.len() <= 1 {
        return Ok(arms);
    }
    let values: Vec<String> = arms
        .iter()
        .map(|a| format!("({}, {})", a.container, a.bound))
        .collect();
    let keep: Vec<i64> = query(
        db,
        &format!(
            "SELECT v.column1 FROM (VALUES {}) v WHERE EXISTS \
             (SELECT 1 FROM records r WHERE r.container = v.column1 AND r.lsn <= v.column2)",
            values.join(",")
        ),
        &[],
    )?
    .iter()
    .map(|r| r.i64(0))
    .collect::<Result<_>>()?;
    Ok(arms
        .into_iter()
        .filter(|a| keep.contains(&a.container))
        .map(|a| Arm { cut: None, ..a })
        .collect())
}

/// Latest versions (live and deleted) of the keys after `after` through
/// `arms`, in (collection, key) order, at most `fetch` keys; only
/// `collection` when given.
pub(crate) fn scan_latest(
    db: &dyn Db,
    arms: &[Arm],
    after: (&str, &str),
    collection: Option<&str>,
    fetch: i64,
    columns: &str,
) -> Result<Vec<Row>> {
    let arms: Vec<Arm> = arms
        .iter()
        .filter(|a| collection.is_none_or(|c| shows_collection(a, c)))
        .cloned()
        .collect();
    if arms.is_empty() {
        return Ok(Vec::new());
    }
    let only = if collection.is_some() {
        " AND r.collection = ?3"
    } else {
        ""
    };
    let d = db.dialect();
    let sql = match d {
        Dialect::Sqlite => scan_sql_sqlite(&arms, only, columns),
        Dialect::Postgres => scan_sql_postgres(&arms, only, columns),
    };
    let rows = query(
        db,
        &sql,
        &[
            after.0.into(),
            after.1.into(),
            collection.unwrap_or("").into(),
            fetch.into(),
        ],
    )?;
    // A version held by two containers (copied by hydration) answers twice.
    let mut out: Vec<Row> = Vec::with_capacity(rows.len());
    for r in rows {
        if let Some(last) = out.last() {
            if last.0.first() == r.0.first() && last.0.get(1) == r.0.get(1) {
                continue;
            }
        }
        out.push(r);
    }
    Ok(out)
}

/// [`scan_latest`] on SQLite: the candidates, the arms' key walks merged
/// by a `UNION` and stopped by the `LIMIT`; each one's newest version
/// across all arms, a seek per arm (in-process, a few µs each).
fn scan_sql_sqlite(arms: &[Arm], only: &str, columns: &str) -> String {
    let d = Dialect::Sqlite;
    let distinct = if arms.len() == 1 { "DISTINCT " } else { "" };
    let parts: Vec<String> = arms
        .iter()
        .map(|a| {
            format!(
                "SELECT {distinct}r.collection, r.key FROM records r WHERE {} AND (r.collection, r.key) > (?1, ?2){only}",
                arm_rows(a, "r")
            )
        })
        .collect();
    format!(
        "WITH cand(collection, key) AS ({} ORDER BY 1, 2 LIMIT ?4) \
         SELECT {columns} FROM cand JOIN records r ON r.container {} AND r.collection = cand.collection \
           AND r.key = cand.key AND r.lsn = {} ORDER BY r.collection, r.key",
        parts.join(" UNION "),
        containers_in(arms),
        newest(d, arms, "cand.collection", "cand.key")
    )
}

/// [`scan_latest`] on PostgreSQL, where every seek is a step of another
/// process: only the arms that hold a candidate are asked for its newest
/// version (one lateral seek each), and the newest of those kept
/// (`DISTINCT ON`). An arm that holds a candidate lists it among its own
/// first `?4` keys, since the candidates are the first `?4` keys of all
/// arms together. (Asking every arm, a resource read through the 50
/// levels of 50 imports not yet hydrated made 100 seeks per key: a page
/// of 1 000 keys in 0.3–0.5 s.) Each arm's walk is limited in its own
/// subquery (PostgreSQL 15 dedupes a `UNION` whole: every arm's rest after
/// the cursor, for each page), and the seeks are lateral (the planner,
/// which cannot tell the containers' sizes, had merge-joined the
/// candidates with every row of them).
fn scan_sql_postgres(arms: &[Arm], only: &str, columns: &str) -> String {
    let parts: Vec<String> = arms
        .iter()
        .enumerate()
        .map(|(i, a)| {
            format!(
                "SELECT * FROM (SELECT DISTINCT r.collection, r.key, CAST({c} AS BIGINT) AS c, CAST({b} AS BIGINT) AS b \
                 FROM records r WHERE {rows} AND (r.collection, r.key) > (?1, ?2){only} \
                 ORDER BY r.collection, r.key LIMIT ?4) AS a{i}",
                c = a.container,
                b = a.bound,
                rows = arm_rows(a, "r"),
            )
        })
        .collect();
    format!(
        "WITH held(collection, key, c, b) AS ({}), \
         cand(collection, key) AS (SELECT DISTINCT collection, key FROM held ORDER BY 1, 2 LIMIT ?4) \
         SELECT DISTINCT ON (r.collection, r.key) {columns} FROM cand \
         JOIN held h ON h.collection = cand.collection AND h.key = cand.key \
         CROSS JOIN LATERAL (SELECT * FROM records r WHERE r.container = h.c \
           AND r.collection = h.collection AND r.key = h.key AND (r.lsn + 0) <= h.b \
           AND (r.visible_from IS NULL OR r.visible_from <= h.b) ORDER BY r.lsn DESC LIMIT 1) AS r \
         ORDER BY r.collection, r.key, r.lsn DESC",
        parts.join(" UNION ALL ")
    )
}

/// The newest version's `(deleted, size)` of each `(collection, key)` in
/// `keys` through `arms` (for a write's statistics).
pub(crate) fn heads(
    db: &dyn Db,
    arms: &[Arm],
    keys: &[(&str, &str)],
) -> Result<Vec<Option<(bool, i64)>>> {
    newest_rows(db, arms, keys, "r.deleted, r.size")?
        .into_iter()
        .map(|b| b.map(|(_, r)| Ok((r.bool(0)?, r.i64(1)?))).transpose())
        .collect()
}

/// The newest version of each `(collection, key)` in `keys` through
/// `arms`: the index of the arm it came from and `columns` of it (alias
/// `r`). Per arm one set-based statement of simple seeks (a remote server
/// answers a statement folding several containers' subqueries into one
/// expression with SQLITE_INTERRUPT at times), the newest across arms kept
/// here.
pub(crate) fn newest_rows(
    db: &dyn Db,
    arms: &[Arm],
    keys: &[(&str, &str)],
    columns: &str,
) -> Result<Vec<Option<(usize, Row)>>> {
    // (lsn, arm, row) per key.
    let mut best: Vec<Option<(i64, usize, Row)>> = vec![None; keys.len()];
    for (a, arm) in arms.iter().enumerate() {
        for (part, chunk) in keys.chunks(ROWS).enumerate() {
            let base = part * ROWS;
            let mut params: Vec<Value> = Vec::with_capacity(chunk.len() * 3);
            for (i, (c, k)) in chunk.iter().enumerate() {
                params.push(((base + i) as i64).into());
                params.push((*c).into());
                params.push((*k).into());
            }
            let d = db.dialect();
            let values = d.values(chunk.len(), &["BIGINT", "TEXT", "TEXT"], 1);
            let sql = match d {
                Dialect::Sqlite => format!(
                    "WITH w(i, collection, key) AS (VALUES {values}) \
                     SELECT w.i, r.lsn, {columns} FROM w JOIN records r ON r.container = {c} \
                       AND r.collection = w.collection AND r.key = w.key \
                       AND r.lsn = (SELECT max(x.lsn) FROM records x WHERE {rows} \
                                    AND x.collection = w.collection AND x.key = w.key)",
                    c = arm.container,
                    rows = arm_rows(arm, "x"),
                ),
                // PostgreSQL took the container for a hundred rows and
                // merge-joined the keys with all of it (a staged import
                // read its whole staging branch per batch of 128): a
                // lateral seek per key cannot be planned so.
                Dialect::Postgres => format!(
                    "WITH w(i, collection, key) AS (VALUES {values}) \
                     SELECT w.i, r.lsn, {columns} FROM w CROSS JOIN LATERAL \
                       (SELECT * FROM records r WHERE {rows} \
                          AND r.collection = w.collection AND r.key = w.key \
                          ORDER BY r.lsn DESC LIMIT 1) AS r",
                    rows = crate::chain::arm_rows_by_key(arm, "r"),
                ),
            };
            for row in query(db, &sql, &params)? {
                let i = usize::try_from(row.i64(0)?)
                    .ok()
                    .filter(|i| *i < keys.len())
                    .ok_or_else(|| Error::corrupt("head lookup answered an unknown row"))?;
                let lsn = row.i64(1)?;
                if best[i].as_ref().is_none_or(|(l, _, _)| lsn > *l) {
                    best[i] = Some((lsn, a, Row(row.0.get(2..).unwrap_or_default().to_vec())));
                }
            }
        }
    }
    Ok(best
        .into_iter()
        .map(|b| b.map(|(_, a, r)| (a, r)))
        .collect())
}
