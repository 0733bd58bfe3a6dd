//! `service-fork`: Timescale / Tiger Cloud's services and `forkService`,
//! base `/public/api/v1`, over the engine.
//!
//! - `services.rs`: create, list, get, delete services; on-demand snapshots;
//! - `fork.rs`: `forkService` with NOW, LAST_SNAPSHOT and PITR.
//!
//! Auth: `Authorization: Bearer <tenant token>`; a project id belongs to the
//! tenant that first creates a service in it (404 for everyone else).
//! Errors are Tiger's `{"code", "message"}`.

mod fork;
mod services;

use spin_adapter::http::{serve, Reply, Req};
use spin_adapter::router::Router;
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

pub(crate) const FAMILY: &str = "timescale";

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve(req, out, route).await
}

pub(crate) type Ctx = spin_adapter::ctx::Ctx;

fn ctx(req: &Req) -> Result<Ctx, Reply> {
    let tenant = spin_adapter::auth::tenant(req, "Bearer").map_err(tiger_shape)?;
    Ctx::open(tenant, error)
}

/// The route table (after `/public/api/v1`).
static ROUTER: Router = Router {
    component: "service-fork",
    routes: &[
        ("POST", "projects/*/services", |r, s| {
            services::create(&ctx(r)?, r, s[0])
        }),
        ("GET", "projects/*/services", |r, s| {
            services::list(&ctx(r)?, s[0])
        }),
        ("GET", "projects/*/services/*", |r, s| {
            services::get(&ctx(r)?, s[0], s[1])
        }),
        ("DELETE", "projects/*/services/*", |r, s| {
            services::delete(&ctx(r)?, s[0], s[1])
        }),
        ("POST", "projects/*/services/*/snapshots", |r, s| {
            services::snapshot(&ctx(r)?, s[0], s[1])
        }),
        ("GET", "projects/*/services/*/snapshots", |r, s| {
            services::snapshots(&ctx(r)?, s[0], s[1])
        }),
        ("POST", "projects/*/services/*/forkService", |r, s| {
            fork::fork(&ctx(r)?, r, s[0], s[1])
        }),
    ],
    error: |status, message| fail(status, "METHOD_NOT_ALLOWED", message),
};

fn route(req: Req) -> Reply {
    ROUTER.serve(&req, "/public/api/v1")
}

/// Tiger's error shape: `{"code": "NOT_FOUND", "message": …}`.
pub(crate) fn fail(status: u16, code: &str, message: &str) -> Reply {
    Reply::json(
        status,
        &serde_json::json!({"code": code, "message": message}),
    )
}

pub(crate) fn bad(message: &str) -> Reply {
    fail(400, "INVALID_REQUEST", message)
}

pub(crate) fn error(e: &engine::Error) -> Reply {
    let status = spin_adapter::status_of(e);
    // Tiger answers bad input with 400.
    let status = if status == 422 { 400 } else { status };
    let code = spin_adapter::errors::code_of(e).to_ascii_uppercase();
    fail(status, &code, &e.message).with_retry_after(e)
}

fn tiger_shape(r: Reply) -> Reply {
    let status = r.status;
    let message = r.message();
    let code = match status {
        401 => "UNAUTHORIZED",
        403 => "FORBIDDEN",
        _ => "ERROR",
    };
    fail(status, code, &message)
}
