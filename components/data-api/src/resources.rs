//! Resources, records, bulk import and export, snapshots.

use engine::{AsOf, Container, Engine};
use serde_json::{json, Value};
use spin_adapter::http::{within, Reply, Req};
use spin_adapter::store::{SpinDb, SpinEnv};

use crate::shapes::{self, parse_ref};
use crate::Ctx;

type R = Result<Reply, Reply>;

fn err(e: engine::Error) -> Reply {
    Reply::error(&e)
}

/// A collection name and a record key, checked before any lookup.
fn names(collection: &str, key: Option<&str>) -> Result<(), Reply> {
    engine::util::check_collection(collection).map_err(err)?;
    if let Some(k) = key {
        engine::util::check_key(k).map_err(err)?;
    }
    Ok(())
}

pub(crate) fn find(e: &Engine, tenant: &str, r: &str) -> Result<Container, Reply> {
    let (family, id) = parse_ref(r)?;
    e.container(family, tenant, id).map_err(err)
}

/// `?as_of=` as an LSN (digits) or an RFC 3339 time.
pub(crate) fn as_of(req: &Req) -> Result<AsOf, Reply> {
    match req.query("as_of") {
        None | Some("") => Ok(AsOf::Head),
        Some(s) if s.bytes().all(|b| b.is_ascii_digit()) => s
            .parse()
            .map(AsOf::Lsn)
            .map_err(|_| Reply::problem(422, "invalid_input", "as_of LSN is out of range")),
        Some(s) => engine::util::parse_rfc3339(s).map(AsOf::Time).map_err(|e| {
            Reply::problem(
                400,
                "invalid_input",
                &format!("as_of must be an LSN or an RFC 3339 time: {}", e.message),
            )
        }),
    }
}

/// `?limit=&before=` of the list and history reads.
#[derive(serde::Deserialize)]
struct Page {
    limit: Option<i64>,
    before: Option<i64>,
}

fn page(req: &Req) -> Result<Page, Reply> {
    req.query_as()
        .map_err(|m| Reply::problem(422, "invalid_input", &m))
}

fn limit(req: &Req, default: i64, max: i64) -> Result<i64, Reply> {
    within("limit", page(req)?.limit.unwrap_or(default), 1, max)
        .map_err(|m| Reply::problem(422, "invalid_input", &m))
}

pub fn create(ctx: &Ctx, req: &Req, r: &str) -> R {
    let (family, name) = parse_ref(r)?;
    if family != "native" {
        return Err(Reply::problem(
            422,
            "invalid_input",
            &format!("{family} resources are created through their own API; the data API creates native:<name> resources"),
        ));
    }
    let spec: Value = if req.body.is_empty() {
        json!({})
    } else {
        req.json()?
    };
    if !spec.is_object() {
        return Err(Reply::problem(
            422,
            "invalid_input",
            "the body, when given, is a JSON object (the resource's spec)",
        ));
    }
    let e = ctx.engine()?;
    let c = e
        .create_container(family, &ctx.tenant, name, &spec)
        .map_err(err)?;
    Ok(Reply::json(201, &shapes::resource(&c, &[])))
}

pub fn get(ctx: &Ctx, r: &str) -> R {
    let e = ctx.engine()?;
    let c = find(&e, &ctx.tenant, r)?;
    let cols = e.collections(&c).map_err(err)?;
    let mut v = shapes::resource(&c, &cols);
    v["parent"] = json!(parent_ref(&e, &c)?);
    Ok(Reply::json(200, &v))
}

/// The ref of the resource `c` was cloned from, while it exists (a reset's
/// retired state is no resource: null).
fn parent_ref(e: &engine::Engine, c: &engine::Container) -> Result<Option<String>, Reply> {
    let Some(p) = c.parent else { return Ok(None) };
    Ok(e
        .container_by_id(p)
        .map_err(err)?
        .filter(|p| p.tenant == c.tenant && p.family != engine::containers::HISTORY_FAMILY)
        .map(|p| p.reference()))
}

/// `GET /resources?after=&limit=`: the tenant's resources of every family,
/// oldest first, each with its parent's ref (the branch tree), a page at a
/// time (`next`: the `after` of the next page).
pub fn list_resources(ctx: &Ctx, req: &Req) -> R {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Query {
        after: Option<i64>,
        limit: Option<i64>,
    }
    let invalid = |m: String| Reply::problem(422, "invalid_input", &m);
    let q: Query = req.query_as().map_err(invalid)?;
    let limit = spin_adapter::http::within("limit", q.limit.unwrap_or(100), 1, 500).map_err(invalid)?;
    let after = spin_adapter::http::within("after", q.after.unwrap_or(0), 0, i64::MAX).map_err(invalid)?;
    let e = ctx.engine()?;
    let list = e
        .list_resources(&ctx.tenant, after, limit)
        .map_err(err)?;
    let mut out = Vec::with_capacity(list.len());
    for c in &list {
        let cols = e.collections(c).map_err(err)?;
        let mut v = shapes::resource(c, &cols);
        v["parent"] = json!(parent_ref(&e, c)?);
        out.push(v);
    }
    let next = (list.len() as i64 == limit).then(|| list.last().map(|c| c.id)).flatten();
    Ok(Reply::json(200, &json!({"resources": out, "next": next})))
}

/// `PATCH /resources/{ref}` `{"protected": bool}`: protect a resource
/// (direct writes, imports and deletes answer 423) or stop protecting it.
pub fn update(ctx: &Ctx, req: &Req, r: &str) -> R {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Update {
        protected: Option<bool>,
    }
    let u: Update = spin_adapter::body::parse(&req.body, false)
        .map_err(|m| Reply::problem(400, "invalid_json", &m))?;
    let e = ctx.engine()?;
    let c = find(&e, &ctx.tenant, r)?;
    let c = match u.protected {
        Some(p) => e
            .set_protection(&c.family, &c.tenant, &c.name, p)
            .map_err(err)?,
        None => c,
    };
    let cols = e.collections(&c).map_err(err)?;
    Ok(Reply::json(200, &shapes::resource(&c, &cols)))
}

/// `POST /resources/{ref}/reset` `{"to"?: lsn | time, "force"?: bool}`:
/// the resource reads the one it was cloned from again — as it stands, or
/// as of `to` — under the same ref; reads before the reset still answer
/// what it was.
pub fn reset(ctx: &Ctx, req: &Req, r: &str) -> R {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        to: Option<Value>,
        #[serde(default)]
        force: bool,
    }
    let b: Body = spin_adapter::body::parse(&req.body, true)
        .map_err(|m| Reply::problem(400, "invalid_json", &m))?;
    let to = match &b.to {
        None | Some(Value::Null) => AsOf::Head,
        Some(Value::Number(n)) => AsOf::Lsn(n.as_i64().filter(|l| *l >= 0).ok_or_else(|| {
            Reply::problem(422, "invalid_input", "to: an LSN is a whole number, 0 or more")
        })?),
        Some(Value::String(t)) => AsOf::Time(engine::util::parse_rfc3339(t).map_err(err)?),
        Some(_) => {
            return Err(Reply::problem(
                422,
                "invalid_input",
                "to is an LSN or an RFC 3339 time of the resource this one was cloned from",
            ))
        }
    };
    let e = ctx.engine()?;
    let c = find(&e, &ctx.tenant, r)?;
    let (c, lsn) = e
        .reset(&c.family, &c.tenant, &c.name, to, b.force)
        .map_err(err)?;
    let cols = e.collections(&c).map_err(err)?;
    let mut v = shapes::resource(&c, &cols);
    v["reset_lsn"] = lsn.into();
    Ok(Reply::json(200, &v))
}

pub fn delete(ctx: &Ctx, r: &str) -> R {
    let e = ctx.engine()?;
    let c = find(&e, &ctx.tenant, r)?;
    e.delete_container(&c.family, &c.tenant, &c.name)
        .map_err(err)?;
    Ok(Reply::empty(204))
}

pub fn list(ctx: &Ctx, req: &Req, r: &str, collection: &str) -> R {
    names(collection, None)?;
    let e = ctx.engine()?;
    let c = find(&e, &ctx.tenant, r)?;
    let limit = limit(req, 100, 1000)?;
    let records = e
        .list(&c, collection, req.query("after"), limit, as_of(req)?)
        .map_err(err)?;
    let next = if records.len() as i64 == limit {
        records.last().map(|v| v.key.clone())
    } else {
        None
    };
    Ok(Reply::json(
        200,
        &json!({"records": records.iter().map(shapes::version).collect::<Result<Vec<_>, _>>().map_err(err)?, "next_after": next}),
    ))
}

pub fn put(ctx: &Ctx, req: &Req, r: &str, collection: &str, key: &str) -> R {
    names(collection, Some(key))?;
    let body: Value = req.json()?;
    let e = ctx.engine()?;
    let c = find(&e, &ctx.tenant, r)?;
    let done = e.put(&c, collection, key, &body.to_string()).map_err(err)?;
    Ok(Reply::json(
        200,
        &json!({"lsn": done.lsn, "committed_at": engine::util::rfc3339(done.committed_at)}),
    ))
}

pub fn read(ctx: &Ctx, req: &Req, r: &str, collection: &str, key: &str) -> R {
    names(collection, Some(key))?;
    let e = ctx.engine()?;
    let c = find(&e, &ctx.tenant, r)?;
    let v = e.get(&c, collection, key, as_of(req)?).map_err(err)?;
    Ok(Reply::json(200, &shapes::version(&v).map_err(err)?))
}

pub fn remove(ctx: &Ctx, r: &str, collection: &str, key: &str) -> R {
    names(collection, Some(key))?;
    let e = ctx.engine()?;
    let c = find(&e, &ctx.tenant, r)?;
    let done = e.delete(&c, collection, key).map_err(err)?;
    Ok(Reply::json(
        200,
        &json!({"lsn": done.lsn, "committed_at": engine::util::rfc3339(done.committed_at)}),
    ))
}

pub fn history(ctx: &Ctx, req: &Req, r: &str, collection: &str, key: &str) -> R {
    names(collection, Some(key))?;
    let e = ctx.engine()?;
    let c = find(&e, &ctx.tenant, r)?;
    let before = match page(req)?.before {
        Some(b) if b < 0 => {
            return Err(Reply::problem(422, "invalid_input", "before is an LSN (0 or more)"))
        }
        b => b,
    };
    let versions = e
        .history(&c, collection, key, before, limit(req, 100, 1000)?)
        .map_err(err)?;
    if versions.is_empty() && before.is_none() {
        return Err(Reply::problem(
            404,
            "not_found",
            &format!("record {collection}/{key} has no history"),
        ));
    }
    Ok(Reply::json(
        200,
        &json!({"versions": versions.iter().map(shapes::version).collect::<Result<Vec<_>, _>>().map_err(err)?}),
    ))
}

/// `GET …/export?as_of=`: NDJSON of live records, streamed page by page.
pub fn export(ctx: Ctx, req: &Req, r: &str) -> R {
    let (at, c) = {
        let e = ctx.engine()?;
        let c = find(&e, &ctx.tenant, r)?;
        (e.resolve(&c, as_of(req)?).map_err(err)?, c)
    };
    // At the head, the count the export must hold goes with it (read in
    // one snapshot with the LSN), so a client can tell a short export.
    let (at, count) = if at == i64::MAX {
        let (head, count) = ctx.engine()?.head_and_count(&c).map_err(err)?;
        (head, Some(count))
    } else {
        (at, None)
    };
    let db: SpinDb = ctx.db;
    let mut after: Option<(String, String)> = None;
    let mut done = false;
    let reply = Reply::stream(
        200,
        "application/x-ndjson",
        Box::new(move || {
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
                500,
            )?;
            if page.is_empty() {
                done = true;
                return Ok(None);
            }
            let mut out = Vec::with_capacity(page.len() * 64);
            for v in &page {
                let body: Value = serde_json::from_str(v.body.as_deref().unwrap_or("null"))
                    .map_err(|e| {
                        engine::Error::corrupt(format!(
                            "stored body of {}/{} is not JSON: {e}",
                            v.collection, v.key
                        ))
                    })?;
                let line = json!({"collection": v.collection, "key": v.key, "body": body});
                out.extend(line.to_string().as_bytes());
                out.push(b'\n');
            }
            if let Some(last) = page.last() {
                after = Some((last.collection.clone(), last.key.clone()));
            }
            Ok(Some(out))
        }),
    )
    .with_header("spinoff-as-of-lsn", &at.to_string());
    Ok(match count {
        Some(n) => reply.with_header("spinoff-export-records", &n.to_string()),
        None => reply,
    })
}

pub fn snapshot(ctx: &Ctx, req: &Req, r: &str) -> R {
    #[derive(serde::Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct Body {
        name: Option<String>,
    }
    let b: Body = if req.body.is_empty() {
        Body::default()
    } else {
        req.json()?
    };
    let e = ctx.engine()?;
    let c = find(&e, &ctx.tenant, r)?;
    let s = e.snapshot(&c, b.name.as_deref()).map_err(err)?;
    Ok(Reply::json(201, &snapshot_json(&s)))
}

fn snapshot_json(s: &engine::Snapshot) -> Value {
    json!({"id": s.id, "lsn": s.lsn, "name": s.name, "scheduled": s.scheduled, "created_at": engine::util::rfc3339(s.created_at)})
}

pub fn snapshots(ctx: &Ctx, r: &str) -> R {
    let e = ctx.engine()?;
    let c = find(&e, &ctx.tenant, r)?;
    let list = e.snapshots(&c, 1000).map_err(err)?;
    Ok(Reply::json(
        200,
        &json!({"snapshots": list.iter().map(snapshot_json).collect::<Vec<_>>()}),
    ))
}
