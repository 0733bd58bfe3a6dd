//! The platform: the app's manifest loads in the host, every family route
//! reaches its own component, the worker's cron export runs, and no
//! component imports anything beyond what Spin gives it.

use spinoff_e2e::App;

/// Interfaces a Spin 3 component may import (what `spin up` provides).
fn allowed_import(name: &str) -> bool {
    let unversioned = name.split('@').next().unwrap();
    let version = name.split('@').nth(1).unwrap_or("");
    match unversioned {
        "fermyon:spin/key-value" | "fermyon:spin/sqlite" | "fermyon:spin/variables" => {
            version == "2.0.0"
        }
        "fermyon:spin-cron/cron-types" => version == "2.0.0",
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
    let app = App::start();
    let ids: Vec<String> = app.host.manifest().components.keys().cloned().collect();
    assert_eq!(
        ids,
        [
            "clone-worker",
            "cluster-cloning",
            "data-api",
            "database-clone",
            "dataset-copy",
            "namespace-clone",
            "notifier",
            "service-fork"
        ]
    );
    for id in &ids {
        let (imports, exports) = app.host.interfaces(id).unwrap();
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
    ];
    for (path, component) in cases {
        let r = app.request("PATCH", path, &[], None);
        assert_eq!(r.status, 404, "{path}: {}", r.body);
        // Mixpeek's family answers in Mixpeek's ErrorResponse, the
        // component in error.details.
        let v = r.json();
        let named = if v["component"].is_null() {
            &v["error"]["details"]["component"]
        } else {
            &v["component"]
        };
        assert_eq!(named, component, "{path}: {v}");
    }
    let r = app.get("/nowhere", &[]);
    assert_eq!(r.status, 404);
}

#[test]
fn the_worker_cron_export_runs() {
    let app = App::start();
    app.tick().expect("a cron tick of clone-worker succeeds");
    app.tick().expect("and a second one");
}

#[test]
fn the_app_refuses_to_start_without_the_admin_token() {
    let state = tempfile::tempdir().unwrap();
    let mut opts = spinoff_e2e::options(state.path());
    opts.variables.clear();
    let err = match spinoff_host::Host::new(opts) {
        Ok(_) => panic!("started without admin_token"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("admin_token"), "{err}");
}
