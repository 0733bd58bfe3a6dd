//! The app on Spin's remote backends, through the runtime config: its
//! SQLite database on a real `sqld` (libSQL over Hrana) and its key-value
//! store on a real Redis — what Fermyon Cloud and SpinKube deployments
//! use. Nothing is left in the local state directory.

use spinoff_e2e::services::Services;
use spinoff_e2e::*;

fn records(n: usize, tag: &str) -> String {
    (0..n)
        .map(|i| {
            let collection = ["a", "b"][i % 2];
            json!({"collection": collection, "key": format!("k{i:06}"),
                   "body": {"i": i, "tag": tag, "pad": "x".repeat(900)}})
            .to_string()
                + "\n"
        })
        .collect()
}

#[test]
fn data_api_tokens_imports_and_clones_run_on_sqld_and_redis() {
    let Some(services) = Services::start_or_skip("remote_backends") else {
        return;
    };
    let config = services.runtime_config_toml();
    let app = App::start_with(|o| o.runtime_config = Some(config));
    let token = app.token("acme");
    let auth = format!("Bearer {token}");
    let h = [("authorization", auth.as_str())];

    // The token lives in Redis (hashed), not in a local file.
    let keys = services.redis("KEYS *");
    assert!(keys.contains("token:"), "{keys}");
    assert!(!keys.contains(&token), "the token itself is stored");

    assert_eq!(
        app.request("PUT", "/data/v1/resources/native:src", &h, None)
            .status,
        201
    );
    // 10 000 records of ~1 KB in one import: all or nothing, and well inside
    // sqld's 5 s write-lock limit now that a batch is a handful of statements.
    let body = records(10_000, "one");
    let r = app.request(
        "POST",
        "/data/v1/resources/native:src/import",
        &h,
        Some(body.as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["applied"], 10_000);
    // A second import rewrites half the keys: versions, not duplicates.
    let r = app.request(
        "POST",
        "/data/v1/resources/native:src/import",
        &h,
        Some(records(5_000, "two").as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let src = app.get("/data/v1/resources/native:src", &h).json();
    let live: i64 = src["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["records"].as_i64().unwrap())
        .sum();
    assert_eq!(live, 10_000, "{src}");

    let r = app.send_json(
        "POST",
        "/data/v1/resources/native:src/clones",
        &h,
        &json!({"target": "native:dst", "mode": "copy"}),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_string();
    let mut ticks = 0;
    let op = loop {
        app.tick().unwrap();
        ticks += 1;
        let op = app.get(&format!("/data/v1/operations/{id}"), &h).json();
        if op["status"] != "pending" && op["status"] != "in_progress" {
            break op;
        }
        assert!(ticks < 200, "clone still running after {ticks} ticks: {op}");
    };
    assert_eq!(op["status"], "succeeded", "{op}");
    assert_eq!(op["progress"]["records_copied"], 15_000, "{op}");
    let snap = op["snapshot_lsn"].as_i64().unwrap();
    let export = |r: &str, at: Option<i64>| -> Vec<Value> {
        let q = at.map(|l| format!("?as_of={l}")).unwrap_or_default();
        let r = app.get(&format!("/data/v1/resources/{r}/export{q}"), &h);
        assert_eq!(r.status, 200, "{}", r.body);
        ndjson(&r.body)
            .into_iter()
            .map(|v| json!([v["collection"], v["key"], v["body"]]))
            .collect()
    };
    let copied = export("native:dst", None);
    assert_eq!(copied.len(), 10_000);
    assert_eq!(copied, export("native:src", Some(snap)));
    // sqld's pages are 4 KiB (it refuses `PRAGMA page_size = N`): the app laid
    // records out as a rowid table there, so a ~1 KB record stays in its
    // page instead of an overflow page of its own (ARCHITECTURE.md).
    let layout = engine::Db::execute(
        &services.database(),
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'records'",
        &[],
    )
    .unwrap()[0]
        .text(0)
        .unwrap();
    assert!(!layout.contains("WITHOUT ROWID"), "{layout}");

    // A branch on the same servers: whole when its start returns, then
    // hydrated by worker ticks with the same reads.
    let r = app.send_json(
        "POST",
        "/data/v1/resources/native:src/clones",
        &h,
        &json!({"target": "native:br"}),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let op = r.json();
    assert_eq!(
        (op["status"].as_str(), op["mode"].as_str()),
        (Some("succeeded"), Some("branch")),
        "{op}"
    );
    let snap = op["snapshot_lsn"].as_i64().unwrap();
    let at_snap = export("native:src", Some(snap));
    assert_eq!(export("native:br", None), at_snap);
    let r = app.request("POST", "/data/v1/resources/native:br/hydrate", &h, None);
    assert_eq!(r.status, 202, "{}", r.body);
    let mut ticks = 0;
    while !app.get("/data/v1/resources/native:br", &h).json()["branch"].is_null() {
        app.tick().unwrap();
        ticks += 1;
        assert!(ticks < 200, "hydration still running after {ticks} ticks");
    }
    assert_eq!(export("native:br", None), at_snap);

    // Revoked: refused from then on (the revocation is in Redis).
    let id = app.get("/data/v1/tokens/current", &h).json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        app.request("DELETE", &format!("/data/v1/tokens/{id}"), &h, None)
            .status,
        204
    );
    assert_eq!(app.get("/data/v1/resources/native:src", &h).status, 401);

    // Everything went to the servers: no local database or store was made.
    assert!(!app.state_dir().join("sqlite_db.db").exists());
    let kv = app.state_dir().join("sqlite_key_value.db");
    let local_keys = if kv.exists() {
        let c = engine::native::NativeDb::open(&kv).unwrap();
        use engine::Db;
        c.execute("SELECT count(*) FROM spin_key_value", &[])
            .unwrap()[0]
            .i64(0)
            .unwrap()
    } else {
        0
    };
    assert_eq!(local_keys, 0, "nothing in the local key-value file");
}

/// While a checkpoint holds sqld's write queue, sqld answers writers
/// SQLITE_BUSY at once (a local file would wait out its busy timeout).
/// With a checkpoint every second, imports into three resources at once,
/// spanning several checkpoints, all succeed: a `BEGIN IMMEDIATE` the
/// server refused waits and runs again.
#[test]
fn writes_across_sqld_checkpoints_all_succeed() {
    let Some(services) =
        Services::start_or_skip_checkpointing_every("remote_backends checkpoints", 1)
    else {
        return;
    };
    let config = services.runtime_config_toml();
    let app = App::start_with(|o| o.runtime_config = Some(config));
    let auth = format!("Bearer {}", app.token("acme"));
    let h = [("authorization", auth.as_str())];
    let names = ["busy0", "busy1", "busy2"];
    for n in names {
        let path = format!("/data/v1/resources/native:{n}");
        assert_eq!(app.request("PUT", &path, &h, None).status, 201);
    }
    // Staged imports (over 2 000 lines): several short write transactions
    // each, back to back, three at a time, for several checkpoints.
    let t = std::time::Instant::now();
    let counts: Vec<usize> = std::thread::scope(|s| {
        let hs: Vec<_> = names
            .iter()
            .map(|n| {
                let (app, h) = (&app, &h);
                s.spawn(move || {
                    let mut imports = 0;
                    while t.elapsed() < std::time::Duration::from_secs(8) {
                        let r = app.request(
                            "POST",
                            &format!("/data/v1/resources/native:{n}/import"),
                            h,
                            Some(records(3_000, &format!("i{imports}")).as_bytes()),
                        );
                        assert_eq!(r.status, 200, "{n} import {imports}: {}", r.body);
                        imports += 1;
                    }
                    imports
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(counts.iter().all(|&c| c >= 2), "{counts:?}");
    for n in names {
        let r = app.get(&format!("/data/v1/resources/native:{n}/export"), &h);
        assert_eq!(r.status, 200);
        assert_eq!(ndjson(&r.body).len(), 3_000);
    }
}
