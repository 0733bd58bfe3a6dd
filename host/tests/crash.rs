//! Crash anywhere: the real app runs in the host as a separate process that
//! is killed with SIGKILL at random points while workers copy a large clone,
//! then restarted on the same state directory. The clone must finish and
//! equal the source as of its snapshot, record for record, with no version
//! lost or duplicated.
//!
//! Kills: 20 by default; `SPINOFF_LONG_TESTS=1` makes it 100.
//! Needs the built components (`scripts/build-wasm`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const ADMIN: &str = "crash-test-admin-token";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

struct Proc {
    child: Child,
    base: String,
}

fn start(state: &Path) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_spinoff-host"))
        .args(["up", "--no-cron", "--listen", "127.0.0.1:0", "--manifest"])
        .arg(root().join("spin.toml"))
        .arg("--state-dir")
        .arg(state)
        .arg("--cache-dir")
        .arg(root().join("target/spinoff-host-cache"))
        .env("SPIN_VARIABLE_ADMIN_TOKEN", ADMIN)
        .env("SPIN_VARIABLE_WORKER_BUDGET_MS", "40")
        .env("SPIN_VARIABLE_WORKER_LEASE_MS", "100")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spinoff-host starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("host prints its address").unwrap();
    let base = first.trim_start_matches("Serving ").trim().to_string();
    std::thread::spawn(move || for _ in lines {});
    Proc { child, base }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

fn call(
    a: &ureq::Agent,
    method: &str,
    url: &str,
    auth: &str,
    body: Option<&[u8]>,
) -> (u16, String) {
    let mut req = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", auth);
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let r = a.run(req.body(body.unwrap_or_default().to_vec()).unwrap());
    match r {
        Ok(mut r) => (
            r.status().as_u16(),
            r.body_mut()
                .with_config()
                .limit(1 << 30)
                .read_to_string()
                .unwrap_or_default(),
        ),
        Err(e) => (0, e.to_string()),
    }
}

fn versions(db: &Path, container_name: &str) -> Vec<(String, String, i64, i64, Option<String>)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut st = conn
        .prepare(
            "SELECT r.collection, r.key, r.lsn, r.deleted, r.body FROM records r JOIN containers c ON c.id = r.container \
             WHERE c.family = 'native' AND c.name = ?1 AND c.deleting = 0 ORDER BY 1, 2, 3",
        )
        .unwrap();
    st.query_map([container_name], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

#[test]
fn a_clone_survives_sigkill_at_random_points() {
    let kills = if std::env::var("SPINOFF_LONG_TESTS").is_ok() {
        100
    } else {
        20
    };
    let state = tempfile::tempdir().unwrap();
    let a = agent();
    let admin = format!("Bearer {ADMIN}");
    let mut p = start(state.path());
    let (s, b) = call(
        &a,
        "POST",
        &format!("{}/data/v1/tokens", p.base),
        &admin,
        Some(br#"{"tenant":"acme"}"#),
    );
    assert_eq!(s, 201, "{b}");
    let auth = format!(
        "Bearer {}",
        serde_json::from_str::<Value>(&b).unwrap()["token"]
            .as_str()
            .unwrap()
    );
    call(
        &a,
        "PUT",
        &format!("{}/data/v1/resources/native:src", p.base),
        &auth,
        None,
    );
    // 50 000 records, two versions for a fifth of them.
    for batch in 0..5 {
        let lines: String = (batch * 10_000..(batch + 1) * 10_000)
            .map(|i| format!("{}\n", json!({"collection": (["a", "b", "c", "d"][i % 4]), "key": format!("k{i:06}"), "body": {"i": i, "pad": "x".repeat(200)}})))
            .collect();
        let (s, b) = call(
            &a,
            "POST",
            &format!("{}/data/v1/resources/native:src/import", p.base),
            &auth,
            Some(lines.as_bytes()),
        );
        assert_eq!(s, 200, "{b}");
    }
    let lines: String = (0..10_000)
        .map(|i| {
            format!(
                "{}\n",
                json!({"collection": "a", "key": format!("k{:06}", i * 4), "body": {"v": 2}})
            )
        })
        .collect();
    call(
        &a,
        "POST",
        &format!("{}/data/v1/resources/native:src/import", p.base),
        &auth,
        Some(lines.as_bytes()),
    );
    let (s, b) = call(
        &a,
        "POST",
        &format!("{}/data/v1/resources/native:src/clones", p.base),
        &auth,
        Some(br#"{"target":"native:dst","history":true,"mode":"copy"}"#),
    );
    assert_eq!(s, 202, "{b}");
    let op: Value = serde_json::from_str(&b).unwrap();
    let id = op["id"].as_str().unwrap().to_string();
    let snapshot = op["snapshot_lsn"].as_i64().unwrap();
    // A branch of the same source, whole at once, and its hydration: the
    // kills land in its chunks too.
    let (s, b) = call(
        &a,
        "POST",
        &format!("{}/data/v1/resources/native:src/clones", p.base),
        &auth,
        Some(br#"{"target":"native:br","history":true}"#),
    );
    assert_eq!(s, 202, "{b}");
    let branch: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(branch["status"], "succeeded", "{branch}");
    let branch_at = branch["snapshot_lsn"].as_i64().unwrap();
    let (s, b) = call(
        &a,
        "POST",
        &format!("{}/data/v1/resources/native:br/hydrate", p.base),
        &auth,
        None,
    );
    assert_eq!(s, 202, "{b}");
    let hid = serde_json::from_str::<Value>(&b).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let status = |p: &Proc, id: &str, k: usize| -> Value {
        let (s, b) = call(
            &a,
            "GET",
            &format!("{}/data/v1/operations/{id}", p.base),
            &auth,
            None,
        );
        assert_eq!(s, 200, "after kill {k}: {b}");
        let v: Value = serde_json::from_str(&b).unwrap();
        assert!(v["status"] != "failed", "after kill {k}: {v}");
        v
    };

    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut killed_mid_copy = 0;
    let mut killed_mid_hydration = 0;
    for k in 0..kills {
        // Workers tick back to back (and a writer keeps writing to the source) until the kill.
        let base = p.base.clone();
        let (auth2, admin2) = (auth.clone(), admin.clone());
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let load = std::thread::spawn(move || {
            let a = agent();
            let mut i = 0;
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                call(
                    &a,
                    "POST",
                    &format!("{base}/internal/worker/tick"),
                    &admin2,
                    None,
                );
                call(
                    &a,
                    "PUT",
                    &format!("{base}/data/v1/resources/native:src/collections/b/records/late-{i}"),
                    &auth2,
                    Some(b"{}"),
                );
                i += 1;
            }
        });
        std::thread::sleep(Duration::from_millis(10 + next() % 70));
        p.child.kill().unwrap(); // SIGKILL
        p.child.wait().unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        load.join().unwrap();
        p = start(state.path());
        let v = status(&p, &id, k);
        let h = status(&p, &hid, k);
        eprintln!(
            "kill {k}: {} of {} copied, {} of {} hydrated",
            v["progress"]["records_copied"],
            v["progress"]["records_total"],
            h["progress"]["records_copied"],
            h["progress"]["records_total"]
        );
        let hydrated = h["status"] == "succeeded";
        if !hydrated {
            killed_mid_hydration += 1;
        }
        if v["status"] == "succeeded" {
            if hydrated {
                break;
            }
        } else {
            killed_mid_copy += 1;
        }
    }
    assert!(
        killed_mid_copy >= 15,
        "only {killed_mid_copy} kills landed before the copy ended"
    );
    assert!(
        killed_mid_hydration >= 5,
        "only {killed_mid_hydration} kills landed before the hydration ended"
    );
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let (s, b) = call(
            &a,
            "POST",
            &format!("{}/internal/worker/tick", p.base),
            &admin,
            None,
        );
        assert_eq!(s, 200, "{b}");
        let (_, b) = call(
            &a,
            "GET",
            &format!("{}/data/v1/operations/{id}", p.base),
            &auth,
            None,
        );
        let v: Value = serde_json::from_str(&b).unwrap();
        let h = status(&p, &hid, kills);
        if v["status"] == "succeeded" && h["status"] == "succeeded" {
            assert_eq!(v["progress"]["records_copied"], 60_000, "{v}");
            break;
        }
        assert!(Instant::now() < deadline && v["status"] != "failed", "{v}");
    }
    // The hydrated branch depends on its source no more.
    let (s, b) = call(
        &a,
        "GET",
        &format!("{}/data/v1/resources/native:br", p.base),
        &auth,
        None,
    );
    assert_eq!(s, 200, "{b}");
    let br: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(br["branch"], Value::Null, "{br}");
    p.child.kill().unwrap();
    p.child.wait().unwrap();
    // Record for record: every version of the source up to the snapshot, once.
    let db = state.path().join("sqlite_db.db");
    let src: Vec<_> = versions(&db, "src")
        .into_iter()
        .filter(|v| v.2 <= snapshot)
        .collect();
    let dst = versions(&db, "dst");
    assert_eq!(src.len(), 60_000);
    assert_eq!(dst, src);
    // The branch holds, as its own rows, every version of the source up to
    // its base, once.
    let src_at_branch: Vec<_> = versions(&db, "src")
        .into_iter()
        .filter(|v| v.2 <= branch_at)
        .collect();
    assert_eq!(versions(&db, "br"), src_at_branch);
}

#[test]
fn four_hosts_on_one_state_directory_copy_each_operation_once() {
    let state = tempfile::tempdir().unwrap();
    let a = agent();
    let admin = format!("Bearer {ADMIN}");
    let mut procs: Vec<Proc> = (0..4).map(|_| start(state.path())).collect();
    let base = procs[0].base.clone();
    let (_, b) = call(
        &a,
        "POST",
        &format!("{base}/data/v1/tokens"),
        &admin,
        Some(br#"{"tenant":"acme"}"#),
    );
    let auth = format!(
        "Bearer {}",
        serde_json::from_str::<Value>(&b).unwrap()["token"]
            .as_str()
            .unwrap()
    );
    let mut ops = Vec::new();
    for s in 0..3 {
        call(
            &a,
            "PUT",
            &format!("{base}/data/v1/resources/native:src{s}"),
            &auth,
            None,
        );
        let lines: String = (0..8000)
            .map(|i| {
                format!(
                    "{}\n",
                    json!({"collection": "c", "key": format!("k{i:05}"), "body": {"s": s, "i": i}})
                )
            })
            .collect();
        let (st, b) = call(
            &a,
            "POST",
            &format!("{base}/data/v1/resources/native:src{s}/import"),
            &auth,
            Some(lines.as_bytes()),
        );
        assert_eq!(st, 200, "{b}");
        let (st, b) = call(
            &a,
            "POST",
            &format!("{base}/data/v1/resources/native:src{s}/clones"),
            &auth,
            Some(format!(r#"{{"target":"native:dst{s}","mode":"copy"}}"#).as_bytes()),
        );
        assert_eq!(st, 202, "{b}");
        ops.push(
            serde_json::from_str::<Value>(&b).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    // All four processes tick at once; one is killed part-way.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let threads: Vec<_> = procs
        .iter()
        .map(|p| {
            let (base, admin, done) = (p.base.clone(), admin.clone(), done.clone());
            std::thread::spawn(move || {
                let a = agent();
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    call(
                        &a,
                        "POST",
                        &format!("{base}/internal/worker/tick"),
                        &admin,
                        None,
                    );
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(150));
    procs[3].child.kill().unwrap();
    procs[3].child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    for id in &ops {
        loop {
            let (_, b) = call(
                &a,
                "GET",
                &format!("{base}/data/v1/operations/{id}"),
                &auth,
                None,
            );
            let v: Value = serde_json::from_str(&b).unwrap();
            if v["status"] == "succeeded" {
                assert_eq!(v["progress"]["records_copied"], 8000, "{v}");
                break;
            }
            assert!(v["status"] != "failed" && Instant::now() < deadline, "{v}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // Each source's import is hydrated by an operation of its own, which
    // the workers run beside the copies: wait for it too, so that each
    // source holds every version itself before the comparison below.
    let db = state.path().join("sqlite_db.db");
    loop {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        let active: i64 = conn
            .query_row(
                "SELECT count(*) FROM operations WHERE status IN ('pending', 'in_progress')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        if active == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{active} operations still active");
        std::thread::sleep(Duration::from_millis(50));
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    for p in procs.iter_mut().take(3) {
        p.child.kill().unwrap();
        p.child.wait().unwrap();
    }
    for s in 0..3 {
        // Every version exactly once: no chunk was copied twice.
        assert_eq!(
            versions(&db, &format!("dst{s}")),
            versions(&db, &format!("src{s}"))
        );
    }
    // Each operation ended once.
    let conn = rusqlite::Connection::open(&db).unwrap();
    for id in &ops {
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM events WHERE op = ?1 AND type = 'succeeded'",
                [id],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1);
    }
}
