//! `database-clone`: Qovery's organizations, environments and databases, and
//! `POST /database/{id}/clone` — which here also copies the data.
//!
//! - `environments.rs`: organization, projects' environments, annotation and label groups;
//! - `databases.rs`: create, get, list, delete, status;
//! - `clone.rs`: the clone.
//!
//! Auth: `Authorization: Token <tenant token>` (or `Bearer`). The tenant is
//! the organization. Errors are `{"status", "error", "message"}`.

mod clone;
mod databases;
mod environments;

use spin_adapter::http::{serve, Reply, Req};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

pub(crate) const FAMILY: &str = "qovery";

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve(req, out, route).await
}

pub(crate) type Ctx = spin_adapter::ctx::Ctx;

/// The caller's organization id.
pub(crate) fn organization(ctx: &Ctx) -> String {
    spin_adapter::store::uuid_from(&format!("qovery-organization:{}", ctx.tenant))
}

fn ctx(req: &Req) -> Result<Ctx, Reply> {
    let tenant = match req.credential("Token") {
        Some(_) => spin_adapter::auth::tenant(req, "Token"),
        None => spin_adapter::auth::tenant(req, "Bearer"),
    }
    .map_err(|r| fail(r.status, "Unauthorized: send Authorization: Token <token>"))?;
    Ctx::open(tenant, error)
}

/// Every route's method and path pattern (`*`: one segment), for 405s.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "organization"),
    ("POST", "organization/*/annotationsGroup"),
    ("POST", "organization/*/labelsGroup"),
    ("POST", "project/*/environment"),
    ("GET", "project/*/environment"),
    ("GET", "environment/*"),
    ("POST", "environment/*/database"),
    ("GET", "environment/*/database"),
    ("GET", "database/*"),
    ("DELETE", "database/*"),
    ("GET", "database/*/status"),
    ("POST", "database/*/clone"),
];

fn route(req: Req) -> Reply {
    let Some(seg) = req.segments("") else {
        return spin_adapter::reply::no_route_reply("database-clone", &req.method, &req.path);
    };
    let s: Vec<&str> = seg.iter().map(String::as_str).collect();
    let r = (|| -> Result<Reply, Reply> {
        Ok(match (req.method.as_str(), s.as_slice()) {
            ("GET", ["organization"]) => environments::organizations(&ctx(&req)?)?,
            ("POST", ["organization", o, "annotationsGroup"]) => {
                environments::annotations_group(&ctx(&req)?, &req, o)?
            }
            ("POST", ["organization", o, "labelsGroup"]) => {
                environments::labels_group(&ctx(&req)?, &req, o)?
            }
            ("POST", ["project", p, "environment"]) => environments::create(&ctx(&req)?, &req, p)?,
            ("GET", ["project", p, "environment"]) => environments::list(&ctx(&req)?, p)?,
            ("GET", ["environment", id]) => environments::get(&ctx(&req)?, id)?,
            ("POST", ["environment", env, "database"]) => {
                databases::create(&ctx(&req)?, &req, env)?
            }
            ("GET", ["environment", env, "database"]) => databases::list(&ctx(&req)?, env)?,
            ("GET", ["database", id]) => databases::get(&ctx(&req)?, id)?,
            ("DELETE", ["database", id]) => databases::delete(&ctx(&req)?, id)?,
            ("GET", ["database", id, "status"]) => databases::status(&ctx(&req)?, id)?,
            ("POST", ["database", id, "clone"]) => clone::clone(&ctx(&req)?, &req, id)?,
            _ => spin_adapter::reply::unmatched(
                "database-clone",
                ROUTES,
                &req.method,
                &req.path,
                &s,
                fail,
            ),
        })
    })();
    r.unwrap_or_else(|e| e)
}

pub(crate) fn fail(status: u16, message: &str) -> Reply {
    let error = match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        503 => "Service Unavailable",
        _ => "Error",
    };
    Reply::json(
        status,
        &serde_json::json!({"status": status, "error": error, "message": message}),
    )
}

pub(crate) fn bad(message: &str) -> Reply {
    fail(400, message)
}

pub(crate) fn error(e: &engine::Error) -> Reply {
    let status = spin_adapter::status_of(e);
    fail(if status == 422 { 400 } else { status }, &e.message)
}
