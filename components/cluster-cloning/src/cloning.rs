//! Cloning operations: one active per cluster (the engine's exclusive key),
//! a new cluster as the target, only pending ones cancel.

use engine::{CancelPolicy, CloneRequest, ContainerState, OpFilter, Operation, Strategy};
use serde_json::{json, Value};
use spin_adapter::http::{within, Reply, Req};
use uuid::Uuid;

use crate::clusters::{check_region, find, new_cluster_id};
use crate::{bad, error, fail, Ctx, FAMILY};

/// `?page=&per_page=`: defaults 1 and 10, per_page at most 100.
pub fn paging(req: &Req) -> Result<(i64, i64), Reply> {
    #[derive(serde::Deserialize)]
    struct Paging {
        page: Option<i64>,
        per_page: Option<i64>,
    }
    let q: Paging = req.query_as().map_err(|e| bad(&e))?;
    Ok((
        within("page", q.page.unwrap_or(1), 1, 1_000_000).map_err(|e| bad(&e))?,
        within("per_page", q.per_page.unwrap_or(10), 1, 100).map_err(|e| bad(&e))?,
    ))
}

/// The operation id as a UUID (the engine's 128-bit hex id, hyphenated).
pub fn uuid(id: &str) -> String {
    Uuid::try_parse(id)
        .map(|u| u.hyphenated().to_string())
        .unwrap_or_else(|_| id.to_string())
}

pub fn op_json(e: &engine::Engine, op: &Operation) -> Value {
    let target_ready = op.status == engine::Status::Succeeded
        && e.container_by_id(op.target)
            .ok()
            .flatten()
            .map(|c| c.state == ContainerState::Ready)
            .unwrap_or(true);
    json!({
        "id": uuid(&op.id),
        "status": op.status.as_str(),
        "created_at": op.created_at / 1_000_000,
        "updated_at": op.updated_at / 1_000_000,
        "completed_at": op.completed_at.map(|t| t / 1_000_000),
        "source_region": op.meta["source_region"],
        "target_region": op.meta["target_region"],
        "typesense_server_version": op.meta["typesense_server_version"],
        "target_cluster_reference_id": if target_ready { Value::from(op.target_ref.trim_start_matches("typesense:")) } else { Value::Null },
        "notification_email_addresses": op.notify,
    })
}

fn load(ctx: &Ctx, e: &engine::Engine, cluster: &str, op: &str) -> Result<Operation, Reply> {
    let c = find(ctx, e, cluster)?;
    // The engine's id is the UUID's 32 hex digits.
    let id = Uuid::try_parse(op).map(|u| u.simple().to_string());
    match id.map(|id| e.operation(&ctx.tenant, &id)) {
        Ok(Ok(o)) if o.family == FAMILY && o.source == c.id => Ok(o),
        _ => Err(fail(
            404,
            "not_found",
            &format!("cloning operation {op} not found for cluster {cluster}"),
        )),
    }
}

/// `POST /api/v1/clusters/{id}/cloning-operations`.
pub fn start(ctx: &Ctx, req: &Req, cluster: &str) -> Result<Reply, Reply> {
    #[derive(serde::Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct Body {
        typesense_server_version: Option<String>,
        target_region: Option<String>,
        notification_email_addresses: Option<Vec<String>>,
    }
    let b: Body = if req.body.is_empty() {
        Body::default()
    } else {
        serde_json::from_slice(&req.body).map_err(|e| bad(&format!("invalid body: {e}")))?
    };
    let e = ctx.engine()?;
    let source = find(ctx, &e, cluster)?;
    if source.state != ContainerState::Ready {
        return Err(fail(
            409,
            "invalid_state",
            &format!(
                "cluster {cluster} is {} and only an in_service cluster can be cloned",
                crate::clusters::status(&source)
            ),
        ));
    }
    let source_region = source.spec["regions"][0]
        .as_str()
        .unwrap_or("oregon")
        .to_string();
    let target_region = b.target_region.unwrap_or_else(|| source_region.clone());
    check_region(&target_region)?;
    let version = match b.typesense_server_version {
        Some(v) if v.trim().is_empty() || v.len() > 64 => {
            return Err(bad(
                "typesense_server_version must be a version such as 28.0",
            ))
        }
        Some(v) => v,
        None => source.spec["typesense_server_version"]
            .as_str()
            .unwrap_or("")
            .to_string(),
    };
    let emails = b.notification_email_addresses.unwrap_or_default();
    for a in &emails {
        if !a.contains('@') || a.starts_with("http") {
            return Err(bad(&format!("{a:?} is not an e-mail address")));
        }
    }
    let mut spec = source.spec.clone();
    spec["typesense_server_version"] = version.clone().into();
    spec["regions"] = json!([target_region]);
    spec["name"] = format!("{}-clone", source.spec["name"].as_str().unwrap_or(cluster)).into();
    spec["cloned_from"] = cluster.into();
    let (op, _) = e
        .create_operation(&CloneRequest {
            family: FAMILY.into(),
            kind: "cluster_clone".into(),
            tenant: ctx.tenant.clone(),
            source,
            target_family: FAMILY.into(),
            target_name: new_cluster_id(),
            target_spec: spec,
            strategy: Strategy::Now,
            history: false,
            collections: None,
            exclusive_key: Some(format!("typesense:{cluster}")),
            notify: emails,
            meta: json!({"source_region": source_region, "target_region": target_region, "typesense_server_version": version}),
            idempotency: None,
            mode: spin_adapter::vars::clone_mode(),
            hydrate: false,
            ttl_us: None,
            mask: None,
        })
        .map_err(|er| match er.kind {
            engine::ErrorKind::Conflict { .. } => fail(
                409,
                "conflict",
                &format!("cluster {cluster} already has a cloning operation pending or in progress; only one may be active at a time"),
            ),
            _ => error(&er),
        })?;
    Ok(Reply::json(
        201,
        &json!({"success": true, "cloning_operation": op_json(&e, &op)}),
    ))
}

/// `GET …/cloning-operations/{op}`: the bare object. Reading makes bounded
/// progress when no worker holds the operation.
pub fn get(ctx: &Ctx, cluster: &str, op: &str) -> Result<Reply, Reply> {
    let e = ctx.engine()?;
    let o = load(ctx, &e, cluster, op)?;
    if o.status.is_active() {
        let _ = e.nudge(&o.id);
    }
    let o = load(ctx, &e, cluster, op)?;
    Ok(Reply::json(200, &op_json(&e, &o)))
}

/// `GET …/cloning-operations?per_page=&page=`, newest first.
pub fn list(ctx: &Ctx, req: &Req, cluster: &str) -> Result<Reply, Reply> {
    let (page, per_page) = paging(req)?;
    let e = ctx.engine()?;
    let c = find(ctx, &e, cluster)?;
    let f = OpFilter {
        family: Some(FAMILY.into()),
        source: Some(c.id),
        ..Default::default()
    };
    let (ops, total) = e
        .list_operations(&ctx.tenant, &f, (page - 1) * per_page, per_page)
        .map_err(|er| error(&er))?;
    Ok(Reply::json(
        200,
        &json!({"page": page, "per_page": per_page, "total": total,
                "cloning_operations": ops.iter().map(|o| op_json(&e, o)).collect::<Vec<_>>()}),
    ))
}

/// `PATCH …/cloning-operations/{op}` `{"status": "canceled"}`: only a pending
/// operation cancels.
pub fn cancel(ctx: &Ctx, req: &Req, cluster: &str, op: &str) -> Result<Reply, Reply> {
    let body: Value = serde_json::from_slice(&req.body)
        .map_err(|_| bad("the body must be {\"status\": \"canceled\"}"))?;
    if body != json!({"status": "canceled"}) {
        return Err(bad(
            "the only accepted update is {\"status\": \"canceled\"}",
        ));
    }
    let e = ctx.engine()?;
    let o = load(ctx, &e, cluster, op)?;
    let o = e.cancel(&ctx.tenant, &o.id, CancelPolicy::Refuse).map_err(|er| match &er.kind {
        engine::ErrorKind::InvalidState { state } => fail(
            409,
            "invalid_state",
            &format!("cloning operation {op} is {state}; only a pending cloning operation can be canceled"),
        ),
        _ => error(&er),
    })?;
    Ok(Reply::json(
        200,
        &json!({"success": true, "cloning_operation": op_json(&e, &o)}),
    ))
}
