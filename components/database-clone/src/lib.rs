//! `database-clone`: Qovery's organization, projects, environments and databases, and
//! `POST /database/{id}/clone` — which here also copies the data.
//!
//! - `projects.rs`: the organization, projects;
//! - `environments.rs`: projects' environments, annotation and label groups;
//! - `databases.rs`: create, get, list, delete, status;
//! - `clone.rs`: the clone.
//!
//! Auth: `Authorization: Token <tenant token>` (or `Bearer`). The tenant is
//! the organization. Errors are `{"status", "error", "message"}`.

mod clone;
mod databases;
mod environments;
mod projects;

use spin_adapter::http::{serve, Reply, Req};
use spin_adapter::router::Router;
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
    spin_adapter::ids::uuid_from(&format!("qovery-organization:{}", ctx.tenant))
}

fn ctx(req: &Req) -> Result<Ctx, Reply> {
    let tenant = match req.credential("Token") {
        Some(_) => spin_adapter::auth::tenant(req, "Token"),
        None => spin_adapter::auth::tenant(req, "Bearer"),
    }
    .map_err(|r| fail(r.status, "Unauthorized: send Authorization: Token <token>"))?;
    Ctx::open(tenant, error)
}

/// The route table.
static ROUTER: Router = Router {
    component: "database-clone",
    routes: &[
        ("GET", "organization", |r, _| {
            projects::organizations(&ctx(r)?)
        }),
        ("GET", "organization/*", |r, s| {
            projects::organization(&ctx(r)?, s[0])
        }),
        ("POST", "organization/*/project", |r, s| {
            projects::create(&ctx(r)?, r, s[0])
        }),
        ("GET", "organization/*/project", |r, s| {
            projects::list(&ctx(r)?, s[0])
        }),
        ("GET", "project/*", |r, s| projects::get(&ctx(r)?, s[0])),
        ("DELETE", "project/*", |r, s| {
            projects::delete(&ctx(r)?, s[0])
        }),
        ("POST", "organization/*/annotationsGroup", |r, s| {
            environments::annotations_group(&ctx(r)?, r, s[0])
        }),
        ("POST", "organization/*/labelsGroup", |r, s| {
            environments::labels_group(&ctx(r)?, r, s[0])
        }),
        ("POST", "project/*/environment", |r, s| {
            environments::create(&ctx(r)?, r, s[0])
        }),
        ("GET", "project/*/environment", |r, s| {
            environments::list(&ctx(r)?, s[0])
        }),
        ("GET", "environment/*", |r, s| {
            environments::get(&ctx(r)?, s[0])
        }),
        ("DELETE", "environment/*", |r, s| {
            let ctx = ctx(r)?;
            skip_reconcile(r)?;
            environments::delete(&ctx, s[0])
        }),
        ("POST", "environment/*/database", |r, s| {
            databases::create(&ctx(r)?, r, s[0])
        }),
        ("GET", "environment/*/database", |r, s| {
            databases::list(&ctx(r)?, s[0])
        }),
        ("GET", "database/*", |r, s| databases::get(&ctx(r)?, s[0])),
        ("DELETE", "database/*", |r, s| {
            let ctx = ctx(r)?;
            skip_reconcile(r)?;
            databases::delete(&ctx, s[0])
        }),
        ("GET", "database/*/status", |r, s| {
            databases::status(&ctx(r)?, s[0])
        }),
        ("POST", "database/*/clone", |r, s| {
            clone::clone(&ctx(r)?, r, s[0])
        }),
    ],
    error: fail,
};

/// `?skipReconcile=` (Qovery's deletes): a boolean, accepted and ignored.
fn skip_reconcile(req: &Req) -> Result<(), Reply> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Query {
        #[allow(dead_code)]
        skip_reconcile: Option<bool>,
    }
    req.query_as::<Query>().map(|_| ()).map_err(|e| bad(&e))
}

fn route(req: Req) -> Reply {
    ROUTER.serve(&req, "")
}

pub(crate) fn fail(status: u16, message: &str) -> Reply {
    // Qovery's `error` is the status's reason phrase.
    let error = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
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
    fail(if status == 422 { 400 } else { status }, &e.message).with_retry_after(e)
}
