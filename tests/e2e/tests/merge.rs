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

/// Whether the parent shows all of the merge (`Some(true)`), none of it
/// (`Some(false)`), or a part (`None`).
fn shows_merge(app: &App, h: &[(&str, &str)], keys: usize) -> Option<bool> {
    let lines = ndjson(&app.get("/data/v1/resources/native:prod/export", h).body);
    let merged = lines.iter().filter(|l| l["body"].get("dev").is_some()).count();
    match merged {
        0 => Some(false),
        n if n == keys => Some(true),
        _ => None,
    }
}

#[test]
fn a_merge_in_chunks_shows_all_at_once_and_locks_both_sides_meanwhile() {
    let app = App::start_with(|o| {
        o.variables.insert("merge_chunk_keys".into(), "25".into());
    });
    let token = app.token("acme");
    let auth = format!("Bearer {token}");
    let h = [("authorization", auth.as_str())];
    let doc = serde_json::from_str::<Value>(&app.get("/data/v1/openapi.json", &[]).body).unwrap();
    assert_eq!(app.request("PUT", "/data/v1/resources/native:prod", &h, None).status, 201);
    let lines: String = (0..300)
        .map(|i| json!({"collection": "users", "key": format!("u{i:04}"), "body": {"i": i}}).to_string() + "\n")
        .collect();
    let r = app.request("POST", "/data/v1/resources/native:prod/import", &h, Some(lines.as_bytes()));
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app.send_json("POST", "/data/v1/resources/native:prod/clones", &h, &json!({"target": "native:dev"}));
    assert_eq!(r.status, 202, "{}", r.body);
    // The branch changes 120 keys (an import into it), the parent one other.
    let changes: String = (0..120)
        .map(|i| json!({"collection": "users", "key": format!("u{:04}", i * 2), "body": {"dev": i}}).to_string() + "\n")
        .collect();
    let r = app.request("POST", "/data/v1/resources/native:dev/import", &h, Some(changes.as_bytes()));
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app.request("PUT", "/data/v1/resources/native:prod/collections/users/records/u0299", &h, Some(b"{\"prod\":1}"));
    assert_eq!(r.status, 200, "{}", r.body);

    let r = app.send_json("POST", "/data/v1/resources/native:dev/merge", &h, &json!({"background": true}));
    assert_eq!(r.status, 202, "{}", r.body);
    let v = r.json();
    validate(&doc, "MergeStarted", &v).unwrap();
    assert_eq!((v["merge"]["state"].as_str(), v["merge"]["into"].as_str()), (Some("running"), Some("native:prod")), "{v}");
    // Both sides refuse writes while it runs; a second merge too.
    for r in ["native:dev", "native:prod"] {
        let w = app.request("PUT", &format!("/data/v1/resources/{r}/collections/users/records/x"), &h, Some(b"{}"));
        assert_eq!(w.status, 409, "{r}: {}", w.body);
        assert!(w.body.contains("merg"), "{}", w.body);
    }
    let again = app.send_json("POST", "/data/v1/resources/native:dev/merge", &h, &json!({}));
    assert_eq!(again.status, 409, "{}", again.body);
    assert_eq!(shows_merge(&app, &h, 120), Some(false));

    // The worker's ticks advance it a chunk of 25 keys at a time (so do
    // reads of its status); the parent shows none of it, then all.
    let mut chunks = 0;
    let run = loop {
        chunks += app.tick_report().unwrap()["merge_chunks"].as_i64().unwrap();
        let s = app.get("/data/v1/resources/native:dev/merge", &h);
        assert_eq!(s.status, 200, "{}", s.body);
        let run = s.json()["merge"].clone();
        validate(&doc, "MergeRun", &run).unwrap();
        let all = shows_merge(&app, &h, 120).expect("the parent shows a part of the merge");
        assert_eq!(all, run["state"] == "merged", "{run}");
        if run["state"] != "running" {
            break run;
        }
    };
    assert_eq!((run["applied"].as_i64(), run["examined"].as_i64()), (Some(120), Some(120)), "{run}");
    assert!(chunks >= 1, "the worker ran chunks: {chunks}");
    let lsn = run["lsn"].as_i64().unwrap();
    let r = app.get("/data/v1/resources/native:prod/collections/users/records/u0000", &h).json();
    assert_eq!(r["body"], json!({"dev": 0}));
    let r = app.get(&format!("/data/v1/resources/native:prod/collections/users/records/u0000?as_of={}", lsn - 1), &h).json();
    assert_eq!(r["body"], json!({"i": 0}), "before the merge's LSN none of it shows");
    let r = app.get("/data/v1/resources/native:prod/collections/users/records/u0299", &h).json();
    assert_eq!(r["body"], json!({"prod": 1}), "the parent's own change stays");
    let dev = app.get("/data/v1/resources/native:dev", &h).json();
    assert_eq!(dev["merge_base"].as_i64(), Some(lsn), "{dev}");
    // Both sides take writes again.
    for r in ["native:dev", "native:prod"] {
        let w = app.request("PUT", &format!("/data/v1/resources/{r}/collections/users/records/x"), &h, Some(b"{}"));
        assert_eq!(w.status, 200, "{r}: {}", w.body);
    }

    // A conflict ends one with nothing merged; the CLI lists it, exit 3.
    let r = app.request("PUT", "/data/v1/resources/native:dev/collections/users/records/u0001", &h, Some(b"{\"dev\":\"x\"}"));
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app.request("PUT", "/data/v1/resources/native:prod/collections/users/records/u0001", &h, Some(b"{\"prod\":\"x\"}"));
    assert_eq!(r.status, 200, "{}", r.body);
    let (ok, said, stderr) = spinoff(&app, &token, &["merge", "native:dev", "--background"]);
    assert!(!ok && stderr.contains("1 conflicts"), "{said}\n{stderr}");
    assert_eq!(ndjson(&said).len(), 1, "{said}");
    assert_eq!(app.get("/data/v1/resources/native:dev/merge", &h).json()["merge"]["state"], "conflicts");
    // With a strategy the CLI follows it to the end (reads advance it).
    let (ok, said, stderr) = spinoff(&app, &token, &["merge", "native:dev", "--background", "--strategy", "ours"]);
    assert!(ok, "{said}\n{stderr}");
    assert!(said.contains("merged into native:prod") && said.contains("1 keys written"), "{said}");
    let r = app.get("/data/v1/resources/native:prod/collections/users/records/u0001", &h).json();
    assert_eq!(r["body"], json!({"dev": "x"}));

    // Cancel: nothing shows; none to cancel after.
    let r = app.request("PUT", "/data/v1/resources/native:dev/collections/users/records/u0003", &h, Some(b"{\"dev\":3}"));
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app.send_json("POST", "/data/v1/resources/native:dev/merge", &h, &json!({"background": true}));
    assert_eq!(r.status, 202, "{}", r.body);
    let r = app.request("DELETE", "/data/v1/resources/native:dev/merge", &h, None);
    assert_eq!((r.status, r.json()["merge"]["state"].as_str()), (200, Some("canceled")), "{}", r.body);
    let r = app.request("DELETE", "/data/v1/resources/native:dev/merge", &h, None);
    assert_eq!(r.status, 409, "{}", r.body);
    let r = app.get("/data/v1/resources/native:prod/collections/users/records/u0003", &h).json();
    assert_eq!(r["body"], json!({"i": 3}));
    // Bad input and other tenants.
    let r = app.send_json("POST", "/data/v1/resources/native:dev/merge", &h, &json!({"background": "yes"}));
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(app.get("/data/v1/resources/native:prod/merge", &h).status, 404, "never merged");
    let other = app.token("globex");
    let r = app.get("/data/v1/resources/native:dev/merge", &[("authorization", &format!("Bearer {other}"))]);
    assert_eq!(r.status, 404, "another tenant's: {}", r.body);
}
