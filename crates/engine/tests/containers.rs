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
