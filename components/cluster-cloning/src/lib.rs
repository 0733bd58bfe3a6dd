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
use spin_adapter::router::Router;
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

/// The route table (after `/api/v1`).
static ROUTER: Router = Router {
    component: "cluster-cloning",
    routes: &[
        ("POST", "clusters", |r, _| clusters::create(&ctx(r)?, r)),
        ("GET", "clusters", |r, _| clusters::list(&ctx(r)?, r)),
        ("GET", "clusters/*", |r, s| clusters::get(&ctx(r)?, s[0])),
        ("DELETE", "clusters/*", |r, s| {
            clusters::terminate(&ctx(r)?, s[0])
        }),
        ("POST", "clusters/*/terminate", |r, s| {
            clusters::terminate(&ctx(r)?, s[0])
        }),
        ("POST", "clusters/*/cloning-operations", |r, s| {
            cloning::start(&ctx(r)?, r, s[0])
        }),
        ("GET", "clusters/*/cloning-operations", |r, s| {
            cloning::list(&ctx(r)?, r, s[0])
        }),
        ("GET", "clusters/*/cloning-operations/*", |r, s| {
            cloning::get(&ctx(r)?, s[0], s[1])
        }),
        ("PATCH", "clusters/*/cloning-operations/*", |r, s| {
            cloning::cancel(&ctx(r)?, r, s[0], s[1])
        }),
    ],
    error: |status, message| fail(status, "method_not_allowed", message),
};

fn route(req: Req) -> Reply {
    ROUTER.serve(&req, "/api/v1")
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
