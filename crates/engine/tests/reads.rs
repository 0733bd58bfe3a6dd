//! `reads` and `lookup`: list pages, the retained window, and the plan
//! of every read and chunk statement the engine sends.

mod common;
use common::*;
use engine::*;

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

/// A `Db` that records every statement the engine sends, with its
/// parameters, and passes it on.
struct Recorder<'a> {
    inner: &'a common::TestDb,
    sent: std::cell::RefCell<Vec<(String, Vec<Value>)>>,
}

impl engine::Db for Recorder<'_> {
    fn dialect(&self) -> engine::Dialect {
        self.inner.dialect()
    }
    fn changes(&self) -> Result<u64, DbError> {
        self.inner.changes()
    }
    fn begin(&self, mode: engine::TxMode) -> Result<(), DbError> {
        engine::dialect::begin(self, mode, true)
    }
    fn execute(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        self.sent
            .borrow_mut()
            .push((sql.to_string(), params.to_vec()));
        self.inner.execute(sql, params)
    }
    /// What the engine declares a read must be one: a backend runs it
    /// again after an interruption, which a write must never be.
    fn select(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        let up = sql.to_ascii_uppercase();
        let verb = up.split_whitespace().next().unwrap_or("");
        assert!(
            (verb == "SELECT" || verb == "WITH" || verb == "PRAGMA")
                && !["INSERT ", "UPDATE ", "DELETE ", "REPLACE ", "RETURNING"]
                    .iter()
                    .any(|w| up.contains(w)),
            "sent as a read, but it writes: {sql}"
        );
        self.execute(sql, params)
    }
    fn maintain(&self, task: Maintenance) -> Result<(), DbError> {
        self.inner.maintain(task)
    }
    fn page_size(&self) -> Option<i64> {
        self.inner.page_size()
    }
}

/// Every kind of read and chunk the engine has, on a plain container and
/// on branches (a history branch, a filtered skip-history branch, a
/// committed import's level with its `visible_from`), hydrations, a
/// physical copy, a verification and retention; every statement that
/// touches `records` recorded as sent.
fn recorded(fx: &Fx) -> Vec<(String, Vec<Value>)> {
    let rec = Recorder {
        inner: &fx.db,
        sent: Default::default(),
    };
    let e = Engine::open(&rec, &fx.env).unwrap();
    // The migrations are not the engine's reads.
    rec.sent.borrow_mut().clear();
    e.create_container("native", "acme", "src", &serde_json::json!({}))
        .unwrap();
    for round in 0..3 {
        let writes: Vec<Write> = (0..200)
            .map(|i| {
                put(
                    ["a", "b"][i % 2],
                    &format!("k{i:04}"),
                    &format!("{{\"r\":{round}}}"),
                )
            })
            .chain((0..20).map(|i| del("a", &format!("k{:04}", i * 2 + round))))
            .collect();
        e.write("native", "acme", "src", &writes).unwrap();
        fx.env.advance(1_000_000);
    }
    let src = e.container("native", "acme", "src").unwrap();
    e.snapshot(&src, Some("s1")).unwrap();
    let (b1, _) = e
        .create_operation(&branch_req(&src, "b1", Strategy::Now, true))
        .unwrap();
    assert_eq!(b1.status, Status::Succeeded);
    let mut narrow = branch_req(&src, "b2", Strategy::Now, false);
    narrow.collections = Some(vec!["a".into()]);
    e.create_operation(&narrow).unwrap();
    let b1c = e.container("native", "acme", "b1").unwrap();
    e.write(
        "native",
        "acme",
        "b1",
        &[put("a", "k0001", "{}"), del("b", "k0003")],
    )
    .unwrap();
    // An import into the branch: a level that shows from its commit.
    let imp = e.open_import(&b1c, 60_000_000).unwrap();
    e.stage_import(&b1c, &imp.id, &[put("c", "new", "{}")], 60_000_000)
        .unwrap();
    e.commit_import(&b1c, &imp.id).unwrap();
    let b2c = e.container("native", "acme", "b2").unwrap();
    let b1c = e.container("native", "acme", "b1").unwrap();
    for c in [&src, &b1c, &b2c] {
        let head = e.resolve(c, AsOf::Head).unwrap();
        e.get(c, "a", "k0001", AsOf::Head).ok();
        let old = AsOf::Lsn(c.floor_lsn.max(2));
        e.get(c, "b", "k0002", old).ok();
        e.history(c, "a", "k0005", None, 10).unwrap();
        e.list(c, "a", None, 50, AsOf::Head).unwrap();
        e.list(c, "b", Some("k0100"), 50, old).unwrap();
        e.export_page(c, head, None, 50).unwrap();
        e.export_page(c, head, Some(("a", "k0100")), 50).unwrap();
    }
    // A physical copy of the branch, its verification, its hydration.
    let (copy, _) = e
        .create_operation(&clone_req(&b1c, "copy", Strategy::Now, true))
        .unwrap();
    run_to_end(&e, &copy.id, Some(100));
    let v = e.verify(&b1c).unwrap();
    run_to_end(&e, &v.id, Some(100));
    let h = e.hydrate(&b2c).unwrap().expect("b2 reads through src");
    run_to_end(&e, &h.id, Some(100));
    // Retention over the source, then a deletion and its purge.
    fx.env.advance(10_000_000);
    while e.prune_step(1, 100).unwrap() > 0 {}
    e.delete_container("native", "acme", "copy").unwrap();
    while e.purge_step(100).unwrap() > 0 {}
    rec.sent
        .into_inner()
        .into_iter()
        .filter(|(sql, _)| {
            let verb = sql.split_whitespace().next().unwrap_or("");
            sql.contains("records")
                && ["SELECT", "WITH", "INSERT", "UPDATE", "DELETE"].contains(&verb)
        })
        .collect()
}

/// `EXPLAIN QUERY PLAN` of a recorded statement, its detail lines.
fn plan(fx: &Fx, sql: &str, params: &[Value]) -> Vec<String> {
    fx.db
        .execute(&format!("EXPLAIN QUERY PLAN {sql}"), params)
        .unwrap()
        .iter()
        .map(|r| r.text(3).unwrap())
        .collect()
}

/// Every statement the engine sends that reads or writes `records` finds
/// its rows through the primary key (or the `records_lsn` /
/// `records_visible_from` indexes): no statement scans the table. The
/// statements are the ones the engine actually sent, recorded through the
/// seam, so a new read path or a changed one is checked as it is.
fn no_statement_scans_records(fx: Fx) {
    let sent = recorded(&fx);
    // The detector sees a scan where there is one.
    assert!(plan(&fx, "SELECT * FROM records r WHERE r.size > 0", &[])
        .iter()
        .any(|l| l.starts_with("SCAN r")));
    let mut shapes = std::collections::BTreeSet::new();
    let mut scans = Vec::new();
    for (sql, params) in &sent {
        shapes.insert(sql.clone());
        for line in plan(&fx, sql, params) {
            let scanned = line
                .strip_prefix("SCAN ")
                .map(|t| t.split_whitespace().next().unwrap_or(""));
            if matches!(scanned, Some("r" | "x" | "y" | "r2" | "records")) {
                scans.push(format!("{line}\n    in: {sql}"));
            }
        }
    }
    assert!(
        scans.is_empty(),
        "full scans of records:\n{}",
        scans.join("\n")
    );
    // What the scenario must have sent, or the check above proves little:
    // branch reads through levels (a UNION), the visible-from condition,
    // the copy's INSERT … SELECT, retention's and the purge's deletes.
    for must in [
        " UNION ",
        "visible_from <=",
        "ON CONFLICT DO NOTHING",
        "INSERT INTO records",
        "DELETE FROM records",
        "ORDER BY 1, 2, 3 LIMIT 1 OFFSET",
    ] {
        assert!(
            shapes.iter().any(|s| s.contains(must)),
            "no recorded statement contains {must:?}"
        );
    }
    assert!(shapes.len() >= 25, "only {} statement shapes", shapes.len());
}

#[test]
fn every_statement_the_engine_sends_uses_the_primary_key() {
    if sqlite_only("the query-plan check") {
        return;
    }
    no_statement_scans_records(Fx::new());
}

#[test]
fn every_statement_uses_the_primary_key_on_small_pages_too() {
    if sqlite_only("the query-plan check on small pages") {
        return;
    }
    no_statement_scans_records(Fx::on_small_pages());
}
