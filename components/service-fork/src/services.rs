//! Services: containers of family `timescale` named by service id; the spec
//! holds the Tiger `Service` fields. Rows are records, loaded and read
//! through the data API as `timescale:<service_id>`.

use engine::{Container, ContainerState, Engine, Status};
use serde_json::{json, Value};
use spin_adapter::http::{Reply, Req};

use crate::{bad, error, fail, Ctx, FAMILY};

pub const REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-2",
    "ca-central-1",
    "sa-east-1",
    "eu-central-1",
    "eu-west-1",
    "eu-west-2",
    "ap-south-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-northeast-1",
];

/// A Tiger-style id: 10 lowercase letters and digits.
pub fn new_id() -> String {
    let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789";
    hex::decode(spin_adapter::ids::random_hex(10))
        .unwrap()
        .iter()
        .map(|b| alphabet[(*b as usize) % 36] as char)
        .collect()
}

/// `cpu_millis` / `memory_gbs`: a positive integer as a string, or "shared".
/// A size field (`cpu_millis`, `memory_gbs`): a string of a positive
/// integer, or `"shared"`. For `#[serde(default, deserialize_with = "size")]`.
pub fn size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v: Option<Value> = serde::Deserialize::deserialize(d)?;
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s))
            if s == "shared"
                || (!s.is_empty() && s.len() <= 7 && s.bytes().all(|b| b.is_ascii_digit()) && s != "0") =>
        {
            Ok(Some(s))
        }
        Some(v) => Err(serde::de::Error::custom(format!(
            "must be a string of a positive integer, or \"shared\"; got {v}"
        ))),
    }
}

/// `environment_tag`.
#[derive(Clone, Copy, Default)]
pub enum EnvTag {
    #[default]
    Dev,
    Prod,
}

/// `environment_tag`: `DEV` or `PROD`. For `#[serde(default,
/// deserialize_with = "env_tag")]`.
pub fn env_tag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<EnvTag>, D::Error> {
    let v: Option<Value> = serde::Deserialize::deserialize(d)?;
    match v.as_ref().and_then(Value::as_str) {
        _ if v.as_ref().is_none_or(Value::is_null) => Ok(None),
        Some("DEV") => Ok(Some(EnvTag::Dev)),
        Some("PROD") => Ok(Some(EnvTag::Prod)),
        _ => Err(serde::de::Error::custom(format!(
            "must be DEV or PROD, got {}",
            v.unwrap_or_default()
        ))),
    }
}

impl EnvTag {
    pub fn as_str(self) -> &'static str {
        match self {
            EnvTag::Dev => "DEV",
            EnvTag::Prod => "PROD",
        }
    }
}

/// Timescale's `ServiceCreate`, plus this family's `service_type` (other
/// fields are ignored).
#[derive(serde::Deserialize)]
struct ServiceCreate {
    name: Option<String>,
    region_code: Option<String>,
    addons: Option<Vec<Addon>>,
    service_type: Option<ServiceType>,
    #[serde(default, deserialize_with = "size")]
    cpu_millis: Option<String>,
    #[serde(default, deserialize_with = "size")]
    memory_gbs: Option<String>,
    replica_count: Option<i64>,
    #[serde(default, deserialize_with = "env_tag")]
    environment_tag: Option<EnvTag>,
}

#[derive(serde::Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "kebab-case")]
enum Addon {
    TimeSeries,
    Ai,
}

impl Addon {
    fn as_str(self) -> &'static str {
        match self {
            Addon::TimeSeries => "time-series",
            Addon::Ai => "ai",
        }
    }
}

#[derive(serde::Deserialize, Clone, Copy)]
#[serde(rename_all = "UPPERCASE")]
enum ServiceType {
    Timescaledb,
    Postgres,
    Vector,
}

impl ServiceType {
    fn as_str(self) -> &'static str {
        match self {
            ServiceType::Timescaledb => "TIMESCALEDB",
            ServiceType::Postgres => "POSTGRES",
            ServiceType::Vector => "VECTOR",
        }
    }
}

/// The project, owned by this tenant (claimed on first use).
pub fn project(ctx: &Ctx, e: &Engine, project: &str, create: bool) -> Result<(), Reply> {
    let r = if create {
        e.claim_owned("timescale-project", project, &ctx.tenant)
    } else {
        e.owned("timescale-project", project, &ctx.tenant)
    };
    r.map(|_| ()).map_err(|er| match er.kind {
        engine::ErrorKind::InvalidInput => error(&er),
        _ => fail(404, "NOT_FOUND", &format!("project {project} not found")),
    })
}

pub fn find(ctx: &Ctx, e: &Engine, p: &str, id: &str) -> Result<Container, Reply> {
    project(ctx, e, p, false)?;
    match e.container(FAMILY, &ctx.tenant, id) {
        Ok(c) if c.spec["project_id"] == p => Ok(c),
        _ => Err(fail(
            404,
            "NOT_FOUND",
            &format!("service {id} not found in project {p}"),
        )),
    }
}

/// The service's status: from the fork that fills it, else its state.
pub fn status(e: &Engine, c: &Container) -> (&'static str, Option<String>) {
    if let Some(op) = c.spec["fork_operation"]
        .as_str()
        .and_then(|id| e.operation_by_id(id).ok().flatten())
    {
        return match op.status {
            Status::Pending => ("QUEUED", None),
            Status::InProgress => ("CONFIGURING", None),
            Status::Succeeded => ("READY", None),
            Status::Failed => ("UNSTABLE", op.error),
            Status::Canceled => ("DELETED", None),
        };
    }
    match c.state {
        ContainerState::Ready => ("READY", None),
        ContainerState::Cloning => ("CONFIGURING", None),
        ContainerState::Failed => ("UNSTABLE", None),
    }
}

/// The `Service` object.
pub fn service_json(e: &Engine, c: &Container, status_override: Option<&str>) -> Value {
    let s = &c.spec;
    let (status, reason) = status(e, c);
    let mut spec = serde_json::Map::new();
    for k in ["cpu_millis", "memory_gbs"] {
        if let Some(n) = s[k].as_str().and_then(|v| v.parse::<i64>().ok()) {
            spec.insert(k.into(), n.into());
        }
    }
    spec.insert("volume_type".into(), "gp3".into());
    let mut v = json!({
        "service_id": c.name,
        "project_id": s["project_id"],
        "name": s["name"],
        "region_code": s["region_code"],
        "service_type": s["service_type"],
        "created": engine::util::rfc3339(c.created_at).replace(".000Z", "Z"),
        "paused": false,
        "status": status_override.unwrap_or(status),
        "resources": [{"id": format!("{}-r0", c.name), "spec": spec}],
        "metadata": {"environment": s["environment_tag"]},
        "endpoint": {"host": format!("{}.{}.tsdb.cloud.timescale.com", c.name, s["project_id"].as_str().unwrap_or("")), "port": 5432},
        "ha_replicas": {"sync_replica_count": 0, "replica_count": s["replica_count"].as_i64().unwrap_or(0)},
        "read_replica_sets": [],
    });
    if let Some(f) = s.get("forked_from").filter(|f| f.is_object()) {
        v["forked_from"] = f.clone();
    }
    if let Some(r) = reason {
        v["status_reason"] = r.into();
    }
    v
}

/// `POST /projects/{project_id}/services` (`ServiceCreate`, plus `service_type`).
pub fn create(ctx: &Ctx, req: &Req, p: &str) -> Result<Reply, Reply> {
    let b: ServiceCreate = spin_adapter::body::parse(&req.body, false).map_err(|e| bad(&e))?;
    let name = match b.name {
        Some(n) if !n.is_empty() && n.chars().count() <= 128 => n,
        _ => return Err(bad("name is required: 1 to 128 characters")),
    };
    let region = match b.region_code {
        None => "us-east-1".to_string(),
        Some(r) if REGIONS.contains(&r.as_str()) => r,
        Some(r) => {
            return Err(bad(&format!(
                "region_code {r:?} is not one of {}",
                REGIONS.join(", ")
            )))
        }
    };
    let addons = b.addons.unwrap_or_default();
    let service_type = match b.service_type {
        Some(t) => t.as_str(),
        None if addons.is_empty() || addons.contains(&Addon::TimeSeries) => "TIMESCALEDB",
        None => "POSTGRES",
    };
    let addons: Vec<&str> = addons.iter().map(|a| a.as_str()).collect();
    let cpu = b.cpu_millis.unwrap_or_else(|| "500".into());
    let mem = b.memory_gbs.unwrap_or_else(|| "2".into());
    let replicas = match b.replica_count {
        None => 0,
        Some(n) if (0..=2).contains(&n) => n,
        Some(_) => return Err(bad("replica_count is 0, 1 or 2")),
    };
    let env = b.environment_tag.unwrap_or_default().as_str();
    let e = ctx.engine()?;
    project(ctx, &e, p, true)?;
    let password = spin_adapter::ids::random_hex(16);
    let spec = json!({
        "project_id": p, "name": name, "region_code": region, "service_type": service_type,
        "cpu_millis": cpu, "memory_gbs": mem, "replica_count": replicas, "environment_tag": env,
        "addons": addons, "storage_gbs": 50,
        "password_sha256": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(password.as_bytes())),
    });
    let c = e
        .create_container(FAMILY, &ctx.tenant, &new_id(), &spec)
        .map_err(|er| error(&er))?;
    let mut v = service_json(&e, &c, Some("QUEUED"));
    v["initial_password"] = password.into();
    Ok(Reply::json(202, &v))
}

pub fn list(ctx: &Ctx, p: &str) -> Result<Reply, Reply> {
    let e = ctx.engine()?;
    project(ctx, &e, p, false)?;
    let all = e
        .list_containers(FAMILY, &ctx.tenant, 0, 1000)
        .map_err(|er| error(&er))?;
    let list: Vec<Value> = all
        .iter()
        .filter(|c| c.spec["project_id"] == p)
        .map(|c| service_json(&e, c, None))
        .collect();
    Ok(Reply::json(200, &Value::Array(list)))
}

/// `GET …/services/{id}`; a read moves a fork forward when nobody works on it.
pub fn get(ctx: &Ctx, p: &str, id: &str) -> Result<Reply, Reply> {
    let e = ctx.engine()?;
    let c = find(ctx, &e, p, id)?;
    if let Some(op) = c.spec["fork_operation"].as_str() {
        let _ = e.nudge(op);
    }
    let c = find(ctx, &e, p, id)?;
    Ok(Reply::json(200, &service_json(&e, &c, None)))
}

/// Delete a service. A fork still copying is canceled first (its partial
/// data goes with it); a failed fork can always be deleted.
pub fn delete(ctx: &Ctx, p: &str, id: &str) -> Result<Reply, Reply> {
    let e = ctx.engine()?;
    let c = find(ctx, &e, p, id)?;
    if let Some(op) = c.spec["fork_operation"].as_str() {
        if let Ok(o) = e.operation(&ctx.tenant, op) {
            if o.status.is_active() {
                e.cancel(&ctx.tenant, op, engine::CancelPolicy::RemoveTarget)
                    .map_err(|er| error(&er))?;
                return Ok(Reply::json(
                    202,
                    &json!({"service_id": id, "status": "DELETING"}),
                ));
            }
        }
    }
    e.delete_container(FAMILY, &ctx.tenant, id)
        .map_err(|er| error(&er))?;
    Ok(Reply::json(
        202,
        &json!({"service_id": id, "status": "DELETING"}),
    ))
}

/// `POST …/services/{id}/snapshots` (Spinoff's addition): take a snapshot now.
pub fn snapshot(ctx: &Ctx, p: &str, id: &str) -> Result<Reply, Reply> {
    let e = ctx.engine()?;
    let c = find(ctx, &e, p, id)?;
    let s = e.snapshot(&c, None).map_err(|er| error(&er))?;
    Ok(Reply::json(
        201,
        &json!({"snapshot_id": s.id, "lsn": s.lsn, "created": engine::util::rfc3339(s.created_at)}),
    ))
}

pub fn snapshots(ctx: &Ctx, p: &str, id: &str) -> Result<Reply, Reply> {
    let e = ctx.engine()?;
    let c = find(ctx, &e, p, id)?;
    let list = e.snapshots(&c, 100).map_err(|er| error(&er))?;
    Ok(Reply::json(
        200,
        &Value::Array(
            list.iter().map(|s| json!({"snapshot_id": s.id, "lsn": s.lsn, "scheduled": s.scheduled, "created": engine::util::rfc3339(s.created_at)})).collect(),
        ),
    ))
}
