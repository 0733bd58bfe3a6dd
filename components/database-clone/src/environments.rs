//! Environments in projects, and the organization's annotation and label
//! groups databases refer to.

use serde_json::{json, Value};
use spin_adapter::http::{Reply, Req};
use spin_adapter::ids::uuid_v4;

use crate::{bad, error, fail, Ctx};

pub fn ts(us: i64) -> String {
    engine::util::rfc3339(us)
}

/// The key that makes `name` unique within `scope`, case-insensitively.
pub fn name_key(scope: &str, name: &str) -> String {
    format!(
        "{scope}:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            name.to_lowercase().as_bytes()
        ))
    )
}

pub fn check_org(ctx: &Ctx, o: &str) -> Result<(), Reply> {
    if o == crate::organization(ctx) {
        Ok(())
    } else {
        Err(fail(404, &format!("organization {o} not found")))
    }
}

/// A project id belongs to the tenant that first creates an environment in
/// it (a write: `POST /project/{id}/environment`).
pub fn claim_project(ctx: &Ctx, e: &engine::Engine, p: &str) -> Result<(), Reply> {
    e.claim_owned("qovery-project", p, &ctx.tenant)
        .map(|_| ())
        .map_err(|er| match er.kind {
            engine::ErrorKind::InvalidInput => bad(&er.message),
            _ => fail(404, &format!("project {p} not found")),
        })
}

/// The tenant's project `p`, for reads: 404 when it was never created (by
/// `POST /organization/{id}/project` or a first environment) or was
/// deleted. A read never creates it.
pub fn existing_project(ctx: &Ctx, e: &engine::Engine, p: &str) -> Result<(), Reply> {
    e.owned("qovery-project", p, &ctx.tenant)
        .map(|_| ())
        .map_err(|er| match er.kind {
            engine::ErrorKind::NotFound => fail(404, &format!("project {p} not found")),
            _ => error(&er),
        })
}

fn env_json(ctx: &Ctx, o: &engine::Owned) -> Value {
    json!({
        "id": o.name,
        "created_at": ts(o.created_at),
        "updated_at": ts(o.created_at),
        "name": o.spec["name"],
        "organization": {"id": crate::organization(ctx)},
        "project": {"id": o.parent},
        "cloud_provider": {"provider": "aws", "cluster": "us-east-2"},
        "mode": o.spec["mode"],
        "cluster_id": o.spec["cluster_id"],
        "cluster_name": "spinoff",
    })
}

/// An environment of this organization, or 404.
pub fn find(ctx: &Ctx, e: &engine::Engine, id: &str) -> Result<engine::Owned, Reply> {
    e.owned("qovery-environment", id, &ctx.tenant)
        .map_err(|_| fail(404, &format!("environment {id} not found")))
}

/// `POST /project/{projectId}/environment` (`CreateEnvironmentRequest`).
pub fn create(ctx: &Ctx, req: &Req, p: &str) -> Result<Reply, Reply> {
    /// Qovery's `CreateEnvironmentRequest` (other fields are ignored).
    #[derive(serde::Deserialize)]
    struct CreateEnvironmentRequest {
        name: Option<String>,
        mode: Option<EnvironmentMode>,
        cluster: Option<String>,
    }
    #[derive(serde::Deserialize, Clone, Copy)]
    #[serde(rename_all = "UPPERCASE")]
    enum EnvironmentMode {
        Development,
        Preview,
        Production,
        Staging,
    }
    let b: CreateEnvironmentRequest =
        spin_adapter::body::parse(&req.body, false).map_err(|e| bad(&e))?;
    let name = match b.name {
        Some(n) if !n.trim().is_empty() && n.len() <= 255 => n,
        _ => return Err(bad("name is required: 1 to 255 characters")),
    };
    let mode = match b.mode.unwrap_or(EnvironmentMode::Development) {
        EnvironmentMode::Development => "DEVELOPMENT",
        EnvironmentMode::Preview => "PREVIEW",
        EnvironmentMode::Production => "PRODUCTION",
        EnvironmentMode::Staging => "STAGING",
    };
    let cluster = b.cluster;
    let e = ctx.engine()?;
    claim_project(ctx, &e, p)?;
    // Names are unique per project, case-insensitively: an owned key makes it race-free.
    e.create_owned(
        "qovery-environment-name",
        &name_key(p, &name),
        &ctx.tenant,
        Some(p),
        &json!({}),
    )
    .map_err(|_| {
        fail(
            409,
            &format!("Environment name {name:?} within the project is already taken"),
        )
    })?;
    let id = uuid_v4();
    let cluster = cluster.unwrap_or_else(|| spin_adapter::ids::uuid_from("spinoff-cluster"));
    let o = e
        .create_owned(
            "qovery-environment",
            &id,
            &ctx.tenant,
            Some(p),
            &json!({"name": name, "mode": mode, "cluster_id": cluster}),
        )
        .map_err(|er| error(&er))?;
    Ok(Reply::json(201, &env_json(ctx, &o)))
}

pub fn list(ctx: &Ctx, p: &str) -> Result<Reply, Reply> {
    let e = ctx.engine()?;
    existing_project(ctx, &e, p)?;
    let list = e
        .list_owned("qovery-environment", &ctx.tenant, Some(p))
        .map_err(|er| error(&er))?;
    Ok(Reply::json(
        200,
        &json!({"results": list.iter().map(|o| env_json(ctx, o)).collect::<Vec<_>>()}),
    ))
}

pub fn get(ctx: &Ctx, id: &str) -> Result<Reply, Reply> {
    let e = ctx.engine()?;
    let o = find(ctx, &e, id)?;
    Ok(Reply::json(200, &env_json(ctx, &o)))
}

/// `DELETE /environment/{environmentId}`: its databases go too.
pub fn delete(ctx: &Ctx, id: &str) -> Result<Reply, Reply> {
    let e = ctx.engine()?;
    let o = find(ctx, &e, id)?;
    delete_environment(ctx, &e, &o)?;
    Ok(Reply::empty(204))
}

/// Delete an environment's databases (a clone still filling one is
/// canceled), then the environment; 409 while one of its databases is the
/// source of a running clone, before anything is deleted.
pub fn delete_environment(ctx: &Ctx, e: &engine::Engine, env: &engine::Owned) -> Result<(), Reply> {
    let dbs = crate::databases::in_environment(ctx, e, &env.name)?;
    for c in &dbs {
        crate::databases::check_not_cloning(e, c)?;
    }
    for c in &dbs {
        crate::databases::remove(ctx, e, c)?;
    }
    if let (Some(p), Some(name)) = (env.parent.as_deref(), env.spec["name"].as_str()) {
        let _ = e.release_owned("qovery-environment-name", &name_key(p, name), &ctx.tenant);
    }
    e.release_owned("qovery-environment", &env.name, &ctx.tenant)
        .map_err(|er| error(&er))
}

/// `POST /organization/{id}/annotationsGroup` `{name, annotations, scopes}`.
pub fn annotations_group(ctx: &Ctx, req: &Req, o: &str) -> Result<Reply, Reply> {
    check_org(ctx, o)?;
    let b = Value::Object(spin_adapter::body::object(&req.body, false).map_err(|e| bad(&e))?);
    let (Some(name), Some(annotations), Some(scopes)) = (
        b["name"].as_str(),
        b["annotations"].as_array(),
        b["scopes"].as_array(),
    ) else {
        return Err(bad("name, annotations and scopes are required"));
    };
    for a in annotations {
        if !(a["key"].is_string() && a["value"].is_string()) {
            return Err(bad("each annotation is {key, value}"));
        }
    }
    if !scopes.iter().all(Value::is_string) {
        return Err(bad("scopes is a list of strings, e.g. [\"DATABASES\"]"));
    }
    group(
        ctx,
        "qovery-annotations-group",
        json!({"name": name, "annotations": annotations, "scopes": scopes}),
    )
}

/// `POST /organization/{id}/labelsGroup` `{name, labels}`.
pub fn labels_group(ctx: &Ctx, req: &Req, o: &str) -> Result<Reply, Reply> {
    check_org(ctx, o)?;
    let b = Value::Object(spin_adapter::body::object(&req.body, false).map_err(|e| bad(&e))?);
    let (Some(name), Some(labels)) = (b["name"].as_str(), b["labels"].as_array()) else {
        return Err(bad("name and labels are required"));
    };
    for l in labels {
        if !(l["key"].is_string()
            && l["value"].is_string()
            && l["propagate_to_cloud_provider"].is_boolean())
        {
            return Err(bad(
                "each label is {key, value, propagate_to_cloud_provider}",
            ));
        }
    }
    group(
        ctx,
        "qovery-labels-group",
        json!({"name": name, "labels": labels}),
    )
}

fn group(ctx: &Ctx, kind: &str, spec: Value) -> Result<Reply, Reply> {
    let e = ctx.engine()?;
    let o = e
        .create_owned(kind, &uuid_v4(), &ctx.tenant, None, &spec)
        .map_err(|er| error(&er))?;
    Ok(Reply::json(201, &group_json(&o)))
}

pub fn group_json(o: &engine::Owned) -> Value {
    let mut v = o.spec.clone();
    v["id"] = o.name.clone().into();
    v["created_at"] = ts(o.created_at).into();
    v["updated_at"] = ts(o.created_at).into();
    v
}
