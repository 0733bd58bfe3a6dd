//! schemathesis (PyPI) against the data API's own OpenAPI document, with
//! every check except `positive_data_acceptance` (whose premise — every
//! schema-valid request succeeds — does not hold for semantic rules such as
//! a PITR time outside the retained window, or a name that already exists).
//! Zero server errors and every response conforming to the document.
//! `scripts/test` installs schemathesis into target/schemathesis-venv.

use std::process::Command;

use spinoff_e2e::*;

#[test]
fn schemathesis_finds_no_server_error_and_no_nonconforming_response() {
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
    let app = App::start();
    let token = app.token("acme");
    app.send_json(
        "PUT",
        "/data/v1/resources/native:demo",
        &[("authorization", &format!("Bearer {token}"))],
        &json!({}),
    );
    let out = Command::new(&bin)
        .args([
            "run",
            &format!("{}/data/v1/openapi.json", app.base),
            "--url",
            &format!("{}/data/v1", app.base),
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
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .env("NO_COLOR", "1")
        .output()
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("Server error"), "{stdout}");
}
