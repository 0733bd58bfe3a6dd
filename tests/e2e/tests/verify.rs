//! `POST /data/v1/resources/{ref}/verify` and `spinoff verify`: an fsck of
//! one resource, as an operation advanced in bounded chunks (here by reads
//! of the operation, as the CLI does, and by the worker). Clean on a sound
//! resource; statistics that disagree with the data are reported, and the
//! CLI exits non-zero.

use spinoff_e2e::*;

#[test]
fn verify_is_clean_on_a_sound_resource_and_reports_statistics_that_disagree() {
    let app = App::start();
    let token = app.token("acme");
    let auth = format!("Bearer {token}");
    let h = [("authorization", auth.as_str())];
    assert_eq!(
        app.request("PUT", "/data/v1/resources/native:src", &h, None)
            .status,
        201
    );
    let lines: String = (0..3_000)
        .map(|i| {
            let collection = ["a", "b", "c"][i % 3];
            json!({"collection": collection, "key": format!("k{i:05}"), "body": {"i": i}})
                .to_string()
                + "\n"
        })
        .collect();
    let r = app.request(
        "POST",
        "/data/v1/resources/native:src/import",
        &h,
        Some(lines.as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app.send_json(
        "POST",
        "/data/v1/resources/native:src/clones",
        &h,
        &json!({"target": "native:br"}),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let r = app.request(
        "DELETE",
        "/data/v1/resources/native:br/collections/a/records/k00000",
        &h,
        None,
    );
    assert!(r.status < 300, "{}", r.body);

    // The route: an operation of kind verify, its report once it ends.
    let r = app.request("POST", "/data/v1/resources/native:br/verify", &h, None);
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(r.json()["kind"], "verify");
    let mut op = r.json();
    for _ in 0..200 {
        if op["status"] == "succeeded" {
            break;
        }
        op = app.get(&format!("/data/v1/operations/{id}"), &h).json();
    }
    assert_eq!(op["status"], "succeeded", "{op}");
    assert_eq!(op["report"]["clean"], true, "{op}");
    assert_eq!(
        op["report"]["collections"]["a"]["counted"]["records"], 999,
        "{op}"
    );

    // The CLI: clean, exit 0.
    let (ok, out, err) = spinoff(&app, &token, &["verify", "native:src"]);
    assert!(ok, "{out}{err}");
    assert!(err.contains("clean"), "{err}");
    assert!(out.contains("a: 1000 records"), "{out}");

    // Statistics that disagree with the data (what the integrity bug left:
    // counts of records that were gone) are reported; exit non-zero.
    let db = app.database();
    db.execute(
        "UPDATE collection_stats SET records = records + 7 WHERE collection = 'b' \
         AND container = (SELECT id FROM containers WHERE name = 'src' AND family = 'native')",
        &[],
    )
    .unwrap();
    let (ok, out, err) = spinoff(&app, &token, &["verify", "native:src"]);
    assert!(!ok, "verify passed statistics that disagree: {out}{err}");
    assert!(
        err.contains(
            "problem: collection b: the statistics count 1007 records, the data holds 1000"
        ),
        "{err}"
    );
}
