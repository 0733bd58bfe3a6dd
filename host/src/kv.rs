//! `fermyon:spin/key-value@2.0.0` over one SQLite file laid out like Spin's
//! `.spin/sqlite_key_value.db`: table `spin_key_value(store, key, value)`,
//! or, where the runtime config ([`crate::runtime_config`]) says so, a Redis
//! server (keys as the guest names them, as Spin's Redis store does).
//!
//! A component may open only the stores its manifest lists in
//! `key_value_stores`; any other label is `access-denied`. Spin knows the
//! store `default` without runtime configuration; so does this host. Other
//! labels need the runtime config (`no-such-store`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::runtime_config::KvConfig;

use anyhow::{Context, Result};
use rusqlite::{params, Connection, OptionalExtension};
use wasmtime::component::Resource;

use crate::bindings::blocking;
use crate::bindings::fermyon::spin::key_value::{self, Error};

/// The store a guest opened (the resource behind `store`).
pub struct OpenStore {
    label: String,
}

/// The key-value file shared by every component of the app.
pub struct KvBackend {
    conn: Mutex<Connection>,
}

impl KvBackend {
    pub fn open(path: &Path) -> Result<KvBackend> {
        let conn = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS spin_key_value (
                store TEXT NOT NULL,
                key   TEXT NOT NULL,
                value BLOB NOT NULL,
                PRIMARY KEY (store, key)
            )",
        )?;
        Ok(KvBackend {
            conn: Mutex::new(conn),
        })
    }

    fn with<R>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<R>) -> Result<R, Error> {
        blocking(|| {
            let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&conn).map_err(|e| Error::Other(e.to_string()))
        })
    }

    pub fn get(&self, store: &str, key: &str) -> Result<Option<Vec<u8>>, Error> {
        self.with(|c| {
            c.query_row(
                "SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2",
                params![store, key],
                |r| r.get(0),
            )
            .optional()
        })
    }

    pub fn set(&self, store: &str, key: &str, value: &[u8]) -> Result<(), Error> {
        self.with(|c| {
            c.execute(
                "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
                params![store, key, value],
            )
            .map(|_| ())
        })
    }

    pub fn delete(&self, store: &str, key: &str) -> Result<(), Error> {
        self.with(|c| {
            c.execute(
                "DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2",
                params![store, key],
            )
            .map(|_| ())
        })
    }

    pub fn exists(&self, store: &str, key: &str) -> Result<bool, Error> {
        self.get(store, key).map(|v| v.is_some())
    }

    pub fn keys(&self, store: &str) -> Result<Vec<String>, Error> {
        self.with(|c| {
            let mut st =
                c.prepare("SELECT key FROM spin_key_value WHERE store = ?1 ORDER BY key")?;
            let rows = st.query_map(params![store], |r| r.get(0))?;
            rows.collect()
        })
    }
}

/// A Redis server behind one or more store labels. One connection, made
/// again after an error; every call has a 5 s timeout.
pub struct RedisKv {
    client: redis::Client,
    conn: Mutex<Option<redis::Connection>>,
}

const REDIS_TIMEOUT: Duration = Duration::from_secs(5);

impl RedisKv {
    pub fn open(url: &str) -> Result<RedisKv> {
        let client = redis::Client::open(url).with_context(|| format!("redis url {url}"))?;
        let kv = RedisKv {
            client,
            conn: Mutex::new(None),
        };
        // Fail at start, not at the first request, when the server is absent.
        kv.with(|c| redis::cmd("PING").query::<String>(c))
            .map_err(|e| anyhow::anyhow!("redis {url}: {e:?}"))?;
        Ok(kv)
    }

    fn with<R>(
        &self,
        f: impl Fn(&mut redis::Connection) -> redis::RedisResult<R>,
    ) -> Result<R, Error> {
        blocking(|| {
            let mut slot = self.conn.lock().unwrap_or_else(|p| p.into_inner());
            // One retry on a fresh connection: a server restart or an idle
            // connection closed by the server is not the guest's problem.
            for attempt in 0..2 {
                if slot.is_none() {
                    let c = self
                        .client
                        .get_connection_with_timeout(REDIS_TIMEOUT)
                        .and_then(|c| {
                            c.set_read_timeout(Some(REDIS_TIMEOUT))?;
                            c.set_write_timeout(Some(REDIS_TIMEOUT))?;
                            Ok(c)
                        });
                    match c {
                        Ok(c) => *slot = Some(c),
                        Err(e) => return Err(Error::Other(format!("redis: {e}"))),
                    }
                }
                let conn = slot.as_mut().expect("connected above");
                match f(conn) {
                    Ok(v) => return Ok(v),
                    Err(e) if attempt == 0 && (e.is_io_error() || e.is_connection_dropped()) => {
                        *slot = None;
                    }
                    Err(e) => {
                        if e.is_io_error() || e.is_connection_dropped() {
                            *slot = None;
                        }
                        return Err(Error::Other(format!("redis: {e}")));
                    }
                }
            }
            Err(Error::Other("redis: no connection".into()))
        })
    }
}

/// One store the app can open.
enum Store {
    Local(Arc<KvBackend>),
    Redis(Arc<RedisKv>),
}

/// The app's key-value stores by label: `default` is the local file unless
/// the runtime config says otherwise.
pub struct Stores(BTreeMap<String, Store>);

impl Stores {
    pub fn new(state_dir: &Path, config: &BTreeMap<String, KvConfig>) -> Result<Stores> {
        let local = Arc::new(KvBackend::open(&state_dir.join("sqlite_key_value.db"))?);
        let mut stores = BTreeMap::new();
        stores.insert("default".to_string(), Store::Local(local.clone()));
        let mut redis: BTreeMap<String, Arc<RedisKv>> = BTreeMap::new();
        for (label, c) in config {
            let store = match c {
                KvConfig::Local { path: None } => Store::Local(local.clone()),
                KvConfig::Local { path: Some(p) } => Store::Local(Arc::new(KvBackend::open(p)?)),
                KvConfig::Redis { url } => {
                    let r = match redis.get(url) {
                        Some(r) => r.clone(),
                        None => {
                            let r = Arc::new(
                                RedisKv::open(url)
                                    .with_context(|| format!("[key_value_store.{label}]"))?,
                            );
                            redis.insert(url.clone(), r.clone());
                            r
                        }
                    };
                    Store::Redis(r)
                }
            };
            stores.insert(label.clone(), store);
        }
        Ok(Stores(stores))
    }

    fn has(&self, label: &str) -> bool {
        self.0.contains_key(label)
    }

    pub fn get(&self, label: &str, key: &str) -> Result<Option<Vec<u8>>, Error> {
        match self.store(label)? {
            Store::Local(l) => l.get(label, key),
            Store::Redis(r) => r.with(|c| redis::cmd("GET").arg(key).query(c)),
        }
    }

    pub fn set(&self, label: &str, key: &str, value: &[u8]) -> Result<(), Error> {
        match self.store(label)? {
            Store::Local(l) => l.set(label, key, value),
            Store::Redis(r) => r.with(|c| redis::cmd("SET").arg(key).arg(value).query(c)),
        }
    }

    pub fn delete(&self, label: &str, key: &str) -> Result<(), Error> {
        match self.store(label)? {
            Store::Local(l) => l.delete(label, key),
            Store::Redis(r) => r.with(|c| redis::cmd("DEL").arg(key).query(c)),
        }
    }

    pub fn exists(&self, label: &str, key: &str) -> Result<bool, Error> {
        match self.store(label)? {
            Store::Local(l) => l.exists(label, key),
            Store::Redis(r) => r.with(|c| redis::cmd("EXISTS").arg(key).query(c)),
        }
    }

    pub fn keys(&self, label: &str) -> Result<Vec<String>, Error> {
        match self.store(label)? {
            Store::Local(l) => l.keys(label),
            Store::Redis(r) => r.with(|c| {
                let mut keys: Vec<String> = Vec::new();
                let mut cursor: u64 = 0;
                loop {
                    let (next, page): (u64, Vec<String>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("COUNT")
                        .arg(1000)
                        .query(c)?;
                    keys.extend(page);
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
                keys.sort();
                keys.dedup();
                Ok(keys)
            }),
        }
    }

    fn store(&self, label: &str) -> Result<&Store, Error> {
        self.0.get(label).ok_or(Error::NoSuchStore)
    }
}

/// What `fermyon:spin/key-value` sees of a store's state: the app's
/// stores, the labels the component's manifest lists, and the resource
/// table.
pub struct KvView<'a> {
    pub stores: &'a Stores,
    pub allowed: &'a [String],
    pub table: &'a mut wasmtime::component::ResourceTable,
}

/// The linker's projection type for [`KvView`].
pub struct Kv;

impl wasmtime::component::HasData for Kv {
    type Data<'a> = KvView<'a>;
}

impl KvView<'_> {
    fn kv_label(&self, store: &Resource<OpenStore>) -> wasmtime::Result<String> {
        Ok(self.table.get(store)?.label.clone())
    }

    fn kv_open_impl(
        &mut self,
        label: String,
    ) -> wasmtime::Result<Result<Resource<OpenStore>, Error>> {
        if !self.allowed.iter().any(|s| s == &label) {
            return Ok(Err(Error::AccessDenied));
        }
        if !self.stores.has(&label) {
            return Ok(Err(Error::NoSuchStore));
        }
        Ok(Ok(self.table.push(OpenStore { label })?))
    }
}

impl key_value::Host for KvView<'_> {}

impl key_value::HostStore for KvView<'_> {
    fn open(&mut self, label: String) -> wasmtime::Result<Result<Resource<OpenStore>, Error>> {
        self.kv_open_impl(label)
    }

    fn get(
        &mut self,
        s: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        let label = self.kv_label(&s)?;
        Ok(self.stores.get(&label, &key))
    }

    fn set(
        &mut self,
        s: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let label = self.kv_label(&s)?;
        Ok(self.stores.set(&label, &key, &value))
    }

    fn delete(
        &mut self,
        s: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        let label = self.kv_label(&s)?;
        Ok(self.stores.delete(&label, &key))
    }

    fn exists(
        &mut self,
        s: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, Error>> {
        let label = self.kv_label(&s)?;
        Ok(self.stores.exists(&label, &key))
    }

    fn get_keys(&mut self, s: Resource<OpenStore>) -> wasmtime::Result<Result<Vec<String>, Error>> {
        let label = self.kv_label(&s)?;
        Ok(self.stores.keys(&label))
    }

    fn drop(&mut self, s: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(s)?;
        Ok(())
    }
}
