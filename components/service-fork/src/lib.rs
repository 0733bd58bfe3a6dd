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

/// Every route's method and path pattern (`*`: one segment), for 405s.
const ROUTES: &[(&str, &str)] = &[
    ("POST", "projects/*/services"),
    ("GET", "projects/*/services"),
    ("GET", "projects/*/services/*"),
    ("DELETE", "projects/*/services/*"),
    ("POST", "projects/*/services/*/snapshots"),
    ("GET", "projects/*/services/*/snapshots"),
    ("POST", "projects/*/services/*/forkService"),
];

fn route(req: Req) -> Reply {
    let Some(seg) = req.segments("/public/api/v1") else {
        return spin_adapter::reply::no_route_reply("service-fork", &req.method, &req.path);
    };
    let s: Vec<&str> = seg.iter().map(String::as_str).collect();
    let r = (|| -> Result<Reply, Reply> {
        Ok(match (req.method.as_str(), s.as_slice()) {
            ("POST", ["projects", p, "services"]) => services::create(&ctx(&req)?, &req, p)?,
            ("GET", ["projects", p, "services"]) => services::list(&ctx(&req)?, p)?,
            ("GET", ["projects", p, "services", id]) => services::get(&ctx(&req)?, p, id)?,
            ("DELETE", ["projects", p, "services", id]) => services::delete(&ctx(&req)?, p, id)?,
            ("POST", ["projects", p, "services", id, "snapshots"]) => {
                services::snapshot(&ctx(&req)?, p, id)?
            }
            ("GET", ["projects", p, "services", id, "snapshots"]) => {
                services::snapshots(&ctx(&req)?, p, id)?
            }
            ("POST", ["projects", p, "services", id, "forkService"]) => {
                fork::fork(&ctx(&req)?, &req, p, id)?
            }
            _ => spin_adapter::reply::unmatched(
                "service-fork",
                ROUTES,
                &req.method,
                &req.path,
                &s,
                |st, m| fail(st, "METHOD_NOT_ALLOWED", m),
            ),
        })
    })();
    r.unwrap_or_else(|e| e)
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
    fail(status, &code, &e.message)
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
