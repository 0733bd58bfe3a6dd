//! Events: every state change and progress step of an operation appends one
//! (operation, sequence, time, type, data). They feed SSE streams and are
//! the audit trail. The outbox holds notifications to deliver, with retries.

use serde_json::Value as Json;

use crate::db::{exec, one, query, returning, transaction, Db};
use crate::error::Result;
use crate::handle::Engine;

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub op: String,
    /// 1, 2, 3, … per operation.
    pub seq: i64,
    pub at: i64,
    /// `created`, `started`, `progress`, `succeeded`, `failed`, `canceled`, `retried`.
    pub kind: String,
    pub data: Json,
}

pub(crate) fn append(db: &dyn Db, op: &str, at: i64, kind: &str, data: &Json) -> Result<i64> {
    let seq = one(
        db,
        "SELECT coalesce(max(seq), 0) + 1 FROM events WHERE op = ?1",
        &[op.into()],
    )?
    .map(|r| r.i64(0))
    .unwrap_or(Ok(1))?;
    exec(
        db,
        "INSERT INTO events (op, seq, at, type, data) VALUES (?1, ?2, ?3, ?4, ?5)",
        &[
            op.into(),
            seq.into(),
            at.into(),
            kind.into(),
            data.to_string().into(),
        ],
    )?;
    Ok(seq)
}

/// A notification waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub id: i64,
    pub op: String,
    /// A webhook URL (`http://`, `https://`) or an e-mail address.
    pub destination: String,
    /// JSON text to deliver.
    pub payload: String,
    /// Deliveries tried before this one.
    pub attempts: i64,
    /// The operation's tenant (whose signing secret signs the delivery).
    pub tenant: String,
}

/// One outbox entry of an operation, as [`Engine::notifications_of`] lists
/// it: `(destination, status, attempts, last_error)`.
pub type OutboxEntry = (String, String, i64, Option<String>);

/// At most this many notifications of one destination are claimed at once,
/// so a dead receiver with a long queue never crowds out other receivers.
pub const MAX_CLAIMED_PER_DESTINATION: i64 = 2;

/// After a rotation, the previous signing secret keeps signing beside the
/// new one this long (µs), so receivers can switch without losing deliveries.
pub const SECRET_GRACE_US: i64 = 24 * 3600 * 1_000_000;

/// Deliveries are tried this many times before the notification is failed.
pub const MAX_DELIVERY_ATTEMPTS: i64 = 6;

pub(crate) fn enqueue(
    db: &dyn Db,
    op: &str,
    destinations: &[String],
    payload: &Json,
    now: i64,
) -> Result<()> {
    for d in destinations {
        exec(
            db,
            "INSERT INTO outbox (op, destination, payload, status, next_attempt_at, created_at) \
             VALUES (?1, ?2, ?3, 'pending', ?4, ?4)",
            &[op.into(), d.into(), payload.to_string().into(), now.into()],
        )?;
    }
    Ok(())
}

impl Engine<'_> {
    /// Events of an operation after sequence `after`, oldest first.
    pub fn events(&self, op: &str, after: i64, limit: i64) -> Result<Vec<Event>> {
        query(
            self.db,
            "SELECT op, seq, at, type, data FROM events WHERE op = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            &[op.into(), after.into(), limit.clamp(1, self.config.max_page).into()],
        )?
        .iter()
        .map(|r| {
            Ok(Event {
                op: r.text(0)?,
                seq: r.i64(1)?,
                at: r.i64(2)?,
                kind: r.text(3)?,
                data: serde_json::from_str(&r.text(4)?).unwrap_or(Json::Null),
            })
        })
        .collect()
    }

    /// Claim up to `limit` due notifications for delivery, at most
    /// [`MAX_CLAIMED_PER_DESTINATION`] per destination, oldest due first. A
    /// claimed one is not due again for `lease_us`, so two workers never send
    /// it at once; a worker that dies mid-delivery leaves it to be retried
    /// (delivery is at least once).
    pub fn claim_notifications(&self, limit: i64, lease_us: i64) -> Result<Vec<Notification>> {
        let now = self.env.now_us();
        transaction(self.db, |db| {
            let rows = returning(
                db,
                "UPDATE outbox SET next_attempt_at = ?2 WHERE id IN \
                   (SELECT id FROM \
                      (SELECT id, next_attempt_at, row_number() OVER \
                         (PARTITION BY destination ORDER BY next_attempt_at, id) AS nth \
                       FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?1) AS q \
                    WHERE nth <= ?4 ORDER BY next_attempt_at, id LIMIT ?3) \
                 RETURNING id, op, destination, payload, attempts, \
                   (SELECT tenant FROM operations WHERE operations.id = outbox.op)",
                &[
                    now.into(),
                    (now + lease_us).into(),
                    limit.into(),
                    MAX_CLAIMED_PER_DESTINATION.into(),
                ],
            )?;
            // `UPDATE … RETURNING` answers in no promised order: oldest
            // queued first, by id.
            let mut claimed = rows
                .iter()
                .map(|r| {
                    Ok(Notification {
                        id: r.i64(0)?,
                        op: r.text(1)?,
                        destination: r.text(2)?,
                        payload: r.text(3)?,
                        attempts: r.i64(4)?,
                        tenant: r.opt_text(5)?.unwrap_or_default(),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            claimed.sort_by_key(|n| n.id);
            Ok(claimed)
        })
    }

    /// Create or rotate `tenant`'s webhook signing secret and return it (the
    /// only time it is shown). The previous one keeps signing beside it for
    /// [`SECRET_GRACE_US`].
    pub fn rotate_webhook_secret(&self, tenant: &str) -> Result<String> {
        let mut bytes = [0u8; 32];
        bytes[..16].copy_from_slice(&self.env.random_u128().to_le_bytes());
        bytes[16..].copy_from_slice(&self.env.random_u128().to_le_bytes());
        let secret = crate::webhooks::new_secret(&bytes);
        let now = self.env.now_us();
        exec(
            self.db,
            "INSERT INTO webhook_secrets (tenant, secret, previous, rotated_at) VALUES (?1, ?2, NULL, ?3) \
             ON CONFLICT (tenant) DO UPDATE SET previous = webhook_secrets.secret, secret = excluded.secret, \
               rotated_at = excluded.rotated_at",
            &[tenant.into(), secret.as_str().into(), now.into()],
        )?;
        Ok(secret)
    }

    /// When `tenant`'s signing secret was created or last rotated (µs), if
    /// it has one.
    pub fn webhook_secret_rotated_at(&self, tenant: &str) -> Result<Option<i64>> {
        one(
            self.db,
            "SELECT rotated_at FROM webhook_secrets WHERE tenant = ?1",
            &[tenant.into()],
        )?
        .map(|r| r.i64(0))
        .transpose()
    }

    /// The secrets that sign `tenant`'s deliveries now: the current one, and
    /// the previous one within its grace period. Empty: none was created.
    pub fn webhook_signing_secrets(&self, tenant: &str) -> Result<Vec<String>> {
        let Some(r) = one(
            self.db,
            "SELECT secret, previous, rotated_at FROM webhook_secrets WHERE tenant = ?1",
            &[tenant.into()],
        )?
        else {
            return Ok(vec![]);
        };
        let mut out = vec![r.text(0)?];
        if let Some(prev) = r.opt_text(1)? {
            if self.env.now_us() < r.i64(2)? + SECRET_GRACE_US {
                out.push(prev);
            }
        }
        Ok(out)
    }

    /// Record a successful delivery.
    pub fn notification_delivered(&self, id: i64) -> Result<()> {
        let now = self.env.now_us();
        exec(
            self.db,
            "UPDATE outbox SET status = 'delivered', attempts = attempts + 1, delivered_at = ?2, last_error = NULL \
             WHERE id = ?1 AND status = 'pending'",
            &[id.into(), now.into()],
        )
    }

    /// Record a failed delivery. `permanent` (e.g. no mail webhook is
    /// configured, or the destination is not allowed) fails it at once;
    /// otherwise it is retried with exponential backoff (2, 4, 8, … s) up to
    /// [`MAX_DELIVERY_ATTEMPTS`].
    pub fn notification_failed(&self, id: i64, error: &str, permanent: bool) -> Result<()> {
        let now = self.env.now_us();
        transaction(self.db, |db| {
            let Some(r) = one(
                db,
                "SELECT attempts FROM outbox WHERE id = ?1 AND status = 'pending'",
                &[id.into()],
            )?
            else {
                return Ok(());
            };
            let attempts = r.i64(0)? + 1;
            let give_up = permanent || attempts >= MAX_DELIVERY_ATTEMPTS;
            let backoff = 2_000_000i64 << (attempts - 1).clamp(0, 10);
            exec(
                db,
                "UPDATE outbox SET attempts = ?2, last_error = ?3, status = ?4, next_attempt_at = ?5 WHERE id = ?1",
                &[
                    id.into(),
                    attempts.into(),
                    error.into(),
                    if give_up { "failed" } else { "pending" }.into(),
                    (now + backoff).into(),
                ],
            )
        })
    }

    /// The outbox entries of an operation.
    pub fn notifications_of(&self, op: &str) -> Result<Vec<OutboxEntry>> {
        query(
            self.db,
            "SELECT destination, status, attempts, last_error FROM outbox WHERE op = ?1 ORDER BY id",
            &[op.into()],
        )?
        .iter()
        .map(|r| Ok((r.text(0)?, r.text(1)?, r.i64(2)?, r.opt_text(3)?)))
        .collect()
    }
}
