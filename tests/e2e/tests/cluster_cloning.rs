//! The Typesense-shaped family end to end.

use spinoff_e2e::*;

const KEY: &str = "x-typesense-cloud-management-api-key";

fn create_cluster(app: &App, key: &str) -> Value {
    let r = app.send_json(
        "POST",
        "/api/v1/clusters",
        &[(KEY, key)],
        &json!({"memory": "1_gb", "vcpu": "2_vcpus", "regions": ["oregon"], "typesense_server_version": "27.1", "name": "prod-search"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let v = r.json();
    assert_eq!(v["success"], true);
    assert_eq!(v["cluster"]["status"], "in_service");
    v["cluster"].clone()
}

/// An app whose clones are physical copies (the Spin variable `clone_mode`).
fn copy_app() -> App {
    App::start_with(|o| {
        o.variables.insert("clone_mode".into(), "copy".into());
    })
}

/// The default: a clone is a copy-on-write branch, `succeeded` with its
/// target cluster as soon as the start answers.
#[test]
fn clone_a_cluster_to_another_region_and_version() {
    clone_flow(App::start(), false);
}

/// `clone_mode = "copy"`: pending, then the worker copies; one active
/// operation per cluster; only a pending one cancels.
#[test]
fn a_physical_copy_is_pending_then_succeeds() {
    clone_flow(copy_app(), true);
}

fn clone_flow(app: App, copy: bool) {
    let token = app.token("acme");
    let cluster = create_cluster(&app, &token);
    let id = cluster["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 17);
    // 20 000 documents in 2 collections through the data API.
    let lines: String = (0..20_000)
        .map(|i| format!("{}\n", json!({"collection": if i % 2 == 0 { "products" } else { "brands" }, "key": format!("doc-{i}"), "body": {"id": format!("doc-{i}"), "n": i}})))
        .collect();
    let auth = format!("Bearer {token}");
    let r = app.request(
        "POST",
        &format!("/data/v1/resources/typesense:{id}/import"),
        &[("authorization", &auth)],
        Some(lines.as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.body);

    let start = app.send_json(
        "POST",
        &format!("/api/v1/clusters/{id}/cloning-operations"),
        &[(KEY, &token)],
        &json!({"typesense_server_version": "28.0", "target_region": "frankfurt", "notification_email_addresses": ["ops@example.com"]}),
    );
    assert_eq!(start.status, 201, "{}", start.body);
    let op = start.json()["cloning_operation"].clone();
    assert_eq!(op["source_region"], "oregon");
    assert_eq!(op["target_region"], "frankfurt");
    assert_eq!(op["typesense_server_version"], "28.0");
    if copy {
        assert_eq!(op["status"], "pending");
        assert_eq!(op["target_cluster_reference_id"], Value::Null);
        assert_eq!(op["completed_at"], Value::Null);
    } else {
        assert_eq!(op["status"], "succeeded", "{op}");
        assert!(op["target_cluster_reference_id"].is_string(), "{op}");
        assert!(op["completed_at"].is_i64(), "{op}");
    }
    let op_id = op["id"].as_str().unwrap().to_string();
    assert_eq!(op_id.len(), 36);
    // Writes after the start never reach the clone.
    app.send_json(
        "PUT",
        &format!("/data/v1/resources/typesense:{id}/collections/products/records/late"),
        &[("authorization", &auth)],
        &json!({}),
    );

    if copy {
        // A second start while one is active is refused.
        let again = app.send_json(
            "POST",
            &format!("/api/v1/clusters/{id}/cloning-operations"),
            &[(KEY, &token)],
            &json!({}),
        );
        assert_eq!(again.status, 409, "{}", again.body);
        assert!(again.json()["message"]
            .as_str()
            .unwrap()
            .contains("only one"));
    }

    let mut done = Value::Null;
    for _ in 0..500 {
        done = app
            .get(
                &format!("/api/v1/clusters/{id}/cloning-operations/{op_id}"),
                &[(KEY, &token)],
            )
            .json();
        if done["status"] == "succeeded" {
            break;
        }
        assert!(copy, "a branch succeeds at its start: {done}");
        app.tick().unwrap();
    }
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(done["completed_at"].as_i64().unwrap() >= done["created_at"].as_i64().unwrap());
    let new_id = done["target_cluster_reference_id"]
        .as_str()
        .unwrap()
        .to_string();
    let new_cluster = app
        .get(&format!("/api/v1/clusters/{new_id}"), &[(KEY, &token)])
        .json();
    assert_eq!(new_cluster["status"], "in_service");
    assert_eq!(new_cluster["typesense_server_version"], "28.0");
    assert_eq!(new_cluster["regions"], json!(["frankfurt"]));
    assert_eq!(
        (new_cluster["memory"].as_str(), new_cluster["vcpu"].as_str()),
        (cluster["memory"].as_str(), cluster["vcpu"].as_str())
    );
    // The new cluster holds the source's documents as of the start.
    let export = |r: &str| -> Vec<String> {
        let mut v: Vec<String> = app
            .get(
                &format!("/data/v1/resources/{r}/export"),
                &[("authorization", &auth)],
            )
            .body
            .lines()
            .map(String::from)
            .collect();
        v.sort();
        v
    };
    let clone = export(&format!("typesense:{new_id}"));
    assert_eq!(clone.len(), 20_000);
    let src_now = export(&format!("typesense:{id}"));
    assert_eq!(src_now.len(), 20_001);
    assert_eq!(
        clone,
        src_now
            .into_iter()
            .filter(|l| !l.contains("\"key\":\"late\""))
            .collect::<Vec<_>>()
    );

    // The e-mail notification went through the outbox: with no mail webhook
    // configured it is recorded as failed with the reason (by the notifier's
    // cron duty).
    app.notify().unwrap();
    let seen = app
        .get(
            &format!("/data/v1/operations/{}", op_id.replace('-', "")),
            &[("authorization", &auth)],
        )
        .json();
    assert_eq!(seen["notifications"][0]["destination"], "ops@example.com");
    assert_eq!(seen["notifications"][0]["status"], "failed");
    assert!(seen["notifications"][0]["last_error"]
        .as_str()
        .unwrap()
        .contains("mail_webhook_url"));

    // Cancel only while pending.
    let late = app.send_json(
        "PATCH",
        &format!("/api/v1/clusters/{id}/cloning-operations/{op_id}"),
        &[(KEY, &token)],
        &json!({"status": "canceled"}),
    );
    assert_eq!(late.status, 409, "{}", late.body);
    let second = app.send_json(
        "POST",
        &format!("/api/v1/clusters/{id}/cloning-operations"),
        &[(KEY, &token)],
        &json!({}),
    );
    assert_eq!(second.status, 201, "{}", second.body);
    let second = second.json();
    let second_id = second["cloning_operation"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let bad = app.send_json(
        "PATCH",
        &format!("/api/v1/clusters/{id}/cloning-operations/{second_id}"),
        &[(KEY, &token)],
        &json!({"status": "succeeded"}),
    );
    assert_eq!(bad.status, 400);
    let canceled = app.send_json(
        "PATCH",
        &format!("/api/v1/clusters/{id}/cloning-operations/{second_id}"),
        &[(KEY, &token)],
        &json!({"status": "canceled"}),
    );
    if copy {
        assert_eq!(canceled.status, 200, "{}", canceled.body);
        assert_eq!(canceled.json()["cloning_operation"]["status"], "canceled");
    } else {
        // A branch has already succeeded: nothing left to cancel.
        assert_eq!(second["cloning_operation"]["status"], "succeeded");
        assert_eq!(canceled.status, 409, "{}", canceled.body);
    }

    // The list pages, newest first.
    let page1 = app
        .get(
            &format!("/api/v1/clusters/{id}/cloning-operations?per_page=1"),
            &[(KEY, &token)],
        )
        .json();
    assert_eq!(
        (
            page1["page"].as_i64(),
            page1["per_page"].as_i64(),
            page1["total"].as_i64()
        ),
        (Some(1), Some(1), Some(2))
    );
    assert_eq!(page1["cloning_operations"][0]["id"], second_id.as_str());
    let page2 = app
        .get(
            &format!("/api/v1/clusters/{id}/cloning-operations?per_page=1&page=2"),
            &[(KEY, &token)],
        )
        .json();
    assert_eq!(page2["cloning_operations"][0]["id"], op_id.as_str());
    let defaults = app
        .get(
            &format!("/api/v1/clusters/{id}/cloning-operations"),
            &[(KEY, &token)],
        )
        .json();
    assert_eq!(
        (defaults["page"].as_i64(), defaults["per_page"].as_i64()),
        (Some(1), Some(10))
    );
    assert_eq!(
        app.get(
            &format!("/api/v1/clusters/{id}/cloning-operations?per_page=0"),
            &[(KEY, &token)]
        )
        .status,
        400
    );
}

#[test]
fn two_simultaneous_starts_never_both_succeed() {
    // Exclusivity holds while an operation is active: physical copies.
    let app = copy_app();
    let token = app.token("acme");
    let id = create_cluster(&app, &token)["id"]
        .as_str()
        .unwrap()
        .to_string();
    for round in 0..5 {
        let statuses: Vec<u16> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        app.send_json(
                            "POST",
                            &format!("/api/v1/clusters/{id}/cloning-operations"),
                            &[(KEY, &token)],
                            &json!({}),
                        )
                        .status
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(
            statuses.iter().filter(|s| **s == 201).count(),
            1,
            "round {round}: {statuses:?}"
        );
        assert!(
            statuses.iter().all(|s| *s == 201 || *s == 409),
            "{statuses:?}"
        );
        // Cancel it so the next round may start one.
        let list = app
            .get(
                &format!("/api/v1/clusters/{id}/cloning-operations?per_page=1"),
                &[(KEY, &token)],
            )
            .json();
        let op = list["cloning_operations"][0]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let r = app.send_json(
            "PATCH",
            &format!("/api/v1/clusters/{id}/cloning-operations/{op}"),
            &[(KEY, &token)],
            &json!({"status": "canceled"}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
}

#[test]
fn auth_regions_and_tenancy() {
    let app = App::start();
    let token = app.token("acme");
    let other = app.token("globex");
    assert_eq!(app.get("/api/v1/clusters", &[]).status, 401);
    assert_eq!(app.get("/api/v1/clusters", &[(KEY, "wrong")]).status, 401);
    let id = create_cluster(&app, &token)["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        app.get(&format!("/api/v1/clusters/{id}"), &[(KEY, &other)])
            .status,
        404
    );
    assert_eq!(
        app.send_json(
            "POST",
            &format!("/api/v1/clusters/{id}/cloning-operations"),
            &[(KEY, &other)],
            &json!({})
        )
        .status,
        404
    );
    let r = app.send_json(
        "POST",
        &format!("/api/v1/clusters/{id}/cloning-operations"),
        &[(KEY, &token)],
        &json!({"target_region": "atlantis"}),
    );
    assert_eq!(r.status, 400);
    assert!(
        r.json()["message"].as_str().unwrap().contains("oregon"),
        "{}",
        r.body
    );
    let r = app.send_json(
        "POST",
        "/api/v1/clusters",
        &[(KEY, &token)],
        &json!({"memory": "1_gb"}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        app.get("/api/v1/clusters", &[(KEY, &token)]).json()["total"],
        1
    );
    assert_eq!(
        app.get("/api/v1/clusters", &[(KEY, &other)]).json()["total"],
        0
    );
    assert_eq!(
        app.request(
            "DELETE",
            &format!("/api/v1/clusters/{id}"),
            &[(KEY, &token)],
            None
        )
        .status,
        200
    );
    assert_eq!(
        app.get(&format!("/api/v1/clusters/{id}"), &[(KEY, &token)])
            .status,
        404
    );
}
