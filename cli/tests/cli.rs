//! The CLI against the real app in the test host: its non-TTY output, exit
//! codes, detach and attach.

use std::process::Command;

use spinoff_e2e::*;

fn spinoff(app: &App, token: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_spinoff"))
        .args(args)
        .env("SPINOFF_URL", &app.base)
        .env("SPINOFF_TOKEN", token)
        .env_remove("SPINOFF_PROJECT")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn dataset_copy_sync_detach_attach_list_and_errors() {
    let app = App::start();
    let token = app.token("acme");
    let auth = format!("Bearer {token}");
    app.send_json(
        "PUT",
        "/v1/projects/proj1/datasets/production",
        &[("authorization", &auth)],
        &json!({}),
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("docs.ndjson");
    let lines: String = (0..3000).map(|i| format!("{}\n", json!({"collection": "post", "key": format!("p{i}"), "body": {"_id": format!("p{i}"), "n": i}}))).collect();
    std::fs::write(&file, lines).unwrap();
    let (code, _, err) = spinoff(
        &app,
        &token,
        &[
            "import",
            file.to_str().unwrap(),
            "--into",
            "sanity:proj1:production",
            "--batch",
            "1000",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("imported 3000 records"), "{err}");

    // All or nothing across batches: a bad line in the third batch leaves
    // the dataset as it was.
    let bad = dir.path().join("bad.ndjson");
    let mut lines: String = (3000..5500).map(|i| format!("{}\n", json!({"collection": "post", "key": format!("p{i}"), "body": {"_id": format!("p{i}"), "n": i}}))).collect();
    lines.push_str("{\"collection\": \"post\", \"key\": \"\", \"body\": {}}\n");
    std::fs::write(&bad, lines).unwrap();
    let (code, _, err) = spinoff(
        &app,
        &token,
        &[
            "import",
            bad.to_str().unwrap(),
            "--into",
            "sanity:proj1:production",
            "--batch",
            "1000",
        ],
    );
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("nothing was imported"), "{err}");
    let res = app
        .get(
            "/data/v1/resources/sanity:proj1:production",
            &[("authorization", &auth)],
        )
        .json();
    let records: i64 = res["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["records"].as_i64().unwrap())
        .sum();
    assert_eq!(records, 3000, "{res}");

    // Synchronous copy: progress lines (no TTY), then done.
    let (code, _, err) = spinoff(
        &app,
        &token,
        &[
            "dataset",
            "copy",
            "production",
            "staging",
            "--project",
            "proj1",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("Starting copying dataset production to staging..."),
        "{err}"
    );
    assert!(err.contains("progress: 100%"), "{err}");
    assert!(err.contains("completed"), "{err}");

    // Detach prints the job id; attach follows it to the end.
    let (code, out, err) = spinoff(
        &app,
        &token,
        &[
            "dataset",
            "copy",
            "production",
            "flat",
            "--project",
            "proj1",
            "--skip-history",
            "--detach",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let job = out.trim().to_string();
    assert_eq!(job.len(), 32);
    let (code, _, err) = spinoff(&app, &token, &["dataset", "copy", "--attach", &job]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(&format!("job {job} completed")), "{err}");

    // The list, as a table and as JSON.
    let (_, out, _) = spinoff(
        &app,
        &token,
        &["dataset", "copy", "--list", "--project", "proj1"],
    );
    assert!(out.lines().next().unwrap().starts_with("JOB"), "{out}");
    assert_eq!(out.lines().count(), 3);
    let (_, out, _) = spinoff(
        &app,
        &token,
        &["dataset", "copy", "--list", "--project", "proj1", "--json"],
    );
    assert_eq!(
        serde_json::from_str::<Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Errors: the server's message, non-zero exit; missing arguments without a terminal.
    let (code, _, err) = spinoff(
        &app,
        &token,
        &[
            "dataset",
            "copy",
            "production",
            "staging",
            "--project",
            "proj1",
        ],
    );
    assert_eq!(code, 1);
    assert!(err.contains("already exists"), "{err}");
    let (code, _, err) = spinoff(&app, &token, &["dataset", "copy", "--project", "proj1"]);
    assert_eq!(code, 1);
    assert!(err.contains("SOURCE is missing"), "{err}");
    let (code, _, err) = spinoff(&app, "", &["dataset", "copy", "a", "b"]);
    assert_eq!(code, 1, "{err}");

    // Export and a data-API clone with progress.
    let out_file = dir.path().join("out.ndjson");
    let (code, _, err) = spinoff(
        &app,
        &token,
        &[
            "export",
            "sanity:proj1:staging",
            "-o",
            out_file.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read_to_string(&out_file).unwrap().lines().count(),
        3000
    );
    let (code, _, err) = spinoff(
        &app,
        &token,
        &["clone", "sanity:proj1:production", "native:copy"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("done: 3000 records copied"), "{err}");
}
