//! Figure 9 (issue 29): the branch workflows at each size — a reset, a
//! merge of up to 1 000 changed records, a merge of 100 000 in chunks
//! against one native `INSERT … SELECT` of those rows, and reading a
//! masked branch against reading an unmasked one (the baselines, in the
//! same run).

use std::time::Instant;

use spinoff_e2e::*;

use crate::harness::Ctx;
use crate::stats::{median_of, ms};

/// Change `changes` records of `target` (every fourth key of c1) in
/// imports of up to 50 000 lines (one request's most).
fn change(ctx: &Ctx, target: &str, changes: usize, tag: &str) {
    for from in (0..changes).step_by(50_000) {
        let lines: String = (from..changes.min(from + 50_000))
            .map(|j| {
                let i = j * 4 + 1;
                json!({"collection": "c1", "key": format!("k{i:08}"), "body": {"i": i, "by": tag}}).to_string() + "\n"
            })
            .collect();
        let r = ctx.app.request(
            "POST",
            &format!("/data/v1/resources/native:{target}/import"),
            &ctx.h(),
            Some(lines.as_bytes()),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
}

pub fn figures(ctx: &Ctx, name: &str, n: usize) {
    let app = ctx.app;
    let src = format!("src{n}");
    let changes = (n / 10).clamp(1, 1_000);

    // Reset: a branch with `changes` changed records, reset to its parent.
    let target = format!("reset{n}");
    ctx.branch(&src, &target);
    // The median of three, each after its own changes.
    let mut resets: Vec<_> = (0..3)
        .map(|_| {
            change(ctx, &target, changes, "reset");
            let t = Instant::now();
            let r = app.request("POST", &format!("/data/v1/resources/native:{target}/reset"), &ctx.h(), None);
            let took = t.elapsed();
            assert_eq!(r.status, 200, "{}", r.body);
            took
        })
        .collect();
    resets.sort();
    let reset = resets[1];
    println!(
        "| {name} | {n} | reset of a branch with {changes} changed records (ms) | {:.1} | 50 (goal at 1 000 000) | {} |",
        ms(reset),
        if ms(reset) <= 50.0 { "✅" } else { "❌" }
    );

    // Merge: `changes` changed records of a branch onto its parent, one
    // transaction; the parent's export must then show them.
    let target = format!("merge{n}");
    ctx.branch(&src, &target);
    change(ctx, &target, changes, "merge");
    ctx.settle();
    let t = Instant::now();
    let r = app.send_json("POST", &format!("/data/v1/resources/native:{target}/merge"), &ctx.h(), &json!({}));
    let merge = t.elapsed();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["applied"], changes, "{}", r.body);
    println!(
        "| {name} | {n} | merge of {changes} changed records into the parent (ms) | {:.1} | 1000 (goal) | {} |",
        ms(merge),
        if ms(merge) <= 1000.0 { "✅" } else { "❌" }
    );

    if n >= 100_000 {
        big_merge(ctx, name, n, &src);
    }

    // A masked branch's export against an unmasked branch's, same data.
    let (plain, masked) = (format!("plain{n}"), format!("masked{n}"));
    ctx.branch(&src, &plain);
    let r = app.send_json(
        "POST",
        &format!("/data/v1/resources/native:{src}/clones"),
        &ctx.h(),
        &json!({"target": format!("native:{masked}"), "mask": {"*": {"/pad": "hash", "/i": "redact"}}}),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let mut lines = (0, 0);
    let unmasked = median_of(3, || lines.0 = ctx.export(&plain, None).len());
    let with_mask = median_of(3, || lines.1 = ctx.export(&masked, None).len());
    assert_eq!(lines.0, lines.1, "both exports hold every record");
    let ratio = with_mask.as_secs_f64() / unmasked.as_secs_f64();
    println!(
        "| {name} | {n} | export of a masked branch / of an unmasked one | {ratio:.2} | 1.5 (goal) | {} |",
        if ratio <= 1.5 { "✅" } else { "❌" }
    );
}

/// A merge of 100 000 changed records, run in chunks by the worker's ticks
/// from its start to the parent showing it, against one native
/// `INSERT … SELECT` of the branch's changed rows on the same database
/// (the median of three): records/s of each.
fn big_merge(ctx: &Ctx, name: &str, n: usize, src: &str) {
    let app = ctx.app;
    let changes = 100_000;
    let target = format!("bigmerge{n}");
    ctx.branch(src, &target);
    change(ctx, &target, changes, "bigmerge");
    ctx.settle();
    let native = {
        let db = app.database();
        let q = |sql: &str, p: &[engine::Value]| engine::Db::execute(&*db, sql, p).unwrap();
        let row = &q(
            "SELECT id, merge_base FROM containers WHERE family = 'native' AND name = ?1 AND deleting = 0",
            &[target.as_str().into()],
        )[0];
        let (id, base) = (row.i64(0).unwrap(), row.i64(1).unwrap());
        let runs: Vec<std::time::Duration> = (0..3)
            .map(|_| {
                let t = Instant::now();
                q("INSERT INTO records SELECT -1, collection, key, lsn, deleted, body, size, visible_from FROM records WHERE container = ?1 AND lsn > ?2",
                  &[id.into(), base.into()]);
                let took = t.elapsed();
                let copied = q("SELECT count(*) FROM records WHERE container = -1", &[])[0].i64(0).unwrap();
                assert_eq!(copied, changes as i64, "native copy count");
                q("DELETE FROM records WHERE container = -1", &[]);
                took
            })
            .collect();
        runs.into_iter().collect::<crate::stats::Times>().at(0.5)
    };
    let t = Instant::now();
    let r = app.send_json("POST", &format!("/data/v1/resources/native:{target}/merge"), &ctx.h(), &json!({}));
    assert_eq!(r.status, 202, "100 000 keys run in chunks: {}", r.body);
    let mut ticks = 0;
    let run = loop {
        app.tick().unwrap();
        ticks += 1;
        let v = app.get(&format!("/data/v1/resources/native:{target}/merge"), &ctx.h()).json();
        if v["merge"]["state"] != "running" {
            break v["merge"].clone();
        }
    };
    let took = t.elapsed();
    assert_eq!((run["state"].as_str(), run["applied"].as_i64()), (Some("merged"), Some(changes as i64)), "{run}");
    let (rate, native_rate) = (changes as f64 / took.as_secs_f64(), changes as f64 / native.as_secs_f64());
    println!(
        "| {name} | {n} | merge of {changes} changed records in chunks ({ticks} ticks; records/s) | {rate:.0} | {native_rate:.0} (one native INSERT…SELECT; goal ≥ 0.5) | {:.2} {} |",
        rate / native_rate,
        if rate / native_rate >= 0.5 { "✅" } else { "❌" }
    );
    ctx.settle();
}

/// The most samples figure 10 takes while the worker copies.
const MAX_BUSY_SAMPLES: usize = 200;

/// Figure 10 (issue 29.6): branch start, reset and diff while the worker
/// copies `src{n}` physically beside them (a thread ticks the worker
/// without pause), p50 and p99 of each; the baseline is the same three
/// with the worker idle, in the same run.
pub fn under_load(ctx: &Ctx, name: &str, n: usize) {
    use crate::stats::Times;
    use std::sync::atomic::{AtomicBool, Ordering};
    let app = ctx.app;
    let src = format!("src{n}");
    let base = format!("load{n}");
    ctx.branch(&src, &base);
    change(ctx, &base, 100, "load");
    let sample = |tag: &str, i: usize, times: &mut [Times; 3]| {
        let t = Instant::now();
        ctx.branch(&src, &format!("{base}{tag}{i}"));
        times[0].record(t.elapsed());
        let t = Instant::now();
        let r = app.request("POST", &format!("/data/v1/resources/native:{base}/reset"), &ctx.h(), None);
        times[1].record(t.elapsed());
        assert_eq!(r.status, 200, "{}", r.body);
        change(ctx, &base, 100, tag);
        let t = Instant::now();
        let r = app.get(&format!("/data/v1/resources/native:{base}/diff"), &ctx.h());
        times[2].record(t.elapsed());
        assert_eq!(r.status, 200, "{}", r.body);
    };
    let mut idle: [Times; 3] = Default::default();
    for i in 0..20 {
        sample("i", i, &mut idle);
    }
    let r = app.send_json(
        "POST",
        &format!("/data/v1/resources/native:{src}/clones"),
        &ctx.h(),
        &json!({"target": format!("native:{base}copy"), "mode": "copy"}),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let op = r.json()["id"].as_str().expect("an operation").to_string();
    let copying = AtomicBool::new(true);
    let mut busy: [Times; 3] = Default::default();
    let mut samples = 0;
    std::thread::scope(|s| {
        s.spawn(|| {
            while copying.load(Ordering::SeqCst) {
                app.tick().expect("a tick");
            }
        });
        loop {
            let v = app.get(&format!("/data/v1/operations/{op}"), &ctx.h()).json();
            if v["status"] != "pending" && v["status"] != "in_progress" {
                assert_eq!(v["status"], "succeeded", "{v}");
                break;
            }
            // Each sample leaves a branch: at most MAX_BUSY_SAMPLES of them,
            // within the tenant's resource limit however long the copy runs.
            if samples < MAX_BUSY_SAMPLES {
                sample("b", samples, &mut busy);
                samples += 1;
            } else {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
        copying.store(false, Ordering::SeqCst);
    });
    for (k, what) in ["branch start", "reset", "diff (100 changed)"].iter().enumerate() {
        let (p50, p99) = (ms(busy[k].at(0.5)), ms(busy[k].at(0.99)));
        println!(
            "| {name} | {n} | {what} while the worker copies {n} records: p50 / p99 (ms), {samples} samples | {p50:.1} / {p99:.1} | 50 / 150 (goal); idle {:.1} / {:.1} | {} |",
            ms(idle[k].at(0.5)),
            ms(idle[k].at(0.99)),
            if p50 <= 50.0 && p99 <= 150.0 { "✅" } else { "❌" }
        );
    }
}
