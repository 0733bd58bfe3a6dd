//! The simulation's seeds: on the local file (`SIM_SEEDS`, default 1 000),
//! on a real sqld (`SIM_SQLD_SEEDS`, default 12) and on a real PostgreSQL
//! (`SIM_PG_SEEDS`, default 12). `SIM_SEED=n` replays
//! one seed instead (see the crate's documentation).

use spinoff_sim::*;

fn seeds(backend: Backend, var: &str, default: u64, threads: u64) {
    if let Some(seed) = env_u64("SIM_SEED") {
        if Backend::from_env() == backend {
            replay(seed);
        }
        return;
    }
    let rounds = env_u64("SIM_ROUNDS").map(|r| r as usize).unwrap_or(ROUNDS);
    let n = env_u64(var).unwrap_or(default);
    let first = env_u64("SIM_FIRST").unwrap_or(0);
    let started = std::time::Instant::now();
    if let Some(report) = run_seeds(first, n, rounds, backend, threads) {
        panic!("{report}");
    }
    println!(
        "simulation on {backend:?}: {n} seeds from {first}, {rounds} rounds each, passed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn simulation_on_a_local_file() {
    seeds(Backend::File, "SIM_SEEDS", 1_000, 2);
}

#[test]
fn simulation_on_sqld() {
    if spinoff_e2e::services::binary("sqld").is_none() {
        assert_ne!(
            std::env::var("SPINOFF_REQUIRE_SERVICES").as_deref(),
            Ok("1"),
            "no sqld (scripts/services), and SPINOFF_REQUIRE_SERVICES=1"
        );
        eprintln!("SKIPPED simulation_on_sqld: no sqld (run scripts/services)");
        return;
    }
    seeds(Backend::Sqld, "SIM_SQLD_SEEDS", 12, 1);
}

#[test]
fn simulation_on_postgres() {
    if spinoff_e2e::services::binary("postgres").is_none() {
        assert_ne!(
            std::env::var("SPINOFF_REQUIRE_SERVICES").as_deref(),
            Ok("1"),
            "no postgres (scripts/services), and SPINOFF_REQUIRE_SERVICES=1"
        );
        eprintln!("SKIPPED simulation_on_postgres: no postgres (run scripts/services)");
        return;
    }
    seeds(Backend::Postgres, "SIM_PG_SEEDS", 12, 1);
}
