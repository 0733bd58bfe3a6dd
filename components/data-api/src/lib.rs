//! `data-api`: Spinoff's own family, base `/data/v1`. Loads and reads data
//! in any family's resources, and clones them. A router table, handlers that
//! turn HTTP into engine calls and back; the engine owns the logic.
//!
//! - `resources.rs`: resources, records, export, snapshots;
//! - `diff.rs`: a resource against its parent, another resource or its past (NDJSON);
//! - `merge.rs`: a branch merged into its parent, conflicts listed or resolved,
//!   in one transaction or in chunks the worker advances;
//! - `imports.rs`: imports, in one request or an import session (staged);
//! - `operations.rs`: clones and operations, the SSE event stream;
//! - `shapes.rs`: JSON shapes of resources and operations;
//! - `webhooks.rs`: the tenant's webhook signing secret.

mod diff;
mod imports;
mod merge;
mod operations;
mod resources;
mod shapes;
mod webhooks;

use spin_adapter::http::{serve, Reply, Req};
use spin_adapter::router::Router;
use spin_adapter::store::SpinEnv;
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

const BASE: &str = "/data/v1";
const COMPONENT: &str = "data-api";

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve(req, out, route).await
}

/// A request's context: the tenant and an engine over a fresh connection.
pub(crate) type Ctx = spin_adapter::ctx::Ctx;

fn ctx(req: &Req) -> Result<Ctx, Reply> {
    let tenant = spin_adapter::auth::tenant(req, "Bearer")?;
    Ctx::open(tenant, Reply::error)
}

/// The route table (after `/data/v1`).
static ROUTER: Router = Router {
    component: COMPONENT,
    routes: &[
        ("GET", "openapi.json", |_, _| Ok(openapi())),
        ("GET", "openapi/*", |_, s| Ok(family_openapi(s[0]))),
        ("POST", "tokens", |r, _| tokens(r)),
        ("GET", "tokens/current", |r, _| current_token(r)),
        ("DELETE", "tokens/current", |r, _| {
            revoke_token(r, "current")
        }),
        ("DELETE", "tokens/*", |r, s| revoke_token(r, s[0])),
        ("POST", "webhooks/secret", |r, _| webhooks::rotate(&ctx(r)?)),
        ("GET", "webhooks/secret", |r, _| {
            webhooks::describe(&ctx(r)?)
        }),
        ("GET", "resources", |r, _| resources::list_resources(&ctx(r)?, r)),
        ("GET", "tenants", |r, _| tenants(r)),
        ("PUT", "resources/*", |r, s| {
            resources::create(&ctx(r)?, r, s[0])
        }),
        ("GET", "resources/*", |r, s| resources::get(&ctx(r)?, s[0])),
        ("PATCH", "resources/*", |r, s| {
            resources::update(&ctx(r)?, r, s[0])
        }),
        ("DELETE", "resources/*", |r, s| {
            resources::delete(&ctx(r)?, s[0])
        }),
        ("GET", "resources/*/collections/*/records", |r, s| {
            resources::list(&ctx(r)?, r, s[0], s[1])
        }),
        ("PUT", "resources/*/collections/*/records/*", |r, s| {
            resources::put(&ctx(r)?, r, s[0], s[1], s[2])
        }),
        ("GET", "resources/*/collections/*/records/*", |r, s| {
            resources::read(&ctx(r)?, r, s[0], s[1], s[2])
        }),
        ("DELETE", "resources/*/collections/*/records/*", |r, s| {
            resources::remove(&ctx(r)?, s[0], s[1], s[2])
        }),
        (
            "GET",
            "resources/*/collections/*/records/*/history",
            |r, s| resources::history(&ctx(r)?, r, s[0], s[1], s[2]),
        ),
        ("POST", "resources/*/import", |r, s| {
            imports::import(&ctx(r)?, r, s[0])
        }),
        ("POST", "resources/*/imports", |r, s| {
            imports::open(&ctx(r)?, s[0])
        }),
        ("POST", "resources/*/imports/*/lines", |r, s| {
            imports::lines(&ctx(r)?, r, s[0], s[1])
        }),
        ("POST", "resources/*/imports/*/commit", |r, s| {
            imports::commit(&ctx(r)?, s[0], s[1])
        }),
        ("DELETE", "resources/*/imports/*", |r, s| {
            imports::abandon(&ctx(r)?, s[0], s[1])
        }),
        ("GET", "resources/*/diff", |r, s| diff::diff(ctx(r)?, r, s[0])),
        ("POST", "resources/*/merge", |r, s| merge::merge(&ctx(r)?, r, s[0])),
        ("GET", "resources/*/merge", |r, s| merge::status(&ctx(r)?, s[0])),
        ("DELETE", "resources/*/merge", |r, s| merge::cancel(&ctx(r)?, s[0])),
        ("GET", "resources/*/merge/conflicts", |r, s| {
            merge::conflicts(&ctx(r)?, r, s[0])
        }),
        ("POST", "resources/*/reset", |r, s| {
            resources::reset(&ctx(r)?, r, s[0])
        }),
        ("GET", "resources/*/export", |r, s| {
            resources::export(ctx(r)?, r, s[0])
        }),
        ("POST", "resources/*/snapshots", |r, s| {
            resources::snapshot(&ctx(r)?, r, s[0])
        }),
        ("GET", "resources/*/snapshots", |r, s| {
            resources::snapshots(&ctx(r)?, s[0])
        }),
        ("POST", "resources/*/clones", |r, s| {
            operations::clone(&ctx(r)?, r, s[0])
        }),
        ("POST", "resources/*/verify", |r, s| {
            operations::verify(&ctx(r)?, s[0])
        }),
        ("POST", "resources/*/hydrate", |r, s| {
            operations::hydrate(&ctx(r)?, s[0])
        }),
        ("GET", "operations", |r, _| operations::list(&ctx(r)?, r)),
        ("GET", "operations/*", |r, s| {
            operations::get(&ctx(r)?, s[0])
        }),
        ("POST", "operations/*/cancel", |r, s| {
            operations::cancel(&ctx(r)?, s[0])
        }),
        ("POST", "operations/*/retry", |r, s| {
            operations::retry(&ctx(r)?, s[0])
        }),
        ("GET", "operations/*/events", |r, s| {
            operations::events(ctx(r)?, r, s[0])
        }),
    ],
    error: |status, message| Reply::problem(status, "method_not_allowed", message),
};

fn route(req: Req) -> Reply {
    match req.segments(BASE) {
        Some(seg) => {
            let s: Vec<&str> = seg.iter().map(String::as_str).collect();
            ROUTER.dispatch(&req, &s)
        }
        None => Reply::problem(404, "not_found", "no such route"),
    }
}

fn openapi() -> Reply {
    Reply {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: spin_adapter::http::Body::Bytes(include_bytes!("openapi.json").to_vec()),
    }
}

/// The OpenAPI documents of the five vendor families (YAML), each next to
/// the component that serves the family. `GET /data/v1/openapi/{family}`.
const FAMILY_DOCS: &[(&str, &str)] = &[
    (
        "typesense",
        include_str!("../../cluster-cloning/openapi.yaml"),
    ),
    (
        "mixpeek",
        include_str!("../../namespace-clone/openapi.yaml"),
    ),
    ("timescale", include_str!("../../service-fork/openapi.yaml")),
    ("sanity", include_str!("../../dataset-copy/openapi.yaml")),
    ("qovery", include_str!("../../database-clone/openapi.yaml")),
];

fn family_openapi(family: &str) -> Reply {
    let family = family.trim_end_matches(".yaml");
    match FAMILY_DOCS.iter().find(|(f, _)| *f == family) {
        Some((_, doc)) => Reply {
            status: 200,
            headers: vec![("content-type".into(), "application/yaml".into())],
            body: spin_adapter::http::Body::Bytes(doc.as_bytes().to_vec()),
        },
        None => Reply::problem(
            404,
            "not_found",
            &format!(
                "no OpenAPI document for {family:?}; the families are {}",
                FAMILY_DOCS
                    .iter()
                    .map(|(f, _)| *f)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
    }
}

/// `POST /tokens` with the admin token: mint a tenant token.
fn tokens(req: &Req) -> Result<Reply, Reply> {
    spin_adapter::auth::admin(req, "Bearer")?;
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        tenant: String,
    }
    let b: Body = req.json()?;
    engine::util::check_name("tenant", &b.tenant).map_err(|e| Reply::error(&e))?;
    let minted = spin_adapter::auth::mint(&b.tenant, engine::Env::now_us(&SpinEnv))?;
    Ok(Reply::json(
        201,
        &serde_json::json!({"token": minted.token, "tenant": b.tenant, "id": minted.id}),
    ))
}

/// `GET /tenants?after=&limit=` (admin token): the tenants that hold
/// resources, in name order — what the console's tenant picker lists.
fn tenants(req: &Req) -> Result<Reply, Reply> {
    spin_adapter::auth::admin(req, "Bearer")?;
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Query {
        after: Option<String>,
        limit: Option<i64>,
    }
    let invalid = |m: String| Reply::problem(422, "invalid_input", &m);
    let q: Query = req.query_as().map_err(invalid)?;
    let limit = spin_adapter::http::within("limit", q.limit.unwrap_or(100), 1, 1000).map_err(invalid)?;
    let db = spin_adapter::store::SpinDb::open().map_err(|e| Reply::error(&e))?;
    let e = engine::Engine::open(&db, &SpinEnv).map_err(|e| Reply::error(&e))?;
    let list = e
        .tenants(q.after.as_deref().unwrap_or(""), limit)
        .map_err(|e| Reply::error(&e))?;
    let next = (list.len() as i64 == limit).then(|| list.last().cloned()).flatten();
    Ok(Reply::json(200, &serde_json::json!({"tenants": list, "next": next})))
}

/// `GET /tokens/current`: the presented tenant token's id, tenant and
/// creation time (never the secret).
fn current_token(req: &Req) -> Result<Reply, Reply> {
    spin_adapter::auth::tenant(req, "Bearer")?;
    let token = req.credential("Bearer").unwrap_or_default();
    let record = spin_adapter::auth::describe(token)?
        .ok_or_else(|| Reply::problem(401, "unauthorized", "the token is not valid"))?;
    Ok(Reply::json(200, &record))
}

/// `DELETE /tokens/{id}`: revoke a token. The admin token revokes any; a
/// tenant token its own tenant's (`current` is the presented token). Every
/// request with a revoked token answers 401 from then on.
fn revoke_token(req: &Req, id: &str) -> Result<Reply, Reply> {
    use spin_adapter::auth::{resolve, revoke, Principal};
    let Some(presented) = req.credential("Bearer") else {
        return Err(
            Reply::problem(401, "unauthorized", "send Authorization: Bearer <token>")
                .with_header("www-authenticate", "Bearer"),
        );
    };
    let by = match resolve(presented)? {
        Some(p) => p,
        None => {
            // 503 naming the variable when admin_token is unset, else 401.
            spin_adapter::auth::is_admin(presented)?;
            return Err(
                Reply::problem(401, "unauthorized", "the token is not valid")
                    .with_header("www-authenticate", "Bearer"),
            );
        }
    };
    let id = if id == "current" {
        match (&by, spin_adapter::auth::describe(presented)?) {
            (Principal::Tenant(_), Some(r)) => r["id"].as_str().unwrap_or_default().to_string(),
            _ => return Err(Reply::problem(400, "invalid_input", "tokens/current names a tenant token; the admin token is the Spin variable admin_token")),
        }
    } else {
        id.to_string()
    };
    if revoke(&id, &by)? {
        Ok(Reply::empty(204))
    } else {
        Err(Reply::problem(
            404,
            "not_found",
            &format!("no token {id} for this caller"),
        ))
    }
}
