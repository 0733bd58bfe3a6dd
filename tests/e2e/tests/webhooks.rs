//! Webhooks that cannot hurt anyone: a dead receiver never holds up another
//! tenant's copy, internal addresses are refused when given and when sent,
//! and deliveries are signed (verified with the `standardwebhooks` library).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use spinoff_e2e::{json, App, Value, ADMIN_TOKEN};

fn auth(token: &str) -> String {
    format!("Bearer {token}")
}

fn import(app: &App, token: &str, r: &str, n: usize) {
    let a = auth(token);
    assert_eq!(
        app.send_json(
            "PUT",
            &format!("/data/v1/resources/{r}"),
            &[("authorization", &a)],
            &json!({})
        )
        .status,
        201
    );
    let body: String = (0..n)
        .map(|i| {
            format!(
                "{}\n",
                json!({"collection": "c", "key": format!("k{i:06}"), "body": {"i": i}})
            )
        })
        .collect();
    let reply = app.request(
        "POST",
        &format!("/data/v1/resources/{r}/import"),
        &[("authorization", &a)],
        Some(body.as_bytes()),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
}

fn clone(app: &App, token: &str, src: &str, body: Value) -> spinoff_e2e::Reply {
    app.send_json(
        "POST",
        &format!("/data/v1/resources/{src}/clones"),
        &[("authorization", &auth(token))],
        &body,
    )
}

fn secret(app: &App, token: &str) -> String {
    let r = app.request(
        "POST",
        "/data/v1/webhooks/secret",
        &[("authorization", &auth(token))],
        None,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let s = r.json()["secret"].as_str().unwrap().to_string();
    assert!(s.starts_with("whsec_"), "{s}");
    s
}

fn notifier_tick(app: &App) -> Value {
    let r = app.request(
        "POST",
        "/internal/notifier/tick",
        &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

fn status(app: &App, token: &str, id: &str) -> Value {
    let r = app.get(
        &format!("/data/v1/operations/{id}"),
        &[("authorization", &auth(token))],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

/// A listener that accepts connections and never answers.
fn dead_receiver() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    (l, format!("{addr}"))
}

/// A receiver that answers 200 and hands back each request's headers and body.
/// One received request: its headers (lowercase names) and body.
type Delivery = (Vec<(String, String)>, String);

fn receiver() -> (String, mpsc::Receiver<Delivery>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut headers = Vec::new();
            let mut len = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.trim_end().split_once(':') {
                    let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
                    if k == "content-length" {
                        len = v.parse().unwrap_or(0);
                    }
                    headers.push((k, v));
                }
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = tx.send((headers, String::from_utf8_lossy(&body).into_owned()));
        }
    });
    (addr, rx)
}

fn app_allowing(hosts: &str, timeout_ms: u32) -> App {
    let hosts = hosts.to_string();
    App::start_with(move |o| {
        o.variables.insert("webhook_allowed_hosts".into(), hosts);
        o.variables
            .insert("webhook_timeout_ms".into(), timeout_ms.to_string());
        // Small chunks: a clone takes several ticks, so ticks can be counted.
        o.variables.insert("worker_budget_ms".into(), "20".into());
    })
}

/// Ticks of the clone worker until `id` succeeds (at most `max`).
fn ticks_to_finish(app: &App, token: &str, id: &str, max: usize) -> usize {
    for n in 1..=max {
        app.http_tick();
        if status(app, token, id)["status"] == "succeeded" {
            return n;
        }
    }
    panic!(
        "{id} did not finish in {max} ticks: {}",
        status(app, token, id)
    );
}

#[test]
fn a_dead_receiver_never_holds_up_another_tenants_copy() {
    let (dead, dead_addr) = dead_receiver();
    let app = app_allowing(&dead_addr, 500);
    let (a, b) = (app.token("alpha"), app.token("beta"));
    secret(&app, &a);
    import(&app, &a, "native:a-src", 200);
    import(&app, &b, "native:b-src", 20_000);

    // Beta's clone alone (a physical copy, in chunks), for the pace: how many ticks 20 000 records take.
    let base = clone(
        &app,
        &b,
        "native:b-src",
        json!({"target": "native:b-base", "mode": "copy"}),
    )
    .json();
    let alone = ticks_to_finish(&app, &b, base["id"].as_str().unwrap(), 400);

    // Alpha's clone notifies a receiver that accepts and never answers.
    let hooked = clone(
        &app,
        &a,
        "native:a-src",
        json!({"target": "native:a-copy", "notify": [format!("http://{dead_addr}/hook")]}),
    );
    assert_eq!(hooked.status, 202, "{}", hooked.body);
    let hooked_id = hooked.json()["id"].as_str().unwrap().to_string();
    let op = clone(
        &app,
        &b,
        "native:b-src",
        json!({"target": "native:b-copy", "mode": "copy"}),
    )
    .json();
    let id = op["id"].as_str().unwrap().to_string();

    // The notifier keeps trying the dead receiver the whole time, in its own
    // component; the clone worker's ticks go on beside it.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (base_url, flag) = (app.base.clone(), stop.clone());
    let notifier = std::thread::spawn(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let mut passes = 0;
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            let r = agent
                .post(format!("{base_url}/internal/notifier/tick"))
                .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
                .send_empty()
                .expect("a notifier pass returns: every call has a timeout");
            assert_eq!(r.status().as_u16(), 200);
            passes += 1;
        }
        passes
    });
    let with_dead = ticks_to_finish(&app, &b, &id, 400);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let passes = notifier.join().unwrap();
    assert!(passes >= 1);
    // Same pace as alone (two ticks of slack: alpha's small clone shares the
    // first tick, and chunk sizes adapt to the time a chunk takes).
    assert!(
        with_dead <= alone + 2,
        "beta's clone took {with_dead} ticks beside a dead receiver, {alone} alone"
    );

    // The dead receiver cost only its own notification: a failed attempt
    // with the reason, retried later.
    ticks_to_finish(&app, &a, &hooked_id, 10);
    notifier_tick(&app);
    let seen = status(&app, &a, &hooked_id);
    let n = &seen["notifications"][0];
    assert_eq!(n["status"], "pending", "{seen}");
    assert!(n["attempts"].as_i64().unwrap() >= 1, "{seen}");
    assert!(
        n["last_error"]
            .as_str()
            .unwrap()
            .contains("no answer within 500 ms"),
        "{seen}"
    );
    drop(dead);
}

#[test]
fn internal_webhook_addresses_are_refused_at_start_and_at_send() {
    let (addr, _bodies) = receiver();
    let app = app_allowing(&addr, 5000);
    let t = app.token("acme");
    secret(&app, &t);
    import(&app, &t, "native:src", 10);
    for (url, rule) in [
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://127.0.0.1:3000/internal/worker/tick", "loopback"),
        ("http://[::ffff:10.0.0.1]/h", "private"),
        ("http://100.64.1.1/h", "CGNAT"),
        ("http://localhost:9/h", "loopback"),
    ] {
        let r = clone(
            &app,
            &t,
            "native:src",
            json!({"target": "native:x", "notify": [url]}),
        );
        assert_eq!(r.status, 422, "{url}: {}", r.body);
        assert!(r.body.contains(rule), "{url}: {}", r.body);
        assert!(
            r.body.contains("webhook_allowed_hosts"),
            "{url}: {}",
            r.body
        );
    }
    // Nothing was started by the refused requests.
    let ops = app
        .get("/data/v1/operations", &[("authorization", &auth(&t))])
        .json();
    assert_eq!(ops["operations"].as_array().map(Vec::len), Some(0), "{ops}");

    // Allowed when given; then the operator withdraws the allowance: the
    // send-time check refuses it, for good, naming the rule.
    let op = clone(
        &app,
        &t,
        "native:src",
        json!({"target": "native:y", "notify": [format!("http://{addr}/hook")]}),
    );
    assert_eq!(op.status, 202, "{}", op.body);
    let id = op.json()["id"].as_str().unwrap().to_string();
    app.http_tick();
    let state = app.state.path().to_path_buf();
    let app = app.restart_with(|o| {
        o.variables
            .insert("webhook_allowed_hosts".into(), String::new());
    });
    assert_eq!(app.state.path(), state);
    let report = notifier_tick(&app);
    assert_eq!(report["failed"], 1, "{report}");
    let n = &status(&app, &t, &id)["notifications"][0];
    assert_eq!(n["status"], "failed", "{n}");
    assert!(
        n["last_error"].as_str().unwrap().contains("loopback"),
        "{n}"
    );
}

#[test]
fn deliveries_are_signed_and_verify_with_the_standard_webhooks_library() {
    let python = spinoff_e2e::repo_root().join("target/py-venv/bin/python");
    if !python.exists() {
        panic!("{} is missing: scripts/test installs it", python.display());
    }
    let (addr, bodies) = receiver();
    let app = app_allowing(&addr, 5000);
    let t = app.token("acme");
    import(&app, &t, "native:src", 10);
    // Without a signing secret, a webhook is refused at start.
    let r = clone(
        &app,
        &t,
        "native:src",
        json!({"target": "native:a", "notify": [format!("http://{addr}/hook")]}),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("/data/v1/webhooks/secret"), "{}", r.body);

    let old = secret(&app, &t);
    let new = secret(&app, &t); // a rotation: both sign for a grace period
    assert_ne!(old, new);
    let op = clone(
        &app,
        &t,
        "native:src",
        json!({"target": "native:b", "notify": [format!("http://{addr}/hook")]}),
    );
    assert_eq!(op.status, 202, "{}", op.body);
    let id = op.json()["id"].as_str().unwrap().to_string();
    app.http_tick();
    let report = notifier_tick(&app);
    assert_eq!(
        report["delivered"],
        1,
        "{report}: {}",
        status(&app, &t, &id)["notifications"]
    );
    let (headers, body) = bodies.recv_timeout(Duration::from_secs(10)).unwrap();
    let b: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(b["operation"], id.as_str());

    // The library verifies the delivery with either secret, and refuses a
    // tampered body, an old timestamp, and another tenant's secret.
    let other = {
        let o = app.token("other");
        secret(&app, &o)
    };
    let input = json!({
        "headers": headers.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
        "body": body,
        "secrets": {"new": new, "old": old, "other": other},
    });
    let mut child = std::process::Command::new(&python)
        .arg(spinoff_e2e::repo_root().join("tests/e2e/verify_webhook.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let verdicts: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        verdicts,
        json!({
            "new": "ok",
            "old": "ok",
            "other": "refused",
            "tampered_body": "refused",
            "old_timestamp": "refused",
        })
    );
}
