//! Figure 4: a status read's latency at one and at many connections, while
//! clones of the `n`-record source run back to back, against idle.

use spinoff_e2e::*;

use crate::harness::Ctx;
use crate::load::{threads_run, wrk_run, Load};
use crate::stats::ms;

/// Returns the idle load at each client count.
pub fn status_reads(ctx: &Ctx, name: &str, n: usize, many: usize, wrk: bool) -> Vec<(usize, Load)> {
    let app = ctx.app;
    let mut out = Vec::new();
    // 4. Status latency at N concurrent clients, while a clone runs vs idle.
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
    for clients in [1, many] {
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
        out.push((clients, idle));
    }

    out
}
