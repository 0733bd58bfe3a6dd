//! The SQL dialects, decided in one place. The engine writes its SQL once,
//! in what SQLite and PostgreSQL both accept (`ON CONFLICT … DO NOTHING`
//! rather than `INSERT OR IGNORE`, `RETURNING` rather than
//! `last_insert_rowid()`, row values, partial indexes, `INSERT … SELECT`);
//! where the two differ, it asks its backend's [`Dialect`] for the
//! fragment, and a PostgreSQL backend uses [`postgres`] for what is the
//! backend's to decide (placeholders, transactions, error kinds, values).
//! Pure: no I/O.

use std::borrow::Cow;

pub use crate::db::Dialect;
use crate::db::{Db, DbError, Maintenance, TxMode, Value};

impl Dialect {
    /// The scalar maximum of two or more values (`max(a, b)` in SQLite,
    /// `GREATEST(a, b)` in PostgreSQL; both ignore nothing: a NULL argument
    /// gives NULL in SQLite and is skipped in PostgreSQL, so callers pass
    /// no NULLs).
    pub fn greatest(self) -> &'static str {
        match self {
            Dialect::Sqlite => "max",
            Dialect::Postgres => "GREATEST",
        }
    }

    /// The scalar minimum (see [`Dialect::greatest`]).
    pub fn least(self) -> &'static str {
        match self {
            Dialect::Sqlite => "min",
            Dialect::Postgres => "LEAST",
        }
    }

    /// The elements of the JSON array of strings in parameter `?n`, as a
    /// table with one column, `value`.
    pub fn json_strings(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => format!("json_each(?{n})"),
            Dialect::Postgres => format!("jsonb_array_elements_text(CAST(?{n} AS jsonb)) AS j(value)"),
        }
    }

    /// A JSON array (as text) of one array of `items` per row of a group;
    /// NULL over no rows. An item `json:x` is column `x` holding JSON text,
    /// embedded as JSON.
    pub fn json_rows_agg(self, items: &[&str]) -> String {
        let items: Vec<String> = items
            .iter()
            .map(|i| match (i.strip_prefix("json:"), self) {
                (Some(c), Dialect::Sqlite) => format!("json({c})"),
                (Some(c), Dialect::Postgres) => format!("CAST({c} AS json)"),
                (None, _) => i.to_string(),
            })
            .collect();
        match self {
            Dialect::Sqlite => format!(
                "CASE WHEN count(*) > 0 THEN json_group_array(json_array({})) END",
                items.join(", ")
            ),
            Dialect::Postgres => {
                format!("CAST(json_agg(json_build_array({})) AS TEXT)", items.join(", "))
            }
        }
    }

    /// `(?a, ?b, …), (…), …`: `rows` rows of one numbered parameter per
    /// type in `types`, numbered from `first`. On PostgreSQL the first row
    /// casts each to its type, so that the columns of the `VALUES` are
    /// typed (it would read untyped parameters as text). SQLite gets no
    /// casts: there they kept a `VALUES` joined to `records` from its
    /// index (a 1 000-change diff went from 8 ms to 200 ms).
    pub fn values(self, rows: usize, types: &[&str], first: usize) -> String {
        let cast = self == Dialect::Postgres;
        let mut out = String::with_capacity(rows * types.len() * 6 + 32);
        let mut n = first;
        for r in 0..rows {
            if r > 0 {
                out.push(',');
            }
            out.push('(');
            for (i, t) in types.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if r == 0 && cast {
                    out.push_str(&format!("CAST(?{n} AS {t})"));
                } else {
                    out.push_str(&format!("?{n}"));
                }
                n += 1;
            }
            out.push(')');
        }
        out
    }

    /// `r.lsn` where a version is looked up by its key and the newest
    /// LSN (`r.lsn = (SELECT max(x.lsn) …)`, both sides): PostgreSQL gets
    /// `(r.lsn + 0)`, so that it seeks the primary key (container,
    /// collection, key) rather than `records_lsn` (container, lsn), which
    /// its planner preferred on a table it had no statistics for: for
    /// `r.lsn`, an index that holds every row of a batch under one LSN;
    /// for `max(x.lsn)`, a backward walk of the whole container filtered
    /// by key (an import slowed as it grew, to 1 000 records/s). SQLite
    /// seeks the primary key either way.
    pub fn lsn_by_key(self, col: &str) -> String {
        match self {
            Dialect::Sqlite => col.to_string(),
            Dialect::Postgres => format!("({col} + 0)"),
        }
    }

    /// A hint naming the index a scan of a table must use (SQLite's
    /// `INDEXED BY`, after the table's alias); PostgreSQL's planner takes
    /// no hints, and needs none for these scans.
    pub fn indexed_by(self, index: &str) -> String {
        match self {
            Dialect::Sqlite => format!(" INDEXED BY {index}"),
            Dialect::Postgres => String::new(),
        }
    }

    /// The number of the engine's tables in the database (0: empty).
    pub fn count_tables(self) -> &'static str {
        match self {
            Dialect::Sqlite => "SELECT count(*) FROM sqlite_master",
            Dialect::Postgres => {
                "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = current_schema()"
            }
        }
    }

    /// Schema DDL, written for SQLite, in this dialect. For PostgreSQL:
    /// integers are 64-bit (`BIGINT`), an `INTEGER PRIMARY KEY
    /// AUTOINCREMENT` an identity column, text compares byte by byte
    /// (`COLLATE "C"`, as SQLite's `BINARY`: keys sort the same in both, and
    /// as the engine compares them in Rust), `BLOB` is `BYTEA`, `REAL` a
    /// double, and `WITHOUT ROWID` (a SQLite storage choice) goes.
    pub fn ddl(self, sql: &str) -> Cow<'_, str> {
        match self {
            Dialect::Sqlite => Cow::Borrowed(sql),
            Dialect::Postgres => Cow::Owned(postgres_ddl(sql)),
        }
    }
}

fn postgres_ddl(sql: &str) -> String {
    let sql = sql
        .replace(
            "INTEGER PRIMARY KEY AUTOINCREMENT",
            "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
        )
        .replace(") WITHOUT ROWID", ")");
    let mut out = String::with_capacity(sql.len() + 64);
    let mut word = String::new();
    let mut quoted: Option<char> = None;
    let flush = |word: &mut String, out: &mut String| {
        out.push_str(match word.as_str() {
            "INTEGER" => "BIGINT",
            "TEXT" => "TEXT COLLATE \"C\"",
            "BLOB" => "BYTEA",
            "REAL" => "DOUBLE PRECISION",
            w => w,
        });
        word.clear();
    };
    for c in sql.chars() {
        if let Some(q) = quoted {
            out.push(c);
            if c == q {
                quoted = None;
            }
            continue;
        }
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        flush(&mut word, &mut out);
        if c == '\'' || c == '"' {
            quoted = Some(c);
        }
        out.push(c);
    }
    flush(&mut word, &mut out);
    out
}

/// Open a transaction of `mode` on `db` in its dialect, each statement
/// through `db.execute` (so a wrapper that counts or fails statements sees
/// them): SQLite's `BEGIN IMMEDIATE` or `BEGIN`; PostgreSQL's
/// [`postgres::begin`], rolled back again when the write lock is not
/// taken. `wait`: whether to wait for the write lock (PostgreSQL only;
/// SQLite's wait is the connection's busy timeout).
pub fn begin(db: &dyn Db, mode: TxMode, wait: bool) -> Result<(), DbError> {
    match db.dialect() {
        Dialect::Sqlite => db
            .execute(
                match mode {
                    TxMode::Write => "BEGIN IMMEDIATE",
                    TxMode::Read => "BEGIN",
                },
                &[],
            )
            .map(|_| ()),
        Dialect::Postgres => {
            let [open, lock] = postgres::begin(mode, wait);
            db.execute(open, &[])?;
            let got = db.execute(lock, &[]).and_then(postgres::check_locked);
            if got.is_err() {
                let _ = db.execute("ROLLBACK", &[]);
            }
            got
        }
    }
}

/// Run `walk`, a walk of one container in key order a page at a time,
/// inside a transaction on `db`: on PostgreSQL with the planner told to
/// follow an index rather than sort ([`postgres::SORT_OFF`]). Nothing on
/// SQLite, whose planner follows the primary key by itself.
pub fn in_key_order<T>(
    db: &dyn Db,
    walk: impl FnOnce() -> crate::error::Result<T>,
) -> crate::error::Result<T> {
    if db.dialect() == Dialect::Sqlite {
        return walk();
    }
    db.execute(postgres::SORT_OFF, &[])?;
    let out = walk();
    // After a failed statement the transaction is over, and the setting
    // with it: only the walk's own error counts then.
    let on = db.execute(postgres::SORT_ON, &[]);
    let out = out?;
    on?;
    Ok(out)
}

/// The condition on `r` that ends a walk of `records` in key order at
/// the row in parameters `?c`, `?k` (and `?l`, its LSN, when given):
/// `(r.collection, r.key[, r.lsn]) <= (…)`, written so that PostgreSQL's
/// btree stops there. PostgreSQL (15) stops a scan at a row comparison's
/// first column only, and a row comparison beside an equality on that
/// column keeps the next column's bound from stopping it too: the row
/// comparison alone walked the rest of the collection, or of the
/// container, for every chunk (at 1 000 000 records most of each copy
/// chunk's 40 ms). So the bound has no row comparison: when the walk
/// starts in the end's collection (`same_collection`) it is an equality
/// on the collection and a bound on the key, where the scan stops;
/// otherwise a bound on the collection, where it stops (after the rest of
/// the end's collection: a chunk that crosses collections is rare), and
/// the exact bound as a filter. SQLite stops at either form.
pub fn range_end(same_collection: bool, c: usize, k: usize, l: Option<usize>) -> String {
    match (same_collection, l) {
        (true, Some(l)) => {
            format!("r.collection = ?{c} AND r.key <= ?{k} AND (r.key < ?{k} OR r.lsn <= ?{l})")
        }
        (true, None) => format!("r.collection = ?{c} AND r.key <= ?{k}"),
        (false, Some(l)) => format!(
            "r.collection <= ?{c} AND (r.collection < ?{c} OR r.key < ?{k} OR (r.key = ?{k} AND r.lsn <= ?{l}))"
        ),
        (false, None) => format!("r.collection <= ?{c} AND (r.collection < ?{c} OR r.key <= ?{k})"),
    }
}

/// Run `insert`, an `INSERT … SELECT` with no conflict clause, so that a
/// row whose key is already in the table is skipped; returns how many rows
/// it wrote. On SQLite with `ON CONFLICT DO NOTHING`, which costs it
/// nothing. PostgreSQL inserts every row speculatively under that clause
/// (a chunk of 15 000 records: 200 ms against 140 ms plain, measured), so
/// when the caller expects no key to be there (`expect_none`) the plain
/// statement runs first, in a savepoint; only when a key was there after
/// all (a constraint failed) is it rolled back and run with the clause,
/// which also fails again if the constraint was another one. Must run
/// inside a transaction.
pub fn insert_skipping_present(
    db: &dyn Db,
    insert: &str,
    params: &[Value],
    expect_none: bool,
) -> Result<u64, DbError> {
    let skipping = format!("{insert} ON CONFLICT DO NOTHING");
    if db.dialect() == Dialect::Sqlite || !expect_none {
        db.execute(&skipping, params)?;
        return db.changes();
    }
    db.execute("SAVEPOINT spinoff_insert", &[])?;
    match db.execute(insert, params) {
        Ok(_) => {
            let written = db.changes()?;
            db.execute("RELEASE SAVEPOINT spinoff_insert", &[])?;
            Ok(written)
        }
        Err(DbError::Constraint(_)) => {
            db.execute("ROLLBACK TO SAVEPOINT spinoff_insert", &[])?;
            db.execute(&skipping, params)?;
            let written = db.changes()?;
            db.execute("RELEASE SAVEPOINT spinoff_insert", &[])?;
            Ok(written)
        }
        Err(e) => Err(e),
    }
}

/// The part of [`Maintenance`] that is the dialect's, on `db`: on
/// PostgreSQL, before bulk work, fresh planner statistics for `records`
/// once a fifth of it (at least 1 000 rows) changed since they were taken
/// ([`postgres::STALE_STATISTICS`]). Autovacuum takes them within a minute
/// or so; until then the planner takes a fresh table for a few rows, and
/// walks every chunk's container (a copy of 100 000 records ran at 0.01 of
/// one `INSERT … SELECT`). Nothing on SQLite (its backends do their own
/// file maintenance). Best effort: callers ignore a failure (e.g. a role
/// that does not own the table may not `ANALYZE` it).
pub fn maintain(db: &dyn Db, task: Maintenance) -> Result<(), DbError> {
    match (db.dialect(), task) {
        (Dialect::Postgres, Maintenance::BulkWork) => {
            let stale = db.execute(postgres::STALE_STATISTICS, &[])?;
            if matches!(stale.first().map(|r| r.0.as_slice()), Some([crate::db::Value::Integer(n)]) if *n > 0)
            {
                db.execute("ANALYZE records", &[])?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

pub mod postgres;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ddl_for_postgres() {
        let d = Dialect::Postgres.ddl(
            "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL DEFAULT 'TEXT', b BLOB, r REAL, n INTEGER) WITHOUT ROWID",
        );
        assert_eq!(
            d,
            "CREATE TABLE t (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, name TEXT COLLATE \"C\" NOT NULL DEFAULT 'TEXT', b BYTEA, r DOUBLE PRECISION, n BIGINT)"
        );
        assert_eq!(Dialect::Sqlite.ddl("CREATE TABLE t (x INTEGER)"), "CREATE TABLE t (x INTEGER)");
    }
}
