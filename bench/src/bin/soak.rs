//! `spinoff-soak`: mixed traffic against the real app for N minutes, with a
//! dead and a slow webhook receiver, watching the host's memory, open files
//! and worker tick; then checks that every operation it started ended
//! consistently.
//!
//! Build first (from the repository root):
//!
//! ```sh
//! scripts/build-wasm
//! cargo build --release -p spinoff-host -p spinoff-bench
//! target/release/spinoff-soak --minutes 10
//! ```
//!
//! It runs `spinoff-host` (the binary next to its own executable) as a child
//! process on a free loopback port with a fresh state directory, so the real
//! cron triggers run the clone worker and the notifier every 2 s.

use std::collections::BTreeMap;

use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use spinoff_bench::soak::families::{self, Family};
use spinoff_bench::soak::process;
use spinoff_bench::soak::receivers::{dead_receiver, slow_receiver};
use spinoff_bench::stats::Times;
use spinoff_e2e::{free_port, json, sse_events, Value};

#[derive(Parser)]
#[command(
    about = "Soak test: mixed traffic, dead and slow webhook receivers, leak and consistency checks"
)]
struct Cli {
    /// Minutes of traffic.
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// Requests per second.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Worker threads sending the traffic.
    #[arg(long, default_value_t = 8)]
    threads: usize,
    /// The app's manifest (default: spin.toml of the repository the binary was built in).
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// Seconds between starts (over all six families, round robin; 0: none).
    #[arg(long, default_value_t = 2.0)]
    start_every: f64,
    /// Seconds between 200-record imports into the data API source (0: none).
    #[arg(long, default_value_t = 3.0)]
    import_every: f64,
}

const ADMIN: &str = "soak-admin-token-0123456789abcdef";

// ---------------------------------------------------------------- HTTP + stats

#[derive(Default)]
struct RouteStats {
    lat_us: Vec<u64>,
    statuses: BTreeMap<u16, u64>,
}

struct Http {
    base: String,
    agent: ureq::Agent,
    sse_agent: ureq::Agent,
    stats: Mutex<BTreeMap<String, RouteStats>>,
    server_errors: Mutex<Vec<String>>,
}

struct Reply {
    status: u16,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

impl Http {
    fn new(base: String) -> Http {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        let sse_agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(15)))
            .build()
            .into();
        Http {
            base,
            agent,
            sse_agent,
            stats: Mutex::new(BTreeMap::new()),
            server_errors: Mutex::new(Vec::new()),
        }
    }

    fn record(&self, label: &str, status: u16, took: Duration, what: &str, body: &str) {
        let mut s = self.stats.lock().unwrap();
        let r = s.entry(label.to_string()).or_default();
        r.lat_us.push(took.as_micros() as u64);
        *r.statuses.entry(status).or_default() += 1;
        drop(s);
        if status >= 500 || status == 0 {
            let mut e = self.server_errors.lock().unwrap();
            if e.len() < 50 {
                e.push(format!(
                    "{label}: {what} -> {status}: {}",
                    body.chars().take(600).collect::<String>()
                ));
            }
        }
    }

    /// One request, counted under `label`. Status 0 is a transport error.
    fn req(
        &self,
        label: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Reply {
        let url = format!("{}{}", self.base, path);
        let mut b = ureq::http::Request::builder().method(method).uri(&url);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let t = Instant::now();
        let r = self.agent.run(b.body(body.unwrap_or_default()).unwrap());
        let reply = match r {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                let body = resp
                    .body_mut()
                    .with_config()
                    .limit(1 << 31)
                    .read_to_string()
                    .unwrap_or_default();
                Reply { status, body }
            }
            Err(e) => Reply {
                status: 0,
                body: format!("transport error: {e}"),
            },
        };
        self.record(
            label,
            reply.status,
            t.elapsed(),
            &format!("{method} {path}"),
            &reply.body,
        );
        reply
    }

    fn json(&self, label: &str, method: &str, path: &str, auth: &Auth, body: &Value) -> Reply {
        let (k, v) = auth.header();
        self.req(
            label,
            method,
            path,
            &[(k, v.as_str()), ("content-type", "application/json")],
            Some(body.to_string().into_bytes()),
        )
    }

    fn call(&self, label: &str, method: &str, path: &str, auth: &Auth) -> Reply {
        let (k, v) = auth.header();
        self.req(label, method, path, &[(k, v.as_str())], None)
    }

    fn admin(&self, label: &str, path: &str) -> Reply {
        self.req(
            label,
            "POST",
            path,
            &[("authorization", &format!("Bearer {ADMIN}"))],
            None,
        )
    }

    /// Follow an operation's events until a terminal event or 15 s.
    /// Returns (status, terminal event kind if seen, events).
    fn follow(&self, label: &str, path: &str, auth: &Auth) -> (u16, Option<String>, usize) {
        let (k, v) = auth.header();
        let t = Instant::now();
        let resp = self
            .sse_agent
            .get(format!("{}{}", self.base, path))
            .header("accept", "text/event-stream")
            .header(k, v.as_str())
            .call();
        let mut resp = match resp {
            Ok(r) => r,
            Err(e) => {
                self.record(label, 0, t.elapsed(), path, &format!("{e}"));
                return (0, None, 0);
            }
        };
        let status = resp.status().as_u16();
        if status != 200 {
            let body = resp.body_mut().read_to_string().unwrap_or_default();
            self.record(label, status, t.elapsed(), path, &body);
            return (status, None, 0);
        }
        let mut n = 0;
        let mut terminal = None;
        for ev in sse_events(resp.into_body().into_reader()) {
            n += 1;
            if matches!(ev.event.as_str(), "succeeded" | "failed" | "canceled") {
                terminal = Some(ev.event.clone());
                break;
            }
            if t.elapsed() > Duration::from_secs(15) {
                break;
            }
        }
        self.record(label, status, t.elapsed(), path, "");
        (status, terminal, n)
    }
}

#[derive(Clone, Debug)]
enum Auth {
    Bearer(String),
    Typesense(String),
    Qovery(String),
    None,
}

impl Auth {
    fn header(&self) -> (&'static str, String) {
        match self {
            Auth::Bearer(t) => ("authorization", format!("Bearer {t}")),
            Auth::Typesense(t) => ("x-typesense-cloud-management-api-key", t.clone()),
            Auth::Qovery(t) => ("authorization", format!("Token {t}")),
            Auth::None => ("x-soak", String::new()),
        }
    }
    fn token(&self) -> &str {
        match self {
            Auth::Bearer(t) | Auth::Typesense(t) | Auth::Qovery(t) => t,
            Auth::None => "",
        }
    }
}

// ---------------------------------------------------------------- receivers

// ---------------------------------------------------------------- the app

struct HostChild(Child);
impl Drop for HostChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ---------------------------------------------------------------- operations

#[derive(Clone, Debug)]
struct Op {
    family: Family,
    /// The id in its family's API.
    id: String,
    /// Where its status is read.
    status_path: String,
    auth: Auth,
    /// Data API clones: target and snapshot.
    target: String,
    snapshot_lsn: i64,
    /// Data API clones: the cancel's answer (0: none sent).
    cancel_status: u16,
    final_state: String,
}

struct Setup {
    tenants: Vec<Auth>,
    /// Family 1: cluster id; 2: namespace id; 3: service id; 5: database id.
    source: Vec<String>,
    qovery_env: String,
}

struct World {
    http: Http,
    setup: Setup,
    dead: String,
    slow: String,
    ops: Mutex<Vec<Op>>,
    seq: AtomicU64,
    family_seq: [AtomicU64; 6],
    rng: Mutex<fastrand::Rng>,
    sse_terminal: AtomicU64,
    sse_open_ended: AtomicU64,
    refused_starts: Mutex<BTreeMap<(Family, u16), u64>>,
}

impl World {
    /// A random number below `n` (0 when `n` is 0).
    fn rand(&self, n: u64) -> u64 {
        self.rng.lock().unwrap().u64(..n.max(1))
    }
}

fn records(from: usize, n: usize, collections: &[&str], body: impl Fn(usize) -> Value) -> Vec<u8> {
    let mut out = String::new();
    for i in from..from + n {
        out.push_str(
            &json!({"collection": collections[i % collections.len()], "key": format!("k{i:06}"), "body": body(i)})
                .to_string(),
        );
        out.push('\n');
    }
    out.into_bytes()
}

fn import(http: &Http, auth: &Auth, r: &str, lines: Vec<u8>) -> Reply {
    let bearer = Auth::Bearer(auth.token().to_string());
    let (k, v) = bearer.header();
    http.req(
        "POST data resources/{ref}/import",
        "POST",
        &format!("/data/v1/resources/{r}/import"),
        &[(k, v.as_str()), ("content-type", "application/x-ndjson")],
        Some(lines),
    )
}

fn must(r: Reply, want: u16, what: &str) -> Value {
    if r.status != want {
        panic!("setup: {what}: {} {}", r.status, r.body);
    }
    r.json()
}

fn setup(http: &Http) -> Setup {
    let mut tenants = Vec::new();
    for f in families::ALL {
        let f = f.name();
        let r = http.req(
            "POST data tokens",
            "POST",
            "/data/v1/tokens",
            &[
                ("authorization", &format!("Bearer {ADMIN}")),
                ("content-type", "application/json"),
            ],
            Some(
                json!({"tenant": format!("soak-{f}")})
                    .to_string()
                    .into_bytes(),
            ),
        );
        let t = must(r, 201, "token")["token"].as_str().unwrap().to_string();
        tenants.push(t);
    }
    let a: Vec<Auth> = tenants
        .iter()
        .enumerate()
        .map(|(i, t)| match i {
            1 => Auth::Typesense(t.clone()),
            5 => Auth::Qovery(t.clone()),
            _ => Auth::Bearer(t.clone()),
        })
        .collect();
    let mut source = vec![String::new(); 6];

    // Data API: a source resource, and the tenant's webhook signing secret.
    must(
        http.json(
            "PUT data resources/{ref}",
            "PUT",
            "/data/v1/resources/native:src",
            &a[0],
            &json!({}),
        ),
        201,
        "data resource",
    );
    must(
        import(
            http,
            &a[0],
            "native:src",
            records(
                0,
                2000,
                &["users", "orders", "events"],
                |i| json!({"i": i, "name": format!("record {i}")}),
            ),
        ),
        200,
        "data import",
    );
    must(
        http.call(
            "POST data webhooks/secret",
            "POST",
            "/data/v1/webhooks/secret",
            &a[0],
        ),
        201,
        "secret",
    );
    source[0] = "native:src".into();

    // Typesense: a cluster with documents.
    let c = must(
        http.json("POST typesense clusters", "POST", "/api/v1/clusters", &a[1],
            &json!({"memory": "1_gb", "vcpu": "2_vcpus", "regions": ["oregon"], "typesense_server_version": "27.1", "name": "prod-search"})),
        201, "typesense cluster");
    let id = c["cluster"]["id"].as_str().unwrap().to_string();
    must(
        import(
            http,
            &a[1],
            &format!("typesense:{id}"),
            records(
                0,
                2000,
                &["products", "brands"],
                |i| json!({"id": format!("doc-{i}"), "n": i}),
            ),
        ),
        200,
        "typesense import",
    );
    source[1] = id;

    // Mixpeek: a namespace with collections, a bucket, objects and points.
    let ns = must(
        http.json("POST mixpeek namespaces", "POST", "/v1/namespaces", &a[2],
            &json!({"namespace_name": "production", "description": "prod data",
                "feature_extractors": [{"feature_extractor_name": "text_extractor", "version": "v1"}],
                "payload_indexes": [{"field_name": "metadata.title", "type": "text", "is_protected": false}]})),
        200, "mixpeek namespace");
    let id = ns["namespace_id"].as_str().unwrap().to_string();
    let mut lines = String::new();
    for (c, k, b) in [
        ("_collections", "col_a", json!({"collection_name": "a"})),
        ("_collections", "col_b", json!({"collection_name": "b"})),
        ("_retrievers", "ret_1", json!({"retriever_name": "r1"})),
        ("_buckets", "bkt_1", json!({"bucket_name": "media"})),
    ] {
        lines.push_str(&format!(
            "{}\n",
            json!({"collection": c, "key": k, "body": b})
        ));
    }
    for i in 0..20 {
        lines.push_str(&format!("{}\n", json!({"collection": "_objects", "key": format!("obj_{i}"), "body": {"bucket_id": "bkt_1", "url": format!("s3://media/{i}.jpg")}})));
    }
    for i in 0..2000 {
        let col = if i % 2 == 0 {
            "points:col_a"
        } else {
            "points:col_b"
        };
        lines.push_str(&format!("{}\n", json!({"collection": col, "key": format!("pt_{i}"), "body": {"vector": [i as f64 / 10.0, 1.0, 0.5], "payload": {"title": format!("t{i}")}}})));
    }
    must(
        import(http, &a[2], &format!("mixpeek:{id}"), lines.into_bytes()),
        200,
        "mixpeek import",
    );
    source[2] = id;

    // Timescale: a service with rows and a snapshot.
    let s = must(
        http.json("POST timescale services", "POST", "/public/api/v1/projects/proj1/services", &a[3],
            &json!({"name": "metrics-db", "region_code": "eu-central-1", "cpu_millis": "1000", "memory_gbs": "4", "addons": ["time-series"], "environment_tag": "PROD"})),
        202, "timescale service");
    let id = s["service_id"].as_str().unwrap().to_string();
    must(
        import(
            http,
            &a[3],
            &format!("timescale:{id}"),
            records(0, 2000, &["metrics"], |i| json!({"gen": 1, "i": i})),
        ),
        200,
        "timescale import",
    );
    source[3] = id;

    // Sanity: a dataset with documents.
    must(
        http.json(
            "PUT sanity datasets/{name}",
            "PUT",
            "/v1/projects/proj1/datasets/production",
            &a[4],
            &json!({"aclMode": "private"}),
        ),
        200,
        "sanity dataset",
    );
    must(
        import(
            http,
            &a[4],
            "sanity:proj1:production",
            records(
                0,
                2000,
                &["post", "author"],
                |i| json!({"_id": format!("doc-{i}"), "_type": if i % 2 == 0 { "post" } else { "author" }}),
            ),
        ),
        200,
        "sanity import",
    );
    source[4] = "production".into();

    // Qovery: two environments and a database with rows.
    let env = |name: &str| -> String {
        must(
            http.json(
                "POST qovery project/{p}/environment",
                "POST",
                "/project/proj/environment",
                &a[5],
                &json!({"name": name, "mode": "STAGING"}),
            ),
            201,
            "qovery environment",
        )["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let prod = env("production");
    let staging = env("staging");
    let db = must(
        http.json("POST qovery environment/{id}/database", "POST", &format!("/environment/{prod}/database"), &a[5],
            &json!({"name": "Orders", "type": "POSTGRESQL", "version": "16", "mode": "CONTAINER", "accessibility": "PUBLIC", "cpu": 500, "storage": 20})),
        201, "qovery database");
    let id = db["id"].as_str().unwrap().to_string();
    must(
        import(
            http,
            &a[5],
            &format!("qovery:{id}"),
            records(
                0,
                2000,
                &["public.orders"],
                |i| json!({"id": i, "total": i * 3}),
            ),
        ),
        200,
        "qovery import",
    );
    source[5] = id;

    Setup {
        tenants: a,
        source,
        qovery_env: staging,
    }
}

// ---------------------------------------------------------------- traffic

#[derive(Clone, Copy, Debug)]
enum Task {
    Start(Family),
    Import,
    Sse,
    Read,
}

fn start(w: &World, family: Family) {
    let n = w.seq.fetch_add(1, Ordering::Relaxed);
    // This family's own count of starts (alternates options, picks cancels).
    let k = w.family_seq[family.index()].fetch_add(1, Ordering::Relaxed);
    let a = &w.setup.tenants[family.index()];
    let src = &w.setup.source[family.index()];
    let (label, r, want) = match family {
        Family::DataApi => {
            let target = format!("native:clone-{n}");
            let body = json!({"target": target, "history": k.is_multiple_of(2),
                "notify": [format!("http://{}/hook", w.dead), format!("http://{}/hook", w.slow)]});
            (
                "POST data resources/{ref}/clones",
                w.http.json(
                    "POST data resources/{ref}/clones",
                    "POST",
                    "/data/v1/resources/native:src/clones",
                    a,
                    &body,
                ),
                202,
            )
        }
        Family::Typesense => (
            "POST typesense cloning-operations",
            w.http.json(
                "POST typesense cloning-operations",
                "POST",
                &format!("/api/v1/clusters/{src}/cloning-operations"),
                a,
                &json!({"typesense_server_version": "28.0", "target_region": "frankfurt"}),
            ),
            201,
        ),
        Family::Mixpeek => (
            "POST mixpeek namespaces/{id}/clone",
            w.http.json(
                "POST mixpeek namespaces/{id}/clone",
                "POST",
                &format!("/v1/namespaces/{src}/clone"),
                a,
                &json!({"namespace_name": format!("clone-{n}")}),
            ),
            200,
        ),
        Family::Timescale => (
            "POST timescale forkService",
            w.http.json(
                "POST timescale forkService",
                "POST",
                &format!("/public/api/v1/projects/proj1/services/{src}/forkService"),
                a,
                &json!({"fork_strategy": "NOW", "name": format!("fork-{n}")}),
            ),
            202,
        ),
        Family::Sanity => (
            "PUT sanity datasets/{name}/copy",
            w.http.json(
                "PUT sanity datasets/{name}/copy",
                "PUT",
                "/v1/projects/proj1/datasets/production/copy",
                a,
                &json!({"targetDataset": format!("copy-{n}"), "skipHistory": k % 2 == 1}),
            ),
            200,
        ),
        Family::Qovery => (
            "POST qovery database/{id}/clone",
            w.http.json(
                "POST qovery database/{id}/clone",
                "POST",
                &format!("/database/{src}/clone"),
                a,
                &json!({"name": format!("orders-{n}"), "environment_id": w.setup.qovery_env}),
            ),
            202,
        ),
    };
    let _ = label;
    if r.status != want {
        *w.refused_starts
            .lock()
            .unwrap()
            .entry((family, r.status))
            .or_default() += 1;
        return;
    }
    let v = r.json();
    let mut op = Op {
        family,
        id: String::new(),
        status_path: String::new(),
        auth: a.clone(),
        target: String::new(),
        snapshot_lsn: 0,
        cancel_status: 0,
        final_state: String::new(),
    };
    match family {
        Family::DataApi => {
            op.id = v["id"].as_str().unwrap_or_default().to_string();
            op.status_path = format!("/data/v1/operations/{}", op.id);
            op.target = v["target"].as_str().unwrap_or_default().to_string();
            op.snapshot_lsn = v["snapshot_lsn"].as_i64().unwrap_or(-1);
        }
        Family::Typesense => {
            op.id = v["cloning_operation"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            op.status_path = format!("/api/v1/clusters/{src}/cloning-operations/{}", op.id);
        }
        Family::Mixpeek => {
            op.id = v["task_id"].as_str().unwrap_or_default().to_string();
            op.status_path = format!("/v1/tasks/{}", op.id);
        }
        Family::Timescale => {
            op.id = v["service_id"].as_str().unwrap_or_default().to_string();
            op.status_path = format!("/public/api/v1/projects/proj1/services/{}", op.id);
        }
        Family::Sanity => {
            op.id = v["jobId"].as_str().unwrap_or_default().to_string();
            op.status_path = format!("/v1/jobs/{}", op.id);
            op.auth = Auth::None;
        }
        Family::Qovery => {
            op.id = v["id"].as_str().unwrap_or_default().to_string();
            op.status_path = format!("/database/{}/status", op.id);
        }
    }
    let idx = {
        let mut ops = w.ops.lock().unwrap();
        ops.push(op.clone());
        ops.len() - 1
    };
    // Cancel every third data API clone, at once or a little later.
    if family == Family::DataApi && k % 3 == 1 {
        std::thread::sleep(Duration::from_millis(w.rand(1500)));
        let r = w.http.call(
            "POST data operations/{id}/cancel",
            "POST",
            &format!("/data/v1/operations/{}/cancel", op.id),
            a,
        );
        w.ops.lock().unwrap()[idx].cancel_status = r.status;
    }
}

fn read(w: &World) {
    let pick = w.rand(100);
    if pick < 60 && !w.ops.lock().unwrap().is_empty() {
        // A status read of a random operation (recent ones more often).
        let op = {
            let ops = w.ops.lock().unwrap();
            if ops.is_empty() {
                None
            } else {
                let n = ops.len() as u64;
                let i = if w.rand(2) == 0 {
                    n - 1 - w.rand(n.min(12))
                } else {
                    w.rand(n)
                };
                Some(ops[i as usize].clone())
            }
        };
        if let Some(op) = op {
            w.http
                .call(op.family.status_route(), "GET", &op.status_path, &op.auth);
        }
        return;
    }
    let f = families::ALL[w.rand(6) as usize];
    let a = &w.setup.tenants[f.index()];
    let src = &w.setup.source[f.index()];
    match f {
        Family::DataApi => {
            if w.rand(2) == 0 {
                w.http.call(
                    "GET data operations",
                    "GET",
                    "/data/v1/operations?per_page=20",
                    a,
                )
            } else {
                w.http.call(
                    "GET data resources/{ref}/collections/{c}/records",
                    "GET",
                    "/data/v1/resources/native:src/collections/users/records?limit=50",
                    a,
                )
            }
        }
        Family::Typesense => w.http.call(
            "GET typesense cloning-operations",
            "GET",
            &format!("/api/v1/clusters/{src}/cloning-operations"),
            a,
        ),
        Family::Mixpeek => w
            .http
            .call("GET mixpeek namespaces", "GET", "/v1/namespaces", a),
        Family::Timescale => w.http.call(
            "GET timescale services",
            "GET",
            "/public/api/v1/projects/proj1/services",
            a,
        ),
        Family::Sanity => w.http.call(
            "GET sanity datasets",
            "GET",
            "/v1/projects/proj1/datasets",
            a,
        ),
        Family::Qovery => w.http.call(
            "GET qovery environment/{id}/database",
            "GET",
            &format!("/environment/{}/database", w.setup.qovery_env),
            a,
        ),
    };
}

fn run_task(w: &World, t: Task) {
    match t {
        Task::Start(f) => start(w, f),
        Task::Import => {
            let from = w.rand(20_000) as usize;
            let r = import(
                &w.http,
                &w.setup.tenants[0],
                "native:src",
                records(
                    from,
                    200,
                    &["users", "orders", "events"],
                    |i| json!({"i": i, "v": from}),
                ),
            );
            let _ = r;
        }
        Task::Sse => {
            let id = {
                let ops = w.ops.lock().unwrap();
                ops.iter()
                    .rev()
                    .find(|o| o.family == Family::DataApi)
                    .map(|o| o.id.clone())
            };
            if let Some(id) = id {
                let (status, term, _) = w.http.follow(
                    "GET data operations/{id}/events (SSE)",
                    &format!("/data/v1/operations/{id}/events"),
                    &w.setup.tenants[0],
                );
                if status == 200 {
                    if term.is_some() {
                        w.sse_terminal.fetch_add(1, Ordering::Relaxed);
                    } else {
                        w.sse_open_ended.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        Task::Read => read(w),
    }
}

// ---------------------------------------------------------------- checks

fn export_sorted(w: &World, r: &str, as_of: Option<i64>) -> (u16, Vec<String>) {
    let q = as_of.map(|l| format!("?as_of={l}")).unwrap_or_default();
    let reply = w.http.call(
        "GET data resources/{ref}/export",
        "GET",
        &format!("/data/v1/resources/{r}/export{q}"),
        &w.setup.tenants[0],
    );
    let mut lines: Vec<String> = reply.body.lines().map(String::from).collect();
    lines.sort();
    (reply.status, lines)
}

/// The `p` quantile of latencies in µs, in ms (0 when there are none).
fn pct(v: &[u64], p: f64) -> f64 {
    let mut t = Times::default();
    t.extend(v.iter().copied());
    if t.is_empty() {
        return 0.0;
    }
    t.at(p).as_secs_f64() * 1e3
}

struct Sample {
    t: f64,
    rss_kb: u64,
    fds: u64,
    tick_ms: f64,
}

/// The host process the soak runs against, and its misbehaving receivers.
struct Launched {
    child: HostChild,
    pid: u32,
    http: Http,
    state: tempfile::TempDir,
    log_path: PathBuf,
    dead: String,
    slow: String,
    dead_conns: Arc<AtomicU64>,
    slow_answers: Arc<AtomicU64>,
}

/// Start the release host binary beside this one on a fresh state
/// directory, with a dead and a slow webhook receiver allowed, and wait
/// until it answers.
fn launch(cli: &Cli) -> Launched {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().unwrap().to_path_buf();
    let host_bin = dir.join("spinoff-host");
    if !host_bin.exists() {
        eprintln!(
            "{} is missing: run `cargo build --release -p spinoff-host -p spinoff-bench` first (and scripts/build-wasm)",
            host_bin.display()
        );
        std::process::exit(2);
    }
    let manifest = cli.manifest.clone().unwrap_or_else(|| {
        let built = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../spin.toml");
        if built.exists() {
            built
        } else {
            PathBuf::from("spin.toml")
        }
    });
    let manifest = manifest.canonicalize().expect("spin.toml");
    let root = manifest.parent().unwrap().to_path_buf();
    let state = tempfile::tempdir().unwrap();
    let log_path =
        std::env::temp_dir().join(format!("spinoff-soak-host-{}.log", std::process::id()));
    let log = std::fs::File::create(&log_path).unwrap();

    let (dead, dead_conns) = dead_receiver();
    let (slow, slow_answers) = slow_receiver();
    let port = free_port();
    let child = Command::new(&host_bin)
        .arg("up")
        .arg("--manifest")
        .arg(&manifest)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--state-dir")
        .arg(state.path())
        .arg("--cache-dir")
        .arg(root.join("target/spinoff-host-cache"))
        .arg("--variable")
        .arg(format!("admin_token={ADMIN}"))
        .arg("--variable")
        .arg(format!("webhook_allowed_hosts={dead},{slow}"))
        .arg("--variable")
        .arg("webhook_timeout_ms=2000")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawn spinoff-host");
    let pid = child.id();
    let mut child = HostChild(child);
    let http = Http::new(format!("http://127.0.0.1:{port}"));
    let t0 = Instant::now();
    loop {
        if let Ok(Some(st)) = child.0.try_wait() {
            eprintln!("spinoff-host exited ({st}); log: {}", log_path.display());
            std::process::exit(2);
        }
        if let Ok(r) = http
            .agent
            .get(format!("{}/data/v1/openapi.json", http.base))
            .call()
        {
            if r.status().as_u16() == 200 {
                break;
            }
        }
        if t0.elapsed() > Duration::from_secs(300) {
            eprintln!("spinoff-host never answered; log: {}", log_path.display());
            std::process::exit(2);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!(
        "spinoff-host pid {pid} on {} (up in {:.1} s), state {}, log {}; dead receiver {dead}, slow receiver {slow}",
        http.base,
        t0.elapsed().as_secs_f64(),
        state.path().display(),
        log_path.display()
    );
    Launched {
        child,
        pid,
        http,
        state,
        log_path,
        dead,
        slow,
        dead_conns,
        slow_answers,
    }
}

/// What the traffic phase measured.
struct Traffic {
    samples: Arc<Mutex<Vec<Sample>>>,
    end_sample: Sample,
    traffic_secs: f64,
    scheduled: u64,
    lag_max: Arc<AtomicU64>,
}

/// The traffic: a scheduler at the fixed rate feeding a few workers, and a
/// sampler (RSS, fds, one timed worker tick) every 10 s beside it.
fn traffic(cli: &Cli, w: &Arc<World>, host: &Launched) -> Traffic {
    let (pid, state) = (host.pid, &host.state);
    let (dead_conns, slow_answers) = (&host.dead_conns, &host.slow_answers);
    // Sampler: RSS, fds and one timed worker tick every 10 s.
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::new(Mutex::new(Vec::new()));
    let stop_sampler = Arc::new(AtomicBool::new(false));
    let traffic_start = Instant::now();
    let sampler = {
        let (w, samples, stop) = (w.clone(), samples.clone(), stop_sampler.clone());
        let (dead_conns, slow_answers) = (dead_conns.clone(), slow_answers.clone());
        let db = state.path().join("sqlite_db.db");
        std::thread::spawn(move || {
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                if Instant::now() >= next {
                    let t = Instant::now();
                    let r = w.http.admin(
                        "POST internal worker/tick (sampler)",
                        "/internal/worker/tick",
                    );
                    let tick_ms = if r.status == 200 {
                        t.elapsed().as_secs_f64() * 1000.0
                    } else {
                        f64::NAN
                    };
                    let s = Sample {
                        t: traffic_start.elapsed().as_secs_f64(),
                        rss_kb: process::rss_kb(pid),
                        fds: process::fds(pid),
                        tick_ms,
                    };
                    println!(
                        "  t={:>5.0}s rss={:>7.1} MiB fds={:>4} tick={:>6.1} ms db={:.1} MiB ops={} dead_conns={} slow_answers={}",
                        s.t,
                        s.rss_kb as f64 / 1024.0,
                        s.fds,
                        s.tick_ms,
                        ["", "-wal"]
                            .iter()
                            .map(|x| {
                                let f = format!("{}{x}", db.display());
                                std::fs::metadata(f).map(|m| m.len()).unwrap_or(0)
                            })
                            .sum::<u64>() as f64
                            / 1048576.0,
                        w.ops.lock().unwrap().len(),
                        dead_conns.load(Ordering::Relaxed),
                        slow_answers.load(Ordering::Relaxed)
                    );
                    samples.lock().unwrap().push(s);
                    next += Duration::from_secs(10);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };

    // Traffic: a scheduler at the fixed rate, a few workers.
    let duration = Duration::from_secs_f64(cli.minutes * 60.0);
    let (tx, rx) = mpsc::channel::<(Instant, Task)>();
    let rx = Arc::new(Mutex::new(rx));
    let lag_max = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..cli.threads)
        .map(|_| {
            let (w, rx, lag) = (w.clone(), rx.clone(), lag_max.clone());
            std::thread::spawn(move || loop {
                let next = rx.lock().unwrap().recv();
                let Ok((due, task)) = next else { return };
                let late = due.elapsed().as_millis() as u64;
                lag.fetch_max(late, Ordering::Relaxed);
                run_task(&w, task);
            })
        })
        .collect();
    let interval = Duration::from_secs_f64(1.0 / cli.rate);
    let start_every = Duration::from_secs_f64(cli.start_every);
    let (mut next_start, mut next_sse, mut next_import) = (
        traffic_start,
        // Just after each data API clone starts (the sixth start of each round).
        traffic_start + start_every * 5 + Duration::from_millis(300),
        traffic_start + Duration::from_secs(1),
    );
    let mut slot = 0u64;
    let mut family = 0usize;
    let mut scheduled = 0u64;
    loop {
        let due = traffic_start + interval * slot as u32;
        if due >= traffic_start + duration {
            break;
        }
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let task = if cli.start_every > 0.0 && due >= next_start {
            next_start += start_every;
            family = (family + 1) % 6;
            Task::Start(families::ALL[family])
        } else if due >= next_sse {
            next_sse += if cli.start_every > 0.0 {
                start_every * 6
            } else {
                Duration::from_secs(12)
            };
            Task::Sse
        } else if cli.import_every > 0.0 && due >= next_import {
            next_import += Duration::from_secs_f64(cli.import_every);
            Task::Import
        } else {
            Task::Read
        };
        tx.send((due, task)).unwrap();
        scheduled += 1;
        slot += 1;
    }
    drop(tx);
    for h in workers {
        h.join().unwrap();
    }
    let traffic_secs = traffic_start.elapsed().as_secs_f64();
    // The end-of-traffic sample.
    let end_sample = Sample {
        t: traffic_secs,
        rss_kb: process::rss_kb(pid),
        fds: process::fds(pid),
        tick_ms: f64::NAN,
    };
    stop_sampler.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    println!("traffic done after {traffic_secs:.0} s ({scheduled} requests scheduled); draining");

    Traffic {
        samples,
        end_sample,
        traffic_secs,
        scheduled,
        lag_max,
    }
}

/// HTTP ticks until every operation is terminal (at most 120 s). Returns
/// the operations still not terminal, the ticks and the seconds it took.
fn drain(w: &World) -> (Vec<usize>, u64, f64) {
    let drain_start = Instant::now();
    let mut pending: Vec<usize> = (0..w.ops.lock().unwrap().len()).collect();
    let mut drain_ticks = 0;
    while !pending.is_empty() && drain_start.elapsed() < Duration::from_secs(120) {
        w.http
            .admin("POST internal worker/tick (drain)", "/internal/worker/tick");
        drain_ticks += 1;
        let mut still = Vec::new();
        for i in pending {
            let op = w.ops.lock().unwrap()[i].clone();
            let r = w
                .http
                .call(op.family.status_route(), "GET", &op.status_path, &op.auth);
            let s = op.family.state_of(&r.json());
            w.ops.lock().unwrap()[i].final_state = s.clone();
            if r.status != 200 || !op.family.is_terminal(&s) {
                still.push(i);
            }
        }
        pending = still;
        if !pending.is_empty() {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    let drain_secs = drain_start.elapsed().as_secs_f64();

    (pending, drain_ticks, drain_secs)
}

/// What the consistency checks found.
struct Checked {
    problems: Vec<String>,
    ops: Vec<Op>,
    per_family: Vec<BTreeMap<String, u64>>,
    verified_equal: u64,
    final_notif: BTreeMap<String, u64>,
    notif_secs: f64,
    end_after_drain: (u64, u64),
}

/// Consistency after the drain: every operation terminal, no tenant with
/// work left, succeeded clones equal to their source at the snapshot, the
/// receivers' notifications delivered or failed with a reason, the host
/// alive.
fn check(w: &World, pending: &[usize], host: &mut Launched) -> Checked {
    let (pid, log_path) = (host.pid, host.log_path.clone());
    let child = &mut host.child;
    // Consistency.
    let mut problems: Vec<String> = Vec::new();
    let ops = w.ops.lock().unwrap().clone();
    for &i in pending {
        let o = &ops[i];
        problems.push(format!(
            "{} operation {} not terminal after the drain: {}",
            o.family.name(),
            o.id,
            o.final_state
        ));
    }
    // Every tenant: nothing pending or in progress in the data API's view.
    for (f, a) in families::ALL.iter().zip(&w.setup.tenants) {
        let b = Auth::Bearer(a.token().to_string());
        for st in ["pending", "in_progress"] {
            let r = w.http.call(
                "GET data operations",
                "GET",
                &format!("/data/v1/operations?status={st}"),
                &b,
            );
            let total = r.json()["total"].as_i64().unwrap_or(-1);
            if r.status != 200 || total != 0 {
                problems.push(format!(
                    "tenant {}: GET /data/v1/operations?status={st} -> {} total {total}",
                    f.name(),
                    r.status
                ));
            }
        }
    }
    let mut per_family: Vec<BTreeMap<String, u64>> = vec![BTreeMap::new(); 6];
    let mut verified_equal = 0;
    let mut notif: BTreeMap<String, u64> = BTreeMap::new();
    let mut dead_unattempted: Vec<String> = Vec::new();
    let mut slow_undelivered: Vec<usize> = Vec::new();
    for (i, o) in ops.iter().enumerate() {
        *per_family[o.family.index()]
            .entry(o.final_state.clone())
            .or_default() += 1;
        if o.family != Family::DataApi {
            if matches!(
                o.final_state.as_str(),
                "failed" | "FAILED" | "UNSTABLE" | "ERROR" | "DEPLOYMENT_ERROR"
            ) {
                let r = w
                    .http
                    .call(o.family.status_route(), "GET", &o.status_path, &o.auth);
                problems.push(format!(
                    "{} operation {} ended {}: {}",
                    o.family.name(),
                    o.id,
                    o.final_state,
                    r.body
                ));
            }
            continue;
        }
        let r = w.http.call(
            Family::DataApi.status_route(),
            "GET",
            &o.status_path,
            &o.auth,
        );
        let v = r.json();
        let status = v["status"].as_str().unwrap_or("?");
        match status {
            "succeeded" => {
                if o.cancel_status == 200 {
                    problems.push(format!(
                        "data clone {}: cancel answered 200 but it succeeded",
                        o.id
                    ));
                }
                let (s1, a) = export_sorted(w, &o.target, None);
                let (s2, b) = export_sorted(w, "native:src", Some(o.snapshot_lsn));
                if s1 != 200 || s2 != 200 || a != b {
                    problems.push(format!(
                        "data clone {}: target {} export ({s1}, {} lines) != source as of {} ({s2}, {} lines)",
                        o.id, o.target, a.len(), o.snapshot_lsn, b.len()
                    ));
                } else {
                    verified_equal += 1;
                }
            }
            "canceled" => {
                let g = w.http.call(
                    "GET data resources/{ref}",
                    "GET",
                    &format!("/data/v1/resources/{}", o.target),
                    &o.auth,
                );
                if g.status != 404 {
                    problems.push(format!(
                        "data clone {} canceled but target {} answers {}: {}",
                        o.id, o.target, g.status, g.body
                    ));
                }
            }
            "failed" => {
                if v["error"].as_str().unwrap_or("").is_empty() {
                    problems.push(format!("data clone {} failed without a reason: {v}", o.id));
                }
            }
            s => problems.push(format!("data clone {}: status {s}", o.id)),
        }
        if o.cancel_status != 0 && o.cancel_status != 200 && status != "succeeded" {
            problems.push(format!(
                "data clone {}: cancel answered {} but it ended {status}",
                o.id, o.cancel_status
            ));
        }
        let _ = i;
        for n in v["notifications"].as_array().cloned().unwrap_or_default() {
            let d = n["destination"].as_str().unwrap_or("");
            let st = n["status"].as_str().unwrap_or("?");
            let recv = if d.contains(&w.dead) {
                "dead"
            } else if d.contains(&w.slow) {
                "slow"
            } else {
                "other"
            };
            *notif.entry(format!("{recv}:{st}")).or_default() += 1;
        }
    }
    // Notifications: wait (bounded) for the slow receiver's to be delivered
    // and the dead one's to have an attempt with a reason.
    let notif_start = Instant::now();
    let mut final_notif: BTreeMap<String, u64>;
    loop {
        final_notif = BTreeMap::new();
        dead_unattempted.clear();
        slow_undelivered.clear();
        for (i, o) in ops
            .iter()
            .enumerate()
            .filter(|(_, o)| o.family == Family::DataApi)
        {
            let v = w
                .http
                .call(
                    Family::DataApi.status_route(),
                    "GET",
                    &o.status_path,
                    &o.auth,
                )
                .json();
            for n in v["notifications"].as_array().cloned().unwrap_or_default() {
                let d = n["destination"].as_str().unwrap_or("");
                let st = n["status"].as_str().unwrap_or("?");
                let reason = !n["last_error"].as_str().unwrap_or("").is_empty();
                if d.contains(&w.dead) {
                    let k = match (st, reason) {
                        ("failed", true) => "dead: failed with a reason",
                        ("pending", true) => "dead: pending with a reason",
                        ("delivered", _) => "dead: DELIVERED (impossible)",
                        _ => "dead: no attempt yet / no reason",
                    };
                    *final_notif.entry(k.into()).or_default() += 1;
                    if !(reason && matches!(st, "failed" | "pending")) {
                        dead_unattempted.push(format!("{} {st} {}", o.id, n));
                    }
                } else if d.contains(&w.slow) {
                    *final_notif.entry(format!("slow: {st}")).or_default() += 1;
                    if st != "delivered" {
                        slow_undelivered.push(i);
                    }
                }
            }
        }
        if (dead_unattempted.is_empty() && slow_undelivered.is_empty())
            || notif_start.elapsed() > Duration::from_secs(180)
        {
            break;
        }
        std::thread::sleep(Duration::from_secs(3));
    }
    let notif_secs = notif_start.elapsed().as_secs_f64();
    if !slow_undelivered.is_empty() {
        let o = &ops[slow_undelivered[0]];
        let v = w
            .http
            .call(
                Family::DataApi.status_route(),
                "GET",
                &o.status_path,
                &o.auth,
            )
            .json();
        problems.push(format!(
            "{} notifications to the slow receiver not delivered after {notif_secs:.0} s, e.g. {}: {}",
            slow_undelivered.len(), o.id, v["notifications"]
        ));
    }
    if !dead_unattempted.is_empty() {
        problems.push(format!(
            "{} notifications to the dead receiver neither failed nor pending with a reason after {notif_secs:.0} s, e.g. {}",
            dead_unattempted.len(), dead_unattempted[0]
        ));
    }
    let end_after_drain = (process::rss_kb(pid), process::fds(pid));
    let host_alive = matches!(child.0.try_wait(), Ok(None));
    if !host_alive {
        problems.push(format!("spinoff-host exited; log {}", log_path.display()));
    }

    Checked {
        problems,
        ops,
        per_family,
        verified_equal,
        final_notif,
        notif_secs,
        end_after_drain,
    }
}

/// The report: per-route latencies, the host's memory and fds against the
/// baseline, operations per family, notifications, the verdict.
fn report(
    cli: &Cli,
    w: &World,
    host: &Launched,
    t: &Traffic,
    (drain_ticks, drain_secs): (u64, f64),
    c: &Checked,
) -> bool {
    let (samples, end_sample, traffic_secs, scheduled, lag_max) = (
        &t.samples,
        &t.end_sample,
        t.traffic_secs,
        t.scheduled,
        &t.lag_max,
    );
    let Checked {
        problems,
        ops,
        per_family,
        verified_equal,
        final_notif,
        notif_secs,
        end_after_drain,
    } = c;
    let (notif_secs, end_after_drain, verified_equal) =
        (*notif_secs, *end_after_drain, *verified_equal);
    let (dead_conns, slow_answers) = (&host.dead_conns, &host.slow_answers);
    // ------------------------------------------------------------ report
    let stats = w.http.stats.lock().unwrap();
    let total: u64 = stats.values().map(|r| r.lat_us.len() as u64).sum();
    let fivexx: u64 = stats
        .values()
        .map(|r| {
            r.statuses
                .iter()
                .filter(|(s, _)| **s >= 500)
                .map(|(_, n)| n)
                .sum::<u64>()
        })
        .sum();
    let transport: u64 = stats
        .values()
        .map(|r| r.statuses.get(&0).copied().unwrap_or(0))
        .sum();
    println!();
    println!("== Soak report");
    println!(
        "traffic: {:.1} min at {} req/s target ({} scheduled, {:.1} req/s achieved, worst scheduling lag {} ms), {} threads",
        traffic_secs / 60.0,
        cli.rate,
        scheduled,
        scheduled as f64 / traffic_secs,
        lag_max.load(Ordering::Relaxed),
        cli.threads
    );
    println!("requests served: {total} (incl. setup, sampler, drain and checks); 5xx: {fivexx}; transport errors: {transport}");
    println!();
    println!(
        "{:<48} {:>6} {:>9} {:>9}  statuses",
        "route", "count", "p50 ms", "p99 ms"
    );
    for (label, r) in stats.iter() {
        let (p50, p99) = (pct(&r.lat_us, 0.5), pct(&r.lat_us, 0.99));
        let st: Vec<String> = r.statuses.iter().map(|(s, n)| format!("{s}×{n}")).collect();
        println!(
            "{label:<48} {:>6} {p50:>9.1} {p99:>9.1}  {}",
            r.lat_us.len(),
            st.join(" ")
        );
    }
    drop(stats);
    let samples = samples.lock().unwrap();
    let tick_max = samples
        .iter()
        .map(|s| s.tick_ms)
        .filter(|t| !t.is_nan())
        .fold(0.0, f64::max);
    let ticks: Vec<u64> = samples
        .iter()
        .filter(|s| !s.tick_ms.is_nan())
        .map(|s| (s.tick_ms * 1000.0) as u64)
        .collect();
    let tick_p50 = pct(&ticks, 0.5);
    // Baseline: the sample at minute 2 (or at a fifth of a shorter run).
    let base_t = (traffic_secs / 5.0).min(120.0);
    let base = samples
        .iter()
        .min_by(|a, b| (a.t - base_t).abs().total_cmp(&(b.t - base_t).abs()))
        .map(|s| (s.t, s.rss_kb, s.fds))
        .unwrap_or((0.0, end_sample.rss_kb, end_sample.fds));
    let between: Vec<&Sample> = samples.iter().filter(|s| s.t >= base.0).collect();
    let rss_max = between
        .iter()
        .map(|s| s.rss_kb)
        .max()
        .unwrap_or(0)
        .max(end_sample.rss_kb);
    let fds_max = between
        .iter()
        .map(|s| s.fds)
        .max()
        .unwrap_or(0)
        .max(end_sample.fds);
    // Flat: at most 10 % + 4 MiB above the baseline.
    let rss_tol = base.1 / 10 + 4 * 1024;
    let fds_tol = 8;
    let rss_flat = end_sample.rss_kb <= base.1 + rss_tol;
    let fds_flat = end_sample.fds <= base.2 + fds_tol;
    println!();
    println!("worker tick (POST /internal/worker/tick every 10 s under traffic): max {tick_max:.1} ms, p50 {tick_p50:.1} ms over {} ticks", ticks.len());
    let mib = |kb: u64| kb as f64 / 1024.0;
    println!(
        "host RSS: {:.1} MiB at t={:.0}s, {:.1} MiB at the end of traffic (max {:.1} MiB in between; {:.1} MiB after the drain): {}",
        mib(base.1), base.0, mib(end_sample.rss_kb), mib(rss_max), mib(end_after_drain.0),
        if rss_flat { format!("flat (within +{:.0} MiB)", mib(rss_tol)) } else { "GROWING".into() }
    );
    println!(
        "host fds: {} at t={:.0}s, {} at the end of traffic (max {} in between; {} after the drain): {}",
        base.2, base.0, end_sample.fds, fds_max, end_after_drain.1,
        if fds_flat { format!("flat (within +{fds_tol})") } else { "GROWING".into() }
    );
    println!();
    println!("operations (drain: {drain_ticks} HTTP ticks, {drain_secs:.0} s):");
    let refused = w.refused_starts.lock().unwrap();
    for family in families::ALL {
        let (f, name) = (family.index(), family.name());
        let started: u64 = per_family[f].values().sum();
        let ended: u64 = per_family[f]
            .iter()
            .filter(|(s, _)| family.is_terminal(s))
            .map(|(_, n)| n)
            .sum();
        let states: Vec<String> = per_family[f]
            .iter()
            .map(|(s, n)| format!("{s}×{n}"))
            .collect();
        let refusals: Vec<String> = refused
            .iter()
            .filter(|((g, _), _)| *g == family)
            .map(|((_, s), n)| format!("{s}×{n}"))
            .collect();
        println!(
            "  {name:<10} started {started:>4}, ended {ended:>4} [{}]{}",
            states.join(" "),
            if refusals.is_empty() {
                String::new()
            } else {
                format!("; starts refused: {}", refusals.join(" "))
            }
        );
    }
    let data_cancels: Vec<u16> = ops
        .iter()
        .filter(|o| o.family == Family::DataApi && o.cancel_status != 0)
        .map(|o| o.cancel_status)
        .collect();
    println!(
        "  data clones: {} cancels sent ({} answered 200), {} succeeded clones equal to the source as of their snapshot_lsn",
        data_cancels.len(),
        data_cancels.iter().filter(|s| **s == 200).count(),
        verified_equal
    );
    println!(
        "  SSE follows: {} saw a terminal event, {} ended without one within 15 s",
        w.sse_terminal.load(Ordering::Relaxed),
        w.sse_open_ended.load(Ordering::Relaxed)
    );
    let nf: Vec<String> = final_notif
        .iter()
        .map(|(k, n)| format!("{k}×{n}"))
        .collect();
    println!(
        "  notifications (after {notif_secs:.0} s of waiting): {}; dead receiver held {} connections, slow receiver answered {}",
        nf.join(", "),
        dead_conns.load(Ordering::Relaxed),
        slow_answers.load(Ordering::Relaxed)
    );

    println!();
    let errors = w.http.server_errors.lock().unwrap();
    for e in errors.iter() {
        println!("SERVER ERROR: {e}");
    }
    for p in problems {
        println!("INCONSISTENT: {p}");
    }
    let consistent = problems.is_empty();
    println!(
        "consistency: {}",
        if consistent {
            "OK".to_string()
        } else {
            format!("{} problem(s)", problems.len())
        }
    );
    let ok = fivexx == 0 && transport == 0 && consistent && rss_flat && fds_flat;
    println!("verdict: {}", if ok { "PASS" } else { "FAIL" });
    ok
}

fn main() {
    let cli = Cli::parse();
    let mut host = launch(&cli);
    let http = std::mem::replace(&mut host.http, Http::new(String::new()));
    let setup = setup(&http);
    println!("setup done: 6 tenants, one source resource each");
    let w = Arc::new(World {
        http,
        setup,
        dead: host.dead.clone(),
        slow: host.slow.clone(),
        ops: Mutex::new(Vec::new()),
        seq: AtomicU64::new(1),
        family_seq: Default::default(),
        rng: Mutex::new(fastrand::Rng::with_seed(
            0x9E37_79B9_7F4A_7C15 ^ std::process::id() as u64,
        )),
        sse_terminal: AtomicU64::new(0),
        sse_open_ended: AtomicU64::new(0),
        refused_starts: Mutex::new(BTreeMap::new()),
    });

    let t = traffic(&cli, &w, &host);
    let (pending, drain_ticks, drain_secs) = drain(&w);
    let c = check(&w, &pending, &mut host);
    let ok = report(&cli, &w, &host, &t, (drain_ticks, drain_secs), &c);
    let log_path = host.log_path.clone();
    drop(host);
    if !ok {
        println!("host log: {}", log_path.display());
        std::process::exit(1);
    }
}
