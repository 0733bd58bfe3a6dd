//! Documents, as Sanity's data endpoints serve them: a document is a record
//! of its dataset's container with collection = `_type`, key = `_id`, body =
//! the document's JSON.
//!
//! - `GET /data/export/{dataset}[?types=a,b]`: every document as NDJSON,
//!   streamed page by page as of the LSN the request started at (what
//!   `sanity dataset export` reads; its cursor mode gets the same stream and
//!   no `nextCursor`);
//! - `POST /data/mutate/{dataset}`: `{"mutations": [...]}` of `create`,
//!   `createOrReplace`, `createIfNotExists`, `delete` (by `id`) and `patch`
//!   (`id`, `set`, `unset`, `setIfMissing`, `ifRevisionID`), applied all or
//!   nothing as one engine batch (what `sanity dataset import` and
//!   @sanity/client's transactions send);
//! - `GET /data/doc/{dataset}/{id,id,...}`: `{documents, omitted}` (what
//!   @sanity/client's `getDocument`/`getDocuments` read).
//!
//! The mutate reads each touched document before its one write batch; the
//! batch itself is atomic, but two concurrent transactions on the same
//! document are not isolated from each other (the later write wins).

use std::collections::BTreeMap;

use engine::{AsOf, Container, Engine, Env, Write};
use serde_json::{json, Map, Value};
use spin_adapter::http::{Reply, Req};
use spin_adapter::store::{SpinDb, SpinEnv};

use crate::datasets::{check_dataset_name, container_name, project};
use crate::{bad, error, fail, Ctx, FAMILY};

/// Most mutations in one transaction (an import batch of 256 KB of small
/// documents stays well below it).
pub const MAX_MUTATIONS: usize = 10_000;
/// Largest mutate body (the adapter's own bound is larger).
pub const MAX_MUTATE_BODY: usize = 16 << 20;
/// Most ids in one `GET /data/doc` (the client asks for 100 at a time).
pub const MAX_DOC_IDS: usize = 500;
/// Documents per page of an export stream.
const EXPORT_PAGE: i64 = 500;

/// The dataset `name` of project `p`, or Sanity's 404.
fn dataset(ctx: &Ctx, e: &Engine, p: &str, name: &str) -> Result<Container, Reply> {
    check_dataset_name(name)?;
    project(ctx, e, p)?;
    e.container(FAMILY, &ctx.tenant, &container_name(p, name))
        .map_err(|_| fail(404, "Not Found", &format!("dataset {name:?} not found")))
}

/// Sanity's document id rule: 1–128 of letters, digits, `_`, `-` and `.`,
/// not starting with `-` or `.`.
fn check_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        && !id.starts_with(['-', '.']);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "document id {id:?} is invalid: use 1 to 128 letters, digits, '_', '-' and '.', not starting with '-' or '.'"
        ))
    }
}

/// `GET /data/export/{dataset}`: NDJSON, one document a line.
pub fn export(ctx: Ctx, req: &Req, p: &str, name: &str) -> Result<Reply, Reply> {
    let types: Option<Vec<String>> = req.query("types").map(|t| {
        t.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    });
    let (c, at) = {
        let e = ctx.engine()?;
        let c = dataset(&ctx, &e, p, name)?;
        let at = e.head_lsn().map_err(|er| error(&er))?;
        (c, at)
    };
    let db: SpinDb = ctx.db;
    let mut after: Option<(String, String)> = None;
    let mut done = false;
    Ok(Reply::stream(
        200,
        "application/x-ndjson",
        Box::new(move || loop {
            if done {
                return Ok(None);
            }
            // A failure mid-way aborts the response (never a short body
            // that ends cleanly).
            let e = Engine::open(&db, &SpinEnv)?;
            let page = e.export_page(
                &c,
                at,
                after.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
                EXPORT_PAGE,
            )?;
            let Some(last) = page.last() else {
                done = true;
                return Ok(None);
            };
            after = Some((last.collection.clone(), last.key.clone()));
            let mut out = Vec::with_capacity(page.len() * 256);
            for v in &page {
                if types.as_ref().is_some_and(|t| !t.contains(&v.collection)) {
                    continue;
                }
                if let Some(body) = &v.body {
                    out.extend_from_slice(body.as_bytes());
                    out.push(b'\n');
                }
            }
            if !out.is_empty() {
                return Ok(Some(out));
            }
        }),
    ))
}

/// The live document `id` of `c`, looked up in each of its types.
fn find(
    e: &Engine,
    c: &Container,
    types: &[String],
    id: &str,
) -> Result<Option<(String, Value)>, Reply> {
    for t in types {
        match e.get(c, t, id, AsOf::Head) {
            Ok(v) => {
                // A stored body that is not JSON is corruption: an error.
                let doc = match v.body.as_deref() {
                    Some(b) => serde_json::from_str(b).map_err(|e| {
                        error(&engine::Error::corrupt(format!(
                            "stored document {id} is not JSON: {e}"
                        )))
                    })?,
                    None => Value::Null,
                };
                return Ok(Some((t.clone(), doc)));
            }
            Err(er) if er.kind == engine::ErrorKind::NotFound => continue,
            Err(er) => return Err(error(&er)),
        }
    }
    Ok(None)
}

fn types_of(e: &Engine, c: &Container) -> Result<Vec<String>, Reply> {
    Ok(e.collections(c)
        .map_err(|er| error(&er))?
        .into_iter()
        .map(|s| s.name)
        .collect())
}

/// `GET /data/doc/{dataset}/{ids}`: `{"documents": [...], "omitted": [{id, reason}]}`.
pub fn get(ctx: &Ctx, req: &Req, p: &str, name: &str, ids: &str) -> Result<Reply, Reply> {
    let ids: Vec<&str> = ids.split(',').filter(|s| !s.is_empty()).collect();
    if ids.is_empty() {
        return Err(bad("name at least one document id"));
    }
    if ids.len() > MAX_DOC_IDS {
        return Err(bad(&format!(
            "at most {MAX_DOC_IDS} document ids per request, got {}",
            ids.len()
        )));
    }
    for id in &ids {
        check_id(id).map_err(|m| bad(&m))?;
    }
    let exclude = req
        .query_as::<GetQuery>()
        .map_err(|e| bad(&e))?
        .exclude_content
        .unwrap_or(false);
    let e = ctx.engine()?;
    let c = dataset(ctx, &e, p, name)?;
    let types = types_of(&e, &c)?;
    let (mut documents, mut omitted) = (Vec::new(), Vec::new());
    for id in ids {
        match find(&e, &c, &types, id)? {
            Some((_, doc)) if !exclude => documents.push(doc),
            Some(_) => {}
            None => omitted.push(json!({"id": id, "reason": "existence"})),
        }
    }
    Ok(Reply::json(
        200,
        &json!({"documents": documents, "omitted": omitted}),
    ))
}

/// `?returnIds&returnDocuments&visibility&dryRun` of a mutation.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct MutateQuery {
    #[serde(default, deserialize_with = "spin_adapter::http::flag")]
    return_documents: Option<bool>,
    #[serde(default, deserialize_with = "spin_adapter::http::flag")]
    return_ids: Option<bool>,
    #[serde(default, deserialize_with = "spin_adapter::http::flag")]
    dry_run: Option<bool>,
    /// Accepted: every mutation is visible when the request returns.
    #[allow(dead_code)]
    visibility: Option<Visibility>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum Visibility {
    Sync,
    Async,
    Deferred,
}

/// `?excludeContent` of a document read.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetQuery {
    #[serde(default, deserialize_with = "spin_adapter::http::flag")]
    exclude_content: Option<bool>,
}

/// One document's state during a transaction: where it was, what it is now.
struct Touched {
    /// Its type before the transaction (None: it did not exist).
    before: Option<String>,
    now: Option<Value>,
}

/// `POST /data/mutate/{dataset}?returnIds&returnDocuments&visibility&dryRun`.
pub fn mutate(ctx: &Ctx, req: &Req, p: &str, name: &str) -> Result<Reply, Reply> {
    if req.body.len() > MAX_MUTATE_BODY {
        return Err(fail(
            413,
            "Payload Too Large",
            &format!("a mutate body is at most {} MiB", MAX_MUTATE_BODY >> 20),
        ));
    }
    let q: MutateQuery = req.query_as().map_err(|e| bad(&e))?;
    let return_docs = q.return_documents.unwrap_or(false);
    let return_ids = q.return_ids.unwrap_or(false);
    let dry_run = q.dry_run.unwrap_or(false);
    let b = spin_adapter::body::object(&req.body, false).map_err(|e| bad(&e))?;
    let mutations = match b.get("mutations") {
        Some(Value::Array(m)) if !m.is_empty() => m,
        Some(Value::Array(_)) => return Err(bad("mutations is empty: send at least one")),
        Some(_) => return Err(bad("mutations must be an array of mutations")),
        None => return Err(bad("the body needs \"mutations\": an array of mutations")),
    };
    if mutations.len() > MAX_MUTATIONS {
        return Err(bad(&format!(
            "a transaction holds at most {MAX_MUTATIONS} mutations, got {}",
            mutations.len()
        )));
    }
    let rev = match b.get("transactionId") {
        None | Some(Value::Null) => spin_adapter::ids::random_hex(11),
        Some(Value::String(t)) if check_id(t).is_ok() => t.clone(),
        Some(_) => {
            return Err(bad(
                "transactionId must be a string of letters, digits, '_', '-' and '.'",
            ))
        }
    };
    let e = ctx.engine()?;
    let c = dataset(ctx, &e, p, name)?;
    let types = types_of(&e, &c)?;
    let now = engine::util::rfc3339(SpinEnv.now_us());
    let mut docs: BTreeMap<String, Touched> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut results = Vec::with_capacity(mutations.len());
    for (i, m) in mutations.iter().enumerate() {
        let at = |msg: String| bad(&format!("mutation {i}: {msg}"));
        let conflict = |msg: String| fail(409, "Conflict", &format!("mutation {i}: {msg}"));
        let Some(m) = m.as_object().filter(|m| m.len() == 1) else {
            return Err(at("a mutation is an object with one key: create, createOrReplace, createIfNotExists, delete or patch".into()));
        };
        let (kind, arg) = m.iter().next().unwrap();
        // The document's current state, loaded once per transaction.
        let mut load = |id: &str| -> Result<(), Reply> {
            if !docs.contains_key(id) {
                let found = find(&e, &c, &types, id)?;
                docs.insert(
                    id.to_string(),
                    Touched {
                        before: found.as_ref().map(|(t, _)| t.clone()),
                        now: found.map(|(_, d)| d),
                    },
                );
                order.push(id.to_string());
            }
            Ok(())
        };
        let (id, operation) = match kind.as_str() {
            "create" | "createOrReplace" | "createIfNotExists" => {
                let Some(doc) = arg.as_object() else {
                    return Err(at(format!("{kind} takes a document (a JSON object)")));
                };
                let id = match doc.get("_id") {
                    Some(Value::String(id)) => id.clone(),
                    None | Some(Value::Null) if kind == "create" => spin_adapter::ids::random_hex(11),
                    None | Some(Value::Null) => return Err(at(format!("{kind} needs the document's _id"))),
                    Some(_) => return Err(at("_id must be a string".into())),
                };
                check_id(&id).map_err(at)?;
                match doc.get("_type") {
                    Some(Value::String(t)) if !t.is_empty() && t.len() <= 128 && !t.chars().any(char::is_control) => {}
                    _ => return Err(at(format!("the document {id:?} needs _type: a string of 1 to 128 characters"))),
                }
                load(&id)?;
                let cur = docs.get_mut(&id).unwrap();
                let exists = cur.now.is_some();
                let op = match (kind.as_str(), exists) {
                    ("create", true) => {
                        return Err(conflict(format!("document {id:?} already exists")))
                    }
                    ("createIfNotExists", true) => "none",
                    ("createOrReplace", true) => "update",
                    _ => "create",
                };
                if op != "none" {
                    let mut d: Map<String, Value> = doc.clone();
                    d.insert("_id".into(), id.clone().into());
                    let created = cur
                        .now
                        .as_ref()
                        .and_then(|o| o.get("_createdAt").cloned())
                        .unwrap_or_else(|| now.clone().into());
                    d.insert("_createdAt".into(), created);
                    d.insert("_updatedAt".into(), now.clone().into());
                    d.insert("_rev".into(), rev.clone().into());
                    cur.now = Some(Value::Object(d));
                }
                (id, op)
            }
            "delete" => {
                let id = match arg.get("id") {
                    Some(Value::String(id)) => id.clone(),
                    _ if arg.get("query").is_some() => {
                        return Err(at("delete by query is not supported: delete by id".into()))
                    }
                    _ => return Err(at("delete takes {\"id\": \"...\"}".into())),
                };
                check_id(&id).map_err(at)?;
                load(&id)?;
                let cur = docs.get_mut(&id).unwrap();
                let op = if cur.now.take().is_some() { "delete" } else { "none" };
                (id, op)
            }
            "patch" => {
                let Some(patch) = arg.as_object() else {
                    return Err(at("patch takes an object: {id, set, unset, setIfMissing, ifRevisionID}".into()));
                };
                for k in patch.keys() {
                    if !["id", "set", "unset", "setIfMissing", "ifRevisionID"].contains(&k.as_str()) {
                        return Err(at(format!(
                            "patch operation {k:?} is not supported (supported: set, unset, setIfMissing, ifRevisionID)"
                        )));
                    }
                }
                let id = match patch.get("id") {
                    Some(Value::String(id)) => id.clone(),
                    _ if patch.get("query").is_some() => {
                        return Err(at("patch by query is not supported: patch by id".into()))
                    }
                    _ => return Err(at("patch needs the document's id".into())),
                };
                check_id(&id).map_err(at)?;
                load(&id)?;
                let cur = docs.get_mut(&id).unwrap();
                let Some(Value::Object(mut d)) = cur.now.clone() else {
                    return Err(conflict(format!(
                        "cannot patch document {id:?}: it does not exist"
                    )));
                };
                if let Some(want) = patch.get("ifRevisionID") {
                    if d.get("_rev") != Some(want) {
                        return Err(conflict(format!(
                            "document {id:?} has revision {}, not {want}",
                            d.get("_rev").cloned().unwrap_or(Value::Null)
                        )));
                    }
                }
                apply_patch(&mut d, patch).map_err(at)?;
                match d.get("_type") {
                    Some(Value::String(t)) if !t.is_empty() && t.len() <= 128 && !t.chars().any(char::is_control) => {}
                    _ => return Err(at(format!("the patch leaves document {id:?} without a valid _type"))),
                }
                d.insert("_updatedAt".into(), now.clone().into());
                d.insert("_rev".into(), rev.clone().into());
                cur.now = Some(Value::Object(d));
                (id, "update")
            }
            other => {
                return Err(at(format!(
                    "{other:?} is not a mutation (create, createOrReplace, createIfNotExists, delete, patch)"
                )))
            }
        };
        let mut r = json!({"id": id, "operation": operation});
        if return_docs {
            r["document"] = docs[&id].now.clone().unwrap_or(Value::Null);
        }
        results.push(r);
    }
    // The transaction's writes: each touched document's final state.
    let mut writes = Vec::new();
    for id in &order {
        let t = &docs[id];
        let now_type = t
            .now
            .as_ref()
            .and_then(|d| d["_type"].as_str().map(String::from));
        if let Some(before) = &t.before {
            if now_type.as_ref() != Some(before) {
                writes.push(Write::Delete {
                    collection: before.clone(),
                    key: id.clone(),
                });
            }
        }
        if let (Some(ty), Some(doc)) = (now_type, &t.now) {
            writes.push(Write::Put {
                collection: ty,
                key: id.clone(),
                body: doc.to_string(),
            });
        }
    }
    if !dry_run && !writes.is_empty() {
        e.write(FAMILY, &ctx.tenant, &c.name, &writes)
            .map_err(|er| error(&er))?;
    }
    let mut out = json!({"transactionId": rev, "results": results});
    if return_ids {
        out["documentIds"] = order
            .iter()
            .filter(|id| docs[*id].now.is_some() || docs[*id].before.is_some())
            .cloned()
            .collect::<Vec<_>>()
            .into();
    }
    Ok(Reply::json(200, &out))
}

/// Attributes Sanity keeps for itself: a patch may not set or unset them.
const SYSTEM: [&str; 4] = ["_id", "_rev", "_createdAt", "_updatedAt"];

/// A patch path: `a`, `a.b.c` (object attributes only).
fn path(p: &str) -> Result<Vec<&str>, String> {
    let parts: Vec<&str> = p.split('.').collect();
    if p.is_empty()
        || parts.iter().any(|s| {
            s.is_empty()
                || !s
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
    {
        return Err(format!(
            "patch path {p:?} is not supported: use attribute names joined by '.' (no array selectors)"
        ));
    }
    if SYSTEM.contains(&parts[0]) {
        return Err(format!(
            "{} is a system attribute and cannot be patched",
            parts[0]
        ));
    }
    Ok(parts)
}

/// `setIfMissing`, then `set`, then `unset`, as Sanity orders them.
fn apply_patch(d: &mut Map<String, Value>, patch: &Map<String, Value>) -> Result<(), String> {
    for (op, only_missing) in [("setIfMissing", true), ("set", false)] {
        match patch.get(op) {
            None | Some(Value::Null) => {}
            Some(Value::Object(kv)) => {
                for (k, v) in kv {
                    let parts = path(k)?;
                    set_at(d, &parts, v.clone(), only_missing)?;
                }
            }
            Some(_) => return Err(format!("{op} takes an object of path: value")),
        }
    }
    match patch.get("unset") {
        None | Some(Value::Null) => {}
        Some(Value::Array(paths)) => {
            for k in paths {
                let Some(k) = k.as_str() else {
                    return Err("unset takes an array of paths (strings)".into());
                };
                unset_at(d, &path(k)?);
            }
        }
        Some(_) => return Err("unset takes an array of paths".into()),
    }
    Ok(())
}

fn unset_at(d: &mut Map<String, Value>, parts: &[&str]) {
    match parts {
        [] => {}
        [last] => {
            d.remove(*last);
        }
        [first, rest @ ..] => {
            if let Some(Value::Object(o)) = d.get_mut(*first) {
                unset_at(o, rest);
            }
        }
    }
}

fn set_at(
    d: &mut Map<String, Value>,
    parts: &[&str],
    v: Value,
    only_missing: bool,
) -> Result<(), String> {
    let (last, parents) = parts.split_last().unwrap();
    let mut cur = d;
    for p in parents {
        let slot = cur
            .entry(p.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        match slot {
            Value::Object(o) => cur = o,
            _ => return Err(format!("cannot set inside {p:?}: it is not an object")),
        }
    }
    if !(only_missing && cur.contains_key(*last)) {
        cur.insert(last.to_string(), v);
    }
    Ok(())
}
