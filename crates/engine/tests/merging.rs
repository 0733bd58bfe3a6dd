//! `merging`: a merge too large for one transaction, run by the worker a
//! chunk at a time: nothing shows until the last chunk, then all of it at
//! one LSN; both sides refuse writes meanwhile; conflicts, cancel and
//! deletion end it with nothing shown; its import is no client's.

mod common;
use common::*;
use engine::merge::Outcome;
use engine::*;

fn body(e: &Engine, c: &Container, coll: &str, key: &str) -> Option<String> {
    e.get(c, coll, key, AsOf::Head).ok().and_then(|v| v.body)
}

fn dev(e: &Engine, src: &Container) -> Container {
    e.create_operation(&branch_req(src, "dev", Strategy::Now, true))
        .unwrap();
    e.container("native", "acme", "dev").unwrap()
}

/// Steps until the merge ends; how many steps it took.
fn run(e: &Engine, limit: i64) -> (MergeRun, usize) {
    for n in 1..10_000 {
        let r = e.merge_step(limit).unwrap().expect("a merge runs");
        if r.state != "running" {
            return (r, n);
        }
    }
    panic!("the merge never ended");
}

#[test]
fn a_chunked_merge_shows_nothing_until_its_last_chunk_then_all_at_one_lsn() {
    let fx = Fx::new();
    let e = fx.engine();
    let src = seeded(&e, 60);
    let d = dev(&e, &src);
    // 40 puts (new and changed keys) and 5 deletions.
    let mut writes: Vec<Write> = (0..40)
        .map(|i| put(["a", "b", "c"][i % 3], &format!("k{:05}", i * 2), &format!("{{\"dev\":{i}}}")))
        .collect();
    writes.extend((0..5).map(|i| del("b", &format!("k{:05}", 3 * i + 1))));
    writes.extend((0..5).map(|i| put("z", &format!("new{i}"), "{}")));
    e.write("native", "acme", "dev", &writes).unwrap();
    // The parent moves on elsewhere: kept.
    e.write("native", "acme", "src", &[put("c", "k00059", "{\"src\":59}")]).unwrap();
    let before = export(&e, &src, e.head_lsn().unwrap());
    let head_before = e.container("native", "acme", "src").unwrap().head_lsn;

    let run0 = e.start_merge("native", "acme", "dev", None, None).unwrap();
    assert_eq!((run0.state, run0.examined, run0.applied), ("running", 0, 0));
    assert_eq!(e.merge_run(&d).unwrap().as_ref(), Some(&run0));
    // Both sides refuse writes while it runs; a second merge too.
    for (name, what) in [("dev", "the branch"), ("src", "the parent")] {
        let err = e.write("native", "acme", name, &[put("a", "x", "{}")]).unwrap_err();
        assert!(matches!(err.kind, ErrorKind::Conflict { .. }), "{what}: {err:?}");
    }
    let err = e.start_merge("native", "acme", "dev", None, None).unwrap_err();
    assert!(matches!(err.kind, ErrorKind::Conflict { .. }), "{err:?}");
    let err = e.merge("native", "acme", "dev", None, None, 10).unwrap_err();
    assert!(matches!(err.kind, ErrorKind::Conflict { .. }), "{err:?}");
    // Its import is the merge's, not a client's.
    let err = e.commit_import(&src, &run0.id).unwrap_err();
    assert!(matches!(err.kind, ErrorKind::InvalidState { .. }), "{err:?}");
    assert_eq!(e.expire_imports(10).unwrap(), 0, "a merge never idles out");

    // Chunk by chunk: readers of the parent see none of it meanwhile.
    let mut steps = 0;
    let last = loop {
        let r = e.merge_step(7).unwrap().expect("runs");
        steps += 1;
        if r.state != "running" {
            break r;
        }
        let src = e.container("native", "acme", "src").unwrap();
        assert_eq!(export(&e, &src, e.head_lsn().unwrap()), before, "after step {steps}");
        assert_eq!(src.head_lsn, head_before);
    };
    assert_eq!(steps, 8, "50 keys, 7 a step: 8 steps, the last commits");
    assert_eq!(last.state, "merged");
    assert_eq!((last.examined, last.applied), (50, 50));
    let lsn = last.lsn.expect("committed");
    assert!(e.merge_step(7).unwrap().is_none(), "nothing runs after");

    let src = e.container("native", "acme", "src").unwrap();
    assert_eq!(src.head_lsn, lsn);
    assert_eq!(body(&e, &src, "a", "k00000").as_deref(), Some("{\"dev\":0}"));
    assert_eq!(body(&e, &src, "z", "new4").as_deref(), Some("{}"));
    assert!(body(&e, &src, "b", "k00004").is_none());
    assert_eq!(body(&e, &src, "c", "k00059").as_deref(), Some("{\"src\":59}"));
    // The parent now shows what the branch shows.
    let dev_now = e.container("native", "acme", "dev").unwrap();
    let mut want = export(&e, &dev_now, e.head_lsn().unwrap());
    want.retain(|(c, k, _)| !(c == "c" && k == "k00059"));
    let mut got = export(&e, &src, e.head_lsn().unwrap());
    got.retain(|(c, k, _)| !(c == "c" && k == "k00059"));
    assert_eq!(got, want);
    // All at once: the LSN before shows none of it; its versions share one LSN.
    assert_eq!(export(&e, &src, lsn - 1).len(), before.len());
    assert_eq!(body(&e, &src, "a", "k00000"), Some("{\"dev\":0}".into()));
    let h = e.history(&src, "z", "new0", None, 10).unwrap();
    assert_eq!(h.iter().map(|v| v.lsn).collect::<Vec<_>>(), vec![last.versions_lsn]);
    let h = e.history(&src, "z", "new4", None, 10).unwrap();
    assert_eq!(h.iter().map(|v| v.lsn).collect::<Vec<_>>(), vec![last.versions_lsn]);
    clean(&e, &src);
    // The branch goes on from the merge: writable, nothing left to merge.
    assert_eq!(dev_now.merge_base, Some(lsn));
    match e.merge("native", "acme", "dev", None, None, 10).unwrap() {
        Outcome::Merged(m) => assert_eq!(m.applied, 0),
        o => panic!("{o:?}"),
    }
    e.write("native", "acme", "src", &[put("a", "k00000", "{\"src\":1}")]).unwrap();
    let _ = d;
}

#[test]
fn a_conflict_ends_a_chunked_merge_with_nothing_shown_unless_a_strategy_resolves_it() {
    let fx = Fx::new();
    let e = fx.engine();
    let src = seeded(&e, 30);
    let d = dev(&e, &src);
    let writes: Vec<Write> = (0..30).map(|i| put("a", &format!("k{i:05}"), "{\"dev\":1}")).collect();
    e.write("native", "acme", "dev", &writes).unwrap();
    e.write("native", "acme", "src", &[put("a", "k00020", "{\"src\":1}")]).unwrap();
    let before = export(&e, &src, e.head_lsn().unwrap());
    e.start_merge("native", "acme", "dev", None, None).unwrap();
    let (r, _) = run(&e, 4);
    assert_eq!((r.state, r.lsn), ("conflicts", None));
    assert_eq!(export(&e, &src, e.head_lsn().unwrap()), before, "nothing shows");
    let page = e.merge_conflicts(&d, None, None, 100).unwrap();
    assert_eq!(page.entries.iter().map(|x| x.key.as_str()).collect::<Vec<_>>(), vec!["k00020"]);
    // Both sides take writes again; the staged rows go with the purge.
    e.write("native", "acme", "dev", &[put("a", "k00001", "{\"dev\":2}")]).unwrap();
    while e.purge_step(1000).unwrap() > 0 {}
    // `theirs` keeps the parent's version of the conflict.
    e.start_merge("native", "acme", "dev", Some(Resolve::Theirs), None).unwrap();
    let (r, _) = run(&e, 4);
    assert_eq!(r.state, "merged");
    let src = e.container("native", "acme", "src").unwrap();
    assert_eq!(body(&e, &src, "a", "k00020").as_deref(), Some("{\"src\":1}"));
    assert_eq!(body(&e, &src, "a", "k00001").as_deref(), Some("{\"dev\":2}"));
    assert_eq!(body(&e, &src, "a", "k00003").as_deref(), Some("{\"dev\":1}"));
    clean(&e, &src);
}

#[test]
fn cancel_and_deletion_end_a_chunked_merge_with_nothing_shown() {
    let fx = Fx::new();
    let e = fx.engine();
    let src = seeded(&e, 30);
    let d = dev(&e, &src);
    let writes: Vec<Write> = (0..30).map(|i| put("a", &format!("k{i:05}"), "{\"dev\":1}")).collect();
    e.write("native", "acme", "dev", &writes).unwrap();
    let before = export(&e, &src, e.head_lsn().unwrap());
    e.start_merge("native", "acme", "dev", None, None).unwrap();
    e.merge_step(5).unwrap();
    let r = e.cancel_merge(&d).unwrap();
    assert_eq!(r.state, "canceled");
    assert!(e.merge_step(5).unwrap().is_none());
    assert!(matches!(e.cancel_merge(&d).unwrap_err().kind, ErrorKind::InvalidState { .. }));
    assert_eq!(export(&e, &src, e.head_lsn().unwrap()), before);
    // Deleting the branch mid-merge ends it the same way.
    e.start_merge("native", "acme", "dev", None, None).unwrap();
    e.merge_step(5).unwrap();
    e.delete_container("native", "acme", "dev").unwrap();
    assert!(e.merge_step(5).unwrap().is_none());
    while e.purge_step(1000).unwrap() > 0 {}
    let src = e.container("native", "acme", "src").unwrap();
    assert_eq!(export(&e, &src, e.head_lsn().unwrap()), before);
    e.write("native", "acme", "src", &[put("a", "x", "{}")]).unwrap();
    clean(&e, &src);
}

#[test]
fn a_merge_too_large_for_one_transaction_runs_in_chunks_with_the_same_result() {
    let fx = Fx::new();
    let e = fx.engine();
    let src = seeded(&e, 30);
    dev(&e, &src);
    let writes: Vec<Write> = (0..25).map(|i| put("n", &format!("x{i:03}"), &format!("{{\"n\":{i}}}"))).collect();
    e.write("native", "acme", "dev", &writes).unwrap();
    let small = fx.engine().with_config(Config { max_batch: 10, ..Config::default() });
    assert_eq!(small.merge("native", "acme", "dev", None, None, 10).unwrap_err().kind, ErrorKind::TooLarge);
    small.start_merge("native", "acme", "dev", None, None).unwrap();
    let (r, steps) = run(&small, 10);
    assert_eq!((r.state, r.applied, steps), ("merged", 25, 3));
    let src = e.container("native", "acme", "src").unwrap();
    for i in 0..25 {
        assert_eq!(body(&e, &src, "n", &format!("x{i:03}")), Some(format!("{{\"n\":{i}}}")));
    }
    clean(&e, &src);
}

#[test]
fn both_walks_merge_the_same_keys_in_chunks() {
    for walk in [Some(true), Some(false), None] {
        let fx = Fx::new();
        let e = fx.engine().with_config(Config { walk_by_key: walk, ..Config::default() });
        let src = seeded(&e, 60);
        dev(&e, &src);
        let writes: Vec<Write> = (0..300).map(|i| put("n", &format!("x{i:04}"), &format!("{{\"i\":{i}}}"))).collect();
        e.write("native", "acme", "dev", &writes).unwrap();
        e.write("native", "acme", "dev", &[del("a", "k00000"), put("n", "x0005", "{\"again\":5}")]).unwrap();
        // The parent changes ten of the same keys (conflicts: ours wins)
        // and 40 others.
        let theirs: Vec<Write> = (100..110)
            .map(|i| put("n", &format!("x{i:04}"), "{\"src\":1}"))
            .chain((0..40).map(|i| put("y", &format!("y{i:04}"), "{}")))
            .collect();
        e.write("native", "acme", "src", &theirs).unwrap();
        let small = fx.engine().with_config(Config { walk_by_key: walk, max_batch: 100, ..Config::default() });
        assert_eq!(small.merge("native", "acme", "dev", None, None, 10).unwrap_err().kind, ErrorKind::TooLarge);
        e.start_merge("native", "acme", "dev", None, None).unwrap();
        let (r, _) = run(&e, 64);
        assert_eq!(r.state, "conflicts", "walk_by_key {walk:?}");
        let d = e.container("native", "acme", "dev").unwrap();
        assert_eq!(e.merge_conflicts(&d, None, None, 1000).unwrap().entries.len(), 10, "walk_by_key {walk:?}");
        e.start_merge("native", "acme", "dev", Some(Resolve::Ours), None).unwrap();
        let (r, _) = run(&e, 64);
        assert_eq!((r.state, r.applied), ("merged", 301), "walk_by_key {walk:?}");
        let src = e.container("native", "acme", "src").unwrap();
        let mut got = export(&e, &src, e.head_lsn().unwrap());
        got.retain(|(c, _, _)| c != "y");
        assert_eq!(got, export(&e, &d, e.head_lsn().unwrap()), "walk_by_key {walk:?}");
        clean(&e, &src);
    }
}
