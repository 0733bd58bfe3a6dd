//! The deterministic scheduler: every actor (a client or a worker) runs on a
//! thread of its own, but only the one holding the baton runs. Every
//! statement an actor sends through its [`SimDb`] is a yield point: the
//! actor parks there, and the simulator — one seeded random choice at a
//! time — picks which parked actor runs its next statement, and whether a
//! fault lands on it (a crash, a `Busy` or `Unavailable` answer). So
//! actors interleave at every statement, inside transactions where SQLite
//! allows it (readers beside a writer; a second `BEGIN IMMEDIATE` never
//! runs while another connection holds the write lock), and a seed names
//! one interleaving exactly.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

use engine::{Db, DbError, Env, LockWait, Maintenance, Row, TxMode, Value};

/// A fault the simulator lands on one statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The actor's process dies before the statement runs: its connection
    /// is dropped (SQLite rolls back what was not committed) and it starts
    /// again.
    Crash,
    /// The database answers `Busy` instead of running the statement.
    Busy,
    /// The database answers `Unavailable` (nothing of the statement ran).
    Unavailable,
}

/// The panic payload of an injected crash.
pub struct Crashed;

/// Where a parked actor waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Park {
    /// Between calls.
    Idle,
    /// Before a statement of a call; `begin_write` for `BEGIN IMMEDIATE`.
    Stmt { begin_write: bool, rollback: bool },
}

pub struct St {
    /// The actor that may run now (None: the round is over, or not begun).
    pub turn: Option<usize>,
    pub parked: BTreeMap<usize, Park>,
    /// Idle actors with a call waiting for them.
    pub pending: std::collections::BTreeSet<usize>,
    /// The fault that goes with the current turn.
    pub fault: Option<Fault>,
    /// The actor whose connection holds the write lock.
    pub holder: Option<usize>,
    /// Statements run so far, all actors (orders commits).
    pub seq: u64,
    /// Set when the run is over: parked actors leave.
    pub stop: bool,
    /// The schedule's randomness and the seed's fault rates (per statement,
    /// in 1/10 000: crash, busy, unavailable).
    pub rng: fastrand::Rng,
    pub rates: [u32; 3],
    /// Why the round cannot go on (a deadlock).
    pub error: Option<String>,
}

impl St {
    /// Choose who runs next among the parked actors, and the fault that
    /// lands there: whoever parks last decides (under the lock), so the
    /// choice is the seed's alone and needs no extra thread switch.
    fn decide(&mut self, last: Option<usize>) {
        let mut cands = Vec::new();
        let mut blocked = 0;
        for (a, p) in &self.parked {
            match p {
                Park::Idle if self.pending.contains(a) => cands.push((*a, false)),
                Park::Idle => {}
                Park::Stmt {
                    begin_write,
                    rollback,
                } => {
                    if *begin_write && self.holder.is_some_and(|h| h != *a) {
                        blocked += 1;
                    } else {
                        cands.push((*a, !*rollback));
                    }
                }
            }
        }
        if cands.is_empty() {
            if blocked > 0 {
                self.error = Some(format!(
                    "deadlock: {blocked} actors wait for the write lock held by {:?}",
                    self.holder
                ));
            }
            self.turn = None;
            return;
        }
        // Half the time the actor that just parked goes on (fewer thread
        // switches; every interleaving stays possible).
        let pick = match last.and_then(|l| cands.iter().position(|(a, _)| *a == l)) {
            Some(i) if self.rng.bool() => i,
            _ => self.rng.usize(..cands.len()),
        };
        let (a, stmt) = cands[pick];
        let roll = self.rng.u32(..10_000);
        let [crash, busy, unavailable] = self.rates;
        self.fault = if !stmt {
            None
        } else if roll < crash {
            Some(Fault::Crash)
        } else if roll < crash + busy {
            Some(Fault::Busy)
        } else if roll < crash + busy + unavailable {
            Some(Fault::Unavailable)
        } else {
            None
        };
        self.pending.remove(&a);
        self.turn = Some(a);
    }
}

pub struct Baton {
    pub st: Mutex<St>,
    /// One per actor, so that only the actor given the turn wakes.
    cvs: Vec<Condvar>,
    /// The simulator's: the round is over.
    main: Condvar,
}

impl Baton {
    pub fn new(actors: usize, rng: fastrand::Rng, rates: [u32; 3]) -> Baton {
        Baton {
            st: Mutex::new(St {
                turn: None,
                parked: BTreeMap::new(),
                pending: Default::default(),
                fault: None,
                holder: None,
                seq: 0,
                stop: false,
                rng,
                rates,
                error: None,
            }),
            cvs: (0..actors).map(|_| Condvar::new()).collect(),
            main: Condvar::new(),
        }
    }

    /// Park `me` at `park`, choose who runs next, and wait for the turn;
    /// returns the fault that lands here (Err when the run is stopping).
    pub fn park(&self, me: usize, park: Park) -> Result<Option<Fault>, ()> {
        let mut st = self.st.lock().unwrap();
        st.parked.insert(me, park);
        st.decide(Some(me));
        // Wake the chosen one after letting go of the lock, so that it does
        // not wake only to wait for it.
        let next = st.turn;
        if next != Some(me) {
            drop(st);
            match next {
                Some(t) => self.cvs[t].notify_one(),
                None => self.main.notify_one(),
            }
            st = self.st.lock().unwrap();
        }
        while st.turn != Some(me) {
            if st.stop {
                return Err(());
            }
            st = self.cvs[me].wait(st).unwrap();
        }
        st.parked.remove(&me);
        Ok(st.fault.take())
    }

    /// Wait until every one of `n` actors is parked and nobody runs.
    pub fn quiet(&self, n: usize) -> std::sync::MutexGuard<'_, St> {
        let mut st = self.st.lock().unwrap();
        while st.turn.is_some() || st.parked.len() < n {
            st = self.main.wait(st).unwrap();
        }
        st
    }

    /// Run a round: `calls` actors have a call waiting; returns when no
    /// actor can go on (or why the round cannot).
    pub fn round(&self, n: usize, calls: &[usize]) -> Result<(), String> {
        let mut st = self.quiet(n);
        st.pending.extend(calls.iter().copied());
        st.decide(None);
        if let Some(t) = st.turn {
            self.cvs[t].notify_one();
        }
        drop(st);
        let mut st = self.quiet(n);
        match st.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// End the run: every parked actor leaves.
    pub fn stop(&self) {
        self.st.lock().unwrap().stop = true;
        for cv in &self.cvs {
            cv.notify_all();
        }
    }
}

/// The simulated clock (moved by the simulator and by every read, like
/// the engine tests' fake clock) and deterministic randomness.
pub struct SimEnv {
    pub now: AtomicI64,
    pub counter: AtomicU64,
}

impl SimEnv {
    pub fn advance(&self, us: i64) {
        self.now.fetch_add(us, Ordering::SeqCst);
    }
}

impl Env for SimEnv {
    fn now_us(&self) -> i64 {
        self.now.fetch_add(1, Ordering::SeqCst)
    }
    fn random_u128(&self) -> u128 {
        let c = self.counter.fetch_add(1, Ordering::SeqCst) as u128 + 1;
        c.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
    }
}

/// One actor's connection as the engine sees it: every statement parks at
/// the baton first, and may meet a fault there.
pub struct SimDb<'a> {
    pub inner: &'a dyn Db,
    pub me: usize,
    pub baton: &'a Baton,
    /// Sequence number of this call's last successful COMMIT.
    pub committed: std::cell::Cell<Option<u64>>,
    /// Inside a transaction this connection opened.
    pub in_tx: std::cell::Cell<bool>,
}

/// Whether a statement may write (outside a transaction it then needs the
/// write lock for its own short time). A harness's rule, not the engine's:
/// anything but a plain query counts as a write.
fn may_write(sql: &str) -> bool {
    let head = sql.trim_start().get(..6).unwrap_or("").to_ascii_uppercase();
    !(head.starts_with("SELECT") || head.starts_with("PRAGMA"))
}

impl SimDb<'_> {
    fn gate(&self, begin_write: bool, rollback: bool) -> Result<(), DbError> {
        let fault = match self.baton.park(
            self.me,
            Park::Stmt {
                begin_write,
                rollback,
            },
        ) {
            Ok(f) => f,
            Err(()) => std::panic::panic_any(Crashed),
        };
        match fault {
            None => Ok(()),
            Some(Fault::Crash) => std::panic::panic_any(Crashed),
            Some(Fault::Busy) => Err(DbError::Busy("simulated: database is locked".into())),
            Some(Fault::Unavailable) => {
                Err(DbError::Unavailable("simulated: connection lost".into()))
            }
        }
    }

    fn after(&self, f: impl FnOnce(&mut St)) {
        let mut st = self.baton.st.lock().unwrap();
        st.seq += 1;
        f(&mut st);
    }
}

impl Db for SimDb<'_> {
    fn dialect(&self) -> engine::Dialect {
        self.inner.dialect()
    }

    fn execute(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        // A write outside a transaction waits for the write lock like a
        // BEGIN IMMEDIATE (it holds it only while it runs).
        self.gate(!self.in_tx.get() && may_write(sql), false)?;
        let r = self.inner.execute(sql, params);
        self.after(|_| {});
        r
    }

    fn changes(&self) -> Result<u64, DbError> {
        self.inner.changes()
    }

    fn last_insert_rowid(&self) -> Result<i64, DbError> {
        self.inner.last_insert_rowid()
    }

    fn begin(&self, mode: TxMode) -> Result<(), DbError> {
        let write = mode == TxMode::Write;
        self.gate(write, false)?;
        let r = self.inner.begin(mode);
        if r.is_ok() {
            self.in_tx.set(true);
        }
        let me = self.me;
        self.after(|st| {
            if write && r.is_ok() {
                assert!(st.holder.is_none(), "two writers at once");
                st.holder = Some(me);
            }
        });
        r
    }

    fn commit(&self) -> Result<(), DbError> {
        self.gate(false, false)?;
        let r = self.inner.commit();
        if r.is_ok() {
            self.in_tx.set(false);
        }
        let me = self.me;
        let mut seq = 0;
        self.after(|st| {
            seq = st.seq;
            if st.holder == Some(me) {
                st.holder = None;
            }
        });
        if r.is_ok() {
            self.committed.set(Some(seq));
        }
        r
    }

    fn rollback(&self) -> Result<(), DbError> {
        self.gate(false, true)?;
        let r = self.inner.rollback();
        self.in_tx.set(false);
        let me = self.me;
        self.after(|st| {
            if st.holder == Some(me) {
                st.holder = None;
            }
        });
        r
    }

    fn page_size(&self) -> Option<i64> {
        self.inner.page_size()
    }

    fn maintain(&self, task: Maintenance) -> Result<(), DbError> {
        self.inner.maintain(task)
    }

    /// The simulation never waits for a lock: a statement that would wait
    /// answers `Busy` at once (the waiting actor would hold the baton).
    fn lock_wait(&self, _wait: LockWait) -> Result<(), DbError> {
        Ok(())
    }
}

/// Shared between the simulator and its actors.
pub struct Shared {
    /// The per-tenant limits the actors' engines enforce.
    pub limits: engine::limits::Limits,
    /// How diffs and merges walk changes (`Config::walk_by_key`).
    pub walk_by_key: Option<bool>,
    pub baton: Baton,
    pub env: SimEnv,
}
