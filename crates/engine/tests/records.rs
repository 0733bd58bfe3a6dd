//! `records`: writes at one LSN per batch, all or nothing, the last write
//! of a key winning, validation, and batches larger than one statement.

mod common;
use common::*;
use engine::*;

#[test]
fn writes_append_versions_with_increasing_lsns_and_reads_see_as_of() {
    let fx = Fx::new();
    let e = fx.engine();
    let c = e
        .create_container("native", "acme", "db1", &serde_json::json!({"x": 1}))
        .unwrap();
    let w1 = e.put(&c, "users", "u1", r#"{"v":1}"#).unwrap();
    fx.env.advance(1_000_000);
    let w2 = e.put(&c, "users", "u1", r#"{"v":2}"#).unwrap();
    fx.env.advance(1_000_000);
    let w3 = e.delete(&c, "users", "u1").unwrap();
    assert!(w1.lsn < w2.lsn && w2.lsn < w3.lsn);
    assert!(w1.committed_at < w2.committed_at);

    assert_eq!(
        e.get(&c, "users", "u1", AsOf::Head).unwrap_err().kind,
        ErrorKind::NotFound
    );
    assert_eq!(
        e.get(&c, "users", "u1", AsOf::Lsn(w1.lsn))
            .unwrap()
            .body
            .unwrap(),
        r#"{"v":1}"#
    );
    assert_eq!(
        e.get(&c, "users", "u1", AsOf::Lsn(w2.lsn))
            .unwrap()
            .body
            .unwrap(),
        r#"{"v":2}"#
    );
    assert_eq!(
        e.get(&c, "users", "u1", AsOf::Time(w1.committed_at + 10))
            .unwrap()
            .body
            .unwrap(),
        r#"{"v":1}"#
    );
    assert_eq!(
        e.get(&c, "users", "u1", AsOf::Time(w2.committed_at))
            .unwrap()
            .body
            .unwrap(),
        r#"{"v":2}"#
    );

    let h = e.history(&c, "users", "u1", None, 10).unwrap();
    assert_eq!(
        h.iter().map(|v| (v.lsn, v.deleted)).collect::<Vec<_>>(),
        vec![(w3.lsn, true), (w2.lsn, false), (w1.lsn, false)]
    );
    assert_eq!(h[0].committed_at, Some(w3.committed_at));
    let page = e.history(&c, "users", "u1", Some(w2.lsn), 10).unwrap();
    assert_eq!(page.len(), 1);

    // Delete of a missing key is NotFound and writes nothing.
    assert_eq!(
        e.delete(&c, "users", "u1").unwrap_err().kind,
        ErrorKind::NotFound
    );
    let c = e.container("native", "acme", "db1").unwrap();
    assert!(c.head_lsn >= w3.lsn);
    let stats = e.collections(&c).unwrap();
    assert_eq!(stats[0].records, 0);
    assert_eq!(stats[0].versions, 3);
}

#[test]
fn batches_are_all_or_nothing_and_last_write_of_a_key_wins() {
    let fx = Fx::new();
    let e = fx.engine();
    let c = e
        .create_container("native", "acme", "db", &serde_json::json!({}))
        .unwrap();
    let bad = e
        .write(
            "native",
            "acme",
            "db",
            &[put("a", "1", "{}"), put("a", "2", "not json")],
        )
        .unwrap_err();
    assert_eq!(bad.kind, ErrorKind::InvalidInput);
    assert!(bad.message.contains("not valid JSON"), "{}", bad.message);
    assert!(e.list(&c, "a", None, 10, AsOf::Head).unwrap().is_empty());

    let done = e
        .write(
            "native",
            "acme",
            "db",
            &[
                put("a", "1", "{\"n\":1}"),
                put("a", "1", "{\"n\":2}"),
                put("b", "x", "[]"),
            ],
        )
        .unwrap();
    assert_eq!(done.applied, 3);
    let v = e.get(&c, "a", "1", AsOf::Head).unwrap();
    assert_eq!(v.body.unwrap(), "{\"n\":2}");
    assert_eq!(e.history(&c, "a", "1", None, 10).unwrap().len(), 1);
    let stats = e.collections(&c).unwrap();
    assert_eq!(
        (
            stats[0].name.as_str(),
            stats[0].records,
            stats[0].versions,
            stats[0].bytes
        ),
        ("a", 1, 1, 7)
    );
    assert_eq!((stats[1].name.as_str(), stats[1].records), ("b", 1));
}

#[test]
fn names_keys_and_bodies_are_validated() {
    let fx = Fx::new();
    let e = fx.engine();
    assert_eq!(
        e.create_container("native", "acme", "bad name", &serde_json::json!({}))
            .unwrap_err()
            .kind,
        ErrorKind::InvalidInput
    );
    let c = e
        .create_container("native", "acme", "db", &serde_json::json!({}))
        .unwrap();
    assert_eq!(
        e.put(&c, "", "k", "{}").unwrap_err().kind,
        ErrorKind::InvalidInput
    );
    assert_eq!(
        e.put(&c, "c", &"k".repeat(600), "{}").unwrap_err().kind,
        ErrorKind::InvalidInput
    );
    assert_eq!(
        e.put(&c, "c", "k", "{").unwrap_err().kind,
        ErrorKind::InvalidInput
    );
    let many: Vec<Write> = (0..50_001).map(|i| put("c", &i.to_string(), "1")).collect();
    assert_eq!(
        e.write("native", "acme", "db", &many).unwrap_err().kind,
        ErrorKind::TooLarge
    );
}

/// A batch larger than one multi-row statement, with the same key written
/// twice across the statement boundary and deletes of keys put earlier in
/// the batch, reads and counts exactly as the writes one by one would.
#[test]
fn a_large_batch_with_repeats_matches_writes_one_by_one() {
    let fx = Fx::new();
    let e = fx.engine();
    for name in ["a", "b"] {
        e.create_container("native", "acme", name, &serde_json::json!({}))
            .unwrap();
    }
    let first: Vec<Write> = (0..50)
        .map(|i| put("c", &format!("k{i:04}"), "{\"v\":0}"))
        .collect();
    let mut batch: Vec<Write> = Vec::new();
    for i in 0..300 {
        batch.push(put(
            ["c", "d"][i % 2],
            &format!("k{:04}", i % 200),
            &format!("{{\"v\":{i}}}"),
        ));
    }
    for i in (0..60).step_by(3) {
        batch.push(del("c", &format!("k{i:04}")));
    }
    batch.push(del("c", "never-written"));
    e.write("native", "acme", "a", &first).unwrap();
    e.write("native", "acme", "b", &first).unwrap();
    let mut applied = 0;
    for w in &batch {
        applied += e
            .write("native", "acme", "a", std::slice::from_ref(w))
            .unwrap()
            .applied;
    }
    let done = e.write("native", "acme", "b", &batch).unwrap();
    assert_eq!(done.applied, applied);
    let a = e.container("native", "acme", "a").unwrap();
    let b = e.container("native", "acme", "b").unwrap();
    let latest = |c: &Container| -> Vec<(String, String, Option<String>)> {
        ["c", "d"]
            .iter()
            .flat_map(|coll| e.list(c, coll, None, 1000, AsOf::Head).unwrap())
            .map(|v| (v.collection, v.key, v.body))
            .collect()
    };
    assert_eq!(latest(&a), latest(&b));
    let counts = |c: &Container| -> Vec<(String, i64, i64)> {
        e.collections(c)
            .unwrap()
            .into_iter()
            .map(|s| (s.name, s.records, s.bytes))
            .collect()
    };
    assert_eq!(counts(&a), counts(&b));
    // c: 100 even keys from the batch + 25 odd ones below 50 from `first`;
    // d: 100 odd keys; 18 of the 20 deletes hit a live key (k0051 and
    // k0057 were never put in c).
    assert_eq!(latest(&b).len(), 225 - 18);
}
