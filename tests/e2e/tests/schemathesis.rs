//! schemathesis (PyPI) against every OpenAPI document the app serves: the
//! data API's own (`/data/v1/openapi.json`) and the five vendor families'
//! (`/data/v1/openapi/{family}`), each against a fresh app, with every check
//! except `positive_data_acceptance` (whose premise — every schema-valid
//! request succeeds — does not hold for semantic rules such as a PITR time
//! outside the retained window, or a name that already exists). Zero server
//! errors, every response conforming to its document, every schema-invalid
//! request refused with a 4xx, 405 with `Allow` for undocumented methods,
//! 401 without credentials, and created resources readable until deleted.
//! `scripts/test` installs schemathesis into target/schemathesis-venv.
//! `tests/e2e/schemathesis_hooks.py` leaves out requests with non-ASCII
//! header values: Spin answers those with an empty 500 before any component
//! runs.

use std::process::Command;

use spinoff_e2e::*;

/// Run schemathesis over the document at `doc` (a path under the app) with
/// the API at `base`, authenticating with `header: value`.
fn schemathesis(app: &App, doc: &str, base: &str, header: &str, value: &str) {
    let bin = repo_root().join("target/schemathesis-venv/bin/schemathesis");
    if !bin.exists() {
        if std::env::var("CI").is_ok() {
            panic!(
                "schemathesis is missing: scripts/test installs it into target/schemathesis-venv"
            );
        }
        eprintln!("skipped: scripts/test installs schemathesis");
        return;
    }
    let out = Command::new(&bin)
        .args([
            "run",
            &format!("{}{doc}", app.base),
            "--url",
            &format!("{}{base}", app.base),
        ])
        .args([
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
            "--max-examples",
            "25",
            "--seed",
            "20261122",
        ])
        .args(["-H", &format!("{header}: {value}")])
        .env("NO_COLOR", "1")
        // Leaves out non-ASCII header values, which the runtime (Spin, and
        // the host like it) refuses with a 500 before the app runs.
        .env("SCHEMATHESIS_HOOKS", "schemathesis_hooks")
        .env("PYTHONPATH", repo_root().join("tests/e2e"))
        .output()
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{doc}:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("Server error"), "{stdout}");
    assert!(
        stdout.contains("passed"),
        "{doc}: schemathesis tested nothing:\n{stdout}"
    );
}

#[test]
fn data_api() {
    let app = App::start();
    let token = app.token("acme");
    app.send_json(
        "PUT",
        "/data/v1/resources/native:demo",
        &[("authorization", &format!("Bearer {token}"))],
        &json!({}),
    );
    schemathesis(
        &app,
        "/data/v1/openapi.json",
        "/data/v1",
        "Authorization",
        &format!("Bearer {token}"),
    );
}

#[test]
fn typesense_cluster_cloning() {
    let app = App::start();
    let token = app.token("acme");
    schemathesis(
        &app,
        "/data/v1/openapi/typesense",
        "/api/v1",
        "X-TYPESENSE-CLOUD-MANAGEMENT-API-KEY",
        &token,
    );
}

#[test]
fn mixpeek_namespace_clone() {
    let app = App::start();
    let token = app.token("acme");
    schemathesis(
        &app,
        "/data/v1/openapi/mixpeek",
        "/v1",
        "Authorization",
        &format!("Bearer {token}"),
    );
}

#[test]
fn timescale_service_fork() {
    let app = App::start();
    let token = app.token("acme");
    schemathesis(
        &app,
        "/data/v1/openapi/timescale",
        "/public/api/v1",
        "Authorization",
        &format!("Bearer {token}"),
    );
}

#[test]
fn sanity_dataset_copy() {
    let app = App::start();
    let token = app.token("acme");
    schemathesis(
        &app,
        "/data/v1/openapi/sanity",
        "/v2021-06-07",
        "Authorization",
        &format!("Bearer {token}"),
    );
}

#[test]
fn qovery_database_clone() {
    let app = App::start();
    let token = app.token("acme");
    schemathesis(
        &app,
        "/data/v1/openapi/qovery",
        "",
        "Authorization",
        &format!("Token {token}"),
    );
}

/// Every family document is served, parses, and names only paths its
/// component answers (no document describes a route that 404s as unknown).
#[test]
fn every_family_document_is_served_and_matches_its_routes() {
    let app = App::start();
    let docs = [
        ("typesense", "/api/v1"),
        ("mixpeek", "/v1"),
        ("timescale", "/public/api/v1"),
        ("sanity", "/v2021-06-07"),
        ("qovery", ""),
    ];
    for (family, base) in docs {
        let r = app.get(&format!("/data/v1/openapi/{family}"), &[]);
        assert_eq!(r.status, 200, "{family}");
        assert_eq!(r.header("content-type"), Some("application/yaml"));
        let doc: serde_json::Value =
            serde_norway::from_str(&r.body).unwrap_or_else(|e| panic!("{family}: {e}"));
        assert!(
            doc["openapi"].as_str().unwrap().starts_with("3."),
            "{family}"
        );
        for (path, item) in doc["paths"].as_object().unwrap() {
            let concrete = path
                .split('/')
                .map(|s| if s.starts_with('{') { "x1" } else { s })
                .collect::<Vec<_>>()
                .join("/");
            for method in item
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| *k != "parameters")
            {
                let r = app.request(
                    &method.to_uppercase(),
                    &format!("{base}{concrete}"),
                    &[],
                    None,
                );
                // Unauthenticated: 401 (or 404 for the job routes, whose id is the credential) — never "no route".
                let body = r.body.to_string();
                assert!(
                    !body.contains("has no route"),
                    "{family} {method} {path}: {body}"
                );
                assert_ne!(r.status, 405, "{family} {method} {path}");
            }
        }
    }
    let r = app.get("/data/v1/openapi/nope", &[]);
    assert_eq!(r.status, 404);
    assert!(
        r.body
            .to_string()
            .contains("typesense, mixpeek, timescale, sanity, qovery"),
        "{}",
        r.body
    );
}
