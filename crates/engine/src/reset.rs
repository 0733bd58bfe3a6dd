//! Reset: a resource reads its parent again — as the parent stands now, or
//! as of an LSN or time of the parent — under the same name, in O(1) of the
//! data's size (see docs/design-workflows-and-postgres.md).
//!
//! At a new LSN R the container retires (family `history`: its id, rows
//! and levels stay, for the reads before R and for the branches made from
//! it) and a successor takes its name, spec, floor (raised to the parent's
//! when that is later), expiry, protection,
//! parent and snapshots, with the parent's levels shown from R and, for
//! reads before R, windows onto what the container was. Its statistics are
//! the parent's at the point (cost: what changed there since).
//!
//! Uses: `operations` (its hydration and verification end), `levels`,
//! `containers`, `imports`, `snapshots`, `lsn`, `db`, `error`.

use crate::containers::{self, Container, ContainerState};
use crate::db::transaction;
use crate::error::{Error, Result};
use crate::handle::Engine;
use crate::reads::AsOf;
use crate::{imports, levels, lsn, operations, snapshots};

impl Engine<'_> {
    /// Reset a resource to its parent as of `to` (`AsOf::Head`: the
    /// parent's newest state). A protected resource is reset only with
    /// `force`. Returns the resource as it now is, and the reset's LSN.
    pub fn reset(
        &self,
        family: &str,
        tenant: &str,
        name: &str,
        to: AsOf,
        force: bool,
    ) -> Result<(Container, i64)> {
        let now = self.env.now_us();
        transaction(self.db, |db| {
            let c = containers::find(db, family, tenant, name)?;
            if !force {
                containers::check_unprotected(&c, "a reset without force")?;
            }
            if c.state != ContainerState::Ready {
                return Err(Error::state(
                    c.state.as_str(),
                    format!("{} is {} and cannot be reset", c.reference(), c.state.as_str()),
                ));
            }
            imports::check_no_open_import(db, &c)?;
            let parent_id = c.parent.ok_or_else(|| {
                Error::invalid(format!(
                    "{} was not cloned from another resource: there is nothing to reset it to",
                    c.reference()
                ))
            })?;
            let parent = containers::by_id(db, parent_id)?.ok_or_else(|| {
                Error::not_found(format!("the resource {} was cloned from no longer exists", c.reference()))
            })?;
            let head = lsn::head(db)?;
            let base = match to {
                AsOf::Head => head,
                AsOf::Lsn(l) if l < parent.floor_lsn || l > head => {
                    return Err(Error::invalid(format!(
                        "LSN {l} is outside {}'s history ({} to {head})",
                        parent.reference(),
                        parent.floor_lsn
                    )))
                }
                AsOf::Lsn(l) => l,
                AsOf::Time(t) if t < parent.floor_at || t > now => {
                    return Err(Error::invalid(format!(
                        "{} is outside {}'s history",
                        crate::util::rfc3339(t),
                        parent.reference()
                    )))
                }
                AsOf::Time(t) => lsn::at_time(db, t)?.max(parent.floor_lsn),
            };
            let (r, at) = lsn::next(db, self.env)?;
            operations::cancel_for_deleted(db, c.id, now)?;
            containers::retire(db, c.id, r, now)?;
            let next = containers::insert(
                db,
                now,
                &c.family,
                &c.tenant,
                &c.name,
                &c.spec,
                ContainerState::Ready,
            )?;
            // Its history is what both generations still hold: the
            // parent's from its floor on, what it was from its own.
            let (floor_lsn, floor_at) = if parent.floor_lsn > c.floor_lsn {
                (parent.floor_lsn, parent.floor_at)
            } else {
                (c.floor_lsn, c.floor_at)
            };
            containers::set_floor(db, next.id, floor_lsn, floor_at)?;
            containers::set_expiry(db, next.id, c.expires_at, now)?;
            containers::set_protected(db, next.id, c.protected, now)?;
            containers::set_parent(db, next.id, parent.id, base)?;
            levels::create_reset(
                db,
                next.id,
                parent.id,
                &parent.chain,
                base,
                r,
                c.id,
                &c.chain,
                c.mask.as_ref(),
            )?;
            containers::set_mask(db, next.id, c.mask.as_ref())?;
            snapshots::hand_over(db, c.id, next.id)?;
            containers::set_head(db, next.id, r, at)?;
            let next = containers::by_id(db, next.id)?
                .ok_or_else(|| Error::corrupt("a reset's container vanished"))?;
            Ok((next, r))
        })
    }
}
