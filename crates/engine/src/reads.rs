//! Reading records: the latest version of a key as of a point, a key's
//! history, pages of one collection and of a whole container (exports).
//! Every read is an index seek or a range scan on `records`' primary key,
//! through the container's levels when it is a branch ([`crate::lookup`]).
//!
//! Uses: `lookup`, `containers`, `lsn`, `db`, `error`, `util`.

use crate::chain::Arm;
use crate::containers::Container;
use crate::db::{query, read, Db, Row, Value};
use crate::error::{Error, ErrorKind, Result};
use crate::handle::Engine;
use crate::{lookup, lsn};

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

/// A version as read through `arms`: its body as the masks of the arm it
/// came from show it (the row's container names the arm).
fn version_from(r: &Row, arms: &[Arm]) -> Result<Version> {
    let container = r.i64(6)?;
    let collection = r.text(0)?;
    let mask = arms.iter().find(|a| a.container == container).map(|a| &a.mask);
    let body = match (r.opt_text(4)?, mask) {
        (Some(b), Some(m)) => Some(m.apply(&collection, &b)?),
        (b, _) => b,
    };
    Ok(Version {
        collection,
        key: r.text(1)?,
        lsn: r.i64(2)?,
        deleted: r.bool(3)?,
        body,
        committed_at: r.opt_i64(5)?,
    })
}

/// What [`version_from`] reads (the container last).
const VERSION_COLUMNS: &str =
    "r.collection, r.key, r.lsn, r.deleted, r.body, (SELECT committed_at FROM lsns WHERE lsns.lsn = r.lsn), r.container";

impl Engine<'_> {
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
        let arms = c.arms(at);
        let v = lookup::latest(self.db, &arms, collection, key, VERSION_COLUMNS)?
            .map(|r| version_from(&r, &arms))
            .transpose()?;
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
        let arms = c.arms(i64::MAX);
        lookup::history(
            self.db,
            &arms,
            collection,
            key,
            before.unwrap_or(i64::MAX),
            limit,
            VERSION_COLUMNS,
        )?
        .iter()
        .map(|r| version_from(r, &arms))
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
        list_in(self.db, &c.arms(at)[0], collection, after.unwrap_or(""), at, limit)
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
        read(self.db, |db| export_in(db, &c.arms(at)[0], at, (ac, ak), limit))
    }
}

/// A page of one arm's own live records in `collection` as of `at` (the
/// whole container: `at` may pass the arm's bound only for its own arm).
fn list_in(
    db: &dyn Db,
    arm: &Arm,
    collection: &str,
    after: &str,
    at: i64,
    limit: i64,
) -> Result<Vec<Version>> {
    crate::dialect::in_key_order(db, || {
        query(
            db,
            &format!(
                "SELECT {VERSION_COLUMNS} FROM records r WHERE r.container = ?1 AND r.collection = ?2 \
                 AND r.key > ?3 AND {lsn} <= ?4 AND r.deleted = 0 \
                 AND {lsn} = (SELECT max({xlsn}) FROM records x WHERE x.container = ?1 AND x.collection = ?2 \
                              AND x.key = r.key AND x.lsn <= ?4 \
                              AND (x.visible_from IS NULL OR x.visible_from <= ?4)) \
                 ORDER BY r.key LIMIT ?5",
                lsn = db.dialect().lsn_by_key("r.lsn"),
                xlsn = db.dialect().lsn_by_key("x.lsn")
            ),
            &[arm.container.into(), collection.into(), after.into(), at.into(), limit.into()],
        )
    })?
    .iter()
    .map(|r| version_from(r, std::slice::from_ref(arm)))
    .collect()
}

/// One page of one container's live records as of `at` in (collection,
/// key) order after `after`: a primary-key range scan.
fn export_in(
    db: &dyn Db,
    arm: &Arm,
    at: i64,
    after: (&str, &str),
    limit: i64,
) -> Result<Vec<Version>> {
    crate::dialect::in_key_order(db, || {
        query(
            db,
            &format!(
                "SELECT {VERSION_COLUMNS} FROM records r WHERE r.container = ?1 \
                 AND (r.collection, r.key) > (?2, ?3) AND {lsn} <= ?4 AND r.deleted = 0 \
                 AND {lsn} = (SELECT max({xlsn}) FROM records x WHERE x.container = ?1 \
                              AND x.collection = r.collection AND x.key = r.key AND x.lsn <= ?4 \
                              AND (x.visible_from IS NULL OR x.visible_from <= ?4)) \
                 ORDER BY r.collection, r.key LIMIT ?5",
                lsn = db.dialect().lsn_by_key("r.lsn"),
                xlsn = db.dialect().lsn_by_key("x.lsn")
            ),
            &[
                arm.container.into(),
                after.0.into(),
                after.1.into(),
                at.into(),
                Value::Integer(limit),
            ],
        )
    })?
    .iter()
    .map(|r| version_from(r, std::slice::from_ref(arm)))
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
            let arms = lookup::nonempty(db, c.arms(at))?;
            match arms.as_slice() {
                [] => return Ok(Vec::new()),
                [one] if one.collections.is_none() => {
                    return match collection {
                        Some(col) => list_in(db, one, col, after.1, one.bound, limit),
                        None => export_in(db, one, one.bound, after, limit),
                    };
                }
                _ => {}
            }
            let mut out = Vec::new();
            let mut cursor = (after.0.to_string(), after.1.to_string());
            loop {
                let fetch = (limit - out.len() as i64).max(1) + 16;
                let rows = lookup::scan_latest(
                    db,
                    &arms,
                    (&cursor.0, &cursor.1),
                    collection,
                    fetch,
                    VERSION_COLUMNS,
                )?;
                let exhausted = (rows.len() as i64) < fetch;
                for r in &rows {
                    let v = version_from(r, &arms)?;
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
