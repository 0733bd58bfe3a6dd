//! Operation rows: the column list, row → [`Operation`], loading by id
//! (with and without a tenant check) and listing.

use super::types::{OpFilter, OpKind, Operation, Status};
use crate::containers::Container;
use crate::db::{exec, one, query, Db, Row};
use crate::error::{Error, Result};
use crate::handle::Engine;

const COLUMNS: &str = "id, family, tenant, kind, source, source_ref, target, target_ref, strategy, target_time, \
    snapshot_lsn, history, collections, status, records_copied, bytes_copied, records_total, bytes_total, \
    chunk_size, steps, attempts, error, lease_owner, lease_expires, copy_us, notify, meta, created_at, \
    updated_at, started_at, completed_at, cur_collection, cur_key, cur_lsn, mode";

fn from_row(r: &Row) -> Result<Operation> {
    let json_list = |i: usize| -> Result<Option<Vec<String>>> {
        r.opt_text(i)?
            .map(|t| {
                serde_json::from_str(&t)
                    .map_err(|e| Error::corrupt(format!("operation list column: {e}")))
            })
            .transpose()
    };
    Ok(Operation {
        id: r.text(0)?,
        family: r.text(1)?,
        tenant: r.text(2)?,
        kind: r.text(3)?,
        source: r.i64(4)?,
        source_ref: r.text(5)?,
        target: r.i64(6)?,
        target_ref: r.text(7)?,
        strategy: r.text(8)?,
        target_time: r.opt_i64(9)?,
        snapshot_lsn: r.i64(10)?,
        history: r.bool(11)?,
        collections: json_list(12)?,
        status: Status::parse(&r.text(13)?).map_err(|e| Error::corrupt(e.message))?,
        records_copied: r.i64(14)?,
        bytes_copied: r.i64(15)?,
        records_total: r.i64(16)?,
        bytes_total: r.i64(17)?,
        chunk_size: r.i64(18)?,
        steps: r.i64(19)?,
        attempts: r.i64(20)?,
        error: r.opt_text(21)?,
        lease_owner: r.opt_text(22)?,
        lease_expires: r.i64(23)?,
        copy_us: r.i64(24)?,
        notify: json_list(25)?.unwrap_or_default(),
        meta: serde_json::from_str(&r.text(26)?)
            .map_err(|e| Error::corrupt(format!("operation meta: {e}")))?,
        created_at: r.i64(27)?,
        updated_at: r.i64(28)?,
        started_at: r.opt_i64(29)?,
        completed_at: r.opt_i64(30)?,
        cursor: (r.text(31)?, r.text(32)?, r.i64(33)?),
        mode: r.text(34)?,
    })
}

/// A new pending operation that works on `c` in place (a hydration or a
/// verification: source and target are `c`), reading it as of
/// `snapshot`, holding exclusive `key`, `totals` = (records, bytes).
/// Returns it as stored.
#[allow(clippy::too_many_arguments)]
pub(super) fn insert_in_place(
    db: &dyn Db,
    id: &str,
    kind: OpKind,
    c: &Container,
    snapshot: i64,
    key: &str,
    totals: (i64, i64),
    chunk: i64,
    meta: &serde_json::Value,
    now: i64,
) -> Result<Operation> {
    let reference = c.reference();
    exec(
        db,
        "INSERT INTO operations (id, family, tenant, kind, source, source_ref, target, target_ref, strategy, \
           snapshot_lsn, history, status, exclusive_key, records_total, bytes_total, chunk_size, meta, \
           created_at, updated_at) \
         VALUES (?1, 'native', ?2, ?3, ?4, ?5, ?4, ?5, 'now', ?6, 1, 'pending', ?7, ?8, ?9, ?10, ?11, ?12, ?12)",
        &[
            id.into(),
            c.tenant.as_str().into(),
            kind.label().into(),
            c.id.into(),
            reference.as_str().into(),
            snapshot.into(),
            key.into(),
            totals.0.into(),
            totals.1.into(),
            chunk.into(),
            meta.to_string().into(),
            now.into(),
        ],
    )?;
    load(db, id)?.ok_or_else(|| Error::corrupt("operation vanished"))
}

pub(crate) fn load(db: &dyn Db, id: &str) -> Result<Option<Operation>> {
    one(
        db,
        &format!("SELECT {COLUMNS} FROM operations WHERE id = ?1"),
        &[id.into()],
    )?
    .map(|r| from_row(&r))
    .transpose()
}

pub(crate) fn load_for(db: &dyn Db, tenant: &str, id: &str) -> Result<Operation> {
    match load(db, id)? {
        Some(op) if op.tenant == tenant => Ok(op),
        _ => Err(Error::not_found(format!("operation {id} not found"))),
    }
}

impl Engine<'_> {
    /// An operation of this tenant, or `NotFound`.
    pub fn operation(&self, tenant: &str, id: &str) -> Result<Operation> {
        load_for(self.db, tenant, id)
    }

    /// An operation by id, without a tenant check (the worker; job ids that
    /// are their own credential).
    pub fn operation_by_id(&self, id: &str) -> Result<Option<Operation>> {
        load(self.db, id)
    }

    /// A tenant's operations, newest first, and how many match in all.
    pub fn list_operations(
        &self,
        tenant: &str,
        f: &OpFilter,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<Operation>, i64)> {
        let limit = limit.clamp(0, self.config.max_page);
        let where_ = "tenant = ?1 AND (CAST(?2 AS TEXT) IS NULL OR family = ?2) \
                      AND (CAST(?3 AS BIGINT) IS NULL OR source = ?3 OR target = ?3) \
                      AND (CAST(?4 AS TEXT) IS NULL OR status = ?4) AND (CAST(?5 AS BIGINT) IS NULL OR source = ?5)";
        let params = [
            tenant.into(),
            f.family.clone().into(),
            f.container.into(),
            f.status.map(|s| s.as_str()).into(),
            f.source.into(),
        ];
        let total = one(
            self.db,
            &format!("SELECT count(*) FROM operations WHERE {where_}"),
            &params,
        )?
        .map(|r| r.i64(0))
        .unwrap_or(Ok(0))?;
        let mut p = params.to_vec();
        p.push(limit.into());
        p.push(offset.max(0).into());
        let ops = query(
            self.db,
            &format!("SELECT {COLUMNS} FROM operations WHERE {where_} ORDER BY created_at DESC, id LIMIT ?6 OFFSET ?7"),
            &p,
        )?
        .iter()
        .map(from_row)
        .collect::<Result<Vec<_>>>()?;
        Ok((ops, total))
    }
}
