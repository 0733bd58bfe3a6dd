//! Copy-on-write branches against a reference model: random interleavings
//! of writes and deletes to parents and branches, branches of branches
//! (with and without history, with collection filters, now / last
//! snapshot / PITR), hydration chunks, crashes mid-chunk, retention passes,
//! deletions of parents, purges — after every step every read of every
//! container (latest, as of an LSN, history, list pages, export pages,
//! counts) equals the model.

mod common;
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};

use common::*;
use engine::native::NativeDb;
use engine::{AsOf, Config, Db, DbError, Engine, Row, Status, Strategy as Clone, Value, Write};
use proptest::prelude::*;

const COLLECTIONS: [&str; 3] = ["alpha", "beta", "gamma"];
const KEYS: u8 = 8;

/// A Db that panics (a crash) at its n-th statement.
struct Crashing<'a> {
    inner: &'a dyn Db,
    countdown: Cell<i64>,
}

impl Db for Crashing<'_> {
    fn execute(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        let n = self.countdown.get();
        self.countdown.set(n - 1);
        if n == 0 && sql != "ROLLBACK" {
            panic!("simulated crash");
        }
        self.inner.execute(sql, params)
    }
}

/// One version in the model.
#[derive(Debug, Clone, PartialEq)]
struct V {
    collection: String,
    key: String,
    lsn: i64,
    body: Option<String>,
    /// Visible to reads at or after this LSN (an import's commit LSN).
    from: i64,
}

/// A container in the model: its own versions and what it reads through.
#[derive(Debug, Clone)]
struct M {
    name: String,
    own: Vec<V>,
    /// (parent index, base, history, filter)
    base: Option<(usize, i64, bool, Option<Vec<String>>)>,
    deleted: bool,
}

struct Model {
    cs: Vec<M>,
}

/// What a container shows: (collection, key, lsn) → (body, visible from).
type Shown = BTreeMap<(String, String, i64), (Option<String>, i64)>;

impl Model {
    /// Every version container `i` sees, by (collection, key, lsn), with
    /// the LSN from which it shows.
    fn visible(&self, i: usize) -> Shown {
        let c = &self.cs[i];
        let mut out = BTreeMap::new();
        if let Some((p, base, history, filter)) = &c.base {
            let parent = self.visible(*p);
            let keep = |col: &str| filter.as_ref().is_none_or(|f| f.iter().any(|x| x == col));
            let mut newest: BTreeMap<(String, String), (i64, Option<String>, i64)> =
                BTreeMap::new();
            for ((col, key, lsn), (body, from)) in parent {
                if lsn > *base || from > *base || !keep(&col) {
                    continue;
                }
                if *history {
                    out.insert((col, key, lsn), (body, from));
                } else {
                    newest.insert((col, key), (lsn, body, from));
                }
            }
            for ((col, key), (lsn, body, from)) in newest {
                if body.is_some() {
                    out.insert((col, key, lsn), (body, from));
                }
            }
        }
        for v in &c.own {
            out.insert(
                (v.collection.clone(), v.key.clone(), v.lsn),
                (v.body.clone(), v.from),
            );
        }
        out
    }

    /// Live records of `i` as of `at`.
    fn live(&self, i: usize, at: i64) -> BTreeMap<(String, String), (i64, String)> {
        let mut newest: BTreeMap<(String, String), (i64, Option<String>)> = BTreeMap::new();
        for ((col, key, lsn), (body, from)) in self.visible(i) {
            if lsn <= at && from <= at {
                newest.insert((col, key), (lsn, body));
            }
        }
        newest
            .into_iter()
            .filter_map(|(k, (lsn, b))| b.map(|b| (k, (lsn, b))))
            .collect()
    }
}

#[derive(Debug, Clone)]
enum Action {
    /// Writes to container i: (collection, key, Some(value) or delete).
    Write(u8, Vec<(u8, u8, Option<u16>)>),
    /// A branch of container i: history, filter, strategy (0 now, 1 last snapshot, 2 PITR to an earlier write).
    Branch(u8, bool, bool, u8, u8),
    /// A snapshot of container i.
    Snapshot(u8),
    /// Ask container i to hydrate.
    Hydrate(u8),
    /// Worker steps of at most n records on runnable operations.
    Steps(u8, i64),
    /// A hydration step that crashes at its k-th statement.
    Crash(i64),
    /// Delete container i.
    Delete(u8),
    /// Retention passes with a short window.
    Prune,
    /// Open an import into container i.
    ImportOpen(u8),
    /// Stage a batch in the open import.
    ImportStage(Vec<(u8, u8, Option<u16>)>),
    /// Commit (true) or abandon (false) the open import.
    ImportEnd(bool),
    /// The worker abandons imports idle past their expiry (the clock jumps).
    ImportExpire,
    /// Purge steps.
    Purge,
}

fn action() -> impl Strategy<Value = Action> {
    let batch = prop::collection::vec(
        (0u8..3, 0u8..KEYS, prop::option::weighted(0.75, 0u16..1000)),
        1..5,
    );
    prop_oneof![
        5 => (0u8..8, batch).prop_map(|(i, b)| Action::Write(i, b)),
        3 => (0u8..8, any::<bool>(), prop::bool::weighted(0.25), 0u8..3, any::<u8>())
            .prop_map(|(i, h, f, s, p)| Action::Branch(i, h, f, s, p)),
        1 => (0u8..8).prop_map(Action::Snapshot),
        1 => (0u8..8).prop_map(Action::Hydrate),
        3 => (1u8..4, 1i64..6).prop_map(|(n, k)| Action::Steps(n, k)),
        1 => (0i64..14).prop_map(Action::Crash),
        1 => (0u8..8).prop_map(Action::Delete),
        1 => Just(Action::Prune),
        1 => Just(Action::Purge),
        1 => (0u8..8).prop_map(Action::ImportOpen),
        2 => prop::collection::vec((0u8..3, 0u8..KEYS, prop::option::weighted(0.75, 0u16..1000)), 1..5).prop_map(Action::ImportStage),
        1 => any::<bool>().prop_map(Action::ImportEnd),
        1 => Just(Action::ImportExpire),
    ]
}

fn to_writes(b: &[(u8, u8, Option<u16>)]) -> Vec<Write> {
    b.iter()
        .map(|(c, k, v)| match v {
            Some(v) => put(
                COLLECTIONS[*c as usize],
                &format!("k{k}"),
                &format!("{{\"v\":{v}}}"),
            ),
            None => del(COLLECTIONS[*c as usize], &format!("k{k}")),
        })
        .collect()
}

struct Run<'a> {
    fx: &'a Fx,
    cfg: Config,
    m: Model,
    /// Committed write times per container index (for PITR).
    times: Vec<Vec<i64>>,
    pruned: bool,
    /// The open import: (container index, id, staged versions so far).
    import: Option<(usize, String, Vec<V>)>,
}

impl Run<'_> {
    fn e(&self) -> Engine<'_> {
        self.fx.engine().with_config(self.cfg.clone())
    }

    /// The live (not deleted) container at index `i mod n`.
    fn pick(&self, i: u8) -> Option<usize> {
        let live: Vec<usize> = (0..self.m.cs.len())
            .filter(|j| !self.m.cs[*j].deleted)
            .collect();
        (!live.is_empty()).then(|| live[i as usize % live.len()])
    }

    /// The versions a batch writes, as the engine applies it: a later write
    /// of a key replaces an earlier one; deleting a key not live is nothing.
    fn batch_versions(
        live: &BTreeMap<(String, String), (i64, String)>,
        writes: &[Write],
        lsn: i64,
    ) -> Vec<V> {
        let mut state: BTreeMap<(String, String), Option<Option<String>>> = BTreeMap::new();
        for w in writes {
            match w {
                Write::Put {
                    collection,
                    key,
                    body,
                } => {
                    state.insert((collection.clone(), key.clone()), Some(Some(body.clone())));
                }
                Write::Delete { collection, key } => {
                    let k = (collection.clone(), key.clone());
                    let is_live = match state.get(&k) {
                        Some(Some(b)) => b.is_some(),
                        Some(None) => false,
                        None => live.contains_key(&k),
                    };
                    if is_live {
                        state.insert(k, Some(None));
                    }
                }
            }
        }
        state
            .into_iter()
            .filter_map(|((collection, key), v)| {
                v.map(|body| V {
                    collection,
                    key,
                    lsn,
                    body,
                    from: 0,
                })
            })
            .collect()
    }

    fn write(&mut self, i: usize, b: &[(u8, u8, Option<u16>)]) {
        let e = self.e();
        let name = self.m.cs[i].name.clone();
        let writes = to_writes(b);
        if self.import.as_ref().is_some_and(|(j, _, _)| *j == i) {
            let err = e.write("native", "t", &name, &writes).unwrap_err();
            assert!(
                matches!(err.kind, engine::ErrorKind::Conflict { .. }),
                "{err:?}"
            );
            return;
        }
        let done = e.write("native", "t", &name, &writes).unwrap();
        let live = self.m.live(i, i64::MAX);
        let vs = Self::batch_versions(&live, &writes, done.lsn);
        self.m.cs[i].own.extend(vs);
        self.times[i].push(done.committed_at);
    }

    fn import_open(&mut self, i: usize) {
        if self.import.is_some() {
            return;
        }
        let e = self.e();
        let c = e.container("native", "t", &self.m.cs[i].name).unwrap();
        let im = e.open_import(&c, 60_000_000).unwrap();
        self.import = Some((i, im.id, vec![]));
    }

    fn import_stage(&mut self, b: &[(u8, u8, Option<u16>)]) {
        let Some((i, id, staged)) = self.import.clone() else {
            return;
        };
        let e = self.e();
        let c = e.container("native", "t", &self.m.cs[i].name).unwrap();
        let writes = to_writes(b);
        let (_, done) = e.stage_import(&c, &id, &writes, 60_000_000).unwrap();
        // Live as the staging branch sees it: the container, then the batches so far.
        let mut live = self.m.live(i, i64::MAX);
        for v in &staged {
            let k = (v.collection.clone(), v.key.clone());
            match &v.body {
                Some(b) => {
                    live.insert(k, (v.lsn, b.clone()));
                }
                None => {
                    live.remove(&k);
                }
            }
        }
        let mut staged = staged;
        staged.extend(Self::batch_versions(&live, &writes, done.lsn));
        self.import = Some((i, id, staged));
    }

    fn import_end(&mut self, commit: bool) {
        let Some((i, id, staged)) = self.import.take() else {
            return;
        };
        let e = self.e();
        let c = e.container("native", "t", &self.m.cs[i].name).unwrap();
        if commit {
            let done = e.commit_import(&c, &id).unwrap();
            for v in staged {
                self.m.cs[i].own.push(V {
                    from: done.lsn,
                    ..v
                });
            }
            self.times[i].push(done.committed_at);
        } else {
            e.abandon_import(&c, &id).unwrap();
        }
    }

    fn branch(&mut self, i: usize, history: bool, filter: bool, strategy: u8, pick: u8) {
        let e = self.e();
        let src = e.container("native", "t", &self.m.cs[i].name).unwrap();
        let name = format!("c{}", self.m.cs.len());
        let strategy = match strategy {
            0 => Clone::Now,
            1 => Clone::LastSnapshot,
            _ => match self.times[i].len() {
                0 => Clone::Now,
                n => Clone::Pitr(self.times[i][pick as usize % n]),
            },
        };
        let mut req = branch_req(&src, &name, strategy, history);
        if filter {
            req.collections = Some(vec!["alpha".into(), "gamma".into()]);
        }
        let (op, _) = match e.create_operation(&req) {
            Ok(x) => x,
            // Only a refusal the request deserves.
            Err(err) => {
                assert!(
                    matches!(
                        err.kind,
                        engine::ErrorKind::NoSnapshot | engine::ErrorKind::OutsideRetention { .. }
                    ),
                    "{err:?}"
                );
                return;
            }
        };
        assert_eq!(op.status, Status::Succeeded, "a branch is whole when made");
        self.m.cs.push(M {
            name,
            own: vec![],
            base: Some((i, op.snapshot_lsn, history, req.collections.clone())),
            deleted: false,
        });
        self.times.push(vec![]);
    }

    fn steps(&self, n: u8, k: i64) {
        let e = self.e();
        for _ in 0..n {
            let Some(id) = e.next_runnable("w").unwrap() else {
                return;
            };
            if e.claim(&id, "w").unwrap() {
                e.step(&id, "w", Some(k)).unwrap();
                let _ = e.release(&id, "w");
            }
        }
    }

    fn crash(&self, k: i64) {
        let path = self.fx.dir.path().join("db.sqlite");
        let e = self.e();
        let Some(id) = e.next_runnable("w").unwrap() else {
            return;
        };
        let conn = NativeDb::open(&path).unwrap();
        let crashing = Crashing {
            inner: &conn,
            countdown: Cell::new(i64::MAX),
        };
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let ce = Engine::open(&crashing, &self.fx.env)
                .unwrap()
                .with_config(self.cfg.clone());
            if ce.claim(&id, "crasher").unwrap() {
                crashing.countdown.set(k);
                let _ = ce.step(&id, "crasher", Some(3));
            }
        }));
        drop(conn);
        // The crashed worker's lease runs out.
        self.fx.env.advance(self.cfg.lease_us + 1);
    }

    /// Every read of every live container equals the model.
    fn check(&self) -> Result<(), TestCaseError> {
        let e = self.e();
        for (i, mc) in self.m.cs.iter().enumerate() {
            if mc.deleted {
                prop_assert!(e.container("native", "t", &mc.name).is_err());
                continue;
            }
            let c = e.container("native", "t", &mc.name).unwrap();
            let want = self.m.live(i, i64::MAX);
            // Export pages (page size 3 exercises the cursor).
            let mut got = BTreeMap::new();
            let mut after: Option<(String, String)> = None;
            loop {
                let page = e
                    .export_page(
                        &c,
                        i64::MAX,
                        after.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
                        3,
                    )
                    .unwrap();
                if page.is_empty() {
                    break;
                }
                for v in &page {
                    got.insert(
                        (v.collection.clone(), v.key.clone()),
                        (v.lsn, v.body.clone().unwrap()),
                    );
                }
                let last = page.last().unwrap();
                after = Some((last.collection.clone(), last.key.clone()));
            }
            prop_assert_eq!(&got, &want, "export of {}", mc.name);
            // List pages per collection, and counts.
            let stats = e.collections(&c).unwrap();
            for col in COLLECTIONS {
                let mut keys = Vec::new();
                let mut after: Option<String> = None;
                loop {
                    let page = e.list(&c, col, after.as_deref(), 2, AsOf::Head).unwrap();
                    if page.is_empty() {
                        break;
                    }
                    keys.extend(page.iter().map(|v| v.key.clone()));
                    after = page.last().map(|v| v.key.clone());
                }
                let want_keys: Vec<String> = want
                    .keys()
                    .filter(|(c2, _)| c2 == col)
                    .map(|(_, k)| k.clone())
                    .collect();
                prop_assert_eq!(&keys, &want_keys, "list {} of {}", col, mc.name);
                let s = stats.iter().find(|s| s.name == col);
                let want_bytes: i64 = want
                    .iter()
                    .filter(|((c2, _), _)| c2 == col)
                    .map(|(_, (_, b))| b.len() as i64)
                    .sum();
                prop_assert_eq!(
                    s.map(|s| s.records).unwrap_or(0),
                    want_keys.len() as i64,
                    "count {} of {}",
                    col,
                    mc.name
                );
                prop_assert_eq!(
                    s.map(|s| s.bytes).unwrap_or(0),
                    want_bytes,
                    "bytes {} of {}",
                    col,
                    mc.name
                );
                if !self.pruned {
                    let versions = self
                        .m
                        .visible(i)
                        .keys()
                        .filter(|(c2, _, _)| c2 == col)
                        .count() as i64;
                    prop_assert_eq!(
                        s.map(|s| s.versions).unwrap_or(0),
                        versions,
                        "versions {} of {}",
                        col,
                        mc.name
                    );
                }
            }
            // Every key: latest, as of some LSNs, history.
            let visible = self.m.visible(i);
            let lsns: BTreeSet<i64> = visible
                .keys()
                .map(|k| k.2)
                .filter(|l| *l >= c.floor_lsn)
                .collect();
            for col in COLLECTIONS {
                for k in 0..KEYS {
                    let key = format!("k{k}");
                    let got = e
                        .get(&c, col, &key, AsOf::Head)
                        .ok()
                        .map(|v| (v.lsn, v.body.unwrap()));
                    prop_assert_eq!(
                        got,
                        want.get(&(col.to_string(), key.clone())).cloned(),
                        "get {}/{} of {}",
                        col,
                        key,
                        mc.name
                    );
                    for at in lsns.iter().step_by(3) {
                        let got = e
                            .get(&c, col, &key, AsOf::Lsn(*at))
                            .ok()
                            .map(|v| (v.lsn, v.body.unwrap()));
                        let want_at = self
                            .m
                            .live(i, *at)
                            .get(&(col.to_string(), key.clone()))
                            .cloned();
                        prop_assert_eq!(
                            got,
                            want_at,
                            "get {}/{} of {} at {}",
                            col,
                            key,
                            mc.name,
                            at
                        );
                    }
                    let hist: Vec<(i64, Option<String>)> = e
                        .history(&c, col, &key, None, 1000)
                        .unwrap()
                        .into_iter()
                        .filter(|v| v.lsn > c.floor_lsn)
                        .map(|v| (v.lsn, v.body))
                        .collect();
                    let mut want_hist: Vec<(i64, Option<String>)> = visible
                        .iter()
                        .filter(|((c2, k2, l), _)| c2 == col && *k2 == key && *l > c.floor_lsn)
                        .map(|((_, _, l), (b, _))| (*l, b.clone()))
                        .collect();
                    want_hist.reverse();
                    prop_assert_eq!(hist, want_hist, "history {}/{} of {}", col, key, mc.name);
                }
            }
        }
        Ok(())
    }
}

fn run(actions: Vec<Action>) -> Result<(), TestCaseError> {
    run_on(Fx::new(), actions)
}

fn run_on(fx: Fx, actions: Vec<Action>) -> Result<(), TestCaseError> {
    let cfg = Config {
        lease_us: 1_000_000,
        max_branch_depth: 3,
        ..Config::default()
    };
    let mut r = Run {
        fx: &fx,
        cfg,
        m: Model { cs: vec![] },
        times: vec![],
        pruned: false,
        import: None,
    };
    r.e()
        .create_container("native", "t", "c0", &serde_json::json!({}))
        .unwrap();
    r.m.cs.push(M {
        name: "c0".into(),
        own: vec![],
        base: None,
        deleted: false,
    });
    r.times.push(vec![]);
    for a in actions {
        match a {
            Action::Write(i, b) => {
                if let Some(i) = r.pick(i) {
                    r.write(i, &b);
                }
            }
            Action::Branch(i, h, f, s, p) => {
                if let Some(i) = r.pick(i) {
                    r.branch(i, h, f, s, p);
                }
            }
            Action::Snapshot(i) => {
                if let Some(i) = r.pick(i) {
                    let e = r.e();
                    let c = e.container("native", "t", &r.m.cs[i].name).unwrap();
                    e.snapshot(&c, None).unwrap();
                }
            }
            Action::Hydrate(i) => {
                if let Some(i) = r.pick(i) {
                    let e = r.e();
                    let c = e.container("native", "t", &r.m.cs[i].name).unwrap();
                    e.hydrate(&c).unwrap();
                }
            }
            Action::Steps(n, k) => r.steps(n, k),
            Action::Crash(k) => r.crash(k),
            Action::Delete(i) => {
                if let Some(i) = r.pick(i) {
                    let name = r.m.cs[i].name.clone();
                    r.e().delete_container("native", "t", &name).unwrap();
                    r.m.cs[i].deleted = true;
                    if r.import.as_ref().is_some_and(|(j, _, _)| *j == i) {
                        r.import = None; // abandoned with its container
                    }
                }
            }
            Action::Prune => {
                fx.env.advance(2_000);
                for _ in 0..4 {
                    if r.e().prune_step(1_000, 4).unwrap() > 0 {
                        r.pruned = true;
                    }
                }
            }
            Action::Purge => {
                for _ in 0..3 {
                    r.e().purge_step(5).unwrap();
                }
            }
            Action::ImportOpen(i) => {
                if let Some(i) = r.pick(i) {
                    r.import_open(i);
                }
            }
            Action::ImportStage(b) => r.import_stage(&b),
            Action::ImportEnd(commit) => r.import_end(commit),
            Action::ImportExpire => {
                if r.import.is_some() {
                    fx.env.advance(61_000_000);
                    assert_eq!(r.e().expire_imports(10).unwrap(), 1);
                    r.import = None;
                }
            }
        }
        fx.env.advance(100);
        r.check()?;
    }
    // Let every hydration finish and every purge run: still equal, and a
    // deleted container's rows are gone once nothing reads through it.
    fx.env.advance(r.cfg.lease_us + 1);
    let e = r.e();
    for _ in 0..10_000 {
        let Some(id) = e.next_runnable("w").unwrap() else {
            break;
        };
        if e.claim(&id, "w").unwrap() {
            e.step(&id, "w", Some(7)).unwrap();
            e.release(&id, "w").unwrap();
        }
    }
    for _ in 0..200 {
        e.purge_step(50).unwrap();
    }
    r.check()?;
    let left: i64 = e
        .db()
        .execute(
            "SELECT count(*) FROM containers c WHERE deleting = 1 AND NOT EXISTS \
             (SELECT 1 FROM branch_levels b WHERE b.ancestor = c.id)",
            &[],
        )
        .unwrap()[0]
        .i64(0)
        .unwrap();
    prop_assert_eq!(
        left,
        0,
        "every deleted container nothing reads through is purged"
    );
    let dangling: i64 = e
        .db()
        .execute(
            "SELECT count(*) FROM branch_levels b JOIN containers c ON c.id = b.ancestor WHERE c.deleting = 1 \
             AND NOT EXISTS (SELECT 1 FROM operations o WHERE o.kind = 'hydrate' AND o.status = 'failed')",
            &[],
        )
        .unwrap()[0]
        .i64(0)
        .unwrap();
    prop_assert_eq!(
        dangling,
        0,
        "no branch reads through a deleted container once hydrations ran"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: common::cases(200), .. ProptestConfig::default() })]

    #[test]
    fn every_read_of_every_container_equals_the_model(actions in prop::collection::vec(action(), 1..40)) {
        run(actions)?;
    }
}

proptest! {
    // The same on 4 KiB pages, where records are a rowid table (a remote
    // libSQL server's layout): same SQL, other storage.
    #![proptest_config(ProptestConfig { cases: common::cases(50), .. ProptestConfig::default() })]

    #[test]
    fn every_read_equals_the_model_on_small_pages(actions in prop::collection::vec(action(), 1..40)) {
        run_on(Fx::on_small_pages(), actions)?;
    }
}
