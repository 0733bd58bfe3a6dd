//! `dataset-copy`: Sanity's datasets, Cloud Clone copy, jobs and their
//! `listen` stream, over the engine.
//!
//! - `datasets.rs`: create, list, delete datasets (documents are records:
//!   collection = `_type`, key = `_id`, via the data API as
//!   `sanity:<projectId>:<dataset>`);
//! - `jobs.rs`: copy, job status, the SSE `listen` stream, the copy list;
//! - `documents.rs`: the data endpoints Sanity's CLI and client use for
//!   documents: streamed NDJSON export, mutate, get by id.
//!
//! Every route takes `/v1/` or a dated API version (`/v2021-06-07/`). The
//! project comes from the path (`/projects/{p}/…`) or, on the project-less
//! routes, from the host name (`{p}.<api host>`), as Sanity's clients send
//! it (`datasets::project_of`).
//! Auth: `Authorization: Bearer <tenant token>`; a job id (128 random bits)
//! is its own credential for `GET /jobs/{id}` and `/listen`. Every error,
//! the router's 404 and 405 and the adapter's 413 included, is in Sanity's
//! `{statusCode, error, message}` shape (`shape`).

mod datasets;
mod documents;
mod jobs;

use spin_adapter::http::{serve_shaped, Body, Reply, Req};
use spin_adapter::router::Router;
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

pub(crate) const FAMILY: &str = "sanity";

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve_shaped(req, out, route, shape).await
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

/// The route table, after the API version.
static ROUTER: Router = Router {
    component: "dataset-copy",
    routes: &[
        ("GET", "projects/*/datasets", |r, s| {
            datasets::list(&ctx(r)?, s[0])
        }),
        ("GET", "projects/*/datasets/copy", |r, s| {
            jobs::list(&ctx(r)?, r, s[0])
        }),
        ("PUT", "projects/*/datasets/*", |r, s| {
            datasets::create(&ctx(r)?, r, s[0], s[1])
        }),
        ("DELETE", "projects/*/datasets/*", |r, s| {
            datasets::delete(&ctx(r)?, s[0], s[1])
        }),
        ("PUT", "projects/*/datasets/*/copy", |r, s| {
            jobs::copy(&ctx(r)?, r, s[0], s[1])
        }),
        // Project-less forms (@sanity/client with useProjectHostname).
        ("GET", "datasets", |r, _| {
            let c = ctx(r)?;
            datasets::list(&c, &datasets::project_of(&c, r)?)
        }),
        ("PUT", "datasets/*", |r, s| {
            let c = ctx(r)?;
            datasets::create(&c, r, &datasets::project_of(&c, r)?, s[0])
        }),
        ("DELETE", "datasets/*", |r, s| {
            let c = ctx(r)?;
            datasets::delete(&c, &datasets::project_of(&c, r)?, s[0])
        }),
        ("PUT", "datasets/*/copy", |r, s| {
            let c = ctx(r)?;
            jobs::copy(&c, r, &datasets::project_of(&c, r)?, s[0])
        }),
        ("GET", "jobs/*", |r, s| jobs::get(r, s[0])),
        ("GET", "jobs/*/listen", |r, s| jobs::listen(r, s[0])),
        // What the CLI's dataset commands ask the project host besides.
        ("GET", "aliases", |r, _| {
            let c = ctx(r)?;
            datasets::aliases(&c, &datasets::project_of(&c, r)?)
        }),
        ("GET", "features", |r, _| {
            let c = ctx(r)?;
            datasets::features(&c, &datasets::project_of(&c, r)?)
        }),
        // Documents: `sanity dataset export` / `import`, getDocument(s).
        ("GET", "data/export/*", |r, s| {
            let c = ctx(r)?;
            let p = datasets::project_of(&c, r)?;
            documents::export(c, r, &p, s[0])
        }),
        ("POST", "data/mutate/*", |r, s| {
            let c = ctx(r)?;
            documents::mutate(&c, r, &datasets::project_of(&c, r)?, s[0])
        }),
        ("GET", "data/doc/*/*", |r, s| {
            let c = ctx(r)?;
            documents::get(&c, r, &datasets::project_of(&c, r)?, s[0], s[1])
        }),
    ],
    error: |status, message| fail(status, "Method Not Allowed", message),
};

/// Every route takes `/v1/` or a dated version (`/v2021-06-07/`) first.
fn route(req: Req) -> Reply {
    let Some(seg) = req.segments("") else {
        return ROUTER.not_found(&req);
    };
    let s: Vec<&str> = seg.iter().map(String::as_str).collect();
    match s.split_first() {
        Some((v, rest)) if is_version(v) => ROUTER.dispatch(&req, rest),
        _ => ROUTER.not_found(&req),
    }
}

/// The reason phrase Sanity puts in `error` for a status.
fn reason(status: u16) -> &'static str {
    match http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
    {
        Some(r) => r,
        None if status < 500 => "Bad Request",
        None => "Internal Server Error",
    }
}

/// Every error reply in Sanity's shape: the family's own already are; the
/// router's 404 and the adapter's 400/413 (unreadable or oversized body)
/// are re-shaped, keeping status, message and headers.
fn shape(reply: Reply) -> Reply {
    if reply.status < 400 {
        return reply;
    }
    let Body::Bytes(b) = &reply.body else {
        return reply;
    };
    let v: serde_json::Value = serde_json::from_slice(b).unwrap_or_default();
    if v.get("statusCode").is_some() {
        return reply;
    }
    let mut out = fail(reply.status, reason(reply.status), &reply.message());
    for (k, val) in reply.headers {
        if !k.eq_ignore_ascii_case("content-type") {
            out = out.with_header(&k, &val);
        }
    }
    out
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
    fail(status, reason(status), &e.message).with_retry_after(e)
}
