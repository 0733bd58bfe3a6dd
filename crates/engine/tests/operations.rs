//! `operations`: every state transition, strategies, leases, the
//! one-active rule, idempotency, listing, ticks and fairness.

mod common;
use common::*;
use engine::*;
use serde_json::json;

#[test]
fn a_clone_goes_pending_in_progress_succeeded_and_equals_the_source_at_its_lsn() {
    let fx = Fx::new();
    let e = fx.engine();
    let src = seeded(&e, 100);
    let (op, replayed) = e
        .create_operation(&clone_req(&src, "dst", Strategy::Now, false))
        .unwrap();
    assert!(!replayed);
    assert_eq!(op.status, Status::Pending);
    assert_eq!(op.records_total, 100);
    assert_eq!(op.eta_seconds(), None);
    // The target exists at once, cloning, not writable.
    let dst = e.container("native", "acme", "dst").unwrap();
    assert_eq!(dst.state, ContainerState::Cloning);
    assert!(matches!(
        e.put(&dst, "a", "x", "1").unwrap_err().kind,
        ErrorKind::InvalidState { .. }
    ));
    // Writes to the source after the snapshot never reach the clone.
    e.put(&src, "a", "late", "1").unwrap();
    e.delete(&src, "a", "k00000").unwrap();

    assert!(e.claim(&op.id, "w1").unwrap());
    let o = e.step(&op.id, "w1", Some(30)).unwrap();
    assert_eq!((o.copied, o.status), (30, Status::InProgress));
    let mid = e.operation("acme", &op.id).unwrap();
    assert_eq!(
        (mid.status, mid.records_copied, mid.attempts),
        (Status::InProgress, 30, 1)
    );
    assert!(mid.percent() > 29.0 && mid.percent() < 31.0);
    assert!(mid.eta_seconds().is_some());
    e.release(&op.id, "w1").unwrap();
    let done = run_to_end(&e, &op.id, Some(30));
    assert_eq!(done.status, Status::Succeeded);
    assert_eq!((done.records_copied, done.records_total), (100, 100));
    assert_eq!(done.percent(), 100.0);
    assert!(done.completed_at.is_some());
    let dst = e.container("native", "acme", "dst").unwrap();
    assert_eq!(dst.state, ContainerState::Ready);
    assert_eq!(
        export(&e, &dst, i64::MAX),
        export(&e, &src, op.snapshot_lsn)
    );
    assert_ne!(
        export(&e, &src, i64::MAX),
        export(&e, &src, op.snapshot_lsn)
    );
    let stats = e.collections(&dst).unwrap();
    assert_eq!(stats.iter().map(|s| s.records).sum::<i64>(), 100);
    // Events: created, started, progress…, succeeded.
    let ev = e.events(&op.id, 0, 100).unwrap();
    assert_eq!(ev.first().unwrap().kind, "created");
    assert_eq!(ev[1].kind, "started");
    assert_eq!(ev.last().unwrap().kind, "succeeded");
    assert!(ev.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    // Steps after the end are refused.
    assert!(matches!(
        e.step(&op.id, "w", None).unwrap_err().kind,
        ErrorKind::InvalidState { .. }
    ));
}

#[test]
fn history_copies_every_version_and_skip_history_only_live_ones() {
    let fx = Fx::new();
    let e = fx.engine();
    let src = e
        .create_container("native", "acme", "src", &json!({}))
        .unwrap();
    for v in 0..5 {
        e.write(
            "native",
            "acme",
            "src",
            &[
                put("a", "k", &v.to_string()),
                put("b", &format!("k{v}"), "1"),
            ],
        )
        .unwrap();
    }
    e.delete(&src, "b", "k0").unwrap();
    let src = e.container("native", "acme", "src").unwrap();
    let (h, _) = e
        .create_operation(&clone_req(&src, "with-history", Strategy::Now, true))
        .unwrap();
    let (s, _) = e
        .create_operation(&clone_req(&src, "skip-history", Strategy::Now, false))
        .unwrap();
    let h = run_to_end(&e, &h.id, Some(2));
    let s = run_to_end(&e, &s.id, Some(2));
    let hc = e.container("native", "acme", "with-history").unwrap();
    let sc = e.container("native", "acme", "skip-history").unwrap();
    assert_eq!(
        all_versions(&e, &hc)
            .into_iter()
            .map(|v| (v.0, v.1, v.2, v.3, v.4))
            .collect::<Vec<_>>(),
        all_versions(&e, &src)
    );
    assert_eq!(h.records_copied, 11);
    assert_eq!(s.records_copied, 5); // a/k and b/k1..k4
    assert_eq!(e.history(&sc, "a", "k", None, 10).unwrap().len(), 1);
    assert_eq!(e.history(&hc, "a", "k", None, 10).unwrap().len(), 5);
    assert_eq!(export(&e, &hc, i64::MAX), export(&e, &sc, i64::MAX));
    // The clone with history answers as-of reads into the source's past.
    let first = e
        .history(&src, "a", "k", None, 10)
        .unwrap()
        .last()
        .unwrap()
        .lsn;
    assert_eq!(
        e.get(&hc, "a", "k", AsOf::Lsn(first))
            .unwrap()
            .body
            .unwrap(),
        "0"
    );
    let stats: Vec<_> = e
        .collections(&hc)
        .unwrap()
        .iter()
        .map(|s| (s.name.clone(), s.records, s.versions))
        .collect();
    assert_eq!(stats, vec![("a".into(), 1, 5), ("b".into(), 4, 6)]);
}

#[test]
fn a_collection_filter_copies_only_those_collections() {
    let fx = Fx::new();
    let e = fx.engine();
    let src = seeded(&e, 30);
    let mut req = clone_req(&src, "dst", Strategy::Now, false);
    req.collections = Some(vec!["b".into(), "c".into()]);
    let (op, _) = e.create_operation(&req).unwrap();
    assert_eq!(op.records_total, 20);
    run_to_end(&e, &op.id, Some(4));
    let dst = e.container("native", "acme", "dst").unwrap();
    let got = export(&e, &dst, i64::MAX);
    let want: Vec<_> = export(&e, &src, i64::MAX)
        .into_iter()
        .filter(|r| r.0 != "a")
        .collect();
    assert_eq!(got, want);
    req.collections = Some(vec![]);
    req.target_name = "dst2".into();
    assert_eq!(
        e.create_operation(&req).unwrap_err().kind,
        ErrorKind::InvalidInput
    );
}

#[test]
fn pitr_copies_the_state_at_that_time_and_refuses_outside_the_window() {
    let fx = Fx::new();
    let e = fx.engine();
    let src = e
        .create_container("native", "acme", "src", &json!({}))
        .unwrap();
    e.put(&src, "a", "k", "\"morning\"").unwrap();
    fx.env.advance(3_600_000_000);
    let noon = fx.env.now.get();
    fx.env.advance(3_600_000_000);
    e.put(&src, "a", "k", "\"evening\"").unwrap();
    e.put(&src, "a", "k2", "\"evening\"").unwrap();
    let (op, _) = e
        .create_operation(&clone_req(&src, "dst", Strategy::Pitr(noon), true))
        .unwrap();
    assert_eq!(op.target_time, Some(noon));
    run_to_end(&e, &op.id, None);
    let dst = e.container("native", "acme", "dst").unwrap();
    assert_eq!(
        export(&e, &dst, i64::MAX),
        vec![("a".into(), "k".into(), "\"morning\"".into())]
    );

    let err = e
        .create_operation(&clone_req(
            &src,
            "x",
            Strategy::Pitr(src.created_at - 1),
            true,
        ))
        .unwrap_err();
    assert!(
        matches!(err.kind, ErrorKind::OutsideRetention { from, .. } if from == src.created_at),
        "{err:?}"
    );
    assert!(err.message.contains("outside that window"));
    let future = fx.env.now.get() + 60_000_000;
    assert!(matches!(
        e.create_operation(&clone_req(&src, "x", Strategy::Pitr(future), true))
            .unwrap_err()
            .kind,
        ErrorKind::OutsideRetention { .. }
    ));
    // At exactly the creation time: allowed (the empty state).
    let (empty, _) = e
        .create_operation(&clone_req(
            &src,
            "at-creation",
            Strategy::Pitr(src.created_at),
            true,
        ))
        .unwrap();
    assert_eq!(run_to_end(&e, &empty.id, None).records_copied, 0);
}

#[test]
fn last_snapshot_uses_the_newest_snapshot_or_says_there_is_none() {
    let fx = Fx::new();
    let e = fx.engine();
    let src = e
        .create_container("native", "acme", "src", &json!({}))
        .unwrap();
    e.put(&src, "a", "k", "1").unwrap();
    let err = e
        .create_operation(&clone_req(&src, "dst", Strategy::LastSnapshot, false))
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NoSnapshot);
    let s1 = e.snapshot(&src, Some("before")).unwrap();
    e.put(&src, "a", "k", "2").unwrap();
    let (op, _) = e
        .create_operation(&clone_req(&src, "dst", Strategy::LastSnapshot, false))
        .unwrap();
    assert_eq!(op.snapshot_lsn, s1.lsn);
    run_to_end(&e, &op.id, None);
    let dst = e.container("native", "acme", "dst").unwrap();
    assert_eq!(
        e.get(&dst, "a", "k", AsOf::Head).unwrap().body.unwrap(),
        "1"
    );
    let list = e.snapshots(&src, 10).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].name.as_deref(), Some("before"));
    // Scheduled snapshots: only for containers that changed since.
    fx.env.advance(10_000_000);
    assert_eq!(e.take_scheduled_snapshots(5_000_000, 10).unwrap(), 1);
    assert_eq!(e.take_scheduled_snapshots(5_000_000, 10).unwrap(), 0);
}

#[test]
fn leases_exclude_a_second_worker_until_they_expire() {
    let fx = Fx::new();
    let e = fx.engine();
    let src = seeded(&e, 50);
    let (op, _) = e
        .create_operation(&clone_req(&src, "dst", Strategy::Now, false))
        .unwrap();
    assert!(e.claim(&op.id, "w1").unwrap());
    assert!(!e.claim(&op.id, "w2").unwrap());
    assert_eq!(
        e.step(&op.id, "w2", Some(10)).unwrap_err().kind,
        ErrorKind::LeaseLost
    );
    e.step(&op.id, "w1", Some(10)).unwrap();
    // w1 stalls past its lease; w2 takes over; w1 can no longer commit.
    fx.env.advance(e.config.lease_us + 1);
    assert!(e.claim(&op.id, "w2").unwrap());
    let before = e.operation("acme", &op.id).unwrap().records_copied;
    assert_eq!(
        e.step(&op.id, "w1", Some(10)).unwrap_err().kind,
        ErrorKind::LeaseLost
    );
    assert_eq!(e.operation("acme", &op.id).unwrap().records_copied, before);
    e.step(&op.id, "w2", Some(10)).unwrap();
    // A takeover is not a new attempt.
    assert_eq!(e.operation("acme", &op.id).unwrap().attempts, 1);
    e.release(&op.id, "w2").unwrap();
    assert!(e.claim(&op.id, "w3").unwrap());
}

#[test]
fn cancel_pending_and_both_in_progress_policies() {
    let fx = Fx::new();
    let e = fx.engine();
    let src = seeded(&e, 20);
    let (a, _) = e
        .create_operation(&clone_req(&src, "a", Strategy::Now, false))
        .unwrap();
    let c = e.cancel("acme", &a.id, CancelPolicy::Refuse).unwrap();
    assert_eq!(c.status, Status::Canceled);
    assert_eq!(
        e.container("native", "acme", "a").unwrap_err().kind,
        ErrorKind::NotFound
    );
    assert!(
        matches!(e.cancel("acme", &a.id, CancelPolicy::RemoveTarget).unwrap_err().kind, ErrorKind::InvalidState { ref state } if state == "canceled")
    );
    assert_eq!(
        e.events(&a.id, 0, 10).unwrap().last().unwrap().kind,
        "canceled"
    );
    // The purge removes the partial target's rows in chunks.
    let (b, _) = e
        .create_operation(&clone_req(&src, "b", Strategy::Now, false))
        .unwrap();
    e.claim(&b.id, "w").unwrap();
    e.step(&b.id, "w", Some(5)).unwrap();
    let err = e.cancel("acme", &b.id, CancelPolicy::Refuse).unwrap_err();
    assert!(matches!(err.kind, ErrorKind::InvalidState { ref state } if state == "in_progress"));
    let c = e.cancel("acme", &b.id, CancelPolicy::RemoveTarget).unwrap();
    assert_eq!(c.status, Status::Canceled);
    assert!(e.step(&b.id, "w", Some(5)).is_err());
    while e.purge_step(2).unwrap() > 0 {}
    let left = fx
        .db
        .execute(
            "SELECT count(*) FROM records WHERE container NOT IN (SELECT id FROM containers)",
            &[],
        )
        .unwrap();
    assert_eq!(left[0].i64(0).unwrap(), 0);
    // The name is free again.
    e.create_container("native", "acme", "b", &json!({}))
        .unwrap();
    // Another tenant cannot cancel or even see it.
    assert_eq!(
        e.cancel("globex", &b.id, CancelPolicy::RemoveTarget)
            .unwrap_err()
            .kind,
        ErrorKind::NotFound
    );
    assert_eq!(
        e.operation("globex", &b.id).unwrap_err().kind,
        ErrorKind::NotFound
    );
}

#[test]
fn a_failed_operation_retries_from_its_cursor() {
    let fx = Fx::new();
    let e = fx.engine();
    let src = seeded(&e, 40);
    let (op, _) = e
        .create_operation(&clone_req(&src, "dst", Strategy::Now, true))
        .unwrap();
    e.claim(&op.id, "w").unwrap();
    e.step(&op.id, "w", Some(15)).unwrap();
    assert!(
        matches!(e.retry("acme", &op.id).unwrap_err().kind, ErrorKind::InvalidState { ref state } if state == "in_progress")
    );
    e.fail(&op.id, "disk on fire").unwrap();
    let failed = e.operation("acme", &op.id).unwrap();
    assert_eq!(
        (failed.status, failed.error.as_deref()),
        (Status::Failed, Some("disk on fire"))
    );
    assert_eq!(
        e.container("native", "acme", "dst").unwrap().state,
        ContainerState::Failed
    );
    assert!(!e.claim(&op.id, "w").unwrap());
    let r = e.retry("acme", &op.id).unwrap();
    assert_eq!(
        (r.status, r.records_copied, r.error),
        (Status::Pending, 15, None)
    );
    let done = run_to_end(&e, &op.id, Some(7));
    assert_eq!(
        (done.status, done.records_copied, done.attempts),
        (Status::Succeeded, 40, 2)
    );
    let dst = e.container("native", "acme", "dst").unwrap();
    assert_eq!(all_versions(&e, &dst), all_versions(&e, &src));
    let kinds: Vec<String> = e
        .events(&op.id, 0, 100)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(kinds.contains(&"failed".to_string()) && kinds.contains(&"retried".to_string()));
    assert_eq!(kinds.iter().filter(|k| *k == "started").count(), 2);
}

#[test]
fn a_deleted_source_fails_the_operation_with_a_reason() {
    let fx = Fx::new();
    let e = fx.engine();
    let src = seeded(&e, 10);
    let (op, _) = e
        .create_operation(&clone_req(&src, "dst", Strategy::Now, false))
        .unwrap();
    // Deleting a resource with an active operation is refused…
    let err = e.delete_container("native", "acme", "src").unwrap_err();
    assert_eq!(
        err.kind,
        ErrorKind::Conflict {
            active: Some(op.id.clone())
        }
    );
    // …so simulate a foreign delete.
    fx.db
        .execute(
            "UPDATE containers SET deleting = 1 WHERE id = ?1",
            &[src.id.into()],
        )
        .unwrap();
    e.claim(&op.id, "w").unwrap();
    let o = e.step(&op.id, "w", None).unwrap();
    assert_eq!(o.status, Status::Failed);
    assert!(e
        .operation("acme", &op.id)
        .unwrap()
        .error
        .unwrap()
        .contains("source native:src was deleted"));
}

#[test]
fn one_active_operation_per_key_is_enforced_by_the_database() {
    let fx = Fx::new();
    let e = fx.engine();
    let src = seeded(&e, 10);
    let mut req = clone_req(&src, "a", Strategy::Now, false);
    req.exclusive_key = Some("native:src".into());
    let (first, _) = e.create_operation(&req).unwrap();
    req.target_name = "b".into();
    let err = e.create_operation(&req).unwrap_err();
    assert_eq!(
        err.kind,
        ErrorKind::Conflict {
            active: Some(first.id.clone())
        }
    );
    // The unique index itself refuses a second active row, whatever the code does.
    let raw = fx.db.execute(
        "INSERT INTO operations (id, family, tenant, kind, source, source_ref, target, target_ref, strategy, snapshot_lsn, \
         history, status, exclusive_key, records_total, bytes_total, chunk_size, meta, created_at, updated_at) \
         VALUES ('x', 'native', 'acme', 'clone', 1, 'a', 2, 'b', 'now', 0, 0, 'pending', 'native:src', 0, 0, 1, '{}', 0, 0)",
        &[],
    );
    assert!(matches!(raw, Err(DbError::Constraint(_))), "{raw:?}");
    // Once it ends, the next one may start; concurrent starts from two connections: one wins.
    run_to_end(&e, &first.id, None);
    let other = fx.other_connection();
    let e2 = Engine::open(&other, &fx.env).unwrap();
    req.target_name = "c".into();
    let r1 = e.create_operation(&req);
    let mut req2 = req.clone();
    req2.target_name = "d".into();
    let r2 = e2.create_operation(&req2);
    assert!(r1.is_ok() != r2.is_ok(), "{r1:?} {r2:?}");
}

#[test]
fn idempotency_keys_replay_and_refuse_other_requests() {
    let fx = Fx::new();
    let e = fx.engine();
    let src = seeded(&e, 10);
    let mut req = clone_req(&src, "dst", Strategy::Now, false);
    req.idempotency = Some(("acme:clones".into(), "key-1".into(), "fp-1".into()));
    let (a, replayed_a) = e.create_operation(&req).unwrap();
    let (b, replayed_b) = e.create_operation(&req).unwrap();
    assert_eq!((a.id.clone(), replayed_a, replayed_b), (b.id, false, true));
    req.idempotency = Some(("acme:clones".into(), "key-1".into(), "fp-2".into()));
    assert_eq!(
        e.create_operation(&req).unwrap_err().kind,
        ErrorKind::IdempotencyMismatch
    );
    let (ops, total) = e
        .list_operations("acme", &OpFilter::default(), 0, 10)
        .unwrap();
    assert_eq!((ops.len(), total), (1, 1));
}

#[test]
fn listing_filters_by_resource_status_and_family() {
    let fx = Fx::new();
    let e = fx.engine();
    let src = seeded(&e, 5);
    let (a, _) = e
        .create_operation(&clone_req(&src, "a", Strategy::Now, false))
        .unwrap();
    let (b, _) = e
        .create_operation(&clone_req(&src, "b", Strategy::Now, false))
        .unwrap();
    run_to_end(&e, &b.id, None);
    let f = OpFilter {
        status: Some(Status::Pending),
        ..Default::default()
    };
    let (ops, total) = e.list_operations("acme", &f, 0, 10).unwrap();
    assert_eq!((ops[0].id.clone(), total), (a.id.clone(), 1));
    let f = OpFilter {
        container: Some(src.id),
        ..Default::default()
    };
    assert_eq!(e.list_operations("acme", &f, 0, 1).unwrap().1, 2);
    assert_eq!(e.list_operations("acme", &f, 0, 1).unwrap().0.len(), 1);
    let f = OpFilter {
        family: Some("typesense".into()),
        ..Default::default()
    };
    assert_eq!(e.list_operations("acme", &f, 0, 10).unwrap().1, 0);
    assert_eq!(
        e.list_operations("globex", &OpFilter::default(), 0, 10)
            .unwrap()
            .1,
        0
    );
}

#[test]
fn ticks_round_robin_so_a_large_copy_never_starves_a_small_one() {
    let fx = Fx::new();
    let cfg = Config {
        initial_chunk: 100,
        max_chunk: 100,
        ..Config::default()
    };
    let e = fx.engine().with_config(cfg);
    let big = seeded(&e, 3000);
    let small = e
        .create_container("native", "acme", "small", &json!({}))
        .unwrap();
    e.put(&small, "a", "k", "1").unwrap();
    let (b, _) = e
        .create_operation(&clone_req(&big, "big-copy", Strategy::Now, false))
        .unwrap();
    let (s, _) = e
        .create_operation(&clone_req(&small, "small-copy", Strategy::Now, false))
        .unwrap();
    // The fake clock moves 1 µs per reading: a 40 µs budget is a few steps.
    let r = e.tick("w", 40).unwrap();
    assert!(r.steps >= 2 && r.steps < 30, "{r:?}");
    assert_eq!(r.finished, vec![s.id.clone()]);
    let big_op = e.operation("acme", &b.id).unwrap();
    assert_eq!(big_op.status, Status::InProgress);
    assert!(big_op.records_copied > 0 && big_op.records_copied < 3000);
    // The tick gave its leases back: another worker continues at once.
    assert!(big_op.lease_owner.is_none());
    let mut ticks = 0;
    while e.operation("acme", &b.id).unwrap().status != Status::Succeeded {
        e.tick("w2", 200).unwrap();
        ticks += 1;
        assert!(ticks < 100);
    }
    let dst = e.container("native", "acme", "big-copy").unwrap();
    assert_eq!(export(&e, &dst, i64::MAX), export(&e, &big, i64::MAX));
}

#[test]
fn a_status_read_nudge_makes_bounded_progress_unless_a_worker_holds_the_lease() {
    let fx = Fx::new();
    let mut e = fx.engine();
    e.config.nudge_records = 20;
    let src = seeded(&e, 50);
    let (op, _) = e
        .create_operation(&clone_req(&src, "dst", Strategy::Now, false))
        .unwrap();
    assert!(e.nudge(&op.id).unwrap());
    let after = e.operation("acme", &op.id).unwrap();
    assert_eq!(
        (after.records_copied, after.lease_owner.clone()),
        (20, None)
    );
    e.claim(&op.id, "worker").unwrap();
    assert!(!e.nudge(&op.id).unwrap());
    assert_eq!(e.operation("acme", &op.id).unwrap().records_copied, 20);
}

#[test]
fn a_tenant_with_fifty_clones_cannot_delay_another_tenants_small_one() {
    let fx = Fx::new();
    let cfg = Config {
        initial_chunk: 50,
        max_chunk: 50,
        limits: engine::limits::Limits::unlimited(),
        ..Config::default()
    };
    let e = fx.engine().with_config(cfg);
    let big = seeded(&e, 2000);
    for i in 0..50 {
        e.create_operation(&clone_req(&big, &format!("big{i}"), Strategy::Now, false))
            .unwrap();
    }
    // Every big clone has been stepped: the busy tenant is mid-flight.
    e.tick("w", 400).unwrap();
    e.create_container("native", "other", "small", &json!({}))
        .unwrap();
    let writes: Vec<Write> = (0..120).map(|i| put("a", &format!("k{i}"), "1")).collect();
    e.write("native", "other", "small", &writes).unwrap();
    let small = e.container("native", "other", "small").unwrap();
    let (s, _) = e
        .create_operation(&clone_req(&small, "small-copy", Strategy::Now, false))
        .unwrap();
    // A tick of a few steps: the small clone (3 chunks) finishes within two.
    let mut ticks = 0;
    while e.operation("other", &s.id).unwrap().status != Status::Succeeded {
        let r = e.tick("w", 40).unwrap();
        assert!(r.steps < 50, "{r:?}");
        ticks += 1;
        assert!(ticks <= 2, "the small clone waited {ticks} ticks");
    }
    // ... while the busy tenant's clones are still running.
    let (busy, _) = e
        .list_operations("acme", &OpFilter::default(), 0, 100)
        .unwrap();
    assert!(busy.iter().filter(|o| o.status.is_active()).count() > 40);
}
