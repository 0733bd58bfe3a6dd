//! The Qovery-shaped family end to end, validated against Qovery's OpenAPI.

use spinoff_e2e::*;

struct Q<'a> {
    app: &'a App,
    auth: String,
    doc: Value,
}

impl Q<'_> {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let h = [("authorization", self.auth.as_str())];
        match body {
            Some(b) => self.app.send_json(method, path, &h, &b),
            None => self.app.request(method, path, &h, None),
        }
    }
    fn ok(&self, r: Reply, status: u16, schema: &str) -> Value {
        assert_eq!(r.status, status, "{}", r.body);
        let v = r.json();
        validate(&self.doc, schema, &v).unwrap();
        v
    }
    fn env(&self, project: &str, name: &str) -> String {
        let body = json!({"name": name, "mode": "STAGING"});
        validate(&self.doc, "CreateEnvironmentRequest", &body).unwrap();
        let v = self.ok(
            self.call(
                "POST",
                &format!("/project/{project}/environment"),
                Some(body),
            ),
            201,
            "Environment",
        );
        v["id"].as_str().unwrap().to_string()
    }
}

fn q<'a>(app: &'a App, tenant: &str) -> Q<'a> {
    Q {
        app,
        auth: format!("Token {}", app.token(tenant)),
        doc: vendor_openapi("qovery-openapi.yaml").expect("vendor OpenAPI"),
    }
}

/// An app whose clones are physical copies (the Spin variable `clone_mode`).
fn copy_app() -> App {
    App::start_with(|o| {
        o.variables.insert("clone_mode".into(), "copy".into());
    })
}

/// The default: a clone is a copy-on-write branch, `DEPLOYED` as soon as its
/// start answers.
#[test]
fn clone_a_postgres_database_into_another_environment() {
    clone_flow(App::start(), false);
}

/// `clone_mode = "copy"`: the worker copies the data; the clone is queued or
/// deploying meanwhile and a second clone of the source is refused.
#[test]
fn a_physical_copy_deploys_through_the_worker() {
    clone_flow(copy_app(), true);
}

fn clone_flow(app: App, copy: bool) {
    let q = q(&app, "acme");
    let org = q.call("GET", "/organization", None).json()["results"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let labels = q.ok(
        q.call("POST", &format!("/organization/{org}/labelsGroup"), Some(json!({"name": "team", "labels": [{"key": "team", "value": "data", "propagate_to_cloud_provider": true}]}))),
        201,
        "OrganizationLabelsGroupResponse",
    );
    let annotations = q.ok(
        q.call("POST", &format!("/organization/{org}/annotationsGroup"), Some(json!({"name": "cost", "annotations": [{"key": "cost-center", "value": "42"}], "scopes": ["DEPLOYMENTS"]}))),
        201,
        "OrganizationAnnotationsGroupResponse",
    );
    let prod = q.env("proj", "production");
    let staging = q.env("proj", "staging");
    let create = json!({"name": "Orders", "type": "POSTGRESQL", "version": "16", "mode": "CONTAINER", "accessibility": "PUBLIC",
        "cpu": 500, "storage": 20, "labels_groups": [{"id": labels["id"]}], "annotations_groups": [{"id": annotations["id"]}]});
    validate(&q.doc, "DatabaseRequest", &create).unwrap();
    let db = q.ok(
        q.call(
            "POST",
            &format!("/environment/{prod}/database"),
            Some(create),
        ),
        201,
        "Database",
    );
    assert_eq!(
        (
            db["memory"].as_i64(),
            db["accessibility"].as_str(),
            db["disk_type"].clone()
        ),
        (Some(100), Some("PUBLIC"), Value::Null)
    );
    let id = db["id"].as_str().unwrap().to_string();
    assert_eq!(
        q.ok(
            q.call("GET", &format!("/database/{id}/status"), None),
            200,
            "Status"
        )["state"],
        "DEPLOYED"
    );

    let lines: String = (0..10_000).map(|i| format!("{}\n", json!({"collection": "public.orders", "key": format!("{i}"), "body": {"id": i, "total": i * 3}}))).collect();
    let bearer = q.auth.replace("Token ", "Bearer ");
    assert_eq!(
        app.request(
            "POST",
            &format!("/data/v1/resources/qovery:{id}/import"),
            &[("authorization", &bearer)],
            Some(lines.as_bytes())
        )
        .status,
        200
    );
    let source_rows = |r: &str| -> Vec<String> {
        let mut v: Vec<String> = app
            .get(
                &format!("/data/v1/resources/{r}/export"),
                &[("authorization", &bearer)],
            )
            .body
            .lines()
            .map(String::from)
            .collect();
        v.sort();
        v
    };
    let at_start = source_rows(&format!("qovery:{id}"));

    let body = json!({"name": "orders-staging", "environment_id": staging});
    validate(&q.doc, "CloneServiceRequest", &body).unwrap();
    let clone = q.ok(
        q.call("POST", &format!("/database/{id}/clone"), Some(body)),
        202,
        "Database",
    );
    let cid = clone["id"].as_str().unwrap().to_string();
    assert_eq!(clone["environment"]["id"], staging.as_str());
    for k in [
        "type",
        "version",
        "mode",
        "accessibility",
        "cpu",
        "memory",
        "storage",
        "annotations_groups",
        "labels_groups",
    ] {
        assert_eq!(clone[k], db[k], "{k}");
    }
    // Writes after the start do not reach the clone.
    app.send_json(
        "PUT",
        &format!("/data/v1/resources/qovery:{id}/collections/public.orders/records/late"),
        &[("authorization", &bearer)],
        &json!({}),
    );
    if copy {
        // The 409 cases.
        let again = q.call(
            "POST",
            &format!("/database/{id}/clone"),
            Some(json!({"name": "another", "environment_id": staging})),
        );
        assert_eq!(
            (again.status, again.json()["message"].as_str()),
            (409, Some("Operation is in progress"))
        );
    }
    let dup = q.call(
        "POST",
        &format!("/environment/{staging}/database"),
        Some(
            json!({"name": "ORDERS-STAGING", "type": "REDIS", "version": "7", "mode": "CONTAINER"}),
        ),
    );
    assert_eq!(dup.status, 409, "{}", dup.body);

    let first = q.ok(
        q.call("GET", &format!("/database/{cid}/status"), None),
        200,
        "Status",
    );
    if !copy {
        // A branch is deployed at once, its data the source's as of the start.
        assert_eq!(first["state"], "DEPLOYED", "{first}");
        assert_eq!(first["service_deployment_status"], "UP_TO_DATE", "{first}");
        assert_eq!(first["status_details"]["status"], "SUCCESS", "{first}");
        assert_eq!(source_rows(&format!("qovery:{cid}")), at_start);
        assert_eq!(
            source_rows(&format!("qovery:{id}")).len(),
            at_start.len() + 1
        );
    }
    assert!(
        ["DEPLOYMENT_QUEUED", "DEPLOYING", "DEPLOYED"].contains(&first["state"].as_str().unwrap())
    );
    if copy {
        assert!(first["data_copy"]["records_total"].as_i64().unwrap() >= 10_000);
    }
    let mut last = first;
    for _ in 0..500 {
        if last["state"] == "DEPLOYED" {
            break;
        }
        app.tick().unwrap();
        last = q.ok(
            q.call("GET", &format!("/database/{cid}/status"), None),
            200,
            "Status",
        );
    }
    assert_eq!(last["state"], "DEPLOYED", "{last}");
    if copy {
        assert_eq!(last["data_copy"]["percent"], 100.0);
    }
    assert_eq!(source_rows(&format!("qovery:{cid}")), at_start);
    // Done: another clone may start; the list shows both databases per environment.
    assert_eq!(
        q.call(
            "POST",
            &format!("/database/{id}/clone"),
            Some(json!({"name": "again", "environment_id": prod}))
        )
        .status,
        202
    );
    let list = q.ok(
        q.call("GET", &format!("/environment/{staging}/database"), None),
        200,
        "DatabaseResponseList",
    );
    assert_eq!(list["results"].as_array().unwrap().len(), 1);
}

#[test]
fn errors_and_organizations() {
    let app = App::start();
    let q1 = q(&app, "acme");
    let q2 = q(&app, "globex");
    let env1 = q1.env("p1", "prod");
    let db = q1.ok(
        q1.call(
            "POST",
            &format!("/environment/{env1}/database"),
            Some(json!({"name": "db", "type": "MYSQL", "version": "8", "mode": "CONTAINER"})),
        ),
        201,
        "Database",
    );
    assert_eq!(db["memory"], 512);
    let id = db["id"].as_str().unwrap();
    // Another organization sees nothing, and cannot use its environment.
    assert_eq!(q2.call("GET", &format!("/database/{id}"), None).status, 404);
    let env2 = q2.env("p2", "prod");
    assert_eq!(
        q2.call(
            "POST",
            &format!("/database/{id}/clone"),
            Some(json!({"name": "x", "environment_id": env2}))
        )
        .status,
        404
    );
    assert_eq!(
        q1.call(
            "POST",
            &format!("/database/{id}/clone"),
            Some(json!({"name": "x", "environment_id": env2}))
        )
        .status,
        404
    );
    assert_eq!(
        q2.call("GET", &format!("/environment/{env1}"), None).status,
        404
    );
    assert_eq!(
        q2.call(
            "POST",
            "/project/p1/environment",
            Some(json!({"name": "mine"}))
        )
        .status,
        404
    );
    // Missing fields.
    for body in [
        json!({"name": "x"}),
        json!({"environment_id": env1}),
        json!({}),
    ] {
        assert_eq!(
            q1.call("POST", &format!("/database/{id}/clone"), Some(body))
                .status,
            400
        );
    }
    let r = q1.call(
        "POST",
        &format!("/environment/{env1}/database"),
        Some(json!({"name": "m", "type": "POSTGRESQL", "version": "16", "mode": "MANAGED"})),
    );
    assert_eq!(r.status, 400);
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("instance_type"));
    assert_eq!(
        q1.call(
            "POST",
            "/project/p1/environment",
            Some(json!({"name": "PROD"}))
        )
        .status,
        409
    );
    assert_eq!(app.get(&format!("/database/{id}"), &[]).status, 401);
    // Delete frees the name.
    assert_eq!(
        q1.call("DELETE", &format!("/database/{id}"), None).status,
        204
    );
    assert_eq!(
        q1.call(
            "POST",
            &format!("/environment/{env1}/database"),
            Some(json!({"name": "DB", "type": "MYSQL", "version": "8", "mode": "CONTAINER"}))
        )
        .status,
        201
    );
}

#[test]
fn simultaneous_clones_of_one_database_never_both_start() {
    // Exclusivity holds while a clone is active: physical copies.
    let app = copy_app();
    let q = q(&app, "acme");
    let env = q.env("p", "prod");
    let id = q
        .call(
            "POST",
            &format!("/environment/{env}/database"),
            Some(json!({"name": "db", "type": "REDIS", "version": "7", "mode": "CONTAINER"})),
        )
        .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    for round in 0..5 {
        let statuses: Vec<u16> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|i| {
                    let (q, id, env) = (&q, &id, &env);
                    s.spawn(move || {
                        q.call(
                            "POST",
                            &format!("/database/{id}/clone"),
                            Some(json!({"name": format!("c{round}-{i}"), "environment_id": env})),
                        )
                        .status
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(
            statuses.iter().filter(|s| **s == 202).count(),
            1,
            "round {round}: {statuses:?}"
        );
        assert!(
            statuses.iter().all(|s| *s == 202 || *s == 409),
            "{statuses:?}"
        );
        // Let it finish before the next round.
        for _ in 0..100 {
            app.tick().unwrap();
            let busy = q.call(
                "POST",
                &format!("/database/{id}/clone"),
                Some(json!({"name": format!("probe{round}"), "environment_id": env})),
            );
            if busy.status == 202 {
                for _ in 0..100 {
                    app.tick().unwrap();
                }
                break;
            }
        }
    }
}

#[test]
fn organization_projects_and_deletes() {
    // The clone must still be running when its environments are deleted.
    let app = copy_app();
    let q = q(&app, "acme");
    let orgs = q.ok(
        q.call("GET", "/organization", None),
        200,
        "OrganizationResponseList",
    );
    let org = orgs["results"][0]["id"].as_str().unwrap().to_string();
    let got = q.ok(
        q.call("GET", &format!("/organization/{org}"), None),
        200,
        "Organization",
    );
    assert_eq!(got, orgs["results"][0]);
    let body = json!({"name": "Shop", "description": "the shop"});
    validate(&q.doc, "ProjectRequest", &body).unwrap();
    let p = q.ok(
        q.call("POST", &format!("/organization/{org}/project"), Some(body)),
        200,
        "Project",
    );
    let pid = p["id"].as_str().unwrap().to_string();
    assert_eq!(
        (
            p["name"].as_str(),
            p["associated_environments_count"].as_i64()
        ),
        (Some("Shop"), Some(0))
    );
    assert_eq!(
        q.call(
            "POST",
            &format!("/organization/{org}/project"),
            Some(json!({"name": "shop"}))
        )
        .status,
        409
    );
    let prod = q.env(&pid, "prod");
    let staging = q.env(&pid, "staging");
    let got = q.ok(
        q.call("GET", &format!("/project/{pid}"), None),
        200,
        "Project",
    );
    assert_eq!(got["associated_environments_count"], 2);
    let list = q.ok(
        q.call("GET", &format!("/organization/{org}/project"), None),
        200,
        "ProjectResponseList",
    );
    assert_eq!(list["results"].as_array().unwrap().len(), 1);
    let db = q
        .call(
            "POST",
            &format!("/environment/{prod}/database"),
            Some(json!({"name": "db", "type": "REDIS", "version": "7", "mode": "CONTAINER"})),
        )
        .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let lines: String = (0..3000)
        .map(|i| {
            format!(
                "{}\n",
                json!({"collection": "k", "key": format!("{i}"), "body": {}})
            )
        })
        .collect();
    let bearer = q.auth.replace("Token ", "Bearer ");
    app.request(
        "POST",
        &format!("/data/v1/resources/qovery:{db}/import"),
        &[("authorization", &bearer)],
        Some(lines.as_bytes()),
    );
    let clone = q.call(
        "POST",
        &format!("/database/{db}/clone"),
        Some(json!({"name": "copy", "environment_id": staging})),
    );
    assert_eq!(clone.status, 202, "{}", clone.body);
    let cid = clone.json()["id"].as_str().unwrap().to_string();
    // The source of a running clone keeps its environment: 409, nothing deleted.
    let busy = q.call("DELETE", &format!("/environment/{prod}"), None);
    assert_eq!(busy.status, 409, "{}", busy.body);
    assert_eq!(q.call("GET", &format!("/database/{db}"), None).status, 200);
    // Deleting the target's environment cancels the clone that fills it.
    assert_eq!(
        q.call("DELETE", &format!("/environment/{staging}"), None)
            .status,
        204
    );
    assert_eq!(
        q.call("GET", &format!("/environment/{staging}"), None)
            .status,
        404
    );
    assert_eq!(q.call("GET", &format!("/database/{cid}"), None).status, 404);
    // The name is free again.
    q.env(&pid, "STAGING");
    // The project goes with its environments and databases.
    let gone = q.call("DELETE", &format!("/project/{pid}"), None);
    assert_eq!(gone.status, 204, "{}", gone.body);
    for path in [
        format!("/project/{pid}"),
        format!("/project/{pid}/environment"),
        format!("/environment/{prod}"),
        format!("/database/{db}"),
        format!("/data/v1/resources/qovery:{db}"),
    ] {
        assert_eq!(
            app.get(&path, &[("authorization", &bearer)]).status,
            404,
            "{path}"
        );
    }
    assert_eq!(
        q.call("GET", &format!("/organization/{org}/project"), None)
            .json()["results"],
        json!([])
    );
    assert_eq!(
        q.call("DELETE", &format!("/project/{pid}"), None).status,
        404
    );
    // A project never created is not found, in Qovery's error shape, and
    // reading it does not create it.
    let missing = q.call("GET", "/project/never-made/environment", None);
    assert_eq!(missing.status, 404, "{}", missing.body);
    let err = missing.json();
    assert_eq!(
        (err["status"].as_i64(), err["error"].as_str()),
        (Some(404), Some("Not Found")),
        "{err}"
    );
    assert!(
        err["message"].as_str().unwrap().contains("never-made"),
        "{err}"
    );
    assert_eq!(
        q.call("GET", "/project/never-made/environment", None)
            .status,
        404
    );
    assert_eq!(q.call("GET", "/project/never-made", None).status, 404);
    assert_eq!(
        q.call("GET", &format!("/organization/{org}/project"), None)
            .json()["results"],
        json!([])
    );
    // Another organization is not found.
    assert_eq!(
        q.call(
            "GET",
            "/organization/00000000-0000-4000-8000-000000000000",
            None
        )
        .status,
        404
    );
}
