//! `reset`: a branch reads its parent again under the same name, in one
//! small transaction; reads before the reset still answer what it was;
//! its snapshots, branches made from it, statistics, protection and
//! deletion all keep their meaning.

mod common;
use common::*;
use engine::*;

fn body(e: &Engine, c: &Container, coll: &str, key: &str, at: AsOf) -> Option<String> {
    e.get(c, coll, key, at).ok().and_then(|v| v.body)
}

#[test]
fn a_reset_reads_the_parent_again_and_keeps_the_past() {
    let fx = Fx::new();
    let e = fx.engine();
    let src = seeded(&e, 90);
    e.create_operation(&branch_req(&src, "dev", Strategy::Now, true))
        .unwrap();
    let dev = e.container("native", "acme", "dev").unwrap();
    // The branch diverges; the parent moves on.
    let mine = e
        .write("native", "acme", "dev", &[put("a", "k00000", "{\"dev\":1}"), put("z", "mine", "{}"), del("b", "k00001")])
        .unwrap();
    e.snapshot(&dev, Some("before-reset")).unwrap();
    e.create_operation(&branch_req(&dev, "feature", Strategy::Now, true))
        .unwrap();
    e.write("native", "acme", "src", &[put("c", "k00002", "{\"src\":2}")])
        .unwrap();
    let src = e.container("native", "acme", "src").unwrap();

    let (dev2, r) = e.reset("native", "acme", "dev", AsOf::Head, false).unwrap();
    assert!(r > mine.lsn);
    // The same name, reading the parent's head: its own writes are gone,
    // the parent's later write shows.
    assert_eq!(dev2.name, "dev");
    assert_eq!(export(&e, &dev2, i64::MAX), export(&e, &src, i64::MAX));
    assert_eq!(body(&e, &dev2, "c", "k00002", AsOf::Head).as_deref(), Some("{\"src\":2}"));
    assert!(body(&e, &dev2, "z", "mine", AsOf::Head).is_none());
    // Reads before the reset answer what it was.
    assert_eq!(body(&e, &dev2, "a", "k00000", AsOf::Lsn(r - 1)).as_deref(), Some("{\"dev\":1}"));
    assert_eq!(body(&e, &dev2, "z", "mine", AsOf::Lsn(r - 1)).as_deref(), Some("{}"));
    assert!(body(&e, &dev2, "b", "k00001", AsOf::Lsn(r - 1)).is_none());
    assert_eq!(export(&e, &dev2, r - 1), export(&e, &dev, r - 1));
    // Its snapshot is still its own; the branch made from it still reads
    // what it was.
    let snaps = e.snapshots(&dev2, 10).unwrap();
    assert_eq!(snaps[0].name.as_deref(), Some("before-reset"));
    let feature = e.container("native", "acme", "feature").unwrap();
    assert_eq!(body(&e, &feature, "z", "mine", AsOf::Head).as_deref(), Some("{}"));
    // Statistics are exact; it takes writes at once.
    clean(&e, &dev2);
    e.write("native", "acme", "dev", &[put("a", "after", "{}")]).unwrap();
    let dev2 = e.container("native", "acme", "dev").unwrap();
    clean(&e, &dev2);
    // A hydration keeps both the head and the past.
    let h = e.hydrate(&dev2).unwrap().expect("it reads through its parent");
    run_to_end(&e, &h.id, Some(5));
    let dev2 = e.container("native", "acme", "dev").unwrap();
    assert_eq!(body(&e, &dev2, "z", "mine", AsOf::Lsn(r - 1)).as_deref(), Some("{}"));
    assert_eq!(body(&e, &dev2, "c", "k00002", AsOf::Head).as_deref(), Some("{\"src\":2}"));
    assert!(body(&e, &dev2, "z", "mine", AsOf::Head).is_none());
    clean(&e, &dev2);
    // Reset again, to an LSN of the parent before its write.
    let (dev3, r2) = e.reset("native", "acme", "dev", AsOf::Lsn(mine.lsn), false).unwrap();
    assert!(body(&e, &dev3, "c", "k00002", AsOf::Head).as_deref() != Some("{\"src\":2}"));
    assert!(body(&e, &dev3, "a", "after", AsOf::Head).is_none());
    assert_eq!(body(&e, &dev3, "a", "after", AsOf::Lsn(r2 - 1)).as_deref(), Some("{}"));
    assert_eq!(body(&e, &dev3, "z", "mine", AsOf::Lsn(r - 1)).as_deref(), Some("{}"));
    clean(&e, &dev3);
}

#[test]
fn a_reset_is_refused_where_it_cannot_be_and_deleting_frees_the_past() {
    let fx = Fx::new();
    let e = fx.engine();
    let src = seeded(&e, 30);
    let kind = |r: Result<(Container, i64)>| r.expect_err("refused").kind;
    // A resource made empty has no parent.
    assert_eq!(kind(e.reset("native", "acme", "src", AsOf::Head, false)), ErrorKind::InvalidInput);
    e.create_operation(&branch_req(&src, "dev", Strategy::Now, true))
        .unwrap();
    e.write("native", "acme", "dev", &[put("a", "x", "{}")]).unwrap();
    // Protected: only with force.
    e.set_protection("native", "acme", "dev", true).unwrap();
    assert_eq!(kind(e.reset("native", "acme", "dev", AsOf::Head, false)), ErrorKind::Protected);
    let (dev, _) = e.reset("native", "acme", "dev", AsOf::Head, true).unwrap();
    assert!(dev.protected, "the protection stays");
    e.set_protection("native", "acme", "dev", false).unwrap();
    // An open import refuses it; an LSN outside the parent's history too.
    let imp = e.open_import(&dev, 60_000_000).unwrap();
    assert!(matches!(kind(e.reset("native", "acme", "dev", AsOf::Head, false)), ErrorKind::Conflict { .. }));
    e.abandon_import(&dev, &imp.id).unwrap();
    assert_eq!(kind(e.reset("native", "acme", "dev", AsOf::Lsn(1 << 40), false)), ErrorKind::InvalidInput);
    // Deleting it frees what it was before its resets too.
    let (_, _) = e.reset("native", "acme", "dev", AsOf::Head, false).unwrap();
    e.delete_container("native", "acme", "dev").unwrap();
    while e.purge_step(50).unwrap() > 0 {}
    let left = e
        .db()
        .execute("SELECT count(*) FROM containers WHERE family = 'history'", &[])
        .unwrap()[0]
        .i64(0)
        .unwrap();
    assert_eq!(left, 0, "the retired states were purged");
}

#[test]
fn a_reset_after_an_abandoned_import_counts_exactly() {
    let fx = Fx::new();
    let e = fx.engine();
    let src = seeded(&e, 9);
    e.create_operation(&branch_req(&src, "dev", Strategy::Now, true)).unwrap();
    let mut req = branch_req(&src, "dev2", Strategy::Now, true);
    req.hydrate = true;
    let _ = e.create_operation(&req);
    e.write("native", "acme", "dev", &[put("b", "x", "{}")]).unwrap();
    let dev = e.container("native", "acme", "dev").unwrap();
    e.snapshot(&dev, None).unwrap();
    let imp = e.open_import(&dev, 1).unwrap();
    fx.env.advance(10);
    assert_eq!(e.expire_imports(5).unwrap(), 1);
    let _ = imp;
    let (d2, _) = e.reset("native", "acme", "dev", AsOf::Head, false).unwrap();
    let stats = e.collections(&d2).unwrap();
    let live = export(&e, &d2, i64::MAX);
    for s in &stats {
        let n = live.iter().filter(|(c, _, _)| *c == s.name).count() as i64;
        assert_eq!(s.records, n, "{}: {stats:?}", s.name);
    }
    assert_eq!(stats.iter().map(|s| s.records).sum::<i64>(), live.len() as i64, "{stats:?}");
}

#[test]
fn pruning_the_parent_after_a_reset_keeps_the_statistics_exact() {
    let fx = Fx::new();
    let e = fx.engine();
    let src = seeded(&e, 9);
    e.write("native", "acme", "src", &[put("b", "k00001", "{\"v\":2}")]).unwrap();
    e.create_operation(&branch_req(&src, "dev", Strategy::Now, true)).unwrap();
    e.write("native", "acme", "dev", &[put("b", "x", "{}")]).unwrap();
    e.write("native", "acme", "src", &[put("b", "k00001", "{\"v\":3}")]).unwrap();
    let (d2, _) = e.reset("native", "acme", "dev", AsOf::Head, false).unwrap();
    let before = e.collections(&d2).unwrap();
    fx.env.advance(10_000_000);
    e.write("native", "acme", "src", &[put("c", "later", "{}")]).unwrap();
    fx.env.advance(10_000_000);
    while e.prune_step(1_000_000, 100).unwrap() > 0 {}
    let d2 = e.container("native", "acme", "dev").unwrap();
    let after = e.collections(&d2).unwrap();
    clean(&e, &d2);
    assert_eq!(before.iter().map(|s| s.records).sum::<i64>(), after.iter().map(|s| s.records).sum::<i64>(), "{before:?} {after:?}");
}

#[test]
fn a_reset_between_partial_hydrations_and_prunes_counts_exactly() {
    let fx = Fx::new();
    let e = fx.engine();
    e.create_container("native", "acme", "root", &serde_json::json!({})).unwrap();
    e.write("native", "acme", "root", &[put("b", "k5", "{\"w\":1}"), put("b", "k0", "{\"w\":2}")]).unwrap();
    fx.env.advance(1_000_000);
    e.write("native", "acme", "root", &[put("c", "k4", "{\"w\":3}"), put("b", "k0", "{\"w\":4}"), put("b", "k5", "{\"w\":5}")]).unwrap();
    let root = e.container("native", "acme", "root").unwrap();
    let mut r = branch_req(&root, "c5", Strategy::Now, true);
    r.hydrate = true;
    e.create_operation(&r).unwrap();
    fx.env.advance(1_000_000);
    e.write("native", "acme", "c5", &[put("a", "k4", "{\"w\":6}")]).unwrap();
    let t_before = fx.env.now_us();
    if let Some(id) = e.next_runnable("w").unwrap() {
        assert!(e.claim(&id, "w").unwrap());
        e.step(&id, "w", Some(1)).unwrap();
        e.release(&id, "w").unwrap();
    }
    fx.env.advance(1_000_000);
    let c5 = e.container("native", "acme", "c5").unwrap();
    let mut r = branch_req(&c5, "c10", Strategy::Pitr(t_before), false);
    r.hydrate = true;
    e.create_operation(&r).unwrap();
    fx.env.advance(3_000_000);
    while e.prune_step(2_000_000, 50).unwrap() > 0 {}
    e.snapshot(&root, None).unwrap();
    let (d2, _) = e.reset("native", "acme", "c5", AsOf::Head, false).unwrap();
    let s0 = e.collections(&d2).unwrap();
    e.write("native", "acme", "c10", &[put("b", "k2", "{\"w\":15}")]).unwrap();
    fx.env.advance(5_000_000);
    while e.prune_step(2_000_000, 50).unwrap() > 0 {}
    let d2 = e.container("native", "acme", "c5").unwrap();
    let s1 = e.collections(&d2).unwrap();
    let live = export(&e, &d2, i64::MAX);
    assert_eq!(s1.iter().map(|s| s.records).sum::<i64>(), live.len() as i64, "{s0:?}\n{s1:?}\n{live:?}");
}

#[test]
fn hydrating_a_reset_branch_again_skips_the_versions_it_holds() {
    // The first hydration copies the parent's versions into the branch;
    // after a reset the parent is its level again, so the second one meets
    // every version it copies already there (on PostgreSQL the plain
    // insert fails in its savepoint and runs again skipping them).
    let fx = Fx::new();
    let e = fx.engine();
    let src = seeded(&e, 40);
    e.create_operation(&branch_req(&src, "dev", Strategy::Now, true))
        .unwrap();
    let dev = e.container("native", "acme", "dev").unwrap();
    let h = e.hydrate(&dev).unwrap().expect("it reads through its parent");
    assert_eq!(run_to_end(&e, &h.id, Some(15)).status, Status::Succeeded);
    e.write("native", "acme", "src", &[put("a", "later", "{}")]).unwrap();
    let (dev2, _) = e.reset("native", "acme", "dev", AsOf::Head, false).unwrap();
    let h = e.hydrate(&dev2).unwrap().expect("it reads through its parent again");
    let done = run_to_end(&e, &h.id, Some(15));
    assert_eq!(done.status, Status::Succeeded, "{:?}", done.error);
    let dev2 = e.container("native", "acme", "dev").unwrap();
    let src = e.container("native", "acme", "src").unwrap();
    assert!(dev2.chain.iter().all(|l| !l.is_current()), "{:?}", dev2.chain);
    assert_eq!(export(&e, &dev2, i64::MAX), export(&e, &src, i64::MAX));
    clean(&e, &dev2);
}
