//! `spinoff-bench`: runs the real components in the test host, and under real
//! `spin up` when spin is found (`SPINOFF_SPIN`, else PATH), and prints each
//! figure beside a baseline measured in the same run, as a ratio, then Spin's
//! figures against the host's. Asserts
//! nothing about time; fails loudly when a result is wrong (counts or
//! checksums differ).
//!
//! ```text
//! cargo run -p spinoff-bench -- [--sizes 10000,100000,1000000] [--latency-size 100000] [--clients 50]
//!     [--no-spin | --runtimes host,spin] [--backends local,remote] [--no-latency]
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
    /// Only the project's host, even when `spin` is found (`SPINOFF_SPIN`,
    /// else PATH).
    #[arg(long)]
    no_spin: bool,
    /// The runtimes to measure, in order (`host`, `spin`); default: the host,
    /// then Spin when found.
    #[arg(long, value_delimiter = ',')]
    runtimes: Vec<String>,
    /// Where the app keeps its data, each measured in the same run: `local`
    /// (SQLite files in the state directory) and `remote` (a sqld and a
    /// Redis started for the run, through Spin's runtime config).
    #[arg(long, value_delimiter = ',', default_value = "local")]
    backends: Vec<String>,
    /// Skip the status-latency and request-phase figures (4).
    #[arg(long)]
    no_latency: bool,
}

struct Ctx<'a> {
    app: &'a App,
    auth: String,
}

impl Ctx<'_> {
    fn h(&self) -> [(&str, &str); 1] {
        [("authorization", self.auth.as_str())]
    }
    /// Create `native:{name}` and import `n` records into it through one
    /// import session (requests of 20 000 lines, then one commit: all or
    /// nothing), then tick the worker until the import is hydrated and its
    /// staging purged. Returns (time to the commit's answer, time from it
    /// until the worker had nothing left to do).
    fn load(&self, name: &str, n: usize) -> (Duration, Duration) {
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
        let t = Instant::now();
        let session = self.app.request(
            "POST",
            &format!("/data/v1/resources/native:{name}/imports"),
            &self.h(),
            None,
        );
        assert_eq!(session.status, 201, "{}", session.body);
        let id = session.json()["id"].as_str().unwrap().to_string();
        for start in (0..n).step_by(20_000) {
            let lines: String = (start..(start + 20_000).min(n))
                .map(|i| format!("{}\n", json!({"collection": (["c0", "c1", "c2", "c3"][i % 4]), "key": format!("k{i:08}"), "body": {"i": i, "pad": pad}})))
                .collect();
            let r = self.app.request(
                "POST",
                &format!("/data/v1/resources/native:{name}/imports/{id}/lines"),
                &self.h(),
                Some(lines.as_bytes()),
            );
            assert_eq!(r.status, 200, "{}", r.body);
        }
        let r = self.app.request(
            "POST",
            &format!("/data/v1/resources/native:{name}/imports/{id}/commit"),
            &self.h(),
            None,
        );
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["imported"], n as i64, "{}", r.body);
        let committed = t.elapsed();
        let t = Instant::now();
        self.settle();
        (committed, t.elapsed())
    }
    /// Tick the worker until it has nothing left to do: no chunk to run
    /// (an import's hydration) and nothing to purge (its staging), so the
    /// next figure measures only its own work.
    fn settle(&self) {
        loop {
            let v = self.app.tick_report().unwrap();
            if v["steps"] == 0 && v["purged_records"] == 0 {
                break;
            }
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
                &json!({"target": format!("native:{dst}"), "history": history, "mode": "copy"}),
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
                chunk_report(self.app, &id, ticks.len());
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

/// What one runtime measured, for the side-by-side table.
#[derive(Default)]
struct Figures {
    /// (size, records/s, native records/s)
    throughput: Vec<(usize, f64, f64)>,
    /// (size, tick max, tick p99)
    ticks: Vec<(usize, Duration, Duration)>,
    /// (clients, status read of a finished clone)
    idle: Vec<(usize, Load)>,
    /// Requests that stop at successive phases of a status read.
    phases: Vec<(&'static str, Load)>,
    /// (size, import session to its commit, then the worker's hydration)
    imports: Vec<(usize, Duration, Duration)>,
}

fn main() {
    let opts = Opts::parse();
    let runtimes: Vec<Runtime> = if opts.runtimes.is_empty() {
        let mut v = vec![Runtime::Host];
        match (opts.no_spin, spin_binary()) {
            (true, _) => eprintln!("bench: real Spin skipped (--no-spin)"),
            (false, Some(spin)) => {
                eprintln!("bench: real Spin too ({})", spin.display());
                v.push(Runtime::Spin);
            }
            (false, None) => eprintln!(
                "bench: real Spin SKIPPED: no spin on PATH and SPINOFF_SPIN unset \
                 (../shared/tools/spin/install prints one)"
            ),
        }
        v
    } else {
        opts.runtimes
            .iter()
            .map(|r| match r.as_str() {
                "host" => Runtime::Host,
                "spin" => Runtime::Spin,
                other => panic!("--runtimes: {other:?} is not host or spin"),
            })
            .collect()
    };
    let backends: Vec<Backend> = opts
        .backends
        .iter()
        .map(|b| match b.as_str() {
            "local" => Backend::Local,
            "remote" => Backend::Remote,
            other => panic!("--backends: {other:?} is not local or remote"),
        })
        .collect();
    let wrk = wrk_available();
    println!("| runtime | size | figure | Spinoff | baseline | ratio |");
    println!("|---|---:|---|---:|---:|---:|");
    println!(
        "| | | load generator | {} | | |",
        if wrk {
            "Debian's wrk (2 threads, 1 at 1 client; 10 s per run)"
        } else {
            "the harness's threads (wrk not installed)"
        }
    );
    let mut all = Vec::new();
    for &rt in &runtimes {
        for &backend in &backends {
            all.push(((rt, backend), run(rt, backend, &opts, wrk)));
        }
    }
    let find = |rt, b| all.iter().find(|(k, _)| *k == (rt, b)).map(|(_, f)| f);
    // Real Spin beside the host, same run, same backend.
    for &b in &backends {
        if let (Some(spin), Some(host)) = (find(Runtime::Spin, b), find(Runtime::Host, b)) {
            let scope = match b {
                Backend::Local => "Real Spin beside the host, local file",
                Backend::Remote => "Real Spin beside the host, sqld + Redis",
            };
            compare(("spin", spin), ("spinoff-host", host), scope);
        }
    }
    // The remote backend beside the local file, same run, same runtime.
    for &rt in &runtimes {
        if let (Some(remote), Some(local)) = (find(rt, Backend::Remote), find(rt, Backend::Local)) {
            let scope = format!("{}: sqld + Redis beside the local file", rt.name());
            compare(("sqld + Redis", remote), ("local file", local), &scope);
        }
    }
}

/// The figures' row label: the runtime, and the backend when remote.
fn label(rt: Runtime, backend: Backend) -> String {
    match backend {
        Backend::Local => rt.name().to_string(),
        Backend::Remote => format!("{} on sqld", rt.name()),
    }
}

/// Two runs' figures side by side, as a ratio `a / b`.
fn compare((an, a): (&str, &Figures), (bn, b): (&str, &Figures), scope: &str) {
    println!();
    println!("{scope}:");
    println!();
    println!("| figure | {an} | {bn} | {an} / {bn} |");
    println!("|---|---:|---:|---:|");
    for ((n, s, sn), (_, h, hn)) in a.throughput.iter().zip(&b.throughput) {
        println!(
            "| {n}: copy throughput (records/s) | {s:.0} | {h:.0} | {:.2} |",
            s / h
        );
        println!(
            "| {n}: one native INSERT…SELECT on the same database (records/s) | {sn:.0} | {hn:.0} | {:.2} |",
            sn / hn
        );
        println!(
            "| {n}: copy throughput vs native INSERT…SELECT | {:.2} | {:.2} | {:.2} |",
            s / sn,
            h / hn,
            (s / sn) / (h / hn)
        );
    }
    for ((n, sa, ca), (_, sb, cb)) in a.imports.iter().zip(&b.imports) {
        println!(
            "| {n}: import through one session, to the commit's answer (s) | {:.1} | {:.1} | {:.2} |",
            sa.as_secs_f64(),
            sb.as_secs_f64(),
            sa.as_secs_f64() / sb.as_secs_f64()
        );
        println!(
            "| {n}: then hydrated and staging purged by the worker (s) | {:.1} | {:.1} | {:.2} |",
            ca.as_secs_f64(),
            cb.as_secs_f64(),
            ca.as_secs_f64() / cb.as_secs_f64()
        );
    }
    for ((n, smax, sp99), (_, hmax, hp99)) in a.ticks.iter().zip(&b.ticks) {
        println!(
            "| {n}: worker tick max / p99 (ms) | {:.0} / {:.0} | {:.0} / {:.0} | {:.2} / {:.2} |",
            ms(*smax),
            ms(*sp99),
            ms(*hmax),
            ms(*hp99),
            smax.as_secs_f64() / hmax.as_secs_f64(),
            sp99.as_secs_f64() / hp99.as_secs_f64()
        );
    }
    for ((c, s), (_, h)) in a.idle.iter().zip(&b.idle) {
        println!(
            "| status reads/s at {c} connection(s), finished clone | {:.0} | {:.0} | {:.2} |",
            s.rate,
            h.rate,
            s.rate / h.rate,
        );
        println!(
            "| status read p50 / p99 at {c} connection(s) (ms) | {:.2} / {:.2} | {:.2} / {:.2} | {:.2} / {:.2} |",
            ms(s.p50),
            ms(s.p99),
            ms(h.p50),
            ms(h.p99),
            s.p50.as_secs_f64() / h.p50.as_secs_f64(),
            s.p99.as_secs_f64() / h.p99.as_secs_f64()
        );
    }
    for ((what, s), (_, h)) in a.phases.iter().zip(&b.phases) {
        println!(
            "| request phases: {what}: p50 (ms) | {:.3} | {:.3} | {:.2} |",
            ms(s.p50),
            ms(h.p50),
            s.p50.as_secs_f64() / h.p50.as_secs_f64()
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Every figure on one runtime, with a fresh state directory.
fn run(rt: Runtime, backend: Backend, opts: &Opts, wrk: bool) -> Figures {
    let name = &label(rt, backend);
    let mut figures = Figures::default();
    let app = App::try_start_on(
        rt,
        backend,
        tempfile::tempdir().unwrap(),
        Options {
            variables: [
                ("admin_token".to_string(), ADMIN_TOKEN.to_string()),
                ("worker_budget_ms".to_string(), "1000".to_string()),
                // The bench starts clones back to back: no per-minute cap.
                ("limit_starts_per_minute".to_string(), "0".to_string()),
            ]
            .into(),
            cron: false,
            runtime_config: None,
        },
    )
    .unwrap_or_else(|e| panic!("{name} starts: {e:#}"));
    let ctx = Ctx {
        app: &app,
        auth: format!("Bearer {}", app.token("bench")),
    };
    let peak = |component: &str| app.host().map(|h| h.take_memory_peak(component));
    let mut per10k = Vec::new();
    let mut memory: Vec<(usize, usize, usize)> = Vec::new();
    for &n in &opts.sizes {
        let src = format!("src{n}");
        let (imported, hydrated) = ctx.load(&src, n);
        println!(
            "| {name} | {n} | import in one session (20 000-line requests, one commit): records/s to the commit's answer; then the worker's hydration (s) | {:.0} | {:.1} s | |",
            n as f64 / imported.as_secs_f64(),
            hydrated.as_secs_f64()
        );
        figures.imports.push((n, imported, hydrated));
        // The local file (None on the remote backend).
        let db_file = app.services().is_none().then(|| app.db_path());
        // What the database takes on disk: the file and its write-ahead
        // log, or everything under sqld's data directory (its database,
        // WAL and replication log).
        let on_disk = || -> u64 {
            match (&db_file, app.services()) {
                (Some(f), _) => {
                    let wal = f.with_file_name("sqlite_db.db-wal");
                    std::fs::metadata(f).map(|m| m.len()).unwrap_or(0)
                        + std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0)
                }
                (None, Some(s)) => dir_size(s.sqld.dir.path()),
                (None, None) => 0,
            }
        };
        let size0 = on_disk();

        // 1. Copy throughput vs one native INSERT … SELECT.
        peak("clone-worker");
        let (took, mut ticks, op) = ctx.clone_with_ticks(&src, &format!("dst{n}"), true);
        let worker_peak = peak("clone-worker");
        assert_eq!(op["progress"]["records_copied"], n as i64, "wrong count");
        let snap = op["snapshot_lsn"].as_i64().unwrap();
        assert_eq!(
            checksum(&ctx.export(&format!("dst{n}"), None)),
            checksum(&ctx.export(&src, Some(snap))),
            "clone differs from source"
        );
        let size1 = on_disk();
        let history_growth = size1.saturating_sub(size0);
        // One statement on the same database (the local file through
        // SQLite, or the same sqld over Hrana), in its own transaction; the
        // median of three (one run alone varies with the WAL's state).
        let native = {
            let db = app.database();
            let q = |sql: &str, p: &[engine::Value]| engine::Db::execute(&*db, sql, p).unwrap();
            let src_id = q(
                "SELECT id FROM containers WHERE name = ?1 AND deleting = 0",
                &[src.as_str().into()],
            )[0]
            .i64(0)
            .unwrap();
            let mut runs: Vec<Duration> = (0..3)
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
            pct(&mut runs, 0.5)
        };
        let rate = n as f64 / took.as_secs_f64();
        let native_rate = n as f64 / native.as_secs_f64();
        println!("| {name} | {n} | copy throughput (records/s) | {rate:.0} | {native_rate:.0} (one native INSERT…SELECT) | {:.2} |", rate / native_rate);
        figures.throughput.push((n, rate, native_rate));
        per10k.push((n, took.as_secs_f64() * 10_000.0 / n as f64));

        // 2. Clone vs export + import through the data API.
        peak("data-api");
        let t = Instant::now();
        let lines = ctx.export(&src, Some(snap));
        if let (Some(w), Some(d)) = (worker_peak, peak("data-api")) {
            memory.push((n, w, d));
        }
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
        // The import's requests over 2 000 lines were staged: their
        // hydration and purge run now, outside every timed figure.
        ctx.settle();
        assert_eq!(
            checksum(&ctx.export(&format!("manual{n}"), None)),
            checksum(&lines)
        );
        println!(
            "| {name} | {n} | clone vs export+import (s) | {:.2} | {:.2} | {:.1}× faster |",
            took.as_secs_f64(),
            manual.as_secs_f64(),
            manual.as_secs_f64() / took.as_secs_f64()
        );

        // 7. Copy-on-write branches, against the physical copy above.
        branch_figures(&ctx, name, n, db_file.as_deref(), native_rate, manual);

        // 5. Worker tick wall time vs its 1 s budget (an HTTP tick, as a
        // cron trigger's call costs the same instantiation and work).
        let (max, p99) = (*ticks.iter().max().unwrap(), pct(&mut ticks, 0.99));
        figures.ticks.push((n, max, p99));
        println!(
            "| {name} | {n} | worker tick max / p99 (ms) vs 1000 ms budget | {:.0} / {:.0} | 1000 | {:.2} |",
            ms(max),
            ms(p99),
            max.as_secs_f64()
        );

        // 6. Write amplification: file growth per record copied.
        let size1 = on_disk();
        let (_, _, _) = ctx.clone_with_ticks(&src, &format!("flat{n}"), false);
        let size2 = on_disk();
        let body_bytes = lines.iter().map(|l| l.len()).sum::<usize>() as f64 / n as f64;
        println!(
            "| {name} | {n} | file bytes per record copied (history / skip-history) | {:.0} / {:.0} | {body_bytes:.0} (NDJSON line) | {:.2} / {:.2} |",
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
            "| {name} | {n} | clone time per 10 000 records (s) | {s:.3} | {base:.3} (at {}) | {:.2} |",
            per10k[0].0,
            s / base
        );
    }

    // 5b. Guest memory (the host only: Spin does not report it): peak
    // linear memory of the worker (clone) and the data API (streamed
    // export), against the smallest size.
    if let Some(&(n0, w0, d0)) = memory.first() {
        for (n, w, d) in &memory {
            let mib = |b: usize| b as f64 / (1 << 20) as f64;
            println!(
                "| {name} | {n} | guest peak memory (MiB): worker during clone / data-api during export | {:.1} / {:.1} | {:.1} / {:.1} (at {n0}) | {:.2} / {:.2} |",
                mib(*w), mib(*d), mib(w0), mib(d0), *w as f64 / w0.max(1) as f64, *d as f64 / d0.max(1) as f64
            );
        }
    }

    if opts.no_latency {
        return figures;
    }
    // 4. Status latency at N concurrent clients, while a clone runs vs idle.
    let n = if opts.sizes.contains(&opts.latency_size) {
        opts.latency_size
    } else {
        *opts.sizes.iter().max().unwrap()
    };
    let latency = |busy: bool, clients: usize| -> Load {
        let op = app
            .send_json(
                "POST",
                &format!("/data/v1/resources/native:src{n}/clones"),
                &ctx.h(),
                &json!({"target": format!("native:lat{busy}{clients}-{n}"), "mode": "copy"}),
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
                                .send_json(
                                    "POST",
                                    &path,
                                    &ctx.h(),
                                    &json!({ "target": target, "mode": "copy" }),
                                )
                                .json();
                            current = next["id"]
                                .as_str()
                                .unwrap_or_else(|| panic!("a clone under load: {next}"))
                                .to_string();
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
            eprintln!("bench: {name}: {done} clones of {n} records completed under the load");
        }
        result
    };
    // At one client the figure is the server's own latency; at many it adds
    // the queueing of `clients` connections on this machine's cores.
    for clients in [1, opts.clients] {
        let idle = latency(false, clients);
        let busy = latency(true, clients);
        println!(
            "| {name} | {n} | GET operation p50 / p99 at {clients} client(s) (ms), clones running back to back vs idle | {:.1} / {:.1} | {:.1} / {:.1} | {:.2} (p99) |",
            ms(busy.p50),
            ms(busy.p99),
            ms(idle.p50),
            ms(idle.p99),
            busy.p99.as_secs_f64() / idle.p99.as_secs_f64()
        );
        println!(
            "| {name} | {n} | GET operation (finished clone) requests/s at {clients} client(s), idle | {:.0} | | |",
            idle.rate
        );
        figures.idle.push((clients, idle));
    }

    // 7. What one request costs on this runtime, phase by phase: requests
    // to the data API that stop earlier, each from 1 connection for 4 s.
    if wrk {
        let op = app
            .send_json(
                "POST",
                &format!("/data/v1/resources/native:src{n}/clones"),
                &ctx.h(),
                &json!({"target": format!("native:phases-{n}"), "mode": "copy"}),
            )
            .json();
        let id = op["id"].as_str().unwrap().to_string();
        while app
            .get(&format!("/data/v1/operations/{id}"), &ctx.h())
            .json()["status"]
            != "succeeded"
        {
            app.tick().unwrap();
        }
        let phases: [(&str, String, Option<&str>, u16); 4] = [
            (
                "404 from the router (instantiate, route)",
                "/data/v1/no-such-route".into(),
                None,
                404,
            ),
            (
                "401 unknown token (+ admin_token variable, key-value get)",
                format!("/data/v1/operations/{id}"),
                Some("Bearer spk_unknown"),
                401,
            ),
            (
                "404 unknown operation (+ SQLite open, engine open, one query)",
                "/data/v1/operations/op_unknown".into(),
                Some(ctx.auth.as_str()),
                404,
            ),
            (
                "200 finished clone (the status read)",
                format!("/data/v1/operations/{id}"),
                Some(ctx.auth.as_str()),
                200,
            ),
        ];
        for (what, path, auth, status) in phases {
            let url = format!("{}{path}", app.base);
            let r = app.get(
                &path,
                &auth.map(|a| vec![("authorization", a)]).unwrap_or_default(),
            );
            assert_eq!(r.status, status, "{what}: {}", r.body);
            let l = wrk_load(&url, auth, 1, 4, status == 200);
            println!(
                "| {name} | | request phases, 1 connection: {what} | {:.0} req/s, p50 {:.3} ms | | |",
                l.rate,
                ms(l.p50)
            );
            figures.phases.push((what, l));
        }
        if rt == Runtime::Host && backend == Backend::Local {
            fresh_connection_costs(&app.db_path(), "bench", &id);
        }
    }
    figures
}

/// A `Db` that counts and times the statements run through it.
struct Counting<'a> {
    inner: &'a engine::native::NativeDb,
    statements: std::cell::Cell<usize>,
    spent: std::cell::Cell<Duration>,
}

impl engine::Db for Counting<'_> {
    fn execute(
        &self,
        sql: &str,
        params: &[engine::Value],
    ) -> Result<Vec<engine::Row>, engine::DbError> {
        let t = Instant::now();
        let r = engine::Db::execute(self.inner, sql, params);
        self.statements.set(self.statements.get() + 1);
        self.spent.set(self.spent.get() + t.elapsed());
        r
    }
}

/// What the status read of a finished operation costs in SQLite, natively
/// (rusqlite, the same engine calls as the data API's handler), on a fresh
/// connection per request (as Spin opens one) and on one reused connection
/// (as the host's idle list gives): statements and time per phase, the mean
/// of 500 requests.
fn fresh_connection_costs(db_path: &std::path::Path, tenant: &str, id: &str) {
    use engine::native::{NativeDb, SystemEnv};
    const N: u32 = 500;
    let env = SystemEnv;
    let (mut open, mut engine_open, mut reads) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let (mut open_stmts, mut read_stmts) = (0, 0);
    for _ in 0..N {
        let t = Instant::now();
        let db = NativeDb::open(db_path).unwrap();
        open += t.elapsed();
        let c = Counting {
            inner: &db,
            statements: 0.into(),
            spent: Duration::ZERO.into(),
        };
        let t = Instant::now();
        let e = engine::Engine::open(&c, &env).unwrap();
        engine_open += t.elapsed();
        open_stmts = c.statements.get();
        let t = Instant::now();
        let op = e.operation(tenant, id).unwrap();
        assert!(!op.status.is_active());
        e.notifications_of(id).unwrap();
        reads += t.elapsed();
        read_stmts = c.statements.get() - open_stmts;
    }
    let db = NativeDb::open(db_path).unwrap();
    let e = engine::Engine::open(&db, &env).unwrap();
    let t = Instant::now();
    for _ in 0..N {
        e.operation(tenant, id).unwrap();
        e.notifications_of(id).unwrap();
    }
    let reused = t.elapsed();
    let us = |d: Duration| d.as_secs_f64() * 1e6 / N as f64;
    println!(
        "| native | | status read, fresh connection: open the file (µs) | {:.0} | | |",
        us(open)
    );
    println!(
        "| native | | status read, fresh connection: Engine::open, {open_stmts} statements: migration check, PRAGMAs (µs) | {:.0} | | |",
        us(engine_open)
    );
    println!(
        "| native | | status read, fresh connection: the {read_stmts} reads, first one parsing the schema (µs) | {:.0} | {:.0} (same reads, reused connection) | {:.1}× |",
        us(reads),
        us(reused),
        reads.as_secs_f64() / reused.as_secs_f64()
    );
}

/// One load run's figures.
#[derive(Clone, Copy, Default)]
struct Load {
    p50: Duration,
    p99: Duration,
    /// Requests per second.
    rate: f64,
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
fn wrk_run(url: &str, auth: &str, clients: usize) -> Load {
    wrk_load(url, Some(auth), clients, 10, true)
}

/// `wrk` for `secs` seconds; with `ok_only`, any answer that is not 2xx fails.
fn wrk_load(url: &str, auth: Option<&str>, clients: usize, secs: u32, ok_only: bool) -> Load {
    let mut args = vec![
        format!("-t{}", clients.min(2)),
        format!("-c{clients}"),
        format!("-d{secs}s"),
        "--latency".to_string(),
    ];
    if let Some(auth) = auth {
        args.push("-H".into());
        args.push(format!("authorization: {auth}"));
    }
    args.push(url.to_string());
    let out = std::process::Command::new("wrk")
        .args(&args)
        .output()
        .expect("wrk runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "wrk failed: {text}");
    assert!(
        !ok_only || !text.contains("Non-2xx"),
        "wrk saw failed requests: {text}"
    );
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
    let rate = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk's output: {text}"));
    Load {
        p50: pct("50%"),
        p99: pct("99%"),
        rate,
    }
}

/// The same measurement without wrk: `clients` threads, 40 requests each.
fn threads_run(url: &str, auth: &str, clients: usize) -> Load {
    let samples = std::sync::Mutex::new(Vec::new());
    let started = Instant::now();
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
    let took = started.elapsed();
    let mut v = samples.into_inner().unwrap();
    Load {
        rate: v.len() as f64 / took.as_secs_f64(),
        p50: pct(&mut v, 0.5),
        p99: pct(&mut v, 0.99),
    }
}

/// On stderr: how an operation's chunks went (steps, time inside them,
/// last chunk size) and how many ticks drove it.
fn chunk_report(app: &App, id: &str, ticks: usize) {
    let db = app.database();
    let row = engine::Db::execute(
        &*db,
        "SELECT kind, steps, copy_us, chunk_size, records_copied FROM operations WHERE id = ?1",
        &[id.into()],
    )
    .unwrap();
    let r = &row[0];
    eprintln!(
        "bench: {} {id}: {} records in {} steps, {:.0} ms inside chunks, last chunk size {}, {ticks} ticks",
        r.text(0).unwrap(),
        r.i64(4).unwrap(),
        r.i64(1).unwrap(),
        r.i64(2).unwrap() as f64 / 1e3,
        r.i64(3).unwrap()
    );
}

/// Bytes of every file under `dir`.
fn dir_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => dir_size(&e.path()),
                    _ => e.metadata().map(|m| m.len()).unwrap_or(0),
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Time `f` `k` times and return the median.
fn median_of(k: usize, mut f: impl FnMut()) -> Duration {
    let mut v: Vec<Duration> = (0..k)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    pct(&mut v, 0.5)
}

/// Issue 17's figures at size `n` (source `src{n}`, physical copy `dst{n}`
/// made just before): start → first correct read of a branch; export +
/// import / branch; reads on a branch (1 and 4 deep) against the same reads
/// on the physical copy; bytes a fresh branch adds to the database;
/// hydration throughput against one native INSERT…SELECT (`native_rate`,
/// measured on the same file in the same run).
fn branch_figures(
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
        let op = app
            .send_json(
                "POST",
                &format!("/data/v1/resources/native:src{n}/clones"),
                &ctx.h(),
                &json!({"target": format!("native:{target}")}),
            )
            .json();
        assert_eq!(op["status"], "succeeded", "{op}");
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
        let op = app
            .send_json(
                "POST",
                &format!("/data/v1/resources/native:{parent}/clones"),
                &ctx.h(),
                &json!({"target": format!("native:{child}")}),
            )
            .json();
        assert_eq!(op["status"], "succeeded", "{op}");
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
