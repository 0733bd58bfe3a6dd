//! Load for the latency figures: Debian's `wrk` when installed (its own
//! percentiles), else threads of the harness's client.

use std::time::{Duration, Instant};

use crate::stats::Times;

/// Latency and rate of a load run.
pub struct Load {
    pub p50: Duration,
    pub p99: Duration,
    /// Requests per second.
    pub rate: f64,
}

/// Whether `wrk` is on PATH; when it is not and we are root, install
/// Debian's package first.
pub fn wrk_available() -> bool {
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
pub fn wrk_run(url: &str, auth: &str, clients: usize) -> Load {
    wrk_load(url, Some(auth), clients, 10, true)
}

/// `wrk` for `secs` seconds; with `ok_only`, any answer that is not 2xx fails.
pub fn wrk_load(url: &str, auth: Option<&str>, clients: usize, secs: u32, ok_only: bool) -> Load {
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
pub fn threads_run(url: &str, auth: &str, clients: usize) -> Load {
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
    let v: Times = samples.into_inner().unwrap().into_iter().collect();
    Load {
        rate: v.len() as f64 / took.as_secs_f64(),
        p50: v.at(0.5),
        p99: v.at(0.99),
    }
}
