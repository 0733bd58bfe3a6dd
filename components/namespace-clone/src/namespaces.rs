//! Namespaces: containers of family `mixpeek` named by namespace id.

use engine::{Container, ContainerState, Engine, Status};
use serde_json::{json, Value};
use spin_adapter::http::{within, Reply, Req};

use crate::{bad, error, fail, fail_with, Caller, Ctx, FAMILY};

/// The owned key that makes a namespace name unique per organization.
pub fn name_key(tenant: &str, name: &str) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        format!("{tenant}\u{0}{name}").as_bytes(),
    ))[..40]
        .to_string()
}

/// Mixpeek's limit: its `NamespaceModel` reads names of at most 64
/// characters back, so a longer one would break its own clients.
pub const MAX_NAME: usize = 64;

pub fn check_name(name: &str) -> Result<(), Reply> {
    if !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        Ok(())
    } else {
        Err(bad(&format!(
            "namespace_name {name:?} must be 1 to {MAX_NAME} letters, digits, '_' or '-'"
        )))
    }
}

pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", spin_adapter::ids::random_hex(8))
}

/// A namespace of `tenant` by id or name.
pub fn find(e: &Engine, tenant: &str, ident: &str) -> Result<Container, Reply> {
    if let Ok(c) = e.container(FAMILY, tenant, ident) {
        return Ok(c);
    }
    if let Ok(o) = e.owned("mixpeek-namespace-name", &name_key(tenant, ident), tenant) {
        if let Some(id) = o.spec["namespace_id"].as_str() {
            if let Ok(c) = e.container(FAMILY, tenant, id) {
                return Ok(c);
            }
        }
    }
    Err(fail(
        404,
        "not_found",
        &format!("namespace {ident:?} not found"),
    ))
}

/// Reserved collections: (field in counts, engine collection prefix).
/// A failure to read them is an error, never a count of zero.
pub fn counts(e: &Engine, c: &Container) -> Result<Value, Reply> {
    let stats = e.collections(c).map_err(|er| error(&er))?;
    let n = |name: &str| {
        stats
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.records)
            .unwrap_or(0)
    };
    let points: i64 = stats
        .iter()
        .filter(|s| s.name.starts_with("points:"))
        .map(|s| s.records)
        .sum();
    Ok(
        json!({"collections": n("_collections"), "retrievers": n("_retrievers"), "taxonomies": n("_taxonomies"),
           "buckets": n("_buckets"), "objects": n("_objects"), "points": points}),
    )
}

/// The clone filling this namespace, if any.
pub fn filling(e: &Engine, c: &Container) -> Result<Option<engine::Operation>, Reply> {
    match c.spec["clone_task"].as_str() {
        Some(id) => e.operation_by_id(id).map_err(|er| error(&er)),
        None => Ok(None),
    }
}

/// The `NamespaceModel`, plus `status` and (after a clone) `cloned_resources`.
///
/// `namespace_ready` (always present) is true when the namespace is usable:
/// no clone is filling it and it did not fail. A clone's namespace carries
/// `source_namespace_id`, `clone_task_id`, `clone_status` (`cloning`,
/// `ready`, `failed`), `clone_phase` (`queued`, `copying`, null once ended)
/// and `clone_error`; a namespace never cloned has them null.
pub fn namespace_json(e: &Engine, c: &Container) -> Result<Value, Reply> {
    let s = &c.spec;
    let k = counts(e, c)?;
    let mut v = json!({
        "object": "namespace",
        "namespace_id": c.name,
        "namespace_name": s["namespace_name"],
        "description": s["description"],
        "infrastructure": {"qdrant_collection": c.name, "compute_tier": "shared", "autoscaling_enabled": false, "max_concurrent_jobs": 10},
        "cluster_id": Value::Null,
        "feature_extractors": s["feature_extractors"],
        "payload_indexes": s["payload_indexes"],
        "document_count": k["points"],
        "bucket_count": k["buckets"],
        "collection_count": k["collections"],
        "object_count": k["objects"],
        "auto_create_indexes": s["auto_create_indexes"].as_bool().unwrap_or(false),
        "vector_inference_map": s.get("vector_inference_map").cloned().unwrap_or(json!({})),
        "created_at": engine::util::rfc3339(c.created_at),
        "updated_at": engine::util::rfc3339(c.updated_at),
        "expires_at": c.expires_at.map(engine::util::rfc3339),
    });
    let op = filling(e, c)?;
    let cloned = s["clone_task"].is_string();
    let (clone_status, clone_phase) = match (&op, c.state) {
        _ if !cloned => (Value::Null, Value::Null),
        (Some(o), _) if o.status == Status::Pending => ("cloning".into(), "queued".into()),
        (Some(o), _) if o.status.is_active() => ("cloning".into(), "copying".into()),
        (Some(o), _) if o.status == Status::Succeeded => ("ready".into(), Value::Null),
        (Some(_), _) => ("failed".into(), Value::Null),
        (None, ContainerState::Ready) => ("ready".into(), Value::Null),
        (None, ContainerState::Cloning) => ("cloning".into(), Value::Null),
        (None, ContainerState::Failed) => ("failed".into(), Value::Null),
    };
    v["namespace_ready"] = (c.state == ContainerState::Ready
        && !op.as_ref().is_some_and(|o| o.status.is_active()))
    .into();
    v["clone_status"] = clone_status;
    v["clone_phase"] = clone_phase;
    v["clone_task_id"] = s["clone_task"].clone();
    v["source_namespace_id"] = s["cloned_from"].clone();
    v["clone_error"] = op
        .as_ref()
        .and_then(|o| o.error.clone())
        .map(Value::from)
        .unwrap_or(Value::Null);
    v["status"] = match (&op, c.state) {
        (Some(o), _) if o.status.is_active() => "cloning",
        (Some(o), _) if o.status == Status::Failed => "failed",
        (_, ContainerState::Ready) => "ready",
        (_, ContainerState::Cloning) => "cloning",
        (_, ContainerState::Failed) => "failed",
    }
    .into();
    if let Some(o) = op {
        if o.status == Status::Succeeded {
            v["cloned_resources"] = k;
        }
        if let Some(err) = o.error {
            v["error"] = err.into();
        }
    }
    Ok(v)
}

/// `POST /v1/namespaces` (`CreateNamespaceRequest`).
pub fn create(ctx: &Ctx, req: &Req) -> Result<Reply, Reply> {
    let tenant = ctx.tenant()?;
    /// Mixpeek's `CreateNamespaceRequest` (other fields are ignored).
    #[derive(serde::Deserialize)]
    struct CreateNamespaceRequest {
        namespace_name: Option<String>,
        description: Option<String>,
        payload_indexes: Option<Vec<serde_json::Map<String, Value>>>,
        auto_create_indexes: Option<bool>,
        feature_extractors: Option<Vec<Extractor>>,
    }
    #[derive(serde::Deserialize)]
    struct Extractor {
        feature_extractor_name: String,
        version: String,
        #[serde(flatten)]
        rest: serde_json::Map<String, Value>,
    }
    let b: CreateNamespaceRequest = spin_adapter::body::parse(&req.body, false).map_err(|e| bad(&e))?;
    let name = b
        .namespace_name
        .ok_or_else(|| bad("namespace_name is required"))?;
    check_name(&name)?;
    let description = b.description;
    let payload_indexes = b.payload_indexes;
    let auto = b.auto_create_indexes.unwrap_or(false);
    let extractors = match b.feature_extractors {
        Some(a) if !a.is_empty() => a,
        _ => {
            return Err(bad(
                "feature_extractors is required: at least one {feature_extractor_name, version}",
            ))
        }
    };
    let extractors: Vec<Value> = extractors
        .into_iter()
        .map(|x| {
            let mut v = x.rest;
            v.entry("feature_extractor_id")
                .or_insert_with(|| format!("{}_{}", x.feature_extractor_name, x.version).into());
            v.insert("feature_extractor_name".into(), x.feature_extractor_name.into());
            v.insert("version".into(), x.version.into());
            Value::Object(v)
        })
        .collect();
    let spec = json!({
        "namespace_name": name,
        "description": description,
        "feature_extractors": extractors,
        "payload_indexes": payload_indexes,
        "auto_create_indexes": auto,
    });
    let e = ctx.engine()?;
    let c = create_namespace(&e, tenant, spec)?;
    Ok(Reply::json(200, &namespace_json(&e, &c)?))
}

/// Claim `name` for the namespace `id` in `tenant`; 409 when a live
/// namespace has it. A claim whose namespace is gone (the worker deleted it
/// when its time-to-live ran out) is released and taken; only claims older
/// than the shortest time-to-live count, so a claim whose namespace is
/// still being created is never taken.
pub fn claim_name(e: &Engine, tenant: &str, name: &str, id: &str) -> Result<(), Reply> {
    let key = name_key(tenant, name);
    let claim = || {
        e.create_owned(
            "mixpeek-namespace-name",
            &key,
            tenant,
            None,
            &json!({"namespace_id": id}),
        )
    };
    if claim().is_ok() {
        return Ok(());
    }
    let now = e.now_us();
    let stale = e
        .owned("mixpeek-namespace-name", &key, tenant)
        .ok()
        .filter(|o| now - o.created_at >= crate::clone::MIN_TTL_SECONDS * 1_000_000)
        .and_then(|o| o.spec["namespace_id"].as_str().map(String::from))
        .is_some_and(|old| e.container(FAMILY, tenant, &old).is_err());
    if stale {
        let _ = e.release_owned("mixpeek-namespace-name", &key, tenant);
        if claim().is_ok() {
            return Ok(());
        }
    }
    Err(fail_with(
        409,
        "conflict",
        Some("namespace_name_taken"),
        &format!("a namespace named {name:?} already exists in this organization"),
        Value::Null,
    ))
}

/// Claim the name, then create the container. A duplicate name is 409.
pub fn create_namespace(e: &Engine, tenant: &str, mut spec: Value) -> Result<Container, Reply> {
    let name = spec["namespace_name"].as_str().unwrap_or("").to_string();
    let id = new_id("ns");
    spec["namespace_id"] = id.clone().into();
    claim_name(e, tenant, &name, &id)?;
    e.create_container(FAMILY, tenant, &id, &spec)
        .map_err(|er| {
            let _ = e.release_owned("mixpeek-namespace-name", &name_key(tenant, &name), tenant);
            error(&er)
        })
}

pub fn get(ctx: &Ctx, ident: &str) -> Result<Reply, Reply> {
    let tenant = ctx.tenant()?;
    let e = ctx.engine()?;
    let c = find(&e, tenant, ident)?;
    if let Some(op) = filling(&e, &c)?.filter(|o| o.status.is_active()) {
        let _ = e.nudge(&op.id);
    }
    let c = find(&e, tenant, ident)?;
    Ok(Reply::json(200, &namespace_json(&e, &c)?))
}

/// `GET /v1/namespaces?page=&page_size=` or `POST /v1/namespaces/list`.
pub fn list(ctx: &Ctx, req: &Req) -> Result<Reply, Reply> {
    let tenant = ctx.tenant()?;
    #[derive(serde::Deserialize)]
    struct Paging {
        page: Option<i64>,
        page_size: Option<i64>,
    }
    let q: Paging = req.query_as().map_err(|e| bad(&e))?;
    let page = within("page", q.page.unwrap_or(1), 1, 1_000_000).map_err(|e| bad(&e))?;
    let size = within("page_size", q.page_size.unwrap_or(10), 1, 100).map_err(|e| bad(&e))?;
    let e = ctx.engine()?;
    let total = e
        .count_containers(FAMILY, tenant)
        .map_err(|er| error(&er))?;
    let list = e
        .list_containers(FAMILY, tenant, (page - 1) * size, size)
        .map_err(|er| error(&er))?;
    let pages = (total + size - 1) / size;
    let results = list
        .iter()
        .map(|c| namespace_json(&e, c))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Reply::json(
        200,
        &json!({
            "results": results,
            "pagination": {"total": total, "page": page, "page_size": size, "total_pages": pages,
                           "next_page": if page < pages { Value::from(format!("/v1/namespaces?page={}&page_size={size}", page + 1)) } else { Value::Null },
                           "previous_page": if page > 1 { Value::from(format!("/v1/namespaces?page={}&page_size={size}", page - 1)) } else { Value::Null }},
            "total_count": total,
        }),
    ))
}

pub fn delete(ctx: &Ctx, ident: &str) -> Result<Reply, Reply> {
    let tenant = ctx.tenant()?;
    let e = ctx.engine()?;
    let c = find(&e, tenant, ident)?;
    match filling(&e, &c)? {
        Some(op) if op.status.is_active() => {
            e.cancel(tenant, &op.id, engine::CancelPolicy::RemoveTarget)
                .map_err(|er| error(&er))?;
        }
        _ => e
            .delete_container(FAMILY, tenant, &c.name)
            .map_err(|er| error(&er))?,
    }
    let _ = e.release_owned(
        "mixpeek-namespace-name",
        &name_key(tenant, c.spec["namespace_name"].as_str().unwrap_or("")),
        tenant,
    );
    Ok(Reply::json(
        200,
        &json!({"message": "Successfully deleted", "success": true}),
    ))
}
