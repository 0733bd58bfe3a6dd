//! The Mixpeek-shaped family end to end, validated against Mixpeek's OpenAPI.

use spinoff_e2e::*;

struct M<'a> {
    app: &'a App,
    auth: String,
    doc: Value,
}

impl M<'_> {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let h = [("authorization", self.auth.as_str())];
        match body {
            Some(b) => self.app.send_json(method, path, &h, &b),
            None => self.app.request(method, path, &h, None),
        }
    }
    fn ok(&self, r: Reply, schema: &str) -> Value {
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        validate(&self.doc, schema, &v).unwrap();
        v
    }
    fn import(&self, ns: &str, lines: &[Value]) {
        let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let r = self.app.request(
            "POST",
            &format!("/data/v1/resources/mixpeek:{ns}/import"),
            &[("authorization", &self.auth)],
            Some(body.as_bytes()),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
    fn wait(&self, task: &str) -> Value {
        for _ in 0..500 {
            let t = self.ok(
                self.call("GET", &format!("/v1/tasks/{task}"), None),
                "TaskResponse",
            );
            if !matches!(t["status"].as_str(), Some("PENDING" | "IN_PROGRESS")) {
                return t;
            }
            self.app.tick().unwrap();
        }
        panic!("task never ended");
    }
}

fn line(c: &str, k: String, body: Value) -> Value {
    json!({"collection": c, "key": k, "body": body})
}

fn seeded(m: &M) -> String {
    let create = json!({"namespace_name": "production", "description": "prod data",
        "feature_extractors": [{"feature_extractor_name": "text_extractor", "version": "v1"}],
        "payload_indexes": [{"field_name": "metadata.title", "type": "text", "is_protected": false}]});
    validate(&m.doc, "CreateNamespaceRequest", &create).unwrap();
    let ns = m.ok(
        m.call("POST", "/v1/namespaces", Some(create)),
        "NamespaceModel",
    );
    let id = ns["namespace_id"].as_str().unwrap().to_string();
    let mut lines = vec![
        line(
            "_collections",
            "col_a".into(),
            json!({"collection_name": "a"}),
        ),
        line(
            "_collections",
            "col_b".into(),
            json!({"collection_name": "b"}),
        ),
        line(
            "_retrievers",
            "ret_1".into(),
            json!({"retriever_name": "r1"}),
        ),
        line(
            "_retrievers",
            "ret_2".into(),
            json!({"retriever_name": "r2"}),
        ),
        line(
            "_taxonomies",
            "tax_1".into(),
            json!({"taxonomy_name": "t1"}),
        ),
        line("_buckets", "bkt_1".into(), json!({"bucket_name": "media"})),
    ];
    for i in 0..50 {
        lines.push(line(
            "_objects",
            format!("obj_{i}"),
            json!({"bucket_id": "bkt_1", "url": format!("s3://media/{i}.jpg")}),
        ));
    }
    for i in 0..10_000 {
        let col = if i % 2 == 0 {
            "points:col_a"
        } else {
            "points:col_b"
        };
        lines.push(line(
            col,
            format!("pt_{i}"),
            json!({"vector": [i as f64 / 10.0, 1.0, 0.5], "payload": {"title": format!("t{i}")}}),
        ));
    }
    m.import(&id, &lines);
    let ns = m.ok(
        m.call("GET", &format!("/v1/namespaces/{id}"), None),
        "NamespaceModel",
    );
    assert_eq!(
        (
            ns["document_count"].as_i64(),
            ns["collection_count"].as_i64(),
            ns["bucket_count"].as_i64(),
            ns["object_count"].as_i64()
        ),
        (Some(10_000), Some(2), Some(1), Some(50))
    );
    id
}

#[test]
fn clone_with_default_and_custom_resources() {
    let app = App::start();
    let m = M {
        app: &app,
        auth: format!("Bearer {}", app.token("acme")),
        doc: vendor_openapi("mixpeek-openapi.json").expect("vendor OpenAPI"),
    };
    let src = seeded(&m);

    // Defaults: collections + retrievers, not taxonomies; buckets and objects always.
    let body = json!({"namespace_name": "staging"});
    validate(&m.doc, "CloneNamespaceRequest", &body).unwrap();
    let r = m.ok(
        m.call("POST", "/v1/namespaces/production/clone", Some(body)),
        "CloneNamespaceResponse",
    );
    // The default mode is a branch: ready when the start answers.
    assert_eq!(
        (r["status"].as_str(), r["source_namespace_id"].as_str()),
        (Some("ready"), Some(src.as_str()))
    );
    assert_eq!(r["cloned_resources"]["points"], 10_000, "{r}");
    let new_id = r["namespace"]["namespace_id"].as_str().unwrap().to_string();
    assert_ne!(new_id, src);
    assert_eq!(r["namespace"]["description"], "prod data");
    let export = |ns: &str| -> Vec<String> {
        let mut v: Vec<String> = app
            .get(
                &format!("/data/v1/resources/mixpeek:{ns}/export"),
                &[("authorization", &m.auth)],
            )
            .body
            .lines()
            .filter(|l| l.contains("\"points:"))
            .map(String::from)
            .collect();
        v.sort();
        v
    };
    let src_points = export(&src);
    // A write to the source afterwards never shows in the clone.
    m.import(
        &src,
        &[line(
            "points:col_a",
            "pt_late".into(),
            json!({"vector": [0.0, 0.0, 0.0]}),
        )],
    );
    let task = m.ok(
        m.call(
            "GET",
            &format!("/v1/tasks/{}", r["task_id"].as_str().unwrap()),
            None,
        ),
        "TaskResponse",
    );
    assert_eq!(task["status"], "COMPLETED");
    assert_eq!(task["additional_data"]["status"], "ready");
    assert_eq!(
        task["additional_data"]["cloned_resources"],
        json!({"collections": 2, "retrievers": 2, "taxonomies": 0, "buckets": 1, "objects": 50, "points": 10_000})
    );
    assert_eq!(src_points.len(), 10_000);
    assert_eq!(export(&new_id), src_points);
    assert_eq!(export(&src).len(), 10_001);
    let ns = m.ok(
        m.call("GET", "/v1/namespaces/staging", None),
        "NamespaceModel",
    );
    assert_eq!(ns["status"], "ready");
    validate(&m.doc, "ClonedResourceSummary", &ns["cloned_resources"]).unwrap();
    assert_eq!(ns["cloned_resources"]["points"], 10_000);
    assert_eq!(
        ns["feature_extractors"],
        m.call("GET", &format!("/v1/namespaces/{src}"), None).json()["feature_extractors"]
    );
    // Objects point at the same files.
    let obj = app
        .get(
            &format!("/data/v1/resources/mixpeek:{new_id}/collections/_objects/records/obj_7"),
            &[("authorization", &m.auth)],
        )
        .json();
    assert_eq!(obj["body"]["url"], "s3://media/7.jpg");

    // Custom: taxonomies only, with a description override.
    let body = json!({"namespace_name": "tax-only", "include_resources": {"collections": false, "retrievers": false, "taxonomies": true}, "description": "just taxonomies"});
    let r = m.ok(
        m.call("POST", &format!("/v1/namespaces/{src}/clone"), Some(body)),
        "CloneNamespaceResponse",
    );
    let task = m.wait(r["task_id"].as_str().unwrap());
    assert_eq!(
        task["additional_data"]["cloned_resources"],
        json!({"collections": 0, "retrievers": 0, "taxonomies": 1, "buckets": 1, "objects": 50, "points": 0})
    );
    let ns = m.ok(
        m.call("GET", "/v1/namespaces/tax-only", None),
        "NamespaceModel",
    );
    assert_eq!(
        (ns["description"].as_str(), ns["document_count"].as_i64()),
        (Some("just taxonomies"), Some(0))
    );

    // Duplicate name: 409 and nothing started.
    let before = m.call("GET", "/v1/namespaces", None).json()["total_count"].clone();
    let dup = m.call(
        "POST",
        &format!("/v1/namespaces/{src}/clone"),
        Some(json!({"namespace_name": "staging"})),
    );
    assert_eq!(dup.status, 409);
    validate(&m.doc, "ErrorResponse", &dup.json()).unwrap();
    assert_eq!(
        m.call("GET", "/v1/namespaces", None).json()["total_count"],
        before
    );
    let list = m.call("GET", "/v1/namespaces?page_size=2", None).json();
    validate(&m.doc, "ListNamespacesResponse", &list).unwrap();
    assert_eq!(list["results"].as_array().unwrap().len(), 2);
}

#[test]
fn cross_org_cancel_and_templates() {
    let app = App::start();
    let m = M {
        app: &app,
        auth: format!("Bearer {}", app.token("acme")),
        doc: vendor_openapi("mixpeek-openapi.json").unwrap(),
    };
    let src = seeded(&m);
    // Cross-organization without the admin token: 403.
    let r = m.call(
        "POST",
        &format!("/v1/namespaces/{src}/clone"),
        Some(json!({"namespace_name": "x", "source_organization_id": "org_someoneelse"})),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    // Another organization cannot see it at all.
    let other = format!("Bearer {}", app.token("globex"));
    assert_eq!(
        app.request(
            "POST",
            &format!("/v1/namespaces/{src}/clone"),
            &[("authorization", &other)],
            Some(br#"{"namespace_name":"y"}"#)
        )
        .status,
        404
    );
    // The admin token may clone across organizations.
    let org = {
        let h = <sha2::Sha256 as sha2::Digest>::digest(b"mixpeek-org:acme");
        format!("org_{}", &hex::encode(h)[..16])
    };
    let admin = format!("Bearer {ADMIN_TOKEN}");
    let r = app.send_json(
        "POST",
        &format!("/v1/namespaces/{src}/clone"),
        &[("authorization", &admin)],
        &json!({"namespace_name": "by-admin", "source_organization_id": org}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // Cancel a physical copy while it runs: the partial namespace goes, and
    // its name is free.
    let r = m.ok(
        m.call(
            "POST",
            &format!("/v1/namespaces/{src}/clone"),
            Some(json!({"namespace_name": "doomed", "mode": "copy"})),
        ),
        "CloneNamespaceResponse",
    );
    assert_eq!(r["status"], "cloning", "{r}");
    assert_eq!(r["cloned_resources"], Value::Null);
    let task = r["task_id"].as_str().unwrap();
    assert_eq!(
        m.call("DELETE", &format!("/v1/tasks/{task}"), None).status,
        200
    );
    assert_eq!(
        m.ok(
            m.call("GET", &format!("/v1/tasks/{task}"), None),
            "TaskResponse"
        )["status"],
        "CANCELED"
    );
    assert_eq!(m.call("GET", "/v1/namespaces/doomed", None).status, 404);
    // Templates: configuration only.
    let t = m
        .call(
            "POST",
            &format!("/v1/templates/namespaces/from-namespace/{src}"),
            Some(json!({"name": "prod config"})),
        )
        .json();
    let tid = t["template_id"].as_str().unwrap();
    let ns = m.ok(
        m.call(
            "POST",
            &format!("/v1/templates/namespaces/{tid}/instantiate"),
            Some(json!({"namespace_name": "from-template"})),
        ),
        "NamespaceModel",
    );
    assert_eq!(
        (ns["document_count"].as_i64(), ns["status"].as_str()),
        (Some(0), Some("ready"))
    );
    assert_eq!(
        ns["payload_indexes"],
        m.call("GET", &format!("/v1/namespaces/{src}"), None).json()["payload_indexes"]
    );
    // Bad input.
    assert_eq!(
        m.call(
            "POST",
            &format!("/v1/namespaces/{src}/clone"),
            Some(json!({}))
        )
        .status,
        400
    );
    assert_eq!(
        m.call(
            "POST",
            &format!("/v1/namespaces/{src}/clone"),
            Some(json!({"namespace_name": "z", "include_resources": {"collections": "yes"}}))
        )
        .status,
        400
    );
    assert_eq!(
        m.call(
            "POST",
            "/v1/namespaces",
            Some(json!({"namespace_name": "n"}))
        )
        .status,
        400
    );
    assert_eq!(app.get("/v1/namespaces", &[]).status, 401);
}
