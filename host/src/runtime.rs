//! The wasmtime side: one [`Engine`] and [`Linker`] for the app, every
//! component compiled once (and cached on disk between runs), and a fresh
//! store per request or cron tick, as Spin does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, InstancePre, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::bindings::fermyon;
use crate::kv::{Kv, KvView, Stores};
use crate::manifest::Manifest;
use crate::postgres::{Postgres, PostgresView};
use crate::sqlite::{Sqlite, SqliteView};
use crate::variables::{Vars, VarsView};
use crate::router::Router;
use crate::variables::Resolver;

/// How to run an app.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// Path of `spin.toml`.
    pub manifest: PathBuf,
    /// State directory (Spin's `.spin/`): `sqlite_db.db`, `sqlite_key_value.db`.
    pub state_dir: PathBuf,
    /// Variable values given on the command line (`--variable name=value`),
    /// below `SPIN_VARIABLE_*` environment variables in precedence, as in Spin.
    pub variables: BTreeMap<String, String>,
    /// Where compiled components are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Let components write to the host's stdout/stderr.
    pub inherit_stdio: bool,
    /// Spin's runtime configuration (`--runtime-config-file`): where the
    /// databases and key-value stores live. `None`: local files in
    /// `state_dir`, as `spin up` without one.
    pub runtime_config: Option<crate::runtime_config::RuntimeConfig>,
}

impl HostOptions {
    pub fn new(manifest: impl Into<PathBuf>, state_dir: impl Into<PathBuf>) -> HostOptions {
        let manifest = manifest.into();
        HostOptions {
            cache_dir: Some(default_cache_dir(&manifest)),
            manifest,
            state_dir: state_dir.into(),
            variables: BTreeMap::new(),
            inherit_stdio: true,
            runtime_config: None,
        }
    }
}

/// `$SPINOFF_HOST_CACHE`, else `target/spinoff-host-cache` beside the manifest.
pub fn default_cache_dir(manifest: &Path) -> PathBuf {
    if let Ok(dir) = std::env::var("SPINOFF_HOST_CACHE") {
        return PathBuf::from(dir);
    }
    manifest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join("target")
        .join("spinoff-host-cache")
}

/// A component ready to instantiate.
pub(crate) struct Loaded {
    pub pre: InstancePre<State>,
    pub proxy: Option<ProxyPre<State>>,
}

/// A running app: the manifest, compiled components and shared state.
pub struct Host {
    pub(crate) engine: Engine,
    pub(crate) manifest: Manifest,
    pub(crate) router: Router,
    /// Component id of each route, in `router` order.
    pub(crate) route_components: Vec<String>,
    pub(crate) components: BTreeMap<String, Arc<Loaded>>,
    pub(crate) shared: Arc<Shared>,
}

/// State every store of the app shares.
pub struct Shared {
    pub state_dir: PathBuf,
    pub kv: Stores,
    /// The app's SQLite databases by label.
    pub databases: crate::sqlite::Databases,
    pub variables: Resolver,
    /// The app's PostgreSQL pools, one per address.
    pub postgres: crate::postgres::Pools,
    /// Each component's `allowed_outbound_hosts`, templates rendered.
    pub outbound: BTreeMap<String, Vec<String>>,
    pub inherit_stdio: bool,
    /// The largest linear memory any instance of each component has had.
    pub memory_peaks: Arc<std::sync::Mutex<BTreeMap<String, usize>>>,
}

/// Per-store data: WASI, `wasi:http`, and which component this is.
pub struct State {
    pub(crate) wasi: WasiCtx,
    pub(crate) http: WasiHttpCtx,
    pub(crate) table: ResourceTable,
    pub(crate) component: String,
    pub(crate) shared: Arc<Shared>,
    pub(crate) manifest: Arc<crate::manifest::ComponentDecl>,
    pub(crate) memory: MemoryMeter,
}

/// Records the largest linear memory an instance asks for, per component
/// (for benchmarks: guest memory must stay flat in dataset size). It never
/// refuses growth.
pub(crate) struct MemoryMeter {
    peak: Arc<std::sync::Mutex<BTreeMap<String, usize>>>,
    component: String,
}

impl wasmtime::ResourceLimiter for MemoryMeter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let mut peak = self.peak.lock().unwrap();
        let e = peak.entry(self.component.clone()).or_insert(0);
        *e = (*e).max(desired);
        Ok(true)
    }
    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

impl State {
    /// What `fermyon:spin/key-value` sees.
    fn kv(&mut self) -> KvView<'_> {
        KvView {
            stores: &self.shared.kv,
            allowed: &self.manifest.key_value_stores,
            table: &mut self.table,
        }
    }

    /// What `fermyon:spin/sqlite` sees.
    fn sqlite(&mut self) -> SqliteView<'_> {
        SqliteView {
            databases: &self.shared.databases,
            allowed: &self.manifest.sqlite_databases,
            table: &mut self.table,
        }
    }

    /// What `spin:postgres/postgres` sees.
    fn postgres(&mut self) -> PostgresView<'_> {
        PostgresView {
            pools: &self.shared.postgres,
            allowed: self
                .shared
                .outbound
                .get(&self.component)
                .map(Vec::as_slice)
                .unwrap_or(&[]),
            table: &mut self.table,
        }
    }

    /// What `fermyon:spin/variables` sees.
    fn variables(&mut self) -> VarsView<'_> {
        VarsView {
            resolver: &self.shared.variables,
            component: &self.component,
        }
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: Default::default(),
        }
    }
}

impl Host {
    /// Load the manifest and compile (or load from cache) every component.
    pub fn new(opts: HostOptions) -> Result<Host> {
        let manifest = Manifest::load(&opts.manifest)?;
        let mut config = Config::new();
        config.wasm_component_model(true);
        let engine = Engine::new(&config)?;

        let mut linker: Linker<State> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        // Each Spin interface sees only its view of the store's state.
        fermyon::spin::key_value::add_to_linker::<State, Kv>(&mut linker, State::kv)?;
        fermyon::spin::sqlite::add_to_linker::<State, Sqlite>(&mut linker, State::sqlite)?;
        fermyon::spin::variables::add_to_linker::<State, Vars>(&mut linker, State::variables)?;
        crate::bindings::spin::postgres::postgres::add_to_linker::<State, Postgres>(
            &mut linker,
            State::postgres,
        )?;
        // The cron world's types-only interface: components import it, it has no functions.
        linker.instance("fermyon:spin-cron/cron-types@2.0.0")?;

        std::fs::create_dir_all(&opts.state_dir)
            .with_context(|| format!("creating state dir {}", opts.state_dir.display()))?;
        let runtime_config = opts.runtime_config.clone().unwrap_or_default();
        let kv = Stores::new(&opts.state_dir, &runtime_config.key_value_stores)?;
        let databases =
            crate::sqlite::Databases::new(&opts.state_dir, &runtime_config.sqlite_databases)?;
        let variables = Resolver::new(&manifest, &opts.variables)?;
        let mut outbound = BTreeMap::new();
        for (id, c) in &manifest.components {
            let hosts = c
                .allowed_outbound_hosts
                .iter()
                .map(|h| variables.render(h).map_err(|e| anyhow!("component {id:?}: allowed_outbound_hosts: {e}")))
                .collect::<Result<Vec<_>>>()?;
            outbound.insert(id.clone(), hosts);
        }

        let mut components = BTreeMap::new();
        let used: std::collections::BTreeSet<&str> = manifest
            .http_triggers
            .iter()
            .map(|t| t.component.as_str())
            .chain(manifest.cron_triggers.iter().map(|t| t.component.as_str()))
            .collect();
        for id in used {
            let path = manifest
                .source_path(id)
                .expect("validated by Manifest::parse");
            let component = load_component(&engine, &path, opts.cache_dir.as_deref())
                .with_context(|| format!("loading component {id:?} from {}", path.display()))?;
            let pre = linker
                .instantiate_pre(&component)
                .map_err(anyhow::Error::from)
                .with_context(|| {
                    format!("component {id:?} imports something the host does not provide")
                })?;
            let is_http = manifest.http_triggers.iter().any(|t| t.component == id);
            let proxy = if is_http {
                Some(ProxyPre::new(pre.clone()).map_err(anyhow::Error::from).with_context(|| {
                    format!("component {id:?} is routed by [[trigger.http]] but exports no wasi:http/incoming-handler")
                })?)
            } else {
                None
            };
            components.insert(id.to_string(), Arc::new(Loaded { pre, proxy }));
        }
        let routes: Vec<String> = manifest
            .http_triggers
            .iter()
            .map(|t| t.route.clone())
            .collect();
        let router = Router::new(&routes)?;
        let route_components = manifest
            .http_triggers
            .iter()
            .map(|t| t.component.clone())
            .collect();
        Ok(Host {
            engine,
            router,
            route_components,
            components,
            shared: Arc::new(Shared {
                state_dir: opts.state_dir.clone(),
                kv,
                variables,
                postgres: crate::postgres::Pools::new()?,
                outbound,
                inherit_stdio: opts.inherit_stdio,
                memory_peaks: Default::default(),
                databases,
            }),
            manifest,
        })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The names of the interfaces `component` imports and exports (e.g.
    /// `fermyon:spin/sqlite@2.0.0`), or `None` if no trigger uses it. What
    /// `wasm-tools component wit` would list, without needing wasm-tools.
    pub fn interfaces(&self, component: &str) -> Option<(Vec<String>, Vec<String>)> {
        let loaded = self.components.get(component)?;
        let ty = loaded.pre.component().component_type();
        let imports = ty
            .imports(&self.engine)
            .map(|(name, _)| name.to_string())
            .collect();
        let exports = ty
            .exports(&self.engine)
            .map(|(name, _)| name.to_string())
            .collect();
        Some((imports, exports))
    }

    /// A fresh store for one request or tick of `component`.
    pub(crate) fn new_store(&self, component: &str) -> Store<State> {
        let mut wasi = WasiCtx::builder();
        if self.shared.inherit_stdio {
            wasi.inherit_stdout().inherit_stderr();
        }
        let decl = self
            .manifest
            .components
            .get(component)
            .cloned()
            .expect("known component");
        for (k, v) in &decl.environment {
            wasi.env(k, v);
        }
        let memory = MemoryMeter {
            peak: self.shared.memory_peaks.clone(),
            component: component.to_string(),
        };
        let mut store = Store::new(
            &self.engine,
            State {
                wasi: wasi.build(),
                http: WasiHttpCtx::new(),
                table: ResourceTable::new(),
                component: component.to_string(),
                shared: self.shared.clone(),
                manifest: Arc::new(decl),
                memory,
            },
        );
        store.limiter(|s| &mut s.memory);
        store
    }

    /// The largest linear memory (bytes) an instance of `component` has had,
    /// and reset it (so a benchmark can measure one phase at a time).
    pub fn take_memory_peak(&self, component: &str) -> usize {
        self.shared
            .memory_peaks
            .lock()
            .unwrap()
            .remove(component)
            .unwrap_or(0)
    }

    pub(crate) fn component(&self, id: &str) -> Result<Arc<Loaded>> {
        self.components
            .get(id)
            .cloned()
            .ok_or_else(|| anyhow!("no component {id:?} in the manifest's triggers"))
    }
}

/// Compile a component, or load its compiled form from `cache_dir`.
fn load_component(engine: &Engine, path: &Path, cache_dir: Option<&Path>) -> Result<Component> {
    let bytes = std::fs::read(path).with_context(|| {
        format!(
            "reading {} (build the components first: scripts/build-wasm)",
            path.display()
        )
    })?;
    let Some(cache_dir) = cache_dir else {
        return Ok(Component::new(engine, &bytes)?);
    };
    let mut h = Sha256::new();
    h.update(&bytes);
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    let mut compat = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut compat);
    h.update(std::hash::Hasher::finish(&compat).to_le_bytes());
    let key = hex::encode(&h.finalize()[..16]);
    let cached = cache_dir.join(format!("{key}.cwasm"));
    if cached.exists() {
        // SAFETY: the file was written by `Component::serialize` of this very
        // host build (its key includes the engine's compatibility hash), and
        // wasmtime checks the header again before using it.
        if let Ok(c) = unsafe { Component::deserialize_file(engine, &cached) } {
            return Ok(c);
        }
    }
    let component = Component::new(engine, &bytes)?;
    if std::fs::create_dir_all(cache_dir).is_ok() {
        if let Ok(ser) = component.serialize() {
            let tmp = cache_dir.join(format!("{key}.{}.tmp", std::process::id()));
            if std::fs::write(&tmp, ser).is_ok() {
                let _ = std::fs::rename(&tmp, &cached);
            }
        }
    }
    Ok(component)
}
