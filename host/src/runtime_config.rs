//! Spin's runtime configuration file (`spin up --runtime-config-file`), the
//! part that says where an app's SQLite databases and key-value stores live:
//!
//! ```toml
//! [sqlite_database.default]
//! type = "libsql"                 # a remote libSQL server: sqld, Turso
//! url = "http://127.0.0.1:8080"   # or https://<db>.turso.io
//! token = "…"                     # required, as by Spin: "" for a local sqld
//!
//! [key_value_store.default]
//! type = "redis"
//! url = "redis://127.0.0.1:6379"
//! ```
//!
//! `type = "spin"` (with an optional `path`, relative to the config file)
//! is a local file, as without a runtime config. Other types Spin knows
//! (`azure_cosmos`, `aws_dynamo`, …) are refused with their name. Tables
//! this host does not use (`[llm_compute]`, `[[config_provider]]`, …) are
//! ignored, as a Spin without those factors would.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;

/// Where a SQLite database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqliteConfig {
    /// A local file (`None`: Spin's default `<state>/sqlite_db.db`).
    Local { path: Option<PathBuf> },
    /// A libSQL server over Hrana (HTTP).
    Libsql { url: String, token: String },
}

/// Where a key-value store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvConfig {
    /// A local file (`None`: Spin's default `<state>/sqlite_key_value.db`).
    Local { path: Option<PathBuf> },
    /// A Redis server.
    Redis { url: String },
}

/// The parsed file: databases and stores by label.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeConfig {
    pub sqlite_databases: BTreeMap<String, SqliteConfig>,
    pub key_value_stores: BTreeMap<String, KvConfig>,
}

#[derive(Deserialize)]
struct RawFile {
    #[serde(default)]
    sqlite_database: BTreeMap<String, RawStore>,
    #[serde(default)]
    key_value_store: BTreeMap<String, RawStore>,
}

#[derive(Deserialize)]
struct RawStore {
    #[serde(rename = "type")]
    kind: String,
    url: Option<String>,
    token: Option<String>,
    path: Option<PathBuf>,
}

impl RuntimeConfig {
    /// Read a runtime config file.
    pub fn from_file(path: &Path) -> Result<RuntimeConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading runtime config {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        RuntimeConfig::parse(&text, base)
            .with_context(|| format!("runtime config {}", path.display()))
    }

    /// Parse a runtime config; relative paths are taken from `base`.
    pub fn parse(text: &str, base: &Path) -> Result<RuntimeConfig> {
        let raw: RawFile = toml::from_str(text)?;
        let mut out = RuntimeConfig::default();
        for (label, s) in raw.sqlite_database {
            let c = match s.kind.as_str() {
                "spin" => SqliteConfig::Local {
                    path: s.path.map(|p| base.join(p)),
                },
                "libsql" => SqliteConfig::Libsql {
                    url: s
                        .url
                        .ok_or_else(|| anyhow!("[sqlite_database.{label}]: libsql needs `url`"))?,
                    // Spin requires it too (empty for a server without auth).
                    token: s.token.ok_or_else(|| {
                        anyhow!("[sqlite_database.{label}]: libsql needs `token` (\"\" for none)")
                    })?,
                },
                other => bail!(
                    "[sqlite_database.{label}]: type {other:?} is not supported (\"spin\" or \"libsql\")"
                ),
            };
            out.sqlite_databases.insert(label, c);
        }
        for (label, s) in raw.key_value_store {
            let c = match s.kind.as_str() {
                "spin" => KvConfig::Local {
                    path: s.path.map(|p| base.join(p)),
                },
                "redis" => KvConfig::Redis {
                    url: s
                        .url
                        .ok_or_else(|| anyhow!("[key_value_store.{label}]: redis needs `url`"))?,
                },
                other => bail!(
                    "[key_value_store.{label}]: type {other:?} is not supported (\"spin\" or \"redis\")"
                ),
            };
            out.key_value_stores.insert(label, c);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_spins_own_tables() {
        let c = RuntimeConfig::parse(
            r#"
            [sqlite_database.default]
            type = "libsql"
            url = "http://127.0.0.1:8080"
            token = "t"

            [key_value_store.default]
            type = "redis"
            url = "redis://127.0.0.1:6379"

            [key_value_store.cache]
            type = "spin"
            path = "kv/cache.db"

            [llm_compute]
            type = "remote_http"
            "#,
            Path::new("/etc/app"),
        )
        .unwrap();
        assert_eq!(
            c.sqlite_databases["default"],
            SqliteConfig::Libsql {
                url: "http://127.0.0.1:8080".into(),
                token: "t".into()
            }
        );
        assert_eq!(
            c.key_value_stores["default"],
            KvConfig::Redis {
                url: "redis://127.0.0.1:6379".into()
            }
        );
        assert_eq!(
            c.key_value_stores["cache"],
            KvConfig::Local {
                path: Some("/etc/app/kv/cache.db".into())
            }
        );
    }

    #[test]
    fn refuses_what_it_cannot_serve_by_name() {
        let e = RuntimeConfig::parse(
            "[key_value_store.default]\ntype = \"azure_cosmos\"\n",
            Path::new("."),
        )
        .unwrap_err();
        assert!(e.to_string().contains("azure_cosmos"), "{e}");
        let e = RuntimeConfig::parse(
            "[sqlite_database.default]\ntype = \"libsql\"\n",
            Path::new("."),
        )
        .unwrap_err();
        assert!(e.to_string().contains("needs `url`"), "{e}");
        // Spin refuses a libsql database without `token`; so does the host.
        let e = RuntimeConfig::parse(
            "[sqlite_database.default]\ntype = \"libsql\"\nurl = \"http://x\"\n",
            Path::new("."),
        )
        .unwrap_err();
        assert!(e.to_string().contains("needs `token`"), "{e}");
    }
}
