//! `POST /database/{databaseId}/clone` `{"name", "environment_id"}`: a new
//! database with the source's configuration in the target environment, its
//! data copied by the worker. One clone at a time per source.

use engine::{CloneRequest, ErrorKind, Strategy};
use serde_json::{json, Value};
use spin_adapter::http::{Reply, Req};

use crate::databases::{claim_name, database_json, find, release_name};
use crate::environments::find as find_env;
use crate::{bad, error, fail, Ctx, FAMILY};

pub fn clone(ctx: &Ctx, req: &Req, id: &str) -> Result<Reply, Reply> {
    let m = spin_adapter::body::object(&req.body, false).map_err(|e| bad(&e))?;
    let b = Value::Object(m);
    let name = match b.get("name").and_then(Value::as_str) {
        Some(n) if !n.trim().is_empty() && n.len() <= 255 => n.to_string(),
        _ => return Err(bad("name is required")),
    };
    let env = match b.get("environment_id").and_then(Value::as_str) {
        Some(e) if !e.is_empty() => e.to_string(),
        _ => return Err(bad("environment_id is required")),
    };
    let e = ctx.engine()?;
    let source = find(ctx, &e, id)?;
    find_env(ctx, &e, &env)?;
    claim_name(ctx, &e, &env, &name)?;
    let mut spec = source.spec.clone();
    spec["environment_id"] = env.clone().into();
    spec["name"] = name.clone().into();
    spec["cloned_from"] = id.into();
    let target_id = spin_adapter::ids::uuid_v4();
    let started = e.create_operation(&CloneRequest {
        family: FAMILY.into(),
        kind: "database_clone".into(),
        tenant: ctx.tenant.clone(),
        source,
        target_family: FAMILY.into(),
        target_name: target_id.clone(),
        target_spec: spec.clone(),
        strategy: Strategy::Now,
        history: true,
        collections: None,
        exclusive_key: Some(format!("qovery:{id}")),
        notify: vec![],
        meta: json!({}),
        idempotency: None,
        mode: spin_adapter::vars::clone_mode(),
        hydrate: false,
        ttl_us: None,
        mask: None,
    });
    let op = match started {
        Ok((op, _)) => op,
        Err(er) => {
            release_name(&e, &env, &name);
            return Err(match er.kind {
                ErrorKind::Conflict { .. } => fail(409, "Operation is in progress"),
                _ => error(&er),
            });
        }
    };
    spec["clone_operation"] = op.id.clone().into();
    let target = e
        .update_spec(FAMILY, &ctx.tenant, &target_id, &spec)
        .map_err(|er| error(&er))?;
    Ok(Reply::json(202, &database_json(&e, &target)))
}
