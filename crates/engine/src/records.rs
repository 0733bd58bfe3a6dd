//! Versioned records. A write appends a version at the transaction's LSN;
//! reads pick the newest version at or below an LSN. Every read here is an
//! index seek or a range scan on `records`' primary key.

use std::collections::BTreeMap;

use crate::containers::{self, Container, ContainerState};
use crate::db::{exec, one, query, read, transaction, Db, Row, Value};
use crate::error::{Error, ErrorKind, Result};
use crate::lsn;
use crate::util::{check_collection, check_json, check_key};
use crate::Engine;

/// Which state of a container to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    /// The newest committed state.
    Head,
    /// The state after the commit with this LSN.
    Lsn(i64),
    /// The state at this time (µs since the epoch): the greatest LSN
    /// committed at or before it.
    Time(i64),
}

/// One version of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub collection: String,
    pub key: String,
    pub lsn: i64,
    pub deleted: bool,
    /// JSON text; `None` for a deletion.
    pub body: Option<String>,
    /// When `lsn` committed (µs), if still known.
    pub committed_at: Option<i64>,
}

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

/// A change to one collection's statistics (`collection_stats`): live
/// records and their bytes, versions and their bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Delta {
    pub records: i64,
    pub bytes: i64,
    pub versions: i64,
    pub version_bytes: i64,
}

fn version_from(r: &Row) -> Result<Version> {
    Ok(Version {
        collection: r.text(0)?,
        key: r.text(1)?,
        lsn: r.i64(2)?,
        deleted: r.bool(3)?,
        body: r.opt_text(4)?,
        committed_at: r.opt_i64(5)?,
    })
}

const VERSION_COLUMNS: &str =
    "r.collection, r.key, r.lsn, r.deleted, r.body, (SELECT committed_at FROM lsns WHERE lsns.lsn = r.lsn)";

/// Add per-collection deltas to `collection_stats`.
pub(crate) fn apply_stats(
    db: &dyn Db,
    container: i64,
    deltas: &BTreeMap<String, Delta>,
) -> Result<()> {
    for (collection, d) in deltas {
        exec(
            db,
            "INSERT INTO collection_stats (container, collection, records, bytes, versions, version_bytes) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT (container, collection) DO UPDATE SET records = records + excluded.records, \
             bytes = bytes + excluded.bytes, versions = versions + excluded.versions, \
             version_bytes = version_bytes + excluded.version_bytes",
            &[
                container.into(),
                collection.into(),
                d.records.into(),
                d.bytes.into(),
                d.versions.into(),
                d.version_bytes.into(),
            ],
        )?;
    }
    Ok(())
}

/// Apply `writes` at one new LSN inside the caller's transaction.
pub(crate) fn write_in(
    db: &dyn Db,
    env: &dyn crate::Env,
    c: &Container,
    writes: &[Write],
) -> Result<Committed> {
    for w in writes {
        check_collection(w.collection())?;
        check_key(w.key())?;
        if let Write::Put { body, .. } = w {
            check_json("record body", body)?;
        }
    }
    let (lsn, committed_at) = lsn::next(db, env)?;
    // Set-based: one statement reads the newest version of up to
    // ROWS_PER_STATEMENT keys, one writes as many new versions. On a remote
    // database every statement is a round trip, so a batch of 1 000 writes
    // costs about 16 of them, not 2 000.
    let mut heads: Vec<Option<(bool, i64)>> = vec![None; writes.len()];
    if !c.chain.is_empty() {
        // A branch: the newest version may be an ancestor's.
        let keys: Vec<(&str, &str)> = writes.iter().map(|w| (w.collection(), w.key())).collect();
        heads = crate::branches::heads(db, &crate::branches::read_arms(c, i64::MAX), &keys)?;
    }
    for (part, chunk) in writes
        .chunks(ROWS_PER_STATEMENT)
        .enumerate()
        .filter(|_| c.chain.is_empty())
    {
        let base = part * ROWS_PER_STATEMENT;
        let mut params: Vec<Value> = Vec::with_capacity(chunk.len() * 3 + 1);
        params.push(c.id.into());
        for (i, w) in chunk.iter().enumerate() {
            params.push(((base + i) as i64).into());
            params.push(w.collection().into());
            params.push(w.key().into());
        }
        let sql = format!(
            "WITH w(i, collection, key) AS (VALUES {}) \
             SELECT w.i, r.deleted, r.size FROM w \
             JOIN records r ON r.container = ?1 AND r.collection = w.collection AND r.key = w.key \
               AND r.lsn = (SELECT max(lsn) FROM records r2 WHERE r2.container = ?1 \
                 AND r2.collection = w.collection AND r2.key = w.key)",
            placeholders(chunk.len(), 3, 2)
        );
        for row in query(db, &sql, &params)? {
            let i = usize::try_from(row.i64(0)?)
                .ok()
                .filter(|i| *i < writes.len())
                .ok_or_else(|| Error::corrupt("head lookup answered an unknown row"))?;
            heads[i] = Some((row.bool(1)?, row.i64(2)?));
        }
    }
    // The state of each key as the batch goes: (written in this batch,
    // live, size). A later write of the same key replaces the earlier one.
    let mut state: BTreeMap<(&str, &str), (bool, bool, i64)> = BTreeMap::new();
    let mut deltas: BTreeMap<String, Delta> = BTreeMap::new();
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
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
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
             SELECT ?1, column1, column2, ?2, column3, column4, column5 FROM (VALUES {})",
            placeholders(chunk.len(), 5, 3)
        );
        exec(db, &sql, &params)?;
    }
    apply_stats(db, c.id, &deltas)?;
    exec(
        db,
        "UPDATE containers SET head_lsn = ?2, updated_at = ?3 WHERE id = ?1",
        &[c.id.into(), lsn.into(), committed_at.into()],
    )?;
    Ok(Committed {
        lsn,
        committed_at,
        applied,
    })
}

/// Rows per multi-row statement: 128 rows of up to 5 parameters stay under
/// 999, the smallest limit on bound parameters any SQLite build has had.
const ROWS_PER_STATEMENT: usize = 128;

/// `(?a, ?b, …), (…), …`: `rows` groups of `per_row` numbered parameters,
/// the first numbered `first`.
fn placeholders(rows: usize, per_row: usize, first: usize) -> String {
    let mut out = String::with_capacity(rows * per_row * 6);
    let mut n = first;
    for r in 0..rows {
        if r > 0 {
            out.push(',');
        }
        out.push('(');
        for i in 0..per_row {
            if i > 0 {
                out.push(',');
            }
            out.push('?');
            out.push_str(&n.to_string());
            n += 1;
        }
        out.push(')');
    }
    out
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

pub(crate) fn check_writable(c: &Container) -> Result<()> {
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

    /// Turn an [`AsOf`] into an LSN for `c`, checking the retained window.
    pub fn resolve(&self, c: &Container, as_of: AsOf) -> Result<i64> {
        let now = self.env.now_us();
        match as_of {
            AsOf::Head => Ok(i64::MAX),
            AsOf::Lsn(l) => {
                if l < 0 {
                    return Err(Error::invalid("an LSN is not negative"));
                }
                let head = lsn::head(self.db)?;
                if l > head {
                    return Err(Error::invalid(format!(
                        "LSN {l} is beyond the newest committed LSN {head}"
                    )));
                }
                if l < c.floor_lsn {
                    return Err(outside(c, now));
                }
                Ok(l)
            }
            AsOf::Time(t) => {
                if t > now {
                    return Err(Error::invalid(format!(
                        "{} is in the future (now is {})",
                        crate::util::rfc3339(t),
                        crate::util::rfc3339(now)
                    )));
                }
                if t < c.floor_at {
                    return Err(outside(c, now));
                }
                lsn::at_time(self.db, t)
            }
        }
    }

    /// The live version of a record as of a point, or `NotFound`.
    pub fn get(&self, c: &Container, collection: &str, key: &str, as_of: AsOf) -> Result<Version> {
        let at = self.resolve(c, as_of)?;
        let v = if !c.chain.is_empty() {
            let arms = crate::branches::read_arms(c, at);
            crate::branches::latest(self.db, &arms, collection, key, VERSION_COLUMNS)?
                .map(|r| version_from(&r))
                .transpose()?
        } else {
            one(
            self.db,
            &format!(
                "SELECT {VERSION_COLUMNS} FROM records r WHERE r.container = ?1 AND r.collection = ?2 \
                 AND r.key = ?3 AND r.lsn <= ?4 AND (r.visible_from IS NULL OR r.visible_from <= ?4) \
                 ORDER BY r.lsn DESC LIMIT 1"
            ),
            &[c.id.into(), collection.into(), key.into(), at.into()],
        )?
        .map(|r| version_from(&r))
        .transpose()?
        };
        match v {
            Some(v) if !v.deleted => Ok(v),
            _ => Err(Error::not_found(format!(
                "record {collection}/{key} not found"
            ))),
        }
    }

    /// A record's versions, newest first, including deletions: at most
    /// `limit` with an LSN below `before` (for paging).
    pub fn history(
        &self,
        c: &Container,
        collection: &str,
        key: &str,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Version>> {
        let limit = limit.clamp(1, self.config.max_page);
        if !c.chain.is_empty() {
            let arms = crate::branches::read_arms(c, i64::MAX);
            return crate::branches::history(
                self.db,
                &arms,
                collection,
                key,
                before.unwrap_or(i64::MAX),
                limit,
                VERSION_COLUMNS,
            )?
            .iter()
            .map(version_from)
            .collect();
        }
        query(
            self.db,
            &format!(
                "SELECT {VERSION_COLUMNS} FROM records r WHERE r.container = ?1 AND r.collection = ?2 \
                 AND r.key = ?3 AND r.lsn < ?4 ORDER BY r.lsn DESC LIMIT ?5"
            ),
            &[c.id.into(), collection.into(), key.into(), before.unwrap_or(i64::MAX).into(), limit.into()],
        )?
        .iter()
        .map(version_from)
        .collect()
    }

    /// Live records of one collection as of a point, by key, after `after`.
    pub fn list(
        &self,
        c: &Container,
        collection: &str,
        after: Option<&str>,
        limit: i64,
        as_of: AsOf,
    ) -> Result<Vec<Version>> {
        let at = self.resolve(c, as_of)?;
        let limit = limit.clamp(1, self.config.max_page);
        if !c.chain.is_empty() {
            return self.branch_page(
                c,
                at,
                (collection, after.unwrap_or("")),
                Some(collection),
                limit,
            );
        }
        list_in(self.db, c.id, collection, after.unwrap_or(""), at, limit)
    }

    /// One page of a whole container's live records as of an LSN (from
    /// [`Engine::resolve`]), ordered by collection then key, after the
    /// `(collection, key)` cursor. For streaming exports: call until empty.
    pub fn export_page(
        &self,
        c: &Container,
        at: i64,
        after: Option<(&str, &str)>,
        limit: i64,
    ) -> Result<Vec<Version>> {
        let (ac, ak) = after.unwrap_or(("", ""));
        let limit = limit.clamp(1, self.config.max_page);
        if !c.chain.is_empty() {
            return self.branch_page(c, at, (ac, ak), None, limit);
        }
        read(self.db, |db| export_in(db, c.id, at, (ac, ak), limit))
    }
}

/// Live records of one collection of one container as of `at`, by key,
/// after `after`: a primary-key range scan.
fn list_in(
    db: &dyn Db,
    container: i64,
    collection: &str,
    after: &str,
    at: i64,
    limit: i64,
) -> Result<Vec<Version>> {
    query(
        db,
        &format!(
            "SELECT {VERSION_COLUMNS} FROM records r WHERE r.container = ?1 AND r.collection = ?2 \
             AND r.key > ?3 AND r.lsn <= ?4 AND r.deleted = 0 \
             AND r.lsn = (SELECT max(x.lsn) FROM records x WHERE x.container = ?1 AND x.collection = ?2 \
                          AND x.key = r.key AND x.lsn <= ?4 \
                          AND (x.visible_from IS NULL OR x.visible_from <= ?4)) \
             ORDER BY r.key LIMIT ?5"
        ),
        &[container.into(), collection.into(), after.into(), at.into(), limit.into()],
    )?
    .iter()
    .map(version_from)
    .collect()
}

/// One page of one container's live records as of `at` in (collection,
/// key) order after `after`: a primary-key range scan.
fn export_in(
    db: &dyn Db,
    container: i64,
    at: i64,
    after: (&str, &str),
    limit: i64,
) -> Result<Vec<Version>> {
    query(
        db,
        &format!(
            "SELECT {VERSION_COLUMNS} FROM records r WHERE r.container = ?1 \
             AND (r.collection, r.key) > (?2, ?3) AND r.lsn <= ?4 AND r.deleted = 0 \
             AND r.lsn = (SELECT max(x.lsn) FROM records x WHERE x.container = ?1 \
                          AND x.collection = r.collection AND x.key = r.key AND x.lsn <= ?4 \
                          AND (x.visible_from IS NULL OR x.visible_from <= ?4)) \
             ORDER BY r.collection, r.key LIMIT ?5"
        ),
        &[
            container.into(),
            after.0.into(),
            after.1.into(),
            at.into(),
            Value::Integer(limit),
        ],
    )?
    .iter()
    .map(version_from)
    .collect()
}

impl Engine<'_> {
    /// A page of a branch's live records as of `at` after `after` (only
    /// `collection` when given): candidate keys merged from every level,
    /// each resolved to its newest version, deletions skipped — and more
    /// candidates fetched while deletions leave the page short. One read
    /// transaction, so every page sees one state.
    fn branch_page(
        &self,
        c: &Container,
        at: i64,
        after: (&str, &str),
        collection: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Version>> {
        read(self.db, |db| {
            // Levels with nothing to show drop out; one unfiltered level
            // left is read like a container of its own.
            let arms = crate::branches::nonempty(db, crate::branches::read_arms(c, at))?;
            match arms.as_slice() {
                [] => return Ok(Vec::new()),
                [one] if one.collections.is_none() => {
                    return match collection {
                        Some(col) => list_in(db, one.container, col, after.1, one.bound, limit),
                        None => export_in(db, one.container, one.bound, after, limit),
                    };
                }
                _ => {}
            }
            let mut out = Vec::new();
            let mut cursor = (after.0.to_string(), after.1.to_string());
            loop {
                let fetch = (limit - out.len() as i64).max(1) + 16;
                let rows = crate::branches::scan_latest(
                    db,
                    &arms,
                    (&cursor.0, &cursor.1),
                    collection,
                    fetch,
                    VERSION_COLUMNS,
                )?;
                let exhausted = (rows.len() as i64) < fetch;
                for r in &rows {
                    let v = version_from(r)?;
                    cursor = (v.collection.clone(), v.key.clone());
                    if !v.deleted {
                        out.push(v);
                        if out.len() as i64 == limit {
                            return Ok(out);
                        }
                    }
                }
                if exhausted || rows.is_empty() {
                    return Ok(out);
                }
            }
        })
    }
}

fn outside(c: &Container, now: i64) -> Error {
    Error::new(
        ErrorKind::OutsideRetention {
            from: c.floor_at,
            to: now,
        },
        format!(
            "{} keeps history from {} to now ({}); the requested point is outside it",
            c.reference(),
            crate::util::rfc3339(c.floor_at),
            crate::util::rfc3339(now)
        ),
    )
}
