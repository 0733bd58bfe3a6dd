//! Figure 8 (issue 29): a diff of a branch with up to 1 000 changed
//! records, to its last line, against the baseline a user has without it —
//! export both sides and compare them in the client — in the same run.

use std::collections::BTreeMap;
use std::time::Instant;

use spinoff_e2e::*;

use crate::harness::Ctx;
use crate::stats::{median_of, ms};

/// Branch `src{n}`, change `min(n / 10, 1 000)` of its records in one
/// request, then time the diff against the parent (the median of three)
/// and an export-both-and-compare (once); both must find the same keys.
pub fn versus_exports(ctx: &Ctx, name: &str, n: usize) {
    let app = ctx.app;
    let target = format!("diff{n}");
    ctx.branch(&format!("src{n}"), &target);
    let changes = (n / 10).clamp(1, 1_000);
    // Every tenth record of collection c1 (keys i % 4 == 1), rewritten.
    let lines: String = (0..changes)
        .map(|j| {
            let i = j * 4 + 1;
            json!({"collection": "c1", "key": format!("k{i:08}"), "body": {"i": i, "changed": true}})
                .to_string()
                + "\n"
        })
        .collect();
    let r = app.request(
        "POST",
        &format!("/data/v1/resources/native:{target}/import"),
        &ctx.h(),
        Some(lines.as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    ctx.settle();
    let mut found = 0;
    let diff = median_of(3, || {
        let r = app.get(
            &format!("/data/v1/resources/native:{target}/diff"),
            &ctx.h(),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        found = r.body.lines().count() - 1;
    });
    assert_eq!(found, changes, "the diff finds exactly the changed keys");
    let t = Instant::now();
    let side = |r: &str| -> BTreeMap<String, String> {
        ctx.export(r, None)
            .into_iter()
            .map(|l| {
                let v: Value = serde_json::from_str(&l).expect("an export line");
                (format!("{}/{}", v["collection"], v["key"]), v["body"].to_string())
            })
            .collect()
    };
    let (ours, theirs) = (side(&target), side(&format!("src{n}")));
    let by_hand = ours
        .iter()
        .filter(|(k, v)| theirs.get(*k) != Some(*v))
        .count()
        + theirs.keys().filter(|k| !ours.contains_key(*k)).count();
    let manual = t.elapsed();
    assert_eq!(by_hand, changes, "the exports differ in the changed keys");
    println!(
        "| {name} | {n} | diff of a branch with {changes} changed records, to the last line (ms) | {:.1} | 100 (goal at 1 000 000) | {} |",
        ms(diff),
        if ms(diff) <= 100.0 { "✅" } else { "❌" }
    );
    println!(
        "| {name} | {n} | export both sides and compare / diff | {:.0}× | 1000× (goal at 1 000 000) | {:.2} |",
        manual.as_secs_f64() / diff.as_secs_f64(),
        manual.as_secs_f64() / diff.as_secs_f64() / 1000.0
    );
}
