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

fn clean(e: &Engine, c: &Container) {
    let op = e.verify(c).unwrap();
    let op = run_to_end(e, &op.id, Some(7));
    assert_eq!(op.meta["report"]["clean"], true, "{}", op.meta["report"]);
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
