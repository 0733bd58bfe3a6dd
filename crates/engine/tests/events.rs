//! `events`: notifications delivered, retried and failed; a dead
//! receiver's queue never crowds out others; signing-secret rotation.

mod common;
use common::*;
use engine::*;

#[test]
fn notifications_are_delivered_retried_and_failed() {
    let fx = Fx::new();
    let e = fx.engine();
    let src = seeded(&e, 3);
    let mut req = clone_req(&src, "dst", Strategy::Now, false);
    req.notify = vec!["https://hooks.example/x".into(), "ops@example.com".into()];
    // A webhook needs the tenant's signing secret first.
    assert_eq!(
        e.create_operation(&req).unwrap_err().kind,
        ErrorKind::InvalidInput
    );
    e.rotate_webhook_secret(&req.tenant).unwrap();
    let (op, _) = e.create_operation(&req).unwrap();
    run_to_end(&e, &op.id, None);
    let due = e.claim_notifications(10, 30_000_000).unwrap();
    assert_eq!(due.len(), 2);
    assert!(due.iter().all(|n| n.tenant == req.tenant));
    // Claimed ones are not handed out twice.
    assert!(e.claim_notifications(10, 30_000_000).unwrap().is_empty());
    let payload: serde_json::Value = serde_json::from_str(&due[0].payload).unwrap();
    assert_eq!(payload["status"], "succeeded");
    e.notification_delivered(due[0].id).unwrap();
    e.notification_failed(due[1].id, "no mail webhook configured", true)
        .unwrap();
    let n = e.notifications_of(&op.id).unwrap();
    assert_eq!(n[0].1, "delivered");
    assert_eq!(
        (n[1].1.as_str(), n[1].3.as_deref()),
        ("failed", Some("no mail webhook configured"))
    );
    for bad in [
        "not a destination",
        "http://169.254.169.254/latest",
        "http://[::1]:80/",
    ] {
        req.notify = vec![bad.into()];
        req.target_name = "dst2".into();
        assert_eq!(
            e.create_operation(&req).unwrap_err().kind,
            ErrorKind::InvalidInput,
            "{bad}"
        );
    }
}

/// An engine allowing webhooks to 127.0.0.1:9, a source, and a clone
/// request of its tenant, who has a signing secret.
fn with_webhooks(fx: &Fx) -> (Engine<'_>, CloneRequest) {
    let mut e = fx.engine();
    e.config.webhook_allow = engine::webhooks::AllowList::parse("127.0.0.1:9");
    let src = seeded(&e, 1);
    let req = clone_req(&src, "dst", Strategy::Now, false);
    e.rotate_webhook_secret(&req.tenant).unwrap();
    (e, req)
}

#[test]
fn a_receiver_with_a_long_queue_never_crowds_out_the_others() {
    let fx = Fx::new();
    let (e, mut req) = with_webhooks(&fx);
    for i in 0..6 {
        req.target_name = format!("dead{i}");
        req.notify = vec!["http://127.0.0.1:9/dead".into()];
        let (op, _) = e.create_operation(&req).unwrap();
        run_to_end(&e, &op.id, None);
    }
    req.target_name = "live".into();
    req.notify = vec!["https://hooks.example/live".into()];
    let (op, _) = e.create_operation(&req).unwrap();
    run_to_end(&e, &op.id, None);
    let due = e.claim_notifications(3, 30_000_000).unwrap();
    let dests: Vec<&str> = due.iter().map(|n| n.destination.as_str()).collect();
    assert_eq!(
        dests,
        [
            "http://127.0.0.1:9/dead",
            "http://127.0.0.1:9/dead",
            "https://hooks.example/live"
        ]
    );
}

#[test]
fn a_rotated_signing_secret_signs_beside_the_new_one_for_a_grace_period() {
    let fx = Fx::new();
    let e = fx.engine();
    assert!(e.webhook_signing_secrets("acme").unwrap().is_empty());
    let first = e.rotate_webhook_secret("acme").unwrap();
    assert_eq!(
        e.webhook_signing_secrets("acme").unwrap(),
        std::slice::from_ref(&first)
    );
    let second = e.rotate_webhook_secret("acme").unwrap();
    assert_ne!(first, second);
    assert_eq!(
        e.webhook_signing_secrets("acme").unwrap(),
        [second.clone(), first]
    );
    fx.env.advance(engine::events::SECRET_GRACE_US + 1);
    assert_eq!(e.webhook_signing_secrets("acme").unwrap(), [second]);
    // Another tenant's secrets are its own.
    assert!(e.webhook_signing_secrets("other").unwrap().is_empty());
}

#[test]
fn transient_delivery_failures_back_off_then_give_up() {
    let fx = Fx::new();
    let (e, mut req) = with_webhooks(&fx);
    req.notify = vec!["http://127.0.0.1:9/hook".into()];
    let (op, _) = e.create_operation(&req).unwrap();
    run_to_end(&e, &op.id, None);
    for attempt in 1..=engine::events::MAX_DELIVERY_ATTEMPTS {
        let due = e.claim_notifications(10, 1_000).unwrap();
        assert_eq!(due.len(), 1, "attempt {attempt}");
        e.notification_failed(due[0].id, "connection refused", false)
            .unwrap();
        fx.env.advance(10_000_000_000);
    }
    assert!(e.claim_notifications(10, 1_000).unwrap().is_empty());
    assert_eq!(e.notifications_of(&op.id).unwrap()[0].1, "failed");
}
