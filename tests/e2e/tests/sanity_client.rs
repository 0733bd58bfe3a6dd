//! The official `@sanity/client` (npm), unchanged, against the app in the
//! host: datasets.list, datasets.create (project-less path), and a copy
//! through request(). Needs Node.js; `scripts/test` runs `npm ci` in
//! tests/sanity-client. Skipped with a message when node_modules is absent.

use std::process::Command;

use spinoff_e2e::*;

#[test]
fn the_official_sanity_client_lists_creates_and_copies() {
    let Some(dir) = node_client("sanity-client", "@sanity/client") else {
        return;
    };
    let app = App::start();
    let token = app.token("acme");
    let auth = format!("Bearer {token}");
    assert_eq!(
        app.send_json(
            "PUT",
            "/v1/projects/proj42/datasets/production",
            &[("authorization", &auth)],
            &json!({})
        )
        .status,
        200
    );
    let lines: String = (0..200).map(|i| format!("{}\n", json!({"collection": "post", "key": format!("p{i}"), "body": {"_id": format!("p{i}"), "_type": "post"}}))).collect();
    assert_eq!(
        app.request(
            "POST",
            "/data/v1/resources/sanity:proj42:production/import",
            &[("authorization", &auth)],
            Some(lines.as_bytes())
        )
        .status,
        200
    );

    let out = Command::new("node")
        .arg("drive.mjs")
        .current_dir(&dir)
        .env("SPINOFF_URL", &app.base)
        .env("SPINOFF_TOKEN", &token)
        .env("SANITY_PROJECT", "proj42")
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        v["before"],
        json!([{"name": "production", "aclMode": "public"}])
    );
    assert_eq!(v["created"]["datasetName"], "staging");
    assert_eq!(v["after"].as_array().unwrap().len(), 2);
    assert_eq!(
        v["copy"]["message"],
        "Starting copying dataset production to production-copy..."
    );
    assert_eq!(v["job"]["state"], "completed", "{v}");
    assert_eq!(v["final"].as_array().unwrap().len(), 3);
    let copied = app
        .get(
            "/data/v1/resources/sanity:proj42:production-copy",
            &[("authorization", &auth)],
        )
        .json();
    assert_eq!(copied["collections"][0]["records"], 200);
}
