//! The clone worker: moves operations forward. Fired by the cron trigger
//! (`handle-cron-event`, every 2 s in spin.toml) and by
//! `POST /internal/worker/tick` with the admin token, for hosts without cron.
//!
//! A tick, within the `worker_budget_ms` budget: steps runnable operations
//! round-robin (engine `tick`), delivers due notifications, takes scheduled
//! snapshots, prunes history outside `retention_seconds`, and purges deleted
//! resources. Every part is bounded and safe to run twice at once.

use engine::Engine;
use serde_json::{json, Value};
use spin_adapter::store::{random_hex, variable, variable_i64, SpinDb, SpinEnv};

wit_bindgen::generate!({
    path: "../../wit",
    world: "spinoff:app/clone-worker",
    generate_all,
});

struct Worker;

impl Guest for Worker {
    fn handle_cron_event(_metadata: Metadata) -> Result<(), Error> {
        tick().map(|_| ()).map_err(|e| Error::Other(e.message))
    }
}

export!(Worker);

/// One tick; returns what it did.
fn tick() -> Result<Value, engine::Error> {
    let budget_us = variable_i64("worker_budget_ms", 1000).clamp(10, 60_000) * 1000;
    let db = SpinDb::open()?;
    let mut e = Engine::open(&db, &SpinEnv)?;
    // A lease outlives a tick's budget; a crashed worker's expires after it.
    e.config.lease_us = (variable_i64("worker_lease_ms", 5000) * 1000).max(2 * budget_us);
    let worker = format!("worker-{}", random_hex(8));
    // The copy gets 85% of the budget; deliveries, snapshots, pruning and
    // purging share the rest, so the whole tick stays within the budget.
    let report = match e.tick(&worker, budget_us * 85 / 100) {
        Ok(r) => r,
        Err(err) if err.is_retryable() => engine::TickReport::default(),
        Err(err) => return Err(err),
    };
    let delivered = deliver(&e)?;
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
        "notifications": delivered,
        "snapshots": snapshots,
        "pruned_versions": pruned,
        "purged_records": purged,
    }))
}

/// Deliver due notifications: webhooks by POST, e-mails through the
/// configured mail webhook. Returns how many were delivered.
fn deliver(e: &Engine) -> Result<usize, engine::Error> {
    let due = e.claim_notifications(20, 30_000_000)?;
    let mut ok = 0;
    for n in due {
        let (url, body, permanent_if_missing) = if n.destination.starts_with("http://")
            || n.destination.starts_with("https://")
        {
            (Some(n.destination.clone()), n.payload.clone(), false)
        } else {
            let body = json!({"to": n.destination, "subject": "Spinoff operation update",
                              "operation": serde_json::from_str::<Value>(&n.payload).unwrap_or(Value::Null)});
            (variable("mail_webhook_url"), body.to_string(), true)
        };
        let Some(url) = url else {
            e.notification_failed(
                n.id,
                "no mail webhook configured (Spin variable mail_webhook_url)",
                permanent_if_missing,
            )?;
            continue;
        };
        let req = spin_sdk::http::Request::builder()
            .method(spin_sdk::http::Method::Post)
            .uri(url.as_str())
            .header("content-type", "application/json")
            .header("spinoff-notification", n.id.to_string().as_str())
            .header("content-length", body.len().to_string().as_str())
            .body(body.into_bytes())
            .build();
        let sent: Result<spin_sdk::http::Response, _> =
            spin_sdk::http::run(spin_sdk::http::send(req));
        match sent {
            Ok(resp) if (200..300).contains(resp.status()) => {
                e.notification_delivered(n.id)?;
                ok += 1;
            }
            Ok(resp) => {
                e.notification_failed(n.id, &format!("{url} answered {}", resp.status()), false)?
            }
            Err(err) => e.notification_failed(n.id, &format!("sending to {url}: {err}"), false)?,
        }
    }
    Ok(ok)
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

    static ROUTER: Router = Router {
        component: "clone-worker",
        routes: &[("POST", "internal/worker/tick", |r, _| {
            spin_adapter::auth::admin(r, "Bearer")?;
            match super::tick() {
                Ok(report) => Ok(Reply::json(200, &report)),
                Err(e) => Err(Reply::error(&e)),
            }
        })],
        error: |status, message| Reply::problem(status, "method_not_allowed", message),
    };

    fn route(req: Req) -> Reply {
        ROUTER.serve(&req, "")
    }
}
