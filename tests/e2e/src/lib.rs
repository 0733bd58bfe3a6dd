//! The end-to-end harness: starts the real app (the repository's `spin.toml`
//! and its built components) in the test host on a free port, with a fresh
//! state directory, and talks to it over real HTTP.
//!
//! Build the components first: `scripts/build-wasm` (scripts/test does).

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use serde_json::{json, Value};
use spinoff_host::{Host, HostOptions};

/// The admin token every test app runs with.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
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
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
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
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let host = Arc::new(Host::new(opts).expect("host starts (did you run scripts/build-wasm?)"));
        let (addr, _task) = rt
            .block_on(spinoff_host::server::bind(host.clone(), "127.0.0.1:0".parse().unwrap()))
            .unwrap();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        App { base: format!("http://{addr}"), host, rt, state, agent }
    }

    /// Send one request. `headers` are added as given.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Reply {
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
        let body = resp.body_mut().with_config().limit(1 << 30).read_to_string().unwrap_or_default();
        Reply { status, headers, body }
    }

    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.request("GET", path, headers, None)
    }

    /// Send a JSON body.
    pub fn send_json(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &Value) -> Reply {
        let mut h: Vec<(&str, &str)> = headers.to_vec();
        h.push(("content-type", "application/json"));
        self.request(method, path, &h, Some(body.to_string().as_bytes()))
    }

    /// Fire one cron tick of the clone worker, as the cron trigger would.
    pub fn tick(&self) -> anyhow::Result<()> {
        self.rt.block_on(self.host.fire_cron("clone-worker"))
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
    opts.variables.insert("admin_token".into(), ADMIN_TOKEN.into());
    opts
}
