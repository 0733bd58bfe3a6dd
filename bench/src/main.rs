//! `spinoff-bench`: runs the real components in the test host and prints each
//! figure beside a baseline measured in the same run, as a ratio. Asserts
//! nothing about time; fails loudly when a result is wrong (counts or
//! checksums differ).
//!
//! ```text
//! cargo run -p spinoff-bench -- [--sizes 10000,100000,1000000] [--latency-size 100000] [--clients 50]
//! ```

use std::time::{Duration, Instant};

use clap::Parser;
use spinoff_e2e::*;

#[derive(Parser)]
struct Opts {
    /// Dataset sizes (records of ~1 KB in 4 collections).
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    sizes: Vec<usize>,
    /// The source size whose clone runs during the latency figure (one of
    /// `--sizes`; the largest of them when absent).
    #[arg(long, default_value_t = 100_000)]
    latency_size: usize,
    /// Concurrent clients for the latency figure.
    #[arg(long, default_value_t = 50)]
    clients: usize,
}

struct Ctx<'a> {
    app: &'a App,
    auth: String,
}

impl Ctx<'_> {
    fn h(&self) -> [(&str, &str); 1] {
        [("authorization", self.auth.as_str())]
    }
    fn load(&self, name: &str, n: usize) {
        assert_eq!(
            self.app
                .send_json(
                    "PUT",
                    &format!("/data/v1/resources/native:{name}"),
                    &self.h(),
                    &json!({})
                )
                .status,
            201
        );
        let pad = "x".repeat(960);
        for start in (0..n).step_by(20_000) {
            let lines: String = (start..(start + 20_000).min(n))
                .map(|i| format!("{}\n", json!({"collection": (["c0", "c1", "c2", "c3"][i % 4]), "key": format!("k{i:08}"), "body": {"i": i, "pad": pad}})))
                .collect();
            let r = self.app.request(
                "POST",
                &format!("/data/v1/resources/native:{name}/import"),
                &self.h(),
                Some(lines.as_bytes()),
            );
            assert_eq!(r.status, 200, "{}", r.body);
        }
    }
    fn clone_with_ticks(
        &self,
        src: &str,
        dst: &str,
        history: bool,
    ) -> (Duration, Vec<Duration>, Value) {
        let op = self
            .app
            .send_json(
                "POST",
                &format!("/data/v1/resources/native:{src}/clones"),
                &self.h(),
                &json!({"target": format!("native:{dst}"), "history": history}),
            )
            .json();
        let id = op["id"].as_str().unwrap().to_string();
        let start = Instant::now();
        let mut ticks = Vec::new();
        loop {
            let t = Instant::now();
            self.app.tick().unwrap();
            ticks.push(t.elapsed());
            let v = self
                .app
                .get(&format!("/data/v1/operations/{id}"), &self.h())
                .json();
            if v["status"] == "succeeded" {
                return (start.elapsed(), ticks, v);
            }
            assert!(v["status"] != "failed", "{v}");
        }
    }
    fn export(&self, name: &str, as_of: Option<i64>) -> Vec<String> {
        let q = as_of.map(|l| format!("?as_of={l}")).unwrap_or_default();
        let r = self.app.get(
            &format!("/data/v1/resources/native:{name}/export{q}"),
            &self.h(),
        );
        assert_eq!(r.status, 200);
        r.body.lines().map(String::from).collect()
    }
}

fn checksum(lines: &[String]) -> u64 {
    let mut v: Vec<&String> = lines.iter().collect();
    v.sort();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for l in v {
        for b in l.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }
    h
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let opts = Opts::parse();
    let app = App::start_with(|o| {
        o.variables.insert("worker_budget_ms".into(), "1000".into());
    });
    let ctx = Ctx {
        app: &app,
        auth: format!("Bearer {}", app.token("bench")),
    };
    println!("| size | figure | Spinoff | baseline | ratio |");
    println!("|---:|---|---:|---:|---:|");
    let mut per10k = Vec::new();
    let mut memory: Vec<(usize, usize, usize)> = Vec::new();
    for &n in &opts.sizes {
        let src = format!("src{n}");
        ctx.load(&src, n);
        let db_file = app.db_path();
        // The database and its write-ahead log together.
        let on_disk = || -> u64 {
            let wal = db_file.with_file_name("sqlite_db.db-wal");
            std::fs::metadata(&db_file).map(|m| m.len()).unwrap_or(0)
                + std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0)
        };
        let size0 = on_disk();

        // 1. Copy throughput vs one native INSERT … SELECT.
        app.host.take_memory_peak("clone-worker");
        let (took, mut ticks, op) = ctx.clone_with_ticks(&src, &format!("dst{n}"), true);
        let worker_peak = app.host.take_memory_peak("clone-worker");
        assert_eq!(op["progress"]["records_copied"], n as i64, "wrong count");
        let snap = op["snapshot_lsn"].as_i64().unwrap();
        assert_eq!(
            checksum(&ctx.export(&format!("dst{n}"), None)),
            checksum(&ctx.export(&src, Some(snap))),
            "clone differs from source"
        );
        let size1 = on_disk();
        let history_growth = size1.saturating_sub(size0);
        let native = {
            let conn = rusqlite::Connection::open(&db_file).unwrap();
            conn.busy_timeout(Duration::from_secs(5)).unwrap();
            let src_id: i64 = conn
                .query_row(
                    "SELECT id FROM containers WHERE name = ?1 AND deleting = 0",
                    [&src],
                    |r| r.get(0),
                )
                .unwrap();
            let t = Instant::now();
            conn.execute_batch("BEGIN IMMEDIATE").unwrap();
            let copied = conn
                .execute("INSERT INTO records SELECT -1, collection, key, lsn, deleted, body, size FROM records WHERE container = ?1 AND lsn <= ?2", [src_id, snap])
                .unwrap();
            conn.execute_batch("COMMIT").unwrap();
            let took = t.elapsed();
            assert_eq!(copied, n, "native copy count");
            conn.execute("DELETE FROM records WHERE container = -1", [])
                .unwrap();
            took
        };
        let rate = n as f64 / took.as_secs_f64();
        let native_rate = n as f64 / native.as_secs_f64();
        println!("| {n} | copy throughput (records/s) | {rate:.0} | {native_rate:.0} (one native INSERT…SELECT) | {:.2} |", rate / native_rate);
        per10k.push((n, took.as_secs_f64() * 10_000.0 / n as f64));

        // 2. Clone vs export + import through the data API.
        app.host.take_memory_peak("data-api");
        let t = Instant::now();
        let lines = ctx.export(&src, Some(snap));
        memory.push((n, worker_peak, app.host.take_memory_peak("data-api")));
        assert_eq!(
            app.send_json(
                "PUT",
                &format!("/data/v1/resources/native:manual{n}"),
                &ctx.h(),
                &json!({})
            )
            .status,
            201
        );
        for chunk in lines.chunks(20_000) {
            let body = chunk.join("\n");
            let r = app.request(
                "POST",
                &format!("/data/v1/resources/native:manual{n}/import"),
                &ctx.h(),
                Some(body.as_bytes()),
            );
            assert_eq!(r.status, 200, "{}", r.body);
        }
        let manual = t.elapsed();
        assert_eq!(
            checksum(&ctx.export(&format!("manual{n}"), None)),
            checksum(&lines)
        );
        println!(
            "| {n} | clone vs export+import (s) | {:.2} | {:.2} | {:.1}× faster |",
            took.as_secs_f64(),
            manual.as_secs_f64(),
            manual.as_secs_f64() / took.as_secs_f64()
        );

        // 5. Worker tick wall time vs its 1 s budget.
        let (max, p99) = (*ticks.iter().max().unwrap(), pct(&mut ticks, 0.99));
        println!(
            "| {n} | worker tick max / p99 (ms) vs 1000 ms budget | {:.0} / {:.0} | 1000 | {:.2} |",
            max.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            max.as_secs_f64()
        );

        // 6. Write amplification: file growth per record copied.
        let size1 = on_disk();
        let (_, _, _) = ctx.clone_with_ticks(&src, &format!("flat{n}"), false);
        let size2 = on_disk();
        let body_bytes = lines.iter().map(|l| l.len()).sum::<usize>() as f64 / n as f64;
        println!(
            "| {n} | file bytes per record copied (history / skip-history) | {:.0} / {:.0} | {body_bytes:.0} (NDJSON line) | {:.2} / {:.2} |",
            history_growth as f64 / n as f64,
            (size2.saturating_sub(size1)) as f64 / n as f64,
            history_growth as f64 / n as f64 / body_bytes,
            (size2.saturating_sub(size1)) as f64 / n as f64 / body_bytes
        );
    }
    // 3. Cost growth: time per 10 000 records at each size, against the smallest.
    let base = per10k[0].1;
    for (n, s) in &per10k {
        println!(
            "| {n} | clone time per 10 000 records (s) | {s:.3} | {base:.3} (at {}) | {:.2} |",
            per10k[0].0,
            s / base
        );
    }

    // 5b. Guest memory: peak linear memory of the worker (clone) and the
    // data API (streamed export), against the smallest size.
    let (_, w0, d0) = memory[0];
    for (n, w, d) in &memory {
        let mib = |b: usize| b as f64 / (1 << 20) as f64;
        println!(
            "| {n} | guest peak memory (MiB): worker during clone / data-api during export | {:.1} / {:.1} | {:.1} / {:.1} (at {}) | {:.2} / {:.2} |",
            mib(*w), mib(*d), mib(w0), mib(d0), memory[0].0, *w as f64 / w0.max(1) as f64, *d as f64 / d0.max(1) as f64
        );
    }

    // 4. Status latency at N concurrent clients, while a clone runs vs idle.
    let n = if opts.sizes.contains(&opts.latency_size) {
        opts.latency_size
    } else {
        *opts.sizes.iter().max().unwrap()
    };
    let wrk = wrk_available();
    let latency = |busy: bool, clients: usize| -> (Duration, Duration) {
        let op = app
            .send_json(
                "POST",
                &format!("/data/v1/resources/native:src{n}/clones"),
                &ctx.h(),
                &json!({"target": format!("native:lat{busy}{clients}-{n}")}),
            )
            .json();
        let id = op["id"].as_str().unwrap().to_string();
        if !busy {
            // Finish it first: idle means no copy is running.
            while app
                .get(&format!("/data/v1/operations/{id}"), &ctx.h())
                .json()["status"]
                != "succeeded"
            {
                app.tick().unwrap();
            }
        }
        let url = format!("{}/data/v1/operations/{id}", app.base);
        let stop = std::sync::atomic::AtomicBool::new(false);
        let clones = std::sync::atomic::AtomicUsize::new(0);
        let result = std::thread::scope(|s| {
            if busy {
                // Keep a clone of the n-record source running for the whole
                // measurement: when one ends, the next starts.
                s.spawn(|| {
                    let mut current = id.clone();
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        app.tick().unwrap();
                        let st = app
                            .get(&format!("/data/v1/operations/{current}"), &ctx.h())
                            .json()["status"]
                            .clone();
                        assert_ne!(st, "failed");
                        if st == "succeeded" {
                            let k = clones.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let target = format!("native:busy{n}-{clients}-{k}");
                            let path = format!("/data/v1/resources/native:src{n}/clones");
                            let next = app
                                .send_json("POST", &path, &ctx.h(), &json!({ "target": target }))
                                .json();
                            current = next["id"].as_str().unwrap().to_string();
                        }
                    }
                });
            }
            let r = if wrk {
                wrk_run(&url, &ctx.auth, clients)
            } else {
                threads_run(&url, &ctx.auth, clients)
            };
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            r
        });
        if busy {
            let done = clones.load(std::sync::atomic::Ordering::Relaxed);
            eprintln!("bench: {done} clones of {n} records completed under the load");
        }
        result
    };
    println!(
        "| | load generator | {} | | |",
        if wrk {
            "Debian's wrk (2 threads, 1 at 1 client; 10 s per run)"
        } else {
            "the harness's threads (wrk not installed)"
        }
    );
    // At one client the figure is the server's own latency; at many it adds
    // the queueing of `clients` connections on this machine's cores.
    for clients in [1, opts.clients] {
        let (idle50, idle99) = latency(false, clients);
        let (busy50, busy99) = latency(true, clients);
        println!(
            "| {n} | GET operation p50 / p99 at {clients} client(s) (ms), clones running back to back vs idle | {:.1} / {:.1} | {:.1} / {:.1} | {:.2} (p99) |",
            busy50.as_secs_f64() * 1e3,
            busy99.as_secs_f64() * 1e3,
            idle50.as_secs_f64() * 1e3,
            idle99.as_secs_f64() * 1e3,
            busy99.as_secs_f64() / idle99.as_secs_f64()
        );
    }
}

/// Whether `wrk` is on PATH; when it is not and we are root, install
/// Debian's package first.
fn wrk_available() -> bool {
    let found = || {
        std::process::Command::new("wrk")
            .arg("--version")
            .output()
            .is_ok()
    };
    if !found()
        && std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|o| o.stdout.starts_with(b"0"))
            .unwrap_or(false)
    {
        eprintln!("bench: installing wrk (apt-get install wrk)");
        let _ = std::process::Command::new("apt-get")
            .args(["install", "-y", "-qq", "wrk"])
            .status();
    }
    found()
}

/// p50 and p99 of `GET url` from `clients` connections for 10 s, by wrk.
/// Panics when any answer is not 2xx: a figure over failed requests would
/// be wrong.
fn wrk_run(url: &str, auth: &str, clients: usize) -> (Duration, Duration) {
    let out = std::process::Command::new("wrk")
        .args([
            &format!("-t{}", clients.min(2)),
            &format!("-c{clients}"),
            "-d10s",
            "--latency",
            "-H",
            &format!("authorization: {auth}"),
            url,
        ])
        .output()
        .expect("wrk runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "wrk failed: {text}");
    assert!(!text.contains("Non-2xx"), "wrk saw failed requests: {text}");
    let pct = |p: &str| -> Duration {
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(p))
            .unwrap_or_else(|| panic!("no {p} in wrk's output: {text}"));
        let v = line.split_whitespace().nth(1).unwrap();
        let (num, scale) = if let Some(x) = v.strip_suffix("us") {
            (x, 1e-6)
        } else if let Some(x) = v.strip_suffix("ms") {
            (x, 1e-3)
        } else if let Some(x) = v.strip_suffix('s') {
            (x, 1.0)
        } else {
            panic!("unknown unit in {line}")
        };
        Duration::from_secs_f64(num.parse::<f64>().unwrap() * scale)
    };
    (pct("50%"), pct("99%"))
}

/// The same measurement without wrk: `clients` threads, 40 requests each.
fn threads_run(url: &str, auth: &str, clients: usize) -> (Duration, Duration) {
    let samples = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..clients {
            s.spawn(|| {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .into();
                let mut mine = Vec::new();
                for _ in 0..40 {
                    let t = Instant::now();
                    let r = agent.get(url).header("authorization", auth).call().unwrap();
                    assert_eq!(r.status().as_u16(), 200);
                    mine.push(t.elapsed());
                }
                samples.lock().unwrap().extend(mine);
            });
        }
    });
    let mut v = samples.into_inner().unwrap();
    (pct(&mut v, 0.5), pct(&mut v, 0.99))
}
