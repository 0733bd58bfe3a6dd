//! Figures 1, 5 and 6: a physical copy's throughput against one native
//! `INSERT … SELECT` on the same database; the worker's tick time against
//! its budget; the bytes a copy adds to the database per record.

use std::time::{Duration, Instant};

use crate::harness::{checksum, Ctx};
use crate::stats::{ms, Times};

/// What one physical copy of `src` measured.
pub struct Copy {
    pub took: Duration,
    pub ticks: Times,
    /// The source's snapshot LSN the copy read.
    pub snapshot: i64,
    /// Records/s of the copy and of one native `INSERT … SELECT`.
    pub rate: f64,
    pub native_rate: f64,
}

/// Copy `src` (`n` records) into `dst` with history, check it against the
/// source at the snapshot, and time one native `INSERT … SELECT` of the
/// same rows on the same database (the median of three).
pub fn throughput(ctx: &Ctx, name: &str, n: usize, src: &str, dst: &str) -> Copy {
    let app = ctx.app;
    let (took, ticks, op) = ctx.clone_with_ticks(src, dst, true);
    assert_eq!(op["progress"]["records_copied"], n as i64, "wrong count");
    let snap = op["snapshot_lsn"].as_i64().unwrap();
    assert_eq!(
        checksum(&ctx.export(dst, None)),
        checksum(&ctx.export(src, Some(snap))),
        "clone differs from source"
    );
    // One statement on the same database (the local file through
    // SQLite, or the same sqld over Hrana), in its own transaction; the
    // median of three (one run alone varies with the WAL's state).
    let native = {
        let db = app.database();
        let q = |sql: &str, p: &[engine::Value]| engine::Db::execute(&*db, sql, p).unwrap();
        let src_id = q(
            "SELECT id FROM containers WHERE name = ?1 AND deleting = 0",
            &[src.into()],
        )[0]
        .i64(0)
        .unwrap();
        let runs: Vec<Duration> = (0..3)
                .map(|_| {
                    let t = Instant::now();
                    q("INSERT INTO records SELECT -1, collection, key, lsn, deleted, body, size, visible_from FROM records WHERE container = ?1 AND lsn <= ?2",
                      &[src_id.into(), snap.into()]);
                    let took = t.elapsed();
                    let copied = q("SELECT count(*) FROM records WHERE container = -1", &[])[0]
                        .i64(0)
                        .unwrap();
                    assert_eq!(copied, n as i64, "native copy count");
                    q("DELETE FROM records WHERE container = -1", &[]);
                    took
                })
                .collect();
        runs.into_iter().collect::<Times>().at(0.5)
    };
    let rate = n as f64 / took.as_secs_f64();
    let native_rate = n as f64 / native.as_secs_f64();
    println!("| {name} | {n} | copy throughput (records/s) | {rate:.0} | {native_rate:.0} (one native INSERT…SELECT) | {:.2} |", rate / native_rate);
    Copy {
        took,
        ticks: ticks.into_iter().collect(),
        snapshot: snap,
        rate,
        native_rate,
    }
}

/// Figure 5: the worker's tick wall time against its 1 s budget (an HTTP
/// tick: a cron trigger's call costs the same instantiation and work).
/// Returns (max, p99).
pub fn ticks(name: &str, n: usize, ticks: &Times) -> (Duration, Duration) {
    let (max, p99) = (ticks.max(), ticks.at(0.99));
    println!(
        "| {name} | {n} | worker tick max / p99 (ms) vs 1000 ms budget | {:.0} / {:.0} | 1000 | {:.2} |",
        ms(max),
        ms(p99),
        max.as_secs_f64()
    );
    (max, p99)
}

/// Figure 6: bytes the database grows per record copied, with history
/// (`history_growth`, measured around the first copy) and without (a
/// skip-history copy made now), against an NDJSON line.
pub fn write_amplification(
    ctx: &Ctx,
    name: &str,
    n: usize,
    src: &str,
    history_growth: u64,
    body_bytes: f64,
    on_disk: &dyn Fn() -> u64,
) {
    let size1 = on_disk();
    ctx.clone_with_ticks(src, &format!("flat{n}"), false);
    let size2 = on_disk();
    println!(
        "| {name} | {n} | file bytes per record copied (history / skip-history) | {:.0} / {:.0} | {body_bytes:.0} (NDJSON line) | {:.2} / {:.2} |",
        history_growth as f64 / n as f64,
        (size2.saturating_sub(size1)) as f64 / n as f64,
        history_growth as f64 / n as f64 / body_bytes,
        (size2.saturating_sub(size1)) as f64 / n as f64 / body_bytes
    );
}
