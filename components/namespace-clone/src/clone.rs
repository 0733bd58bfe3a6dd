//! Namespace clone (configuration always, data by `include_resources`),
//! its task, and config-only templates.

use engine::{CloneRequest, Engine, Operation, Status, Strategy};
use serde_json::{json, Value};
use spin_adapter::http::{Reply, Req};

use crate::namespaces::{
    check_name, claim_name, counts, create_namespace, find, name_key, namespace_json, new_id,
};
use crate::{bad, error, fail, org_of, Caller, Ctx, FAMILY};

/// The shortest `ttl_seconds` a clone accepts (Mixpeek's rule).
pub const MIN_TTL_SECONDS: i64 = 60;
/// The longest: 100 years, so the expiry stays a representable time.
pub const MAX_TTL_SECONDS: i64 = 3_153_600_000;

/// Mixpeek's `CloneNamespaceRequest`, with this family's `mode` and
/// `ttl_seconds`; any other field is refused. `mode`: `branch` (the
/// default) is a copy-on-write fork that shares the source's storage until
/// either side writes, usable at once; `copy` is a physical copy in chunks.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CloneNamespaceRequest {
    namespace_name: Option<String>,
    #[serde(default)]
    include_resources: IncludeResources,
    description: Option<String>,
    source_organization_id: Option<String>,
    #[serde(default)]
    mode: Mode,
    ttl_seconds: Option<i64>,
    /// Spinoff's extension: a masked clone, `{collection | "*": {json-pointer:
    /// transform}}` (collections are `points:<collection_id>`).
    mask: Option<serde_json::Value>,
}

/// What a clone takes besides the documents.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
struct IncludeResources {
    collections: bool,
    retrievers: bool,
    taxonomies: bool,
}

impl Default for IncludeResources {
    fn default() -> IncludeResources {
        IncludeResources {
            collections: true,
            retrievers: true,
            taxonomies: false,
        }
    }
}

#[derive(serde::Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Mode {
    #[default]
    Branch,
    Copy,
}

/// `ttl_seconds`, when given, within its bounds.
fn ttl_seconds(ttl: Option<i64>) -> Result<Option<i64>, Reply> {
    match ttl {
        Some(t) if t < MIN_TTL_SECONDS => Err(bad(&format!(
            "ttl_seconds must be at least {MIN_TTL_SECONDS}, got {t}"
        ))),
        Some(t) if t > MAX_TTL_SECONDS => Err(bad(&format!(
            "ttl_seconds must be an integer from {MIN_TTL_SECONDS} to {MAX_TTL_SECONDS}"
        ))),
        t => Ok(t),
    }
}

/// `POST /v1/namespaces/{namespace_identifier}/clone` (`CloneNamespaceRequest`).
pub fn clone(ctx: &Ctx, req: &Req, ident: &str) -> Result<Reply, Reply> {
    let b: CloneNamespaceRequest = spin_adapter::body::parse(&req.body, false).map_err(|e| bad(&e))?;
    let name = b
        .namespace_name
        .clone()
        .ok_or_else(|| bad("namespace_name is required"))?;
    check_name(&name)?;
    let ttl = ttl_seconds(b.ttl_seconds)?;
    let mode = match b.mode {
        Mode::Branch => engine::CloneMode::Branch,
        Mode::Copy => engine::CloneMode::Copy,
    };
    let (cols, rets, taxs) = (
        b.include_resources.collections,
        b.include_resources.retrievers,
        b.include_resources.taxonomies,
    );
    let e = ctx.engine()?;
    // Whose namespace: the caller's organization, or — for the admin token
    // only — the one named by source_organization_id.
    let tenant =
        match (b.source_organization_id.as_deref(), &ctx.tenant) {
            (Some(org), Some(t)) if org != org_of(t) => return Err(fail(
                403,
                "forbidden",
                "cloning from another organization (source_organization_id) needs the admin token",
            )),
            (_, Some(t)) => t.clone(),
            (Some(org), None) => e
                .owner_of("mixpeek-org", org)
                .map_err(|er| error(&er))?
                .map(|o| o.tenant)
                .ok_or_else(|| fail(404, "not_found", &format!("organization {org} not found")))?,
            (None, None) => {
                return Err(bad(
                    "with the admin token, name the organization in source_organization_id",
                ))
            }
        };
    let source = find(&e, &tenant, ident)?;
    // The reserved collections this clone copies: buckets and objects
    // (metadata pointing at the same files) always.
    let stats = e.collections(&source).map_err(|er| error(&er))?;
    let mut include: Vec<String> = vec!["_buckets".into(), "_objects".into()];
    if cols {
        include.push("_collections".into());
        include.extend(
            stats
                .iter()
                .filter(|s| s.name.starts_with("points:"))
                .map(|s| s.name.clone()),
        );
    }
    if rets {
        include.push("_retrievers".into());
    }
    if taxs {
        include.push("_taxonomies".into());
    }
    let mut spec = source.spec.clone();
    spec["namespace_name"] = name.clone().into();
    if let Some(d) = &b.description {
        spec["description"] = d.clone().into();
    }
    let id = new_id("ns");
    spec["namespace_id"] = id.clone().into();
    spec["cloned_from"] = source.name.clone().into();
    claim_name(&e, &tenant, &name, &id)?;
    let started = e.create_operation(&CloneRequest {
        family: FAMILY.into(),
        kind: "namespace_clone".into(),
        tenant: tenant.clone(),
        source: source.clone(),
        target_family: FAMILY.into(),
        target_name: id.clone(),
        target_spec: spec.clone(),
        strategy: Strategy::Now,
        history: false,
        collections: Some(include),
        exclusive_key: None,
        notify: vec![],
        meta: json!({"source_namespace_id": source.name, "include_resources": {"collections": cols, "retrievers": rets, "taxonomies": taxs}}),
        idempotency: None,
        mode,
        hydrate: false,
        ttl_us: None,
        mask: b.mask.clone(),
    });
    let op = match started {
        Ok((op, _)) => op,
        Err(er) => {
            let _ = e.release_owned("mixpeek-namespace-name", &name_key(&tenant, &name), &tenant);
            return Err(error(&er));
        }
    };
    spec["clone_task"] = op.id.clone().into();
    let mut target = e
        .update_spec(FAMILY, &tenant, &id, &spec)
        .map_err(|er| error(&er))?;
    if let Some(ttl) = ttl {
        // From acceptance; the worker deletes it (with its data) once past,
        // after its copy has ended.
        target = e
            .set_expiry(
                FAMILY,
                &tenant,
                &id,
                Some(target.created_at + ttl * 1_000_000),
            )
            .map_err(|er| error(&er))?;
    }
    // A branch is ready when its start answers: say so, with what it holds
    // (Mixpeek's 'cloning' / 'ready' / 'failed').
    let (status, cloned) = match op.status {
        Status::Succeeded => ("ready", counts(&e, &target)?),
        Status::Failed | Status::Canceled => ("failed", Value::Null),
        _ => ("cloning", Value::Null),
    };
    Ok(Reply::json(
        200,
        &json!({"namespace": namespace_json(&e, &target)?, "source_namespace_id": source.name, "status": status, "task_id": op.id, "cloned_resources": cloned}),
    ))
}

fn task_json(e: &Engine, op: &Operation) -> Result<Value, Reply> {
    let status = match op.status {
        Status::Pending => "PENDING",
        Status::InProgress => "IN_PROGRESS",
        Status::Succeeded => "COMPLETED",
        Status::Failed => "FAILED",
        Status::Canceled => "CANCELED",
    };
    let ns_status = match op.status {
        Status::Succeeded => "ready",
        Status::Failed | Status::Canceled => "failed",
        _ => "cloning",
    };
    let namespace_id = op.target_ref.trim_start_matches("mixpeek:").to_string();
    let mut additional = json!({
        "namespace_id": namespace_id,
        "source_namespace_id": op.meta["source_namespace_id"],
        "status": ns_status,
        "progress": {"records_copied": op.records_copied, "records_total": op.records_total, "percent": (op.percent() * 10.0).round() / 10.0},
    });
    let mut outputs = Value::Null;
    if op.status == Status::Succeeded {
        if let Some(c) = e.container_by_id(op.target).map_err(|er| error(&er))? {
            let k = counts(e, &c)?;
            additional["cloned_resources"] = k.clone();
            outputs = json!([{"namespace_id": namespace_id, "cloned_resources": k}]);
        }
    }
    if let Some(err) = &op.error {
        additional["error"] = err.clone().into();
    }
    Ok(json!({
        "task_id": op.id,
        "task_type": "api_namespaces_create",
        "status": status,
        "inputs": [op.meta["source_namespace_id"]],
        "outputs": outputs,
        "additional_data": additional,
        "error": op.error,
    }))
}

fn load(ctx: &Ctx, e: &Engine, id: &str) -> Result<Operation, Reply> {
    let tenant = ctx.tenant()?;
    match e.operation(tenant, id) {
        Ok(op) if op.family == FAMILY => Ok(op),
        _ => Err(fail(404, "not_found", &format!("task {id} not found"))),
    }
}

/// `GET /v1/tasks/{task_id}` (`TaskResponse`); bounded progress on read.
pub fn task(ctx: &Ctx, id: &str) -> Result<Reply, Reply> {
    let e = ctx.engine()?;
    let op = load(ctx, &e, id)?;
    if op.status.is_active() {
        let _ = e.nudge(id);
    }
    let op = load(ctx, &e, id)?;
    Ok(Reply::json(200, &task_json(&e, &op)?))
}

/// `DELETE /v1/tasks/{task_id}`: cancel the clone and remove the partial
/// namespace. Idempotent, as Mixpeek's kill is.
pub fn cancel(ctx: &Ctx, id: &str) -> Result<Reply, Reply> {
    let e = ctx.engine()?;
    let op = load(ctx, &e, id)?;
    if op.status.is_active() {
        let tenant = ctx.tenant()?;
        let name = e
            .container_by_id(op.target)
            .ok()
            .flatten()
            .and_then(|c| c.spec["namespace_name"].as_str().map(String::from));
        e.cancel(tenant, id, engine::CancelPolicy::RemoveTarget)
            .map_err(|er| error(&er))?;
        // The canceled namespace's name is free again.
        if let Some(name) = name {
            let _ = e.release_owned("mixpeek-namespace-name", &name_key(tenant, &name), tenant);
        }
    }
    Ok(Reply::json(
        200,
        &json!({"message": "Successfully deleted", "success": true}),
    ))
}

/// `POST /v1/templates/namespaces/from-namespace/{namespace_id}`: save the
/// namespace's configuration (no data) as a template.
pub fn template_from(ctx: &Ctx, req: &Req, ident: &str) -> Result<Reply, Reply> {
    let tenant = ctx.tenant()?;
    #[derive(serde::Deserialize)]
    struct TemplateRequest {
        name: Option<String>,
    }
    let b: TemplateRequest = spin_adapter::body::parse(&req.body, true).map_err(|e| bad(&e))?;
    let template_name = match b.name {
        Some(n) if n.is_empty() || n.len() > 256 => return Err(bad("name must be 1 to 256 bytes")),
        n => n,
    };
    let e = ctx.engine()?;
    let c = find(&e, tenant, ident)?;
    let id = new_id("tmpl");
    let config = json!({
        "feature_extractors": c.spec["feature_extractors"], "payload_indexes": c.spec["payload_indexes"],
        "auto_create_indexes": c.spec["auto_create_indexes"], "description": c.spec["description"],
    });
    let name = template_name.unwrap_or_else(|| {
        format!(
            "{} template",
            c.spec["namespace_name"].as_str().unwrap_or("")
        )
    });
    let o = e
        .create_owned(
            "mixpeek-template",
            &id,
            tenant,
            Some(&c.name),
            &json!({"name": name, "config": config, "source_namespace_id": c.name}),
        )
        .map_err(|er| error(&er))?;
    Ok(Reply::json(
        200,
        &json!({"template_id": id, "name": name, "source_namespace_id": c.name, "config": config, "created_at": engine::util::rfc3339(o.created_at)}),
    ))
}

/// `POST /v1/templates/namespaces/{template_id}/instantiate` `{namespace_name}`.
pub fn instantiate(ctx: &Ctx, req: &Req, template: &str) -> Result<Reply, Reply> {
    let tenant = ctx.tenant()?;
    #[derive(serde::Deserialize)]
    struct InstantiateRequest {
        namespace_name: Option<String>,
        description: Option<String>,
    }
    let b: InstantiateRequest = spin_adapter::body::parse(&req.body, false).map_err(|e| bad(&e))?;
    let name = b
        .namespace_name
        .ok_or_else(|| bad("namespace_name is required"))?;
    check_name(&name)?;
    let e = ctx.engine()?;
    let t = e
        .owned("mixpeek-template", template, tenant)
        .map_err(|_| fail(404, "not_found", &format!("template {template} not found")))?;
    let cfg = &t.spec["config"];
    let spec = json!({
        "namespace_name": name,
        "description": b.description.map(Value::from).unwrap_or_else(|| cfg["description"].clone()),
        "feature_extractors": cfg["feature_extractors"], "payload_indexes": cfg["payload_indexes"],
        "auto_create_indexes": cfg["auto_create_indexes"], "template_id": template,
    });
    let c = create_namespace(&e, tenant, spec)?;
    Ok(Reply::json(200, &namespace_json(&e, &c)?))
}
