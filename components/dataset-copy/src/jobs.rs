//! Copy jobs: `PUT …/datasets/{name}/copy`, `GET /jobs/{id}`, the SSE
//! `listen` stream, and the list of a project's copies.

use engine::{CloneRequest, Engine, Operation, Status, Strategy};
use serde_json::{json, Value};
use spin_adapter::http::{within, Reply, Req};
use spin_adapter::sse::message;
use spin_adapter::store::{SpinDb, SpinEnv};

use crate::datasets::{acl, check_dataset_name, container_name, project};
use crate::{bad, error, fail, Ctx, FAMILY};

fn state(op: &Operation) -> &'static str {
    match op.status {
        Status::Pending => "pending",
        Status::InProgress => "running",
        Status::Succeeded => "completed",
        Status::Failed | Status::Canceled => "failed",
    }
}

fn ts(us: i64) -> String {
    engine::util::rfc3339(us)
}

/// `PUT /projects/{p}/datasets/{name}/copy` `{"targetDataset", "skipHistory"}`.
pub fn copy(ctx: &Ctx, req: &Req, p: &str, name: &str) -> Result<Reply, Reply> {
    /// Sanity's copy request (other fields are ignored).
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct CopyRequest {
        target_dataset: Option<String>,
        skip_history: Option<bool>,
        /// Spinoff's extension: a masked copy, `{document type | "*":
        /// {json-pointer: transform}}`.
        mask: Option<serde_json::Value>,
    }
    let b: CopyRequest = spin_adapter::body::parse(&req.body, false).map_err(|e| bad(&e))?;
    let target = b
        .target_dataset
        .ok_or_else(|| bad("targetDataset is required: the name of the new dataset"))?;
    let skip = b.skip_history.unwrap_or(false);
    check_dataset_name(name)?;
    check_dataset_name(&target)?;
    let e = ctx.engine()?;
    project(ctx, &e, p)?;
    let source = e
        .container(FAMILY, &ctx.tenant, &container_name(p, name))
        .map_err(|_| fail(404, "Not Found", &format!("dataset {name:?} not found")))?;
    let (op, _) = e
        .create_operation(&CloneRequest {
            family: FAMILY.into(),
            kind: "dataset_copy".into(),
            tenant: ctx.tenant.clone(),
            source: source.clone(),
            target_family: FAMILY.into(),
            target_name: container_name(p, &target),
            target_spec: json!({"aclMode": acl(&source), "projectId": p}),
            strategy: Strategy::Now,
            history: !skip,
            collections: None,
            exclusive_key: None,
            notify: vec![],
            meta: json!({"projectId": p, "sourceDataset": name, "targetDataset": target, "authors": [ctx.tenant]}),
            idempotency: None,
            mode: spin_adapter::vars::clone_mode(),
            hydrate: false,
            ttl_us: None,
            mask: b.mask.clone(),
        })
        .map_err(|er| match er.kind {
            engine::ErrorKind::AlreadyExists => fail(409, "Conflict", &format!("dataset {target:?} already exists; a copy creates a new dataset")),
            _ => error(&er),
        })?;
    Ok(Reply::json(
        200,
        &json!({"datasetName": name, "message": format!("Starting copying dataset {name} to {target}..."), "aclMode": acl(&source), "jobId": op.id}),
    ))
}

fn job_json(op: &Operation) -> Value {
    json!({"id": op.id, "state": state(op), "authors": op.meta["authors"], "created_at": ts(op.created_at), "updated_at": ts(op.updated_at)})
}

fn find_job(e: &Engine, id: &str) -> Result<Operation, Reply> {
    match e.operation_by_id(id) {
        Ok(Some(op)) if op.family == FAMILY && id.len() == 32 => Ok(op),
        _ => Err(fail(404, "Not Found", &format!("job {id} not found"))),
    }
}

/// `GET /jobs/{id}`: the 128-bit job id is the credential. Reading makes
/// bounded progress when no worker holds the job.
pub fn get(_req: &Req, id: &str) -> Result<Reply, Reply> {
    let db = SpinDb::open().map_err(|e| error(&e))?;
    let e = Engine::open(&db, &SpinEnv).map_err(|er| error(&er))?;
    let op = find_job(&e, id)?;
    if op.status.is_active() {
        let _ = e.nudge(id);
    }
    let op = find_job(&e, id)?;
    Ok(Reply::json(200, &job_json(&op)))
}

/// `GET /jobs/{id}/listen`: `welcome`, then `job` at each progress step,
/// then `done`.
pub fn listen(req: &Req, id: &str) -> Result<Reply, Reply> {
    let db = SpinDb::open().map_err(|e| error(&e))?;
    {
        let e = Engine::open(&db, &SpinEnv).map_err(|er| error(&er))?;
        find_job(&e, id)?;
    }
    let after: i64 = req
        .header("last-event-id")
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let feed = Listen { id: id.to_string() };
    Ok(Reply::stream(
        200,
        "text/event-stream",
        spin_adapter::sse::stream(db, id.to_string(), after, feed),
    )
    .with_header("cache-control", "no-cache"))
}

/// Sanity's listen format: `welcome`, `job` events, `done`.
struct Listen {
    id: String,
}

impl spin_adapter::sse::Feed for Listen {
    fn opening(&mut self) -> Option<String> {
        let listener = spin_adapter::ids::random_hex(8);
        Some(message(None, "welcome", &json!({"listener_id": listener})))
    }

    fn event(&mut self, ev: &engine::Event, last: bool, out: &mut String) {
        let id = &self.id;
        let progress = ev.data["percent"].as_f64().unwrap_or(0.0).floor() as i64;
        let ev_state = match ev.kind.as_str() {
            "created" => "pending",
            "succeeded" => "completed",
            "failed" | "canceled" => "failed",
            _ => "running",
        };
        let mut data = json!({"job_id": id, "state": ev_state, "progress": if ev_state == "completed" { 100 } else { progress }});
        if ev_state == "failed" {
            data["message"] = ev.data["error"]
                .as_str()
                .unwrap_or("the copy was canceled")
                .into();
        }
        out.push_str(&message(Some(ev.seq), "job", &data));
        if last {
            out.push_str(&message(
                None,
                "done",
                &json!({"job_id": id, "state": ev_state}),
            ));
        }
    }

    fn closing(&mut self, op: &Operation) -> Option<String> {
        Some(message(
            None,
            "done",
            &json!({"job_id": self.id, "state": state(op)}),
        ))
    }

    fn nudge(&mut self, e: &Engine, id: &str) -> bool {
        e.nudge(id).unwrap_or(false)
    }
}

/// `GET /projects/{p}/datasets/copy?offset=&limit=`.
pub fn list(ctx: &Ctx, req: &Req, p: &str) -> Result<Reply, Reply> {
    #[derive(serde::Deserialize)]
    struct Paging {
        offset: Option<i64>,
        limit: Option<i64>,
    }
    let q: Paging = req.query_as().map_err(|e| bad(&e))?;
    let offset = within("offset", q.offset.unwrap_or(0), 0, 1_000_000).map_err(|e| bad(&e))?;
    let limit = within("limit", q.limit.unwrap_or(10), 1, 1000).map_err(|e| bad(&e))?;
    let e = ctx.engine()?;
    project(ctx, &e, p)?;
    let f = engine::OpFilter {
        family: Some(FAMILY.into()),
        ..Default::default()
    };
    // A project's jobs: filter the tenant's by project (tenants own few projects).
    let (ops, _) = e
        .list_operations(&ctx.tenant, &f, 0, 1000)
        .map_err(|er| error(&er))?;
    let list: Vec<Value> = ops
        .iter()
        .filter(|o| o.meta["projectId"] == p)
        .skip(offset as usize)
        .take(limit as usize)
        .map(|o| {
            json!({"id": o.id, "state": state(o), "createdAt": ts(o.created_at), "updatedAt": ts(o.updated_at),
                   "sourceDataset": o.meta["sourceDataset"], "targetDataset": o.meta["targetDataset"], "withHistory": o.history})
        })
        .collect();
    Ok(Reply::json(200, &Value::Array(list)))
}
