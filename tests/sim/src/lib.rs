//! A deterministic simulation of the engine, in the manner of
//! FoundationDB's and TigerBeetle's simulators: a seed drives logical
//! clients and workers against one SQLite database, interleaved at every
//! statement (`sched.rs`), with crashes, `Busy` and `Unavailable` answers
//! and the clock moving; a checker compares every read of every container
//! with a reference model built from what the engine acknowledged
//! (`model.rs`, `check.rs`).
//!
//! Two backends: a local SQLite file (every seed on a fresh file) and a
//! real sqld (every seed on a fresh server; the statements go over Hrana,
//! as the app's do under a libSQL runtime config).
//!
//! - `cargo test -p spinoff-sim`: `SIM_SEEDS` seeds on the local file
//!   (default 1 000) and `SIM_SQLD_SEEDS` on sqld (default 12), from
//!   `SIM_FIRST` (default 0);
//! - `SIM_SEED=n cargo test -p spinoff-sim`: one seed (on the file, or on
//!   sqld with `SIM_BACKEND=sqld`), its trace printed; with `SIM_ROUNDS`
//!   and `SIM_SKIP=3,7,…` (as a failure prints them) the shrunk run;
//! - a failing seed prints the seed, the smallest run that still fails
//!   (fewer rounds, then calls dropped a chunk at a time while it fails)
//!   and its trace.
//!
//! Files: `sched.rs` (the scheduler, the faulty connection, the clock),
//! `model.rs` (the reference model), `calls.rs` (the calls and how one
//! runs), `actors.rs` (the actors, the rounds, the settling),
//! `check.rs` (the checker).

mod actors;
mod calls;
mod check;
mod model;
mod sched;

use std::collections::BTreeSet;

pub use calls::{Call, Outcome};

/// Where a run keeps its database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in a temporary directory.
    File,
    /// A sqld started for the run.
    Sqld,
    /// A PostgreSQL server started for the run.
    Postgres,
}

impl Backend {
    /// `SIM_BACKEND`: `sqld`, `postgres`, or the file.
    pub fn from_env() -> Backend {
        match std::env::var("SIM_BACKEND").as_deref() {
            Ok("sqld") => Backend::Sqld,
            Ok("postgres") => Backend::Postgres,
            _ => Backend::File,
        }
    }
}

/// What one run is: a seed, how many rounds, and calls to leave out (the
/// shrinker's mask, by index of generation).
#[derive(Debug, Clone)]
pub struct Plan {
    pub seed: u64,
    pub rounds: usize,
    pub skip: BTreeSet<usize>,
    pub backend: Backend,
}

/// The rounds of one seed.
pub const ROUNDS: usize = 40;

pub fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// Run `plan`; on failure the message and the run's trace.
fn run(plan: &Plan) -> Result<Vec<String>, (String, Vec<String>)> {
    actors::run(plan)
}

/// The smallest plan that still fails: fewer rounds (a failure at round r
/// needs no later round), then calls masked one chunk at a time.
fn shrink(plan: &Plan, failed_at_round: usize) -> (Plan, String, Vec<String>) {
    let mut best = Plan {
        rounds: failed_at_round + 1,
        ..plan.clone()
    };
    let (mut msg, mut trace) = match run(&best) {
        Err(e) => e,
        Ok(_) => {
            best = plan.clone();
            run(&best).expect_err("the plan failed before")
        }
    };
    let calls = actors::calls_in(&best);
    let mut chunk = calls.len().div_ceil(2).max(1);
    let mut attempts = 0;
    while chunk >= 1 && attempts < 300 {
        let mut i = 0;
        while i < calls.len() && attempts < 300 {
            let drop: Vec<usize> = calls[i..(i + chunk).min(calls.len())]
                .iter()
                .copied()
                .filter(|c| !best.skip.contains(c))
                .collect();
            i += chunk;
            if drop.is_empty() {
                continue;
            }
            let mut next = best.clone();
            next.skip.extend(drop);
            attempts += 1;
            if let Err((m, t)) = run(&next) {
                best = next;
                msg = m;
                trace = t;
            }
        }
        if chunk == 1 {
            break;
        }
        chunk /= 2;
    }
    (best, msg, trace)
}

fn report(plan: &Plan, msg: &str) -> String {
    let (best, msg2, trace) = shrink(plan, actors::failed_round(msg));
    let skip: Vec<String> = best.skip.iter().map(|s| s.to_string()).collect();
    format!(
        "simulation failed: seed {seed}\n  {msg}\nshrunk to {} rounds, {} calls left out:\n  {msg2}\n\
         replay: SIM_SEED={seed}{backend} SIM_ROUNDS={} SIM_SKIP={} cargo test -p spinoff-sim -- --nocapture\n\
         trace:\n{}",
        best.rounds,
        best.skip.len(),
        best.rounds,
        skip.join(","),
        trace.join("\n"),
        seed = plan.seed,
        backend = match plan.backend {
            Backend::Sqld => " SIM_BACKEND=sqld",
            Backend::Postgres => " SIM_BACKEND=postgres",
            Backend::File => "",
        },
    )
}

/// Run seeds `first..first + n` on up to `threads` threads; the first
/// failure's report.
pub fn run_seeds(
    first: u64,
    n: u64,
    rounds: usize,
    backend: Backend,
    threads: u64,
) -> Option<String> {
    let threads = (std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2) as u64)
        .min(threads)
        .max(1);
    let failure = std::sync::Mutex::new(None::<String>);
    std::thread::scope(|s| {
        for t in 0..threads {
            let failure = &failure;
            s.spawn(move || {
                let mut seed = first + t;
                while seed < first + n {
                    if failure.lock().unwrap().is_some() {
                        return;
                    }
                    let plan = Plan {
                        seed,
                        rounds,
                        skip: BTreeSet::new(),
                        backend,
                    };
                    if let Err((msg, _)) = run(&plan) {
                        let r = report(&plan, &msg);
                        let mut f = failure.lock().unwrap();
                        if f.is_none() {
                            *f = Some(r);
                        }
                        return;
                    }
                    seed += threads;
                }
            });
        }
    });
    failure.into_inner().unwrap()
}

/// Replay one seed (`SIM_SEED`, `SIM_ROUNDS`, `SIM_SKIP`, `SIM_BACKEND`):
/// its trace when it passes, a panic with the trace when it fails.
pub fn replay(seed: u64) {
    let rounds = env_u64("SIM_ROUNDS").map(|r| r as usize).unwrap_or(ROUNDS);
    let skip = std::env::var("SIM_SKIP")
        .unwrap_or_default()
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let backend = Backend::from_env();
    let plan = Plan {
        seed,
        rounds,
        skip,
        backend,
    };
    match run(&plan) {
        Ok(trace) => println!("seed {seed}: passed\n{}", trace.join("\n")),
        Err((msg, trace)) => panic!("seed {seed} failed: {msg}\ntrace:\n{}", trace.join("\n")),
    }
}
