//! `fermyon:spin/key-value@2.0.0` over one SQLite file laid out like Spin's
//! `.spin/sqlite_key_value.db`: table `spin_key_value(store, key, value)`.
//!
//! A component may open only the stores its manifest lists in
//! `key_value_stores`; any other label is `access-denied`. Spin knows the
//! store `default` without runtime configuration; so does this host.

use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context, Result};
use rusqlite::{params, Connection, OptionalExtension};
use wasmtime::component::Resource;

use crate::runtime::fermyon::spin::key_value::{self, Error};
use crate::runtime::{blocking, State};

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

impl State {
    fn kv_label(&self, store: &Resource<OpenStore>) -> wasmtime::Result<String> {
        Ok(self.table.get(store)?.label.clone())
    }

    fn kv_open_impl(
        &mut self,
        label: String,
    ) -> wasmtime::Result<Result<Resource<OpenStore>, Error>> {
        if !self.manifest.key_value_stores.iter().any(|s| s == &label) {
            return Ok(Err(Error::AccessDenied));
        }
        if label != "default" {
            return Ok(Err(Error::NoSuchStore));
        }
        Ok(Ok(self.table.push(OpenStore { label })?))
    }
}

impl key_value::Host for State {}

impl key_value::HostStore for State {
    fn open(&mut self, label: String) -> wasmtime::Result<Result<Resource<OpenStore>, Error>> {
        self.kv_open_impl(label)
    }

    fn get(
        &mut self,
        s: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        let label = self.kv_label(&s)?;
        Ok(self.shared.kv.get(&label, &key))
    }

    fn set(
        &mut self,
        s: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let label = self.kv_label(&s)?;
        Ok(self.shared.kv.set(&label, &key, &value))
    }

    fn delete(
        &mut self,
        s: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        let label = self.kv_label(&s)?;
        Ok(self.shared.kv.delete(&label, &key))
    }

    fn exists(
        &mut self,
        s: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, Error>> {
        let label = self.kv_label(&s)?;
        Ok(self.shared.kv.exists(&label, &key))
    }

    fn get_keys(&mut self, s: Resource<OpenStore>) -> wasmtime::Result<Result<Vec<String>, Error>> {
        let label = self.kv_label(&s)?;
        Ok(self.shared.kv.keys(&label))
    }

    fn drop(&mut self, s: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(s)?;
        Ok(())
    }
}
