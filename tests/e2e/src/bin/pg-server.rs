//! A throwaway PostgreSQL server for scripts (scripts/test runs the engine's
//! tests on it): starts one ([`spinoff_e2e::postgres::Postgres`]), prints
//! its admin URL (`postgres://spinoff@127.0.0.1:PORT/postgres`) on one
//! line, and stops it when its standard input closes.

use std::io::Read;

fn main() {
    let pg = match spinoff_e2e::postgres::Postgres::start() {
        Ok(pg) => pg,
        Err(why) => {
            eprintln!("pg-server: {why}");
            std::process::exit(1);
        }
    };
    println!("{}", pg.url("postgres"));
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(pg);
}
