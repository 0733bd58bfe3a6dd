//! `[[trigger.cron]]`: call each cron component's `handle-cron-event` on its
//! schedule (six or seven fields, seconds first, UTC), one tick at a time per
//! trigger, and on demand through [`Host::fire_cron`].

use std::str::FromStr;
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};

use crate::bindings::cron::fermyon::spin_cron::cron_types::Metadata;
use crate::bindings::cron::SpinCronPre;
use crate::runtime::Host;

/// Parse a cron expression the way the cron trigger does.
pub fn parse_schedule(expr: &str) -> Result<cron::Schedule> {
    let fields = expr.split_whitespace().count();
    if !(6..=7).contains(&fields) {
        anyhow::bail!(
            "cron_expression {expr:?} must have 6 or 7 fields (seconds first), it has {fields}"
        );
    }
    cron::Schedule::from_str(expr).map_err(|e| anyhow!("cron_expression {expr:?}: {e}"))
}

impl Host {
    /// Run one tick of a cron component now; the guest's own error is returned as Err.
    pub async fn fire_cron(&self, component: &str) -> Result<()> {
        let loaded = self.component(component)?;
        let mut store = self.new_store(component);
        let pre = SpinCronPre::new(loaded.pre.clone())
            .map_err(|_| anyhow!("component {component:?} does not export handle-cron-event"))?;
        let instance = pre.instantiate_async(&mut store).await?;
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let res = instance
            .call_handle_cron_event(&mut store, Metadata { timestamp })
            .await
            .map_err(anyhow::Error::from)
            .with_context(|| format!("cron component {component} trapped"))?;
        res.map_err(|e| anyhow!("cron component {component} failed: {e:?}"))
    }

    /// Run every `[[trigger.cron]]` on its schedule until the returned tasks are aborted.
    pub fn start_cron(self: &Arc<Self>) -> Result<Vec<tokio::task::JoinHandle<()>>> {
        let mut tasks = Vec::new();
        for t in &self.manifest.cron_triggers {
            let schedule = parse_schedule(&t.cron_expression)?;
            let host = self.clone();
            let component = t.component.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let Some(next) = schedule.upcoming(chrono::Utc).next() else {
                        return;
                    };
                    let wait = (next - chrono::Utc::now()).to_std().unwrap_or_default();
                    tokio::time::sleep(wait).await;
                    if let Err(e) = host.fire_cron(&component).await {
                        eprintln!("spinoff-host: {e:#}");
                    }
                }
            }));
        }
        Ok(tasks)
    }
}
