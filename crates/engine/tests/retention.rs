//! Retention: pruning keeps every read inside the window exact, raises the
//! floor, and never removes what a snapshot or an active operation needs.

mod common;
use common::*;
use engine::*;
use serde_json::json;

const HOUR: i64 = 3_600_000_000;

#[test]
fn pruning_removes_superseded_versions_outside_the_window_only() {
    let fx = Fx::new();
    let e = fx.engine();
    let c = e
        .create_container("native", "acme", "db", &json!({}))
        .unwrap();
    let mut keys = Vec::new();
    for i in 0..30 {
        keys.push(format!("k{i:02}"));
    }
    for v in 0..3 {
        let w: Vec<Write> = keys.iter().map(|k| put("a", k, &v.to_string())).collect();
        e.write("native", "acme", "db", &w).unwrap();
        fx.env.advance(HOUR);
    }
    e.delete(&c, "a", "k00").unwrap();
    fx.env.advance(HOUR);
    let old_lsn = e.head_lsn().unwrap();
    let expected_now = export(&e, &c, i64::MAX);
    // Recent writes inside the window.
    e.put(&c, "a", "k01", "\"recent\"").unwrap();
    let recent = e.container("native", "acme", "db").unwrap().head_lsn;
    fx.env.advance(HOUR / 2);

    let mut gone = 0;
    loop {
        let n = e.prune_step(HOUR, 7).unwrap();
        gone += n;
        if n == 0
            && fx
                .db
                .execute("SELECT count(*) FROM prune_passes", &[])
                .unwrap()[0]
                .i64(0)
                .unwrap()
                == 0
        {
            break;
        }
    }
    // 30 keys × 2 superseded versions, and k00's deletion chain (3 versions + tombstone − …).
    assert!(gone >= 60, "{gone}");
    let c = e.container("native", "acme", "db").unwrap();
    assert!(
        c.floor_lsn >= old_lsn && c.floor_lsn < recent,
        "{} {} {}",
        c.floor_lsn,
        old_lsn,
        recent
    );
    // Reads inside the window are unchanged.
    assert_eq!(export(&e, &c, old_lsn.max(c.floor_lsn)), expected_now);
    assert_eq!(
        e.get(&c, "a", "k01", AsOf::Head).unwrap().body.unwrap(),
        "\"recent\""
    );
    assert_eq!(e.history(&c, "a", "k01", None, 10).unwrap().len(), 2);
    assert_eq!(e.history(&c, "a", "k00", None, 10).unwrap().len(), 0);
    // Reads before the floor are refused with the window.
    assert!(matches!(
        e.get(&c, "a", "k02", AsOf::Lsn(c.floor_lsn - 1))
            .unwrap_err()
            .kind,
        ErrorKind::OutsideRetention { .. }
    ));
    let stats = e.collections(&c).unwrap();
    assert_eq!((stats[0].records, stats[0].versions), (29, 30));
}

#[test]
fn snapshots_and_active_operations_pin_history() {
    let fx = Fx::new();
    let e = fx.engine();
    let c = e
        .create_container("native", "acme", "db", &json!({}))
        .unwrap();
    e.put(&c, "a", "k", "1").unwrap();
    fx.env.advance(HOUR);
    let snap = e.snapshot(&c, Some("keep")).unwrap();
    e.put(&c, "a", "k", "2").unwrap();
    fx.env.advance(HOUR);
    e.put(&c, "a", "k", "3").unwrap();
    fx.env.advance(10 * HOUR);
    while e.prune_step(HOUR, 100).unwrap() > 0 {}
    let c = e.container("native", "acme", "db").unwrap();
    assert!(c.floor_lsn <= snap.lsn);
    assert_eq!(
        e.get(&c, "a", "k", AsOf::Lsn(snap.lsn))
            .unwrap()
            .body
            .unwrap(),
        "1"
    );

    // An active history copy pins everything it will copy.
    let (op, _) = e
        .create_operation(&clone_req(&c, "copy", Strategy::Now, true))
        .unwrap();
    fx.env.advance(10 * HOUR);
    while e.prune_step(HOUR, 100).unwrap() > 0 {}
    let done = run_to_end(&e, &op.id, Some(1));
    assert_eq!(done.records_copied, 3);
}

#[test]
fn scheduled_snapshots_expire_with_the_window() {
    let fx = Fx::new();
    let e = fx.engine();
    let c = e
        .create_container("native", "acme", "db", &json!({}))
        .unwrap();
    e.put(&c, "a", "k", "1").unwrap();
    assert_eq!(e.take_scheduled_snapshots(HOUR, 10).unwrap(), 1);
    fx.env.advance(5 * HOUR);
    e.prune_step(HOUR, 100).unwrap();
    assert!(e.snapshots(&c, 10).unwrap().is_empty());
}

/// Run a verification of `c` to its end; its report.
fn verified(e: &Engine, c: &Container) -> serde_json::Value {
    let op = e.verify(c).unwrap();
    run_to_end(e, &op.id, Some(5)).meta["report"].clone()
}

/// Pruning a container lowers the version counts of the branches that see
/// its pruned versions — a branch with history, and an open import's
/// staging branch, whose statistics the commit hands to the container —
/// but not of one that holds its own copy (hydrated) or shows only live
/// versions (skip-history). Found by the simulation's verifications.
#[test]
fn pruning_keeps_every_dependent_branchs_version_counts_exact() {
    let fx = Fx::new();
    let e = fx.engine();
    e.create_container("native", "acme", "root", &json!({}))
        .unwrap();
    for v in 0..3 {
        let w: Vec<Write> = (0..6)
            .map(|i| put(["a", "b"][i % 2], &format!("k{i}"), &v.to_string()))
            .collect();
        e.write("native", "acme", "root", &w).unwrap();
        fx.env.advance(HOUR);
    }
    fx.env.advance(HOUR);
    // A pruning pass opens (its pin fixed now, before any branch exists)
    // and prunes its first key range; the branches come while it is open.
    assert!(e.prune_step(HOUR, 2).unwrap() > 0);
    let root = e.container("native", "acme", "root").unwrap();
    let hist = e
        .create_operation(&branch_req(&root, "hist", Strategy::Now, true))
        .unwrap()
        .0;
    let flat = e
        .create_operation(&branch_req(&root, "flat", Strategy::Now, false))
        .unwrap()
        .0;
    assert_eq!(
        (hist.status, flat.status),
        (Status::Succeeded, Status::Succeeded)
    );
    let hydrated = e
        .create_operation(&branch_req(&root, "hydrated", Strategy::Now, true))
        .unwrap()
        .0;
    let h = e.container("native", "acme", "hydrated").unwrap();
    let op = e.hydrate(&h).unwrap().unwrap();
    // Half-hydrated: some of root's versions are its own copies.
    assert!(e.claim(&op.id, "w").unwrap());
    e.step(&op.id, "w", Some(7)).unwrap();
    e.release(&op.id, "w").unwrap();
    assert_eq!(hydrated.status, Status::Succeeded);
    // An import open on root: its staging branch sees root's history.
    let im = e.open_import(&root, 10 * HOUR).unwrap();
    e.stage_import(&root, &im.id, &[put("c", "new", "1")], 10 * HOUR)
        .unwrap();
    let mut gone = 0;
    loop {
        let n = e.prune_step(HOUR, 4).unwrap();
        gone += n;
        if n == 0 && e.prune_step(HOUR, 4).unwrap() == 0 {
            break;
        }
    }
    assert!(gone > 0, "something was pruned");
    let root = e.container("native", "acme", "root").unwrap();
    e.commit_import(&root, &im.id).unwrap();
    for name in ["root", "hist", "flat", "hydrated"] {
        let c = e.container("native", "acme", name).unwrap();
        let report = verified(&e, &c);
        assert_eq!(report["clean"], true, "{name}: {report}");
    }
}
