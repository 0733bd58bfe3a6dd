//! `POST /data/v1/resources/{ref}/reset` and `spinoff reset`: a branch
//! reads its parent again under the same ref; reads before the reset still
//! answer what it was; protection needs force; bad input is a clear 4xx.

use spinoff_e2e::*;

#[test]
fn a_branch_is_reset_to_its_parent_and_keeps_its_past() {
    let app = App::start();
    let token = app.token("acme");
    let auth = format!("Bearer {token}");
    let h = [("authorization", auth.as_str())];
    let doc = serde_json::from_str::<Value>(&app.get("/data/v1/openapi.json", &[]).body).unwrap();
    assert_eq!(app.request("PUT", "/data/v1/resources/native:prod", &h, None).status, 201);
    let lines: String = (0..2_000)
        .map(|i| json!({"collection": "users", "key": format!("u{i:04}"), "body": {"i": i}}).to_string() + "\n")
        .collect();
    let r = app.request("POST", "/data/v1/resources/native:prod/import", &h, Some(lines.as_bytes()));
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app.send_json("POST", "/data/v1/resources/native:prod/clones", &h, &json!({"target": "native:staging"}));
    assert_eq!(r.status, 202, "{}", r.body);
    let put = |r: &str, k: &str, body: Value| {
        let reply = app.request("PUT", &format!("/data/v1/resources/{r}/collections/users/records/{k}"), &h, Some(body.to_string().as_bytes()));
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()["lsn"].as_i64().unwrap()
    };
    let mine = put("native:staging", "u0000", json!({"staging": true}));
    put("native:prod", "u0001", json!({"prod": 2}));
    let before = app.get("/data/v1/resources/native:staging/export", &h).body;

    // Reset through the CLI.
    let (ok, said, stderr) = spinoff(&app, &token, &["reset", "native:staging"]);
    assert!(ok, "{stderr}");
    let reset_lsn: i64 = said.trim().rsplit(' ').next().unwrap().parse().expect(&said);
    assert!(reset_lsn > mine);

    // It reads the parent's head now, under the same ref.
    assert_eq!(
        app.get("/data/v1/resources/native:staging/export", &h).body,
        app.get("/data/v1/resources/native:prod/export", &h).body
    );
    let r = app.get("/data/v1/resources/native:staging/collections/users/records/u0000", &h);
    assert_eq!(r.json()["body"], json!({"i": 0}), "{}", r.body);
    // Before the reset, it answers what it was.
    let r = app.get(&format!("/data/v1/resources/native:staging/export?as_of={}", reset_lsn - 1), &h);
    assert_eq!(r.body, before);
    let r = app.get(&format!("/data/v1/resources/native:staging/collections/users/records/u0000?as_of={mine}"), &h);
    assert_eq!(r.json()["body"], json!({"staging": true}), "{}", r.body);
    // It takes writes at once; the diff against its parent is what it wrote.
    put("native:staging", "u0002", json!({"after": true}));
    let d = app.get("/data/v1/resources/native:staging/diff", &h).body;
    assert_eq!(ndjson(&d).len(), 2, "{d}");

    // To an LSN of the parent, through the API, the answer as documented.
    let r = app.send_json("POST", "/data/v1/resources/native:staging/reset", &h, &json!({"to": mine}));
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    validate(&doc, "Resource", &v).unwrap();
    assert!(v["reset_lsn"].as_i64().unwrap() > reset_lsn);
    let r = app.get("/data/v1/resources/native:staging/collections/users/records/u0001", &h);
    assert_eq!(r.json()["body"], json!({"i": 1}), "the parent before its write: {}", r.body);

    // Protected: only with force.
    app.send_json("PATCH", "/data/v1/resources/native:staging", &h, &json!({"protected": true}));
    let r = app.send_json("POST", "/data/v1/resources/native:staging/reset", &h, &json!({}));
    assert_eq!(r.status, 423, "{}", r.body);
    let r = app.send_json("POST", "/data/v1/resources/native:staging/reset", &h, &json!({"force": true}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["protected"], true);

    // Bad input: clear 4xx, never a 5xx.
    let r = app.request("POST", "/data/v1/resources/native:prod/reset", &h, None);
    assert_eq!(r.status, 422, "a resource cloned from nothing: {}", r.body);
    let r = app.send_json("POST", "/data/v1/resources/native:staging/reset", &h, &json!({"to": true, "force": true}));
    assert_eq!(r.status, 422, "{}", r.body);
    let r = app.send_json("POST", "/data/v1/resources/native:staging/reset", &h, &json!({"to": 1_000_000_000, "force": true}));
    assert_eq!(r.status, 422, "{}", r.body);
    let r = app.send_json("POST", "/data/v1/resources/native:staging/reset", &h, &json!({"hard": true}));
    assert_eq!(r.status, 400, "{}", r.body);
    let r = app.request("POST", "/data/v1/resources/native:nope/reset", &h, None);
    assert_eq!(r.status, 404, "{}", r.body);
    // Deleting it works, and frees what it was.
    app.send_json("PATCH", "/data/v1/resources/native:staging", &h, &json!({"protected": false}));
    assert_eq!(app.request("DELETE", "/data/v1/resources/native:staging", &h, None).status, 204);
}
