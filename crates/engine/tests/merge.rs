//! `merge`: a branch's changes applied onto its parent at one LSN, with
//! conflicts refused or resolved, from the merge base on; hydrated and
//! reset branches merge by what they wrote, not by what they copied.

mod common;
use common::*;
use engine::merge::Outcome;
use engine::*;

fn body(e: &Engine, c: &Container, coll: &str, key: &str) -> Option<String> {
    e.get(c, coll, key, AsOf::Head).ok().and_then(|v| v.body)
}

fn merged(o: Outcome) -> Merged {
    match o {
        Outcome::Merged(m) => m,
        Outcome::Conflicts { entries, .. } => panic!("conflicts: {entries:?}"),
    }
}

fn dev(e: &Engine, src: &Container) -> Container {
    e.create_operation(&branch_req(src, "dev", Strategy::Now, true))
        .unwrap();
    e.container("native", "acme", "dev").unwrap()
}

#[test]
fn a_merge_applies_the_branch_s_changes_at_one_lsn() {
    let fx = Fx::new();
    let e = fx.engine();
    let src = seeded(&e, 30);
    let d = dev(&e, &src);
    e.write("native", "acme", "dev", &[put("a", "k00000", "{\"dev\":0}"), put("z", "new", "{}"), del("b", "k00001")])
        .unwrap();
    // The parent moves on elsewhere: kept.
    e.write("native", "acme", "src", &[put("c", "k00002", "{\"src\":2}")]).unwrap();
    let m = merged(e.merge("native", "acme", "dev", None, None, 100).unwrap());
    assert_eq!((m.applied, m.resolved), (3, 0));
    let lsn = m.lsn.expect("written");
    let src = e.container("native", "acme", "src").unwrap();
    assert_eq!(body(&e, &src, "a", "k00000").as_deref(), Some("{\"dev\":0}"));
    assert_eq!(body(&e, &src, "z", "new").as_deref(), Some("{}"));
    assert!(body(&e, &src, "b", "k00001").is_none());
    assert_eq!(body(&e, &src, "c", "k00002").as_deref(), Some("{\"src\":2}"));
    // All of it at one LSN: the parent as of the LSN before shows none.
    let before = e.get(&src, "a", "k00000", AsOf::Lsn(lsn - 1)).unwrap();
    assert_eq!(before.body.as_deref(), Some("{\"i\":0}"));
    let h = e.history(&src, "z", "new", None, 10).unwrap();
    assert_eq!(h.iter().map(|v| v.lsn).collect::<Vec<_>>(), vec![lsn]);
    clean(&e, &src);
    // A second merge has nothing to do; the branch goes on from there.
    let again = merged(e.merge("native", "acme", "dev", None, None, 100).unwrap());
    assert_eq!((again.applied, again.lsn), (0, None));
    e.write("native", "acme", "dev", &[put("a", "k00000", "{\"dev\":1}")]).unwrap();
    let m2 = merged(e.merge("native", "acme", "dev", None, None, 100).unwrap());
    assert_eq!(m2.applied, 1, "the merged key is no conflict the second time");
    let src = e.container("native", "acme", "src").unwrap();
    assert_eq!(body(&e, &src, "a", "k00000").as_deref(), Some("{\"dev\":1}"));
    let _ = d;
}

#[test]
fn conflicts_refuse_a_merge_until_a_strategy_resolves_them() {
    let fx = Fx::new();
    let e = fx.engine();
    let src = seeded(&e, 30);
    dev(&e, &src);
    e.write("native", "acme", "dev", &[put("a", "k00000", "{\"dev\":0}"), put("a", "k00003", "{\"dev\":3}"), put("b", "k00004", "{\"same\":1}"), put("c", "k00005", "{\"dev\":5}")])
        .unwrap();
    e.write("native", "acme", "src", &[put("a", "k00000", "{\"src\":0}"), del("a", "k00003"), put("b", "k00004", "{\"same\":1}")])
        .unwrap();
    let head = e.head_lsn().unwrap();
    match e.merge("native", "acme", "dev", None, None, 1).unwrap() {
        Outcome::Conflicts { entries, next, .. } => {
            assert_eq!(entries.len(), 1, "one per page");
            assert_eq!((entries[0].key.as_str(), entries[0].theirs.as_deref()), ("k00000", Some("{\"src\":0}")));
            let next = next.expect("a second conflict");
            let dev = e.container("native", "acme", "dev").unwrap();
            let page = e.merge_conflicts(&dev, None, Some((&next.0, &next.1)), 100).unwrap();
            let keys: Vec<_> = page.entries.iter().map(|x| (x.key.as_str(), x.ours.as_deref(), x.theirs.as_deref())).collect();
            assert_eq!(keys, vec![("k00003", Some("{\"dev\":3}"), None)], "equal on both sides is no conflict");
        }
        Outcome::Merged(m) => panic!("merged despite conflicts: {m:?}"),
    }
    assert_eq!(e.head_lsn().unwrap(), head, "a refused merge writes nothing");
    // theirs: the parent keeps its versions; the rest flows.
    let m = merged(e.merge("native", "acme", "dev", Some(Resolve::Theirs), None, 100).unwrap());
    assert_eq!((m.applied, m.resolved), (1, 2));
    let src = e.container("native", "acme", "src").unwrap();
    assert_eq!(body(&e, &src, "a", "k00000").as_deref(), Some("{\"src\":0}"));
    assert!(body(&e, &src, "a", "k00003").is_none());
    assert_eq!(body(&e, &src, "c", "k00005").as_deref(), Some("{\"dev\":5}"));
    // ours, on another branch: the branch's versions win.
    e.create_operation(&branch_req(&src, "dev2", Strategy::Now, true)).unwrap();
    e.write("native", "acme", "dev2", &[put("a", "k00000", "{\"dev2\":0}")]).unwrap();
    e.write("native", "acme", "src", &[put("a", "k00000", "{\"src\":1}")]).unwrap();
    let m = merged(e.merge("native", "acme", "dev2", Some(Resolve::Ours), None, 100).unwrap());
    assert_eq!((m.applied, m.resolved), (1, 1));
    let src = e.container("native", "acme", "src").unwrap();
    assert_eq!(body(&e, &src, "a", "k00000").as_deref(), Some("{\"dev2\":0}"));
    clean(&e, &src);
}

#[test]
fn a_protected_parent_accepts_a_merge() {
    let fx = Fx::new();
    let e = fx.engine();
    let src = seeded(&e, 9);
    dev(&e, &src);
    e.set_protection("native", "acme", "src", true).unwrap();
    e.write("native", "acme", "dev", &[put("a", "k00000", "{}")]).unwrap();
    assert_eq!(
        e.write("native", "acme", "src", &[put("a", "x", "{}")]).unwrap_err().kind,
        ErrorKind::Protected
    );
    merged(e.merge("native", "acme", "dev", None, None, 10).unwrap());
    let src = e.container("native", "acme", "src").unwrap();
    assert_eq!(body(&e, &src, "a", "k00000").as_deref(), Some("{}"));
}

#[test]
fn hydrated_and_reset_branches_merge_what_they_wrote() {
    let fx = Fx::new();
    let e = fx.engine();
    let src = seeded(&e, 40);
    let d = dev(&e, &src);
    e.write("native", "acme", "dev", &[put("a", "k00000", "{\"dev\":0}")]).unwrap();
    let h = e.hydrate(&d).unwrap().expect("a branch");
    run_to_end(&e, &h.id, Some(4));
    // The parent changes keys the branch only copied: no conflict.
    e.write("native", "acme", "src", &[put("b", "k00001", "{\"src\":1}")]).unwrap();
    let m = merged(e.merge("native", "acme", "dev", None, None, 10).unwrap());
    assert_eq!(m.applied, 1);
    let src = e.container("native", "acme", "src").unwrap();
    assert_eq!(body(&e, &src, "b", "k00001").as_deref(), Some("{\"src\":1}"));
    // A reset to an earlier point of the parent, hydrated: what it copied
    // is no change of its own, and the parent's later writes stay.
    let (d2, _) = e.reset("native", "acme", "dev", AsOf::Lsn(src.head_lsn - 2), false).unwrap();
    let h = e.hydrate(&d2).unwrap().expect("a branch");
    run_to_end(&e, &h.id, Some(4));
    e.write("native", "acme", "dev", &[put("c", "k00002", "{\"dev\":2}")]).unwrap();
    let m = merged(e.merge("native", "acme", "dev", None, None, 10).unwrap());
    assert_eq!(m.applied, 1, "{m:?}");
    let src = e.container("native", "acme", "src").unwrap();
    assert_eq!(body(&e, &src, "b", "k00001").as_deref(), Some("{\"src\":1}"));
    assert_eq!(body(&e, &src, "a", "k00000").as_deref(), Some("{\"dev\":0}"));
    assert_eq!(body(&e, &src, "c", "k00002").as_deref(), Some("{\"dev\":2}"));
    clean(&e, &src);
}

#[test]
fn what_cannot_be_merged_says_why() {
    let fx = Fx::new();
    let e = fx.engine();
    let src = seeded(&e, 9);
    let err = e.merge("native", "acme", "src", None, None, 10).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidInput, "{err:?}");
    dev(&e, &src);
    e.create_operation(&branch_req(&src, "other", Strategy::Now, true)).unwrap();
    // The parent reset since: merging into its retired state is refused.
    let other = e.container("native", "acme", "other").unwrap();
    e.create_operation(&branch_req(&other, "leaf", Strategy::Now, true)).unwrap();
    e.reset("native", "acme", "other", AsOf::Head, false).unwrap();
    e.write("native", "acme", "leaf", &[put("a", "x", "{}")]).unwrap();
    let err = e.merge("native", "acme", "leaf", None, None, 10).unwrap_err();
    assert!(matches!(err.kind, ErrorKind::InvalidState { .. }), "{err:?}");
    // An open import on either side.
    let im = e.open_import(&src, 60_000_000).unwrap();
    let err = e.merge("native", "acme", "dev", None, None, 10).unwrap_err();
    assert!(matches!(err.kind, ErrorKind::Conflict { .. }), "{err:?}");
    e.abandon_import(&src, &im.id).unwrap();
    // Too many keys for one merge.
    let writes: Vec<Write> = (0..20).map(|i| put("a", &format!("n{i}"), "{}")).collect();
    e.write("native", "acme", "dev", &writes).unwrap();
    let small = fx.engine().with_config(Config { max_batch: 10, ..Config::default() });
    assert_eq!(small.merge("native", "acme", "dev", None, None, 10).unwrap_err().kind, ErrorKind::TooLarge);
}
