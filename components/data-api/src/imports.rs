//! Imports: NDJSON lines into a resource, all or nothing.
//!
//! `POST …/import` takes up to 50 000 lines in one request. Up to
//! [`ONE_TRANSACTION`] lines are one write; more are staged — an import
//! opened, staged in batches of that many lines, each its own short
//! transaction, and committed in one small one (abandoned on any error) —
//! so no write holds the lock long, which a remote libSQL server refuses.
//!
//! Loads larger than one request use an import session:
//! `POST …/imports` opens one, `POST …/imports/{id}/lines` stages NDJSON
//! (repeatable), `POST …/imports/{id}/commit` makes it all visible at once,
//! `DELETE …/imports/{id}` abandons it. A session idle for
//! `import_idle_seconds` is abandoned by the worker. While one is open the
//! resource refuses other writes (409).

use engine::{Container, Engine, Write};
use serde_json::{json, Value};
use spin_adapter::http::{Reply, Req};

use crate::resources::find;
use crate::Ctx;

type R = Result<Reply, Reply>;

/// Lines written in one transaction.
pub const ONE_TRANSACTION: usize = 2_000;

fn err(e: engine::Error) -> Reply {
    Reply::error(&e)
}

fn idle_us() -> i64 {
    spin_adapter::vars::variable_i64("import_idle_seconds", 600).max(1) * 1_000_000
}

/// Parse NDJSON into writes; `first_line` numbers the first line in errors.
fn parse(body: &[u8]) -> Result<Vec<Write>, Reply> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Line {
        collection: String,
        key: String,
        #[serde(default)]
        body: Option<Value>,
        #[serde(default)]
        deleted: bool,
    }
    let text = std::str::from_utf8(body).map_err(|e| {
        Reply::problem(
            400,
            "invalid_ndjson",
            &format!("the body is not UTF-8: {e}"),
        )
    })?;
    let mut writes = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad =
            |m: String| Reply::problem(400, "invalid_ndjson", &format!("line {}: {m}", i + 1));
        let l: Line = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        writes.push(match (l.deleted, l.body) {
            (true, None) => Write::Delete {
                collection: l.collection,
                key: l.key,
            },
            (false, Some(b)) => Write::Put {
                collection: l.collection,
                key: l.key,
                body: b.to_string(),
            },
            (true, Some(_)) => return Err(bad("a deleted line has no body".into())),
            (false, None) => return Err(bad("missing body (or \"deleted\": true)".into())),
        });
    }
    if writes.is_empty() {
        return Err(Reply::problem(
            400,
            "invalid_ndjson",
            "the body has no NDJSON lines",
        ));
    }
    Ok(writes)
}

/// An engine error for `writes`, naming the line of an invalid record
/// (`offset` lines before them in the request).
fn write_error(er: engine::Error, writes: &[Write], offset: usize) -> Reply {
    if er.kind == engine::ErrorKind::InvalidInput {
        if let Some(i) = writes.iter().position(|w| check(w).is_err()) {
            return Reply::problem(
                422,
                "invalid_input",
                &format!("line {}: {}", offset + i + 1, er.message),
            );
        }
    }
    err(er)
}

fn check(w: &Write) -> engine::Result<()> {
    match w {
        Write::Put {
            collection, key, ..
        }
        | Write::Delete { collection, key } => {
            engine::util::check_collection(collection)?;
            engine::util::check_key(key)
        }
    }
}

/// Stage `writes` in batches of [`ONE_TRANSACTION`]; returns the writes
/// that changed something.
fn stage(e: &Engine, c: &Container, id: &str, writes: &[Write]) -> Result<usize, Reply> {
    let mut applied = 0;
    for (n, batch) in writes.chunks(ONE_TRANSACTION).enumerate() {
        let (_, done) = e
            .stage_import(c, id, batch, idle_us())
            .map_err(|er| write_error(er, batch, n * ONE_TRANSACTION))?;
        applied += done.applied;
    }
    Ok(applied)
}

/// `POST …/import`: NDJSON, one `{"collection", "key", "body"}` or
/// `{"collection", "key", "deleted": true}` per line; all or nothing.
pub fn import(ctx: &Ctx, req: &Req, r: &str) -> R {
    let writes = parse(&req.body)?;
    let e = ctx.engine()?;
    let c = find(&e, &ctx.tenant, r)?;
    if writes.len() <= ONE_TRANSACTION {
        let done = e
            .write(&c.family, &c.tenant, &c.name, &writes)
            .map_err(|er| write_error(er, &writes, 0))?;
        return Ok(Reply::json(
            200,
            &json!({"imported": writes.len(), "applied": done.applied, "lsn": done.lsn}),
        ));
    }
    if writes.len() > e.config.max_batch {
        return Err(err(engine::Error::new(
            engine::ErrorKind::TooLarge,
            format!(
                "one import request holds at most {} lines, got {}; load more with an import session (POST …/imports)",
                e.config.max_batch,
                writes.len()
            ),
        )));
    }
    let im = e.open_import(&c, idle_us()).map_err(err)?;
    let staged = stage(&e, &c, &im.id, &writes).and_then(|applied| {
        e.commit_import(&c, &im.id)
            .map(|done| (applied, done))
            .map_err(err)
    });
    match staged {
        Ok((applied, done)) => Ok(Reply::json(
            200,
            &json!({"imported": writes.len(), "applied": applied, "lsn": done.lsn}),
        )),
        Err(reply) => {
            // Nothing of it shows; the worker frees what was staged.
            let _ = e.abandon_import(&c, &im.id);
            Err(reply)
        }
    }
}

fn session_json(c: &Container, im: &engine::Import) -> Value {
    json!({
        "id": im.id,
        "resource": c.reference(),
        "staged": im.staged,
        "expires_at": engine::util::rfc3339(im.expires_at),
    })
}

/// `POST …/imports`: open an import session.
pub fn open(ctx: &Ctx, r: &str) -> R {
    let e = ctx.engine()?;
    let c = find(&e, &ctx.tenant, r)?;
    let im = e.open_import(&c, idle_us()).map_err(err)?;
    Ok(Reply::json(201, &session_json(&c, &im)).with_header(
        "location",
        &format!("/data/v1/resources/{r}/imports/{}", im.id),
    ))
}

/// `POST …/imports/{id}/lines`: stage NDJSON lines.
pub fn lines(ctx: &Ctx, req: &Req, r: &str, id: &str) -> R {
    let writes = parse(&req.body)?;
    let e = ctx.engine()?;
    let c = find(&e, &ctx.tenant, r)?;
    if writes.len() > e.config.max_batch {
        return Err(err(engine::Error::new(
            engine::ErrorKind::TooLarge,
            format!(
                "one request stages at most {} lines, got {}",
                e.config.max_batch,
                writes.len()
            ),
        )));
    }
    let mut last = None;
    for (n, batch) in writes.chunks(ONE_TRANSACTION).enumerate() {
        let (im, _) = e
            .stage_import(&c, id, batch, idle_us())
            .map_err(|er| write_error(er, batch, n * ONE_TRANSACTION))?;
        last = Some(im);
    }
    let im = last.ok_or_else(|| Reply::problem(400, "invalid_ndjson", "no lines"))?;
    Ok(Reply::json(200, &session_json(&c, &im)))
}

/// `POST …/imports/{id}/commit`: everything staged shows at once.
pub fn commit(ctx: &Ctx, r: &str, id: &str) -> R {
    let e = ctx.engine()?;
    let c = find(&e, &ctx.tenant, r)?;
    let done = e.commit_import(&c, id).map_err(err)?;
    Ok(Reply::json(
        200,
        &json!({"id": id, "imported": done.applied, "lsn": done.lsn,
                "committed_at": engine::util::rfc3339(done.committed_at)}),
    ))
}

/// `DELETE …/imports/{id}`: abandon; nothing of it ever shows.
pub fn abandon(ctx: &Ctx, r: &str, id: &str) -> R {
    let e = ctx.engine()?;
    let c = find(&e, &ctx.tenant, r)?;
    e.abandon_import(&c, id).map_err(err)?;
    Ok(Reply::empty(204))
}
