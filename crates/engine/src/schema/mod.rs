//! Schema and migrations. The engine owns them: every entry point that
//! touches the database calls [`migrate`] first (cheap when up to date: one
//! primary-key read of `spinoff_schema`). Migrations run in `BEGIN
//! IMMEDIATE` and re-check the version inside the transaction, so two
//! components (or two instances) starting at once apply each migration
//! exactly once.
//!
//! The version lives in a table, not in `PRAGMA user_version`: Turso Cloud
//! keeps `user_version` read-only, and a remote libSQL server refuses the
//! other PRAGMAs. Databases from before the table carry their version in
//! `user_version`, which is read (never written) once to adopt them.

use crate::db::{exec, one, transaction, Db, Dialect, Maintenance};
use crate::error::Result;

mod migrations;
use migrations::MIGRATIONS;

/// The migration (index into MIGRATIONS) whose step also lays records out
/// for the page size.
const RECORDS_LAYOUT_MIGRATION: usize = 7;

/// Pages at least this large keep `records` clustered (`WITHOUT ROWID`).
const CLUSTERED_MIN_PAGE: i64 = 8192;

/// On small pages (below [`CLUSTERED_MIN_PAGE`]: a remote libSQL server's
/// fixed 4 KiB, or a file created before the engine chose 16 KiB), a
/// clustered `WITHOUT ROWID` row may hold at most ~1 000 bytes in its page,
/// so every ~1 KB record spilled into an overflow page of its own (4.7 KB
/// on disk per record; copies 4× slower, gets 3.7× slower, measured). There
/// `records` becomes a rowid table: a record up to ~4 KB stays inside its
/// table page, and the same primary key becomes a separate index (the
/// version order every read and chunk seeks in). Same columns, same
/// constraints, same SQL; only the storage differs. On 16 KiB pages the
/// clustered layout stays: there a separate index would make exports and
/// list pages 2× slower in SQLite.
const RECORDS_ON_SMALL_PAGES: &str = r#"
    CREATE TABLE records_rowid (
        container    INTEGER NOT NULL,
        collection   TEXT NOT NULL,
        key          TEXT NOT NULL,
        lsn          INTEGER NOT NULL,
        deleted      INTEGER NOT NULL,
        body         TEXT,
        size         INTEGER NOT NULL,
        visible_from INTEGER,
        PRIMARY KEY (container, collection, key, lsn)
    );
    INSERT INTO records_rowid (container, collection, key, lsn, deleted, body, size, visible_from)
        SELECT container, collection, key, lsn, deleted, body, size, visible_from FROM records
        ORDER BY container, collection, key, lsn;
    DROP TABLE records;
    ALTER TABLE records_rowid RENAME TO records;
    CREATE INDEX records_lsn ON records (container, lsn);
    CREATE INDEX records_visible_from ON records (container, visible_from)
        WHERE visible_from IS NOT NULL;
"#;

/// The statements some migrations (by index into MIGRATIONS) also run on
/// PostgreSQL: settings of its planner, which SQLite does not have.
const POSTGRES_ONLY: &[(usize, &str)] = &[(14, POSTGRES_PLANNER), (15, POSTGRES_SMALL_SAMPLE)];

/// PostgreSQL's planner keeps no statistics of `records.container`.
/// Every query names one container, and the one it names is often new (a
/// staging branch, a copy's target): the statistics, taken before it had
/// rows, put it at one row, and the planner then took `records_lsn`
/// (container, lsn) for lookups by key and walked the whole container for
/// each one (an import ran at 1 000 records/s, slowing as it grew).
/// Without them every container is a fixed share of the table, and a seek
/// on the primary key (container, collection, key) wins whenever the key
/// is known.
const POSTGRES_PLANNER: &str = r#"
    ALTER TABLE records ALTER COLUMN container SET STATISTICS 0;
"#;

/// `ANALYZE records` samples 300 rows per unit of its largest statistics
/// target: 30 000 rows at the default 100, which on a table of 300 000
/// records took 190 ms of a tick (a copy's worker runs it once a fifth of
/// the table changed, see `dialect::maintain`). The planner's choices
/// here need only the table's size and each column's rough spread, which
/// a target of 10 gives (3 000 rows, 28 ms); the bodies are never
/// filtered on and need none.
const POSTGRES_SMALL_SAMPLE: &str = r#"
    ALTER TABLE records ALTER COLUMN collection SET STATISTICS 10;
    ALTER TABLE records ALTER COLUMN key SET STATISTICS 10;
    ALTER TABLE records ALTER COLUMN lsn SET STATISTICS 10;
    ALTER TABLE records ALTER COLUMN deleted SET STATISTICS 10;
    ALTER TABLE records ALTER COLUMN size SET STATISTICS 10;
    ALTER TABLE records ALTER COLUMN visible_from SET STATISTICS 10;
    ALTER TABLE records ALTER COLUMN body SET STATISTICS 0;
"#;

/// The schema version this engine writes.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

/// The statements of migration `i` (from version `i` to `i + 1`), for
/// tests that build an old database.
#[doc(hidden)]
pub fn migration_statements(i: usize) -> Vec<String> {
    split_statements(MIGRATIONS[i])
}

/// The table holding the schema version: one row, id 1.
const VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS spinoff_schema (
        id      INTEGER PRIMARY KEY CHECK (id = 1),
        version INTEGER NOT NULL
    )";

/// The page size of a database a local backend creates for the engine
/// (see [`Maintenance::Prepare`]).
pub const PAGE_SIZE: i64 = 16384;

/// Whether the stored version is `VERSION` or newer: the fast path of
/// every `Engine::open`, one read. Anything else — no version table yet, a
/// busy or lost connection, no row, a value that is not an integer —
/// answers false on purpose and nothing is skipped: the slow path is one
/// write transaction that reads the version again and fails loudly on any
/// error. No user data passes here.
fn up_to_date(db: &dyn Db) -> bool {
    match db.execute("SELECT version FROM spinoff_schema WHERE id = 1", &[]) {
        Ok(rows) => rows
            .first()
            .and_then(|r| r.opt_i64(0).ok().flatten())
            .is_some_and(|v| v >= VERSION),
        Err(_) => false,
    }
}

/// The version of a database from before the version table: SQLite's
/// `user_version`, read only. A backend that refuses the PRAGMA never
/// held such a database.
fn legacy_version(db: &dyn Db) -> i64 {
    db.execute("PRAGMA user_version", &[])
        .ok()
        .and_then(|rows| rows.first().and_then(|r| r.i64(0).ok()))
        .unwrap_or(0)
}

/// Bring the schema up to date. Idempotent, safe to run concurrently.
pub fn migrate(db: &dyn Db) -> Result<()> {
    if up_to_date(db) {
        return Ok(());
    }
    // An empty database is about to get its first table: a local backend
    // picks 16 KiB pages and WAL now, while it still can (both are fixed
    // once the file has tables or is in WAL; see Maintenance::Prepare).
    let dialect = db.dialect();
    let empty = one(db, dialect.count_tables(), &[])?
        .map(|r| r.i64(0))
        .transpose()?
        .unwrap_or(0)
        == 0;
    if empty {
        let _ = db.maintain(Maintenance::Prepare);
    }
    // Asked outside the transaction: a backend that cannot tell refuses it.
    // (PostgreSQL lays out its own pages: nothing to choose.)
    let small_pages =
        dialect == Dialect::Sqlite && db.page_size().is_none_or(|p| p < CLUSTERED_MIN_PAGE);
    transaction(db, |db| {
        exec(db, &dialect.ddl(VERSION_TABLE), &[])?;
        let mut v = match one(db, "SELECT version FROM spinoff_schema WHERE id = 1", &[])? {
            Some(r) => r.i64(0)?,
            // Only SQLite databases are old enough (and a failed statement
            // would end a PostgreSQL transaction).
            None if dialect == Dialect::Sqlite => legacy_version(db),
            None => 0,
        };
        while v < VERSION {
            for stmt in split_statements(MIGRATIONS[v as usize]) {
                exec(db, &dialect.ddl(&stmt), &[])?;
            }
            if v as usize == RECORDS_LAYOUT_MIGRATION && small_pages {
                for stmt in split_statements(RECORDS_ON_SMALL_PAGES) {
                    exec(db, &stmt, &[])?;
                }
            }
            if dialect == Dialect::Postgres {
                for (_, sql) in POSTGRES_ONLY.iter().filter(|(m, _)| *m == v as usize) {
                    for stmt in split_statements(sql) {
                        exec(db, &stmt, &[])?;
                    }
                }
            }
            v += 1;
        }
        // Also records a version adopted from user_version.
        exec(
            db,
            "INSERT INTO spinoff_schema (id, version) VALUES (1, ?1)
             ON CONFLICT (id) DO UPDATE SET version = excluded.version",
            &[v.into()],
        )?;
        Ok(())
    })
}

/// Split a migration into statements at `;` line ends (the schema has no
/// `;` inside literals or triggers).
fn split_statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in sql.lines() {
        let code = match line.find("--") {
            Some(i) => &line[..i],
            None => line,
        };
        cur.push_str(code);
        cur.push('\n');
        if code.trim_end().ends_with(';') {
            let s = cur.trim().trim_end_matches(';').trim().to_string();
            if !s.is_empty() {
                out.push(s);
            }
            cur.clear();
        }
    }
    let s = cur.trim().to_string();
    if !s.is_empty() {
        out.push(s);
    }
    out
}

/// The statuses of an operation still under way, as an SQL list for
/// `status IN …`: word for word the predicate of the partial indexes on
/// `operations` above (a test holds them together), so that SQLite uses
/// them for every query written with it.
pub(crate) const ACTIVE: &str = "('pending', 'in_progress')";

#[cfg(test)]
mod tests {
    /// The queries' `status IN …` ([`ACTIVE`]) and the partial
    /// indexes' predicates are the same words, so that SQLite uses the
    /// indexes for them.
    #[test]
    fn the_active_statuses_are_the_partial_indexes_predicate_word_for_word() {
        let all = super::MIGRATIONS.concat();
        let predicates = all.matches("status IN (").count();
        assert!(predicates >= 3, "the partial indexes on operations");
        let ours = format!("status IN {}", super::ACTIVE);
        assert_eq!(all.matches(&ours).count(), predicates, "{ours}");
    }
}
