//! The official `@sanity/client` (npm), unchanged, against the app in the
//! host: datasets.list, datasets.create (project-less path), and a copy
//! through request(); then with the client's default `useProjectHostname`
//! (the project in the host name, through [`wildcard_proxy`]): create,
//! a transaction (createOrReplace, createIfNotExists, patch), getDocument,
//! getDocuments, delete, and its errors. Needs Node.js; `scripts/test` runs `npm ci` in
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
    // Another tenant owns project "not-mine".
    let rival = format!("Bearer {}", app.token("rival"));
    app.send_json(
        "PUT",
        "/v1/projects/not-mine/datasets/x",
        &[("authorization", &rival)],
        &json!({}),
    );
    let port = app.base.rsplit(':').next().unwrap().to_string();
    let proxy = wildcard_proxy(&app.base);
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
        .env("SPINOFF_API_HOST", format!("http://spinoff.test:{port}"))
        .env("HTTP_PROXY", &proxy)
        .env("NO_PROXY", "")
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
    assert_eq!(v["firstJob"]["state"], "completed", "{v}");
    assert_eq!(v["job"]["state"], "completed", "{v}");
    assert_eq!(v["final"].as_array().unwrap().len(), 3);
    let copied = app
        .get(
            "/data/v1/resources/sanity:proj42:production-copy",
            &[("authorization", &auth)],
        )
        .json();
    assert_eq!(copied["collections"][0]["records"], 200);

    // useProjectHostname: the project in the host name.
    assert_eq!(v["byHostList"].as_array().unwrap().len(), 3, "{v}");
    assert_eq!(v["created1"]["_id"], "doc-1");
    assert_eq!(v["created1"]["title"], "one");
    assert!(v["created1"]["_rev"].is_string());
    assert!(v["created1"]["_createdAt"].is_string());
    let results = v["tx"]["results"].as_array().unwrap();
    let ops: Vec<_> = results
        .iter()
        .map(|r| (r["id"].as_str().unwrap(), r["operation"].as_str().unwrap()))
        .collect();
    assert_eq!(
        ops,
        [("doc-2", "create"), ("doc-1", "none"), ("doc-1", "update")]
    );
    assert_eq!(v["tx"]["documentIds"], json!(["doc-2", "doc-1", "doc-1"]));
    assert_eq!(v["doc1"]["title"], "one, patched");
    assert_eq!(v["doc1"]["meta"], json!({"seen": true}));
    assert_eq!(v["doc1"]["_createdAt"], v["created1"]["_createdAt"]);
    assert_ne!(v["doc1"]["_rev"], v["created1"]["_rev"]);
    assert_eq!(v["p7"], json!({"_id": "p7", "_type": "post"}));
    assert_eq!(v["missing"], Value::Null);
    assert_eq!(v["docs"][0]["title"], "two");
    assert_eq!(v["docs"][1], Value::Null);
    assert_eq!(v["docs"][2]["_id"], "p3");
    assert_eq!(v["deleted"]["results"][0]["operation"], "delete", "{v}");
    assert_eq!(v["afterDelete"], Value::Null);
    assert_eq!(v["duplicate"]["statusCode"], 409, "{v}");
    assert!(
        v["duplicate"]["message"]
            .as_str()
            .unwrap()
            .contains("already exists"),
        "{v}"
    );
    assert_eq!(v["foreign"]["statusCode"], 404, "{v}");
    assert!(
        v["foreign"]["message"]
            .as_str()
            .unwrap()
            .contains("project not-mine not found"),
        "{v}"
    );
    // The documents went to proj42's production and nowhere else: not to
    // the copy made before them.
    let r = app.get(
        "/data/v1/resources/sanity:proj42:production/collections/post/records/doc-1",
        &[("authorization", &auth)],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app.get(
        "/data/v1/resources/sanity:proj42:production-copy/collections/post/records/doc-1",
        &[("authorization", &auth)],
    );
    assert_eq!(r.status, 404, "{}", r.body);
    let copied = app
        .get(
            "/data/v1/resources/sanity:proj42:production-copy",
            &[("authorization", &auth)],
        )
        .json();
    assert_eq!(copied["collections"][0]["records"], 200);
}
