//! The Timescale-shaped family end to end, validated against Tiger's OpenAPI.

use spinoff_e2e::*;

fn now() -> String {
    engine::util::rfc3339(engine::Env::now_us(&engine::native::SystemEnv))
}

struct Tiger<'a> {
    app: &'a App,
    auth: String,
    doc: Value,
}

impl Tiger<'_> {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let h = [("authorization", self.auth.as_str())];
        match body {
            Some(b) => self
                .app
                .send_json(method, &format!("/public/api/v1{path}"), &h, &b),
            None => self
                .app
                .request(method, &format!("/public/api/v1{path}"), &h, None),
        }
    }
    fn service(&self, r: &Reply, status: u16) -> Value {
        assert_eq!(r.status, status, "{}", r.body);
        let v = r.json();
        validate(&self.doc, "Service", &v).unwrap();
        v
    }
    fn fork(&self, p: &str, id: &str, body: Value) -> Value {
        let r = self.call(
            "POST",
            &format!("/projects/{p}/services/{id}/forkService"),
            Some(body.clone()),
        );
        validate(&self.doc, "ForkServiceCreate", &body).unwrap();
        self.service(&r, 202)
    }
    fn wait_ready(&self, p: &str, id: &str) -> Value {
        for _ in 0..1000 {
            let v = self.service(
                &self.call("GET", &format!("/projects/{p}/services/{id}"), None),
                200,
            );
            match v["status"].as_str().unwrap() {
                "READY" => return v,
                "QUEUED" | "CONFIGURING" => self.app.tick().unwrap(),
                other => panic!("{other}: {v}"),
            }
        }
        panic!("never ready");
    }
    fn rows(&self, id: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .app
            .get(
                &format!("/data/v1/resources/timescale:{id}/export"),
                &[("authorization", &self.auth)],
            )
            .body
            .lines()
            .map(String::from)
            .collect();
        v.sort();
        v
    }
}

fn generation(app: &App, auth: &str, id: &str, g: i64) {
    let lines: String = (0..5000).map(|i| format!("{}\n", json!({"collection": "metrics", "key": format!("r{i:05}"), "body": {"gen": g, "i": i}}))).collect();
    let r = app.request(
        "POST",
        &format!("/data/v1/resources/timescale:{id}/import"),
        &[("authorization", auth)],
        Some(lines.as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

/// An app whose forks are physical copies (the Spin variable `clone_mode`).
fn copy_app() -> App {
    App::start_with(|o| {
        o.variables.insert("clone_mode".into(), "copy".into());
    })
}

/// The default: a fork is a copy-on-write branch, READY at its first read.
#[test]
fn forks_now_last_snapshot_and_pitr_hold_exactly_that_point() {
    forks_flow(App::start(), false);
}

/// `clone_mode = "copy"`: the worker copies; QUEUED or CONFIGURING meanwhile.
#[test]
fn physical_copy_forks_hold_exactly_that_point() {
    forks_flow(copy_app(), true);
}

fn forks_flow(app: App, copy: bool) {
    let token = app.token("acme");
    let t = Tiger {
        app: &app,
        auth: format!("Bearer {token}"),
        doc: vendor_openapi("timescale-tiger-openapi.yaml").expect("vendor OpenAPI"),
    };
    let create = json!({"name": "metrics-db", "region_code": "eu-central-1", "cpu_millis": "1000", "memory_gbs": "4", "addons": ["time-series"], "environment_tag": "PROD"});
    validate(&t.doc, "ServiceCreate", &create).unwrap();
    let svc = t.service(
        &t.call("POST", "/projects/proj1/services", Some(create)),
        202,
    );
    assert_eq!(svc["status"], "QUEUED");
    assert!(svc["initial_password"].as_str().unwrap().len() >= 32);
    let id = svc["service_id"].as_str().unwrap().to_string();
    assert_eq!(
        t.service(
            &t.call("GET", &format!("/projects/proj1/services/{id}"), None),
            200
        )["status"],
        "READY"
    );
    assert!(t
        .call("GET", &format!("/projects/proj1/services/{id}"), None)
        .json()
        .get("initial_password")
        .is_none());

    generation(&app, &t.auth, &id, 1);
    assert_eq!(
        t.call(
            "POST",
            &format!("/projects/proj1/services/{id}/snapshots"),
            None
        )
        .status,
        201
    );
    std::thread::sleep(std::time::Duration::from_millis(20));
    let between_1_2 = now();
    std::thread::sleep(std::time::Duration::from_millis(20));
    generation(&app, &t.auth, &id, 2);
    assert_eq!(
        t.call(
            "POST",
            &format!("/projects/proj1/services/{id}/snapshots"),
            None
        )
        .status,
        201
    );
    let gen2 = t.rows(&id);
    generation(&app, &t.auth, &id, 3);
    let gen3 = t.rows(&id);

    let now_fork = t.fork("proj1", &id, json!({"fork_strategy": "NOW"}));
    assert_eq!(now_fork["status"], "QUEUED");
    assert_eq!(now_fork["name"], "metrics-db-fork");
    assert_eq!(
        now_fork["forked_from"],
        json!({"project_id": "proj1", "service_id": id, "is_standby": false})
    );
    assert_eq!(now_fork["metadata"]["environment"], "DEV");
    assert_eq!(
        (
            now_fork["region_code"].as_str(),
            now_fork["service_type"].as_str()
        ),
        (Some("eu-central-1"), Some("TIMESCALEDB"))
    );
    assert_eq!(now_fork["resources"][0]["spec"]["cpu_millis"], 1000);
    assert_eq!(now_fork["ha_replicas"]["replica_count"], 0);
    assert!(now_fork["initial_password"].is_string());
    let snap_fork = t.fork("proj1", &id, json!({"fork_strategy": "LAST_SNAPSHOT", "name": "from-snapshot", "cpu_millis": "shared", "memory_gbs": "8", "environment_tag": "PROD"}));
    assert_eq!(snap_fork["metadata"]["environment"], "PROD");
    assert_eq!(snap_fork["resources"][0]["spec"]["memory_gbs"], 8);
    let pitr_fork = t.fork(
        "proj1",
        &id,
        json!({"fork_strategy": "PITR", "target_time": between_1_2}),
    );

    let rows = |f: &Value| -> Vec<String> {
        let fid = f["service_id"].as_str().unwrap();
        if copy {
            t.wait_ready("proj1", fid);
        } else {
            // A branch is READY at once: no worker step needed.
            let v = t.service(
                &t.call("GET", &format!("/projects/proj1/services/{fid}"), None),
                200,
            );
            assert_eq!(v["status"], "READY", "{v}");
        }
        t.rows(fid)
    };
    let (a, b, c) = (rows(&now_fork), rows(&snap_fork), rows(&pitr_fork));
    assert_eq!(a, gen3);
    // Writes to the parent afterwards never show in a fork.
    generation(&app, &t.auth, &id, 4);
    assert_ne!(t.rows(&id), gen3);
    assert_eq!(t.rows(now_fork["service_id"].as_str().unwrap()), gen3);
    assert_eq!(t.rows(snap_fork["service_id"].as_str().unwrap()), gen2);
    assert_eq!(b, gen2);
    assert_eq!(c.len(), 5000);
    assert!(c.iter().all(|l| l.contains("\"gen\":1")), "{}", c[0]);

    let list = t.call("GET", "/projects/proj1/services", None).json();
    assert_eq!(list.as_array().unwrap().len(), 4);
    for s in list.as_array().unwrap() {
        validate(&t.doc, "Service", s).unwrap();
    }
}

#[test]
fn invalid_fork_requests_are_400_with_a_clear_message() {
    let app = App::start();
    let token = app.token("acme");
    let t = Tiger {
        app: &app,
        auth: format!("Bearer {token}"),
        doc: vendor_openapi("timescale-tiger-openapi.yaml").unwrap(),
    };
    let id = t.service(
        &t.call("POST", "/projects/p/services", Some(json!({"name": "db"}))),
        202,
    )["service_id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/projects/p/services/{id}/forkService");
    let cases = [
        (json!({}), "fork_strategy is required"),
        (json!({"fork_strategy": "PITR"}), "target_time is required"),
        (
            json!({"fork_strategy": "NOW", "target_time": now()}),
            "only accepted with fork_strategy PITR",
        ),
        (
            json!({"fork_strategy": "PITR", "target_time": "2001-01-01T00:00:00Z"}),
            "outside the retained history",
        ),
        (
            json!({"fork_strategy": "YESTERDAY"}),
            "not one of LAST_SNAPSHOT, NOW, PITR",
        ),
        (json!({"fork_strategy": "LAST_SNAPSHOT"}), "no snapshot"),
        (json!({"fork_strategy": "NOW", "name": ""}), "1 to 128"),
        (
            json!({"fork_strategy": "NOW", "cpu_millis": 1000}),
            "cpu_millis",
        ),
        (
            json!({"fork_strategy": "NOW", "environment_tag": "STAGING"}),
            "DEV or PROD",
        ),
    ];
    for (body, msg) in cases {
        let r = t.call("POST", &path, Some(body.clone()));
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        let e = r.json();
        validate(&t.doc, "Error", &e).unwrap();
        assert!(
            e["message"].as_str().unwrap().contains(msg),
            "{body}: {}",
            r.body
        );
    }
    // Projects belong to their tenant.
    let other = format!("Bearer {}", app.token("globex"));
    let r = app.request(
        "GET",
        &format!("/public/api/v1/projects/p/services/{id}"),
        &[("authorization", &other)],
        None,
    );
    assert_eq!(r.status, 404);
    let r = app.send_json(
        "POST",
        "/public/api/v1/projects/p/services",
        &[("authorization", &other)],
        &json!({"name": "mine"}),
    );
    assert_eq!(r.status, 404);
    assert_eq!(
        app.request("GET", "/public/api/v1/projects/p/services", &[], None)
            .status,
        401
    );
}

#[test]
fn a_failed_fork_is_unstable_with_its_reason_and_can_be_deleted() {
    // Only an operation still running can fail: a physical copy.
    let app = copy_app();
    let token = app.token("acme");
    let t = Tiger {
        app: &app,
        auth: format!("Bearer {token}"),
        doc: vendor_openapi("timescale-tiger-openapi.yaml").unwrap(),
    };
    let id = t.service(
        &t.call("POST", "/projects/p/services", Some(json!({"name": "db"}))),
        202,
    )["service_id"]
        .as_str()
        .unwrap()
        .to_string();
    generation(&app, &t.auth, &id, 1);
    let f = t.fork("p", &id, json!({"fork_strategy": "NOW"}));
    let fid = f["service_id"].as_str().unwrap().to_string();
    {
        let db = app.database();
        let e = engine::Engine::open(db.as_ref(), &engine::native::SystemEnv).unwrap();
        let c = e.container("timescale", "acme", &fid).unwrap();
        e.fail(
            c.spec["fork_operation"].as_str().unwrap(),
            "volume detached",
        )
        .unwrap();
    }
    let v = t.service(
        &t.call("GET", &format!("/projects/p/services/{fid}"), None),
        200,
    );
    assert_eq!(
        (v["status"].as_str(), v["status_reason"].as_str()),
        (Some("UNSTABLE"), Some("volume detached"))
    );
    assert_eq!(
        t.call("DELETE", &format!("/projects/p/services/{fid}"), None)
            .status,
        202
    );
    assert_eq!(
        t.call("GET", &format!("/projects/p/services/{fid}"), None)
            .status,
        404
    );
}

#[test]
fn the_schema_check_rejects_what_the_vendor_schema_rejects() {
    let doc = vendor_openapi("timescale-tiger-openapi.yaml").unwrap();
    assert!(validate(&doc, "Service", &json!({})).is_err());
    assert!(validate(&doc, "Service", &json!({"service_id": "x", "project_id": "p", "name": "n", "region_code": "r",
        "service_type": "MYSQL", "created": "2025-01-01T00:00:00Z", "status": "READY", "resources": []})).is_err());
    assert!(validate(
        &doc,
        "ForkServiceCreate",
        &json!({"fork_strategy": "SOMETIME"})
    )
    .is_err());
}
