//! Cancel against the worker's claim: a cancel sent while worker ticks copy
//! the same operation, at many different moments. Whichever wins, the end
//! state is consistent: a cancel that answered 200 leaves the operation
//! canceled with its partial target gone, and later ticks change nothing; a
//! cancel that lost (409, the copy had finished) leaves a succeeded clone
//! equal to the source as of its snapshot. No trial ends half-way.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use spinoff_e2e::*;

fn export(app: &App, h: &[(&str, &str)], r: &str, as_of: Option<i64>) -> Vec<String> {
    let q = as_of.map(|a| format!("?as_of={a}")).unwrap_or_default();
    let reply = app.get(&format!("/data/v1/resources/{r}/export{q}"), h);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let mut lines: Vec<String> = reply.body.lines().map(String::from).collect();
    lines.sort();
    lines
}

#[test]
fn cancel_racing_worker_ticks_ends_consistently() {
    // Small ticks, so a copy spans many of them and a cancel can land
    // before, between and after chunks.
    let app = App::start_with(|o| {
        o.variables.insert("worker_budget_ms".into(), "30".into());
    });
    let auth = format!("Bearer {}", app.token("acme"));
    let h = [("authorization", auth.as_str())];
    assert_eq!(
        app.send_json("PUT", "/data/v1/resources/native:src", &h, &json!({}))
            .status,
        201
    );
    let lines: String = (0..6000)
        .map(|i| format!("{}\n", json!({"collection": (["a", "b"][i % 2]), "key": format!("k{i:05}"), "body": {"i": i, "pad": "p".repeat(200)}})))
        .collect();
    assert_eq!(
        app.request(
            "POST",
            "/data/v1/resources/native:src/import",
            &h,
            Some(lines.as_bytes())
        )
        .status,
        200
    );

    let (mut canceled, mut finished) = (0, 0);
    for trial in 0..10u64 {
        let target = format!("native:t{trial}");
        let op = app
            .send_json(
                "POST",
                "/data/v1/resources/native:src/clones",
                &h,
                &json!({"target": target, "mode": "copy"}),
            )
            .json();
        let id = op["id"].as_str().unwrap().to_string();
        let stop = AtomicBool::new(false);
        let cancel = std::thread::scope(|s| {
            let worker = s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    app.tick().unwrap();
                }
            });
            // From "before the first chunk" to "well after the copy ends".
            std::thread::sleep(Duration::from_millis(trial * 20));
            let r = app.request(
                "POST",
                &format!("/data/v1/operations/{id}/cancel"),
                &h,
                None,
            );
            stop.store(true, Ordering::Relaxed);
            worker.join().unwrap();
            r
        });
        // Let any copy that won the race finish.
        let mut status = String::new();
        for _ in 0..500 {
            status = app.get(&format!("/data/v1/operations/{id}"), &h).json()["status"]
                .as_str()
                .unwrap()
                .to_string();
            if status != "pending" && status != "in_progress" {
                break;
            }
            app.tick().unwrap();
        }
        match cancel.status {
            200 => {
                canceled += 1;
                assert_eq!(
                    status, "canceled",
                    "trial {trial}: a cancel that answered 200 must stick"
                );
                assert_eq!(
                    app.get(&format!("/data/v1/resources/{target}"), &h).status,
                    404,
                    "trial {trial}: the partial target is gone"
                );
                app.tick().unwrap();
                assert_eq!(
                    app.get(&format!("/data/v1/operations/{id}"), &h).json()["status"],
                    "canceled"
                );
            }
            409 => {
                finished += 1;
                assert_eq!(
                    status, "succeeded",
                    "trial {trial}: a refused cancel means the copy had ended: {}",
                    cancel.body
                );
                let snap = app.get(&format!("/data/v1/operations/{id}"), &h).json()["snapshot_lsn"]
                    .as_i64()
                    .unwrap();
                assert_eq!(
                    export(&app, &h, &target, None),
                    export(&app, &h, "native:src", Some(snap)),
                    "trial {trial}"
                );
            }
            other => panic!("trial {trial}: cancel answered {other}: {}", cancel.body),
        }
        // The event log ends with exactly one terminal event, the final state's.
        let events = app.get(&format!("/data/v1/operations/{id}/events"), &h);
        let events: Vec<_> = spinoff_e2e::sse_events(events.body.as_bytes()).collect();
        let kinds: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
        let terminal: Vec<&&str> = kinds
            .iter()
            .filter(|k| ["succeeded", "failed", "canceled"].contains(*k))
            .collect();
        assert_eq!(terminal.len(), 1, "trial {trial}: {kinds:?}");
        assert_eq!(
            *kinds.last().unwrap(),
            status.as_str(),
            "trial {trial}: {kinds:?}"
        );
    }
    eprintln!("cancel won {canceled} times, the copy {finished} times");
    assert!(canceled > 0, "no cancel ever landed before the copy ended");
}
