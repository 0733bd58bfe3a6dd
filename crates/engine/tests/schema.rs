//! `schema`: migrations (idempotent, race-free, adopting older
//! databases) and the record layout on large and small pages.

mod common;
use common::*;
use engine::*;

#[test]
fn migrations_are_idempotent_and_concurrent_first_use_is_safe() {
    let fx = Fx::new();
    let conns: Vec<TestDb> = (0..4).map(|_| fx.other_connection()).collect();
    let results: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = conns
            .into_iter()
            .map(|db| s.spawn(move || engine::schema::migrate(&db)))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in results {
        r.unwrap();
    }
    engine::schema::migrate(&fx.db).unwrap();
    let v = fx
        .db
        .execute("SELECT version FROM spinoff_schema WHERE id = 1", &[])
        .unwrap()[0]
        .i64(0)
        .unwrap();
    assert_eq!(v, engine::schema::VERSION);
    if on_postgres() {
        return;
    }
    // The version is never written to user_version (read-only on Turso).
    let uv = fx.db.execute("PRAGMA user_version", &[]).unwrap()[0]
        .i64(0)
        .unwrap();
    assert_eq!(uv, 0);
    let mode = fx.db.execute("PRAGMA journal_mode", &[]).unwrap()[0]
        .text(0)
        .unwrap();
    assert_eq!(mode, "wal");
}

/// A database written before the version table (its version in
/// `user_version`) is adopted at that version: nothing is re-applied, and
/// the later migrations run once.
#[test]
fn a_database_versioned_by_user_version_is_adopted() {
    if sqlite_only("a_database_versioned_by_user_version_is_adopted") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let fresh = engine::native::NativeDb::open(&dir.path().join("v1.db")).unwrap();
    // The first migration's schema, as an old engine left it at version 1.
    for stmt in engine::schema::migration_statements(0) {
        fresh.execute(&stmt, &[]).unwrap();
    }
    fresh.execute("PRAGMA user_version = 1", &[]).unwrap();
    engine::schema::migrate(&fresh).unwrap();
    let v = fresh
        .execute("SELECT version FROM spinoff_schema", &[])
        .unwrap()[0]
        .i64(0)
        .unwrap();
    assert_eq!(v, engine::schema::VERSION);
    // Migration 5 ran once on top: its column exists.
    fresh
        .execute("SELECT expires_at FROM containers LIMIT 1", &[])
        .unwrap();
}

/// A new database has 16 KiB pages, so ~1 KiB records stay inside their
/// B-tree page instead of taking an overflow page each: the file grows by
/// about a record's size per record, not four times that.
#[test]
fn a_new_database_keeps_one_kib_records_in_page() {
    if sqlite_only("a_new_database_keeps_one_kib_records_in_page") {
        return;
    }
    let fx = Fx::new();
    engine::schema::migrate(&fx.db).unwrap();
    let page: i64 = fx.db.execute("PRAGMA page_size", &[]).unwrap()[0]
        .i64(0)
        .unwrap();
    assert_eq!(page, engine::schema::PAGE_SIZE);
    let per_record = bytes_per_record(&fx);
    assert!(
        per_record < 1600,
        "{per_record} bytes per 1 KiB record: records spill into overflow pages"
    );
}

/// Bytes the file grows per ~1 KiB record written, over 2 000 records.
fn bytes_per_record(fx: &Fx) -> i64 {
    let e = fx.engine();
    let q = |sql: &str| fx.db.execute(sql, &[]).unwrap()[0].i64(0).unwrap();
    e.create_container("native", "acme", "db", &serde_json::json!({}))
        .unwrap();
    let pad = "x".repeat(1000);
    let n = 2000;
    let before = q("PRAGMA page_count");
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let writes: Vec<Write> = chunk
            .iter()
            .map(|i| put("c", &format!("k{i:06}"), &format!("{{\"pad\":\"{pad}\"}}")))
            .collect();
        e.write("native", "acme", "db", &writes).unwrap();
    }
    (q("PRAGMA page_count") - before) * q("PRAGMA page_size") / n
}

/// The `CREATE TABLE` of `records` as stored.
fn records_sql(fx: &Fx) -> String {
    fx.db
        .execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'records'",
            &[],
        )
        .unwrap()[0]
        .text(0)
        .unwrap()
}

/// On 4 KiB pages (a remote libSQL server's) records live in a rowid
/// table, so a ~1 KiB record stays inside its page there too; on the
/// engine's own 16 KiB pages they stay clustered by key.
#[test]
fn records_stay_in_page_on_small_pages_too() {
    if sqlite_only("records_stay_in_page_on_small_pages_too") {
        return;
    }
    let small = Fx::on_small_pages();
    let per_record = bytes_per_record(&small);
    assert!(
        per_record < 1600,
        "{per_record} bytes per 1 KiB record on 4 KiB pages: records spill into overflow pages"
    );
    assert!(!records_sql(&small).contains("WITHOUT ROWID"));
    let large = Fx::new();
    engine::schema::migrate(&large.db).unwrap();
    assert!(records_sql(&large).contains("WITHOUT ROWID"));
}

/// A database at version 7 on 4 KiB pages, with records in the clustered
/// layout, moves them to the rowid layout in its migration: every version
/// kept, its indexes back, reads unchanged.
#[test]
fn the_layout_migration_keeps_every_record() {
    if sqlite_only("the_layout_migration_keeps_every_record") {
        return;
    }
    let fx = Fx::on_small_pages();
    for i in 0..7 {
        for stmt in engine::schema::migration_statements(i) {
            fx.db.execute(&stmt, &[]).unwrap();
        }
    }
    fx.db
        .execute(
            "CREATE TABLE spinoff_schema (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)",
            &[],
        )
        .unwrap();
    fx.db
        .execute("INSERT INTO spinoff_schema VALUES (1, 7)", &[])
        .unwrap();
    assert!(records_sql(&fx).contains("WITHOUT ROWID"));
    // A container and its versions as version 7 stored them.
    let exec = |sql: &str| {
        fx.db.execute(sql, &[]).unwrap();
    };
    exec("INSERT INTO containers (id, family, tenant, name, spec, state, head_lsn, floor_at, created_at, updated_at) \
          VALUES (1, 'native', 'acme', 'db', '{}', 'ready', 3, 0, 0, 0)");
    exec("INSERT INTO lsns (lsn, committed_at) VALUES (1, 10), (2, 20), (3, 30)");
    exec("INSERT INTO records (container, collection, key, lsn, deleted, body, size, visible_from) VALUES \
          (1, 'c', 'a', 1, 0, '{\"v\":1}', 7, NULL), (1, 'c', 'a', 2, 0, '{\"v\":2}', 7, NULL), \
          (1, 'c', 'b', 3, 1, NULL, 0, 3)");
    exec("INSERT INTO collection_stats (container, collection, records, bytes, versions, version_bytes) VALUES (1, 'c', 1, 7, 3, 14)");
    let rows = |fx: &Fx| {
        fx.db
            .execute(
                "SELECT container, collection, key, lsn, deleted, body, size, visible_from FROM records ORDER BY 1, 2, 3, 4",
                &[],
            )
            .unwrap()
    };
    let before = rows(&fx);
    engine::schema::migrate(&fx.db).unwrap();
    assert!(!records_sql(&fx).contains("WITHOUT ROWID"));
    assert_eq!(rows(&fx), before);
    let indexes: Vec<String> = fx
        .db
        .execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'records' ORDER BY name",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.text(0).unwrap())
        .collect();
    assert!(indexes.contains(&"records_lsn".to_string()), "{indexes:?}");
    assert!(
        indexes.contains(&"records_visible_from".to_string()),
        "{indexes:?}"
    );
    let e = fx.engine();
    let c = e.container("native", "acme", "db").unwrap();
    assert_eq!(
        e.get(&c, "c", "a", AsOf::Head).unwrap().body.unwrap(),
        r#"{"v":2}"#
    );
    assert_eq!(
        e.get(&c, "c", "a", AsOf::Lsn(1)).unwrap().body.unwrap(),
        r#"{"v":1}"#
    );
    // The primary key still refuses a second copy of a version.
    assert!(fx
        .db
        .execute(
            "INSERT INTO records (container, collection, key, lsn, deleted, body, size) VALUES (1, 'c', 'a', 2, 0, 'x', 1)",
            &[],
        )
        .is_err());
}
