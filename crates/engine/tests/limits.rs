//! `limits`: per-tenant limits refuse with the limit named and nothing
//! done.

mod common;
use common::*;
use engine::*;
use serde_json::json;

fn limit_of(e: &engine::Error) -> Option<(engine::limits::Limit, Option<i64>)> {
    match e.kind {
        ErrorKind::LimitExceeded {
            limit,
            retry_after_s,
        } => Some((limit, retry_after_s)),
        _ => None,
    }
}

#[test]
fn tenant_limits_refuse_with_the_limit_named_and_nothing_done() {
    use engine::limits::{Limit, Limits};
    let fx = Fx::new();
    let cfg = Config {
        limits: Limits {
            active_operations: 2,
            resources: 4,
            stored_bytes: 4_000,
            starts_per_minute: 2,
            writes_per_minute: 150,
        },
        ..Config::default()
    };
    let e = fx.engine().with_config(cfg);
    let src = seeded(&e, 100); // 100 writes, ~900 bytes
                               // Writes per minute: 100 of 150 used; 60 more is refused, whole.
    let writes: Vec<Write> = (0..60).map(|i| put("a", &format!("w{i}"), "1")).collect();
    let err = e.write("native", "acme", "src", &writes).unwrap_err();
    assert_eq!(
        limit_of(&err).map(|l| l.0),
        Some(Limit::WritesPerMinute),
        "{err:?}"
    );
    assert!(limit_of(&err).unwrap().1.unwrap() >= 1);
    assert!(
        err.message.contains("limit_writes_per_minute"),
        "{}",
        err.message
    );
    assert_eq!(
        export(&e, &src, i64::MAX).len(),
        100,
        "nothing half-written"
    );
    fx.env.advance(60_000_000);
    e.write("native", "acme", "src", &writes).unwrap();
    // Active operations: two at once.
    let (a, _) = e
        .create_operation(&clone_req(&src, "c1", Strategy::Now, false))
        .unwrap();
    e.create_operation(&clone_req(&src, "c2", Strategy::Now, false))
        .unwrap();
    let err = e
        .create_operation(&clone_req(&src, "c3", Strategy::Now, false))
        .unwrap_err();
    assert_eq!(
        limit_of(&err),
        Some((Limit::ActiveOperations, None)),
        "{err:?}"
    );
    assert!(
        e.container("native", "acme", "c3").is_err(),
        "no target left behind"
    );
    run_to_end(&e, &a.id, None);
    // Starts per minute: a third start within 60 s is refused (only one is active).
    let err = e
        .create_operation(&clone_req(&src, "c3", Strategy::Now, false))
        .unwrap_err();
    assert_eq!(
        limit_of(&err).map(|l| l.0),
        Some(Limit::StartsPerMinute),
        "{err:?}"
    );
    fx.env.advance(61_000_000);
    // Resources: src, c1, c2 and now c3 are four: a fifth is refused.
    let (c, _) = e
        .create_operation(&clone_req(&src, "c3", Strategy::Now, false))
        .unwrap();
    run_to_end(&e, &c.id, None);
    let err = e
        .create_container("native", "acme", "five", &json!({}))
        .unwrap_err();
    assert_eq!(limit_of(&err), Some((Limit::Resources, None)), "{err:?}");
    // Another tenant has its own allowance.
    e.create_container("native", "other", "mine", &json!({}))
        .unwrap();
    // Stored bytes: a big write is refused whole.
    let big = "x".repeat(5_000);
    let err = e
        .write("native", "other", "mine", &[put("a", "big", &big)])
        .unwrap_err();
    assert_eq!(limit_of(&err), Some((Limit::StoredBytes, None)), "{err:?}");
}
