//! `namespace-clone`: Mixpeek's namespaces, namespace clone, tasks and
//! namespace templates, over the engine.
//!
//! - `namespaces.rs`: create, get (id or name), list, delete;
//! - `clone.rs`: clone, tasks (get, cancel), templates;
//! - `documents.rs`: BYO documents (upsert, get, list), stored as the
//!   `points:<collection_id>` records a clone copies.
//!
//! A namespace is a container of family `mixpeek`. Its resources are
//! records in reserved collections, loaded and read through the data API as
//! `mixpeek:<namespace_id>`: `_collections`, `_retrievers`, `_taxonomies`,
//! `_buckets` (configurations, key = resource id), `_objects` (bucket
//! objects: `{bucket_id, url, …}` — files are referenced, never copied) and
//! `points:<collection_id>` (vectors with payloads, key = point id).
//!
//! Auth: `Authorization: Bearer <tenant token>`; the tenant is the
//! organization. Every answer that is an error — the router's 404 and 405,
//! the adapter's 413 — is Mixpeek's `ErrorResponse` (`mixpeek_shape`):
//! Mixpeek's SDK reads `error.details` of every error body.

mod clone;
mod documents;
mod namespaces;

use serde_json::{json, Value};
use spin_adapter::auth::Principal;
use spin_adapter::http::{serve_shaped, Body, Reply, Req};
use spin_adapter::router::Router;
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

pub(crate) const FAMILY: &str = "mixpeek";

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve_shaped(req, out, route, mixpeek_shape).await
}

/// The caller's organization (tenant), `None` for the admin token.
pub(crate) type Ctx = spin_adapter::ctx::Ctx<Option<String>>;

/// The caller's tenant.
pub(crate) trait Caller {
    /// The tenant, or 403 for the admin token on an organization's route.
    fn tenant(&self) -> Result<&str, Reply>;
}

impl Caller for Ctx {
    fn tenant(&self) -> Result<&str, Reply> {
        self.tenant.as_deref().ok_or_else(|| {
            fail(
                403,
                "forbidden",
                "the admin token only clones across organizations; use an organization's API key",
            )
        })
    }
}

/// An organization id for a tenant: `org_` and 16 hex digits of its hash.
pub(crate) fn org_of(tenant: &str) -> String {
    let h = <sha2::Sha256 as sha2::Digest>::digest(format!("mixpeek-org:{tenant}").as_bytes());
    format!("org_{}", &hex::encode(h)[..16])
}

fn ctx(req: &Req) -> Result<Ctx, Reply> {
    let Some(token) = req.credential("Bearer") else {
        return Err(fail(
            401,
            "unauthorized",
            "send Authorization: Bearer <API key>",
        ));
    };
    let tenant = match spin_adapter::auth::resolve(token)? {
        Some(Principal::Tenant(t)) => Some(t),
        Some(Principal::Admin) => None,
        None => return Err(fail(401, "unauthorized", "the API key is not valid")),
    };
    let c = Ctx::open(tenant, error)?;
    if let Some(t) = &c.tenant {
        // Remember which tenant an organization id stands for.
        let e = c.engine()?;
        let _ = e.claim_owned("mixpeek-org", &org_of(t), t);
    }
    Ok(c)
}

/// The route table (after `/v1`).
static ROUTER: Router = Router {
    component: "namespace-clone",
    routes: &[
        ("POST", "namespaces", |r, _| namespaces::create(&ctx(r)?, r)),
        ("GET", "namespaces", |r, _| namespaces::list(&ctx(r)?, r)),
        ("POST", "namespaces/list", |r, _| {
            namespaces::list(&ctx(r)?, r)
        }),
        ("GET", "namespaces/*", |r, s| {
            namespaces::get(&ctx(r)?, s[0])
        }),
        ("DELETE", "namespaces/*", |r, s| {
            namespaces::delete(&ctx(r)?, s[0])
        }),
        ("POST", "namespaces/*/clone", |r, s| {
            clone::clone(&ctx(r)?, r, s[0])
        }),
        ("POST", "namespaces/*/documents/upsert", |r, s| {
            documents::upsert(&ctx(r)?, r, s[0])
        }),
        ("GET", "namespaces/*/documents/*", |r, s| {
            documents::get(&ctx(r)?, r, s[0], s[1])
        }),
        ("POST", "documents/list", |r, _| {
            documents::list(&ctx(r)?, r)
        }),
        ("POST", "collections/*/documents/list", |r, s| {
            documents::list_collection(&ctx(r)?, r, s[0])
        }),
        ("GET", "tasks/*", |r, s| clone::task(&ctx(r)?, s[0])),
        ("DELETE", "tasks/*", |r, s| clone::cancel(&ctx(r)?, s[0])),
        ("POST", "templates/namespaces/from-namespace/*", |r, s| {
            clone::template_from(&ctx(r)?, r, s[0])
        }),
        ("POST", "templates/namespaces/*/instantiate", |r, s| {
            clone::instantiate(&ctx(r)?, r, s[0])
        }),
    ],
    error: |status, message| {
        let kind = if status == 405 {
            "method_not_allowed"
        } else {
            "not_found"
        };
        fail(status, kind, message)
    },
};

fn route(req: Req) -> Reply {
    ROUTER.serve(&req, "/v1")
}

/// Mixpeek's `ErrorResponse`.
pub(crate) fn fail(status: u16, kind: &str, message: &str) -> Reply {
    fail_with(status, kind, None, message, Value::Null)
}

/// Mixpeek's `ErrorResponse` with its optional `code` and `details`.
pub(crate) fn fail_with(
    status: u16,
    kind: &str,
    code: Option<&str>,
    message: &str,
    details: Value,
) -> Reply {
    let mut error = json!({"message": message, "type": kind});
    if let Some(code) = code {
        error["code"] = code.into();
    }
    if details.as_object().is_some_and(|o| !o.is_empty()) {
        error["details"] = details;
    }
    Reply::json(
        status,
        &json!({"success": false, "status": status, "error": error}),
    )
}

/// Every reply leaves through here: an error body not in Mixpeek's shape
/// (the router's 404 for a path no route has, the adapter's 413 or 400 for
/// a body it could not read, its auth errors) is re-shaped into
/// `{success, status, error: {message, type, details}}`, the rest of its
/// fields (e.g. `component`) going to `details`; headers are kept.
fn mixpeek_shape(reply: Reply) -> Reply {
    if reply.status < 400 {
        return reply;
    }
    let Body::Bytes(bytes) = &reply.body else {
        return reply;
    };
    let Ok(Value::Object(mut m)) = serde_json::from_slice::<Value>(bytes) else {
        return reply;
    };
    if m.get("error").is_some_and(Value::is_object) {
        return reply;
    }
    let kind = m
        .remove("error")
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_else(|| "error".into());
    let message = m
        .remove("message")
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_else(|| kind.clone());
    let shaped = fail_with(reply.status, &kind, None, &message, Value::Object(m));
    Reply {
        headers: reply.headers,
        ..shaped
    }
}

pub(crate) fn bad(message: &str) -> Reply {
    fail(400, "bad_request", message)
}

pub(crate) fn error(e: &engine::Error) -> Reply {
    let status = spin_adapter::status_of(e);
    let status = if status == 422 { 400 } else { status };
    fail(status, spin_adapter::errors::code_of(e), &e.message).with_retry_after(e)
}
