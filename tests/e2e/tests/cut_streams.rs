//! A stream whose database is lost mid-way fails loudly: the response is
//! aborted (a chunked body without its last chunk), so every client sees a
//! transfer error, never a short body that ends cleanly. The database is a
//! real sqld, SIGKILLed while the client reads; runs on the remote backend
//! passes (host and real Spin), since a local file cannot be lost.
//!
//! Clients: curl, the `spinoff` CLI (which also checks the count it got
//! against the resource's count at the export's LSN), and an operation's
//! SSE stream. Sanity's own CLI is in `sanity_cli.rs`.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use spinoff_e2e::services::Services;
use spinoff_e2e::*;

const RECORDS: usize = 20_000;

fn records(n: usize) -> String {
    (0..n)
        .map(|i| {
            let collection = ["a", "b"][i % 2];
            json!({"collection": collection, "key": format!("k{i:06}"),
                   "body": {"i": i, "pad": "x".repeat(900)}})
            .to_string()
                + "\n"
        })
        .collect()
}

/// Read `n` bytes of `r` (the client's output, through a pipe): the client
/// is under way, and held back by the pipe from there on.
fn read_some(r: &mut impl Read, n: usize) -> Vec<u8> {
    let mut got = vec![0u8; n];
    r.read_exact(&mut got).expect("the client's first bytes");
    got
}

fn setup() -> Option<(Services, App, String)> {
    if Backend::from_env() != Backend::Remote {
        eprintln!(
            "SKIPPED cut_streams: runs on the remote backend passes (a local file cannot be lost)"
        );
        return None;
    }
    let services = Services::start_or_skip("cut_streams")?;
    let config = services.runtime_config_toml();
    let app = App::start_with(|o| o.runtime_config = Some(config));
    let token = app.token("acme");
    let h = [("authorization", format!("Bearer {token}"))];
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        app.request("PUT", "/data/v1/resources/native:src", &h, None)
            .status,
        201
    );
    let r = app.request(
        "POST",
        "/data/v1/resources/native:src/import",
        &h,
        Some(records(RECORDS).as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    Some((services, app, token))
}

#[test]
fn an_export_cut_by_a_lost_database_is_an_error_to_curl_and_the_cli() {
    let Some((mut services, app, token)) = setup() else {
        return;
    };
    let url = format!("{}/data/v1/resources/native:src/export", app.base);

    // curl: the stream is read through a pipe, so it is held back after
    // the first 64 KiB until the database is gone.
    let mut curl = Command::new("curl")
        .args([
            "-sS",
            "--no-buffer",
            "-H",
            &format!("authorization: Bearer {token}"),
            &url,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("curl runs");
    let mut out = curl.stdout.take().unwrap();
    let mut got = read_some(&mut out, 64 << 10);
    services.kill_sqld();
    out.read_to_end(&mut got).unwrap();
    let done = curl.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr);
    let lines = got.iter().filter(|b| **b == b'\n').count();
    assert!(
        lines < RECORDS,
        "the export completed before the database was lost"
    );
    assert!(
        !done.status.success(),
        "curl ended cleanly after {lines} of {RECORDS} records: a cut export looked complete"
    );
    assert_eq!(
        done.status.code(),
        Some(18),
        "curl's 'transfer closed with outstanding read data': {stderr}"
    );
    services.restart_sqld();

    // The spinoff CLI: non-zero, and it says how many records it got.
    let mut cli = Command::new(spinoff_cli())
        .args(["export", "native:src"])
        .env("SPINOFF_URL", &app.base)
        .env("SPINOFF_TOKEN", &token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spinoff runs");
    let mut out = cli.stdout.take().unwrap();
    let mut got = read_some(&mut out, 64 << 10);
    services.kill_sqld();
    out.read_to_end(&mut got).unwrap();
    let done = cli.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(
        !done.status.success(),
        "spinoff export succeeded on a cut stream: {stderr}"
    );
    assert!(stderr.contains("the export was cut after"), "{stderr}");
    let received = got.iter().filter(|b| **b == b'\n').count();
    assert!(
        stderr.contains(&format!("after {received} records")),
        "{received}: {stderr}"
    );
    services.restart_sqld();

    // With the database back, the same export completes, and its count
    // agrees with the resource's at the export's LSN.
    let started = Instant::now();
    let done = loop {
        let done = Command::new(spinoff_cli())
            .args(["export", "native:src", "--output", "/dev/null"])
            .env("SPINOFF_URL", &app.base)
            .env("SPINOFF_TOKEN", &token)
            .output()
            .expect("spinoff runs");
        // The app's connections to the killed sqld are replaced on use.
        if done.status.success() || started.elapsed() > Duration::from_secs(30) {
            break done;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("exported {RECORDS} records")),
        "{stderr}"
    );
}

#[test]
fn an_event_stream_cut_by_a_lost_database_is_an_error() {
    let Some((mut services, app, token)) = setup() else {
        return;
    };
    let auth = format!("Bearer {token}");
    let h = [("authorization", auth.as_str())];
    // A physical copy nobody advances: its event stream stays open.
    let r = app.send_json(
        "POST",
        "/data/v1/resources/native:src/clones",
        &h,
        &json!({"target": "native:dst", "mode": "copy"}),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_string();
    let mut curl = Command::new("curl")
        .args(["-sS", "-N", "-H", &format!("authorization: {auth}")])
        .arg(format!("{}/data/v1/operations/{id}/events", app.base))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("curl runs");
    let mut out = curl.stdout.take().unwrap();
    let mut first = [0u8; 16];
    out.read_exact(&mut first).expect("the stream opens");
    services.kill_sqld();
    let mut rest = Vec::new();
    out.read_to_end(&mut rest).unwrap();
    let done = curl.wait_with_output().unwrap();
    assert!(
        !done.status.success(),
        "the event stream ended cleanly with the database gone: {}",
        String::from_utf8_lossy(&rest)
    );
    assert_eq!(
        done.status.code(),
        Some(18),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
}
