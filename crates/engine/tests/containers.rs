//! `containers`: tenants never see each other's resources.

mod common;
use common::*;
use engine::*;

#[test]
fn tenants_never_see_each_other() {
    let fx = Fx::new();
    let e = fx.engine();
    e.create_container("native", "acme", "shared-name", &serde_json::json!({}))
        .unwrap();
    // The same name in another tenant is another resource.
    e.create_container("native", "globex", "shared-name", &serde_json::json!({}))
        .unwrap();
    e.create_container("native", "acme", "only-acme", &serde_json::json!({}))
        .unwrap();
    assert_eq!(
        e.container("native", "globex", "only-acme")
            .unwrap_err()
            .kind,
        ErrorKind::NotFound
    );
    assert_eq!(
        e.list_containers("native", "globex", 0, 10).unwrap().len(),
        1
    );
    assert_eq!(e.count_containers("native", "acme").unwrap(), 2);
    assert_eq!(
        e.create_container("native", "acme", "only-acme", &serde_json::json!({}))
            .unwrap_err()
            .kind,
        ErrorKind::AlreadyExists
    );
}

/// A protected container refuses direct writes, imports and its deletion
/// (`Protected`, nothing done), and the worker's expiry passes it by; reads
/// and clones go on; unprotected, it takes writes again.
#[test]
fn a_protected_container_refuses_writes_imports_and_deletion() {
    let fx = Fx::new();
    let e = fx.engine();
    let c = e
        .create_container("native", "acme", "prod", &serde_json::json!({}))
        .unwrap();
    e.put(&c, "a", "k", "{}").unwrap();
    let open = e.open_import(&c, 60_000_000).unwrap();
    let c = e.set_protection("native", "acme", "prod", true).unwrap();
    assert!(c.protected);
    let protected = |r: Result<(), Error>| {
        assert_eq!(r.expect_err("refused").kind, ErrorKind::Protected);
    };
    protected(e.put(&c, "a", "k2", "{}").map(|_| ()));
    protected(e.delete(&c, "a", "k").map(|_| ()));
    protected(e.open_import(&c, 60_000_000).map(|_| ()));
    protected(
        e.stage_import(&c, &open.id, &[put("a", "s", "{}")], 60_000_000)
            .map(|_| ()),
    );
    protected(e.commit_import(&c, &open.id).map(|_| ()));
    protected(e.delete_container("native", "acme", "prod"));
    // Its time-to-live does not delete it either.
    e.set_expiry("native", "acme", "prod", Some(T0)).unwrap();
    fx.env.advance(1_000_000);
    assert!(e.expire_step(10).unwrap().is_empty());
    // Reads and clones go on; nothing changed.
    assert_eq!(
        e.get(&c, "a", "k", AsOf::Head).unwrap().body.as_deref(),
        Some("{}")
    );
    assert!(e.get(&c, "a", "k2", AsOf::Head).is_err());
    let (op, _) = e
        .create_operation(&branch_req(&c, "copy", Strategy::Now, true))
        .unwrap();
    assert_eq!(op.status, Status::Succeeded);
    // An import can still be abandoned: nothing of it ever shows.
    e.abandon_import(&c, &open.id).unwrap();
    // Unprotected, it takes writes, and it expires.
    let c = e.set_protection("native", "acme", "prod", false).unwrap();
    e.put(&c, "a", "k2", "{}").unwrap();
    assert_eq!(e.expire_step(10).unwrap().len(), 1);
}
