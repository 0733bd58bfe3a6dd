//! `dataset-copy`: Sanity's datasets, Cloud Clone copy, jobs and their
//! `listen` stream, over the engine.
//!
//! - `datasets.rs`: create, list, delete datasets (documents are records:
//!   collection = `_type`, key = `_id`, via the data API as
//!   `sanity:<projectId>:<dataset>`);
//! - `jobs.rs`: copy, job status, the SSE `listen` stream, the copy list.
//!
//! Every route takes `/v1/` or a dated API version (`/v2021-06-07/`).
//! Auth: `Authorization: Bearer <tenant token>`; a job id (128 random bits)
//! is its own credential for `GET /jobs/{id}` and `/listen`.

mod datasets;
mod jobs;

use spin_adapter::http::{serve, Reply, Req};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

pub(crate) const FAMILY: &str = "sanity";

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve(req, out, route).await
}

pub(crate) type Ctx = spin_adapter::ctx::Ctx;

fn ctx(req: &Req) -> Result<Ctx, Reply> {
    let tenant = spin_adapter::auth::tenant(req, "Bearer")
        .map_err(|r| fail(r.status, "Unauthorized", &r.message()))?;
    Ctx::open(tenant, error)
}

/// `v1` or `vYYYY-MM-DD`.
fn is_version(s: &str) -> bool {
    s == "v1"
        || (s.len() == 11
            && s.starts_with('v')
            && s[1..].bytes().enumerate().all(|(i, b)| {
                if i == 4 || i == 7 {
                    b == b'-'
                } else {
                    b.is_ascii_digit()
                }
            }))
}

/// Every route's method and path pattern (`*`: one segment) after the API
/// version, for 405s.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "projects/*/datasets"),
    ("GET", "projects/*/datasets/copy"),
    ("PUT", "projects/*/datasets/*"),
    ("DELETE", "projects/*/datasets/*"),
    ("PUT", "projects/*/datasets/*/copy"),
    ("GET", "datasets"),
    ("PUT", "datasets/*"),
    ("DELETE", "datasets/*"),
    ("PUT", "datasets/*/copy"),
    ("GET", "jobs/*"),
    ("GET", "jobs/*/listen"),
];

fn route(req: Req) -> Reply {
    let Some(seg) = req.segments("") else {
        return not_found(&req);
    };
    let s: Vec<&str> = seg.iter().map(String::as_str).collect();
    let Some((v, rest)) = s.split_first().filter(|(v, _)| is_version(v)) else {
        return not_found(&req);
    };
    let _ = v;
    let r = (|| -> Result<Reply, Reply> {
        Ok(match (req.method.as_str(), rest) {
            ("GET", ["projects", p, "datasets"]) => datasets::list(&ctx(&req)?, p)?,
            ("GET", ["projects", p, "datasets", "copy"]) => jobs::list(&ctx(&req)?, &req, p)?,
            ("PUT", ["projects", p, "datasets", name]) => {
                datasets::create(&ctx(&req)?, &req, p, name)?
            }
            ("DELETE", ["projects", p, "datasets", name]) => {
                datasets::delete(&ctx(&req)?, p, name)?
            }
            ("PUT", ["projects", p, "datasets", name, "copy"]) => {
                jobs::copy(&ctx(&req)?, &req, p, name)?
            }
            // Project-less forms (@sanity/client with useProjectHostname).
            ("GET", ["datasets"]) => {
                let c = ctx(&req)?;
                let p = datasets::project_of(&c, &req)?;
                datasets::list(&c, &p)?
            }
            ("PUT", ["datasets", name]) => {
                let c = ctx(&req)?;
                let p = datasets::project_of(&c, &req)?;
                datasets::create(&c, &req, &p, name)?
            }
            ("DELETE", ["datasets", name]) => {
                let c = ctx(&req)?;
                let p = datasets::project_of(&c, &req)?;
                datasets::delete(&c, &p, name)?
            }
            ("PUT", ["datasets", name, "copy"]) => {
                let c = ctx(&req)?;
                let p = datasets::project_of(&c, &req)?;
                jobs::copy(&c, &req, &p, name)?
            }
            ("GET", ["jobs", id]) => jobs::get(&req, id)?,
            ("GET", ["jobs", id, "listen"]) => jobs::listen(&req, id)?,
            _ => spin_adapter::reply::unmatched(
                "dataset-copy",
                ROUTES,
                &req.method,
                &req.path,
                rest,
                |st, m| fail(st, "Method Not Allowed", m),
            ),
        })
    })();
    r.unwrap_or_else(|e| e)
}

fn not_found(req: &Req) -> Reply {
    spin_adapter::reply::no_route_reply("dataset-copy", &req.method, &req.path)
}

/// Sanity's error shape: `{"statusCode", "error", "message"}`.
pub(crate) fn fail(status: u16, error: &str, message: &str) -> Reply {
    Reply::json(
        status,
        &serde_json::json!({"statusCode": status, "error": error, "message": message}),
    )
}

pub(crate) fn bad(message: &str) -> Reply {
    fail(400, "Bad Request", message)
}

pub(crate) fn error(e: &engine::Error) -> Reply {
    let status = spin_adapter::status_of(e);
    let status = if status == 422 { 400 } else { status };
    let err = match status {
        400 => "Bad Request",
        404 => "Not Found",
        409 => "Conflict",
        413 => "Payload Too Large",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    };
    fail(status, err, &e.message)
}
