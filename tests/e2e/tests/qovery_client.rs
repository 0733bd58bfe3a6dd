//! Qovery's official TypeScript client (npm `qovery-typescript-axios`),
//! unchanged, against the app in the host: organization, project,
//! environments, a database, its clone into another environment (a branch:
//! DEPLOYED at its first status read) with the source's data as of the
//! start, errors as axios errors with Qovery's body, and the deletes (tests/qovery-client/flow.mjs). Needs Node.js; `scripts/test`
//! runs `npm ci` in tests/qovery-client. Skipped with a message when
//! node_modules is absent (outside CI).

use std::process::Command;

use spinoff_e2e::*;

#[test]
fn the_official_qovery_client_creates_clones_and_deletes() {
    let Some(dir) = node_client("qovery-client", "qovery-typescript-axios") else {
        return;
    };
    let app = App::start();
    let token = app.token("acme");
    let out = Command::new("node")
        .arg("flow.mjs")
        .current_dir(&dir)
        .env("SPINOFF_URL", &app.base)
        .env("SPINOFF_TOKEN", &token)
        .env("SPINOFF_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(stdout.trim()).unwrap();
    let doc = vendor_openapi("qovery-openapi.yaml").expect("vendor OpenAPI");

    // Every answer the client got has the shape Qovery's OpenAPI gives it.
    for (field, schema) in [
        ("organization", "Organization"),
        ("organizationGet", "Organization"),
        ("project", "Project"),
        ("projectGet", "Project"),
        ("environmentGet", "Environment"),
        ("database", "Database"),
        ("databaseStatus", "Status"),
        ("clone", "Database"),
        ("cloneStatus", "Status"),
        ("cloneGet", "Database"),
    ] {
        validate(&doc, schema, &v[field]).unwrap_or_else(|e| panic!("{field}: {e:?}\n{v}"));
    }
    assert_eq!(v["organization"], v["organizationGet"]);
    assert_eq!(v["organization"]["name"], "acme");
    assert!(v["organization"]["plan"].is_string());
    assert_eq!(v["project"]["name"], "shop");
    assert_eq!(v["project"]["organization"]["id"], v["organization"]["id"]);
    assert_eq!(v["projects"], json!(["shop"]));
    assert_eq!(v["duplicateProject"]["status"], 409, "{v}");
    assert_eq!(v["environments"], json!(["production", "staging"]));
    assert_eq!(v["projectGet"]["associated_environments_count"], 2);
    assert_eq!(v["environmentGet"]["mode"], "STAGING");
    assert_eq!(v["databaseStatus"]["state"], "DEPLOYED");

    // The clone: the source's configuration in the staging environment,
    // followed to DEPLOYED, with the source's data.
    assert_eq!(v["clone"]["environment"]["id"], v["environmentGet"]["id"]);
    for k in ["type", "version", "mode", "cpu", "memory", "storage"] {
        assert_eq!(v["clone"][k], v["database"][k], "{k}");
    }
    assert_eq!(v["cloneStatus"]["state"], "DEPLOYED", "{v}");
    // A clone is a copy-on-write branch by default: DEPLOYED at its first
    // status read, no worker step between.
    assert_eq!(v["states"], json!(["DEPLOYED"]), "{v}");
    assert_eq!(v["sourceRecordsAfter"], 1801);
    assert_eq!(v["stagingDatabases"], json!(["orders-staging"]));
    assert_eq!(v["sourceRecords"], 1800);
    assert_eq!(v["cloneRecords"], 1800);
    assert_eq!(v["dataEqual"], true);

    // Errors reach the caller as axios errors carrying Qovery's body.
    for (field, status, error) in [
        ("notFound", 404, "Not Found"),
        ("badRequest", 400, "Bad Request"),
        ("deletedDatabase", 404, "Not Found"),
        ("deletedEnvironment", 404, "Not Found"),
        ("deletedProject", 404, "Not Found"),
        ("projectDatabaseGone", 404, "Not Found"),
    ] {
        let e = &v[field];
        assert_eq!(e["axios"], "AxiosError", "{field}: {e}");
        assert_eq!(e["status"], status, "{field}: {e}");
        assert_eq!(e["body"]["status"], status, "{field}: {e}");
        assert_eq!(e["body"]["error"], error, "{field}: {e}");
        assert!(e["body"]["message"].is_string(), "{field}: {e}");
    }
    assert_eq!(v["environmentsAfter"], json!(["production"]));
    assert_eq!(v["projectsAfter"], json!([]));
    // The deletes left nothing behind.
    let auth = format!("Token {token}");
    let org = v["organization"]["id"].as_str().unwrap();
    let projects = app
        .get(
            &format!("/organization/{org}/project"),
            &[("authorization", &auth)],
        )
        .json();
    assert_eq!(projects["results"], json!([]));
    let db = v["database"]["id"].as_str().unwrap();
    assert_eq!(
        app.get(
            &format!("/data/v1/resources/qovery:{db}"),
            &[("authorization", &format!("Bearer {token}"))]
        )
        .status,
        404
    );
}
