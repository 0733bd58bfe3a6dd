//! `GET /resources/{ref}/diff?against={ref|lsn|time}`: what differs
//! between a resource and another side, streamed as NDJSON — one line a
//! differing key, then one summary line. Without `against`, a branch is
//! compared with the resource it was branched from.

use std::collections::BTreeMap;

use engine::diff::{basis, summarize, Basis, Side};
use engine::{AsOf, Engine};
use serde_json::{json, Value};
use spin_adapter::http::{Reply, Req};
use spin_adapter::store::{SpinDb, SpinEnv};

use crate::resources::{as_of, find};
use crate::Ctx;

type R = Result<Reply, Reply>;

/// Candidate keys examined per streamed chunk.
const PAGE: i64 = 500;

#[derive(serde::Deserialize)]
struct Query {
    against: Option<String>,
}

pub(crate) fn body(b: &Option<String>) -> Result<Value, engine::Error> {
    match b {
        None => Ok(Value::Null),
        Some(t) => serde_json::from_str(t)
            .map_err(|e| engine::Error::corrupt(format!("a stored body is not JSON: {e}"))),
    }
}

pub fn diff(ctx: Ctx, req: &Req, r: &str) -> R {
    let invalid = |m: &str| Reply::problem(422, "invalid_input", m);
    let q: Query = req.query_as().map_err(|m| invalid(&m))?;
    let (ours, theirs, label) = {
        let e = ctx.engine()?;
        let c = find(&e, &ctx.tenant, r)?;
        let ours = Side::new(
            c.clone(),
            e.resolve(&c, as_of(req)?).map_err(|er| Reply::error(&er))?,
        );
        let (theirs, label) = match q.against.as_deref() {
            None | Some("") => match e.diff_parent(&c).map_err(|er| Reply::error(&er))? {
                Some(p) => {
                    let label = json!(p.container.reference());
                    (p, label)
                }
                None => {
                    return Err(invalid(&format!(
                        "{} was not branched from another resource: name what to compare it with (against=<ref|lsn|time>)",
                        c.reference()
                    )))
                }
            },
            Some(a) if a.contains(':') && !a.starts_with(|ch: char| ch.is_ascii_digit()) => {
                let other = find(&e, &ctx.tenant, a)?;
                (Side::new(other, i64::MAX).seen_by(&c), json!(a))
            }
            Some(a) => {
                let point = if a.bytes().all(|b| b.is_ascii_digit()) {
                    AsOf::Lsn(a.parse().map_err(|_| invalid("against: the LSN is out of range"))?)
                } else {
                    AsOf::Time(engine::util::parse_rfc3339(a).map_err(|er| {
                        invalid(&format!("against is a resource ref, an LSN or an RFC 3339 time: {}", er.message))
                    })?)
                };
                let at = e.resolve(&c, point).map_err(|er| Reply::error(&er))?;
                (Side::new(c.clone(), at), json!({"ref": c.reference(), "lsn": at}))
            }
        };
        (ours, theirs, label)
    };
    let b = basis(&ours, &theirs);
    let db: SpinDb = ctx.db;
    let mut cursor: Option<(String, String)> = None;
    let mut summary: BTreeMap<String, [i64; 3]> = BTreeMap::new();
    let mut done = false;
    Ok(Reply::stream(
        200,
        "application/x-ndjson",
        Box::new(move || {
            if done {
                return Ok(None);
            }
            // A failure mid-way aborts the response (never a short diff
            // that ends cleanly).
            let e = Engine::open(&db, &SpinEnv)?;
            let page = e.diff_page(
                &ours,
                &theirs,
                b,
                cursor.as_ref().map(|(c, k)| (c.as_str(), k.as_str())),
                PAGE,
            )?;
            summarize(&page.entries, &mut summary);
            let mut out = Vec::new();
            for x in &page.entries {
                let line = json!({
                    "op": x.change.as_str(),
                    "collection": x.collection,
                    "key": x.key,
                    "ours": body(&x.ours)?,
                    "theirs": body(&x.theirs)?,
                });
                out.extend(line.to_string().as_bytes());
                out.push(b'\n');
            }
            cursor = page.next;
            if cursor.is_none() {
                done = true;
                let s: serde_json::Map<String, Value> = summary
                    .iter()
                    .map(|(c, [a, r, ch])| (c.clone(), json!({"added": a, "removed": r, "changed": ch})))
                    .collect();
                let line = json!({
                    "summary": s,
                    "against": label,
                    "scan": b == Basis::Scan,
                });
                out.extend(line.to_string().as_bytes());
                out.push(b'\n');
            }
            Ok(Some(out))
        }),
    ))
}
