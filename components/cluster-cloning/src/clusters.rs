//! Clusters: a cluster is a container of family `typesense`; its spec holds
//! the Cluster Management API fields. Its documents are records (collection
//! = Typesense collection, key = document id), loaded and read through the
//! data API as `typesense:<id>`.

use engine::{Container, ContainerState};
use serde_json::{json, Value};
use spin_adapter::http::{Reply, Req};

use crate::{bad, error, Ctx, FAMILY};

/// Regions a cluster may be provisioned in.
pub const REGIONS: &[&str] = &[
    "oregon",
    "n_california",
    "n_virginia",
    "ohio",
    "canada",
    "sao_paulo",
    "ireland",
    "london",
    "frankfurt",
    "paris",
    "stockholm",
    "milan",
    "mumbai",
    "singapore",
    "sydney",
    "tokyo",
    "seoul",
    "hong_kong",
    "bahrain",
    "cape_town",
    "jakarta",
];

pub fn check_region(r: &str) -> Result<(), Reply> {
    if REGIONS.contains(&r) {
        Ok(())
    } else {
        Err(bad(&format!(
            "region {r:?} is not valid; valid regions are: {}",
            REGIONS.join(", ")
        )))
    }
}

/// A cluster id like Typesense's: 17 lowercase letters and digits.
pub fn new_cluster_id() -> String {
    let hex = spin_adapter::ids::random_hex(17);
    let alphabet = b"0123456789abcdefghijklmnopqrstuvwxyz";
    hex::decode(hex)
        .unwrap()
        .iter()
        .map(|b| alphabet[(*b as usize) % 36] as char)
        .collect()
}

/// Cluster status from the container's state.
pub fn status(c: &Container) -> &'static str {
    match c.state {
        ContainerState::Ready => "in_service",
        ContainerState::Cloning => "provisioning",
        ContainerState::Failed => "failed",
    }
}

pub fn cluster_json(c: &Container) -> Value {
    let mut m = c.spec.as_object().cloned().unwrap_or_default();
    m.insert("id".into(), c.name.clone().into());
    m.insert("status".into(), status(c).into());
    m.insert("created_at".into(), (c.created_at / 1_000_000).into());
    m.insert("hostnames".into(), json!({"load_balanced": format!("{}.a1.typesense.net", c.name), "nodes": [format!("{}-1.a1.typesense.net", c.name)]}));
    Value::Object(m)
}

pub fn find(ctx: &Ctx, e: &engine::Engine, id: &str) -> Result<Container, Reply> {
    e.container(FAMILY, &ctx.tenant, id)
        .map_err(|_| crate::fail(404, "not_found", &format!("cluster {id} not found")))
}

/// Typesense Cloud's cluster create body (other fields are ignored).
#[derive(serde::Deserialize)]
struct ClusterCreate {
    memory: Option<String>,
    vcpu: Option<String>,
    typesense_server_version: Option<String>,
    regions: Option<Vec<String>>,
    #[serde(default, deserialize_with = "yes_no")]
    high_availability: Option<String>,
    #[serde(default, deserialize_with = "yes_no")]
    high_performance_disk: Option<String>,
    #[serde(default, deserialize_with = "yes_no")]
    load_balancing: Option<String>,
    search_delivery_network: Option<Sdn>,
    auto_upgrade_capacity: Option<bool>,
    name: Option<String>,
}

#[derive(serde::Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Sdn {
    Off,
    Yes,
}

/// A required or optional name-like field: non-empty, at most 64 bytes.
fn string(k: &str, v: Option<String>, required: bool) -> Result<Option<String>, Reply> {
    match v {
        None if !required => Ok(None),
        Some(s) if !s.trim().is_empty() && s.len() <= 64 => Ok(Some(s)),
        _ if required => Err(bad(&format!(
            "{k} is required and must be a non-empty string of at most 64 bytes"
        ))),
        _ => Err(bad(&format!(
            "{k} must be a non-empty string of at most 64 bytes"
        ))),
    }
}

/// An optional "yes"/"no" field (a boolean is accepted too).
fn yes_no<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v: Option<Value> = serde::Deserialize::deserialize(d)?;
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(true)) => Ok(Some("yes".into())),
        Some(Value::Bool(false)) => Ok(Some("no".into())),
        Some(Value::String(s)) if ["yes", "no"].contains(&s.as_str()) => Ok(Some(s)),
        Some(v) => Err(serde::de::Error::custom(format!("is \"yes\" or \"no\", not {v}"))),
    }
}

/// `POST /api/v1/clusters`.
pub fn create(ctx: &Ctx, req: &Req) -> Result<Reply, Reply> {
    let b: ClusterCreate = spin_adapter::body::parse(&req.body, false).map_err(|m| bad(&m))?;
    let required = |k: &str, v: Option<String>| -> Result<String, Reply> {
        string(k, v, true)?.ok_or_else(|| bad(&format!("{k} is required")))
    };
    let memory = required("memory", b.memory)?;
    let vcpu = required("vcpu", b.vcpu)?;
    let version = required("typesense_server_version", b.typesense_server_version)?;
    let regions = match b.regions {
        Some(a) if !a.is_empty() => a,
        _ => {
            return Err(bad(&format!(
                "regions is required: a non-empty list of {}",
                REGIONS.join(", ")
            )))
        }
    };
    for r in &regions {
        check_region(r)?;
    }
    let ha = b.high_availability.unwrap_or_else(|| "no".into());
    let disk = b.high_performance_disk.unwrap_or_else(|| "no".into());
    let balancing = b.load_balancing.unwrap_or_else(|| "no".into());
    let sdn = match b.search_delivery_network.unwrap_or(Sdn::Off) {
        Sdn::Off => "off",
        Sdn::Yes => "yes",
    };
    let auto = b.auto_upgrade_capacity.unwrap_or(false);
    let id = new_cluster_id();
    let name = string("name", b.name, false)?.unwrap_or_else(|| format!("cluster-{id}"));
    let spec = json!({
        "name": name,
        "memory": memory,
        "vcpu": vcpu,
        "high_performance_disk": disk,
        "typesense_server_version": version,
        "high_availability": ha,
        "search_delivery_network": sdn,
        "load_balancing": balancing,
        "regions": regions,
        "auto_upgrade_capacity": auto,
    });
    let e = ctx.engine()?;
    let c = e
        .create_container(FAMILY, &ctx.tenant, &id, &spec)
        .map_err(|er| error(&er))?;
    Ok(Reply::json(
        201,
        &json!({"success": true, "cluster": cluster_json(&c)}),
    ))
}

/// `GET /api/v1/clusters?page=&per_page=`.
pub fn list(ctx: &Ctx, req: &Req) -> Result<Reply, Reply> {
    let (page, per_page) = crate::cloning::paging(req)?;
    let e = ctx.engine()?;
    let total = e
        .count_containers(FAMILY, &ctx.tenant)
        .map_err(|er| error(&er))?;
    let list = e
        .list_containers(FAMILY, &ctx.tenant, (page - 1) * per_page, per_page)
        .map_err(|er| error(&er))?;
    Ok(Reply::json(
        200,
        &json!({"page": page, "per_page": per_page, "total": total, "clusters": list.iter().map(cluster_json).collect::<Vec<_>>()}),
    ))
}

pub fn get(ctx: &Ctx, id: &str) -> Result<Reply, Reply> {
    let e = ctx.engine()?;
    let c = find(ctx, &e, id)?;
    Ok(Reply::json(200, &cluster_json(&c)))
}

/// Terminate a cluster: it and its documents go.
pub fn terminate(ctx: &Ctx, id: &str) -> Result<Reply, Reply> {
    let e = ctx.engine()?;
    let c = find(ctx, &e, id)?;
    e.delete_container(FAMILY, &ctx.tenant, id)
        .map_err(|er| error(&er))?;
    let mut j = cluster_json(&c);
    j["status"] = "terminated".into();
    Ok(Reply::json(200, &json!({"success": true, "cluster": j})))
}
