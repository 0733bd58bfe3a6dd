//! The `spinoff-host` command line: run a Spin app's components without
//! the `spin` CLI. In the library so that other binaries (the e2e suite's
//! instances) run exactly this.
//!
//! ```text
//! spinoff-host up   [--manifest spin.toml] [--listen 127.0.0.1:3000] [--state-dir .spin] [--variable k=v]... [--no-cron]
//!                   [--runtime-config-file FILE]
//! spinoff-host cron [--manifest spin.toml] [--state-dir .spin] COMPONENT   # one tick, then exit
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::{Host, HostOptions};
use anyhow::{anyhow, Result};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "spinoff-host",
    version,
    about = "Run a Spin app's components on wasmtime, as `spin up` would"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Common {
    /// The app's manifest.
    #[arg(long, default_value = "spin.toml", env = "SPINOFF_MANIFEST")]
    manifest: PathBuf,
    /// State directory, laid out like Spin's `.spin/`.
    #[arg(long, default_value = ".spin", env = "SPINOFF_STATE_DIR")]
    state_dir: PathBuf,
    /// Set an application variable (`SPIN_VARIABLE_<NAME>` in the environment wins, as in Spin).
    #[arg(long = "variable", value_name = "NAME=VALUE")]
    variables: Vec<String>,
    /// Directory for compiled components (default: target/spinoff-host-cache).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Spin's runtime configuration: where SQLite databases (`libsql`) and
    /// key-value stores (`redis`) live, as `spin up --runtime-config-file`.
    #[arg(long, env = "SPINOFF_RUNTIME_CONFIG")]
    runtime_config_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP triggers and run cron triggers.
    Up {
        #[command(flatten)]
        common: Common,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:3000")]
        listen: SocketAddr,
        /// Do not run `[[trigger.cron]]` schedules.
        #[arg(long)]
        no_cron: bool,
    },
    /// Fire one tick of a cron component and exit (non-zero if it failed).
    Cron {
        #[command(flatten)]
        common: Common,
        component: String,
    },
}

fn options(c: &Common) -> Result<HostOptions> {
    let mut opts = HostOptions::new(&c.manifest, &c.state_dir);
    if let Some(dir) = &c.cache_dir {
        opts.cache_dir = Some(dir.clone());
    }
    let mut vars = BTreeMap::new();
    for kv in &c.variables {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow!("--variable {kv:?}: expected NAME=VALUE"))?;
        vars.insert(k.to_string(), v.to_string());
    }
    opts.variables = vars;
    if let Some(file) = &c.runtime_config_file {
        opts.runtime_config = Some(crate::runtime_config::RuntimeConfig::from_file(file)?);
    }
    Ok(opts)
}

/// Parse the process's arguments and run (the whole of `main`).
pub fn main() -> Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(Cli::parse()))
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Up {
            common,
            listen,
            no_cron,
        } => {
            let opts = options(&common)?;
            let host = Arc::new(tokio::task::block_in_place(|| Host::new(opts))?);
            let (addr, server) = crate::server::bind(host.clone(), listen).await?;
            println!("Serving http://{addr}");
            for t in &host.manifest().http_triggers {
                println!("    {}: http://{addr}{}", t.component, t.route);
            }
            let _cron = if no_cron {
                Vec::new()
            } else {
                host.start_cron()?
            };
            tokio::select! {
                r = server => r??,
                _ = tokio::signal::ctrl_c() => {}
            }
            Ok(())
        }
        Command::Cron { common, component } => {
            let host = tokio::task::block_in_place(|| Host::new(options(&common)?))?;
            host.fire_cron(&component).await
        }
    }
}
