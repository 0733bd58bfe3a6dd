//! Containers and versioned records: writes, latest and as-of reads,
//! history, stats, tenant scoping, validation.

mod common;
use common::*;
use engine::*;

#[test]
fn migrations_are_idempotent_and_concurrent_first_use_is_safe() {
    let fx = Fx::new();
    let path = fx.dir.path().join("db.sqlite");
    let results: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let path = path.clone();
                s.spawn(move || {
                    engine::schema::migrate(&engine::native::NativeDb::open(&path).unwrap())
                })
            })
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

#[test]
fn writes_append_versions_with_increasing_lsns_and_reads_see_as_of() {
    let fx = Fx::new();
    let e = fx.engine();
    let c = e
        .create_container("native", "acme", "db1", &serde_json::json!({"x": 1}))
        .unwrap();
    let w1 = e.put(&c, "users", "u1", r#"{"v":1}"#).unwrap();
    fx.env.advance(1_000_000);
    let w2 = e.put(&c, "users", "u1", r#"{"v":2}"#).unwrap();
    fx.env.advance(1_000_000);
    let w3 = e.delete(&c, "users", "u1").unwrap();
    assert!(w1.lsn < w2.lsn && w2.lsn < w3.lsn);
    assert!(w1.committed_at < w2.committed_at);

    assert_eq!(
        e.get(&c, "users", "u1", AsOf::Head).unwrap_err().kind,
        ErrorKind::NotFound
    );
    assert_eq!(
        e.get(&c, "users", "u1", AsOf::Lsn(w1.lsn))
            .unwrap()
            .body
            .unwrap(),
        r#"{"v":1}"#
    );
    assert_eq!(
        e.get(&c, "users", "u1", AsOf::Lsn(w2.lsn))
            .unwrap()
            .body
            .unwrap(),
        r#"{"v":2}"#
    );
    assert_eq!(
        e.get(&c, "users", "u1", AsOf::Time(w1.committed_at + 10))
            .unwrap()
            .body
            .unwrap(),
        r#"{"v":1}"#
    );
    assert_eq!(
        e.get(&c, "users", "u1", AsOf::Time(w2.committed_at))
            .unwrap()
            .body
            .unwrap(),
        r#"{"v":2}"#
    );

    let h = e.history(&c, "users", "u1", None, 10).unwrap();
    assert_eq!(
        h.iter().map(|v| (v.lsn, v.deleted)).collect::<Vec<_>>(),
        vec![(w3.lsn, true), (w2.lsn, false), (w1.lsn, false)]
    );
    assert_eq!(h[0].committed_at, Some(w3.committed_at));
    let page = e.history(&c, "users", "u1", Some(w2.lsn), 10).unwrap();
    assert_eq!(page.len(), 1);

    // Delete of a missing key is NotFound and writes nothing.
    assert_eq!(
        e.delete(&c, "users", "u1").unwrap_err().kind,
        ErrorKind::NotFound
    );
    let c = e.container("native", "acme", "db1").unwrap();
    assert!(c.head_lsn >= w3.lsn);
    let stats = e.collections(&c).unwrap();
    assert_eq!(stats[0].records, 0);
    assert_eq!(stats[0].versions, 3);
}

#[test]
fn batches_are_all_or_nothing_and_last_write_of_a_key_wins() {
    let fx = Fx::new();
    let e = fx.engine();
    let c = e
        .create_container("native", "acme", "db", &serde_json::json!({}))
        .unwrap();
    let bad = e
        .write(
            "native",
            "acme",
            "db",
            &[put("a", "1", "{}"), put("a", "2", "not json")],
        )
        .unwrap_err();
    assert_eq!(bad.kind, ErrorKind::InvalidInput);
    assert!(bad.message.contains("not valid JSON"), "{}", bad.message);
    assert!(e.list(&c, "a", None, 10, AsOf::Head).unwrap().is_empty());

    let done = e
        .write(
            "native",
            "acme",
            "db",
            &[
                put("a", "1", "{\"n\":1}"),
                put("a", "1", "{\"n\":2}"),
                put("b", "x", "[]"),
            ],
        )
        .unwrap();
    assert_eq!(done.applied, 3);
    let v = e.get(&c, "a", "1", AsOf::Head).unwrap();
    assert_eq!(v.body.unwrap(), "{\"n\":2}");
    assert_eq!(e.history(&c, "a", "1", None, 10).unwrap().len(), 1);
    let stats = e.collections(&c).unwrap();
    assert_eq!(
        (
            stats[0].name.as_str(),
            stats[0].records,
            stats[0].versions,
            stats[0].bytes
        ),
        ("a", 1, 1, 7)
    );
    assert_eq!((stats[1].name.as_str(), stats[1].records), ("b", 1));
}

#[test]
fn listing_pages_by_key_and_hides_deleted() {
    let fx = Fx::new();
    let e = fx.engine();
    let c = e
        .create_container("native", "acme", "db", &serde_json::json!({}))
        .unwrap();
    let writes: Vec<Write> = (0..20)
        .map(|i| put("c", &format!("k{i:02}"), &format!("{i}")))
        .collect();
    let first = e.write("native", "acme", "db", &writes).unwrap();
    e.write(
        "native",
        "acme",
        "db",
        &[del("c", "k03"), put("c", "k04", "\"new\"")],
    )
    .unwrap();
    let page = e.list(&c, "c", None, 5, AsOf::Head).unwrap();
    assert_eq!(
        page.iter().map(|v| v.key.as_str()).collect::<Vec<_>>(),
        ["k00", "k01", "k02", "k04", "k05"]
    );
    assert_eq!(page[3].body.as_deref(), Some("\"new\""));
    let next = e.list(&c, "c", Some("k05"), 100, AsOf::Head).unwrap();
    assert_eq!(next.len(), 14);
    let old = e.list(&c, "c", None, 100, AsOf::Lsn(first.lsn)).unwrap();
    assert_eq!(old.len(), 20);
    assert_eq!(old[4].body.as_deref(), Some("4"));
}

#[test]
fn tenants_never_see_each_other() {
    let fx = Fx::new();
    let e = fx.engine();
    e.create_container("native", "acme", "shared-name", &serde_json::json!({}))
        .unwrap();
    // The same name in another tenant is another resource.
    e.create_container("native", "globex", "shared-name", &serde_json::json!({}))
        .unwrap();
    e.create_container("native", "acme", "only-acme", &serde_json::json!({}))
        .unwrap();
    assert_eq!(
        e.container("native", "globex", "only-acme")
            .unwrap_err()
            .kind,
        ErrorKind::NotFound
    );
    assert_eq!(
        e.list_containers("native", "globex", 0, 10).unwrap().len(),
        1
    );
    assert_eq!(e.count_containers("native", "acme").unwrap(), 2);
    assert_eq!(
        e.create_container("native", "acme", "only-acme", &serde_json::json!({}))
            .unwrap_err()
            .kind,
        ErrorKind::AlreadyExists
    );
}

#[test]
fn names_keys_and_bodies_are_validated() {
    let fx = Fx::new();
    let e = fx.engine();
    assert_eq!(
        e.create_container("native", "acme", "bad name", &serde_json::json!({}))
            .unwrap_err()
            .kind,
        ErrorKind::InvalidInput
    );
    let c = e
        .create_container("native", "acme", "db", &serde_json::json!({}))
        .unwrap();
    assert_eq!(
        e.put(&c, "", "k", "{}").unwrap_err().kind,
        ErrorKind::InvalidInput
    );
    assert_eq!(
        e.put(&c, "c", &"k".repeat(600), "{}").unwrap_err().kind,
        ErrorKind::InvalidInput
    );
    assert_eq!(
        e.put(&c, "c", "k", "{").unwrap_err().kind,
        ErrorKind::InvalidInput
    );
    let many: Vec<Write> = (0..50_001).map(|i| put("c", &i.to_string(), "1")).collect();
    assert_eq!(
        e.write("native", "acme", "db", &many).unwrap_err().kind,
        ErrorKind::TooLarge
    );
}

#[test]
fn as_of_outside_the_window_names_it() {
    let fx = Fx::new();
    let e = fx.engine();
    let c = e
        .create_container("native", "acme", "db", &serde_json::json!({}))
        .unwrap();
    e.put(&c, "c", "k", "1").unwrap();
    let before = c.created_at - 1_000_000;
    let err = e.get(&c, "c", "k", AsOf::Time(before)).unwrap_err();
    match err.kind {
        ErrorKind::OutsideRetention { from, to } => {
            assert_eq!(from, c.created_at);
            assert!(to > from);
        }
        k => panic!("{k:?}"),
    }
    assert!(
        err.message.contains("keeps history from"),
        "{}",
        err.message
    );
    let future = e
        .get(&c, "c", "k", AsOf::Time(fx.env.now.get() + 10_000_000))
        .unwrap_err();
    assert_eq!(future.kind, ErrorKind::InvalidInput);
    assert!(future.message.contains("future"));
    assert_eq!(
        e.get(&c, "c", "k", AsOf::Lsn(1_000_000)).unwrap_err().kind,
        ErrorKind::InvalidInput
    );
}

#[test]
fn reads_and_chunks_use_the_primary_key() {
    let fx = Fx::new();
    let e = fx.engine();
    let _ = e
        .create_container("native", "acme", "db", &serde_json::json!({}))
        .unwrap();
    let plan = |sql: &str| -> String {
        fx.db
            .execute(&format!("EXPLAIN QUERY PLAN {sql}"), &[])
            .unwrap()
            .iter()
            .map(|r| r.text(3).unwrap())
            .collect::<Vec<_>>()
            .join(" | ")
    };
    let p = plan(
        "SELECT r.collection, r.key, r.lsn FROM records r WHERE r.container = 1 AND r.lsn <= 100 \
         AND (r.collection, r.key, r.lsn) > ('a', 'b', 3) ORDER BY r.collection, r.key, r.lsn LIMIT 1 OFFSET 10",
    );
    assert!(
        p.contains("SEARCH r USING PRIMARY KEY (container=? AND") && !p.contains("TEMP B-TREE"),
        "{p}"
    );
    let p = plan("SELECT * FROM records r WHERE r.container = 1 AND r.collection = 'a' AND r.key = 'b' AND r.lsn <= 5 ORDER BY r.lsn DESC LIMIT 1");
    assert!(
        p.contains("SEARCH r USING PRIMARY KEY (container=? AND collection=? AND key=? AND lsn<?)"),
        "{p}"
    );
}

#[test]
fn owned_names_belong_to_one_tenant() {
    let fx = Fx::new();
    let e = fx.engine();
    e.claim_owned("project", "p1", "acme").unwrap();
    assert_eq!(
        e.claim_owned("project", "p1", "acme").unwrap().tenant,
        "acme"
    );
    assert_eq!(
        e.claim_owned("project", "p1", "globex").unwrap_err().kind,
        ErrorKind::NotFound
    );
    assert_eq!(
        e.owned("project", "p1", "globex").unwrap_err().kind,
        ErrorKind::NotFound
    );
    e.create_owned(
        "environment",
        "e1",
        "acme",
        Some("p1"),
        &serde_json::json!({"name": "prod"}),
    )
    .unwrap();
    assert_eq!(
        e.list_owned("environment", "acme", Some("p1"))
            .unwrap()
            .len(),
        1
    );
    assert!(e
        .list_owned("environment", "globex", None)
        .unwrap()
        .is_empty());
    assert!(matches!(
        e.create_owned("environment", "e1", "globex", None, &serde_json::json!({}))
            .unwrap_err()
            .kind,
        ErrorKind::Conflict { .. }
    ));
}

/// A new database has 16 KiB pages, so ~1 KiB records stay inside their
/// B-tree page instead of taking an overflow page each: the file grows by
/// about a record's size per record, not four times that.
#[test]
fn a_new_database_keeps_one_kib_records_in_page() {
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

/// A batch larger than one multi-row statement, with the same key written
/// twice across the statement boundary and deletes of keys put earlier in
/// the batch, reads and counts exactly as the writes one by one would.
#[test]
fn a_large_batch_with_repeats_matches_writes_one_by_one() {
    let fx = Fx::new();
    let e = fx.engine();
    for name in ["a", "b"] {
        e.create_container("native", "acme", name, &serde_json::json!({}))
            .unwrap();
    }
    let first: Vec<Write> = (0..50)
        .map(|i| put("c", &format!("k{i:04}"), "{\"v\":0}"))
        .collect();
    let mut batch: Vec<Write> = Vec::new();
    for i in 0..300 {
        batch.push(put(
            ["c", "d"][i % 2],
            &format!("k{:04}", i % 200),
            &format!("{{\"v\":{i}}}"),
        ));
    }
    for i in (0..60).step_by(3) {
        batch.push(del("c", &format!("k{i:04}")));
    }
    batch.push(del("c", "never-written"));
    e.write("native", "acme", "a", &first).unwrap();
    e.write("native", "acme", "b", &first).unwrap();
    let mut applied = 0;
    for w in &batch {
        applied += e
            .write("native", "acme", "a", std::slice::from_ref(w))
            .unwrap()
            .applied;
    }
    let done = e.write("native", "acme", "b", &batch).unwrap();
    assert_eq!(done.applied, applied);
    let a = e.container("native", "acme", "a").unwrap();
    let b = e.container("native", "acme", "b").unwrap();
    let latest = |c: &Container| -> Vec<(String, String, Option<String>)> {
        ["c", "d"]
            .iter()
            .flat_map(|coll| e.list(c, coll, None, 1000, AsOf::Head).unwrap())
            .map(|v| (v.collection, v.key, v.body))
            .collect()
    };
    assert_eq!(latest(&a), latest(&b));
    let counts = |c: &Container| -> Vec<(String, i64, i64)> {
        e.collections(c)
            .unwrap()
            .into_iter()
            .map(|s| (s.name, s.records, s.bytes))
            .collect()
    };
    assert_eq!(counts(&a), counts(&b));
    // c: 100 even keys from the batch + 25 odd ones below 50 from `first`;
    // d: 100 odd keys; 18 of the 20 deletes hit a live key (k0051 and
    // k0057 were never put in c).
    assert_eq!(latest(&b).len(), 225 - 18);
}

/// A database that gives up on the first commits it sees, as a remote
/// libSQL server does on `TRANSACTION_TIMEOUT` (it rolls the transaction
/// back): the engine runs the transaction again, and the write lands once.
struct GivesUp<'a> {
    inner: &'a engine::native::NativeDb,
    refusals: std::cell::Cell<u32>,
}

impl engine::Db for GivesUp<'_> {
    fn execute(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        self.inner.execute(sql, params)
    }
    fn commit(&self) -> Result<(), DbError> {
        if self.refusals.get() > 0 {
            self.refusals.set(self.refusals.get() - 1);
            self.inner.rollback()?;
            return Err(DbError::Unavailable(
                "Hrana: TRANSACTION_TIMEOUT Transaction timed out".into(),
            ));
        }
        self.inner.commit()
    }
}

#[test]
fn a_transaction_the_database_gave_up_on_runs_again_and_lands_once() {
    let fx = Fx::new();
    fx.engine()
        .create_container("native", "acme", "db", &serde_json::json!({}))
        .unwrap();
    let flaky = GivesUp {
        inner: &fx.db,
        refusals: std::cell::Cell::new(2),
    };
    let e = Engine::open(&flaky, &fx.env).unwrap();
    let done = e
        .write("native", "acme", "db", &[put("c", "k", "{\"v\":1}")])
        .unwrap();
    assert_eq!(flaky.refusals.get(), 0, "both refusals were met");
    let c = e.container("native", "acme", "db").unwrap();
    let versions = e.history(&c, "c", "k", None, 10).unwrap();
    assert_eq!(versions.len(), 1, "written once: {versions:?}");
    assert_eq!(versions[0].lsn, done.lsn);
    assert_eq!(
        e.head_lsn().unwrap(),
        done.lsn,
        "no LSN taken by the failed runs"
    );

    // More refusals than attempts: a retryable error, nothing committed.
    flaky.refusals.set(engine::db::TRANSACTION_ATTEMPTS);
    let err = e
        .write("native", "acme", "db", &[put("c", "k", "{\"v\":2}")])
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert!(err.is_retryable() && err.retry_after_s() == Some(1));
    assert_eq!(e.history(&c, "c", "k", None, 10).unwrap().len(), 1);
}
