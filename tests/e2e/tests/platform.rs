//! The platform: the app's manifest loads, every family route reaches its
//! own component, the cron triggers advance a clone with no HTTP tick, and
//! no component imports anything beyond what Spin gives it.

use std::time::{Duration, Instant};

use spinoff_e2e::*;

/// Interfaces a Spin 3 component may import (what `spin up` provides).
fn allowed_import(name: &str) -> bool {
    let unversioned = name.split('@').next().unwrap();
    let version = name.split('@').nth(1).unwrap_or("");
    match unversioned {
        "fermyon:spin/key-value" | "fermyon:spin/sqlite" | "fermyon:spin/variables" => {
            version == "2.0.0"
        }
        "fermyon:spin-cron/cron-types" => version == "2.0.0",
        // Spin's outbound PostgreSQL (Spin 3.x and 4, Akamai Functions).
        "spin:postgres/postgres" => version == "4.0.0",
        "wasi:io/poll"
        | "wasi:io/error"
        | "wasi:io/streams"
        | "wasi:http/types"
        | "wasi:http/outgoing-handler"
        | "wasi:cli/environment"
        | "wasi:cli/exit"
        | "wasi:cli/stdin"
        | "wasi:cli/stdout"
        | "wasi:cli/stderr"
        | "wasi:clocks/wall-clock"
        | "wasi:clocks/monotonic-clock"
        | "wasi:random/random"
        | "wasi:random/insecure"
        | "wasi:random/insecure-seed"
        | "wasi:filesystem/types"
        | "wasi:filesystem/preopens"
        | "wasi:sockets/network"
        | "wasi:sockets/instance-network"
        | "wasi:sockets/ip-name-lookup" => version.starts_with("0.2."),
        _ => false,
    }
}

#[test]
fn every_component_imports_only_what_spin_provides() {
    // A check of the built Wasm files themselves, read with the host's
    // loader whatever the runtime under test.
    let state = tempfile::tempdir().unwrap();
    let root = repo_root();
    let mut opts = spinoff_host::HostOptions::new(root.join("spin.toml"), state.path());
    opts.cache_dir = Some(root.join("target/spinoff-host-cache"));
    opts.variables
        .insert("admin_token".into(), ADMIN_TOKEN.into());
    let host = spinoff_host::Host::new(opts).expect("the components load");
    let ids: Vec<String> = host.manifest().components.keys().cloned().collect();
    assert_eq!(
        ids,
        [
            "clone-worker",
            "cluster-cloning",
            "console",
            "data-api",
            "database-clone",
            "dataset-copy",
            "namespace-clone",
            "notifier",
            "service-fork"
        ]
    );
    for id in &ids {
        let (imports, exports) = host.interfaces(id).unwrap();
        let surprises: Vec<&String> = imports.iter().filter(|i| !allowed_import(i)).collect();
        assert!(surprises.is_empty(), "{id} imports {surprises:?}");
        if id != "clone-worker" && id != "notifier" {
            assert!(
                !imports.iter().any(|i| i.starts_with("fermyon:spin-cron")),
                "{id} imports the cron types"
            );
            assert_eq!(exports, ["wasi:http/incoming-handler@0.2.0"], "{id}");
        } else {
            let mut e = exports.clone();
            e.sort();
            assert_eq!(e, ["handle-cron-event", "wasi:http/incoming-handler@0.2.0"]);
        }
    }
}

#[test]
fn every_family_route_reaches_its_component() {
    let app = App::start();
    // Paths under each route that no handler serves: every component answers
    // those with its own 404 naming itself, so the router's choice shows.
    let cases = [
        ("/api/v1/__probe", "cluster-cloning"),
        ("/v1/namespaces/__probe/__probe", "namespace-clone"),
        ("/v1/tasks/__probe/__probe", "namespace-clone"),
        ("/v1/__probe", "namespace-clone"),
        ("/public/api/v1/__probe", "service-fork"),
        (
            "/v1/projects/__probe/__probe/__probe/__probe",
            "dataset-copy",
        ),
        ("/v1/jobs/__probe/__probe/__probe", "dataset-copy"),
        ("/database/__probe/__probe/__probe", "database-clone"),
        ("/environment/__probe/__probe/__probe", "database-clone"),
        ("/data/v1/__probe", "data-api"),
        ("/internal/worker/__probe", "clone-worker"),
        ("/console/__probe", "console"),
    ];
    for (path, component) in cases {
        let r = app.request("PATCH", path, &[], None);
        assert_eq!(r.status, 404, "{path}: {}", r.body);
        // Mixpeek's family answers in Mixpeek's ErrorResponse, the
        // component in error.details; Sanity's in Sanity's
        // {statusCode, error, message}, the component named in the message.
        let v = r.json();
        let named = if !v["component"].is_null() {
            v["component"].as_str().unwrap_or_default().to_string()
        } else if !v["statusCode"].is_null() {
            let m = v["message"].as_str().unwrap_or_default();
            m.split(' ').next().unwrap_or_default().to_string()
        } else {
            v["error"]["details"]["component"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(named, component, "{path}: {v}");
    }
    let r = app.get("/nowhere", &[]);
    assert_eq!(r.status, 404);
}

#[test]
fn the_cron_triggers_advance_a_clone_with_no_http_tick() {
    // The manifest's own `[[trigger.cron]]` schedules (every 2 s): the real
    // cron trigger plugin under Spin, the host's scheduler in the host.
    let app = App::start_with(|o| o.cron = true);
    let auth = format!("Bearer {}", app.token("acme"));
    let h = [("authorization", auth.as_str())];
    assert_eq!(
        app.send_json("PUT", "/data/v1/resources/native:src", &h, &json!({}))
            .status,
        201
    );
    let lines: String = (0..500)
        .map(|i| {
            format!(
                "{}\n",
                json!({"collection": "c", "key": format!("k{i:04}"), "body": {"i": i}})
            )
        })
        .collect();
    let r = app.request(
        "POST",
        "/data/v1/resources/native:src/import",
        &h,
        Some(lines.as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let op = app
        .send_json(
            "POST",
            "/data/v1/resources/native:src/clones",
            &h,
            &json!({"target": "native:copy", "mode": "copy"}),
        )
        .json();
    let id = op["id"].as_str().unwrap().to_string();
    // Watch the operation in the database file: an HTTP status read would
    // itself advance the copy (`nudge`).
    let db = app.database();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = engine::Db::execute(
            db.as_ref(),
            "SELECT status FROM operations WHERE id = ?1",
            &[engine::Value::Text(id.clone())],
        )
        .unwrap();
        let status = rows[0].text(0).unwrap().to_string();
        if status == "succeeded" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{id} is still {status} after 60 s of cron ticks"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let v = app.get(&format!("/data/v1/operations/{id}"), &h).json();
    assert_eq!(v["status"], "succeeded", "{v}");
    assert_eq!(v["progress"]["records_copied"], 500, "{v}");
}

#[test]
fn the_app_refuses_to_start_without_the_admin_token() {
    let state = tempfile::tempdir().unwrap();
    let err = match App::try_start(Runtime::from_env(), state, Options::default()) {
        Ok(_) => panic!("started without admin_token"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("admin_token"), "{err}");
}
