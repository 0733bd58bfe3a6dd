//! `owners`: owned names belong to one tenant.

mod common;
use common::*;
use engine::*;

#[test]
fn owned_names_belong_to_one_tenant() {
    let fx = Fx::new();
    let e = fx.engine();
    e.claim_owned("project", "p1", "acme").unwrap();
    assert_eq!(
        e.claim_owned("project", "p1", "acme").unwrap().tenant,
        "acme"
    );
    assert_eq!(
        e.claim_owned("project", "p1", "globex").unwrap_err().kind,
        ErrorKind::NotFound
    );
    assert_eq!(
        e.owned("project", "p1", "globex").unwrap_err().kind,
        ErrorKind::NotFound
    );
    e.create_owned(
        "environment",
        "e1",
        "acme",
        Some("p1"),
        &serde_json::json!({"name": "prod"}),
    )
    .unwrap();
    assert_eq!(
        e.list_owned("environment", "acme", Some("p1"))
            .unwrap()
            .len(),
        1
    );
    assert!(e
        .list_owned("environment", "globex", None)
        .unwrap()
        .is_empty());
    assert!(matches!(
        e.create_owned("environment", "e1", "globex", None, &serde_json::json!({}))
            .unwrap_err()
            .kind,
        ErrorKind::Conflict { .. }
    ));
}
