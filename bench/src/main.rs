//! `spinoff-bench`: runs the real components in the test host, and under real
//! `spin up` when spin is found (`SPINOFF_SPIN`, else PATH), and prints each
//! figure beside a baseline measured in the same run, as a ratio, then Spin's
//! figures against the host's. Asserts
//! nothing about time; fails loudly when a result is wrong (counts or
//! checksums differ).
//!
//! ```text
//! cargo run -p spinoff-bench -- [--sizes 10000,100000,1000000] [--latency-size 100000] [--clients 50]
//!     [--no-spin | --runtimes host,spin] [--backends local,remote,postgres] [--no-latency]
//! ```

use clap::Parser;
use spinoff_bench::figures::{branches, copy, diff, export_import, latency, phases, workflows};
use spinoff_bench::harness::{dir_size, Ctx};
use spinoff_bench::load::wrk_available;
use spinoff_bench::report::{compare, label, Figures};
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
            "postgres" => Backend::Postgres,
            other => panic!("--backends: {other:?} is not local, remote or postgres"),
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
                Backend::Postgres => "Real Spin beside the host, PostgreSQL",
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

/// Every figure on one runtime and backend, with a fresh state directory.
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
            manifest: None,
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
        let c = copy::throughput(&ctx, name, n, &src, &format!("dst{n}"));
        let worker_peak = peak("clone-worker");
        let history_growth = on_disk().saturating_sub(size0);
        figures.throughput.push((n, c.rate, c.native_rate));
        per10k.push((n, c.took.as_secs_f64() * 10_000.0 / n as f64));
        // 2. Clone vs export + import through the data API.
        peak("data-api");
        let (manual, lines) =
            export_import::versus_clone(&ctx, name, n, &src, c.snapshot, c.took, || {
                if let (Some(w), Some(d)) = (worker_peak, peak("data-api")) {
                    memory.push((n, w, d));
                }
            });
        // 7. Copy-on-write branches, against the physical copy above.
        branches::figures(&ctx, name, n, db_file.as_deref(), c.native_rate, manual);
        // 8. A diff against exporting both sides and comparing them.
        diff::versus_exports(&ctx, name, n);
        // 9. Reset, merge, and a masked branch's reads.
        workflows::figures(&ctx, name, n);
        // 10. Branch start, reset and diff beside a copy.
        workflows::under_load(&ctx, name, n);
        // 5. Worker tick wall time vs its 1 s budget.
        let (max, p99) = copy::ticks(name, n, &c.ticks);
        figures.ticks.push((n, max, p99));
        // 6. Write amplification: file growth per record copied.
        let body_bytes = lines.iter().map(|l| l.len()).sum::<usize>() as f64 / n as f64;
        copy::write_amplification(&ctx, name, n, &src, history_growth, body_bytes, &on_disk);
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
    figures.idle = latency::status_reads(&ctx, name, n, opts.clients, wrk);
    // 7b. What one request costs, phase by phase (needs wrk).
    if wrk {
        let fresh = rt == Runtime::Host && backend == Backend::Local;
        figures.phases = phases::request_phases(&ctx, name, n, fresh);
    }
    figures
}
