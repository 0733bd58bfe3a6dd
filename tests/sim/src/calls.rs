//! The calls an actor makes — every write path of the API and every duty
//! of the worker — and how one runs against the engine.

use engine::{
    CancelPolicy, CloneMode, CloneRequest, Committed, Config, Engine, ErrorKind, Operation,
    Strategy, Write,
};

use crate::sched::{SimDb, SimEnv};

/// The mask of a masked clone: bodies are `{"w": token, "v": n}`.
pub const MASK: &str = r#"{"a": {"/v": "hash"}, "*": {"/w": "null"}}"#;

/// An import abandoned after this long without a request.
pub const IMPORT_IDLE_US: i64 = 3_000_000;

/// One call an actor makes: a request of the API, or a worker's duty.
#[derive(Debug, Clone)]
pub enum Call {
    Write {
        c: usize,
        name: String,
        writes: Vec<Write>,
    },
    Branch {
        c: usize,
        name: String,
        target: String,
        history: bool,
        filter: bool,
        /// A masked clone ([`MASK`]).
        masked: bool,
        strategy: Strategy,
        copy: bool,
        hydrate: bool,
        ttl_us: Option<i64>,
    },
    Snapshot {
        name: String,
    },
    Hydrate {
        name: String,
    },
    Delete {
        c: usize,
        name: String,
    },
    ImportOpen {
        c: usize,
        name: String,
    },
    ImportStage {
        id: String,
        name: String,
        writes: Vec<Write>,
    },
    ImportEnd {
        id: String,
        name: String,
        commit: bool,
    },
    /// Export and one get as of `at` (the head when the round began).
    Read {
        c: usize,
        name: String,
        at: i64,
    },
    Cancel {
        op: String,
    },
    Retry {
        op: String,
    },
    Nudge {
        op: String,
    },
    /// Start a verification (an fsck operation the workers advance).
    Verify {
        name: String,
    },
    /// Reset a branch to its parent's head.
    Reset {
        c: usize,
        name: String,
    },
    /// Merge a container into its parent (`resolve`: the strategy).
    Merge {
        c: usize,
        name: String,
        resolve: Option<engine::Resolve>,
    },
    /// Start a chunked merge (the worker's `MergeStep`s advance it).
    MergeStart {
        c: usize,
        name: String,
        resolve: Option<engine::Resolve>,
    },
    /// Cancel a container's chunked merge.
    MergeCancel {
        c: usize,
        name: String,
    },
    /// Protect a container, or stop protecting it.
    Protect {
        c: usize,
        name: String,
        protected: bool,
    },
    Steps {
        n: u8,
        k: i64,
    },
    Tick {
        budget_us: i64,
    },
    ExpireImports,
    /// Advance the oldest chunked merge by up to `limit` keys.
    MergeStep {
        limit: i64,
    },
    Prune,
    Purge,
    Expire,
}

/// What the engine answered.
#[derive(Debug, Clone)]
pub enum Ack {
    Committed(Committed),
    Opened(String),
    Op(Option<Box<Operation>>),
    Read(Vec<(String, String, i64, String)>),
    /// A reset's LSN.
    Reset(i64),
    /// A merge: (its LSN, keys written, the branch's merge base after).
    Merged(Option<i64>, usize, i64),
    /// A merge refused for conflicts.
    Conflicts,
    /// A chunked merge started (its import's id): a small merge too large
    /// for one transaction starts one too.
    MergeStarted(String),
    /// A chunked merge as a step or a cancel left it.
    MergeRun(Option<engine::MergeRun>),
    Done,
}

#[derive(Debug, Clone)]
pub enum Outcome {
    Ok(Ack),
    Err(ErrorKind, String),
    /// The actor crashed (its connection dropped) before answering.
    Crashed,
}

/// The engine's tunables in the simulation: tiny chunks and leases, so
/// operations span many steps; `limits` as the seed chose them.
pub fn cfg_with(limits: engine::limits::Limits) -> Config {
    Config {
        limits,
        lease_us: 2_000_000,
        initial_chunk: 3,
        min_chunk: 1,
        max_chunk: 8,
        nudge_records: 4,
        max_branch_depth: 3,
        // Merges past it are refused now and then.
        max_batch: 12,
        ..Config::default()
    }
}

/// What the checker and the settling worker use: no limits (they must not
/// be refused).
pub fn cfg() -> Config {
    cfg_with(engine::limits::Limits::unlimited())
}

pub fn body(token: u64, v: u16) -> String {
    format!("{{\"w\":{token},\"v\":{v}}}")
}

/// Run one call on `db` (already wrapped for the scheduler).
pub fn perform(
    db: &SimDb,
    env: &SimEnv,
    limits: engine::limits::Limits,
    walk_by_key: Option<bool>,
    call: &Call,
    worker: &str,
) -> Result<Ack, engine::Error> {
    let e = Engine::open(db, env)?.with_config(Config {
        walk_by_key,
        ..cfg_with(limits)
    });
    // What opening committed (a migration check) is not the call's.
    db.committed.set(None);
    let find = |name: &str| e.container("native", "t", name);
    Ok(match call {
        Call::Write { name, writes, .. } => Ack::Committed(e.write("native", "t", name, writes)?),
        Call::Branch {
            name,
            target,
            history,
            filter,
            masked,
            strategy,
            copy,
            hydrate,
            ttl_us,
            ..
        } => {
            let source = find(name)?;
            let req = CloneRequest {
                family: "native".into(),
                kind: "clone".into(),
                tenant: "t".into(),
                source,
                target_family: "native".into(),
                target_name: target.clone(),
                target_spec: serde_json::json!({}),
                strategy: *strategy,
                history: *history,
                collections: filter.then(|| vec!["a".into(), "c".into()]),
                exclusive_key: None,
                notify: vec![],
                meta: serde_json::json!({}),
                idempotency: None,
                mode: if *copy {
                    CloneMode::Copy
                } else {
                    CloneMode::Branch
                },
                hydrate: *hydrate,
                ttl_us: *ttl_us,
                mask: masked.then(|| serde_json::from_str(MASK).expect("the mask")),
            };
            Ack::Op(Some(Box::new(e.create_operation(&req)?.0)))
        }
        Call::Snapshot { name } => {
            e.snapshot(&find(name)?, None)?;
            Ack::Done
        }
        Call::Hydrate { name } => Ack::Op(e.hydrate(&find(name)?)?.map(Box::new)),
        Call::Delete { name, .. } => {
            e.delete_container("native", "t", name)?;
            Ack::Done
        }
        Call::ImportOpen { name, .. } => {
            Ack::Opened(e.open_import(&find(name)?, IMPORT_IDLE_US)?.id)
        }
        Call::ImportStage { id, name, writes } => {
            Ack::Committed(e.stage_import(&find(name)?, id, writes, IMPORT_IDLE_US)?.1)
        }
        Call::ImportEnd { id, name, commit } => {
            let c = find(name)?;
            if *commit {
                Ack::Committed(e.commit_import(&c, id)?)
            } else {
                e.abandon_import(&c, id)?;
                Ack::Done
            }
        }
        Call::Read { name, at, .. } => {
            let c = find(name)?;
            let mut out = Vec::new();
            let mut after: Option<(String, String)> = None;
            loop {
                let page = e.export_page(
                    &c,
                    *at,
                    after.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
                    4,
                )?;
                let Some(last) = page.last() else { break };
                after = Some((last.collection.clone(), last.key.clone()));
                for v in &page {
                    out.push((
                        v.collection.clone(),
                        v.key.clone(),
                        v.lsn,
                        v.body.clone().unwrap_or_default(),
                    ));
                }
            }
            Ack::Read(out)
        }
        Call::Cancel { op } => Ack::Op(Some(Box::new(e.cancel(
            "t",
            op,
            CancelPolicy::RemoveTarget,
        )?))),
        Call::Retry { op } => Ack::Op(Some(Box::new(e.retry("t", op)?))),
        Call::Verify { name } => Ack::Op(Some(Box::new(e.verify(&find(name)?)?))),
        Call::Reset { name, .. } => {
            Ack::Reset(e.reset("native", "t", name, engine::AsOf::Head, false)?.1)
        }
        Call::Merge { name, resolve, .. } => match e.merge("native", "t", name, *resolve, None, 5) {
            Ok(engine::merge::Outcome::Merged(m)) => Ack::Merged(m.lsn, m.applied, m.next_base),
            Ok(engine::merge::Outcome::Conflicts { .. }) => Ack::Conflicts,
            // As the data API does: too large for one transaction, it runs
            // in chunks.
            Err(x) if x.kind == ErrorKind::TooLarge => {
                Ack::MergeStarted(e.start_merge("native", "t", name, *resolve, None)?.id)
            }
            Err(x) => return Err(x),
        },
        Call::MergeStart { name, resolve, .. } => {
            Ack::MergeStarted(e.start_merge("native", "t", name, *resolve, None)?.id)
        }
        Call::MergeCancel { name, .. } => Ack::MergeRun(Some(e.cancel_merge(&find(name)?)?)),
        Call::MergeStep { limit } => Ack::MergeRun(e.merge_step(*limit)?),
        Call::Protect {
            name, protected, ..
        } => {
            e.set_protection("native", "t", name, *protected)?;
            Ack::Done
        }
        Call::Nudge { op } => {
            e.nudge(op)?;
            Ack::Done
        }
        Call::Steps { n, k } => {
            for _ in 0..*n {
                let Some(id) = e.next_runnable(worker)? else {
                    break;
                };
                if e.claim(&id, worker)? {
                    let r = e.step(&id, worker, Some(*k));
                    let _ = e.release(&id, worker);
                    match r {
                        Err(err)
                            if matches!(
                                err.kind,
                                ErrorKind::LeaseLost | ErrorKind::InvalidState { .. }
                            ) => {}
                        Err(err) if err.is_retryable() => return Err(err),
                        Err(err) => e.fail(&id, &err.message)?,
                        Ok(_) => {}
                    }
                }
            }
            Ack::Done
        }
        Call::Tick { budget_us } => {
            e.tick(worker, *budget_us)?;
            Ack::Done
        }
        Call::ExpireImports => {
            e.expire_imports(4)?;
            Ack::Done
        }
        Call::Prune => {
            e.prune_step(2_000_000, 50)?;
            Ack::Done
        }
        Call::Purge => {
            e.purge_step(20)?;
            Ack::Done
        }
        Call::Expire => {
            e.expire_step(4)?;
            Ack::Done
        }
    })
}
