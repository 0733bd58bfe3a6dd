//! Figure 7: copy-on-write branches at size `n`, against the physical copy
//! made just before.

use std::time::{Duration, Instant};

use spinoff_e2e::*;

use crate::harness::{checksum, chunk_report, Ctx};
use crate::stats::{median_of, ms};

/// Issue 17's figures at size `n` (source `src{n}`, physical copy `dst{n}`
/// made just before): start → first correct read of a branch; export +
/// import / branch; reads on a branch (1 and 4 deep) against the same reads
/// on the physical copy; bytes a fresh branch adds to the database;
/// hydration throughput against one native INSERT…SELECT (`native_rate`,
/// measured on the same file in the same run).
pub fn figures(
    ctx: &Ctx,
    name: &str,
    n: usize,
    db_file: Option<&std::path::Path>,
    native_rate: f64,
    manual: Duration,
) {
    let app = ctx.app;
    let key = "k00000004"; // collection c0
    let want = app
        .get(
            &format!("/data/v1/resources/native:dst{n}/collections/c0/records/{key}"),
            &ctx.h(),
        )
        .json();
    assert_eq!(want["body"]["i"], 4, "{want}");
    // Start → first correct read, the median of five fresh branches.
    let mut k = 0;
    let ready = median_of(5, || {
        k += 1;
        let target = format!("br{n}-{k}");
        ctx.branch(&format!("src{n}"), &target);
        let got = app
            .get(
                &format!("/data/v1/resources/native:{target}/collections/c0/records/{key}"),
                &ctx.h(),
            )
            .json();
        assert_eq!(
            got["body"], want["body"],
            "the branch answers as the source did"
        );
    });
    println!(
        "| {name} | {n} | branch: start request → first correct read (ms) | {:.1} | 50 (goal) | {:.2} {} |",
        ms(ready),
        ms(ready) / 50.0,
        if ms(ready) <= 50.0 { "✅" } else { "❌" }
    );
    println!(
        "| {name} | {n} | branch: export + import through the API / branch | {:.0}× | 1000× (goal at 1 000 000) | {:.2} |",
        manual.as_secs_f64() / ready.as_secs_f64(),
        manual.as_secs_f64() / ready.as_secs_f64() / 1000.0
    );
    // A branch 4 deep: br{n}-1 → d2 → d3 → d4.
    let mut parent = format!("br{n}-1");
    for d in 2..=4 {
        let child = format!("br{n}-d{d}");
        ctx.branch(&parent, &child);
        parent = child;
    }
    let deep = parent;
    // Reads: 200 gets by key, 50 list pages of 100, one full export.
    let read_set = |res: &str| -> (Duration, Duration, Duration) {
        let get = median_of(3, || {
            for i in 0..200 {
                let i = (i * 7919) % n / 4 * 4; // keys of collection c0
                let r = app.get(
                    &format!("/data/v1/resources/native:{res}/collections/c0/records/k{i:08}"),
                    &ctx.h(),
                );
                assert_eq!(r.status, 200, "{}", r.body);
            }
        });
        let list = median_of(3, || {
            let mut after = String::new();
            for _ in 0..50 {
                let r = app
                    .get(
                        &format!("/data/v1/resources/native:{res}/collections/c1/records?limit=100&after={after}"),
                        &ctx.h(),
                    )
                    .json();
                let recs = r["records"].as_array().unwrap_or_else(|| panic!("{r}"));
                match recs.last() {
                    Some(l) => after = l["key"].as_str().unwrap().to_string(),
                    None => break,
                }
            }
        });
        let export = median_of(1, || {
            assert_eq!(ctx.export(res, None).len(), n);
        });
        (get, list, export)
    };
    let (cg, cl, ce) = read_set(&format!("dst{n}"));
    for (label, res) in [
        ("branch", format!("br{n}-1")),
        ("branch 4 deep", deep.clone()),
    ] {
        let (g, l, e) = read_set(&res);
        for (what, b, c) in [
            ("200 gets by key", g, cg),
            ("50 list pages of 100", l, cl),
            ("full export", e, ce),
        ] {
            let r = b.as_secs_f64() / c.as_secs_f64();
            println!(
                "| {name} | {n} | reads on a {label} vs a physical copy: {what} (ms) | {:.1} | {:.1} | {r:.2} (goal ≤ 1.3) {} |",
                ms(b),
                ms(c),
                if r <= 1.3 { "✅" } else { "❌" }
            );
        }
    }
    // Bytes a fresh branch adds: pages in use (without the free list),
    // over 20 branches, after a checkpoint folds the WAL back (the local
    // file only: sqld refuses these PRAGMAs).
    let used = |db_file: &std::path::Path| -> i64 {
        let conn = rusqlite::Connection::open(db_file).unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        let q = |p: &str| -> i64 { conn.query_row(p, [], |r| r.get(0)).unwrap() };
        (q("PRAGMA page_count") - q("PRAGMA freelist_count")) * q("PRAGMA page_size")
    };
    if let Some(db_file) = db_file {
        let before = used(db_file);
        for i in 0..20 {
            let op = app
                .send_json(
                    "POST",
                    &format!("/data/v1/resources/native:src{n}/clones"),
                    &ctx.h(),
                    &json!({"target": format!("native:bytes{n}-{i}")}),
                )
                .json();
            assert_eq!(op["status"], "succeeded", "{op}");
        }
        let per_branch = (used(db_file) - before) as f64 / 20.0;
        println!(
        "| {name} | {n} | branch: bytes a fresh branch adds to the database (mean of 20) | {per_branch:.0} | 4096 (goal) | {:.2} {} |",
        per_branch / 4096.0,
        if per_branch <= 4096.0 { "✅" } else { "❌" }
    );
    }
    // Hydration throughput: a fresh branch hydrated by worker ticks.
    let target = format!("hyd{n}");
    let op = app
        .send_json(
            "POST",
            &format!("/data/v1/resources/native:src{n}/clones"),
            &ctx.h(),
            &json!({"target": format!("native:{target}")}),
        )
        .json();
    assert_eq!(op["status"], "succeeded", "{op}");
    let t = Instant::now();
    let h = app.request(
        "POST",
        &format!("/data/v1/resources/native:{target}/hydrate"),
        &ctx.h(),
        None,
    );
    assert_eq!(h.status, 202, "{}", h.body);
    let id = h.json()["id"].as_str().unwrap().to_string();
    loop {
        app.tick().unwrap();
        let v = app
            .get(&format!("/data/v1/operations/{id}"), &ctx.h())
            .json();
        if v["status"] == "succeeded" {
            break;
        }
        assert!(v["status"] != "failed", "{v}");
    }
    let took = t.elapsed();
    chunk_report(app, &id, 0);
    let res = app
        .get(&format!("/data/v1/resources/native:{target}"), &ctx.h())
        .json();
    assert!(res["branch"].is_null(), "hydrated: {res}");
    assert_eq!(
        checksum(&ctx.export(&target, None)),
        checksum(&ctx.export(&format!("dst{n}"), None)),
        "the hydrated branch equals the copy"
    );
    let rate = n as f64 / took.as_secs_f64();
    let r = rate / native_rate;
    println!(
        "| {name} | {n} | branch: hydration throughput (records/s) vs one native INSERT…SELECT | {rate:.0} | {native_rate:.0} | {r:.2} (goal ≥ 0.7) {} |",
        if r >= 0.7 { "✅" } else { "❌" }
    );
}
