//! JSON shapes of resources, records and operations.

use engine::util::rfc3339;
use engine::{CollectionStats, Container, Operation, Version};
use serde_json::{json, Value};
use spin_adapter::http::Reply;

/// Families a resource reference may name.
pub const FAMILIES: &[&str] = &[
    "native",
    "typesense",
    "mixpeek",
    "timescale",
    "sanity",
    "qovery",
];

/// Split `family:id` (the id may contain `:`, e.g. `sanity:proj:dataset`).
pub fn parse_ref(r: &str) -> Result<(&str, &str), Reply> {
    match r.split_once(':') {
        Some((f, id)) if FAMILIES.contains(&f) && !id.is_empty() => Ok((f, id)),
        _ => Err(Reply::problem(
            422,
            "invalid_input",
            &format!(
                "{r:?} is not a resource reference; use family:id with family one of {}",
                FAMILIES.join(", ")
            ),
        )),
    }
}

pub fn resource(c: &Container, collections: &[CollectionStats]) -> Value {
    // The levels a resource reads through that are other resources: an
    // import's staging level (shown from its commit LSN on, `from` > 0)
    // holds the resource's own records, not an ancestor's.
    let ancestors: Vec<_> = c
        .chain
        .iter()
        .filter(|l| l.from == 0 && l.is_current())
        .collect();
    json!({
        "ref": c.reference(),
        "family": c.family,
        "tenant": c.tenant,
        "state": c.state.as_str(),
        "protected": c.protected,
        "head_lsn": c.head_lsn,
        "spec": c.spec,
        "collections": collections.iter().map(|s| json!({"name": s.name, "records": s.records, "bytes": s.bytes, "versions": s.versions})).collect::<Vec<_>>(),
        "retained_from": rfc3339(c.floor_at),
        // A copy-on-write branch: how many ancestors it reads through and
        // the LSN it was made at (null once hydrated, or for a resource
        // that was never a branch).
        "branch": ancestors.first().map(|l| json!({"depth": ancestors.len(), "base_lsn": l.bound})),
        // A masked clone's rules (never its salt).
        "mask": c.mask.as_ref().map(|m| m.rules_json()),
        "merge_base": c.merge_base,
        // When the worker deletes it (a clone's time to live), if ever.
        "expires_at": c.expires_at.map(rfc3339),
        "created_at": rfc3339(c.created_at),
        "updated_at": rfc3339(c.updated_at),
    })
}

/// A record version: its body as JSON (null for a deletion). A stored body
/// that is not JSON is corruption, answered as an error, never as null.
pub fn version(v: &Version) -> Result<Value, engine::Error> {
    let body: Value = match v.body.as_deref() {
        Some(b) => serde_json::from_str(b).map_err(|e| {
            engine::Error::corrupt(format!(
                "stored body of {}/{} at LSN {} is not JSON: {e}",
                v.collection, v.key, v.lsn
            ))
        })?,
        None => Value::Null,
    };
    Ok(json!({
        "collection": v.collection,
        "key": v.key,
        "lsn": v.lsn,
        "deleted": v.deleted,
        "body": body,
        "committed_at": v.committed_at.map(rfc3339),
    }))
}

pub fn operation(op: &Operation) -> Value {
    let mut v = operation_fields(op);
    if op.op_kind() == engine::OpKind::Verify {
        v["report"] = op.meta.get("report").cloned().unwrap_or(Value::Null);
    }
    v
}

fn operation_fields(op: &Operation) -> Value {
    json!({
        "id": op.id,
        "kind": op.kind,
        "mode": op.mode,
        "status": op.status.as_str(),
        "source": op.source_ref,
        "target": op.target_ref,
        "strategy": op.strategy,
        "target_time": op.target_time.map(rfc3339),
        "snapshot_lsn": op.snapshot_lsn,
        "history": op.history,
        "collections": op.collections,
        "progress": {
            "records_copied": op.records_copied,
            "records_total": op.records_total,
            "bytes_copied": op.bytes_copied,
            "bytes_total": op.bytes_total,
            "percent": (op.percent() * 10.0).round() / 10.0,
            "eta_seconds": op.eta_seconds(),
        },
        "attempts": op.attempts,
        "error": op.error,
        "notify": op.notify,
        "created_at": rfc3339(op.created_at),
        "updated_at": rfc3339(op.updated_at),
        "started_at": op.started_at.map(rfc3339),
        "completed_at": op.completed_at.map(rfc3339),
    })
}
