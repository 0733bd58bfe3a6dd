//! Clones and operations: start, read (with bounded progress), list,
//! cancel, retry, and the SSE event stream.

use engine::{CancelPolicy, CloneRequest, Engine, OpFilter, Status, Strategy};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use spin_adapter::http::{within, Reply, Req};

use crate::resources::find;
use crate::shapes::{self, parse_ref};
use crate::Ctx;

type R = Result<Reply, Reply>;

fn err(e: engine::Error) -> Reply {
    Reply::error(&e)
}

/// The longest `ttl_seconds` (100 years: the expiry stays a representable time).
const MAX_TTL_SECONDS: i64 = 3_153_600_000;

/// `POST /resources/{ref}/clones`.
pub fn clone(ctx: &Ctx, req: &Req, r: &str) -> R {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        target: String,
        #[serde(default)]
        strategy: Option<String>,
        #[serde(default)]
        target_time: Option<String>,
        #[serde(default)]
        history: Option<bool>,
        #[serde(default)]
        collections: Option<Vec<String>>,
        #[serde(default)]
        notify: Option<Vec<String>>,
        /// `branch` (default) or `copy`.
        #[serde(default)]
        mode: Option<String>,
        /// A branch starts hydrating at once.
        #[serde(default)]
        hydrate: Option<bool>,
        /// The worker deletes the clone this long after it is made.
        #[serde(default)]
        ttl_seconds: Option<i64>,
        /// A masked clone: `{collection | "*": {json-pointer: transform}}`.
        #[serde(default)]
        mask: Option<Value>,
    }
    let b: Body = req.json()?;
    let mode = match b.mode.as_deref() {
        None => engine::CloneMode::Branch,
        Some(m) => engine::CloneMode::parse(m).map_err(err)?,
    };
    let hydrate = b.hydrate.unwrap_or(false);
    if hydrate && mode == engine::CloneMode::Copy {
        return Err(Reply::problem(
            422,
            "invalid_input",
            "hydrate is for mode branch (a copy is physical already)",
        ));
    }
    let ttl_us = match b.ttl_seconds {
        None => None,
        Some(t) if (1..=MAX_TTL_SECONDS).contains(&t) => Some(t * 1_000_000),
        Some(t) => {
            return Err(Reply::problem(
                422,
                "invalid_input",
                &format!("ttl_seconds must be 1 to {MAX_TTL_SECONDS}, got {t}"),
            ))
        }
    };
    let (tf, tname) = parse_ref(&b.target)?;
    if tf != "native" {
        return Err(Reply::problem(
            422,
            "invalid_input",
            "the data API clones into native:<name> targets",
        ));
    }
    let strategy = match (b.strategy.as_deref().unwrap_or("now"), &b.target_time) {
        ("now", None) => Strategy::Now,
        ("last_snapshot", None) => Strategy::LastSnapshot,
        ("pitr", Some(t)) => Strategy::Pitr(engine::util::parse_rfc3339(t).map_err(err)?),
        ("pitr", None) => {
            return Err(Reply::problem(
                422,
                "invalid_input",
                "strategy pitr needs target_time (RFC 3339)",
            ))
        }
        ("now" | "last_snapshot", Some(_)) => {
            return Err(Reply::problem(
                422,
                "invalid_input",
                "target_time is only for strategy pitr",
            ))
        }
        (s, _) => {
            return Err(Reply::problem(
                422,
                "invalid_input",
                &format!("strategy {s:?} is not one of now, last_snapshot, pitr"),
            ))
        }
    };
    let mut e = ctx.engine()?;
    e.config.webhook_allow = engine::webhooks::AllowList::parse(
        &spin_adapter::vars::variable("webhook_allowed_hosts").unwrap_or_default(),
    );
    let source = find(&e, &ctx.tenant, r)?;
    let idempotency = req.header("idempotency-key").map(|k| {
        let mut h = Sha256::new();
        h.update(r.as_bytes());
        h.update([0]);
        h.update(&req.body);
        (
            format!("data-api:{}", ctx.tenant),
            k.to_string(),
            hex::encode(h.finalize()),
        )
    });
    if let Some((_, k, _)) = &idempotency {
        if k.is_empty() || k.len() > 255 || !k.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(Reply::problem(
                422,
                "invalid_input",
                "Idempotency-Key is 1 to 255 visible ASCII characters",
            ));
        }
    }
    let (op, replayed) = e
        .create_operation(&CloneRequest {
            family: "native".into(),
            kind: "clone".into(),
            tenant: ctx.tenant.clone(),
            source,
            target_family: tf.into(),
            target_name: tname.into(),
            target_spec: json!({"cloned_from": r}),
            strategy,
            history: b.history.unwrap_or(true),
            collections: b.collections,
            exclusive_key: None,
            notify: b.notify.unwrap_or_default(),
            meta: json!({}),
            idempotency,
            mode,
            hydrate,
            ttl_us,
            mask: b.mask,
        })
        .map_err(err)?;
    let mut reply = Reply::json(202, &shapes::operation(&op))
        .with_header("location", &format!("/data/v1/operations/{}", op.id));
    if replayed {
        reply = reply.with_header("idempotent-replayed", "true");
    }
    Ok(reply)
}

/// `POST /resources/{ref}/hydrate`: copy what a branch reads through its
/// ancestors into it, in the background. 202 with the hydration (the one
/// already running, if any); 200 when the resource depends on nothing.
pub fn hydrate(ctx: &Ctx, r: &str) -> R {
    let e = ctx.engine()?;
    let c = find(&e, &ctx.tenant, r)?;
    match e.hydrate(&c).map_err(err)? {
        Some(op) => Ok(Reply::json(202, &shapes::operation(&op))
            .with_header("location", &format!("/data/v1/operations/{}", op.id))),
        None => Ok(Reply::json(
            200,
            &json!({"resource": c.reference(), "branch": null, "message": "the resource holds all its versions itself; nothing to hydrate"}),
        )),
    }
}

/// `POST /resources/{ref}/verify`: an fsck of the resource, as an
/// operation (202, the one already running if any); the worker, or reads
/// of the operation, advance it in bounded chunks; its `report` shows once
/// it ends.
pub fn verify(ctx: &Ctx, r: &str) -> R {
    let e = ctx.engine()?;
    let c = find(&e, &ctx.tenant, r)?;
    let op = e.verify(&c).map_err(err)?;
    let _ = e.nudge(&op.id);
    let op = e.operation(&ctx.tenant, &op.id).map_err(err)?;
    Ok(Reply::json(202, &shapes::operation(&op))
        .with_header("location", &format!("/data/v1/operations/{}", op.id)))
}

/// Read an operation, first making bounded progress when nobody works on it.
pub fn get(ctx: &Ctx, id: &str) -> R {
    let e = ctx.engine()?;
    let mut op = e.operation(&ctx.tenant, id).map_err(err)?;
    if op.status.is_active() {
        let _ = e.nudge(id);
        op = e.operation(&ctx.tenant, id).map_err(err)?;
    }
    let mut v = shapes::operation(&op);
    let notes = e.notifications_of(id).map_err(err)?;
    v["notifications"] = notes
        .iter()
        .map(
            |(d, s, a, le)| json!({"destination": d, "status": s, "attempts": a, "last_error": le}),
        )
        .collect::<Vec<_>>()
        .into();
    Ok(Reply::json(200, &v))
}

/// `?page=&per_page=` of the operation list.
#[derive(serde::Deserialize)]
struct Paging {
    page: Option<i64>,
    per_page: Option<i64>,
}

/// `GET /operations?resource=&status=&page=&per_page=`.
pub fn list(ctx: &Ctx, req: &Req) -> R {
    let e = ctx.engine()?;
    let invalid = |m: String| Reply::problem(422, "invalid_input", &m);
    let q: Paging = req.query_as().map_err(invalid)?;
    let page = within("page", q.page.unwrap_or(1), 1, 1_000_000).map_err(invalid)?;
    let per_page = within("per_page", q.per_page.unwrap_or(20), 1, 100).map_err(invalid)?;
    let mut f = OpFilter::default();
    if let Some(r) = req.query("resource") {
        f.container = Some(find(&e, &ctx.tenant, r)?.id);
    }
    if let Some(s) = req.query("status") {
        f.status = Some(Status::parse(s).map_err(err)?);
    }
    let (ops, total) = e
        .list_operations(&ctx.tenant, &f, (page - 1) * per_page, per_page)
        .map_err(err)?;
    Ok(Reply::json(
        200,
        &json!({
            "operations": ops.iter().map(shapes::operation).collect::<Vec<_>>(),
            "page": page, "per_page": per_page, "total": total,
        }),
    ))
}

pub fn cancel(ctx: &Ctx, id: &str) -> R {
    let e = ctx.engine()?;
    // The data API removes a partial native target; another family's
    // operation keeps its family's rule (only pending ones cancel).
    let policy = match e.operation(&ctx.tenant, id).map_err(err)?.family.as_str() {
        "native" => CancelPolicy::RemoveTarget,
        _ => CancelPolicy::Refuse,
    };
    let op = e.cancel(&ctx.tenant, id, policy).map_err(err)?;
    Ok(Reply::json(200, &shapes::operation(&op)))
}

pub fn retry(ctx: &Ctx, id: &str) -> R {
    let e = ctx.engine()?;
    let op = e.retry(&ctx.tenant, id).map_err(err)?;
    Ok(Reply::json(202, &shapes::operation(&op)))
}

/// `GET /operations/{id}/events`: `text/event-stream`, one event per state
/// change and progress step, `id:` = sequence; resumes after
/// `Last-Event-ID`; ends when the operation ends. While the stream waits it
/// makes the same bounded progress a status read does.
pub fn events(ctx: Ctx, req: &Req, id: &str) -> R {
    {
        let e = ctx.engine()?;
        e.operation(&ctx.tenant, id).map_err(err)?;
    }
    let after = req
        .header("last-event-id")
        .or(req.query("after"))
        .map(|s| {
            s.trim().parse::<i64>().map_err(|_| {
                Reply::problem(
                    422,
                    "invalid_input",
                    "Last-Event-ID is an event sequence number",
                )
            })
        })
        .transpose()?
        .unwrap_or(0);
    Ok(Reply::stream(
        200,
        "text/event-stream",
        spin_adapter::sse::stream(ctx.db, id.to_string(), after, Events),
    )
    .with_header("cache-control", "no-cache"))
}

/// The data API's event format: `id:` = sequence, `event:` = kind, the
/// event's data with its time.
struct Events;

impl spin_adapter::sse::Feed for Events {
    fn event(&mut self, ev: &engine::Event, _last: bool, out: &mut String) {
        let mut data = ev.data.clone();
        if let Value::Object(m) = &mut data {
            m.insert("at".into(), engine::util::rfc3339(ev.at).into());
        }
        out.push_str(&spin_adapter::sse::message(Some(ev.seq), &ev.kind, &data));
    }

    fn nudge(&mut self, e: &Engine, id: &str) -> bool {
        e.nudge(&id).unwrap_or(false)
    }
}
