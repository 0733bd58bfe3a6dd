//! The integrity issue's scenario, through the real app: plain imports one
//! after the other while the worker hydrates what the previous ones left
//! (a small tick budget, so a hydration spans several ticks while the next
//! import commits), with puts and deletes landing beside them. Before the
//! fix whole (import, collection) groups vanished and the statistics still
//! counted them. Nothing acknowledged may be lost; the statistics must
//! agree with the data; `verify` must be clean. Runs in every pass: host
//! and real Spin, local file and sqld.

use std::collections::BTreeMap;

use spinoff_e2e::*;

/// Lines per import: more than one worker chunk (2 000 rows at first) can
/// hydrate in one 10 ms tick, so each import commits while the previous
/// ones' hydration is part-way.
const PER_IMPORT: usize = 8_000;

#[test]
fn imports_committed_while_the_worker_hydrates_keep_every_record() {
    let app = App::start_with(|o| {
        o.variables.insert("worker_budget_ms".into(), "10".into());
    });
    let token = app.token("acme");
    let auth = format!("Bearer {token}");
    let h = [("authorization", auth.as_str())];
    assert_eq!(
        app.request("PUT", "/data/v1/resources/native:src", &h, None)
            .status,
        201
    );
    let mut want: BTreeMap<(String, String), Value> = BTreeMap::new();
    for round in 0..5 {
        let mut lines = String::new();
        for j in 0..PER_IMPORT {
            let i = round * PER_IMPORT + j;
            let collection = ["a", "b", "c", "d"][j % 4].to_string();
            let key = format!("k-{i:07}");
            let body = json!({"i": i, "pad": "x".repeat(200)});
            lines.push_str(
                &(json!({"collection": collection, "key": key, "body": body}).to_string() + "\n"),
            );
            want.insert((collection, key), body);
        }
        let r = app.request(
            "POST",
            "/data/v1/resources/native:src/import",
            &h,
            Some(lines.as_bytes()),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["applied"], PER_IMPORT);
        // The worker moves the previous imports' hydration a little.
        app.tick().unwrap();
        // A put and a delete land beside the hydration.
        if round > 0 {
            let key = format!("k-{:07}", round * PER_IMPORT - 1);
            let body = json!({"rewritten": round});
            let r = app.send_json(
                "PUT",
                &format!("/data/v1/resources/native:src/collections/d/records/{key}"),
                &h,
                &body,
            );
            assert!(r.status < 300, "{}", r.body);
            want.insert(("d".into(), key), body);
            let key = format!("k-{:07}", round * PER_IMPORT - 4);
            let r = app.request(
                "DELETE",
                &format!("/data/v1/resources/native:src/collections/a/records/{key}"),
                &h,
                None,
            );
            assert!(r.status < 300, "{}", r.body);
            want.remove(&("a".to_string(), key));
        }
    }
    // The worker finishes every hydration.
    for _ in 0..2_000 {
        let ops = app.get("/data/v1/operations?status=in_progress", &h).json();
        let pending = app.get("/data/v1/operations?status=pending", &h).json();
        let active = ops["operations"].as_array().map_or(0, |a| a.len())
            + pending["operations"].as_array().map_or(0, |a| a.len());
        if active == 0 {
            break;
        }
        app.tick().unwrap();
    }
    let got: BTreeMap<(String, String), Value> =
        ndjson(&app.get("/data/v1/resources/native:src/export", &h).body)
            .into_iter()
            .map(|l| {
                (
                    (
                        l["collection"].as_str().unwrap().to_string(),
                        l["key"].as_str().unwrap().to_string(),
                    ),
                    l["body"].clone(),
                )
            })
            .collect();
    let lost: Vec<_> = want
        .keys()
        .filter(|k| !got.contains_key(*k))
        .take(5)
        .collect();
    assert_eq!(got.len(), want.len(), "records lost, e.g. {lost:?}");
    assert!(got == want, "the export differs from what was acknowledged");
    let src = app.get("/data/v1/resources/native:src", &h).json();
    let mut counted = BTreeMap::new();
    for (c, _) in want.keys() {
        *counted.entry(c.clone()).or_insert(0i64) += 1;
    }
    for c in src["collections"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap().to_string();
        assert_eq!(
            c["records"].as_i64(),
            counted.get(&name).copied(),
            "statistics of {name}: {src}"
        );
    }
    let r = app.request("POST", "/data/v1/resources/native:src/verify", &h, None);
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_string();
    let mut op = r.json();
    for _ in 0..2_000 {
        if op["status"] != "pending" && op["status"] != "in_progress" {
            break;
        }
        app.tick().unwrap();
        op = app.get(&format!("/data/v1/operations/{id}"), &h).json();
    }
    assert_eq!(op["report"]["clean"], true, "{op}");
}
