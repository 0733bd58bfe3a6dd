//! Versioned records (`records`): this module is the table's only writer.
//! A write appends a version at the transaction's LSN; a copy or a
//! hydration copies versions with the LSNs they have ([`copy_rows`]);
//! retention deletes superseded ones ([`delete_versions`]); a deleted
//! container's rows go in chunks ([`purge`]). Reads are in
//! [`crate::reads`] and [`crate::lookup`].
//!
//! Uses: `containers`, `imports` (the open-import check), `limits`,
//! `lookup`, `chain`, `stats`, `lsn`, `db`, `error`, `util`.

use std::collections::BTreeMap;

use crate::chain::{self, Arm};
use crate::containers::{self, Container, ContainerState};
use crate::db::{changes, exec, transaction, Db, Value};
use crate::error::{Error, ErrorKind, Result};
use crate::handle::Engine;
use crate::stats::{self, Delta, Deltas};
use crate::util::{check_collection, check_json, check_key};
use crate::{lookup, lsn};

/// One change in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    Put {
        collection: String,
        key: String,
        body: String,
    },
    Delete {
        collection: String,
        key: String,
    },
}

impl Write {
    fn collection(&self) -> &str {
        match self {
            Write::Put { collection, .. } | Write::Delete { collection, .. } => collection,
        }
    }
    fn key(&self) -> &str {
        match self {
            Write::Put { key, .. } | Write::Delete { key, .. } => key,
        }
    }
}

/// What a committed batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// The batch's LSN.
    pub lsn: i64,
    /// When it committed (µs).
    pub committed_at: i64,
    /// Writes that changed something (deleting a missing key does not).
    pub applied: usize,
}

/// Apply `writes` at one new LSN inside the caller's transaction.
pub(crate) fn write_in(
    db: &dyn Db,
    env: &dyn crate::db::Env,
    c: &Container,
    writes: &[Write],
) -> Result<Committed> {
    let (lsn, committed_at) = lsn::next(db, env)?;
    write_at(db, c, writes, lsn, committed_at)
}

/// [`write_in`] at an LSN the caller allocated: a merge's chunks each add
/// versions at the LSN its start took (a key is never in two chunks).
pub(crate) fn write_at(
    db: &dyn Db,
    c: &Container,
    writes: &[Write],
    lsn: i64,
    committed_at: i64,
) -> Result<Committed> {
    for w in writes {
        check_collection(w.collection())?;
        check_key(w.key())?;
        if let Write::Put { body, .. } = w {
            check_json("record body", body)?;
        }
    }
    // Set-based: one statement reads the newest version of up to
    // lookup::ROWS keys, one writes as many new versions. On a remote
    // database every statement is a round trip, so a batch of 1 000 writes
    // costs about 16 of them, not 2 000.
    // A branch's newest version may be an ancestor's.
    let keys: Vec<(&str, &str)> = writes.iter().map(|w| (w.collection(), w.key())).collect();
    let heads = lookup::heads(db, &c.arms(i64::MAX), &keys)?;
    // The state of each key as the batch goes: (written in this batch,
    // live, size). A later write of the same key replaces the earlier one.
    let mut state: BTreeMap<(&str, &str), (bool, bool, i64)> = BTreeMap::new();
    let mut deltas = Deltas::new();
    let mut rows: BTreeMap<(&str, &str), (bool, Option<&str>, i64)> = BTreeMap::new();
    let mut applied = 0;
    for (w, head) in writes.iter().zip(&heads) {
        let (collection, key) = (w.collection(), w.key());
        let (in_batch, was_live, old_size) = match state.get(&(collection, key)) {
            Some(s) => *s,
            None => match head {
                Some((deleted, size)) => (false, !deleted, *size),
                None => (false, false, 0),
            },
        };
        let (deleted, body, size) = match w {
            Write::Put { body, .. } => (false, Some(body.as_str()), body.len() as i64),
            Write::Delete { .. } => {
                if !was_live {
                    continue; // nothing to delete
                }
                (true, None, 0)
            }
        };
        applied += 1;
        let d = deltas.entry(collection.to_string()).or_default();
        if in_batch {
            // The same key twice in one batch: the later write replaces the earlier.
            d.version_bytes += size - old_size;
        } else {
            d.versions += 1;
            d.version_bytes += size;
        }
        d.records += (!deleted) as i64 - was_live as i64;
        d.bytes += if deleted { 0 } else { size } - if was_live { old_size } else { 0 };
        state.insert((collection, key), (true, !deleted, size));
        rows.insert((collection, key), (deleted, body, size));
    }
    let rows: Vec<_> = rows.into_iter().collect();
    for chunk in rows.chunks(lookup::ROWS) {
        let mut params: Vec<Value> = Vec::with_capacity(chunk.len() * 5 + 2);
        params.push(c.id.into());
        params.push(lsn.into());
        for ((collection, key), (deleted, body, size)) in chunk {
            params.push((*collection).into());
            params.push((*key).into());
            params.push((*deleted).into());
            params.push((*body).into());
            params.push((*size).into());
        }
        let sql = format!(
            "INSERT INTO records (container, collection, key, lsn, deleted, body, size) \
             SELECT CAST(?1 AS BIGINT), column1, column2, CAST(?2 AS BIGINT), column3, column4, column5 \
             FROM (VALUES {}) AS v",
            db.dialect().values(chunk.len(), &["TEXT", "TEXT", "BIGINT", "TEXT", "BIGINT"], 3)
        );
        exec(db, &sql, &params)?;
    }
    stats::apply(db, c.id, &deltas)?;
    containers::set_head(db, c.id, lsn, committed_at)?;
    Ok(Committed {
        lsn,
        committed_at,
        applied,
    })
}

/// The body bytes a batch adds; `TooLarge` past `max_batch` writes.
pub(crate) fn batch_bytes(writes: &[Write], max_batch: usize) -> Result<i64> {
    if writes.len() > max_batch {
        return Err(Error::new(
            ErrorKind::TooLarge,
            format!(
                "a batch holds at most {max_batch} writes, got {}",
                writes.len()
            ),
        ));
    }
    Ok(writes
        .iter()
        .map(|w| match w {
            Write::Put { body, .. } => body.len() as i64,
            Write::Delete { .. } => 0,
        })
        .sum())
}

/// `InvalidState` while a copy fills the container; `Protected` when it
/// is protected.
pub(crate) fn check_writable(c: &Container) -> Result<()> {
    containers::check_unprotected(c, "writes")?;
    if c.state != ContainerState::Ready {
        return Err(Error::state(
            c.state.as_str(),
            format!(
                "{} is {} and cannot be written until its copy finishes",
                c.reference(),
                c.state.as_str()
            ),
        ));
    }
    Ok(())
}

impl Engine<'_> {
    /// Apply a batch of writes atomically at one new LSN. All or nothing: a
    /// bad write fails the whole batch with nothing committed.
    pub fn write(
        &self,
        family: &str,
        tenant: &str,
        name: &str,
        writes: &[Write],
    ) -> Result<Committed> {
        let adding = batch_bytes(writes, self.config.max_batch)?;
        let now = self.env.now_us();
        let limits = &self.config.limits();
        transaction(self.db, |db| {
            let c = containers::find(db, family, tenant, name)?;
            check_writable(&c)?;
            crate::imports::check_no_open_import(db, &c)?;
            crate::limits::count_writes(db, limits, tenant, writes.len() as i64, now)?;
            crate::limits::check_stored_bytes(db, limits, tenant, adding)?;
            write_in(db, self.env, &c, writes)
        })
    }

    /// Put one record.
    pub fn put(&self, c: &Container, collection: &str, key: &str, body: &str) -> Result<Committed> {
        self.write(
            &c.family,
            &c.tenant,
            &c.name,
            &[Write::Put {
                collection: collection.into(),
                key: key.into(),
                body: body.into(),
            }],
        )
    }

    /// Delete one record; `NotFound` when it is not live.
    pub fn delete(&self, c: &Container, collection: &str, key: &str) -> Result<Committed> {
        let done = self.write(
            &c.family,
            &c.tenant,
            &c.name,
            &[Write::Delete {
                collection: collection.into(),
                key: key.into(),
            }],
        );
        match done {
            Ok(d) if d.applied == 0 => Err(Error::not_found(format!(
                "record {collection}/{key} not found"
            ))),
            other => other,
        }
    }
}

/// Copy the rows of `range` (an SQL condition on alias `r` whose
/// parameters are `params`) through `arms` into `target`, keeping their
/// coordinates; a row already there is skipped. A copied row shows from
/// its own `visible_from`, or its level's `from` when later. A masked
/// arm's rows are written as its masks show them, keeping the size the
/// statistics count (the original's). Returns how many rows were written.
pub(crate) fn copy_rows(
    db: &dyn Db,
    target: i64,
    arms: &[Arm],
    range: &str,
    params: &[Value],
) -> Result<i64> {
    let tparam = params.len() + 1;
    let mut ins = params.to_vec();
    ins.push(target.into());
    let select = |i: usize, first: &str| {
        format!(
            "SELECT {first}r.collection, r.key, r.lsn, r.deleted, r.body, r.size, \
             CASE WHEN {from} > coalesce(r.visible_from, 0) THEN {from} ELSE r.visible_from END \
             FROM records r WHERE {} AND {range}",
            chain::visible(db.dialect(), arms, i),
            from = arms[i].from
        )
    };
    let plain: Vec<String> = (0..arms.len())
        .filter(|i| arms[*i].mask.is_empty())
        .map(|i| select(i, &format!("CAST(?{tparam} AS BIGINT), ")))
        .collect();
    let mut written = 0;
    if !plain.is_empty() {
        // One arm cannot hold a key twice, and a copy's target rarely
        // holds one already (a reset branch hydrated again can); two arms
        // often hold the same version (a half-hydrated branch and its
        // level).
        let insert = format!(
            "INSERT INTO records (container, collection, key, lsn, deleted, body, size, visible_from) {}",
            plain.join(" UNION ALL ")
        );
        written += crate::dialect::insert_skipping_present(db, &insert, &ins, plain.len() == 1)? as i64;
    }
    for i in (0..arms.len()).filter(|i| !arms[*i].mask.is_empty()) {
        let rows = crate::db::query(db, &select(i, ""), params)?;
        let mut masked: Vec<Vec<Value>> = Vec::with_capacity(rows.len());
        for r in &rows {
            let collection = r.text(0)?;
            let body = match r.opt_text(4)? {
                Some(b) => Some(arms[i].mask.apply(&collection, &b)?),
                None => None,
            };
            masked.push(vec![
                collection.into(),
                r.text(1)?.into(),
                r.i64(2)?.into(),
                r.bool(3)?.into(),
                body.into(),
                r.i64(5)?.into(),
                r.opt_i64(6)?.into(),
            ]);
        }
        // 8 parameters a row: 100 rows stay under 999.
        for chunk in masked.chunks(100) {
            let mut p: Vec<Value> = vec![target.into()];
            for row in chunk {
                p.extend(row.iter().cloned());
            }
            exec(
                db,
                &format!(
                    "INSERT INTO records (container, collection, key, lsn, deleted, body, size, visible_from) \
                     SELECT CAST(?1 AS BIGINT), column1, column2, column3, column4, column5, column6, column7 \
                     FROM (VALUES {}) AS v WHERE true ON CONFLICT DO NOTHING",
                    db.dialect().values(
                        chunk.len(),
                        &["TEXT", "TEXT", "BIGINT", "BIGINT", "TEXT", "BIGINT", "BIGINT"],
                        2
                    )
                ),
                &p,
            )?;
            written += changes(db)?;
        }
    }
    // What the copied rows may show from: their level's `from`, or the
    // `visible_from` they had.
    if written > 0 {
        let ids: Vec<i64> = arms.iter().map(|a| a.container).collect();
        let late = containers::visible_max(db, &ids)?
            .into_values()
            .chain(arms.iter().map(|a| a.from))
            .max()
            .unwrap_or(0);
        if late > 0 {
            containers::raise_visible_max(db, target, late)?;
        }
    }
    Ok(written)
}

/// Delete the versions `doomed` selects (an SQL condition on alias `r`
/// with parameters `params`), after counting them per collection. Returns
/// how many went and what the container's statistics lose; the caller
/// (retention) applies that, and what readers through the container lose,
/// in the same transaction.
pub(crate) fn delete_versions(
    db: &dyn Db,
    doomed: &str,
    params: &[Value],
) -> Result<(i64, Deltas)> {
    let mut lost = Deltas::new();
    for s in crate::db::query(
        db,
        &format!("SELECT r.collection, count(*), sum(r.size) FROM records r WHERE {doomed} GROUP BY r.collection"),
        params,
    )? {
        lost.insert(
            s.text(0)?,
            Delta {
                versions: -s.i64(1)?,
                version_bytes: -s.i64(2)?,
                ..Delta::default()
            },
        );
    }
    exec(
        db,
        &format!(
            "DELETE FROM records WHERE (container, collection, key, lsn) IN \
             (SELECT r.container, r.collection, r.key, r.lsn FROM records r WHERE {doomed})"
        ),
        params,
    )?;
    Ok((changes(db)?, lost))
}

/// Delete up to `limit` rows of a deleted container; returns how many went.
pub(crate) fn purge(db: &dyn Db, container: i64, limit: i64) -> Result<i64> {
    exec(
        db,
        "DELETE FROM records WHERE (container, collection, key, lsn) IN \
         (SELECT container, collection, key, lsn FROM records WHERE container = ?1 LIMIT ?2)",
        &[container.into(), limit.into()],
    )?;
    changes(db)
}
