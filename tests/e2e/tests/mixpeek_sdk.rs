//! Mixpeek's official Python SDK (PyPI `mixpeek`, pinned in
//! tests/mixpeek-sdk/requirements.txt), unchanged, against the Mixpeek
//! family: tests/mixpeek-sdk/flow.py creates a namespace, upserts documents,
//! clones it with the typed API and the wrapper, follows the tasks, compares
//! the clones' documents with the source's (a physical copy, the typed
//! model's default "mode": "copy", and branches, the service's default, ready
//! at once and blind to later writes to the source), and checks the refusals
//! (a bad request, an unmatched route, 405, 401) raise the SDK's own
//! exceptions. It prints its checks as JSON; any failed check fails this test.

use std::process::Command;

use spinoff_e2e::*;

#[test]
fn the_official_sdk_drives_the_whole_flow() {
    let root = repo_root();
    let python = root.join("target/py-venv/bin/python");
    if !python.exists() {
        panic!("{} is missing: scripts/test installs it", python.display());
    }
    let app = App::start();
    let token = app.token("acme");
    let out = Command::new(&python)
        .arg(root.join("tests/mixpeek-sdk/flow.py"))
        .env("MIXPEEK_BASE", &app.base)
        .env("MIXPEEK_API_KEY", &token)
        .env("SPINOFF_ADMIN_TOKEN", ADMIN_TOKEN)
        .env_remove("MIXPEEK_NAMESPACE")
        .output()
        .expect("run tests/mixpeek-sdk/flow.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON report\nstdout: {stdout}\nstderr: {stderr}"));
    assert_eq!(report["ok"], true, "{report:#}\nstderr: {stderr}");
    assert!(out.status.success(), "{report:#}\nstderr: {stderr}");
    let checks = report["checks"].as_object().unwrap();
    for name in [
        "typed clone sends mode copy",
        "clone task completed",
        "clone: namespace_ready",
        "clone: source_namespace_id",
        "clone: documents equal",
        "branch: ready at once",
        "branch: task completed at once",
        "branch: documents equal",
        "branch: later source writes hidden",
        "wrapper: clone ready at once",
        "ttl accepted",
        "ttl below 60 refused",
        "bad request raises",
        "wrapper: clone ready",
        "wrapper: clone's documents listed",
        "unmatched route raises MixpeekAPIError",
        "401 raises MixpeekAPIError",
        "deleted",
    ] {
        assert_eq!(checks[name]["ok"], true, "{name}: {report:#}");
    }
}
