//! Protected resources (`PATCH /data/v1/resources/{ref}` `{"protected":
//! true}`, `spinoff protect`): every direct write path answers 423 and
//! changes nothing — record puts and deletes, bulk and staged imports, the
//! resource's deletion, a vendor family's own writes — while reads, exports
//! and clones go on; unprotected, it takes writes again.

use spinoff_e2e::*;

#[test]
fn a_protected_resource_refuses_every_direct_write_and_keeps_its_data() {
    let app = App::start();
    let token = app.token("acme");
    let auth = format!("Bearer {token}");
    let h = [("authorization", auth.as_str())];
    let doc = serde_json::from_str::<Value>(
        &app.get("/data/v1/openapi.json", &[]).body,
    )
    .unwrap();
    assert_eq!(
        app.request("PUT", "/data/v1/resources/native:prod", &h, None)
            .status,
        201
    );
    let lines: String = (0..50)
        .map(|i| json!({"collection": "users", "key": format!("u{i:02}"), "body": {"i": i}}).to_string() + "\n")
        .collect();
    let r = app.request(
        "POST",
        "/data/v1/resources/native:prod/import",
        &h,
        Some(lines.as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let before = app
        .get("/data/v1/resources/native:prod/export", &h)
        .body;

    // Protect it through the CLI; the resource says so.
    let (ok, out, err) = spinoff(&app, &token, &["protect", "native:prod"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("is protected"), "{out}");
    let r = app.get("/data/v1/resources/native:prod", &h);
    assert_eq!(r.json()["protected"], true, "{}", r.body);
    validate(&doc, "Resource", &r.json()).unwrap();

    // Every direct write path: 423, the error body as documented.
    let refused = [
        ("PUT", "/data/v1/resources/native:prod/collections/users/records/u00", Some(r#"{"x":1}"#)),
        ("PUT", "/data/v1/resources/native:prod/collections/users/records/new", Some(r#"{"x":1}"#)),
        ("DELETE", "/data/v1/resources/native:prod/collections/users/records/u01", None),
        ("POST", "/data/v1/resources/native:prod/import", Some(r#"{"collection":"users","key":"z","body":{}}"#)),
        ("POST", "/data/v1/resources/native:prod/imports", None),
        ("DELETE", "/data/v1/resources/native:prod", None),
    ];
    for (method, path, body) in refused {
        let r = app.request(method, path, &h, body.map(str::as_bytes));
        assert_eq!(r.status, 423, "{method} {path}: {}", r.body);
        let e = r.json();
        validate(&doc, "Error", &e).unwrap();
        assert_eq!(e["error"], "protected", "{}", r.body);
        assert!(e["message"].as_str().unwrap().contains("protected"), "{}", r.body);
    }
    // Nothing changed; reads, exports and clones go on.
    assert_eq!(
        app.get("/data/v1/resources/native:prod/export", &h).body,
        before
    );
    let r = app.get("/data/v1/resources/native:prod/collections/users/records/u01", &h);
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app.send_json(
        "POST",
        "/data/v1/resources/native:prod/clones",
        &h,
        &json!({"target": "native:staging"}),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    // The clone is not protected: it takes writes.
    let r = app.request(
        "PUT",
        "/data/v1/resources/native:staging/collections/users/records/u00",
        &h,
        Some(br#"{"x":2}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);

    // Unprotected, it takes writes and can be deleted again.
    let (ok, out, err) = spinoff(&app, &token, &["unprotect", "native:prod"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("not protected"), "{out}");
    let r = app.request(
        "PUT",
        "/data/v1/resources/native:prod/collections/users/records/u00",
        &h,
        Some(br#"{"x":1}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // Bad input to the PATCH is a 400 naming the field, never a 5xx.
    let r = app.request(
        "PATCH",
        "/data/v1/resources/native:prod",
        &h,
        Some(br#"{"protected":"yes"}"#),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("protected"), "{}", r.body);
    let r = app.request(
        "PATCH",
        "/data/v1/resources/native:prod",
        &h,
        Some(br#"{"locked":true}"#),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        app.request("DELETE", "/data/v1/resources/native:prod", &h, None)
            .status,
        204
    );
}

#[test]
fn an_import_opened_before_the_protection_cannot_commit_into_it() {
    let app = App::start();
    let token = app.token("acme");
    let auth = format!("Bearer {token}");
    let h = [("authorization", auth.as_str())];
    app.request("PUT", "/data/v1/resources/native:prod", &h, None);
    let r = app.request("POST", "/data/v1/resources/native:prod/imports", &h, None);
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_string();
    let r = app.send_json(
        "PATCH",
        "/data/v1/resources/native:prod",
        &h,
        &json!({"protected": true}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app.request(
        "POST",
        &format!("/data/v1/resources/native:prod/imports/{id}/lines"),
        &h,
        Some(br#"{"collection":"a","key":"k","body":{}}"#),
    );
    assert_eq!(r.status, 423, "{}", r.body);
    let r = app.request(
        "POST",
        &format!("/data/v1/resources/native:prod/imports/{id}/commit"),
        &h,
        None,
    );
    assert_eq!(r.status, 423, "{}", r.body);
    let r = app.get("/data/v1/resources/native:prod/export", &h);
    assert_eq!(r.body, "", "nothing of the import shows");
}

#[test]
fn a_vendor_familys_own_writes_are_refused_in_its_shape() {
    let app = App::start();
    let token = app.token("acme");
    let bearer = format!("Bearer {token}");
    let h = [("authorization", bearer.as_str())];
    // A Sanity dataset, protected through the data API by its ref.
    let r = app.send_json("PUT", "/v1/projects/p1/datasets/prod", &h, &json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    // The dataset's resource ref: `sanity:<project>:<dataset>`.
    let dataset = "sanity:p1:prod";
    let r = app.send_json(
        "PATCH",
        &format!("/data/v1/resources/{dataset}"),
        &h,
        &json!({"protected": true}),
    );
    assert_eq!(r.status, 200, "{dataset}: {}", r.body);
    let r = app.send_json(
        "POST",
        "/v2021-06-07/data/mutate/prod",
        &[("authorization", bearer.as_str()), ("host", "p1.api.example.com")],
        &json!({"mutations": [{"create": {"_id": "a", "_type": "t"}}]}),
    );
    assert_eq!(r.status, 423, "{}", r.body);
    // Sanity's error shape: {statusCode, error, message}.
    let e = r.json();
    assert_eq!(e["statusCode"], 423, "{}", r.body);
    assert!(e["message"].as_str().unwrap().contains("protected"), "{}", r.body);
}
