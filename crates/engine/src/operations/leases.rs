//! Leases: claim (a conditional UPDATE: at most one worker wins), release,
//! and the next runnable operation for a worker.

use serde_json::json;

use super::rows::load;
use crate::db::{exec, one, returning_one, transaction};
use crate::error::{Error, Result};
use crate::events::append;
use crate::handle::Engine;
use crate::schema::ACTIVE;

impl Engine<'_> {
    /// Claim an operation's lease for `worker`: a conditional UPDATE, so of
    /// two workers at most one wins; an expired lease is taken over. Moves a
    /// pending operation to in_progress (one more attempt). Returns false if
    /// another worker holds it or it is not runnable.
    pub fn claim(&self, id: &str, worker: &str) -> Result<bool> {
        let now = self.env.now_us();
        let until = now + self.config.lease_us;
        transaction(self.db, |db| {
            let was = one(
                db,
                "SELECT status FROM operations WHERE id = ?1",
                &[id.into()],
            )?
            .map(|r| r.text(0))
            .transpose()?;
            let claimed = returning_one(
                db,
                &format!(
                    "UPDATE operations SET lease_owner = ?2, lease_expires = ?3, \
                       attempts = attempts + CASE WHEN status = 'pending' THEN 1 ELSE 0 END, started_at = coalesce(started_at, ?4), \
                       status = 'in_progress', updated_at = ?4 \
                     WHERE id = ?1 AND status IN {ACTIVE} \
                       AND (lease_owner IS NULL OR lease_owner = ?2 OR lease_expires < ?4) \
                     RETURNING attempts"
                ),
                &[id.into(), worker.into(), until.into(), now.into()],
            )?;
            let Some(r) = claimed else { return Ok(false) };
            if was.as_deref() == Some("pending") {
                // A new run (the first, or after a retry).
                let op = load(db, id)?.ok_or_else(|| Error::corrupt("operation vanished"))?;
                let mut data = op.progress_json();
                data["attempt"] = json!(r.i64(0)?);
                append(db, id, now, "started", &data)?;
            }
            Ok(true)
        })
    }

    /// Give a lease back (end of a tick) so the next worker need not wait
    /// for it to expire.
    pub fn release(&self, id: &str, worker: &str) -> Result<()> {
        exec(
            self.db,
            "UPDATE operations SET lease_owner = NULL, lease_expires = 0 WHERE id = ?1 AND lease_owner = ?2",
            &[id.into(), worker.into()],
        )
    }

    /// The next runnable operation for `worker`, skipping ones another
    /// worker holds: fair between tenants first — the tenant whose active
    /// operations were stepped least recently goes next — then round-robin
    /// (least recently stepped) within the tenant. One tenant's fifty
    /// clones take turns with another tenant's one, not fifty turns to one.
    pub fn next_runnable(&self, worker: &str) -> Result<Option<String>> {
        let now = self.env.now_us();
        one(
            self.db,
            &format!(
                "SELECT o.id FROM operations o WHERE o.status IN {ACTIVE} \
                 AND (o.lease_owner IS NULL OR o.lease_owner = ?1 OR o.lease_expires < ?2) \
                 ORDER BY (SELECT max(t.last_step_at) FROM operations t \
                           WHERE t.tenant = o.tenant AND t.status IN {ACTIVE}), \
                          o.last_step_at, o.created_at LIMIT 1"
            ),
            &[worker.into(), now.into()],
        )?
        .map(|r| r.text(0))
        .transpose()
    }
}
