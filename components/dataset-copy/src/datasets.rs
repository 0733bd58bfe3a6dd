//! Datasets: containers of family `sanity` named `<projectId>:<dataset>`.

use serde_json::{json, Value};
use spin_adapter::http::{Reply, Req};

use crate::{bad, error, fail, Ctx, FAMILY};

/// Sanity's rule: 1–64 of lowercase letters, digits, `_` and `-`, starting
/// with a letter or digit.
pub fn check_dataset_name(name: &str) -> Result<(), Reply> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(bad(&format!("dataset name {name:?} is invalid: use 1 to 64 lowercase letters, digits, '_' and '-', starting with a letter or a digit")))
    }
}

pub fn check_project(p: &str) -> Result<(), Reply> {
    if !p.is_empty()
        && p.len() <= 64
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(())
    } else {
        Err(bad(&format!("project id {p:?} is invalid")))
    }
}

/// The project a request addresses when its path has none: the first label
/// of a `{projectId}.` host name, else the tenant's only project.
pub fn project_of(ctx: &Ctx, req: &Req) -> Result<String, Reply> {
    let host = req
        .header("host")
        .unwrap_or("")
        .split(':')
        .next()
        .unwrap_or("");
    let labels: Vec<&str> = host.split('.').collect();
    if labels.len() >= 3
        && !labels.iter().all(|l| l.bytes().all(|b| b.is_ascii_digit()))
        && labels[0] != "api"
    {
        return Ok(labels[0].to_string());
    }
    let e = ctx.engine()?;
    let owned = e
        .list_owned("sanity-project", &ctx.tenant, None)
        .map_err(|er| error(&er))?;
    match owned.as_slice() {
        [one] => Ok(one.name.clone()),
        _ => Err(bad("this request names no project: use /projects/{projectId}/… in the path or a {projectId}.<host> host name \
             (the token's project is only implied when its tenant owns exactly one project)")),
    }
}

pub fn container_name(p: &str, name: &str) -> String {
    format!("{p}:{name}")
}

pub fn project(ctx: &Ctx, e: &engine::Engine, p: &str) -> Result<(), Reply> {
    check_project(p)?;
    e.claim_owned("sanity-project", p, &ctx.tenant)
        .map(|_| ())
        .map_err(|_| fail(404, "Not Found", &format!("project {p} not found")))
}

pub fn acl(c: &engine::Container) -> Value {
    c.spec
        .get("aclMode")
        .cloned()
        .unwrap_or_else(|| "public".into())
}

/// `PUT /projects/{p}/datasets/{name}` `{"aclMode"}`.
pub fn create(ctx: &Ctx, req: &Req, p: &str, name: &str) -> Result<Reply, Reply> {
    check_dataset_name(name)?;
    let b = spin_adapter::body::object(&req.body, true).map_err(|e| bad(&e))?;
    let acl = spin_adapter::body::opt_enum(&b, "aclMode", &["public", "private", "custom"])
        .map_err(|e| bad(&e))?
        .unwrap_or("public");
    let e = ctx.engine()?;
    project(ctx, &e, p)?;
    e.create_container(
        FAMILY,
        &ctx.tenant,
        &container_name(p, name),
        &json!({"aclMode": acl, "projectId": p}),
    )
    .map_err(|er| match er.kind {
        engine::ErrorKind::AlreadyExists => {
            fail(409, "Conflict", &format!("dataset {name:?} already exists"))
        }
        _ => error(&er),
    })?;
    Ok(Reply::json(
        200,
        &json!({"datasetName": name, "aclMode": acl}),
    ))
}

/// `GET /projects/{p}/datasets` → `[{name, aclMode}]`.
pub fn list(ctx: &Ctx, p: &str) -> Result<Reply, Reply> {
    let e = ctx.engine()?;
    project(ctx, &e, p)?;
    let prefix = format!("{p}:");
    let all = e
        .list_containers(FAMILY, &ctx.tenant, 0, 1000)
        .map_err(|er| error(&er))?;
    let list: Vec<Value> = all
        .iter()
        .filter_map(|c| {
            c.name
                .strip_prefix(&prefix)
                .map(|n| json!({"name": n, "aclMode": acl(c)}))
        })
        .collect();
    Ok(Reply::json(200, &Value::Array(list)))
}

pub fn delete(ctx: &Ctx, p: &str, name: &str) -> Result<Reply, Reply> {
    let e = ctx.engine()?;
    project(ctx, &e, p)?;
    e.delete_container(FAMILY, &ctx.tenant, &container_name(p, name))
        .map_err(|er| error(&er))?;
    Ok(Reply::json(
        200,
        &json!({"deleted": true, "datasetName": name}),
    ))
}
