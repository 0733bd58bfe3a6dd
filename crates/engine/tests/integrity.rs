//! Acknowledged writes are never lost: the paths that interleave with the
//! worker (issue "Nothing the API acknowledged is ever lost"). Each test
//! here is a scenario the simulation (`tests/sim.rs`) found or guards,
//! written out by hand so that it reads as a specification.

mod common;
use common::*;
use engine::*;

/// Step every runnable operation with `limit` records per chunk until none
/// is left, then purge.
fn settle(e: &Engine, limit: i64) {
    for _ in 0..10_000 {
        let Some(id) = e.next_runnable("w").unwrap() else {
            while e.purge_step(1_000).unwrap() > 0 {}
            return;
        };
        if e.claim(&id, "w").unwrap() {
            e.step(&id, "w", Some(limit)).unwrap();
            e.release(&id, "w").unwrap();
        }
    }
    panic!("the worker never settled");
}

fn import(e: &Engine, c: &Container, writes: &[Write]) -> Committed {
    let im = e.open_import(c, 60_000_000).unwrap();
    for batch in writes.chunks(7) {
        e.stage_import(c, &im.id, batch, 60_000_000).unwrap();
    }
    e.commit_import(c, &im.id).unwrap()
}

fn puts(collection: &str, from: usize, n: usize) -> Vec<Write> {
    (from..from + n)
        .map(|i| put(collection, &format!("k{i:04}"), &format!("{{\"i\":{i}}}")))
        .collect()
}

/// The bug as measured: an import committed while the hydration started by
/// the previous import is under way joins that hydration, whose cursor has
/// already passed the new import's keys; when it ends, every staging level
/// goes, the uncopied rows with them.
#[test]
fn an_import_committed_while_a_hydration_runs_is_never_lost() {
    let fx = Fx::new();
    let e = fx.engine();
    let c = e
        .create_container("native", "t", "src", &serde_json::json!({}))
        .unwrap();
    // Import 1 into collections a and b: its commit starts a hydration.
    let mut first = puts("a", 0, 20);
    first.extend(puts("b", 0, 20));
    import(&e, &c, &first);
    // The hydration copies collection a and part of b.
    let id = e
        .next_runnable("w")
        .unwrap()
        .expect("the commit started a hydration");
    assert!(e.claim(&id, "w").unwrap());
    e.step(&id, "w", Some(30)).unwrap();
    e.release(&id, "w").unwrap();
    // Import 2 lands in collection a, behind the hydration's cursor.
    let c = e.container("native", "t", "src").unwrap();
    import(&e, &c, &puts("a", 100, 10));
    // Puts and deletes land beside it.
    e.write(
        "native",
        "t",
        "src",
        &[put("a", "k0001", "{\"i\":-1}"), del("b", "k0002")],
    )
    .unwrap();
    settle(&e, 5);

    let c = e.container("native", "t", "src").unwrap();
    assert!(c.chain.is_empty(), "hydrated: reads through nothing");
    let got = export(&e, &c, i64::MAX);
    assert_eq!(
        got.len(),
        20 + 10 + 20 - 1,
        "every acknowledged record is there"
    );
    for i in 100..110 {
        let v = e
            .get(&c, "a", &format!("k{i:04}"), AsOf::Head)
            .unwrap_or_else(|err| panic!("import 2's a/k{i:04} is lost: {err}"));
        assert_eq!(v.body.as_deref(), Some(format!("{{\"i\":{i}}}").as_str()));
    }
    assert_eq!(
        e.get(&c, "a", "k0001", AsOf::Head).unwrap().body.as_deref(),
        Some("{\"i\":-1}")
    );
    // Statistics equal the data.
    let stats: std::collections::BTreeMap<String, i64> = e
        .collections(&c)
        .unwrap()
        .into_iter()
        .map(|s| (s.name, s.records))
        .collect();
    assert_eq!(stats.get("a"), Some(&30));
    assert_eq!(stats.get("b"), Some(&19));
}

/// Several imports in a row, each committed while the previous one's
/// hydration is part-way (the measured run: five imports, a worker tick
/// between each): nothing of any of them is lost.
#[test]
fn imports_in_a_row_beside_the_worker_keep_every_record() {
    let fx = Fx::new();
    let e = fx.engine();
    e.create_container("native", "t", "src", &serde_json::json!({}))
        .unwrap();
    let mut want = 0;
    for round in 0..5 {
        let c = e.container("native", "t", "src").unwrap();
        let mut w = Vec::new();
        for (j, col) in ["a", "b", "c", "d"].iter().enumerate() {
            w.extend(puts(col, round * 100 + j, 6));
        }
        want += w.len();
        import(&e, &c, &w);
        // One worker chunk between imports.
        if let Some(id) = e.next_runnable("w").unwrap() {
            if e.claim(&id, "w").unwrap() {
                e.step(&id, "w", Some(9)).unwrap();
                e.release(&id, "w").unwrap();
            }
        }
        while e.purge_step(1_000).unwrap() > 0 {}
    }
    settle(&e, 4);
    let c = e.container("native", "t", "src").unwrap();
    assert_eq!(export(&e, &c, i64::MAX).len(), want);
    let counted: i64 = e.collections(&c).unwrap().iter().map(|s| s.records).sum();
    assert_eq!(counted, want as i64);
}

/// Run a verification to its end in chunks of `limit`; its report.
fn verify(e: &Engine, c: &Container, limit: i64) -> serde_json::Value {
    let op = e.verify(c).unwrap();
    assert_eq!(op.kind, "verify");
    let done = run_to_end(e, &op.id, Some(limit));
    assert_eq!(done.status, Status::Succeeded);
    assert!(done.steps >= 1);
    done.meta["report"].clone()
}

#[test]
fn verify_is_clean_on_a_sound_resource_of_branches_and_imports() {
    let fx = Fx::new();
    let e = fx.engine();
    e.create_container("native", "t", "src", &serde_json::json!({}))
        .unwrap();
    e.write("native", "t", "src", &puts("a", 0, 30)).unwrap();
    e.write(
        "native",
        "t",
        "src",
        &[put("a", "k0003", "{\"v\":2}"), del("a", "k0004")],
    )
    .unwrap();
    let src = e.container("native", "t", "src").unwrap();
    import(&e, &src, &puts("b", 0, 12));
    let src = e.container("native", "t", "src").unwrap();
    let (op, _) = e
        .create_operation(&branch_req(&src, "br", Strategy::Now, true))
        .unwrap();
    assert_eq!(op.status, Status::Succeeded);
    e.write(
        "native",
        "t",
        "br",
        &[put("c", "x", "{}"), del("a", "k0001")],
    )
    .unwrap();
    // Writes after the verification's LSN do not count against it.
    let br = e.container("native", "t", "br").unwrap();
    let v = e.verify(&br).unwrap();
    e.write("native", "t", "br", &[put("c", "y", "{}")])
        .unwrap();
    let done = run_to_end(&e, &v.id, Some(4));
    let report = &done.meta["report"];
    assert_eq!(report["clean"], true, "{report}");
    assert_eq!(
        report["collections"]["a"]["counted"]["records"], 28,
        "{report}"
    );
    assert!(done.steps > 5, "chunked: {} steps", done.steps);
    let src = e.container("native", "t", "src").unwrap();
    assert_eq!(verify(&e, &src, 1000)["clean"], true);
    // The container was not touched.
    assert_eq!(
        e.container("native", "t", "br").unwrap().state,
        ContainerState::Ready
    );
}

/// The state the integrity bug left (before the fix): the container's
/// hydration dropped its levels and the staging rows were freed, though
/// not all of them had been copied. Made here by hand: levels dropped, an
/// import's uncopied rows deleted. The statistics still count them.
#[test]
fn verify_reports_statistics_that_disagree_with_the_data() {
    let fx = Fx::new();
    let e = fx.engine();
    let c = e
        .create_container("native", "t", "src", &serde_json::json!({}))
        .unwrap();
    import(&e, &c, &puts("a", 0, 20));
    let c = e.container("native", "t", "src").unwrap();
    assert_eq!(c.chain.len(), 1, "reads through the committed import");
    let stage = c.chain[0].ancestor;
    // What the buggy hydration's last chunk left: no level, and the
    // staging branch's rows freed before they were copied.
    for sql in [
        format!("DELETE FROM branch_levels WHERE container = {}", c.id),
        format!("DELETE FROM records WHERE container = {stage} AND key > 'k0011'"),
        format!(
            "INSERT INTO records (container, collection, key, lsn, deleted, body, size, visible_from) \
             SELECT {}, collection, key, lsn, deleted, body, size, visible_from FROM records WHERE container = {stage}",
            c.id
        ),
    ] {
        e.db().execute(&sql, &[]).unwrap();
    }
    let c = e.container("native", "t", "src").unwrap();
    assert_eq!(export(&e, &c, i64::MAX).len(), 12, "8 records lost");
    let report = verify(&e, &c, 5);
    assert_eq!(report["clean"], false, "{report}");
    let problems = report["problems"].to_string();
    assert!(
        problems.contains("collection a: the statistics count 20 records, the data holds 12"),
        "{report}"
    );
}

/// A verification never stands in the way: deleting the resource cancels
/// it (as a hydration is), and the deletion goes ahead.
#[test]
fn deleting_a_resource_cancels_its_verification() {
    let fx = Fx::new();
    let e = fx.engine();
    let c = e
        .create_container("native", "t", "src", &serde_json::json!({}))
        .unwrap();
    e.write("native", "t", "src", &puts("a", 0, 20)).unwrap();
    let op = e.verify(&c).unwrap();
    assert!(e.claim(&op.id, "w").unwrap());
    e.step(&op.id, "w", Some(3)).unwrap();
    e.release(&op.id, "w").unwrap();
    e.delete_container("native", "t", "src").unwrap();
    let op = e.operation_by_id(&op.id).unwrap().unwrap();
    assert_eq!(op.status, Status::Canceled);
    assert!(e.next_runnable("w").unwrap().is_none());
}
