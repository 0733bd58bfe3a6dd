//! `namespace-clone`: Mixpeek's namespaces, namespace clone, tasks and
//! namespace templates, over the engine.
//!
//! - `namespaces.rs`: create, get (id or name), list, delete;
//! - `clone.rs`: clone, tasks (get, cancel), templates.
//!
//! A namespace is a container of family `mixpeek`. Its resources are
//! records in reserved collections, loaded and read through the data API as
//! `mixpeek:<namespace_id>`: `_collections`, `_retrievers`, `_taxonomies`,
//! `_buckets` (configurations, key = resource id), `_objects` (bucket
//! objects: `{bucket_id, url, …}` — files are referenced, never copied) and
//! `points:<collection_id>` (vectors with payloads, key = point id).
//!
//! Auth: `Authorization: Bearer <tenant token>`; the tenant is the
//! organization. Errors are Mixpeek's `ErrorResponse`.

mod clone;
mod namespaces;

use spin_adapter::auth::Principal;
use spin_adapter::http::{serve, Reply, Req};
use spin_adapter::router::Router;
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

pub(crate) const FAMILY: &str = "mixpeek";

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve(req, out, route).await
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
        ("GET", "tasks/*", |r, s| clone::task(&ctx(r)?, s[0])),
        ("DELETE", "tasks/*", |r, s| clone::cancel(&ctx(r)?, s[0])),
        ("POST", "templates/namespaces/from-namespace/*", |r, s| {
            clone::template_from(&ctx(r)?, r, s[0])
        }),
        ("POST", "templates/namespaces/*/instantiate", |r, s| {
            clone::instantiate(&ctx(r)?, r, s[0])
        }),
    ],
    error: |status, message| fail(status, "method_not_allowed", message),
};

fn route(req: Req) -> Reply {
    ROUTER.serve(&req, "/v1")
}

/// Mixpeek's `ErrorResponse`.
pub(crate) fn fail(status: u16, kind: &str, message: &str) -> Reply {
    Reply::json(
        status,
        &serde_json::json!({"success": false, "status": status, "error": {"message": message, "type": kind}}),
    )
}

pub(crate) fn bad(message: &str) -> Reply {
    fail(400, "bad_request", message)
}

pub(crate) fn error(e: &engine::Error) -> Reply {
    let status = spin_adapter::status_of(e);
    let status = if status == 422 { 400 } else { status };
    fail(status, spin_adapter::errors::code_of(e), &e.message).with_retry_after(e)
}
