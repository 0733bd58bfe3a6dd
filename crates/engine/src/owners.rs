//! Owned names: the projects, organizations and environments families
//! scope their resources under. A name of a kind belongs to one tenant;
//! another tenant asking for it gets `NotFound`, so names never leak.

use serde_json::Value as Json;

use crate::db::{exec, one, query, transaction, Row};
use crate::error::{Error, ErrorKind, Result};
use crate::handle::Engine;
use crate::util::check_name;

#[derive(Debug, Clone, PartialEq)]
pub struct Owned {
    pub kind: String,
    pub name: String,
    pub tenant: String,
    pub parent: Option<String>,
    pub spec: Json,
    pub created_at: i64,
}

fn from_row(r: &Row) -> Result<Owned> {
    Ok(Owned {
        kind: r.text(0)?,
        name: r.text(1)?,
        tenant: r.text(2)?,
        parent: r.opt_text(3)?,
        spec: serde_json::from_str(&r.text(4)?)
            .map_err(|e| Error::corrupt(format!("owner spec: {e}")))?,
        created_at: r.i64(5)?,
    })
}

const COLUMNS: &str = "kind, name, tenant, parent, spec, created_at";

impl Engine<'_> {
    /// Create `kind/name` for `tenant`. `AlreadyExists` if this tenant has
    /// it, `Conflict` if another does (the caller may answer 404 or 409).
    pub fn create_owned(
        &self,
        kind: &str,
        name: &str,
        tenant: &str,
        parent: Option<&str>,
        spec: &Json,
    ) -> Result<Owned> {
        check_name(kind, name)?;
        let now = self.env.now_us();
        transaction(self.db, |db| {
            if let Some(r) = one(
                db,
                &format!("SELECT {COLUMNS} FROM owners WHERE kind = ?1 AND name = ?2"),
                &[kind.into(), name.into()],
            )? {
                let o = from_row(&r)?;
                return Err(if o.tenant == tenant {
                    Error::new(
                        ErrorKind::AlreadyExists,
                        format!("{kind} {name} already exists"),
                    )
                } else {
                    Error::new(
                        ErrorKind::Conflict { active: None },
                        format!("{kind} {name} is taken"),
                    )
                });
            }
            exec(
                db,
                "INSERT INTO owners (kind, name, tenant, parent, spec, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                &[kind.into(), name.into(), tenant.into(), parent.into(), spec.to_string().into(), now.into()],
            )?;
            Ok(Owned {
                kind: kind.into(),
                name: name.into(),
                tenant: tenant.into(),
                parent: parent.map(String::from),
                spec: spec.clone(),
                created_at: now,
            })
        })
    }

    /// `kind/name` if `tenant` owns it; `NotFound` otherwise.
    pub fn owned(&self, kind: &str, name: &str, tenant: &str) -> Result<Owned> {
        match one(
            self.db,
            &format!("SELECT {COLUMNS} FROM owners WHERE kind = ?1 AND name = ?2"),
            &[kind.into(), name.into()],
        )? {
            Some(r) => {
                let o = from_row(&r)?;
                if o.tenant == tenant {
                    Ok(o)
                } else {
                    Err(Error::not_found(format!("{kind} {name} not found")))
                }
            }
            None => Err(Error::not_found(format!("{kind} {name} not found"))),
        }
    }

    /// `kind/name` for `tenant`, created on first use; `NotFound` when
    /// another tenant owns it.
    pub fn claim_owned(&self, kind: &str, name: &str, tenant: &str) -> Result<Owned> {
        match self.owned(kind, name, tenant) {
            Ok(o) => Ok(o),
            Err(e) if e.kind == ErrorKind::NotFound => {
                match self.create_owned(kind, name, tenant, None, &Json::Object(Default::default()))
                {
                    Ok(o) => Ok(o),
                    Err(e) if e.kind == ErrorKind::AlreadyExists => self.owned(kind, name, tenant),
                    Err(e) if matches!(e.kind, ErrorKind::Conflict { .. }) => {
                        Err(Error::not_found(format!("{kind} {name} not found")))
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Whoever owns `kind/name` (for admin requests that name an owner).
    pub fn owner_of(&self, kind: &str, name: &str) -> Result<Option<Owned>> {
        one(
            self.db,
            &format!("SELECT {COLUMNS} FROM owners WHERE kind = ?1 AND name = ?2"),
            &[kind.into(), name.into()],
        )?
        .map(|r| from_row(&r))
        .transpose()
    }

    /// Forget `kind/name` (e.g. a freed unique name).
    pub fn release_owned(&self, kind: &str, name: &str, tenant: &str) -> Result<()> {
        exec(
            self.db,
            "DELETE FROM owners WHERE kind = ?1 AND name = ?2 AND tenant = ?3",
            &[kind.into(), name.into(), tenant.into()],
        )
    }

    /// A tenant's names of a kind, oldest first.
    pub fn list_owned(&self, kind: &str, tenant: &str, parent: Option<&str>) -> Result<Vec<Owned>> {
        query(
            self.db,
            &format!("SELECT {COLUMNS} FROM owners WHERE tenant = ?1 AND kind = ?2 AND (CAST(?3 AS TEXT) IS NULL OR parent = ?3) ORDER BY created_at, name LIMIT 1000"),
            &[tenant.into(), kind.into(), parent.into()],
        )?
        .iter()
        .map(from_row)
        .collect()
    }
}
