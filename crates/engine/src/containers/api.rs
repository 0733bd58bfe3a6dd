//! The containers' part of the engine's API: create, look up, list, count,
//! update the spec, the expiry and the protection; read the statistics.

use serde_json::Value as Json;

use super::{by_id, columns, find, from_row, insert, set_expiry, set_protected, Container, ContainerState};
use crate::db::{exec, one, query, transaction};
use crate::error::{Error, Result};
use crate::handle::Engine;
use crate::stats::{self, CollectionStats};

impl Engine<'_> {
    /// Create a ready, empty container.
    pub fn create_container(
        &self,
        family: &str,
        tenant: &str,
        name: &str,
        spec: &Json,
    ) -> Result<Container> {
        let now = self.env.now_us();
        let limits = self.config.limits();
        transaction(self.db, |db| {
            crate::limits::check_resources(db, &limits, tenant)?;
            insert(db, now, family, tenant, name, spec, ContainerState::Ready)
        })
    }

    /// A container of this tenant, or `NotFound`.
    pub fn container(&self, family: &str, tenant: &str, name: &str) -> Result<Container> {
        find(self.db, family, tenant, name)
    }

    /// A container by its internal id (no tenant check: for the worker).
    pub fn container_by_id(&self, id: i64) -> Result<Option<Container>> {
        by_id(self.db, id)
    }

    /// A tenant's containers of a family, oldest first: `offset`, `limit`.
    pub fn list_containers(
        &self,
        family: &str,
        tenant: &str,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<Container>> {
        let limit = limit.clamp(0, self.config.max_page);
        query(
            self.db,
            &format!(
                "SELECT {} FROM containers WHERE tenant = ?1 AND family = ?2 AND deleting = 0 \
                 ORDER BY created_at, id LIMIT ?3 OFFSET ?4",
                columns(self.db)
            ),
            &[
                tenant.into(),
                family.into(),
                limit.into(),
                offset.max(0).into(),
            ],
        )?
        .iter()
        .map(from_row)
        .collect()
    }

    /// A tenant's resources of every family (never a staging branch or a
    /// reset's retired state), oldest first, after the one with id
    /// `after`: at most `limit`.
    pub fn list_resources(&self, tenant: &str, after: i64, limit: i64) -> Result<Vec<Container>> {
        let limit = limit.clamp(0, self.config.max_page);
        query(
            self.db,
            &format!(
                "SELECT {} FROM containers WHERE tenant = ?1 AND deleting = 0 AND id > ?2 \
                 AND family NOT IN (?4, ?5) ORDER BY id LIMIT ?3",
                columns(self.db)
            ),
            &[
                tenant.into(),
                after.into(),
                limit.into(),
                super::HISTORY_FAMILY.into(),
                super::STAGING_FAMILY.into(),
            ],
        )?
        .iter()
        .map(from_row)
        .collect()
    }

    /// The tenants that hold resources, in name order after `after`: at
    /// most `limit` (an operator's view: the admin token's tenant picker).
    pub fn tenants(&self, after: &str, limit: i64) -> Result<Vec<String>> {
        let limit = limit.clamp(0, self.config.max_page);
        query(
            self.db,
            "SELECT DISTINCT tenant FROM containers WHERE deleting = 0 AND tenant > ?1 \
             AND family NOT IN (?3, ?4) ORDER BY tenant LIMIT ?2",
            &[
                after.into(),
                limit.into(),
                super::HISTORY_FAMILY.into(),
                super::STAGING_FAMILY.into(),
            ],
        )?
        .iter()
        .map(|r| r.text(0))
        .collect()
    }

    /// Count a tenant's containers of a family.
    pub fn count_containers(&self, family: &str, tenant: &str) -> Result<i64> {
        one(
            self.db,
            "SELECT count(*) FROM containers WHERE tenant = ?1 AND family = ?2 AND deleting = 0",
            &[tenant.into(), family.into()],
        )?
        .map(|r| r.i64(0))
        .unwrap_or(Ok(0))
    }

    /// Replace a container's vendor spec.
    pub fn update_spec(
        &self,
        family: &str,
        tenant: &str,
        name: &str,
        spec: &Json,
    ) -> Result<Container> {
        let now = self.env.now_us();
        transaction(self.db, |db| {
            let c = find(db, family, tenant, name)?;
            exec(
                db,
                "UPDATE containers SET spec = ?2, updated_at = ?3 WHERE id = ?1",
                &[c.id.into(), spec.to_string().into(), now.into()],
            )?;
            Ok(Container {
                spec: spec.clone(),
                updated_at: now,
                ..c
            })
        })
    }

    /// Protect a container (direct writes, imports and deletes are refused
    /// with `Protected`), or stop protecting it. Only a ready container
    /// can be protected.
    pub fn set_protection(
        &self,
        family: &str,
        tenant: &str,
        name: &str,
        protected: bool,
    ) -> Result<Container> {
        let now = self.env.now_us();
        transaction(self.db, |db| {
            let c = find(db, family, tenant, name)?;
            if protected && c.state != ContainerState::Ready {
                return Err(Error::state(
                    c.state.as_str(),
                    format!(
                        "{} is {} and cannot be protected",
                        c.reference(),
                        c.state.as_str()
                    ),
                ));
            }
            set_protected(db, c.id, protected, now)?;
            Ok(Container {
                protected,
                updated_at: now,
                ..c
            })
        })
    }

    /// Give a container a time-to-live: the worker deletes it once `at`
    /// (µs) has passed ([`Engine::expire_step`]); `None` clears it.
    pub fn set_expiry(
        &self,
        family: &str,
        tenant: &str,
        name: &str,
        at: Option<i64>,
    ) -> Result<Container> {
        let now = self.env.now_us();
        transaction(self.db, |db| {
            let c = find(db, family, tenant, name)?;
            set_expiry(db, c.id, at, now)?;
            Ok(Container {
                expires_at: at,
                updated_at: now,
                ..c
            })
        })
    }

    /// Collections of a container with their live record counts, by name.
    pub fn collections(&self, container: &Container) -> Result<Vec<CollectionStats>> {
        stats::list(self.db, container.id)
    }

    /// The head LSN and the container's live record count there, read in
    /// one snapshot: what an export at the head must hold, so that a client
    /// can check the count it received.
    pub fn head_and_count(&self, container: &Container) -> Result<(i64, i64)> {
        crate::db::read(self.db, |db| {
            Ok((
                crate::lsn::head(db)?,
                stats::totals(db, container.id)?.records,
            ))
        })
    }
}
