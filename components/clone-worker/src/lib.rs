//! The clone worker: moves operations forward, and (as the `notifier`
//! component, this same Wasm) delivers notifications.
//!
//! Two duties, each its own component in spin.toml with its own cron
//! trigger (every 2 s) and HTTP tick for hosts without cron (admin token):
//!
//! - `clone-worker` (`POST /internal/worker/tick`): within the
//!   `worker_budget_ms` budget, steps runnable operations round-robin
//!   (engine `tick`, 85% of the budget), takes scheduled snapshots, prunes
//!   history outside `retention_seconds`, and purges deleted resources. It
//!   makes no network call, so nothing outside the database can hold it up.
//! - `notifier` (`POST /internal/notifier/tick`; Spin variable
//!   `worker_duty = "notify"` for its cron): delivers due notifications
//!   ([`deliver`]), every call under `webhook_timeout_ms`.
//!
//! Every part is bounded and safe to run twice at once.

mod deliver;

use engine::Engine;
use serde_json::{json, Value};
use spin_adapter::ids::random_hex;
use spin_adapter::store::{SpinDb, SpinEnv};
use spin_adapter::vars::{variable, variable_i64};

wit_bindgen::generate!({
    path: "../../wit",
    world: "spinoff:app/clone-worker",
    generate_all,
});

struct Worker;

impl Guest for Worker {
    fn handle_cron_event(_metadata: Metadata) -> Result<(), Error> {
        let done = if variable("worker_duty").as_deref() == Some("notify") {
            notify().map(|_| ())
        } else {
            tick().map(|_| ())
        };
        done.map_err(|e| Error::Other(e.message))
    }
}

export!(Worker);

/// One delivery pass; returns what it did.
fn notify() -> Result<Value, engine::Error> {
    let db = SpinDb::open()?;
    let e = Engine::open(&db, &SpinEnv)?;
    Ok(deliver::run(&e)?.json())
}

/// The time a chunk should take while requests wait for the write lock
/// (µs; otherwise the engine's `target_chunk_us`, 100 ms).
const CONTENDED_CHUNK_US: i64 = 20_000;

/// One tick; returns what it did.
fn tick() -> Result<Value, engine::Error> {
    let budget_us = variable_i64("worker_budget_ms", 1000).clamp(10, 60_000) * 1000;
    let db = SpinDb::open()?.background();
    let mut e = Engine::open(&db, &SpinEnv)?;
    // A lease outlives a tick's budget; a crashed worker's expires after it.
    e.config.lease_us = (variable_i64("worker_lease_ms", 5000) * 1000).max(2 * budget_us);
    // Requests waited for the write lock lately: short chunks, so that a
    // request's wait for the one under way is short (spin_adapter::turns).
    if spin_adapter::turns::contended_within(std::time::Duration::from_secs(2)) {
        e.config.target_chunk_us = e.config.target_chunk_us.min(CONTENDED_CHUNK_US);
    }
    let worker = format!("worker-{}", random_hex(8));
    // The copy gets 85% of the budget; snapshots, pruning and purging share
    // the rest, each bounded by a row count (so a tick can overrun its budget
    // by their few statements, never by a network call: there is none).
    let started = e.now_us();
    let report = match e.tick(&worker, budget_us * 85 / 100) {
        Ok(r) => r,
        Err(err) if err.is_retryable() => engine::TickReport::default(),
        Err(err) => return Err(err),
    };
    // Chunked merges take what the copy left of those 85%, at least one
    // chunk a tick: each chunk is one short transaction.
    let chunk = variable_i64("merge_chunk_keys", 1000).clamp(1, 50_000);
    let (mut merge_chunks, mut merges_ended) = (0, 0);
    loop {
        engine::Db::yield_to_writers(&db);
        match e.merge_step(chunk) {
            Ok(Some(run)) => {
                merge_chunks += 1;
                merges_ended += (run.state != "running") as i64;
            }
            Ok(None) => break,
            Err(err) if err.is_retryable() => break,
            Err(err) => return Err(err),
        }
        if e.now_us() - started >= budget_us * 85 / 100 {
            break;
        }
    }
    let snapshots = e.take_scheduled_snapshots(
        variable_i64("snapshot_interval_seconds", 3600) * 1_000_000,
        20,
    )?;
    let retention_us = variable_i64("retention_seconds", 7 * 86_400).max(0) * 1_000_000;
    let mut pruned = 0;
    for _ in 0..4 {
        let n = e.prune_step(retention_us, 2000)?;
        pruned += n;
        if n == 0 {
            break;
        }
    }
    // Containers past their time-to-live (a Mixpeek clone's ttl_seconds)
    // are marked deleting; the purge below frees their rows.
    let expired = e.expire_step(100)?.len();
    // Import sessions idle past import_idle_seconds are abandoned (their
    // staged rows go with the purge).
    let abandoned_imports = e.expire_imports(100)?;
    let mut purged = 0;
    for _ in 0..4 {
        let n = e.purge_step(5000)?;
        purged += n;
        if n == 0 {
            break;
        }
    }
    e.checkpoint();
    Ok(json!({
        "worker": worker,
        "steps": report.steps,
        "records_copied": report.records_copied,
        "finished": report.finished,
        "failed": report.failed,
        "merge_chunks": merge_chunks,
        "merges_ended": merges_ended,
        "snapshots": snapshots,
        "pruned_versions": pruned,
        "expired": expired,
        "abandoned_imports": abandoned_imports,
        "purged_records": purged,
    }))
}

mod http {
    use spin_adapter::http::{serve, Reply, Req};
    use spin_adapter::router::Router;
    use spin_sdk::http::{IncomingRequest, ResponseOutparam};
    use spin_sdk::http_component;

    #[http_component]
    async fn handle(req: IncomingRequest, out: ResponseOutparam) {
        serve(req, out, route).await
    }

    /// Both duties' HTTP ticks; each component serves the one its route
    /// in spin.toml sends it.
    static ROUTER: Router = Router {
        component: "clone-worker",
        routes: &[
            ("POST", "internal/worker/tick", |r, _| {
                spin_adapter::auth::admin(r, "Bearer")?;
                super::tick()
                    .map(|report| Reply::json(200, &report))
                    .map_err(|e| Reply::error(&e))
            }),
            ("POST", "internal/notifier/tick", |r, _| {
                spin_adapter::auth::admin(r, "Bearer")?;
                super::notify()
                    .map(|report| Reply::json(200, &report))
                    .map_err(|e| Reply::error(&e))
            }),
        ],
        error: |status, message| Reply::problem(status, "method_not_allowed", message),
    };

    fn route(req: Req) -> Reply {
        ROUTER.serve(&req, "")
    }
}
