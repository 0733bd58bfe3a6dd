//! The end-to-end harness: starts the real app (the repository's `spin.toml`
//! and its built components) in the test host on a free port, with a fresh
//! state directory, and talks to it over real HTTP.
//!
//! Build the components first: `scripts/build-wasm` (scripts/test does).

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub mod services;

pub use serde_json::{json, Value};
use spinoff_host::{Host, HostOptions};

/// The admin token every test app runs with.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A running app.
pub struct App {
    pub base: String,
    pub host: Arc<Host>,
    pub rt: tokio::runtime::Runtime,
    pub state: tempfile::TempDir,
    agent: ureq::Agent,
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl App {
    /// Start the app with a fresh state directory.
    pub fn start() -> App {
        App::start_with(|_| {})
    }

    /// Start the app, letting the caller adjust the host's options.
    pub fn start_with(mutate: impl FnOnce(&mut HostOptions)) -> App {
        let state = tempfile::tempdir().unwrap();
        App::start_in(state, mutate)
    }

    /// Start the app on an existing state directory (restart after a "crash").
    pub fn start_in(state: tempfile::TempDir, mutate: impl FnOnce(&mut HostOptions)) -> App {
        let mut opts = options(state.path());
        mutate(&mut opts);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let host =
            Arc::new(Host::new(opts).expect("host starts (did you run scripts/build-wasm?)"));
        let (addr, _task) = rt
            .block_on(spinoff_host::server::bind(
                host.clone(),
                "127.0.0.1:0".parse().unwrap(),
            ))
            .unwrap();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        App {
            base: format!("http://{addr}"),
            host,
            rt,
            state,
            agent,
        }
    }

    /// Send one request. `headers` are added as given.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Reply {
        let url = format!("{}{}", self.base, path);
        let req = http_request(method, &url, headers);
        let resp = match body {
            Some(b) => self.agent.run(req.body(b.to_vec()).unwrap()),
            None => self.agent.run(req.body(Vec::new()).unwrap()),
        };
        let mut resp = resp.unwrap_or_else(|e| panic!("{method} {path}: request failed: {e}"));
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let body = resp
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_string()
            .unwrap_or_default();
        Reply {
            status,
            headers,
            body,
        }
    }

    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.request("GET", path, headers, None)
    }

    /// Send a JSON body.
    pub fn send_json(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> Reply {
        let mut h: Vec<(&str, &str)> = headers.to_vec();
        h.push(("content-type", "application/json"));
        self.request(method, path, &h, Some(body.to_string().as_bytes()))
    }

    /// Fire one cron tick of the clone worker, as the cron trigger would.
    pub fn tick(&self) -> anyhow::Result<()> {
        self.rt.block_on(self.host.fire_cron("clone-worker"))
    }

    /// Fire one cron tick of the notifier (the clone worker's Wasm with its
    /// delivery duty), as the cron trigger would.
    pub fn notify(&self) -> anyhow::Result<()> {
        self.rt.block_on(self.host.fire_cron("notifier"))
    }

    pub fn state_dir(&self) -> &Path {
        self.state.path()
    }
}

fn http_request(method: &str, url: &str, headers: &[(&str, &str)]) -> ureq::http::request::Builder {
    let mut b = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b
}

/// The host options for the repository's `spin.toml` in `state`.
pub fn options(state: &Path) -> HostOptions {
    let root = repo_root();
    let mut opts = HostOptions::new(root.join("spin.toml"), state);
    opts.cache_dir = Some(root.join("target/spinoff-host-cache"));
    opts.variables
        .insert("admin_token".into(), ADMIN_TOKEN.into());
    opts
}

impl App {
    /// Mint a tenant token with the admin token.
    pub fn token(&self, tenant: &str) -> String {
        let r = self.send_json(
            "POST",
            "/data/v1/tokens",
            &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
            &json!({"tenant": tenant}),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        r.json()["token"].as_str().unwrap().to_string()
    }

    /// Fire the worker over HTTP (`POST /internal/worker/tick`).
    pub fn http_tick(&self) -> Value {
        let r = self.request(
            "POST",
            "/internal/worker/tick",
            &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
            None,
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    }

    /// The app's SQLite database file.
    pub fn db_path(&self) -> PathBuf {
        self.state.path().join("sqlite_db.db")
    }
}

/// `Authorization: Bearer <token>` as a header list.
pub fn bearer(token: &str) -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {token}"))]
}

/// Parse NDJSON lines.
pub fn ndjson(body: &str) -> Vec<Value> {
    body.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

/// Server-sent events from a blocking reader (a live response body or a
/// buffered one), parsed by `eventsource-stream` (the WHATWG rules: fields,
/// comments, multi-line data, dispatch on a blank line).
pub fn sse_events(mut r: impl std::io::Read + Unpin) -> impl Iterator<Item = SseEvent> {
    use eventsource_stream::Eventsource;
    let chunks = futures::stream::poll_fn(move |_| {
        let mut buf = vec![0; 8192];
        std::task::Poll::Ready(match r.read(&mut buf) {
            Ok(0) | Err(_) => None,
            Ok(n) => Some(Ok::<_, std::io::Error>(buf[..n].to_vec())),
        })
    });
    futures::executor::block_on_stream(chunks.eventsource())
        .map_while(Result::ok)
        .map(|e| SseEvent {
            // The last event id carries over to events without one (the
            // spec's rule); an empty one is none.
            id: (!e.id.is_empty()).then_some(e.id),
            event: e.event,
            data: e.data,
        })
}

/// A server-sent events reader over a live HTTP response.
pub struct SseReader {
    events: Box<dyn Iterator<Item = SseEvent>>,
    pub status: u16,
    pub content_type: String,
}

impl SseReader {
    pub fn open(app: &App, path: &str, headers: &[(&str, &str)]) -> SseReader {
        let url = format!("{}{}", app.base, path);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut req = agent.get(&url).header("accept", "text/event-stream");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.call().expect("SSE request");
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        SseReader {
            events: Box::new(sse_events(resp.into_body().into_reader())),
            status,
            content_type,
        }
    }
}

impl Iterator for SseReader {
    type Item = SseEvent;
    fn next(&mut self) -> Option<SseEvent> {
        self.events.next()
    }
}

/// A vendor OpenAPI document from `../shared/vendor-openapi/` (or
/// `$SPINOFF_VENDOR_OPENAPI`), as JSON with OpenAPI 3.0's `nullable`
/// rewritten to JSON Schema's `type: [T, "null"]`.
pub fn vendor_openapi(file: &str) -> Option<Value> {
    let dir = std::env::var("SPINOFF_VENDOR_OPENAPI")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join("tests/e2e/vendor-openapi"));
    let text = std::fs::read_to_string(dir.join(file)).ok()?;
    let mut v: Value = if file.ends_with(".json") {
        serde_json::from_str(&text).ok()?
    } else {
        serde_norway::from_str(&text).ok()?
    };
    fn fix(v: &mut Value) {
        match v {
            Value::Object(m) => {
                if m.get("nullable") == Some(&Value::Bool(true)) {
                    if let Some(Value::String(t)) = m.get("type").cloned() {
                        m.insert("type".into(), json!([t, "null"]));
                    }
                    // OpenAPI 3.0: `nullable` admits null even beside an enum.
                    if let Some(Value::Array(e)) = m.get_mut("enum") {
                        if !e.contains(&Value::Null) {
                            e.push(Value::Null);
                        }
                    }
                }
                for (_, x) in m.iter_mut() {
                    fix(x);
                }
            }
            Value::Array(a) => a.iter_mut().for_each(fix),
            _ => {}
        }
    }
    fix(&mut v);
    Some(v)
}

/// Validate `instance` against `#/components/schemas/{schema}` of an OpenAPI document.
pub fn validate(doc: &Value, schema: &str, instance: &Value) -> Result<(), String> {
    let root =
        json!({"$ref": format!("#/components/schemas/{schema}"), "components": doc["components"]});
    let v = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .should_validate_formats(true)
        .build(&root)
        .map_err(|e| format!("schema {schema}: {e}"))?;
    let errors: Vec<String> = v
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("{schema}: {}\n{instance}", errors.join("; ")))
    }
}

/// The folder `tests/<folder>` of a Node client whose `npm ci` installed
/// `package`, or `None` (with a message) to skip outside CI; under CI a
/// missing install is a failure, never a silent pass.
pub fn node_client(folder: &str, package: &str) -> Option<PathBuf> {
    let dir = repo_root().join("tests").join(folder);
    if dir.join("node_modules").join(package).exists() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok() {
        panic!("tests/{folder}/node_modules is missing: scripts/test runs `npm ci` there");
    }
    eprintln!("skipped: run `npm ci` in tests/{folder} (scripts/test does)");
    None
}

/// A forward proxy that sends every request to the app, whatever host it
/// names, with its `Host` header as the client sent it: what wildcard DNS
/// (`*.api.example.com`) gives a deployment, for clients that put a name in
/// the host (Sanity's `<projectId>.<api host>`). It serves both forms
/// clients use: `CONNECT` tunnels (undici, Node's fetch) and absolute-form
/// requests (get-it over `http`), piped to the app byte for byte. Returns
/// the proxy's URL (`http://127.0.0.1:<port>`) for `HTTP_PROXY`.
pub fn wildcard_proxy(app_base: &str) -> String {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    let target: std::net::SocketAddr = app_base
        .trim_start_matches("http://")
        .parse()
        .expect("the app listens on an IP address");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    fn serve(mut client: TcpStream, target: std::net::SocketAddr) -> std::io::Result<()> {
        let mut head = Vec::new();
        let mut buf = [0u8; 8192];
        let end = loop {
            let n = client.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            head.extend_from_slice(&buf[..n]);
            if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if head.len() > 64 << 10 {
                return Ok(());
            }
        };
        let mut upstream = TcpStream::connect(target)?;
        let _ = upstream.set_nodelay(true);
        let _ = client.set_nodelay(true);
        if head.starts_with(b"CONNECT ") {
            client.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")?;
            upstream.write_all(&head[end..])?;
        } else {
            upstream.write_all(&head)?;
        }
        let (mut c2, mut u2) = (client.try_clone()?, upstream.try_clone()?);
        let up = std::thread::spawn(move || {
            let _ = std::io::copy(&mut c2, &mut u2);
            let _ = u2.shutdown(Shutdown::Write);
        });
        let _ = std::io::copy(&mut upstream, &mut client);
        let _ = client.shutdown(Shutdown::Both);
        let _ = up.join();
        Ok(())
    }
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(client) = conn else { continue };
            std::thread::spawn(move || {
                let _ = serve(client, target);
            });
        }
    });
    url
}
