//! Three instances of the app on one `sqld` (on one PostgreSQL with
//! `SPINOFF_E2E_BACKEND=postgres`) and one Redis, as a scaled-out
//! deployment runs: three `spinoff-host up` processes with the same runtime
//! config, each with its own cron worker. Clients spread over all three;
//! clones start at once; one instance is SIGKILLed mid-copy (physical
//! copies) and mid-hydration (a branch) and restarted.
//! Then nothing is lost or doubled, every clone equals its source as of its
//! snapshot, the branch reads the same before and after its hydration, a target is started once however many instances race for it,
//! and a token minted on one instance (and later revoked on another) holds
//! on all.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use spinoff_e2e::services::Services;
use spinoff_e2e::*;

/// The project's host command line, built with this suite
/// (`src/bin/e2e-spinoff-host.rs`).
fn host_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_e2e-spinoff-host"))
}

/// One instance: a host process (the host runtime), or `spin up` with the
/// real cron plugin (`SPINOFF_E2E_RUNTIME=spin`), both SIGKILLed by `kill`.
enum Instance {
    Host {
        child: Child,
        base: String,
        port: u16,
        log: PathBuf,
    },
    Spin(Box<App>),
}

impl Instance {
    fn base(&self) -> &str {
        match self {
            Instance::Host { base, .. } => base,
            Instance::Spin(app) => &app.base,
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Instance::Host { child, log, .. } = self {
            let _ = child.kill();
            let _ = child.wait();
            // A failing test shows what the instance printed last.
            if std::thread::panicking() {
                let text = std::fs::read(&*log).unwrap_or_default();
                let tail = String::from_utf8_lossy(&text[text.len() - text.len().min(4000)..]);
                eprintln!("--- {} (last 4000 bytes) ---\n{tail}", log.display());
            }
        }
    }
}

/// A `spin up` instance on the shared servers, with its cron triggers.
fn start_spin(config: &str, vars: &[(String, String)]) -> Instance {
    let state = tempfile::tempdir().unwrap();
    let mut o = Options::default();
    o.variables.insert("admin_token".into(), ADMIN_TOKEN.into());
    o.variables.extend(vars.iter().cloned());
    o.cron = true;
    o.runtime_config = Some(config.to_string());
    Instance::Spin(Box::new(
        App::try_start(Runtime::Spin, state, o).expect("spin up starts"),
    ))
}

fn start(
    bin: &PathBuf,
    config: &PathBuf,
    state: &tempfile::TempDir,
    port: u16,
    vars: &[(String, String)],
) -> Instance {
    let root = repo_root();
    let log_path = state.path().join(format!("host-{port}.log"));
    let log = std::fs::File::options()
        .create(true)
        .append(true)
        .open(&log_path)
        .unwrap();
    let child = Command::new(bin)
        .current_dir(&root)
        .args(["up", "--manifest", "spin.toml", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--state-dir")
        .arg(state.path().join(port.to_string()))
        .arg("--runtime-config-file")
        .arg(config)
        .arg("--cache-dir")
        .arg(root.join("target/spinoff-host-cache"))
        .args(["--variable", &format!("admin_token={ADMIN_TOKEN}")])
        .args(vars.iter().flat_map(|(k, v)| ["--variable".to_string(), format!("{k}={v}")]))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let i = Instance::Host {
        child,
        base: format!("http://127.0.0.1:{port}"),
        port,
        log: log_path,
    };
    let t = Instant::now();
    while ureq::get(format!("{}/data/v1/openapi.json", i.base()))
        .call()
        .is_err()
    {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "instance on {port} did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    i
}

/// Every call has a deadline: a stuck backend fails the test instead of
/// stalling it.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

fn call(a: &ureq::Agent, method: &str, url: &str, auth: &str, body: Option<&str>) -> (u16, String) {
    let req = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", auth)
        .header("content-type", "application/json")
        .body(body.unwrap_or("").as_bytes().to_vec())
        .unwrap();
    let mut r = a.run(req).unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = r.status().as_u16();
    let body = r
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_string()
        .unwrap_or_default();
    (status, body)
}

fn sorted_export(a: &ureq::Agent, base: &str, auth: &str, r: &str, at: Option<i64>) -> Vec<String> {
    let q = at.map(|l| format!("?as_of={l}")).unwrap_or_default();
    let (s, body) = call(
        a,
        "GET",
        &format!("{base}/data/v1/resources/{r}/export{q}"),
        auth,
        None,
    );
    assert_eq!(s, 200, "{body}");
    let mut lines: Vec<String> = ndjson(&body)
        .into_iter()
        .map(|v| json!([v["collection"], v["key"], v["body"]]).to_string())
        .collect();
    lines.sort();
    lines
}

#[test]
fn three_instances_on_one_sqld_and_redis_survive_a_kill_mid_copy() {
    let Some(services) = Services::start_or_skip("instances") else {
        return;
    };
    let t0 = Instant::now();
    let phase = |what: &str| eprintln!("instances: {what} at {:.1} s", t0.elapsed().as_secs_f64());
    let bin = host_binary();
    let state = tempfile::tempdir().unwrap();
    let config = state.path().join("runtime-config.toml");
    std::fs::write(&config, services.runtime_config_toml()).unwrap();
    // On PostgreSQL: one server for all three, the engine's state there
    // (key-value stays on the Redis).
    let pg = (Backend::from_env() == Backend::Postgres)
        .then(|| spinoff_e2e::postgres::Postgres::start().expect("postgres (scripts/services)"));
    let vars: Vec<(String, String)> = match &pg {
        Some(pg) => vec![
            ("database".into(), "postgres".into()),
            ("postgres_url".into(), pg.create_database()),
            ("postgres_host".into(), format!("127.0.0.1:{}", pg.port)),
        ],
        None => vec![],
    };
    let runtime = Runtime::from_env();
    let launch = |port: u16| match runtime {
        Runtime::Host => start(&bin, &config, &state, port, &vars),
        Runtime::Spin => start_spin(&services.runtime_config_toml(), &vars),
    };
    let mut nodes: Vec<Instance> = (0..3).map(|_| launch(free_port())).collect();
    phase("3 instances up");
    let a = agent();
    let admin = format!("Bearer {ADMIN_TOKEN}");

    // A token minted on one instance is valid on every other.
    let (s, body) = call(
        &a,
        "POST",
        &format!("{}/data/v1/tokens", nodes[0].base()),
        &admin,
        Some(r#"{"tenant":"acme"}"#),
    );
    assert_eq!(s, 201, "{body}");
    let token = serde_json::from_str::<Value>(&body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let auth = format!("Bearer {token}");
    for n in &nodes {
        let (s, body) = call(
            &a,
            "GET",
            &format!("{}/data/v1/tokens/current", n.base()),
            &auth,
            None,
        );
        assert_eq!(s, 200, "{body}");
    }

    // Three sources, loaded through different instances.
    let sources = ["native:s0", "native:s1", "native:s2"];
    for (i, r) in sources.iter().enumerate() {
        let base = nodes[i].base();
        let (s, body) = call(
            &a,
            "PUT",
            &format!("{base}/data/v1/resources/{r}"),
            &auth,
            None,
        );
        assert_eq!(s, 201, "{body}");
        let lines: String = (0..8_000)
            .map(|k| {
                json!({"collection": format!("c{}", k % 3), "key": format!("k{k:05}"),
                       "body": {"k": k, "src": r, "pad": "y".repeat(600)}})
                .to_string()
                    + "\n"
            })
            .collect();
        let (s, body) = call(
            &a,
            "POST",
            &format!("{base}/data/v1/resources/{r}/import"),
            &auth,
            Some(&lines),
        );
        assert_eq!(s, 200, "{body}");
    }

    phase("sources loaded");
    // A branch of s0, whole at once; its hydration runs through the crash.
    // Started before the copies, so that it is under way beside them
    // (started after, the copies could end before it had a chunk).
    let (s, body) = call(
        &a,
        "POST",
        &format!("{}/data/v1/resources/native:s0/clones", nodes[0].base()),
        &auth,
        Some(r#"{"target":"native:b0"}"#),
    );
    assert_eq!(s, 202, "{body}");
    let bop: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(bop["status"], "succeeded", "{bop}");
    let branch_before = sorted_export(&a, nodes[2].base(), &auth, "native:b0", None);
    assert_eq!(branch_before.len(), 8_000);
    assert_eq!(
        branch_before,
        sorted_export(
            &a,
            nodes[2].base(),
            &auth,
            "native:s0",
            bop["snapshot_lsn"].as_i64()
        )
    );
    let (s, body) = call(
        &a,
        "POST",
        &format!("{}/data/v1/resources/native:b0/hydrate", nodes[1].base()),
        &auth,
        None,
    );
    assert_eq!(s, 202, "{body}");
    let hydration: Value = serde_json::from_str(&body).unwrap();
    let hydration = hydration["id"].as_str().unwrap().to_string();
    // Each target is raced for by all three instances at once: exactly one
    // start wins, the others answer 409.
    let mut ops: Vec<(String, String, i64)> = Vec::new();
    for (i, r) in sources.iter().enumerate() {
        let target = format!("native:t{i}");
        let answers: Vec<(u16, String)> = std::thread::scope(|s| {
            let hs: Vec<_> = nodes
                .iter()
                .map(|n| {
                    let (a, auth, target) = (&a, &auth, &target);
                    let url = format!("{}/data/v1/resources/{r}/clones", n.base());
                    s.spawn(move || {
                        call(
                            a,
                            "POST",
                            &url,
                            auth,
                            Some(&json!({"target": target, "mode": "copy"}).to_string()),
                        )
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let won: Vec<&(u16, String)> = answers.iter().filter(|(s, _)| *s == 202).collect();
        assert_eq!(won.len(), 1, "one start wins: {answers:?}");
        assert!(
            answers.iter().all(|(s, _)| *s == 202 || *s == 409),
            "{answers:?}"
        );
        let op: Value = serde_json::from_str(&won[0].1).unwrap();
        ops.push((
            op["id"].as_str().unwrap().to_string(),
            target,
            op["snapshot_lsn"].as_i64().unwrap(),
        ));
    }

    ops.push((hydration.clone(), "native:b0".into(), 0));

    // Kill instance 1 (SIGKILL) mid-copy: while status reads through it
    // advance the clones (each read steps one bounded chunk) and its cron
    // worker ticks, once a copy is under way and none has finished.
    let stop = std::sync::atomic::AtomicBool::new(false);
    // Stops the status reader however the scope ends (a failed assertion
    // too, which would otherwise wait for it forever).
    struct Stop<'a>(&'a std::sync::atomic::AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    std::thread::scope(|s| {
        let (a, auth, ops, stop) = (&a, &auth, &ops, &stop);
        let _stop = Stop(stop);
        let base1 = nodes[1].base().to_string();
        s.spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for (id, _, _) in ops {
                    let url = format!("{base1}/data/v1/operations/{id}");
                    let req = ureq::http::Request::builder()
                        .uri(url)
                        .header("authorization", auth.as_str())
                        .body(Vec::new())
                        .unwrap();
                    let _ = a.run(req); // fails once the instance is gone
                }
            }
        });
        let t = Instant::now();
        loop {
            let copied: Vec<(i64, String)> = ops
                .iter()
                .map(|(id, _, _)| {
                    let (_, body) = call(
                        a,
                        "GET",
                        &format!("{}/data/v1/operations/{id}", nodes[2].base()),
                        auth,
                        None,
                    );
                    let op: Value = serde_json::from_str(&body).unwrap();
                    (
                        op["progress"]["records_copied"].as_i64().unwrap_or(0),
                        op["status"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            assert!(
                copied.iter().all(|(_, st)| st != "succeeded"),
                "a clone finished before the kill: {copied:?}"
            );
            // A copy and the hydration (the last) are both under way.
            let (hydrated, copies) = copied.split_last().unwrap();
            if hydrated.0 > 0 && copies.iter().any(|(n, _)| *n > 0) {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "no copy started: {copied:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        phase("copy under way: killing instance 1");
        match &mut nodes[1] {
            Instance::Host { child, .. } => {
                let _ = child.kill(); // SIGKILL
                let _ = child.wait();
            }
            Instance::Spin(app) => app.kill(), // SIGKILL of spin and its triggers
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let port = match &nodes[1] {
        Instance::Host { port, .. } => *port,
        Instance::Spin(_) => free_port(),
    };
    nodes[1] = launch(port);
    phase("instance 1 restarted");
    // Every clone finishes, polled round-robin over the instances.
    for (n, (id, _, _)) in ops.iter().enumerate() {
        let t = Instant::now();
        let mut i = n;
        loop {
            let base = &nodes[i % 3].base();
            i += 1;
            let (s, body) = call(
                &a,
                "GET",
                &format!("{base}/data/v1/operations/{id}"),
                &auth,
                None,
            );
            assert_eq!(s, 200, "{body}");
            let op: Value = serde_json::from_str(&body).unwrap();
            match op["status"].as_str().unwrap() {
                "succeeded" => {
                    if *id != hydration {
                        assert_eq!(op["progress"]["records_copied"], 8_000, "{op}");
                    }
                    break;
                }
                "pending" | "in_progress" => {}
                other => panic!("clone {other}: {op}"),
            }
            assert!(t.elapsed() < Duration::from_secs(180), "clone stuck: {op}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    phase("clones and hydration done");
    // The hydrated branch depends on nothing and reads as before.
    let (s, body) = call(
        &a,
        "GET",
        &format!("{}/data/v1/resources/native:b0", nodes[0].base()),
        &auth,
        None,
    );
    assert_eq!(s, 200, "{body}");
    let b0: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(b0["branch"], Value::Null, "{b0}");
    for n in &nodes {
        assert_eq!(
            sorted_export(&a, n.base(), &auth, "native:b0", None),
            branch_before
        );
    }
    // Nothing lost, nothing doubled: each copy equals its source at its
    // snapshot, read through an instance other than the one that started it.
    for (i, (r, (_, target, snap))) in sources.iter().zip(&ops).enumerate() {
        let base = &nodes[(i + 1) % 3].base();
        let copy = sorted_export(&a, base, &auth, target, None);
        assert_eq!(copy.len(), 8_000);
        let mut dedup = copy.clone();
        dedup.dedup();
        assert_eq!(dedup.len(), copy.len(), "no record twice");
        assert_eq!(
            copy,
            sorted_export(&a, base, &auth, r, Some(*snap)),
            "{target}"
        );
    }

    // Revoked on one instance: refused on all.
    let (_, body) = call(
        &a,
        "GET",
        &format!("{}/data/v1/tokens/current", nodes[2].base()),
        &auth,
        None,
    );
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, body) = call(
        &a,
        "DELETE",
        &format!("{}/data/v1/tokens/{id}", nodes[2].base()),
        &auth,
        None,
    );
    assert_eq!(s, 204, "{body}");
    for n in &nodes {
        let (s, _) = call(
            &a,
            "GET",
            &format!("{}/data/v1/resources/native:s0", n.base()),
            &auth,
            None,
        );
        assert_eq!(s, 401, "revoked token still accepted on {}", n.base());
    }
    // On PostgreSQL, the state really is there.
    if let Some((_, url)) = vars.iter().find(|(k, _)| k == "postgres_url") {
        let db = engine::native_pg::NativePgDb::open(url).unwrap();
        let n = engine::Db::execute(&db, "SELECT count(*) FROM records", &[]).unwrap()[0]
            .i64(0)
            .unwrap();
        assert!(n > 0, "no records in PostgreSQL");
    }
}
