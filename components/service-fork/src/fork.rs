//! `forkService`: a new service filled by a copy operation of its parent,
//! as of now, the last snapshot, or a point in time.

use engine::{CloneRequest, ErrorKind, Strategy};
use serde_json::json;
use spin_adapter::http::{Reply, Req};

use crate::services::{env_tag, find, new_id, service_json, size, EnvTag};
use crate::{bad, error, Ctx, FAMILY};

/// Timescale's `ForkServiceCreate`; any other field is refused.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ForkServiceCreate {
    name: Option<String>,
    #[serde(default, deserialize_with = "size")]
    cpu_millis: Option<String>,
    #[serde(default, deserialize_with = "size")]
    memory_gbs: Option<String>,
    /// `LAST_SNAPSHOT`, `NOW` or `PITR` (checked with `target_time`).
    fork_strategy: Option<String>,
    target_time: Option<String>,
    #[serde(default, deserialize_with = "env_tag")]
    environment_tag: Option<EnvTag>,
}

pub fn fork(ctx: &Ctx, req: &Req, p: &str, id: &str) -> Result<Reply, Reply> {
    let b: ForkServiceCreate = spin_adapter::body::parse(&req.body, false).map_err(|e| bad(&e))?;
    let target_time = b
        .target_time
        .as_deref()
        .map(|t| engine::util::parse_rfc3339(t).map_err(|e| bad(&format!("target_time: {}", e.message))))
        .transpose()?;
    let strategy = match (b.fork_strategy.as_deref(), target_time) {
        (None, _) => return Err(bad("fork_strategy is required: LAST_SNAPSHOT, NOW or PITR")),
        (Some("PITR"), Some(t)) => Strategy::Pitr(t),
        (Some("PITR"), None) => {
            return Err(bad("target_time is required when fork_strategy is PITR"))
        }
        (Some(s @ ("NOW" | "LAST_SNAPSHOT")), Some(_)) => {
            return Err(bad(&format!(
                "target_time is only accepted with fork_strategy PITR, not {s}"
            )))
        }
        (Some("NOW"), None) => Strategy::Now,
        (Some("LAST_SNAPSHOT"), None) => Strategy::LastSnapshot,
        (Some(s), _) => {
            return Err(bad(&format!(
                "fork_strategy {s:?} is not one of LAST_SNAPSHOT, NOW, PITR"
            )))
        }
    };
    let e = ctx.engine()?;
    let parent = find(ctx, &e, p, id)?;
    let ps = &parent.spec;
    let name = match b.name {
        None => format!("{}-fork", ps["name"].as_str().unwrap_or(id)),
        Some(n) if !n.is_empty() && n.chars().count() <= 128 => n,
        Some(_) => return Err(bad("name must be 1 to 128 characters")),
    };
    let cpu = b
        .cpu_millis
        .unwrap_or_else(|| ps["cpu_millis"].as_str().unwrap_or("500").to_string());
    let mem = b
        .memory_gbs
        .unwrap_or_else(|| ps["memory_gbs"].as_str().unwrap_or("2").to_string());
    let env = b.environment_tag.unwrap_or_default().as_str();
    let password = spin_adapter::ids::random_hex(16);
    let op_id_hint = new_id();
    let spec = json!({
        "project_id": p, "name": name,
        "region_code": ps["region_code"], "service_type": ps["service_type"], "storage_gbs": ps["storage_gbs"],
        "addons": ps["addons"], "cpu_millis": cpu, "memory_gbs": mem, "replica_count": 0, "environment_tag": env,
        "forked_from": {"project_id": p, "service_id": id, "is_standby": false},
        "password_sha256": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(password.as_bytes())),
    });
    let (op, _) = e
        .create_operation(&CloneRequest {
            family: FAMILY.into(),
            kind: "fork".into(),
            tenant: ctx.tenant.clone(),
            source: parent.clone(),
            target_family: FAMILY.into(),
            target_name: op_id_hint.clone(),
            target_spec: spec.clone(),
            strategy,
            history: true,
            collections: None,
            exclusive_key: None,
            notify: vec![],
            meta: json!({"fork_strategy": b.fork_strategy}),
            idempotency: None,
            mode: spin_adapter::vars::clone_mode(),
            hydrate: false,
            ttl_us: None,
            mask: None,
        })
        .map_err(|er| match &er.kind {
            ErrorKind::OutsideRetention { from, to } => bad(&format!(
                "target_time is outside the retained history of service {id}: choose a time from {} to {}",
                engine::util::rfc3339(*from),
                engine::util::rfc3339(*to)
            )),
            ErrorKind::NoSnapshot => bad(&format!("service {id} has no snapshot yet; use fork_strategy NOW or take a snapshot first")),
            _ => error(&er),
        })?;
    // Link the new service to the operation that fills it.
    let mut spec = spec;
    spec["fork_operation"] = op.id.clone().into();
    let target = e
        .update_spec(FAMILY, &ctx.tenant, &op_id_hint, &spec)
        .map_err(|er| error(&er))?;
    let mut v = service_json(&e, &target, Some("QUEUED"));
    v["initial_password"] = password.into();
    Ok(Reply::json(202, &v))
}
