//! The part of Spin's manifest (version 2) that the host understands.
//!
//! Unknown keys are ignored, so a `spin.toml` written for real Spin (with
//! `[component.x.build]`, descriptions, and so on) loads unchanged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// A loaded `spin.toml`.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Directory of the manifest; component sources are relative to it.
    pub base_dir: PathBuf,
    pub application: Application,
    pub variables: BTreeMap<String, VariableDecl>,
    pub http_triggers: Vec<HttpTrigger>,
    pub cron_triggers: Vec<CronTrigger>,
    pub components: BTreeMap<String, ComponentDecl>,
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct Application {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub version: Option<String>,
}

/// An application variable: `{ default = "..." }` or `{ required = true }`, optionally `secret`.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct VariableDecl {
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub secret: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HttpTrigger {
    pub route: String,
    pub component: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CronTrigger {
    pub component: String,
    pub cron_expression: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ComponentDecl {
    pub source: String,
    #[serde(default)]
    pub sqlite_databases: Vec<String>,
    #[serde(default)]
    pub key_value_stores: Vec<String>,
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    /// Component variable name → template (e.g. `"{{ admin_token }}"`).
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct Raw {
    spin_manifest_version: toml::Value,
    #[serde(default)]
    application: Application,
    #[serde(default)]
    variables: BTreeMap<String, VariableDecl>,
    #[serde(default)]
    trigger: RawTriggers,
    #[serde(default)]
    component: BTreeMap<String, ComponentDecl>,
}

#[derive(Deserialize, Default)]
struct RawTriggers {
    #[serde(default)]
    http: Vec<HttpTrigger>,
    #[serde(default)]
    cron: Vec<CronTrigger>,
}

impl Manifest {
    /// Read and check a manifest file.
    pub fn load(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading manifest {}", path.display()))?;
        let base_dir = path
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .unwrap_or(Path::new("."))
            .to_path_buf();
        Self::parse(&text, base_dir).with_context(|| format!("in manifest {}", path.display()))
    }

    /// Parse manifest text; `base_dir` resolves relative component sources.
    pub fn parse(text: &str, base_dir: PathBuf) -> Result<Manifest> {
        let raw: Raw = toml::from_str(text)?;
        if raw.spin_manifest_version.as_integer() != Some(2) {
            bail!("only spin_manifest_version = 2 is supported");
        }
        for (name, decl) in &raw.variables {
            check_variable_name(name)?;
            if decl.required && decl.default.is_some() {
                bail!("variable {name:?}: `required` and `default` cannot both be set");
            }
        }
        for t in &raw.trigger.http {
            if !raw.component.contains_key(&t.component) {
                bail!(
                    "http trigger {:?} names unknown component {:?}",
                    t.route,
                    t.component
                );
            }
            crate::router::Route::parse(&t.route)?;
        }
        for t in &raw.trigger.cron {
            if !raw.component.contains_key(&t.component) {
                bail!("cron trigger names unknown component {:?}", t.component);
            }
            crate::cron::parse_schedule(&t.cron_expression)?;
        }
        for (id, c) in &raw.component {
            for name in c.variables.keys() {
                check_variable_name(name).with_context(|| format!("component {id}"))?;
            }
        }
        Ok(Manifest {
            base_dir,
            application: raw.application,
            variables: raw.variables,
            http_triggers: raw.trigger.http,
            cron_triggers: raw.trigger.cron,
            components: raw.component,
        })
    }

    /// The absolute path of a component's Wasm file.
    pub fn source_path(&self, component: &str) -> Option<PathBuf> {
        self.components
            .get(component)
            .map(|c| self.base_dir.join(&c.source))
    }
}

/// Spin's variable names: lowercase ASCII letters, digits and `_`, starting with a letter.
pub fn check_variable_name(name: &str) -> Result<()> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        bail!("invalid variable name {name:?}: use lowercase letters, digits and '_', starting with a letter");
    }
    Ok(())
}
