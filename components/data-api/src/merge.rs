//! `POST /resources/{ref}/merge` `{"strategy"?: "ours" | "theirs",
//! "limit"?: n, "paths"?: [json-pointer]}` (`paths`: what of a masked
//! branch may flow back): a branch's changes since its merge base applied onto the
//! resource it was cloned from, at one LSN. Keys both sides changed are
//! conflicts: 409 with the first `limit` of them (and `next` when there
//! are more, for `GET /resources/{ref}/merge/conflicts?after=`), unless
//! the strategy resolves them.
//!
//! A merge of more keys than one transaction takes (the engine's
//! `max_batch`), or one asked for with `"background": true`, runs in
//! chunks the worker advances: 202 with the merge, whose progress
//! `GET /resources/{ref}/merge` shows and `DELETE` cancels. Nothing of it
//! shows in the parent until all of it does.

use engine::merge::{Outcome, Resolve};
use engine::{ErrorKind, MergeRun};
use engine::diff::Entry;
use serde_json::{json, Value};
use spin_adapter::http::{within, Reply, Req};

use crate::diff::body;
use crate::resources::find;
use crate::shapes;
use crate::Ctx;

type R = Result<Reply, Reply>;

fn invalid(m: &str) -> Reply {
    Reply::problem(422, "invalid_input", m)
}

fn entries(list: &[Entry]) -> Result<Vec<Value>, Reply> {
    list.iter()
        .map(|x| {
            Ok(json!({
                "collection": x.collection,
                "key": x.key,
                "ours": body(&x.ours).map_err(|e| Reply::error(&e))?,
                "theirs": body(&x.theirs).map_err(|e| Reply::error(&e))?,
            }))
        })
        .collect()
}

fn next(n: &Option<(String, String)>) -> Value {
    match n {
        Some((c, k)) => json!({"collection": c, "key": k}),
        None => Value::Null,
    }
}

pub fn merge(ctx: &Ctx, req: &Req, r: &str) -> R {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        strategy: Option<String>,
        limit: Option<i64>,
        paths: Option<Vec<String>>,
        background: Option<bool>,
    }
    let b: Body = spin_adapter::body::parse(&req.body, true)
        .map_err(|m| Reply::problem(400, "invalid_json", &m))?;
    let resolve = match b.strategy.as_deref() {
        None => None,
        Some(s) => Some(Resolve::parse(s).map_err(|e| invalid(&e.message))?),
    };
    let limit = within("limit", b.limit.unwrap_or(100), 1, 1000).map_err(|m| invalid(&m))?;
    let e = ctx.engine()?;
    let c = find(&e, &ctx.tenant, r)?;
    let start = || -> R {
        let run = e
            .start_merge(&c.family, &c.tenant, &c.name, resolve, b.paths.as_deref())
            .map_err(|er| Reply::error(&er))?;
        Ok(Reply::json(202, &json!({"ref": c.reference(), "merge": run_json(&e, &run)?})))
    };
    if b.background == Some(true) {
        return start();
    }
    let outcome = match e.merge(&c.family, &c.tenant, &c.name, resolve, b.paths.as_deref(), limit) {
        Ok(o) => o,
        // Too many keys for one transaction: the worker runs it in chunks.
        Err(er) if er.kind == ErrorKind::TooLarge => return start(),
        Err(er) => return Err(Reply::error(&er)),
    };
    match outcome {
        Outcome::Merged(m) => {
            let cols = e.collections(&m.into).map_err(|er| Reply::error(&er))?;
            Ok(Reply::json(
                200,
                &json!({
                    "ref": c.reference(),
                    "into": shapes::resource(&m.into, &cols),
                    "lsn": m.lsn,
                    "applied": m.applied,
                    "resolved": m.resolved,
                    "merge_base": m.next_base,
                }),
            ))
        }
        Outcome::Conflicts { entries: list, next: n, into } => Ok(Reply::json(
            409,
            &json!({
                "error": "merge_conflict",
                "message": format!(
                    "{} and {} both changed {} key(s) since the merge base; nothing was merged. Resolve them with \"strategy\": \"ours\" (this resource's versions win) or \"theirs\" (the parent's stay)",
                    c.reference(),
                    into.reference(),
                    if n.is_some() { format!("more than {}", list.len()) } else { list.len().to_string() }
                ),
                "into": into.reference(),
                "conflicts": entries(&list)?,
                "next": next(&n),
            }),
        )),
    }
}

/// `GET /resources/{ref}/merge/conflicts?after_collection=&after_key=&limit=`:
/// a page of a merge's conflicts (up to `limit` keys the branch wrote
/// examined: a page may hold fewer conflicts and still not be the last).
pub fn conflicts(ctx: &Ctx, req: &Req, r: &str) -> R {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Query {
        after_collection: Option<String>,
        after_key: Option<String>,
        limit: Option<i64>,
        /// A masked branch's `paths`, comma-separated.
        paths: Option<String>,
    }
    let q: Query = req.query_as().map_err(|m| invalid(&m))?;
    let limit = within("limit", q.limit.unwrap_or(100), 1, 1000).map_err(|m| invalid(&m))?;
    let after = match (&q.after_collection, &q.after_key) {
        (Some(c), Some(k)) => Some((c.as_str(), k.as_str())),
        (None, None) => None,
        _ => return Err(invalid("after_collection and after_key go together")),
    };
    let e = ctx.engine()?;
    let c = find(&e, &ctx.tenant, r)?;
    let paths: Option<Vec<String>> = q
        .paths
        .as_deref()
        .map(|p| p.split(',').map(str::to_string).collect());
    let page = e
        .merge_conflicts(&c, paths.as_deref(), after, limit)
        .map_err(|er| Reply::error(&er))?;
    Ok(Reply::json(
        200,
        &json!({"conflicts": entries(&page.entries)?, "next": next(&page.next)}),
    ))
}

/// A chunked merge as the API shows it.
fn run_json(e: &engine::Engine, run: &MergeRun) -> Result<Value, Reply> {
    let into = e
        .container_by_id(run.into)
        .map_err(|er| Reply::error(&er))?
        .map(|c| c.reference());
    Ok(json!({
        "id": run.id,
        "state": run.state,
        "into": into,
        "merge_base": run.base,
        "examined": run.examined,
        "applied": run.applied,
        "lsn": run.lsn,
        "message": run.message,
        "started_at": engine::util::rfc3339(run.started_at),
        "updated_at": engine::util::rfc3339(run.updated_at),
    }))
}

/// `GET /resources/{ref}/merge`: the resource's chunked merge under way
/// (advanced a bounded step), or the last that ended.
pub fn status(ctx: &Ctx, r: &str) -> R {
    let e = ctx.engine()?;
    let c = find(&e, &ctx.tenant, r)?;
    // Where no worker runs, reading the status advances the merge.
    let keys = spin_adapter::vars::variable_i64("merge_chunk_keys", 1000).clamp(1, 50_000);
    match e.nudge_merge(&c, keys).map_err(|er| Reply::error(&er))? {
        Some(run) => Ok(Reply::json(200, &json!({"ref": c.reference(), "merge": run_json(&e, &run)?}))),
        None => Err(Reply::problem(
            404,
            "not_found",
            &format!("{} never ran a chunked merge", c.reference()),
        )),
    }
}

/// `DELETE /resources/{ref}/merge`: cancel the chunked merge under way;
/// nothing of it shows.
pub fn cancel(ctx: &Ctx, r: &str) -> R {
    let e = ctx.engine()?;
    let c = find(&e, &ctx.tenant, r)?;
    let run = e.cancel_merge(&c).map_err(|er| Reply::error(&er))?;
    Ok(Reply::json(200, &json!({"ref": c.reference(), "merge": run_json(&e, &run)?})))
}
