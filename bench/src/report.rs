//! The tables: each runtime's figures, and two runs side by side as
//! ratios (Spin beside the host, the remote backend beside the local file).

use std::time::Duration;

use spinoff_e2e::{Backend, Runtime};

use crate::load::Load;
use crate::stats::ms;

#[derive(Default)]
pub struct Figures {
    /// (size, records/s, native records/s)
    pub throughput: Vec<(usize, f64, f64)>,
    /// (size, tick max, tick p99)
    pub ticks: Vec<(usize, Duration, Duration)>,
    /// (clients, status read of a finished clone)
    pub idle: Vec<(usize, Load)>,
    /// Requests that stop at successive phases of a status read.
    pub phases: Vec<(&'static str, Load)>,
    /// (size, import session to its commit, then the worker's hydration)
    pub imports: Vec<(usize, Duration, Duration)>,
}

/// The figures' row label: the runtime, and the backend when remote.
pub fn label(rt: Runtime, backend: Backend) -> String {
    match backend {
        Backend::Local => rt.name().to_string(),
        Backend::Remote => format!("{} on sqld", rt.name()),
        Backend::Postgres => format!("{} on PostgreSQL", rt.name()),
    }
}

/// Two runs' figures side by side, as a ratio `a / b`.
pub fn compare((an, a): (&str, &Figures), (bn, b): (&str, &Figures), scope: &str) {
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
