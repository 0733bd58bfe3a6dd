//! The end-to-end harness: starts the real app (the repository's `spin.toml`
//! and its built components) on a free port, with a fresh state directory,
//! and talks to it over real HTTP.
//!
//! Two runtimes, picked by `SPINOFF_E2E_RUNTIME`:
//! - `host` (the default): the project's own host (`host/`),
//!   in-process;
//! - `spin`: real `spin up` as a child process (`$SPINOFF_SPIN`, else `spin`
//!   on PATH) with the same built components, killed (the whole process
//!   group, SIGKILL) when the [`App`] is dropped.
//!
//! Tests use only what both runtimes offer: HTTP, Spin variables
//! ([`Options::variables`], `SPIN_VARIABLE_*` for Spin), the state directory,
//! and kill + restart on the same state directory ([`App::restart_with`]).
//! The worker and the notifier run only when a test ticks them
//! (`POST /internal/{worker,notifier}/tick`): the app is started from a copy
//! of `spin.toml` without its `[[trigger.cron]]` tables, unless
//! [`Options::cron`] asks for the real schedule.
//!
//! Build the components first: `scripts/build-wasm` (scripts/test does).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub mod postgres;
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

/// The `spinoff` CLI of the test binaries' profile
/// (`target/<profile>/spinoff`, beside their `deps/`), built first when
/// missing.
pub fn spinoff_cli() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .expect("a test binary in target/<profile>/deps");
    let bin = profile.join("spinoff");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = Command::new(cargo)
            .args(["build", "--locked", "-p", "spinoff-cli"])
            .current_dir(repo_root())
            .status()
            .expect("cargo runs");
        assert!(st.success(), "building the spinoff CLI failed");
    }
    bin
}

/// Run the `spinoff` CLI against `app` as `token`: (succeeded, stdout,
/// stderr).
pub fn spinoff(app: &App, token: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(spinoff_cli())
        .args(args)
        .env("SPINOFF_URL", &app.base)
        .env("SPINOFF_TOKEN", token)
        .output()
        .expect("spinoff runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A TCP port on 127.0.0.1 that nothing listened on a moment ago (the OS
/// picked it for a listener that is closed again): for servers the tests
/// start themselves (app instances, sqld, Redis, the soak's host).
///
/// Never the same port twice in one test process: tests run in parallel,
/// and a port handed to one server that has not bound it yet is free in the
/// kernel's eyes, so a second call could hand it out again.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if GIVEN.lock().unwrap_or_else(|e| e.into_inner()).insert(port) {
            return port;
        }
    }
}

/// Whether an HTTP server answers on `addr`: a request gets a status line
/// back. A bare TCP connect is not enough: it can land on itself (the kernel
/// may pick the target as the probe's own ephemeral port, a TCP simultaneous
/// open), or on a listener that is only briefly there (another test's
/// [`free_port`], or a server's own check that the port is free before it
/// binds for real), and the next request is then refused or reset.
fn answers_http(addr: &std::net::SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(addr, Duration::from_millis(200)) else {
        return false;
    };
    if s.local_addr().ok() == s.peer_addr().ok() {
        return false;
    }
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!(
        "GET /.well-known/spinoff-e2e-ready HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    );
    if s.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}

/// Which runtime serves the app.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    /// The project's host (`host/`), in this process.
    Host,
    /// Real `spin up`, a child process.
    Spin,
}

impl Runtime {
    /// `SPINOFF_E2E_RUNTIME`: `spin`, or `host` (the default).
    pub fn from_env() -> Runtime {
        match std::env::var("SPINOFF_E2E_RUNTIME").as_deref() {
            Ok("spin") => Runtime::Spin,
            Ok("host") | Ok("") | Err(_) => Runtime::Host,
            Ok(other) => panic!("SPINOFF_E2E_RUNTIME={other:?}: expected `host` or `spin`"),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Host => "spinoff-host",
            Runtime::Spin => "spin",
        }
    }
}

/// The `spin` binary: `$SPINOFF_SPIN`, else `spin` on PATH.
pub fn spin_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SPINOFF_SPIN").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("spin"))
            .find(|p| p.is_file())
    })
}

/// How an app starts: the same on either runtime.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Spin variables (`SPIN_VARIABLE_<NAME>` under Spin); `admin_token` is
    /// [`ADMIN_TOKEN`] unless replaced or removed.
    pub variables: BTreeMap<String, String>,
    /// Run the manifest's `[[trigger.cron]]` schedules (the clone worker and
    /// the notifier every 2 s): the real cron plugin under Spin, the host's
    /// scheduler in the host. Off by default, so ticks are the test's own.
    pub cron: bool,
    /// Spin's runtime config (TOML), as `--runtime-config-file` gives it:
    /// where the SQLite database and key-value store live. `None`: local
    /// files in the state directory — unless `SPINOFF_E2E_BACKEND=remote`,
    /// where the harness starts a sqld and a Redis for the app
    /// ([`services::Services`]) and names them here.
    pub runtime_config: Option<String>,
    /// The manifest to serve instead of the project's `spin.toml` (its
    /// sources absolute paths), e.g. [`akamai_manifest`]'s.
    pub manifest: Option<String>,
}

impl Options {
    fn new() -> Options {
        let mut variables = BTreeMap::new();
        variables.insert("admin_token".into(), ADMIN_TOKEN.into());
        Options {
            variables,
            cron: false,
            runtime_config: None,
            manifest: None,
        }
    }
}

/// Where the app keeps its data: `SPINOFF_E2E_BACKEND`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Local SQLite files in the state directory (the default).
    Local,
    /// A real sqld and Redis per app, through the runtime config.
    Remote,
    /// A real PostgreSQL server per app, through the Spin variables
    /// `database = "postgres"`, `postgres_url` and `postgres_host`
    /// (key-value stays in local files).
    Postgres,
}

impl Backend {
    /// `SPINOFF_E2E_BACKEND`: `remote`, `postgres`, or `local` (the default).
    pub fn from_env() -> Backend {
        match std::env::var("SPINOFF_E2E_BACKEND").as_deref() {
            Ok("remote") => Backend::Remote,
            Ok("postgres") => Backend::Postgres,
            Ok("local") | Ok("") | Err(_) => Backend::Local,
            Ok(other) => {
                panic!("SPINOFF_E2E_BACKEND={other:?}: expected `local`, `remote` or `postgres`")
            }
        }
    }
}

/// A running app.
pub struct App {
    pub base: String,
    pub state: tempfile::TempDir,
    pub runtime: Runtime,
    served: Served,
    options: Options,
    agent: ureq::Agent,
    /// The sqld and Redis the harness started for this app (remote
    /// backend); dropped after the app.
    services: Option<services::Services>,
    /// The PostgreSQL server the harness started for this app, and the
    /// app's database URL (PostgreSQL backend); dropped after the app.
    postgres: Option<(postgres::Postgres, String)>,
}

enum Served {
    Host {
        host: Arc<Host>,
        rt: tokio::runtime::Runtime,
    },
    Spin {
        child: Child,
        /// The manifest variant and spin's own output.
        scratch: tempfile::TempDir,
    },
    /// Killed (a restart moved the state directory on).
    Gone,
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

    /// Start the app, letting the caller adjust its options.
    pub fn start_with(mutate: impl FnOnce(&mut Options)) -> App {
        let state = tempfile::tempdir().unwrap();
        App::start_in(state, mutate)
    }

    /// Start the app on an existing state directory.
    pub fn start_in(state: tempfile::TempDir, mutate: impl FnOnce(&mut Options)) -> App {
        let mut opts = Options::new();
        mutate(&mut opts);
        App::try_start(Runtime::from_env(), state, opts)
            .unwrap_or_else(|e| panic!("the app starts (did you run scripts/build-wasm?): {e:#}"))
    }

    /// Start the app on `runtime`; Err carries why it did not start (the
    /// runtime's own message).
    pub fn try_start(
        runtime: Runtime,
        state: tempfile::TempDir,
        options: Options,
    ) -> anyhow::Result<App> {
        App::try_start_on(runtime, Backend::from_env(), state, options)
    }

    /// Start the app on `runtime` with its data on `backend` (the remote
    /// one: a sqld and a Redis started for it, unless `options` already
    /// names a runtime config).
    pub fn try_start_on(
        runtime: Runtime,
        backend: Backend,
        state: tempfile::TempDir,
        mut options: Options,
    ) -> anyhow::Result<App> {
        let services = match (backend, &options.runtime_config) {
            (Backend::Remote, None) => {
                let s = services::Services::start()
                    .map_err(|why| anyhow::anyhow!("SPINOFF_E2E_BACKEND=remote: {why}"))?;
                options.runtime_config = Some(s.runtime_config_toml());
                Some(s)
            }
            _ => None,
        };
        let pg = match backend {
            // A test that names its own runtime config or server chose its
            // backend itself.
            Backend::Postgres
                if options.runtime_config.is_none()
                    && !options.variables.contains_key("postgres_url") =>
            {
                let pg = postgres::Postgres::start()
                    .map_err(|why| anyhow::anyhow!("SPINOFF_E2E_BACKEND=postgres: {why}"))?;
                let url = pg.create_database();
                options.variables.insert("database".into(), "postgres".into());
                options.variables.insert("postgres_url".into(), url.clone());
                options
                    .variables
                    .insert("postgres_host".into(), format!("127.0.0.1:{}", pg.port));
                Some((pg, url))
            }
            _ => None,
        };
        let mut app = App::start_served(runtime, state, options, services)?;
        app.postgres = pg;
        Ok(app)
    }

    fn start_served(
        runtime: Runtime,
        state: tempfile::TempDir,
        options: Options,
        services: Option<services::Services>,
    ) -> anyhow::Result<App> {
        let (served, base) = match runtime {
            Runtime::Host => start_host(state.path(), &options)?,
            Runtime::Spin => start_spin(state.path(), &options)?,
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        Ok(App {
            base,
            state,
            runtime,
            served,
            options,
            agent,
            services,
            postgres: None,
        })
    }

    /// The app's database, beneath the API (tests that check what is stored
    /// or inject a failure): the local file, or the app's sqld.
    pub fn database(&self) -> Box<dyn engine::Db> {
        if let Some((_, url)) = &self.postgres {
            return Box::new(engine::native_pg::NativePgDb::open(url).unwrap());
        }
        match &self.services {
            Some(s) => Box::new(s.database()),
            None => Box::new(engine::native::NativeDb::open(&self.db_path()).unwrap()),
        }
    }

    /// Every key of the app's key-value store and its value (as text), one
    /// `key=value` line each: the local file, or the app's Redis.
    pub fn kv_dump(&self) -> String {
        if let Some(s) = &self.services {
            return s.redis_dump();
        }
        let db =
            engine::native::NativeDb::open(&self.state_dir().join("sqlite_key_value.db")).unwrap();
        let rows = engine::Db::execute(
            &db,
            "SELECT key, CAST(value AS TEXT) FROM spin_key_value ORDER BY key",
            &[],
        )
        .unwrap();
        rows.iter()
            .map(|r| format!("{}={}\n", r.text(0).unwrap(), r.text(1).unwrap_or_default()))
            .collect()
    }

    /// The sqld and Redis behind this app, when the harness started them.
    pub fn services(&self) -> Option<&services::Services> {
        self.services.as_ref()
    }

    /// Kill the app at once (SIGKILL of `spin up` and its triggers; the
    /// host's runtime dropped mid-flight) and start it again on the same
    /// state directory, with the options adjusted by `mutate`.
    pub fn restart_with(mut self, mutate: impl FnOnce(&mut Options)) -> App {
        self.kill();
        let mut options = std::mem::take(&mut self.options);
        mutate(&mut options);
        let state = std::mem::replace(&mut self.state, tempfile::tempdir().unwrap());
        // The same servers: their data is the app's state.
        let services = self.services.take();
        let pg = self.postgres.take();
        let mut app = App::start_served(self.runtime, state, options, services)
            .unwrap_or_else(|e| panic!("the app restarts: {e:#}"));
        app.postgres = pg;
        app
    }

    /// The in-process host (the host runtime only), for the benchmarks'
    /// memory figures.
    pub fn host(&self) -> Option<&Arc<Host>> {
        match &self.served {
            Served::Host { host, .. } => Some(host),
            _ => None,
        }
    }

    /// Kill the app at once: SIGKILL of `spin up` and its triggers, or the
    /// host's runtime dropped mid-flight. Requests fail from then on.
    pub fn kill(&mut self) {
        match std::mem::replace(&mut self.served, Served::Gone) {
            Served::Host { rt, .. } => rt.shutdown_background(),
            Served::Spin { mut child, .. } => kill_group(&mut child),
            Served::Gone => {}
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

    /// One tick of the clone worker (`POST /internal/worker/tick`, admin
    /// token): what its cron trigger runs, on either runtime.
    pub fn tick(&self) -> anyhow::Result<()> {
        self.tick_report().map(|_| ())
    }

    /// One worker tick, and what it did (the worker's JSON report: `steps`,
    /// `records_copied`, `purged_records`, …).
    pub fn tick_report(&self) -> anyhow::Result<Value> {
        self.admin_post("/internal/worker/tick")
    }

    /// One tick of the notifier (`POST /internal/notifier/tick`): what its
    /// cron trigger runs, on either runtime.
    pub fn notify(&self) -> anyhow::Result<()> {
        self.admin_post("/internal/notifier/tick").map(|_| ())
    }

    fn admin_post(&self, path: &str) -> anyhow::Result<Value> {
        let r = self.request(
            "POST",
            path,
            &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
            None,
        );
        anyhow::ensure!(r.status == 200, "{path}: {} {}", r.status, r.body);
        Ok(r.json())
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

    /// Fire the worker over HTTP (`POST /internal/worker/tick`); its report.
    pub fn http_tick(&self) -> Value {
        self.admin_post("/internal/worker/tick")
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// The app's SQLite database file.
    pub fn db_path(&self) -> PathBuf {
        self.state.path().join("sqlite_db.db")
    }
}

impl Drop for App {
    fn drop(&mut self) {
        // A failing test under Spin shows what Spin and the components said
        // (the host's own output is the test's already).
        if std::thread::panicking() {
            if let Served::Spin { scratch, .. } = &self.served {
                let mut files: Vec<PathBuf> = [scratch.path(), &self.state.path().join("logs")]
                    .iter()
                    .filter_map(|d| std::fs::read_dir(d).ok())
                    .flatten()
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "out" || x == "txt"))
                    .collect();
                files.sort();
                for f in files {
                    let text = std::fs::read_to_string(&f).unwrap_or_default();
                    let tail: String = text
                        .chars()
                        .rev()
                        .take(4000)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect();
                    if !tail.trim().is_empty() {
                        eprintln!("--- {} (last 4000 chars) ---\n{tail}", f.display());
                    }
                }
            }
        }
        self.kill();
    }
}

fn start_host(state: &Path, options: &Options) -> anyhow::Result<(Served, String)> {
    let root = repo_root();
    let manifest = match &options.manifest {
        Some(text) => {
            let file = state.join("served-spin.toml");
            std::fs::create_dir_all(state)?;
            std::fs::write(&file, text)?;
            file
        }
        None => root.join("spin.toml"),
    };
    let mut opts = HostOptions::new(manifest, state);
    opts.cache_dir = Some(root.join("target/spinoff-host-cache"));
    opts.variables = options.variables.clone();
    if let Some(toml) = &options.runtime_config {
        opts.runtime_config = Some(spinoff_host::runtime_config::RuntimeConfig::parse(
            toml, state,
        )?);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let host = Arc::new(Host::new(opts)?);
    let (addr, _task) = rt.block_on(spinoff_host::server::bind(
        host.clone(),
        "127.0.0.1:0".parse().unwrap(),
    ))?;
    if options.cron {
        let _in_rt = rt.enter();
        // The tasks end with the runtime.
        drop(host.start_cron()?);
    }
    Ok((Served::Host { host, rt }, format!("http://{addr}")))
}

/// `spin.toml` as the harness serves it under Spin: component sources made
/// absolute (the copy lives in a temporary directory) and, unless `cron`,
/// without its `[[trigger.cron]]` tables.
pub fn manifest_variant(cron: bool) -> String {
    let root = repo_root();
    let text = std::fs::read_to_string(root.join("spin.toml")).unwrap();
    let mut out = String::new();
    let mut in_cron = false;
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with('[') {
            in_cron = !cron && t.starts_with("[[trigger.cron]]");
        }
        if in_cron {
            continue;
        }
        if let Some(rel) = t
            .strip_prefix("source = \"")
            .and_then(|r| r.strip_suffix('"'))
        {
            out.push_str(&format!(
                "source = {:?}\n",
                root.join(rel).display().to_string()
            ));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// `deploy/akamai/spin.toml` as it must read: the project's `spin.toml`
/// for a platform without SQLite or custom triggers (Akamai Functions) —
/// no `[[trigger.cron]]` (the platform's schedule calls the tick routes),
/// no `sqlite_databases`, `database` defaulting to `postgres`, no build
/// sections (`scripts/build-wasm` builds the components), and sources
/// relative to `deploy/akamai/`. With `absolute`, sources are absolute
/// paths (to serve it from a scratch directory).
pub fn akamai_manifest(absolute: bool) -> String {
    let root = repo_root();
    let text = std::fs::read_to_string(root.join("spin.toml")).unwrap();
    let mut out = String::from(
        "# Generated from ../../spin.toml for Akamai Functions (docs/deploy.md):\n\
         # no SQLite (state in PostgreSQL), no cron triggers (the platform's\n\
         # schedule calls POST /internal/worker/tick and /internal/notifier/tick).\n\
         # tests/e2e/tests/akamai.rs keeps it in step: SPINOFF_WRITE_AKAMAI=1\n\
         # cargo test -p spinoff-e2e --test akamai rewrites it.\n",
    );
    let mut skip = false;
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with('[') {
            skip = t.starts_with("[[trigger.cron]]")
                || (t.starts_with("[component.") && t.ends_with(".build]"));
        }
        if skip || t.starts_with("sqlite_databases") {
            continue;
        }
        if t.starts_with("database = { default = \"sqlite\" }") {
            out.push_str("database = { default = \"postgres\" }\n");
        } else if let Some(rel) = t
            .strip_prefix("source = \"")
            .and_then(|r| r.strip_suffix('"'))
        {
            let path = if absolute {
                root.join(rel).display().to_string()
            } else {
                format!("../../{rel}")
            };
            out.push_str(&format!("source = {path:?}\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    // Blank lines left where removed tables were: at most one in a row.
    while out.contains("\n\n\n") {
        out = out.replace("\n\n\n", "\n\n");
    }
    out
}

fn start_spin(state: &Path, options: &Options) -> anyhow::Result<(Served, String)> {
    let spin = spin_binary().ok_or_else(|| {
        anyhow::anyhow!(
            "SPINOFF_E2E_RUNTIME=spin but no spin (set SPINOFF_SPIN or put spin on PATH)"
        )
    })?;
    let scratch = tempfile::tempdir()?;
    let manifest = scratch.path().join("spin.toml");
    let text = match &options.manifest {
        Some(text) => text.clone(),
        None => manifest_variant(options.cron),
    };
    std::fs::write(&manifest, text)?;
    // A port taken between our probe and spin's bind: try another.
    let mut last = String::new();
    for attempt in 0..3 {
        let port = free_port();
        let out = std::fs::File::create(scratch.path().join(format!("spin-{attempt}.out")))?;
        let mut cmd = Command::new(&spin);
        cmd.args([
            "up",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--state-dir",
        ])
        .arg(state)
        .arg("-f")
        .arg(&manifest);
        if let Some(toml) = &options.runtime_config {
            let file = scratch.path().join("runtime-config.toml");
            std::fs::write(&file, toml)?;
            cmd.arg("--runtime-config-file").arg(file);
        }
        cmd.current_dir(scratch.path())
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        for (k, _) in std::env::vars() {
            if k.starts_with("SPIN_VARIABLE_") {
                cmd.env_remove(k);
            }
        }
        for (k, v) in &options.variables {
            cmd.env(format!("SPIN_VARIABLE_{}", k.to_uppercase()), v);
        }
        // Its own process group: `spin up` starts its triggers as children,
        // and a kill must reach them all.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn()?;
        let deadline = Instant::now() + Duration::from_secs(300);
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        loop {
            if let Some(status) = child.try_wait()? {
                kill_group(&mut child);
                last = format!(
                    "spin up exited ({status}): {}",
                    std::fs::read_to_string(scratch.path().join(format!("spin-{attempt}.out")))
                        .unwrap_or_default()
                );
                break;
            }
            if answers_http(&addr) {
                return Ok((
                    Served::Spin { child, scratch },
                    format!("http://127.0.0.1:{port}"),
                ));
            }
            if Instant::now() > deadline {
                kill_group(&mut child);
                anyhow::bail!("spin up did not listen on {addr} within 300 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if !last.contains("in use") {
            break;
        }
    }
    anyhow::bail!("{last}")
}

/// SIGKILL to a child's whole process group (`spin up` and its triggers).
fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
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
    throttled_wildcard_proxy(app_base, None)
}

/// [`wildcard_proxy`], passing the app's answers on at most
/// `bytes_per_second` (a slow client, so that a test can act mid-stream).
pub fn throttled_wildcard_proxy(app_base: &str, bytes_per_second: Option<u64>) -> String {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    let target: std::net::SocketAddr = app_base
        .trim_start_matches("http://")
        .parse()
        .expect("the app listens on an IP address");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    fn serve(
        mut client: TcpStream,
        target: std::net::SocketAddr,
        rate: Option<u64>,
    ) -> std::io::Result<()> {
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
        match rate {
            None => {
                let _ = std::io::copy(&mut upstream, &mut client);
            }
            Some(rate) => {
                // 16 KiB at a time, each followed by its share of a second.
                let mut buf = vec![0u8; 16 << 10];
                loop {
                    let n = match upstream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if client.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_micros(
                        n as u64 * 1_000_000 / rate.max(1),
                    ));
                }
            }
        }
        let _ = client.shutdown(Shutdown::Both);
        let _ = up.join();
        Ok(())
    }
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(client) = conn else { continue };
            std::thread::spawn(move || {
                let _ = serve(client, target, bytes_per_second);
            });
        }
    });
    url
}
