//! Containers with a time-to-live: `set_expiry`, `expire_step` on the fake
//! clock, and the purge that frees an expired container's rows.

mod common;
use common::*;
use engine::*;
use serde_json::json;

const S: i64 = 1_000_000;

fn named(e: &Engine, name: &str, n: usize) -> Container {
    e.create_container("native", "acme", name, &json!({}))
        .unwrap();
    let writes: Vec<Write> = (0..n)
        .map(|i| put("a", &format!("k{i:04}"), "{}"))
        .collect();
    e.write("native", "acme", name, &writes).unwrap();
    e.container("native", "acme", name).unwrap()
}

fn rows(fx: &Fx, id: i64) -> i64 {
    fx.db
        .execute(
            "SELECT count(*) FROM records WHERE container = ?1",
            &[id.into()],
        )
        .unwrap()[0]
        .i64(0)
        .unwrap()
}

#[test]
fn an_expired_container_is_deleted_by_the_worker_with_its_rows() {
    let fx = Fx::new();
    let e = fx.engine();
    let keep = named(&e, "keep", 10);
    let temp = named(&e, "temp", 10);
    assert_eq!(temp.expires_at, None);
    let at = fx.env.now.get() + 60 * S;
    let temp = e.set_expiry("native", "acme", "temp", Some(at)).unwrap();
    assert_eq!(temp.expires_at, Some(at));
    assert_eq!(
        e.container("native", "acme", "temp").unwrap().expires_at,
        Some(at)
    );

    // Not yet: nothing expires, nothing is purged.
    fx.env.advance(59 * S);
    assert!(e.expire_step(10).unwrap().is_empty());
    assert_eq!(e.purge_step(1000).unwrap(), 0);

    // Past its time: gone for readers at once, its rows purged next.
    fx.env.advance(2 * S);
    let gone = e.expire_step(10).unwrap();
    assert_eq!(
        gone.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["temp"]
    );
    assert!(e.container("native", "acme", "temp").is_err());
    assert_eq!(e.purge_step(1000).unwrap(), 10);
    assert_eq!(rows(&fx, temp.id), 0);
    // Once only; the other container is untouched.
    assert!(e.expire_step(10).unwrap().is_empty());
    assert_eq!(rows(&fx, keep.id), 10);
    assert!(e.container("native", "acme", "keep").is_ok());
    // The name is free again.
    e.create_container("native", "acme", "temp", &json!({}))
        .unwrap();
}

#[test]
fn a_cleared_expiry_keeps_the_container() {
    let fx = Fx::new();
    let e = fx.engine();
    named(&e, "temp", 3);
    let at = fx.env.now.get() + 60 * S;
    e.set_expiry("native", "acme", "temp", Some(at)).unwrap();
    e.set_expiry("native", "acme", "temp", None).unwrap();
    fx.env.advance(3600 * S);
    assert!(e.expire_step(10).unwrap().is_empty());
    assert!(e.container("native", "acme", "temp").is_ok());
}

#[test]
fn a_clone_target_expires_only_after_its_copy_ends() {
    let fx = Fx::new();
    let e = fx.engine();
    let src = named(&e, "src", 50);
    let (op, _) = e
        .create_operation(&clone_req(&src, "dst", Strategy::Now, false))
        .unwrap();
    let at = fx.env.now.get() + 60 * S;
    e.set_expiry("native", "acme", "dst", Some(at)).unwrap();
    fx.env.advance(120 * S);
    // Still being filled: it waits.
    assert!(e.expire_step(10).unwrap().is_empty());
    let done = run_to_end(&e, &op.id, Some(10));
    assert_eq!(done.status, Status::Succeeded);
    let gone = e.expire_step(10).unwrap();
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].name, "dst");
    while e.purge_step(7).unwrap() > 0 {}
    assert_eq!(rows(&fx, gone[0].id), 0);
    // The source keeps every row.
    assert_eq!(rows(&fx, src.id), 50);
}
