//! The actors and the run: each round every actor gets one call (or none),
//! the calls run interleaved statement by statement under the scheduler,
//! then what they acknowledged goes into the model, in commit order, and
//! the checker compares.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

use engine::native::NativeDb;
use engine::{Db, Engine, ErrorKind, Strategy, Write};

use crate::calls::{body, cfg, perform, Ack, Call, Outcome};
use crate::check;
use crate::model::{batch_versions, Base, Import, Model, M, V};
use crate::sched::{Crashed, Park, Shared, SimDb, SimEnv};
use crate::{Backend, Plan};

pub const T0: i64 = 1_790_000_000_000_000;
pub const COLLECTIONS: [&str; 3] = ["a", "b", "c"];
pub const KEYS: u8 = 6;
const CLIENTS: usize = 3;
const WORKERS: usize = 2;
const ACTORS: usize = CLIENTS + WORKERS;
const MAX_CONTAINERS: usize = 12;

/// A finished call: what it was, what it answered, and the sequence
/// number of its last commit, if it committed anything.
struct Done {
    index: usize,
    actor: usize,
    call: Call,
    out: Outcome,
    committed: Option<u64>,
}

struct Slots {
    calls: Vec<Option<(usize, Call)>>,
    done: Vec<Option<Done>>,
}

/// An actor's thread: park between calls, run each call given, crash and
/// restart when told.
fn actor(me: usize, store: &Store, shared: &Shared, slots: &Mutex<Slots>) {
    let open = || store.open();
    let mut conn = open();
    let mut incarnation = 0;
    loop {
        if shared.baton.park(me, Park::Idle).is_err() {
            return;
        }
        let Some((index, call)) = slots.lock().unwrap().calls[me].take() else {
            continue;
        };
        let worker = format!("w{me}-{incarnation}");
        let sdb = SimDb {
            inner: &*conn,
            me,
            baton: &shared.baton,
            committed: std::cell::Cell::new(None),
            in_tx: std::cell::Cell::new(false),
        };
        let r = catch_unwind(AssertUnwindSafe(|| {
            perform(&sdb, &shared.env, shared.limits, shared.walk_by_key, &call, &worker)
        }));
        let committed = sdb.committed.get();
        let out = match r {
            Ok(Ok(ack)) => Outcome::Ok(ack),
            Ok(Err(e)) => Outcome::Err(e.kind, e.message),
            Err(p) if p.is::<Crashed>() => {
                if shared.baton.st.lock().unwrap().stop {
                    return;
                }
                // The process died: its connection goes (SQLite rolls back
                // what it had not committed) and it starts again.
                conn = open();
                incarnation += 1;
                let mut st = shared.baton.st.lock().unwrap();
                if st.holder == Some(me) {
                    st.holder = None;
                }
                Outcome::Crashed
            }
            Err(p) => std::panic::resume_unwind(p),
        };
        slots.lock().unwrap().done[me] = Some(Done {
            index,
            actor: me,
            call,
            out,
            committed,
        });
    }
}

/// The call indices a plan generates (for the shrinker).
pub fn calls_in(plan: &Plan) -> Vec<usize> {
    (0..plan.rounds * ACTORS).collect()
}

/// The round a failure message names ("round N: …").
pub fn failed_round(msg: &str) -> usize {
    msg.strip_prefix("round ")
        .and_then(|s| s.split(':').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(usize::MAX / 2)
}

struct Sim<'a> {
    plan: &'a Plan,
    shared: &'a Shared,
    slots: &'a Mutex<Slots>,
    db: Box<dyn Db>,
    m: Model,
    trace: Vec<String>,
    token: u64,
    pruned: bool,
}

/// Where the run's database lives; every actor and the checker opens its
/// own connection.
pub enum Store {
    File(tempfile::TempDir),
    Sqld(spinoff_e2e::services::Server),
    /// A PostgreSQL server (kept running while the run lasts) and the
    /// run's database on it.
    Postgres(#[allow(dead_code)] spinoff_e2e::postgres::Postgres, String),
}

impl Store {
    fn new(backend: Backend) -> Store {
        match backend {
            Backend::File => Store::File(tempfile::tempdir().expect("tempdir")),
            Backend::Sqld => Store::Sqld(
                spinoff_e2e::services::start_sqld_alone().expect("a sqld (scripts/services)"),
            ),
            Backend::Postgres => {
                let pg = spinoff_e2e::postgres::Postgres::start()
                    .expect("a PostgreSQL server (scripts/services)");
                let url = pg.create_database();
                Store::Postgres(pg, url)
            }
        }
    }

    /// A new connection: on a file, one that never waits for the write
    /// lock (the waiting actor would hold the baton) and does not wait for
    /// the disk either (a crash here is a process's, not the machine's:
    /// WAL keeps every commit); on sqld, a new Hrana stream (closed when
    /// dropped, as a dead process's connection is).
    fn open(&self) -> Box<dyn Db> {
        match self {
            Store::File(dir) => {
                let db = NativeDb::open(&dir.path().join("db.sqlite")).expect("open");
                db.connection()
                    .busy_timeout(std::time::Duration::ZERO)
                    .expect("busy timeout");
                db.connection()
                    .pragma_update(None, "synchronous", "OFF")
                    .expect("synchronous");
                Box::new(db)
            }
            Store::Sqld(server) => Box::new(spinoff_e2e::services::HranaDb::open(&server.addr)),
            // Never waiting, as on the file; a dropped connection ends its
            // session, and the server rolls back what it left open.
            Store::Postgres(_, url) => Box::new(
                engine::native_pg::NativePgDb::open(url)
                    .and_then(|d| d.never_waiting())
                    .expect("open"),
            ),
        }
    }
}

pub fn run(plan: &Plan) -> Result<Vec<String>, (String, Vec<String>)> {
    quiet_crashes();
    let store = Store::new(plan.backend);
    let mut seed_rng = fastrand::Rng::with_seed(plan.seed);
    let levels = [0, 10, 30];
    let rates = [
        levels[seed_rng.usize(..3)],
        levels[seed_rng.usize(..3)],
        levels[seed_rng.usize(..3)],
    ];
    // A third of the seeds run with tight per-tenant limits: refused
    // calls must leave nothing behind.
    let limits = if seed_rng.usize(..3) == 0 {
        engine::limits::Limits {
            active_operations: 3,
            resources: 8,
            stored_bytes: 6_000,
            starts_per_minute: 12,
            writes_per_minute: 150,
        }
    } else {
        engine::limits::Limits::default()
    };
    let shared = Box::new(Shared {
        limits,
        // Odd seeds walk every diff's and merge's changes along the key,
        // even ones as the engine decides (through the LSN at these sizes).
        walk_by_key: (plan.seed % 2 == 1).then_some(true),
        baton: crate::sched::Baton::new(
            ACTORS,
            fastrand::Rng::with_seed(plan.seed ^ 0x5eed),
            rates,
        ),
        env: SimEnv {
            now: T0.into(),
            counter: 0.into(),
        },
    });
    let db = store.open();
    Engine::open(&*db, &shared.env).expect("migrate");
    let slots = Mutex::new(Slots {
        calls: (0..ACTORS).map(|_| None).collect(),
        done: (0..ACTORS).map(|_| None).collect(),
    });
    let result = std::thread::scope(|s| {
        for me in 0..ACTORS {
            let (store, shared, slots) = (&store, &*shared, &slots);
            s.spawn(move || actor(me, store, shared, slots));
        }
        let mut sim = Sim {
            plan,
            shared: &shared,
            slots: &slots,
            db,
            m: Model::default(),
            trace: Vec::new(),
            token: 0,
            pruned: false,
        };
        let r = catch_unwind(AssertUnwindSafe(|| sim.all()));
        // Stop the actors, wherever they are parked.
        {
            let _st = shared.baton.quiet(ACTORS);
        }
        shared.baton.stop();
        let trace = std::mem::take(&mut sim.trace);
        match r {
            Ok(Ok(())) => Ok(trace),
            Ok(Err(msg)) => Err((msg, trace)),
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into());
                Err((format!("round {}: panicked: {msg}", usize::MAX / 2), trace))
            }
        }
    });
    result
}

impl Sim<'_> {
    fn engine(&self) -> Engine<'_> {
        Engine::open(&*self.db, &self.shared.env)
            .expect("open")
            .with_config(cfg())
    }

    fn all(&mut self) -> Result<(), String> {
        self.m.cs.push(M {
            name: "root".into(),
            own: vec![],
            base: None,
            deleted: false,
            copy_op: None,
            expires_at: None,
            protected: false,
            retired: false,
            successor: None,
            merge_base: 0,
        });
        self.engine()
            .create_container("native", "t", "root", &serde_json::json!({}))
            .map_err(|e| e.to_string())?;
        for round in 0..self.plan.rounds {
            self.round(round)
                .map_err(|m| format!("round {round}: {m}"))?;
        }
        let round = self.plan.rounds;
        self.settle().map_err(|m| format!("round {round}: {m}"))
    }

    fn live_containers(&self, now: i64) -> Vec<usize> {
        (0..self.m.cs.len())
            .filter(|i| check::checkable(&self.m, &self.engine(), *i, now))
            .collect()
    }

    fn writes(&mut self, rng: &mut fastrand::Rng) -> Vec<Write> {
        let n = rng.usize(1..5);
        (0..n)
            .map(|j| {
                let collection = COLLECTIONS[rng.usize(..3)].to_string();
                let key = format!("k{}", rng.u8(..KEYS));
                if j > 0 && rng.u8(..4) == 0 {
                    Write::Delete { collection, key }
                } else {
                    self.token += 1;
                    Write::Put {
                        collection,
                        key,
                        body: body(self.token, rng.u16(..1000)),
                    }
                }
            })
            .collect()
    }

    /// A client's call this round.
    fn client_call(&mut self, rng: &mut fastrand::Rng, round: usize, actor: usize) -> Option<Call> {
        let now = self
            .shared
            .env
            .now
            .load(std::sync::atomic::Ordering::SeqCst);
        let live = self.live_containers(now);
        let c = *rng.choice(&live)?;
        let name = self.m.cs[c].name.clone();
        let ops = self.op_ids();
        let call = match rng.u8(..29) {
            26 => Call::Reset { c, name },
            27 | 28 => {
                let resolve = match rng.u8(..3) {
                    0 => Some(engine::Resolve::Ours),
                    1 => Some(engine::Resolve::Theirs),
                    _ => None,
                };
                if rng.u8(..3) == 0 {
                    Call::MergeStart { c, name, resolve }
                } else {
                    Call::Merge { c, name, resolve }
                }
            }
            19 if !self.m.merges.is_empty() && rng.u8(..4) == 0 => {
                let (_, (c, _)) = rng.choice(self.m.merges.iter())?;
                let c = *c;
                Call::MergeCancel {
                    c,
                    name: self.m.cs[c].name.clone(),
                }
            }
            20 => Call::Verify { name },
            // Mostly unprotecting: a protected container refuses most
            // calls, so it stays protected for a few rounds at a time.
            24 | 25 => Call::Protect {
                c,
                name,
                protected: rng.u8(..3) == 0,
            },
            0..=5 => Call::Write {
                c,
                name,
                writes: self.writes(rng),
            },
            6..=8 if self.m.cs.len() < MAX_CONTAINERS => {
                let strategy = match rng.u8(..4) {
                    0 => Strategy::LastSnapshot,
                    1 => Strategy::Pitr(T0 + rng.i64(0..(now - T0).max(1))),
                    _ => Strategy::Now,
                };
                Call::Branch {
                    c,
                    name,
                    target: format!("c{round}x{actor}"),
                    history: rng.bool(),
                    filter: rng.u8(..4) == 0,
                    masked: rng.u8(..4) == 0,
                    strategy,
                    copy: rng.u8(..3) == 0,
                    hydrate: rng.u8(..4) == 0,
                    ttl_us: (rng.u8(..6) == 0).then(|| rng.i64(2_000_000..20_000_000)),
                }
            }
            9 => Call::Snapshot { name },
            10 => Call::Hydrate { name },
            11 if c != 0 => Call::Delete { c, name },
            12 | 13 => Call::ImportOpen { c, name },
            // Imports under way get more calls than most: their commits
            // are what meets the worker's hydrations.
            14 | 15 | 21..=23 => {
                let (id, im) = rng.choice(self.m.imports.iter())?;
                let (id, name) = (id.clone(), self.m.cs[im.container].name.clone());
                if rng.u8(..2) == 0 {
                    Call::ImportEnd {
                        id,
                        name,
                        commit: rng.u8(..4) != 0,
                    }
                } else {
                    Call::ImportStage {
                        id,
                        name,
                        writes: self.writes(rng),
                    }
                }
            }
            16 if !ops.is_empty() => Call::Cancel {
                op: rng.choice(&ops)?.clone(),
            },
            17 if !ops.is_empty() => Call::Retry {
                op: rng.choice(&ops)?.clone(),
            },
            18 if !ops.is_empty() => Call::Nudge {
                op: rng.choice(&ops)?.clone(),
            },
            _ => Call::Read {
                c,
                name,
                at: self.engine().head_lsn().map_err(|e| e.to_string()).ok()?,
            },
        };
        Some(call)
    }

    fn worker_call(&mut self, rng: &mut fastrand::Rng) -> Call {
        match rng.u8(..12) {
            9 | 11 if !self.m.merges.is_empty() => Call::MergeStep {
                limit: rng.i64(1..6),
            },
            0..=4 => Call::Steps {
                n: rng.u8(1..4),
                k: rng.i64(1..6),
            },
            5 | 6 => Call::Tick {
                budget_us: rng.i64(1..400),
            },
            7 => Call::ExpireImports,
            8 => Call::Prune,
            9 | 10 => Call::Purge,
            _ => Call::Expire,
        }
    }

    fn op_ids(&self) -> Vec<String> {
        self.db
            .execute("SELECT id FROM operations ORDER BY created_at, id", &[])
            .expect("ops")
            .iter()
            .map(|r| r.text(0).expect("id"))
            .collect()
    }

    fn round(&mut self, round: usize) -> Result<(), String> {
        // The clock moves: a little most rounds, past leases and idle
        // imports now and then.
        let mut rng =
            fastrand::Rng::with_seed(self.plan.seed ^ (round as u64).wrapping_mul(0x9e37_79b9));
        let jump = match rng.u8(..10) {
            0 => rng.i64(2_000_000..8_000_000),
            _ => rng.i64(0..300_000),
        };
        self.shared.env.advance(jump);
        for actor in 0..ACTORS {
            let index = round * ACTORS + actor;
            let mut arng = fastrand::Rng::with_seed(
                self.plan.seed.wrapping_mul(31).wrapping_add(index as u64),
            );
            let call = if actor < CLIENTS {
                self.client_call(&mut arng, round, actor)
            } else {
                Some(self.worker_call(&mut arng))
            };
            if self.plan.skip.contains(&index) {
                continue;
            }
            if let Some(call) = call {
                self.slots.lock().unwrap().calls[actor] = Some((index, call));
            }
        }
        let queued: Vec<usize> = (0..ACTORS)
            .filter(|a| self.slots.lock().unwrap().calls[*a].is_some())
            .collect();
        self.shared.baton.round(ACTORS, &queued)?;
        let mut done: Vec<Done> = self
            .slots
            .lock()
            .unwrap()
            .done
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        // Commit order; calls that committed nothing after.
        done.sort_by_key(|d| (d.committed.unwrap_or(u64::MAX), d.actor));
        for d in &done {
            self.trace.push(format!(
                "r{round} #{} actor {}: {:?} → {:?}{}",
                d.index,
                d.actor,
                d.call,
                d.out,
                if d.committed.is_some() {
                    " (committed)"
                } else {
                    ""
                }
            ));
        }
        for d in done {
            self.apply(d)?;
        }
        self.forget_ended_imports();
        // Merges that a deletion or an expiry ended in this round.
        for id in self.m.merges.keys().cloned().collect::<Vec<_>>() {
            self.merge_ended(&id, true)?;
        }
        let e = self.engine();
        let now = self
            .shared
            .env
            .now
            .load(std::sync::atomic::Ordering::SeqCst);
        check::light(&self.m, &e, now, self.pruned)
    }

    /// Find the LSN a crashed, committed batch got, by its first put's token.
    fn lsn_of(&self, writes: &[Write]) -> Option<i64> {
        let Some(Write::Put { body, .. }) = writes.first() else {
            return None;
        };
        self.db
            .execute(
                "SELECT min(lsn) FROM records WHERE body = ?1",
                &[body.as_str().into()],
            )
            .expect("lookup")
            .first()
            .and_then(|r| r.opt_i64(0).expect("lsn"))
    }

    fn apply(&mut self, d: Done) -> Result<(), String> {
        // The faults are Busy, Unavailable and crashes; an engine error of
        // kind Storage or Corrupt is a bug (SQL a backend refused, a row
        // the engine cannot read), never an outcome.
        if let Outcome::Err(kind @ (ErrorKind::Storage | ErrorKind::Corrupt), msg) = &d.out {
            return Err(format!("{:?} answered {kind:?}: {msg}", d.call));
        }
        let resolved =
            matches!(d.out, Outcome::Crashed | Outcome::Err(..)) && d.committed.is_some();
        match (&d.call, &d.out) {
            (Call::Write { c, writes, .. }, out) => {
                let c = &self.m.current(*c);
                let lsn = match out {
                    Outcome::Ok(Ack::Committed(done)) => Some(done.lsn),
                    _ if resolved => {
                        Some(self.lsn_of(writes).ok_or("a committed write is nowhere")?)
                    }
                    _ => None,
                };
                if let Some(lsn) = lsn {
                    if self.m.cs[*c].protected {
                        return Err(format!(
                            "a write to protected {} was acknowledged (LSN {lsn})",
                            self.m.cs[*c].name
                        ));
                    }
                    let live = self.m.live(*c, i64::MAX);
                    let vs = batch_versions(&live, writes, lsn);
                    self.m.cs[*c].own.extend(vs);
                }
            }
            (
                Call::Branch {
                    c,
                    target,
                    history,
                    filter,
                    masked,
                    ttl_us,
                    copy,
                    ..
                },
                out,
            ) => {
                let op = match out {
                    Outcome::Ok(Ack::Op(Some(op))) => Some((**op).clone()),
                    _ if resolved => {
                        let id = self.db.execute(
                            "SELECT o.id FROM operations o JOIN containers c ON c.id = o.target WHERE c.name = ?1 AND o.kind != 'hydrate'",
                            &[target.as_str().into()]).expect("lookup").first().map(|r| r.text(0).expect("id"));
                        let id = id.ok_or("a committed clone has no operation")?;
                        self.engine()
                            .operation_by_id(&id)
                            .map_err(|e| e.to_string())?
                    }
                    _ => None,
                };
                if let Some(op) = op {
                    let c = &self.m.current(*c);
                    // The salt is the engine's: read it back.
                    let mask = match masked {
                        false => None,
                        true => {
                            let t = self
                                .db
                                .execute(
                                    "SELECT mask FROM containers WHERE id = ?1",
                                    &[op.target.into()],
                                )
                                .expect("lookup")
                                .first()
                                .and_then(|r| r.opt_text(0).expect("mask"))
                                .ok_or("a masked clone has no mask")?;
                            Some(serde_json::from_str(&t).map_err(|e| e.to_string())?)
                        }
                    };
                    self.m.cs.push(M {
                        name: target.clone(),
                        own: vec![],
                        base: Some(Base {
                            parent: *c,
                            lsn: op.snapshot_lsn,
                            history: *history,
                            filter: filter.then(|| vec!["a".into(), "c".into()]),
                            since: 0,
                            mask,
                        }),
                        deleted: false,
                        copy_op: copy.then(|| op.id.clone()),
                        expires_at: ttl_us.map(|t| op.created_at + t),
                        protected: false,
                        retired: false,
                        successor: None,
                        merge_base: op.snapshot_lsn,
                    });
                }
            }
            (Call::Delete { c, .. }, out) if matches!(out, Outcome::Ok(_)) || resolved => {
                let c = &self.m.current(*c);
                if self.m.cs[*c].protected {
                    return Err(format!(
                        "the deletion of protected {} was acknowledged",
                        self.m.cs[*c].name
                    ));
                }
                self.m.cs[*c].deleted = true;
                self.m.imports.retain(|_, im| im.container != *c);
                for id in self.m.merges.keys().cloned().collect::<Vec<_>>() {
                    self.merge_ended(&id, true)?;
                }
            }
            (Call::ImportOpen { c, name }, out) => {
                let c = &self.m.current(*c);
                let id = match out {
                    Outcome::Ok(Ack::Opened(id)) => Some(id.clone()),
                    _ if resolved => self.db.execute(
                        "SELECT i.id FROM imports i JOIN containers c ON c.id = i.container WHERE c.name = ?1 AND i.state = 'open'",
                        &[name.as_str().into()]).expect("lookup").first().map(|r| r.text(0).expect("id")),
                    _ => None,
                };
                if let Some(id) = id {
                    self.m.imports.insert(
                        id,
                        Import {
                            container: *c,
                            staged: vec![],
                        },
                    );
                }
            }
            (Call::ImportStage { id, writes, .. }, out) => {
                let lsn = match out {
                    Outcome::Ok(Ack::Committed(done)) => Some(done.lsn),
                    _ if resolved => Some(
                        self.lsn_of(writes)
                            .ok_or("a committed staged batch is nowhere")?,
                    ),
                    Outcome::Err(ErrorKind::InvalidState { .. } | ErrorKind::NotFound, _) => {
                        self.m.imports.remove(id);
                        None
                    }
                    _ => None,
                };
                if let (Some(lsn), Some(im)) = (lsn, self.m.imports.get(id)) {
                    let live = self.m.staging_live(im);
                    let vs = batch_versions(&live, writes, lsn);
                    self.m
                        .imports
                        .get_mut(id)
                        .expect("import")
                        .staged
                        .extend(vs);
                }
            }
            (Call::ImportEnd { id, commit, .. }, out) => {
                let lsn = match out {
                    Outcome::Ok(Ack::Committed(done)) => Some(done.lsn),
                    _ if resolved => self
                        .db
                        .execute(
                            "SELECT committed_lsn FROM imports WHERE id = ?1",
                            &[id.as_str().into()],
                        )
                        .expect("lookup")
                        .first()
                        .and_then(|r| r.opt_i64(0).expect("lsn")),
                    _ => None,
                };
                let ended = matches!(out, Outcome::Ok(_))
                    || resolved
                    || matches!(
                        out,
                        Outcome::Err(ErrorKind::InvalidState { .. } | ErrorKind::NotFound, _)
                    );
                if ended {
                    if let Some(im) = self.m.imports.remove(id) {
                        if let (true, Some(lsn)) = (*commit, lsn) {
                            if self.m.cs[im.container].protected {
                                return Err(format!(
                                    "an import into protected {} was committed (LSN {lsn})",
                                    self.m.cs[im.container].name
                                ));
                            }
                            for v in im.staged {
                                self.m.cs[im.container].own.push(V { from: lsn, ..v });
                            }
                        }
                    }
                }
            }
            (Call::Read { c, name, at }, Outcome::Ok(Ack::Read(rows))) => {
                let c = &self.m.current(*c);
                let got: BTreeMap<(String, String), (i64, String)> = rows
                    .iter()
                    .map(|(c, k, l, b)| ((c.clone(), k.clone()), (*l, b.clone())))
                    .collect();
                if got.len() != rows.len() {
                    return Err(format!("read of {name} as of {at}: a key twice"));
                }
                let want = self.m.live(*c, *at);
                if got != want {
                    return Err(format!("read of {name} as of {at} beside the round's other calls:\n got  {got:?}\n want {want:?}"));
                }
            }
            (Call::Reset { c, name }, out) => {
                let c = &self.m.current(*c);
                let r = match out {
                    Outcome::Ok(Ack::Reset(r)) => Some(*r),
                    // The retired container's name says when: `<name>@<r>`.
                    _ if resolved => self
                        .db
                        .execute(
                            "SELECT name FROM containers WHERE family = 'history' AND name LIKE ?1 ORDER BY id DESC LIMIT 1",
                            &[format!("native:{name}@%").into()],
                        )
                        .expect("lookup")
                        .first()
                        .and_then(|r| r.text(0).ok())
                        .and_then(|n| n.rsplit('@').next().and_then(|l| l.parse().ok())),
                    _ => None,
                };
                if let Some(r) = r {
                    if self.m.cs[*c].protected {
                        return Err(format!("a reset of protected {name} was acknowledged"));
                    }
                    self.m
                        .reset(*c, r)
                        .ok_or_else(|| format!("{name} was reset, yet it has no parent"))?;
                }
            }
            (Call::MergeStart { c, name, resolve }, out)
            | (Call::Merge { c, name, resolve }, out @ Outcome::Ok(Ack::MergeStarted(_))) => {
                let c = self.m.current(*c);
                let id = match out {
                    Outcome::Ok(Ack::MergeStarted(id)) => Some(id.clone()),
                    _ if resolved => self
                        .db
                        .execute(
                            "SELECT i.id FROM imports i JOIN containers c ON c.id = i.merge_from \
                             WHERE c.name = ?1 AND c.family = 'native' ORDER BY i.created_at DESC LIMIT 1",
                            &[name.as_str().into()],
                        )
                        .expect("lookup")
                        .first()
                        .map(|r| r.text(0).expect("id")),
                    _ => None,
                };
                if let Some(id) = id.filter(|id| !self.m.merges_seen.contains(id)) {
                    self.m.merges_seen.insert(id.clone());
                    if self.m.merge_plan(c, *resolve).is_none() {
                        return Err(format!("a chunked merge of {name} started, yet it has nothing to merge into"));
                    }
                    self.m.merges.insert(id, (c, *resolve));
                }
            }
            (Call::Merge { c, name, resolve }, out) => {
                let c = self.m.current(*c);
                // Too large for one transaction, it started a chunked merge
                // (the answer lost): one the model has not seen.
                if resolved && !matches!(out, Outcome::Ok(_)) {
                    let started = self
                        .db
                        .execute(
                            "SELECT i.id FROM imports i JOIN containers c ON c.id = i.merge_from \
                             WHERE c.name = ?1 AND c.family = 'native' ORDER BY i.created_at DESC LIMIT 1",
                            &[name.as_str().into()],
                        )
                        .expect("lookup")
                        .first()
                        .map(|r| r.text(0).expect("id"))
                        .filter(|id| !self.m.merges_seen.contains(id));
                    if let Some(id) = started {
                        self.m.merges_seen.insert(id.clone());
                        self.m.merges.insert(id, (c, *resolve));
                        return Ok(());
                    }
                }
                let plan = self.m.merge_plan(c, *resolve);
                let done = match out {
                    Outcome::Ok(Ack::Conflicts) => {
                        match plan {
                            Some(p) if p.conflicts > 0 => {}
                            _ => return Err(format!("a merge of {name} was refused for conflicts the model does not have: {plan:?}")),
                        }
                        None
                    }
                    Outcome::Ok(Ack::Merged(lsn, applied, next)) => {
                        let p = plan.ok_or_else(|| format!("{name} was merged, yet its parent is gone or reset"))?;
                        if p.conflicts > 0 {
                            return Err(format!("a merge of {name} was applied despite {} conflicts", p.conflicts));
                        }
                        if *applied != p.writes.len() {
                            return Err(format!("a merge of {name} wrote {applied} keys; the model {:?}", p.writes));
                        }
                        Some((p, *lsn, *next))
                    }
                    // Committed, then the answer was lost: the branch's
                    // merge base says where it went.
                    _ if resolved => match plan {
                        Some(p) if p.conflicts == 0 => {
                            let next = self
                                .db
                                .execute(
                                    "SELECT merge_base FROM containers WHERE family = 'native' AND name = ?1 AND deleting = 0",
                                    &[name.as_str().into()],
                                )
                                .expect("lookup")
                                .first()
                                .and_then(|r| r.opt_i64(0).expect("merge base"))
                                .ok_or("a committed merge left no merge base")?;
                            let lsn = (!p.writes.is_empty()).then_some(next);
                            Some((p, lsn, next))
                        }
                        _ => None,
                    },
                    _ => None,
                };
                if let Some((p, lsn, next)) = done {
                    if let Some(lsn) = lsn {
                        let live = self.m.live(p.into, i64::MAX);
                        let vs = batch_versions(&live, &p.writes, lsn);
                        self.m.cs[p.into].own.extend(vs);
                    }
                    self.m.cs[c].merge_base = next;
                }
            }
            // A step ends a merge by its commit or a conflict, a cancel by
            // canceling; a deletion's end waits for the deletion's turn.
            (Call::MergeStep { .. } | Call::MergeCancel { .. }, out) => match out {
                Outcome::Ok(Ack::MergeRun(Some(run))) if run.state != "running" => {
                    self.merge_ended(&run.id, true)?
                }
                Outcome::Ok(_) => {}
                _ if resolved => {
                    for id in self.m.merges.keys().cloned().collect::<Vec<_>>() {
                        self.merge_ended(&id, false)?;
                    }
                }
                _ => {}
            },
            (Call::Protect { c, protected, .. }, out)
                if matches!(out, Outcome::Ok(_)) || resolved =>
            {
                let c = self.m.current(*c);
                self.m.cs[c].protected = *protected;
            }
            (Call::Prune, _) => self.pruned = true,
            _ => {}
        }
        Ok(())
    }

    /// A chunked merge that ended, as the database says (nothing while it
    /// runs): committed, the model's plan for it now is what the parent
    /// gains, its versions at the merge's LSN shown from the commit's;
    /// refused for conflicts only when the model has some and no strategy;
    /// abandoned only when canceled, or a side is gone (or may have expired).
    ///
    /// `any`: whatever ended it; else only a step's or a cancel's end
    /// (a call whose answer was lost).
    fn merge_ended(&mut self, id: &str, any: bool) -> Result<(), String> {
        let Some(&(c, resolve)) = self.m.merges.get(id) else {
            return Ok(());
        };
        let row = self
            .db
            .execute(
                "SELECT state, committed_lsn, merge_lsn, outcome, staged, container FROM imports WHERE id = ?1",
                &[id.into()],
            )
            .expect("lookup");
        let r = row.first().ok_or_else(|| format!("merge {id} is nowhere"))?;
        let (state, outcome) = (r.text(0).expect("state"), r.opt_text(3).expect("outcome"));
        let name = self.m.cs[c].name.clone();
        let by_step = state == "committed" || matches!(outcome.as_deref(), Some("conflicts" | "canceled"));
        if !any && !by_step {
            return Ok(());
        }
        if std::env::var("SIM_MERGE_STATS").is_ok() && state != "open" {
            eprintln!("MERGE-END {state} {outcome:?} staged={}", r.i64(4).expect("staged"));
        }
        match state.as_str() {
            "open" => return Ok(()),
            "committed" => {
                let at = r.i64(1).expect("lsn");
                let versions = r.i64(2).expect("merge lsn");
                let plan = self
                    .m
                    .merge_plan(c, resolve)
                    .ok_or_else(|| format!("chunked merge {id} of {name} committed, yet it has nothing to merge into"))?;
                if plan.conflicts > 0 {
                    return Err(format!("chunked merge {id} of {name} committed despite {} conflicts", plan.conflicts));
                }
                if r.i64(4).expect("staged") != plan.writes.len() as i64 {
                    return Err(format!(
                        "chunked merge {id} of {name} staged {} writes; the model {:?}",
                        r.i64(4).expect("staged"),
                        plan.writes
                    ));
                }
                let live = self.m.live(plan.into, i64::MAX);
                let vs = batch_versions(&live, &plan.writes, versions);
                for v in vs {
                    self.m.cs[plan.into].own.push(V { from: at, ..v });
                }
                self.m.cs[c].merge_base = at;
            }
            _ => {
                let into = r.i64(5).expect("container");
                let gone = |m: &M| m.deleted || m.expires_at.is_some();
                let into_gone = self
                    .m
                    .cs
                    .get(self.m.cs[c].base.as_ref().map(|b| b.parent).unwrap_or(c))
                    .is_some_and(gone);
                let ok = match outcome.as_deref() {
                    Some("canceled") => true,
                    Some("conflicts") => {
                        let p = self.m.merge_plan(c, resolve);
                        resolve.is_none() && p.is_some_and(|p| p.conflicts > 0)
                    }
                    _ => gone(&self.m.cs[c]) || into_gone,
                };
                if !ok {
                    return Err(format!(
                        "chunked merge {id} of {name} into container {into} ended without a commit ({outcome:?}); the model sees no reason"
                    ));
                }
            }
        }
        self.m.merges.remove(id);
        Ok(())
    }

    /// An import whose container is gone, or that the worker abandoned,
    /// is no longer open (at the end of a round: its calls are applied).
    fn forget_ended_imports(&mut self) {
        let open: Vec<String> = self
            .db
            .execute("SELECT id FROM imports WHERE state = 'open'", &[])
            .expect("imports")
            .iter()
            .map(|r| r.text(0).expect("id"))
            .collect();
        self.m.imports.retain(|id, _| open.contains(id));
    }

    /// After the last round: no more faults; the worker runs until nothing
    /// is runnable, the clock passing every lease and idle import; then
    /// every operation must have ended, and every read must agree.
    fn settle(&mut self) -> Result<(), String> {
        let e = self.engine();
        for _ in 0..5_000 {
            self.shared.env.advance(cfg().lease_us + 1);
            e.expire_imports(100).map_err(|x| x.to_string())?;
            e.expire_step(100).map_err(|x| x.to_string())?;
            while e.merge_step(50).map_err(|x| x.to_string())?.is_some() {}
            let Some(id) = e.next_runnable("settle").map_err(|x| x.to_string())? else {
                while e.purge_step(1_000).map_err(|x| x.to_string())? > 0 {}
                let stuck = e.db().execute(
                    "SELECT count(*) FROM operations WHERE status IN ('pending', 'in_progress')", &[])
                    .map_err(|x| format!("{x:?}"))?[0].i64(0).expect("count");
                if stuck > 0 {
                    return Err(format!(
                        "{stuck} operations stay active with nothing runnable"
                    ));
                }
                drop(e);
                self.m.imports.clear();
                for id in self.m.merges.keys().cloned().collect::<Vec<_>>() {
                    self.merge_ended(&id, true)?;
                }
                if let Some(id) = self.m.merges.keys().next() {
                    return Err(format!("merge {id} never ended"));
                }
                let e = self.engine();
                let now = self
                    .shared
                    .env
                    .now
                    .load(std::sync::atomic::Ordering::SeqCst);
                check::light(&self.m, &e, now, self.pruned)?;
                check::full(&self.m, &e, now)?;
                return check::verifications(&self.m, &e, now);
            };
            if e.claim(&id, "settle").map_err(|x| x.to_string())? {
                match e.step(&id, "settle", None) {
                    Ok(_) => {}
                    Err(x) => e.fail(&id, &x.message).map_err(|x| x.to_string())?,
                }
                e.release(&id, "settle").map_err(|x| x.to_string())?;
            }
        }
        Err("the worker never settled: operations run for ever".into())
    }
}

/// Injected crashes unwind quietly; any other panic is reported as usual.
fn quiet_crashes() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.payload().is::<Crashed>() {
                default(info);
            }
        }));
    });
}
