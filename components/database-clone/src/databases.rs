//! Databases: containers of family `qovery` named by database id; the spec
//! holds the `DatabaseRequest` fields and the environment. Data is loaded
//! and read through the data API as `qovery:<database id>`.

use engine::{Container, ContainerState, Engine, Status};
use serde_json::{json, Value};
use spin_adapter::http::{Reply, Req};

use crate::environments::{find as find_env, group_json, name_key};
use crate::{bad, error, fail, Ctx, FAMILY};

pub fn find(ctx: &Ctx, e: &Engine, id: &str) -> Result<Container, Reply> {
    e.container(FAMILY, &ctx.tenant, id)
        .map_err(|_| fail(404, &format!("database {id} not found")))
}

fn default_memory(ty: &str, mode: &str) -> i64 {
    match (mode, ty) {
        ("MANAGED", _) => 100,
        (_, "MYSQL") => 512,
        (_, "MONGODB") => 256,
        _ => 100,
    }
}

fn port(ty: &str) -> i64 {
    match ty {
        "MYSQL" => 3306,
        "MONGODB" => 27017,
        "REDIS" => 6379,
        _ => 5432,
    }
}

/// Claim `name` in `env`, case-insensitively and race-free.
pub fn claim_name(ctx: &Ctx, e: &Engine, env: &str, name: &str) -> Result<(), Reply> {
    e.create_owned(
        "qovery-database-name",
        &name_key(env, name),
        &ctx.tenant,
        Some(env),
        &json!({}),
    )
    .map(|_| ())
    .map_err(|_| {
        fail(
            409,
            &format!("a database named {name:?} already exists in environment {env}"),
        )
    })
}

pub fn release_name(e: &Engine, env: &str, name: &str) {
    let _ = e.db().execute(
        "DELETE FROM owners WHERE kind = 'qovery-database-name' AND name = ?1",
        &[name_key(env, name).into()],
    );
}

/// Resolve `[{id}]` references to the organization's groups.
fn groups(
    ctx: &Ctx,
    e: &Engine,
    v: Option<&Value>,
    kind: &str,
    field: &str,
) -> Result<Vec<String>, Reply> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(vec![]);
    };
    let Some(list) = v.as_array() else {
        return Err(bad(&format!("{field} is a list of {{id}}")));
    };
    list.iter()
        .map(|g| {
            let id = g["id"]
                .as_str()
                .ok_or_else(|| bad(&format!("{field} entries are {{id}}")))?;
            e.owned(kind, id, &ctx.tenant)
                .map(|_| id.to_string())
                .map_err(|_| fail(404, &format!("{field}: group {id} not found")))
        })
        .collect()
}

fn render_groups(e: &Engine, c: &Container, field: &str, kind: &str) -> Value {
    let ids: Vec<String> = c.spec[field]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    Value::Array(
        ids.iter()
            .filter_map(|id| e.owned(kind, id, &c.tenant).ok())
            .map(|o| group_json(&o))
            .collect(),
    )
}

/// The copy filling this database, if any.
pub fn copy(e: &Engine, c: &Container) -> Option<engine::Operation> {
    c.spec["clone_operation"]
        .as_str()
        .and_then(|id| e.operation_by_id(id).ok().flatten())
}

/// The `Database` object.
pub fn database_json(e: &Engine, c: &Container) -> Value {
    let s = &c.spec;
    let ty = s["type"].as_str().unwrap_or("POSTGRESQL");
    let mut v = json!({
        "id": c.name,
        "created_at": engine::util::rfc3339(c.created_at),
        "updated_at": engine::util::rfc3339(c.updated_at),
        "name": s["name"],
        "type": ty,
        "version": s["version"],
        "mode": s["mode"],
        "accessibility": s["accessibility"],
        "cpu": s["cpu"],
        "memory": s["memory"],
        "storage": s["storage"],
        "annotations_groups": render_groups(e, c, "annotations_groups", "qovery-annotations-group"),
        "labels_groups": render_groups(e, c, "labels_groups", "qovery-labels-group"),
        "icon_uri": format!("app://qovery-console/{}", ty.to_lowercase()),
        "environment": {"id": s["environment_id"]},
        "host": format!("z{}-{}", &c.name[..8], s["name"].as_str().unwrap_or("db").to_lowercase().replace(|ch: char| !ch.is_ascii_alphanumeric(), "-")),
        "port": port(ty),
        "maximum_cpu": 8000,
        "maximum_memory": 16384,
        "disk_encrypted": s["mode"] == "MANAGED",
        "service_type": "DATABASE",
    });
    if let Some(d) = s.get("description").filter(|d| d.is_string()) {
        v["description"] = d.clone();
    }
    if s["mode"] == "MANAGED" {
        v["instance_type"] = s["instance_type"].clone();
        v["disk_type"] = "gp3".into();
    } else {
        v["disk_type"] = Value::Null;
    }
    v
}

/// `POST /environment/{environmentId}/database` (`DatabaseRequest`).
pub fn create(ctx: &Ctx, req: &Req, env: &str) -> Result<Reply, Reply> {
    /// Qovery's `DatabaseRequest` (other fields are ignored).
    #[derive(serde::Deserialize)]
    struct DatabaseRequest {
        name: Option<String>,
        #[serde(rename = "type")]
        ty: Option<String>,
        version: Option<String>,
        mode: Option<String>,
        description: Option<String>,
        instance_type: Option<String>,
        accessibility: Option<String>,
        cpu: Option<i64>,
        memory: Option<i64>,
        storage: Option<i64>,
        annotations_groups: Option<Value>,
        labels_groups: Option<Value>,
    }
    let b: DatabaseRequest = spin_adapter::body::parse(&req.body, false).map_err(|e| bad(&e))?;
    let name = match b.name.as_deref() {
        Some(n) if !n.trim().is_empty() && n.len() <= 255 => n.to_string(),
        _ => return Err(bad("name is required")),
    };
    let ty = match b.ty.as_deref() {
        Some(t @ ("MONGODB" | "MYSQL" | "POSTGRESQL" | "REDIS")) => t,
        _ => return Err(bad("type is required: MONGODB, MYSQL, POSTGRESQL or REDIS")),
    };
    let version = match b.version.as_deref() {
        Some(v) if !v.is_empty() && v.len() <= 32 => v,
        _ => return Err(bad("version is required, e.g. \"16\"")),
    };
    let mode = match b.mode.as_deref() {
        Some(m @ ("CONTAINER" | "MANAGED")) => m,
        _ => return Err(bad("mode is required: CONTAINER or MANAGED")),
    };
    let accessibility = match b.accessibility.as_deref() {
        None => "PRIVATE",
        Some(a @ ("PRIVATE" | "PUBLIC")) => a,
        Some(a) => {
            return Err(bad(&format!(
                "accessibility {a:?} is not PRIVATE or PUBLIC"
            )))
        }
    };
    let int = |k: &str, v: Option<i64>, default: i64, min: i64, max: i64| -> Result<i64, Reply> {
        spin_adapter::http::within(k, v.unwrap_or(default), min, max).map_err(|e| bad(&e))
    };
    let cpu = int("cpu", b.cpu, 250, 10, 64_000)?;
    let memory = int("memory", b.memory, default_memory(ty, mode), 10, 512_000)?;
    let storage = int("storage", b.storage, 10, 1, 16_000)?;
    let instance_type = match (mode, b.instance_type.as_deref()) {
        ("MANAGED", Some(t)) if !t.is_empty() => Some(t.to_string()),
        ("MANAGED", _) => {
            return Err(bad(
                "instance_type is required for a MANAGED database, e.g. db.t3.medium",
            ))
        }
        ("CONTAINER", Some(_)) => return Err(bad("instance_type is only for MANAGED databases")),
        _ => None,
    };
    let e = ctx.engine()?;
    find_env(ctx, &e, env)?;
    let annotations = groups(
        ctx,
        &e,
        b.annotations_groups.as_ref(),
        "qovery-annotations-group",
        "annotations_groups",
    )?;
    let labels = groups(
        ctx,
        &e,
        b.labels_groups.as_ref(),
        "qovery-labels-group",
        "labels_groups",
    )?;
    claim_name(ctx, &e, env, &name)?;
    let spec = json!({
        "environment_id": env, "name": name, "description": b.description,
        "type": ty, "version": version, "mode": mode, "accessibility": accessibility,
        "cpu": cpu, "memory": memory, "storage": storage, "instance_type": instance_type,
        "annotations_groups": annotations, "labels_groups": labels,
    });
    let c = e
        .create_container(FAMILY, &ctx.tenant, &spin_adapter::ids::uuid_v4(), &spec)
        .map_err(|er| error(&er))?;
    Ok(Reply::json(201, &database_json(&e, &c)))
}

/// The databases of an environment (clones still filling included), oldest first.
pub fn in_environment(ctx: &Ctx, e: &Engine, env: &str) -> Result<Vec<Container>, Reply> {
    Ok(e.list_containers(FAMILY, &ctx.tenant, 0, 1000)
        .map_err(|er| error(&er))?
        .into_iter()
        .filter(|c| c.spec["environment_id"] == env)
        .collect())
}

pub fn list(ctx: &Ctx, env: &str) -> Result<Reply, Reply> {
    let e = ctx.engine()?;
    find_env(ctx, &e, env)?;
    let list: Vec<Value> = in_environment(ctx, &e, env)?
        .iter()
        .map(|c| database_json(&e, c))
        .collect();
    Ok(Reply::json(200, &json!({"results": list})))
}

pub fn get(ctx: &Ctx, id: &str) -> Result<Reply, Reply> {
    let e = ctx.engine()?;
    let c = find(ctx, &e, id)?;
    Ok(Reply::json(200, &database_json(&e, &c)))
}

/// Delete a database; a copy still filling it is canceled first.
pub fn delete(ctx: &Ctx, id: &str) -> Result<Reply, Reply> {
    let e = ctx.engine()?;
    let c = find(ctx, &e, id)?;
    remove(ctx, &e, &c)?;
    Ok(Reply::empty(204))
}

/// 409 while `c` is the source of a running clone into another database
/// (it cannot go yet). `c`'s own hydration (source and target `c`, e.g.
/// after a large import) does not hold it: it goes with `c`.
pub fn check_not_cloning(e: &Engine, c: &Container) -> Result<(), Reply> {
    let filling = copy(e, c).map(|o| o.id);
    let busy = e
        .db()
        .execute(
            "SELECT id FROM operations WHERE source = ?1 AND target <> ?1 AND status IN ('pending', 'in_progress') LIMIT 1",
            &[c.id.into()],
        )
        .map_err(|er| error(&er.into()))?;
    match busy
        .first()
        .map(|r| r.text(0))
        .transpose()
        .map_err(|er| error(&er))?
    {
        Some(op) if Some(&op) != filling.as_ref() => Err(fail(
            409,
            &format!(
                "database {} is being cloned (operation {op}); wait for the clone to finish",
                c.name
            ),
        )),
        _ => Ok(()),
    }
}

/// Delete `c`, canceling (and removing) a copy still filling it.
pub fn remove(ctx: &Ctx, e: &Engine, c: &Container) -> Result<(), Reply> {
    match copy(e, c) {
        Some(op) if op.status.is_active() => {
            e.cancel(&ctx.tenant, &op.id, engine::CancelPolicy::RemoveTarget)
                .map_err(|er| error(&er))?;
        }
        _ => e
            .delete_container(FAMILY, &ctx.tenant, &c.name)
            .map_err(|er| error(&er))?,
    }
    release_name(
        e,
        c.spec["environment_id"].as_str().unwrap_or(""),
        c.spec["name"].as_str().unwrap_or(""),
    );
    Ok(())
}

/// `GET /database/{id}/status`: Qovery's deployment states, with the data
/// copy's progress while a clone fills it. Reading makes bounded progress.
pub fn status(ctx: &Ctx, id: &str) -> Result<Reply, Reply> {
    let e = ctx.engine()?;
    let c = find(ctx, &e, id)?;
    if let Some(op) = copy(&e, &c).filter(|o| o.status.is_active()) {
        let _ = e.nudge(&op.id);
    }
    let c = find(ctx, &e, id)?;
    let op = copy(&e, &c);
    let (state, action_status) = match (&op, c.state) {
        (Some(o), _) if o.status == Status::Pending => ("DEPLOYMENT_QUEUED", "QUEUED"),
        (Some(o), _) if o.status == Status::InProgress => ("DEPLOYING", "ONGOING"),
        (Some(o), _) if o.status == Status::Failed => ("DEPLOYMENT_ERROR", "ERROR"),
        (_, ContainerState::Ready) => ("DEPLOYED", "SUCCESS"),
        (_, ContainerState::Cloning) => ("DEPLOYING", "ONGOING"),
        (_, ContainerState::Failed) => ("DEPLOYMENT_ERROR", "ERROR"),
    };
    let mut v = json!({
        "id": c.name,
        "state": state,
        "service_deployment_status": if state == "DEPLOYED" { "UP_TO_DATE" } else { "OUT_OF_DATE" },
        "last_deployment_date": engine::util::rfc3339(c.updated_at),
        "is_part_last_deployment": true,
        "status_details": {"action": "DEPLOY", "status": action_status, "sub_action": "NONE"},
        "deployment_request_id": Value::Null,
        "deployment_requests_count": 0,
    });
    if let Some(o) = op {
        v["data_copy"] = json!({
            "operation_id": o.id, "status": o.status.as_str(),
            "records_copied": o.records_copied, "records_total": o.records_total,
            "percent": (o.percent() * 10.0).round() / 10.0, "eta_seconds": o.eta_seconds(), "error": o.error,
        });
    }
    Ok(Reply::json(200, &v))
}
