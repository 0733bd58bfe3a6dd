//! The Sanity-shaped family end to end.

use spinoff_e2e::*;

fn setup(app: &App) -> (String, String) {
    let token = app.token("acme");
    let auth = format!("Bearer {token}");
    let r = app.send_json(
        "PUT",
        "/v1/projects/proj1/datasets/production",
        &[("authorization", &auth)],
        &json!({"aclMode": "private"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"datasetName": "production", "aclMode": "private"})
    );
    // 5 000 documents, 3 versions each.
    for v in 0..3 {
        let lines: String = (0..5000)
            .map(|i| format!("{}\n", json!({"collection": (if i % 2 == 0 { "post" } else { "author" }), "key": format!("doc-{i}"),
                "body": {"_id": format!("doc-{i}"), "_type": (if i % 2 == 0 { "post" } else { "author" }), "rev": v}})))
            .collect();
        let r = app.request(
            "POST",
            "/data/v1/resources/sanity:proj1:production/import",
            &[("authorization", &auth)],
            Some(lines.as_bytes()),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
    (token, auth)
}

fn export(app: &App, auth: &str, dataset: &str) -> Vec<String> {
    let mut v: Vec<String> = app
        .get(
            &format!("/data/v1/resources/sanity:proj1:{dataset}/export"),
            &[("authorization", auth)],
        )
        .body
        .lines()
        .map(String::from)
        .collect();
    v.sort();
    v
}

/// An app whose copies are physical (the Spin variable `clone_mode`).
fn copy_app() -> App {
    App::start_with(|o| {
        o.variables.insert("clone_mode".into(), "copy".into());
    })
}

/// The default: the copy is a copy-on-write branch, its job `completed` as
/// soon as the start answers.
#[test]
fn copy_with_and_without_history_and_listen_to_the_job() {
    copy_flow(App::start(), false);
}

/// `clone_mode = "copy"`: the job reports its progress while the data is
/// copied.
#[test]
fn a_physical_copy_reports_progress_while_it_runs() {
    copy_flow(copy_app(), true);
}

fn copy_flow(app: App, copy: bool) {
    let (_, auth) = setup(&app);
    let before = export(&app, &auth, "production");

    // Full copy, followed with listen (no Authorization: the job id is the credential).
    let r = app.send_json(
        "PUT",
        "/v1/projects/proj1/datasets/production/copy",
        &[("authorization", &auth)],
        &json!({"targetDataset": "staging"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let started = r.json();
    assert_eq!(started["datasetName"], "production");
    assert_eq!(
        started["message"],
        "Starting copying dataset production to staging..."
    );
    assert_eq!(started["aclMode"], "private");
    let job = started["jobId"].as_str().unwrap().to_string();
    assert_eq!(job.len(), 32);
    if !copy {
        // A branch: the job has completed when its start answers.
        let status = app.get(&format!("/v1/jobs/{job}"), &[]).json();
        assert_eq!(status["state"], "completed", "{status}");
    }
    // A write after the start never reaches the copy.
    app.send_json(
        "PUT",
        "/data/v1/resources/sanity:proj1:production/collections/post/records/doc-0",
        &[("authorization", &auth)],
        &json!({"rev": 99}),
    );
    let events: Vec<SseEvent> =
        SseReader::open(&app, &format!("/v2021-06-07/jobs/{job}/listen"), &[]).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(kinds[0], "welcome");
    assert!(serde_json::from_str::<Value>(&events[0].data).unwrap()["listener_id"].is_string());
    assert_eq!(*kinds.last().unwrap(), "done");
    let jobs: Vec<Value> = events
        .iter()
        .filter(|e| e.event == "job")
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect();
    if copy {
        assert!(jobs.len() >= 3, "{kinds:?}");
    } else {
        assert!(!jobs.is_empty(), "{kinds:?}");
    }
    let progress: Vec<i64> = jobs
        .iter()
        .map(|j| j["progress"].as_i64().unwrap())
        .collect();
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
    assert_eq!(jobs.last().unwrap()["state"], "completed");
    assert_eq!(*progress.last().unwrap(), 100);
    let status = app.get(&format!("/v1/jobs/{job}"), &[]).json();
    assert_eq!(status["state"], "completed");
    assert_eq!(status["id"], job.as_str());
    assert_eq!(export(&app, &auth, "staging"), before);
    assert_ne!(export(&app, &auth, "production"), before);
    let hist = |d: &str| {
        app.get(
            &format!(
                "/data/v1/resources/sanity:proj1:{d}/collections/author/records/doc-1/history"
            ),
            &[("authorization", &auth)],
        )
        .json()["versions"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!((hist("production"), hist("staging")), (3, 3));

    // skipHistory: only the live version of each document.
    let r = app.send_json(
        "PUT",
        "/v1/projects/proj1/datasets/production/copy",
        &[("authorization", &auth)],
        &json!({"targetDataset": "flat", "skipHistory": true}),
    );
    let job2 = r.json()["jobId"].as_str().unwrap().to_string();
    let done: Vec<SseEvent> =
        SseReader::open(&app, &format!("/v1/jobs/{job2}/listen"), &[]).collect();
    assert_eq!(done.last().unwrap().event, "done");
    assert_eq!(hist("flat"), 1);
    assert_eq!(export(&app, &auth, "flat").len(), 5000);

    // The copy list.
    let list = app
        .get(
            "/v1/projects/proj1/datasets/copy?limit=1",
            &[("authorization", &auth)],
        )
        .json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    let all = app
        .get(
            "/v1/projects/proj1/datasets/copy",
            &[("authorization", &auth)],
        )
        .json();
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(
        (
            all[0]["targetDataset"].as_str(),
            all[0]["withHistory"].as_bool()
        ),
        (Some("flat"), Some(false))
    );
    assert_eq!(
        (all[1]["sourceDataset"].as_str(), all[1]["state"].as_str()),
        (Some("production"), Some("completed"))
    );
    let names: Vec<String> = app
        .get("/v1/projects/proj1/datasets", &[("authorization", &auth)])
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["production", "staging", "flat"]);
}

#[test]
fn errors_names_dated_versions_and_project_less_forms() {
    let app = App::start();
    let (_, auth) = setup(&app);
    let h = [("authorization", auth.as_str())];
    let r = app.send_json(
        "PUT",
        "/v1/projects/proj1/datasets/production/copy",
        &h,
        &json!({"targetDataset": "production"}),
    );
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("already exists"));
    let r = app.send_json(
        "PUT",
        "/v1/projects/proj1/datasets/missing/copy",
        &h,
        &json!({"targetDataset": "x"}),
    );
    assert_eq!(r.status, 404);
    let r = app.send_json(
        "PUT",
        "/v1/projects/proj1/datasets/production/copy",
        &h,
        &json!({"targetDataset": "Bad Name"}),
    );
    assert_eq!(r.status, 400);
    assert!(r.json()["message"].as_str().unwrap().contains("lowercase"));
    let r = app.send_json("PUT", "/v1/projects/proj1/datasets/-x", &h, &json!({}));
    assert_eq!(r.status, 400);
    assert_eq!(
        app.send_json(
            "PUT",
            "/v1/projects/proj1/datasets/production/copy",
            &h,
            &json!({})
        )
        .status,
        400
    );
    assert_eq!(app.get("/v1/projects/proj1/datasets", &[]).status, 401);
    // Nothing was started by the failures.
    assert_eq!(
        app.get("/v1/projects/proj1/datasets/copy", &h)
            .json()
            .as_array()
            .unwrap()
            .len(),
        0
    );
    // Dated API versions and the project-less forms.
    let r = app.get("/v2025-09-16/projects/proj1/datasets", &h);
    assert_eq!(r.json()[0]["name"], "production");
    let r = app.send_json(
        "PUT",
        "/v2021-06-07/datasets/drafts",
        &h,
        &json!({"aclMode": "public"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        app.get("/v2021-06-07/datasets", &h)
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let r = app.send_json(
        "PUT",
        "/v2021-06-07/datasets/drafts/copy",
        &h,
        &json!({"targetDataset": "drafts-2"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let by_host = app.request(
        "GET",
        "/v2021-06-07/datasets",
        &[
            ("authorization", auth.as_str()),
            ("host", "proj1.api.example.com"),
        ],
        None,
    );
    assert_eq!(by_host.json().as_array().unwrap().len(), 3);
    // Another tenant: the project is not theirs, and with two projects the token implies none.
    let other = format!("Bearer {}", app.token("globex"));
    assert_eq!(
        app.get("/v1/projects/proj1/datasets", &[("authorization", &other)])
            .status,
        404
    );
    app.send_json(
        "PUT",
        "/v1/projects/g1/datasets/a",
        &[("authorization", &other)],
        &json!({}),
    );
    app.send_json(
        "PUT",
        "/v1/projects/g2/datasets/a",
        &[("authorization", &other)],
        &json!({}),
    );
    let r = app.get("/v1/datasets", &[("authorization", &other)]);
    assert_eq!(r.status, 400);
    assert!(r.json()["message"].as_str().unwrap().contains("projectId"));
    assert_eq!(
        app.get("/v1/jobs/00000000000000000000000000000000", &[])
            .status,
        404
    );
}
