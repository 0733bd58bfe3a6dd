//! A request's context in a component: who is asking, a connection to the
//! `default` database, and the component's own mapping of engine errors to
//! replies (each vendor family answers in its vendor's error shape).

use crate::http::Reply;
use crate::store::{SpinDb, SpinEnv};

/// The caller (`T`: a tenant, or what a family resolves a token to) and the
/// database.
pub struct Ctx<T = String> {
    pub tenant: T,
    pub db: SpinDb,
    error: fn(&engine::Error) -> Reply,
}

impl<T> Ctx<T> {
    /// Open the database for `tenant`. A failure, and every later engine
    /// error of [`Ctx::engine`], answers through `error`.
    pub fn open(tenant: T, error: fn(&engine::Error) -> Reply) -> Result<Ctx<T>, Reply> {
        let db = SpinDb::open().map_err(|e| error(&e))?;
        Ok(Ctx { tenant, db, error })
    }

    /// The engine over this request's connection (migrated on first use),
    /// with the tenant limits of the Spin variables `limit_*`, read only
    /// when a write checks them (five variable reads a status read skips).
    pub fn engine(&self) -> Result<engine::Engine<'_>, Reply> {
        let mut e = engine::Engine::open(&self.db, &SpinEnv).map_err(|e| (self.error)(&e))?;
        e.config.limits_lookup = Some(crate::vars::variable);
        Ok(e)
    }
}
