//! Real servers for the remote backends: a `sqld` (libSQL server) and a
//! Redis, each a child process on a free loopback port with its own data,
//! stopped when dropped. `scripts/services` installs both into
//! `target/services/bin` (scripts/test runs it); `PATH` is searched too.
//!
//! Where a server is missing, [`Services::start`] answers why, and the
//! caller prints that it skipped — unless `SPINOFF_REQUIRE_SERVICES=1`
//! (set by scripts/test), where a missing server fails the test.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, repo_root};

/// A running sqld and Redis, and the runtime config naming them.
pub struct Services {
    pub sqld: Server,
    pub redis: Server,
}

/// One server process.
pub struct Server {
    child: Child,
    pub addr: String,
    pub dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server binary: `target/services/bin/NAME`, else on `PATH`.
pub fn binary(name: &str) -> Option<PathBuf> {
    let local = repo_root().join("target/services/bin").join(name);
    if local.exists() {
        return Some(local);
    }
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|f| f.is_file())
    })
}

fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let t = Instant::now();
    while !ready() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{what} did not start in 20 s"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

impl Services {
    /// Start both servers, or say why not.
    pub fn start() -> Result<Services, String> {
        Services::start_checkpointing_every(60)
    }

    /// Start both, sqld checkpointing every `seconds`.
    pub fn start_checkpointing_every(seconds: u32) -> Result<Services, String> {
        let sqld = binary("sqld").ok_or("no sqld (run scripts/services)")?;
        let redis = binary("redis-server").ok_or("no redis-server (run scripts/services)")?;
        Ok(Services {
            sqld: start_sqld(&sqld, seconds),
            redis: start_redis(&redis),
        })
    }

    /// Start both, or skip: `None` after printing why, or a panic where
    /// `SPINOFF_REQUIRE_SERVICES=1` says they must be there.
    pub fn start_or_skip(test: &str) -> Option<Services> {
        Services::start_or_skip_checkpointing_every(test, 60)
    }

    /// [`Services::start_or_skip`], sqld checkpointing every `seconds`.
    pub fn start_or_skip_checkpointing_every(test: &str, seconds: u32) -> Option<Services> {
        match Services::start_checkpointing_every(seconds) {
            Ok(s) => Some(s),
            Err(why) if std::env::var("SPINOFF_REQUIRE_SERVICES").as_deref() == Ok("1") => {
                panic!("{test}: {why}, and SPINOFF_REQUIRE_SERVICES=1")
            }
            Err(why) => {
                eprintln!("SKIPPED {test}: {why}");
                None
            }
        }
    }

    /// The runtime config (Spin's TOML, as `--runtime-config-file` reads
    /// it) putting the app's `default` database on this sqld and its
    /// `default` store on this Redis.
    pub fn runtime_config_toml(&self) -> String {
        format!(
            "[sqlite_database.default]\ntype = \"libsql\"\nurl = \"http://{}\"\ntoken = \"\"\n\n\
             [key_value_store.default]\ntype = \"redis\"\nurl = \"redis://{}\"\n",
            self.sqld.addr, self.redis.addr
        )
    }

    /// A Redis command (inline protocol), answered as raw RESP text.
    pub fn redis(&self, command: &str) -> String {
        let mut s = TcpStream::connect(&self.redis.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(format!("{command}\r\n").as_bytes()).unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 65536];
        // One reply; small answers arrive in one read, keep reading while full.
        loop {
            let n = s.read(&mut buf).unwrap();
            out.extend_from_slice(&buf[..n]);
            if n < buf.len() {
                break;
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl Services {
    /// SIGKILL sqld: the app's database is lost mid-request.
    pub fn kill_sqld(&mut self) {
        let _ = self.sqld.child.kill();
        let _ = self.sqld.child.wait();
    }

    /// Start sqld again on the same files and address, after
    /// [`Services::kill_sqld`].
    pub fn restart_sqld(&mut self) {
        let bin = binary("sqld").expect("sqld");
        self.sqld.child = spawn_sqld(&bin, self.sqld.dir.path(), &self.sqld.addr, 60);
        wait_for_sqld(&self.sqld.addr);
    }
}

/// Start a sqld on a free port and wait until *it* answers; as with Redis,
/// a port taken between choosing and binding it makes sqld exit, and
/// another is tried.
fn start_sqld(bin: &PathBuf, checkpoint_interval_s: u32) -> Server {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    for _ in 0..10 {
        let dir = tempfile::tempdir().unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let mut child = spawn_sqld(bin, dir.path(), &addr, checkpoint_interval_s);
        let t = Instant::now();
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                break; // the port was taken: try another
            }
            let healthy = agent
                .get(format!("http://{addr}/health"))
                .call()
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if healthy {
                return Server { child, addr, dir };
            }
            assert!(t.elapsed() < Duration::from_secs(20), "sqld did not start in 20 s");
            std::thread::sleep(Duration::from_millis(25));
        }
    }
    panic!("sqld could not bind a free port in 10 tries");
}

fn wait_for_sqld(addr: &str) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    wait_until("sqld", || {
        agent
            .get(format!("http://{addr}/health"))
            .call()
            .map(|r| r.status().is_success())
            .unwrap_or(false)
    });
}

fn spawn_sqld(
    bin: &PathBuf,
    dir: &std::path::Path,
    addr: &str,
    checkpoint_interval_s: u32,
) -> Child {
    Command::new(bin)
        .arg("--db-path")
        .arg(dir.join("db"))
        .args(["--http-listen-addr", addr])
        // Time-based checkpoints only: sqld's frame-count auto-checkpoint
        // can leave its write queue stuck for good under concurrent writers
        // (docs/deploy.md).
        .args([
            "--checkpoint-interval-s",
            &checkpoint_interval_s.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()))
}

/// Start a Redis on a free port, and wait until *it* answers `PING`. A free
/// port can be taken between choosing and binding it (tests start servers
/// and receivers in parallel): then this Redis exits, and another port is
/// tried; a connection alone could reach the other listener.
fn start_redis(bin: &PathBuf) -> Server {
    for _ in 0..10 {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut child = Command::new(bin)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let addr = format!("127.0.0.1:{port}");
        let t = Instant::now();
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                break; // the port was taken: try another
            }
            if redis_pong(&addr) {
                return Server { child, addr, dir };
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "redis-server did not start in 20 s"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }
    panic!("redis-server could not bind a free port in 10 tries");
}

/// Whether a Redis answers `PING` at `addr`.
fn redis_pong(addr: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
}

impl Services {
    /// Every key of the Redis and its value, one `key=value` line each,
    /// sorted (values as text).
    pub fn redis_dump(&self) -> String {
        let mut s = TcpStream::connect(&self.redis.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut r = std::io::BufReader::new(s.try_clone().unwrap());
        let mut send = |args: &[&str]| -> Resp {
            let mut cmd = format!("*{}\r\n", args.len());
            for a in args {
                cmd.push_str(&format!("${}\r\n{a}\r\n", a.len()));
            }
            s.write_all(cmd.as_bytes()).unwrap();
            read_resp(&mut r)
        };
        let Resp::Array(keys) = send(&["KEYS", "*"]) else {
            panic!("KEYS answered no array")
        };
        let mut lines: Vec<String> = keys
            .into_iter()
            .map(|k| {
                let Resp::Bulk(Some(k)) = k else {
                    panic!("a key that is no string")
                };
                let k = String::from_utf8_lossy(&k).into_owned();
                let v = match send(&["GET", &k]) {
                    Resp::Bulk(Some(v)) => String::from_utf8_lossy(&v).into_owned(),
                    _ => String::new(),
                };
                format!("{k}={v}\n")
            })
            .collect();
        lines.sort();
        lines.concat()
    }

    /// The app's database on this sqld, over Hrana's HTTP pipeline: for
    /// tests that look beneath the API, as they open the local file.
    pub fn database(&self) -> HranaDb {
        HranaDb::open(&self.sqld.addr)
    }
}

/// A sqld alone (no Redis), on a fresh database: the simulation's remote
/// backend.
pub fn start_sqld_alone() -> Result<Server, String> {
    let sqld = binary("sqld").ok_or("no sqld (run scripts/services)")?;
    Ok(start_sqld(&sqld, 60))
}

/// A Redis alone (what a platform's key-value store is for the app).
pub fn start_redis_alone() -> Result<Server, String> {
    let redis = binary("redis-server").ok_or("no redis-server (run scripts/services)")?;
    Ok(start_redis(&redis))
}

impl HranaDb {
    /// A new stream on the sqld at `addr` (host:port).
    pub fn open(addr: &str) -> HranaDb {
        HranaDb {
            url: format!("http://{addr}/v2/pipeline"),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(30)))
                .build()
                .into(),
            baton: std::cell::RefCell::new(None),
        }
    }
}

/// A dropped connection closes its stream: sqld rolls back what it left
/// open at once, instead of holding the write lock until the stream
/// expires.
impl Drop for HranaDb {
    fn drop(&mut self) {
        if let Some(baton) = self.baton.borrow_mut().take() {
            let body = serde_json::json!({"baton": baton, "requests": [{"type": "close"}]});
            let _ = self
                .agent
                .post(&self.url)
                .header("content-type", "application/json")
                .send(body.to_string());
        }
    }
}

/// A RESP reply (the subset `redis_dump` reads).
enum Resp {
    Simple,
    Bulk(Option<Vec<u8>>),
    Array(Vec<Resp>),
}

fn read_resp(r: &mut impl std::io::BufRead) -> Resp {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let line = line.trim_end();
    let (kind, rest) = line.split_at(1);
    match kind {
        "+" | ":" => Resp::Simple,
        "-" => panic!("redis error: {rest}"),
        "$" => {
            let n: i64 = rest.parse().unwrap();
            if n < 0 {
                return Resp::Bulk(None);
            }
            let mut buf = vec![0; n as usize + 2];
            r.read_exact(&mut buf).unwrap();
            buf.truncate(n as usize);
            Resp::Bulk(Some(buf))
        }
        "*" => {
            let n: i64 = rest.parse().unwrap();
            Resp::Array((0..n.max(0)).map(|_| read_resp(r)).collect())
        }
        other => panic!("unexpected RESP type {other:?}"),
    }
}

/// An engine [`engine::Db`] on a sqld over Hrana's HTTP pipeline
/// (`POST /v2/pipeline`), keeping the stream's baton between statements so
/// a transaction spans them.
pub struct HranaDb {
    url: String,
    agent: ureq::Agent,
    baton: std::cell::RefCell<Option<String>>,
}

impl engine::Db for HranaDb {
    fn execute(
        &self,
        sql: &str,
        params: &[engine::Value],
    ) -> Result<Vec<engine::Row>, engine::DbError> {
        use base64::Engine as _;
        use serde_json::{json, Value};
        let args: Vec<Value> = params
            .iter()
            .map(|v| match v {
                engine::Value::Null => json!({"type": "null"}),
                engine::Value::Integer(i) => json!({"type": "integer", "value": i.to_string()}),
                engine::Value::Real(f) => json!({"type": "float", "value": f}),
                engine::Value::Text(s) => json!({"type": "text", "value": s}),
                engine::Value::Blob(b) => json!({"type": "blob",
                    "base64": base64::engine::general_purpose::STANDARD_NO_PAD.encode(b)}),
            })
            .collect();
        let body = json!({
            "baton": *self.baton.borrow(),
            "requests": [{"type": "execute", "stmt": {"sql": sql, "args": args}}],
        });
        let mut r = self
            .agent
            .post(&self.url)
            .header("content-type", "application/json")
            .send(body.to_string())
            .map_err(|e| engine::DbError::Unavailable(e.to_string()))?;
        let text = r
            .body_mut()
            .read_to_string()
            .map_err(|e| engine::DbError::Other(e.to_string()))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| engine::DbError::Other(format!("{e}: {text}")))?;
        *self.baton.borrow_mut() = v["baton"].as_str().map(str::to_string);
        if v["results"].is_null() {
            // sqld refused the request itself (an expired or unknown stream).
            return Err(engine::DbError::Unavailable(text));
        }
        let res = &v["results"][0];
        if res["type"] != "ok" {
            // sqld's error codes, as the app's adapter classifies them.
            let code = res["error"]["code"].as_str().unwrap_or("");
            let m = res["error"].to_string();
            return Err(
                if code.starts_with("SQLITE_BUSY") || code.starts_with("SQLITE_LOCKED") {
                    engine::DbError::Busy(m)
                } else if code.starts_with("SQLITE_CONSTRAINT") {
                    engine::DbError::Constraint(m)
                } else if code.contains("STREAM_EXPIRED") || code.contains("TRANSACTION_TIMEOUT") {
                    engine::DbError::Unavailable(m)
                } else {
                    engine::DbError::Other(m)
                },
            );
        }

        let rows = res["response"]["result"]["rows"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        Ok(rows
            .iter()
            .map(|row| {
                engine::Row(
                    row.as_array()
                        .unwrap()
                        .iter()
                        .map(|c| match c["type"].as_str() {
                            Some("integer") => engine::Value::Integer(
                                c["value"].as_str().unwrap().parse().unwrap(),
                            ),
                            Some("float") => engine::Value::Real(c["value"].as_f64().unwrap()),
                            Some("text") => {
                                engine::Value::Text(c["value"].as_str().unwrap().to_string())
                            }
                            Some("blob") => engine::Value::Blob(
                                base64::engine::general_purpose::STANDARD_NO_PAD
                                    .decode(c["base64"].as_str().unwrap().trim_end_matches('='))
                                    .unwrap(),
                            ),
                            _ => engine::Value::Null,
                        })
                        .collect(),
                )
            })
            .collect())
    }
}
