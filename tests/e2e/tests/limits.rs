//! Per-tenant limits: over a quota 403 (409 for active operations), over a
//! rate 429 with Retry-After; the message names the limit's variable; every
//! family answers in its own error shape; nothing is half done.

use spinoff_e2e::*;

fn app_with(limits: &[(&str, &str)]) -> App {
    let limits: Vec<(String, String)> = limits
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    App::start_with(move |o| {
        for (k, v) in limits {
            o.variables.insert(k, v);
        }
    })
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// `limit_writes_per_minute` counts per clock minute: two imports meant to
/// share a minute must not straddle its end. Waits for the next minute when
/// fewer than 10 s of this one are left.
fn early_in_a_clock_minute() {
    let into = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        % 60_000;
    if into > 50_000 {
        std::thread::sleep(std::time::Duration::from_millis(
            (60_000 - into + 200) as u64,
        ));
    }
}

#[test]
fn the_data_api_refuses_over_its_limits_with_nothing_done() {
    let app = app_with(&[
        ("limit_writes_per_minute", "100"),
        ("limit_resources", "3"),
        ("limit_active_operations", "1"),
    ]);
    let t = app.token("acme");
    let a = bearer(&t);
    let h = [("authorization", a.as_str())];
    assert_eq!(
        app.send_json("PUT", "/data/v1/resources/native:src", &h, &json!({}))
            .status,
        201
    );
    let lines = |n: usize, from: usize| -> String {
        (from..from + n)
            .map(|i| {
                format!(
                    "{}\n",
                    json!({"collection": "c", "key": format!("k{i}"), "body": {"i": i}})
                )
            })
            .collect()
    };
    early_in_a_clock_minute();
    let r = app.request(
        "POST",
        "/data/v1/resources/native:src/import",
        &h,
        Some(lines(60, 0).as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // 60 + 60 > 100 writes this minute: 429, Retry-After, nothing imported.
    let r = app.request(
        "POST",
        "/data/v1/resources/native:src/import",
        &h,
        Some(lines(60, 60).as_bytes()),
    );
    assert_eq!(r.status, 429, "{}", r.body);
    let retry: i64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(r.json()["error"], "rate_limited");
    assert_eq!(r.json()["limit"], "limit_writes_per_minute");
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("limit_writes_per_minute"));
    let export = app.get("/data/v1/resources/native:src/export", &h);
    assert_eq!(
        export.body.lines().count(),
        60,
        "nothing of the refused import"
    );

    // One active operation at a time: the second start is a 409 and leaves
    // no target behind. (Physical copies: a branch ends as it starts.)
    let c1 = app.send_json(
        "POST",
        "/data/v1/resources/native:src/clones",
        &h,
        &json!({"target": "native:c1", "mode": "copy"}),
    );
    assert_eq!(c1.status, 202, "{}", c1.body);
    let c2 = app.send_json(
        "POST",
        "/data/v1/resources/native:src/clones",
        &h,
        &json!({"target": "native:c2", "mode": "copy"}),
    );
    assert_eq!(c2.status, 409, "{}", c2.body);
    assert_eq!(c2.json()["limit"], "limit_active_operations");
    assert_eq!(app.get("/data/v1/resources/native:c2", &h).status, 404);
    app.http_tick();

    // Three resources (src, c1, one more); the fourth is a 403.
    assert_eq!(
        app.send_json("PUT", "/data/v1/resources/native:r3", &h, &json!({}))
            .status,
        201
    );
    let r = app.send_json("PUT", "/data/v1/resources/native:r4", &h, &json!({}));
    assert_eq!(
        over_resource_quota(&r, "/message")["error"],
        "quota_exceeded"
    );
    assert_eq!(r.header("retry-after"), None);
    // Another tenant has its own allowance.
    let o = bearer(&app.token("other"));
    let r = app.send_json(
        "PUT",
        "/data/v1/resources/native:r4",
        &[("authorization", o.as_str())],
        &json!({}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
}

/// A 403 whose message (at the JSON pointer `message`) names limit_resources.
fn over_resource_quota(r: &Reply, message: &str) -> Value {
    assert_eq!(r.status, 403, "{}", r.body);
    let v = r.json();
    let text = v
        .pointer(message)
        .and_then(Value::as_str)
        .unwrap_or_default();
    assert!(text.contains("limit_resources"), "{v}");
    v
}

#[test]
fn every_vendor_family_answers_a_quota_in_its_own_error_shape() {
    let app = app_with(&[("limit_resources", "1")]);
    let create = |method: &str, path: &str, h: &[(&str, &str)], body: &Value| {
        app.send_json(method, path, h, body)
    };

    // Typesense: {"success": false, "error", "message"}.
    let t = app.token("typesense");
    let h = [("x-typesense-cloud-management-api-key", t.as_str())];
    let body = json!({"memory": "1_gb", "vcpu": "2_vcpus", "regions": ["oregon"], "typesense_server_version": "27.1", "name": "c"});
    assert_eq!(create("POST", "/api/v1/clusters", &h, &body).status, 201);
    let v = over_resource_quota(&create("POST", "/api/v1/clusters", &h, &body), "/message");
    assert_eq!(v["success"], false);

    // Mixpeek: {"success": false, "status", "error": {"message", "type"}}.
    let m = bearer(&app.token("mixpeek"));
    let h = [("authorization", m.as_str())];
    let body = json!({"namespace_name": "first",
        "feature_extractors": [{"feature_extractor_name": "text_extractor", "version": "v1"}]});
    assert_eq!(create("POST", "/v1/namespaces", &h, &body).status, 200);
    let mut second = body.clone();
    second["namespace_name"] = json!("second");
    let v = over_resource_quota(
        &create("POST", "/v1/namespaces", &h, &second),
        "/error/message",
    );
    assert_eq!(
        (v["success"].clone(), v["status"].clone()),
        (json!(false), json!(403))
    );

    // Timescale: {"code", "message"}.
    let s = bearer(&app.token("timescale"));
    let h = [("authorization", s.as_str())];
    let body = json!({"name": "m", "region_code": "eu-central-1", "cpu_millis": "1000", "memory_gbs": "4"});
    let path = "/public/api/v1/projects/p/services";
    assert_eq!(create("POST", path, &h, &body).status, 202);
    let v = over_resource_quota(&create("POST", path, &h, &body), "/message");
    assert_eq!(v["code"], "QUOTA_EXCEEDED");

    // Sanity: {"statusCode", "error", "message"}.
    let y = bearer(&app.token("sanity"));
    let h = [("authorization", y.as_str())];
    assert_eq!(
        create("PUT", "/v1/projects/p1/datasets/one", &h, &json!({})).status,
        200
    );
    let r = create("PUT", "/v1/projects/p1/datasets/two", &h, &json!({}));
    let v = over_resource_quota(&r, "/message");
    assert_eq!(
        (v["statusCode"].clone(), v["error"].clone()),
        (json!(403), json!("Forbidden"))
    );

    // Qovery: {"status", "error", "message"} (its environments are not resources).
    let q = format!("Token {}", app.token("qovery"));
    let h = [("authorization", q.as_str())];
    let env = create(
        "POST",
        "/project/proj/environment",
        &h,
        &json!({"name": "prod", "mode": "STAGING"}),
    );
    assert_eq!(env.status, 201, "{}", env.body);
    let path = format!(
        "/environment/{}/database",
        env.json()["id"].as_str().unwrap()
    );
    let db = |name: &str| json!({"name": name, "type": "POSTGRESQL", "version": "16", "mode": "CONTAINER", "accessibility": "PUBLIC"});
    assert_eq!(create("POST", &path, &h, &db("Orders")).status, 201);
    let v = over_resource_quota(&create("POST", &path, &h, &db("Two")), "/message");
    assert_eq!(
        (v["status"].clone(), v["error"].clone()),
        (json!(403), json!("Forbidden"))
    );
}
