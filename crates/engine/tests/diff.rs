//! `diff`: a diff page by page equals the comparison of both sides'
//! exports — for a branch against its parent, two sibling branches, a
//! resource against its own earlier point, and two unrelated resources
//! (scanned) — and looks only at what changed when the sides share a
//! point.

mod common;
use std::collections::BTreeMap;

use common::*;
use engine::diff::{basis, Basis, Change, Side};
use engine::*;

/// One line of a diff: the change, collection, key, and both bodies.
type Line = (Change, String, String, Option<String>, Option<String>);

/// Live bodies of a side, through its exports.
fn state(e: &Engine, s: &Side) -> BTreeMap<(String, String), String> {
    export(e, &s.container, s.at)
        .into_iter()
        .map(|(c, k, b)| ((c, k), b))
        .collect()
}

/// The diff through the pages, `limit` candidates a page.
fn diff(e: &Engine, ours: &Side, theirs: &Side, limit: i64) -> Vec<Line> {
    let b = basis(ours, theirs);
    let mut out = Vec::new();
    let mut cursor: Option<(String, String)> = None;
    loop {
        let page = e
            .diff_page(
                ours,
                theirs,
                b,
                cursor.as_ref().map(|(c, k)| (c.as_str(), k.as_str())),
                limit,
            )
            .unwrap();
        for x in page.entries {
            out.push((x.change, x.collection, x.key, x.ours, x.theirs));
        }
        match page.next {
            Some(n) => cursor = Some(n),
            None => return out,
        }
    }
}

/// What the diff must be: both exports compared key by key.
fn expected(e: &Engine, ours: &Side, theirs: &Side) -> Vec<Line> {
    let (o, t) = (state(e, ours), state(e, theirs));
    let mut keys: Vec<&(String, String)> = o.keys().chain(t.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| {
            let (a, b) = (o.get(k).cloned(), t.get(k).cloned());
            let change = match (&a, &b) {
                (Some(x), Some(y)) if x == y => return None,
                (Some(_), Some(_)) => Change::Changed,
                (Some(_), None) => Change::Added,
                (None, Some(_)) => Change::Removed,
                (None, None) => return None,
            };
            Some((change, k.0.clone(), k.1.clone(), a, b))
        })
        .collect()
}

fn head(c: &Container) -> Side {
    Side::new(c.clone(), i64::MAX)
}

#[test]
fn a_branch_against_its_parent_a_sibling_and_its_past() {
    let fx = Fx::new();
    let e = fx.engine();
    let src = seeded(&e, 600);
    let (_, _) = e
        .create_operation(&branch_req(&src, "b1", Strategy::Now, true))
        .unwrap();
    let b1 = e.container("native", "acme", "b1").unwrap();
    let before = e.head_lsn().unwrap();
    // The branch: a change, a new key, a deletion; the parent: a change
    // and a new key after the branch point.
    e.write(
        "native",
        "acme",
        "b1",
        &[
            put("a", "k00000", "{\"x\":1}"),
            put("z", "new", "{}"),
            del("b", "k00001"),
        ],
    )
    .unwrap();
    e.write(
        "native",
        "acme",
        "src",
        &[put("c", "k00002", "{\"y\":2}"), put("a", "fresh", "{}")],
    )
    .unwrap();
    let (_, _) = e
        .create_operation(&branch_req(&src, "b2", Strategy::Now, true))
        .unwrap();
    let b2 = e.container("native", "acme", "b2").unwrap();
    e.write(
        "native",
        "acme",
        "b2",
        &[put("a", "k00003", "{\"b2\":1}"), del("a", "k00000")],
    )
    .unwrap();
    let src = e.container("native", "acme", "src").unwrap();
    let b1 = e.container("native", "acme", "b1").unwrap_or(b1);
    for (ours, theirs, want_since) in [
        (head(&b1), head(&src), true),
        (head(&src), head(&b1), true),
        (head(&b1), head(&b2), true),
        (
            head(&b1),
            Side::new(b1.clone(), before),
            true,
        ),
    ] {
        assert_eq!(matches!(basis(&ours, &theirs), Basis::Since(_)), want_since);
        let want = expected(&e, &ours, &theirs);
        assert!(!want.is_empty());
        for limit in [1, 3, 1000] {
            assert_eq!(diff(&e, &ours, &theirs, limit), want, "limit {limit}");
        }
    }
    // Branch against parent: exactly the five keys, whatever the size.
    let d = diff(&e, &head(&b1), &head(&src), 1000);
    assert_eq!(d.len(), 5, "{d:?}");
    // The parent found for a branch is its source.
    assert_eq!(e.diff_parent(&b1).unwrap().unwrap().container.id, src.id);
    assert!(e.diff_parent(&src).unwrap().is_none());
}

#[test]
fn unrelated_resources_are_scanned_and_still_exact() {
    let fx = Fx::new();
    let e = fx.engine();
    let a = seeded(&e, 50);
    let other = e
        .create_container("native", "acme", "other", &serde_json::json!({}))
        .unwrap();
    let writes: Vec<Write> = (0..60)
        .map(|i| {
            put(
                ["a", "b", "c"][i % 3],
                &format!("k{i:05}"),
                &format!("{{\"i\":{}}}", i + (i % 7 == 0) as usize),
            )
        })
        .collect();
    e.write("native", "acme", "other", &writes).unwrap();
    let other = e.container("native", "acme", other.name.as_str()).unwrap();
    let (ours, theirs) = (head(&a), head(&other));
    assert_eq!(basis(&ours, &theirs), Basis::Scan);
    let want = expected(&e, &ours, &theirs);
    for limit in [1, 7, 1000] {
        assert_eq!(diff(&e, &ours, &theirs, limit), want);
    }
}

#[test]
fn random_changes_on_both_sides_diff_as_the_exports_do() {
    let fx = Fx::new();
    let e = fx.engine();
    let src = seeded(&e, 200);
    e.create_operation(&branch_req(&src, "br", Strategy::Now, true))
        .unwrap();
    let mut x: u64 = 0x2545F4914F6CDD1D;
    let mut next = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    for round in 0..20 {
        let target = if next(2) == 0 { "src" } else { "br" };
        let writes: Vec<Write> = (0..1 + next(5))
            .map(|_| {
                let key = format!("k{:05}", next(220));
                let coll = ["a", "b", "c"][next(3) as usize];
                if next(4) == 0 {
                    del(coll, &key)
                } else {
                    put(coll, &key, &format!("{{\"r\":{round}}}"))
                }
            })
            .collect();
        let _ = e.write("native", "acme", target, &writes);
        let (s, b) = (
            e.container("native", "acme", "src").unwrap(),
            e.container("native", "acme", "br").unwrap(),
        );
        assert_eq!(
            diff(&e, &head(&b), &head(&s), 4),
            expected(&e, &head(&b), &head(&s)),
            "round {round}"
        );
    }
}

/// A hydrated branch, and a reset one (before and after its hydration),
/// still share a point with the parent: their diffs cost what changed and
/// equal the comparison of both exports.
#[test]
fn hydrated_and_reset_branches_diff_from_their_base() {
    let fx = Fx::new();
    let e = fx.engine();
    let src = seeded(&e, 120);
    e.create_operation(&branch_req(&src, "b", Strategy::Now, true)).unwrap();
    let mid = e.head_lsn().unwrap();
    e.write("native", "acme", "b", &[put("a", "k00000", "{\"b\":1}"), del("b", "k00001"), put("z", "new", "{}")]).unwrap();
    e.write("native", "acme", "src", &[put("c", "k00002", "{\"src\":1}"), del("a", "k00003")]).unwrap();
    let check = |name: &str| {
        let b = e.container("native", "acme", name).unwrap();
        let src = e.container("native", "acme", "src").unwrap();
        let (ours, theirs) = (Side::new(b.clone(), i64::MAX), Side::new(src, i64::MAX));
        assert!(matches!(basis(&ours, &theirs), Basis::Since(_)), "{name}: {:?}", basis(&ours, &theirs));
        assert_eq!(diff(&e, &ours, &theirs, 7), expected(&e, &ours, &theirs), "{name}");
    };
    check("b");
    let hydrate = |name: &str| {
        let b = e.container("native", "acme", name).unwrap();
        let h = e.hydrate(&b).unwrap().expect("a branch");
        run_to_end(&e, &h.id, Some(9));
    };
    hydrate("b");
    check("b");
    // A reset to an earlier point of the parent, then an import into it.
    e.reset("native", "acme", "b", AsOf::Lsn(mid), false).unwrap();
    let b = e.container("native", "acme", "b").unwrap();
    let im = e.open_import(&b, 60_000_000).unwrap();
    e.stage_import(&b, &im.id, &[put("a", "k00006", "{\"imported\":1}"), del("c", "k00008")], 60_000_000).unwrap();
    e.commit_import(&b, &im.id).unwrap();
    check("b");
    hydrate("b");
    check("b");
}

/// Many changes are walked along the key instead of through the LSN (each
/// page would otherwise read all of them); both walks, and the engine's
/// own choice, give the diff the exports give — also after the branch
/// hydrated (its rows shown later than written) and with the parent's
/// changes beside.
#[test]
fn many_changes_walked_along_the_key_give_the_same_diff() {
    let fx = Fx::new();
    let e = fx.engine();
    let src = seeded(&e, 60);
    e.create_operation(&branch_req(&src, "dev", Strategy::Now, true)).unwrap();
    let mut writes: Vec<Write> = (0..400).map(|i| put("n", &format!("x{i:04}"), &format!("{{\"i\":{i}}}"))).collect();
    writes.extend((0..20).map(|i| del(["a", "b", "c"][i % 3], &format!("k{i:05}"))));
    e.write("native", "acme", "dev", &writes).unwrap();
    e.write("native", "acme", "src", &[put("a", "k00030", "{\"src\":1}"), put("n", "x0007", "{\"src\":7}")]).unwrap();
    let check = |e: &Engine| {
        let (dev, src) = (e.container("native", "acme", "dev").unwrap(), e.container("native", "acme", "src").unwrap());
        let want = expected(e, &head(&dev), &head(&src));
        assert_eq!(want.len(), 421);
        for walk in [Some(true), Some(false), None] {
            let w = fx.engine().with_config(Config { walk_by_key: walk, ..Config::default() });
            assert_eq!(diff(&w, &head(&dev), &head(&src), 50), want, "walk_by_key {walk:?}");
            assert_eq!(diff(&w, &head(&src), &head(&dev), 7).len(), want.len(), "walk_by_key {walk:?}, the other way");
        }
    };
    check(&e);
    let dev = e.container("native", "acme", "dev").unwrap();
    let op = e.hydrate(&dev).unwrap().expect("a hydration");
    run_to_end(&e, &op.id, None);
    check(&e);
}
