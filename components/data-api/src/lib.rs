//! `data-api`: Spinoff's own family, base `/data/v1`. Loads and reads data
//! in any family's resources, and clones them. A router table, handlers that
//! turn HTTP into engine calls and back; the engine owns the logic.
//!
//! - `resources.rs`: resources, records, import/export, snapshots;
//! - `operations.rs`: clones and operations, the SSE event stream;
//! - `shapes.rs`: JSON shapes of resources and operations.

mod operations;
mod resources;
mod shapes;

use spin_adapter::http::{serve, Reply, Req};
use spin_adapter::store::{SpinDb, SpinEnv};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

const BASE: &str = "/data/v1";
const COMPONENT: &str = "data-api";

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve(req, out, route).await
}

/// A request's context: the tenant and an engine over a fresh connection.
pub(crate) struct Ctx {
    pub tenant: String,
    pub db: SpinDb,
}

impl Ctx {
    pub fn engine(&self) -> Result<engine::Engine<'_>, Reply> {
        engine::Engine::open(&self.db, &SpinEnv).map_err(|e| Reply::error(&e))
    }
}

fn ctx(req: &Req) -> Result<Ctx, Reply> {
    let tenant = spin_adapter::auth::tenant(req, "Bearer")?;
    let db = SpinDb::open().map_err(|e| Reply::error(&e))?;
    Ok(Ctx { tenant, db })
}

/// The router table.
fn route(req: Req) -> Reply {
    let Some(seg) = req.segments(BASE) else {
        return spin_adapter::http::Reply::problem(404, "not_found", "no such route");
    };
    let s: Vec<&str> = seg.iter().map(String::as_str).collect();
    let m = req.method.as_str();
    let r = (|| -> Result<Reply, Reply> {
        Ok(match (m, s.as_slice()) {
            ("GET", ["openapi.json"]) => openapi(),
            ("POST", ["tokens"]) => tokens(&req)?,
            ("PUT", ["resources", r]) => resources::create(&ctx(&req)?, &req, r)?,
            ("GET", ["resources", r]) => resources::get(&ctx(&req)?, r)?,
            ("DELETE", ["resources", r]) => resources::delete(&ctx(&req)?, r)?,
            ("GET", ["resources", r, "collections", c, "records"]) => {
                resources::list(&ctx(&req)?, &req, r, c)?
            }
            ("PUT", ["resources", r, "collections", c, "records", k]) => {
                resources::put(&ctx(&req)?, &req, r, c, k)?
            }
            ("GET", ["resources", r, "collections", c, "records", k]) => {
                resources::read(&ctx(&req)?, &req, r, c, k)?
            }
            ("DELETE", ["resources", r, "collections", c, "records", k]) => {
                resources::remove(&ctx(&req)?, r, c, k)?
            }
            ("GET", ["resources", r, "collections", c, "records", k, "history"]) => {
                resources::history(&ctx(&req)?, &req, r, c, k)?
            }
            ("POST", ["resources", r, "import"]) => resources::import(&ctx(&req)?, &req, r)?,
            ("GET", ["resources", r, "export"]) => resources::export(ctx(&req)?, &req, r)?,
            ("POST", ["resources", r, "snapshots"]) => resources::snapshot(&ctx(&req)?, &req, r)?,
            ("GET", ["resources", r, "snapshots"]) => resources::snapshots(&ctx(&req)?, r)?,
            ("POST", ["resources", r, "clones"]) => operations::clone(&ctx(&req)?, &req, r)?,
            ("GET", ["operations"]) => operations::list(&ctx(&req)?, &req)?,
            ("GET", ["operations", id]) => operations::get(&ctx(&req)?, id)?,
            ("POST", ["operations", id, "cancel"]) => operations::cancel(&ctx(&req)?, id)?,
            ("POST", ["operations", id, "retry"]) => operations::retry(&ctx(&req)?, id)?,
            ("GET", ["operations", id, "events"]) => operations::events(ctx(&req)?, &req, id)?,
            _ => match allowed(s.as_slice()) {
                Some(methods) => Reply::problem(
                    405,
                    "method_not_allowed",
                    &format!("{m} is not allowed here; use {}", methods.join(", ")),
                )
                .with_header("allow", &methods.join(", ")),
                None => spin_adapter::reply::no_route_reply(COMPONENT, m, &req.path),
            },
        })
    })();
    r.unwrap_or_else(|e| e)
}

/// The methods a known path allows (for 405 with `Allow`).
fn allowed(s: &[&str]) -> Option<&'static [&'static str]> {
    Some(match s {
        ["openapi.json"] => &["GET"],
        ["tokens"] => &["POST"],
        ["resources", _] => &["PUT", "GET", "DELETE"],
        ["resources", _, "collections", _, "records"] => &["GET"],
        ["resources", _, "collections", _, "records", _] => &["PUT", "GET", "DELETE"],
        ["resources", _, "collections", _, "records", _, "history"] => &["GET"],
        ["resources", _, "import"] => &["POST"],
        ["resources", _, "export"] => &["GET"],
        ["resources", _, "snapshots"] => &["POST", "GET"],
        ["resources", _, "clones"] => &["POST"],
        ["operations"] => &["GET"],
        ["operations", _] => &["GET"],
        ["operations", _, "cancel" | "retry"] => &["POST"],
        ["operations", _, "events"] => &["GET"],
        _ => return None,
    })
}

fn openapi() -> Reply {
    Reply {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: spin_adapter::http::Body::Bytes(include_bytes!("openapi.json").to_vec()),
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
    let token = spin_adapter::auth::mint(&b.tenant, engine::Env::now_us(&SpinEnv))?;
    Ok(Reply::json(
        201,
        &serde_json::json!({"token": token, "tenant": b.tenant}),
    ))
}
