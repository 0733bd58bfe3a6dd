//! The organization (one per tenant) and its projects.
//!
//! A project made with `POST /organization/{id}/project` has a UUID and a
//! name unique in the organization (case-insensitively); a project id that
//! an environment is created in before any create is the tenant's from that
//! first environment on, named by its id. Reads never create a project: one
//! never created, or deleted, is 404. Deleting a project deletes its
//! environments and their databases.

use serde_json::{json, Value};
use spin_adapter::http::{Reply, Req};
use spin_adapter::ids::uuid_v4;

use crate::environments::{check_org, delete_environment, name_key, ts};
use crate::{bad, error, fail, Ctx};

/// `Organization`: the tenant's one organization. Its creation time is
/// the first time the tenant asked for it.
fn org_json(ctx: &Ctx) -> Result<Value, Reply> {
    let id = crate::organization(ctx);
    let e = ctx.engine()?;
    let o = e
        .claim_owned("qovery-organization", &id, &ctx.tenant)
        .map_err(|er| error(&er))?;
    Ok(json!({
        "id": id,
        "created_at": ts(o.created_at),
        "updated_at": ts(o.created_at),
        "name": ctx.tenant,
        "description": Value::Null,
        "plan": "ENTERPRISE",
        "website_url": Value::Null,
        "repository": Value::Null,
        "logo_url": Value::Null,
        "icon_url": Value::Null,
        "admin_emails": [],
        "billing_deployment_restriction": Value::Null,
        "organization_plan": {"plan": "ENTERPRISE", "audit_logs_retention_in_days": 365},
    }))
}

/// `GET /organization` (`OrganizationResponseList`).
pub fn organizations(ctx: &Ctx) -> Result<Reply, Reply> {
    Ok(Reply::json(200, &json!({"results": [org_json(ctx)?]})))
}

/// `GET /organization/{organizationId}`.
pub fn organization(ctx: &Ctx, o: &str) -> Result<Reply, Reply> {
    check_org(ctx, o)?;
    Ok(Reply::json(200, &org_json(ctx)?))
}

fn project_json(ctx: &Ctx, p: &engine::Owned, environments: usize) -> Value {
    let mut v = json!({
        "id": p.name,
        "created_at": ts(p.created_at),
        "updated_at": ts(p.created_at),
        "name": p.spec.get("name").and_then(Value::as_str).unwrap_or(&p.name),
        "associated_environments_count": environments,
        "organization": {"id": crate::organization(ctx)},
    });
    if let Some(d) = p.spec.get("description").filter(|d| d.is_string()) {
        v["description"] = d.clone();
    }
    v
}

fn find(ctx: &Ctx, e: &engine::Engine, id: &str) -> Result<engine::Owned, Reply> {
    e.owned("qovery-project", id, &ctx.tenant)
        .map_err(|_| fail(404, &format!("project {id} not found")))
}

fn environments_of(ctx: &Ctx, e: &engine::Engine, p: &str) -> Result<Vec<engine::Owned>, Reply> {
    e.list_owned("qovery-environment", &ctx.tenant, Some(p))
        .map_err(|er| error(&er))
}

/// `POST /organization/{organizationId}/project` (`ProjectRequest`).
pub fn create(ctx: &Ctx, req: &Req, o: &str) -> Result<Reply, Reply> {
    /// Qovery's `ProjectRequest` (other fields are ignored).
    #[derive(serde::Deserialize)]
    struct ProjectRequest {
        name: Option<String>,
        description: Option<String>,
    }
    let b: ProjectRequest = spin_adapter::body::parse(&req.body, false).map_err(|e| bad(&e))?;
    let name = match b.name {
        Some(n) if !n.trim().is_empty() && n.len() <= 255 => n,
        _ => return Err(bad("name is required: 1 to 255 characters")),
    };
    let description = b.description;
    if description.as_ref().is_some_and(|d| d.len() > 4096) {
        return Err(bad("description is at most 4096 characters"));
    }
    check_org(ctx, o)?;
    let e = ctx.engine()?;
    e.create_owned(
        "qovery-project-name",
        &name_key(o, &name),
        &ctx.tenant,
        Some(o),
        &json!({}),
    )
    .map_err(|_| {
        fail(
            409,
            &format!("Project name {name:?} within the organization is already taken"),
        )
    })?;
    let p = e
        .create_owned(
            "qovery-project",
            &uuid_v4(),
            &ctx.tenant,
            Some(o),
            &json!({"name": name, "description": description}),
        )
        .map_err(|er| error(&er))?;
    Ok(Reply::json(200, &project_json(ctx, &p, 0)))
}

/// `GET /organization/{organizationId}/project` (`ProjectResponseList`).
pub fn list(ctx: &Ctx, o: &str) -> Result<Reply, Reply> {
    check_org(ctx, o)?;
    let e = ctx.engine()?;
    let projects = e
        .list_owned("qovery-project", &ctx.tenant, None)
        .map_err(|er| error(&er))?;
    let envs = e
        .list_owned("qovery-environment", &ctx.tenant, None)
        .map_err(|er| error(&er))?;
    let results: Vec<Value> = projects
        .iter()
        .map(|p| {
            let n = envs
                .iter()
                .filter(|v| v.parent.as_deref() == Some(p.name.as_str()))
                .count();
            project_json(ctx, p, n)
        })
        .collect();
    Ok(Reply::json(200, &json!({"results": results})))
}

/// `GET /project/{projectId}`.
pub fn get(ctx: &Ctx, id: &str) -> Result<Reply, Reply> {
    let e = ctx.engine()?;
    let p = find(ctx, &e, id)?;
    let n = environments_of(ctx, &e, id)?.len();
    Ok(Reply::json(200, &project_json(ctx, &p, n)))
}

/// `DELETE /project/{projectId}`: its environments and their databases go too.
pub fn delete(ctx: &Ctx, id: &str) -> Result<Reply, Reply> {
    let e = ctx.engine()?;
    let p = find(ctx, &e, id)?;
    for env in environments_of(ctx, &e, id)? {
        delete_environment(ctx, &e, &env)?;
    }
    if let (Some(o), Some(name)) = (p.parent.as_deref(), p.spec["name"].as_str()) {
        let _ = e.release_owned("qovery-project-name", &name_key(o, name), &ctx.tenant);
    }
    e.release_owned("qovery-project", id, &ctx.tenant)
        .map_err(|er| error(&er))?;
    Ok(Reply::empty(204))
}
