//! `POST /data/v1/resources/{ref}/merge`, its conflicts' pages and
//! `spinoff merge`: a branch's changes land on its parent at one LSN;
//! conflicts answer 409 with every key listed (paged) and nothing merged,
//! until a strategy resolves them; a protected parent accepts merges;
//! bad input is a clear 4xx.

use spinoff_e2e::*;

#[test]
fn a_branch_merges_back_with_conflicts_detected() {
    let app = App::start();
    let token = app.token("acme");
    let auth = format!("Bearer {token}");
    let h = [("authorization", auth.as_str())];
    let doc = serde_json::from_str::<Value>(&app.get("/data/v1/openapi.json", &[]).body).unwrap();
    assert_eq!(app.request("PUT", "/data/v1/resources/native:prod", &h, None).status, 201);
    let lines: String = (0..500)
        .map(|i| json!({"collection": "users", "key": format!("u{i:04}"), "body": {"i": i}}).to_string() + "\n")
        .collect();
    let r = app.request("POST", "/data/v1/resources/native:prod/import", &h, Some(lines.as_bytes()));
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app.send_json("POST", "/data/v1/resources/native:prod/clones", &h, &json!({"target": "native:dev"}));
    assert_eq!(r.status, 202, "{}", r.body);
    let put = |r: &str, k: &str, body: Value| {
        let reply = app.request("PUT", &format!("/data/v1/resources/{r}/collections/users/records/{k}"), &h, Some(body.to_string().as_bytes()));
        assert_eq!(reply.status, 200, "{}", reply.body);
    };
    let get = |r: &str, k: &str| app.get(&format!("/data/v1/resources/{r}/collections/users/records/{k}"), &h);
    // Three conflicting keys, one clean change on each side.
    for k in ["u0001", "u0002", "u0003"] {
        put("native:dev", k, json!({"dev": k}));
        put("native:prod", k, json!({"prod": k}));
    }
    put("native:dev", "u0010", json!({"dev": 10}));
    put("native:prod", "u0020", json!({"prod": 20}));
    let r = app.request("DELETE", "/data/v1/resources/native:dev/collections/users/records/u0030", &h, None);
    assert_eq!(r.status, 200, "{}", r.body);
    app.send_json("PATCH", "/data/v1/resources/native:prod", &h, &json!({"protected": true}));
    let prod_before = app.get("/data/v1/resources/native:prod/export", &h).body;

    // Conflicts: 409, paged, nothing merged.
    let r = app.send_json("POST", "/data/v1/resources/native:dev/merge", &h, &json!({"limit": 2}));
    assert_eq!(r.status, 409, "{}", r.body);
    let v = r.json();
    validate(&doc, "MergeConflicts", &v).unwrap();
    assert_eq!(v["conflicts"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(v["conflicts"][0], json!({"collection": "users", "key": "u0001", "ours": {"dev": "u0001"}, "theirs": {"prod": "u0001"}}));
    let next = &v["next"];
    let r = app.get(
        &format!("/data/v1/resources/native:dev/merge/conflicts?after_collection=users&after_key={}", next["key"].as_str().unwrap()),
        &h,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let keys: Vec<Value> = r.json()["conflicts"].as_array().unwrap().iter().map(|x| x["key"].clone()).collect();
    assert_eq!(keys, vec![json!("u0003")]);
    assert_eq!(app.get("/data/v1/resources/native:prod/export", &h).body, prod_before);
    // The CLI lists every one of them and exits 3.
    let (ok, said, stderr) = spinoff(&app, &token, &["merge", "native:dev"]);
    assert!(!ok && stderr.contains("3 conflicts"), "{said}\n{stderr}");
    assert_eq!(ndjson(&said).len(), 3, "{said}");

    // theirs: the parent keeps its three, takes the rest at one LSN; a
    // protected parent accepts it.
    let (ok, said, stderr) = spinoff(&app, &token, &["merge", "native:dev", "--strategy", "theirs"]);
    assert!(ok, "{stderr}");
    assert!(said.contains("2 keys written, 3 conflicts resolved"), "{said}");
    assert_eq!(get("native:prod", "u0001").json()["body"], json!({"prod": "u0001"}));
    let r = get("native:prod", "u0010");
    assert_eq!(r.json()["body"], json!({"dev": 10}));
    let at = r.json()["lsn"].as_i64().unwrap();
    assert_eq!(get("native:prod", "u0030").status, 404);
    assert_eq!(get("native:prod", "u0020").json()["body"], json!({"prod": 20}));
    let r = app.get(&format!("/data/v1/resources/native:prod/collections/users/records/u0030?as_of={}", at - 1), &h);
    assert_eq!(r.status, 200, "before the merge's LSN, none of it: {}", r.body);

    // The branch goes on; ours on the next conflict, through the API.
    app.send_json("PATCH", "/data/v1/resources/native:prod", &h, &json!({"protected": false}));
    put("native:dev", "u0001", json!({"dev": "again"}));
    put("native:prod", "u0001", json!({"prod": "again"}));
    let r = app.send_json("POST", "/data/v1/resources/native:dev/merge", &h, &json!({"strategy": "ours"}));
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    validate(&doc, "MergeResult", &v).unwrap();
    assert_eq!((v["applied"].as_i64(), v["resolved"].as_i64()), (Some(1), Some(1)), "{v}");
    assert_eq!(get("native:prod", "u0001").json()["body"], json!({"dev": "again"}));
    // Nothing more to merge.
    let r = app.send_json("POST", "/data/v1/resources/native:dev/merge", &h, &json!({}));
    assert_eq!((r.status, r.json()["lsn"].clone()), (200, Value::Null), "{}", r.body);
    // The diff against the parent is the one key the parent kept.
    let d = app.get("/data/v1/resources/native:dev/diff", &h).body;
    assert_eq!(ndjson(&d).len(), 4, "u0002, u0003 (the parent kept its own), u0020 (the parent changed it) and the summary: {d}");

    // Bad input: clear 4xx, never a 5xx.
    let r = app.send_json("POST", "/data/v1/resources/native:dev/merge", &h, &json!({"strategy": "mine"}));
    assert_eq!(r.status, 422, "{}", r.body);
    let r = app.send_json("POST", "/data/v1/resources/native:dev/merge", &h, &json!({"limit": 0}));
    assert_eq!(r.status, 422, "{}", r.body);
    let r = app.send_json("POST", "/data/v1/resources/native:dev/merge", &h, &json!({"into": "x"}));
    assert_eq!(r.status, 400, "{}", r.body);
    let r = app.request("POST", "/data/v1/resources/native:prod/merge", &h, None);
    assert_eq!(r.status, 422, "a resource cloned from nothing: {}", r.body);
    let r = app.get("/data/v1/resources/native:dev/merge/conflicts?after_key=u1", &h);
    assert_eq!(r.status, 422, "{}", r.body);
    let r = app.request("POST", "/data/v1/resources/native:nope/merge", &h, None);
    assert_eq!(r.status, 404, "{}", r.body);
    let other = app.token("globex");
    let r = app.request("POST", "/data/v1/resources/native:dev/merge", &[("authorization", &format!("Bearer {other}"))], None);
    assert_eq!(r.status, 404, "another tenant's: {}", r.body);
}
