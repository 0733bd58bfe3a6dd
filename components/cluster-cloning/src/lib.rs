//! `cluster-cloning`: Typesense Cloud's Cluster Management API shape —
//! clusters and their cloning operations — over the engine.
//!
//! - `clusters.rs`: create, list, get, terminate clusters;
//! - `cloning.rs`: start, get, list and cancel cloning operations.
//!
//! Auth: `X-TYPESENSE-CLOUD-MANAGEMENT-API-KEY: <tenant token>`. Errors are
//! `{"success": false, "message": …, "error": code}`.

mod cloning;
mod clusters;

use spin_adapter::http::{serve, Reply, Req};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

pub(crate) const FAMILY: &str = "typesense";
const KEY_HEADER: &str = "x-typesense-cloud-management-api-key";

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve(req, out, route).await
}

pub(crate) type Ctx = spin_adapter::ctx::Ctx;

fn ctx(req: &Req) -> Result<Ctx, Reply> {
    let tenant =
        spin_adapter::auth::tenant_from_header(req, KEY_HEADER).map_err(typesense_shape)?;
    Ctx::open(tenant, error)
}

/// Every route's method and path pattern (`*`: one segment), for 405s.
const ROUTES: &[(&str, &str)] = &[
    ("POST", "clusters"),
    ("GET", "clusters"),
    ("GET", "clusters/*"),
    ("DELETE", "clusters/*"),
    ("POST", "clusters/*/terminate"),
    ("POST", "clusters/*/cloning-operations"),
    ("GET", "clusters/*/cloning-operations"),
    ("GET", "clusters/*/cloning-operations/*"),
    ("PATCH", "clusters/*/cloning-operations/*"),
];

/// The router table.
fn route(req: Req) -> Reply {
    let Some(seg) = req.segments("/api/v1") else {
        return spin_adapter::reply::no_route_reply("cluster-cloning", &req.method, &req.path);
    };
    let s: Vec<&str> = seg.iter().map(String::as_str).collect();
    let r = (|| -> Result<Reply, Reply> {
        Ok(match (req.method.as_str(), s.as_slice()) {
            ("POST", ["clusters"]) => clusters::create(&ctx(&req)?, &req)?,
            ("GET", ["clusters"]) => clusters::list(&ctx(&req)?, &req)?,
            ("GET", ["clusters", id]) => clusters::get(&ctx(&req)?, id)?,
            ("DELETE", ["clusters", id]) | ("POST", ["clusters", id, "terminate"]) => {
                clusters::terminate(&ctx(&req)?, id)?
            }
            ("POST", ["clusters", id, "cloning-operations"]) => {
                cloning::start(&ctx(&req)?, &req, id)?
            }
            ("GET", ["clusters", id, "cloning-operations"]) => {
                cloning::list(&ctx(&req)?, &req, id)?
            }
            ("GET", ["clusters", id, "cloning-operations", op]) => {
                cloning::get(&ctx(&req)?, id, op)?
            }
            ("PATCH", ["clusters", id, "cloning-operations", op]) => {
                cloning::cancel(&ctx(&req)?, &req, id, op)?
            }
            _ => spin_adapter::reply::unmatched(
                "cluster-cloning",
                ROUTES,
                &req.method,
                &req.path,
                &s,
                |st, m| fail(st, "method_not_allowed", m),
            ),
        })
    })();
    r.unwrap_or_else(|e| e)
}

/// An engine error in Typesense's shape.
pub(crate) fn error(e: &engine::Error) -> Reply {
    typesense_shape(Reply::error(e))
}

/// 400 in Typesense's shape.
pub(crate) fn bad(message: &str) -> Reply {
    fail(400, "invalid_input", message)
}

pub(crate) fn fail(status: u16, code: &str, message: &str) -> Reply {
    Reply::json(
        status,
        &serde_json::json!({"success": false, "error": code, "message": message}),
    )
}

/// Turn the default `{"error", "message"}` body into `{"success": false, …}`.
fn typesense_shape(mut r: Reply) -> Reply {
    if let spin_adapter::http::Body::Bytes(b) = &r.body {
        if let Ok(serde_json::Value::Object(mut m)) = serde_json::from_slice::<serde_json::Value>(b)
        {
            m.insert("success".into(), false.into());
            r.body = spin_adapter::http::Body::Bytes(
                serde_json::Value::Object(m).to_string().into_bytes(),
            );
        }
    }
    r
}
