//! Masked branches: what a masked branch (and anything made from it)
//! shows of its ancestors goes through its mask — get, list, export,
//! history, as-of reads, diffs, merges' conflicts, hydration, copies and
//! clones of it, resets — while its own writes are stored as written.

mod common;
use common::*;
use engine::merge::Outcome;
use engine::*;
use serde_json::{json, Value};

const SECRET: &str = "ann@corp.example";

fn prod(e: &Engine) -> Container {
    e.create_container("native", "acme", "prod", &json!({})).unwrap();
    let writes: Vec<Write> = (0..40)
        .map(|i| {
            let body = if i % 2 == 0 {
                json!({"i": i, "email": format!("{i}-{SECRET}"), "phone": "555-0100", "name": "Ann"})
            } else {
                json!({"i": i, "email": format!("order-{i}@shop.example"), "phone": "555-0100"})
            };
            put(if i % 2 == 0 { "users" } else { "orders" }, &format!("k{i:03}"), &body.to_string())
        })
        .collect();
    e.write("native", "acme", "prod", &writes).unwrap();
    e.container("native", "acme", "prod").unwrap()
}

fn masked_req(src: &Container, target: &str) -> CloneRequest {
    CloneRequest {
        mask: Some(json!({"users": {"/email": "fake_email", "/name": "redact"}, "*": {"/phone": "hash"}})),
        ..branch_req(src, target, Strategy::Now, true)
    }
}

/// Every body a container shows through the read paths (export, list,
/// get, history, as of an LSN), as text.
fn everything(e: &Engine, c: &Container, at: i64) -> String {
    let mut out = String::new();
    for (_, _, b) in export(e, c, i64::MAX) {
        out.push_str(&b);
    }
    for (_, _, b) in export(e, c, at) {
        out.push_str(&b);
    }
    for coll in ["users", "orders"] {
        for v in e.list(c, coll, None, 1000, AsOf::Head).unwrap() {
            out.push_str(v.body.as_deref().unwrap_or(""));
            let g = e.get(c, coll, &v.key, AsOf::Lsn(at)).map(|v| v.body.unwrap_or_default()).unwrap_or_default();
            out.push_str(&g);
            for h in e.history(c, coll, &v.key, None, 100).unwrap() {
                out.push_str(h.body.as_deref().unwrap_or(""));
            }
        }
    }
    out
}

fn stored(e: &Engine, c: &Container) -> String {
    all_versions(e, c).into_iter().filter_map(|v| v.4).collect()
}

#[test]
fn a_masked_branch_shows_nothing_unmasked_through_any_read() {
    let fx = Fx::new();
    let e = fx.engine();
    let p = prod(&e);
    let at = p.head_lsn;
    e.create_operation(&masked_req(&p, "staging")).unwrap();
    let s = e.container("native", "acme", "staging").unwrap();
    let seen = everything(&e, &s, at);
    assert!(!seen.is_empty());
    assert!(!seen.contains(SECRET) && !seen.contains("555-0100") && !seen.contains("Ann"), "{}", &seen[..300]);
    // The rules: users' email is a fake one, deterministic; orders keep theirs.
    let u = e.get(&s, "users", "k000", AsOf::Head).unwrap();
    let v: Value = serde_json::from_str(u.body.as_deref().unwrap()).unwrap();
    assert!(v["email"].as_str().unwrap().ends_with("@example.invalid"));
    assert_eq!((v["name"].as_str(), v["i"].as_i64()), (Some("[redacted]"), Some(0)));
    let o: Value = serde_json::from_str(e.get(&s, "orders", "k001", AsOf::Head).unwrap().body.as_deref().unwrap()).unwrap();
    assert_eq!(o["email"], "order-1@shop.example", "orders are not in the users rule");
    let o_phone = o["phone"].as_str().unwrap();
    assert!(o_phone.starts_with("h:"));
    let u_phone = v["phone"].as_str().unwrap();
    assert_eq!(o_phone, u_phone, "a hash joins across collections within a branch");

    // Its own writes are stored and shown as written.
    e.write("native", "acme", "staging", &[put("users", "mine", &json!({"email": SECRET}).to_string())]).unwrap();
    let mine = e.get(&s, "users", "mine", AsOf::Head).unwrap();
    assert!(mine.body.unwrap().contains(SECRET));

    // The parent is unchanged.
    assert!(e.get(&p, "users", "k000", AsOf::Head).unwrap().body.unwrap().contains(SECRET));

    // A diff against the parent shows the parent's side masked too.
    e.write("native", "acme", "prod", &[put("users", "k002", &json!({"email": format!("new-{SECRET}")}).to_string())]).unwrap();
    let page = e
        .diff_page(&engine::diff::Side::new(s.clone(), i64::MAX), &e.diff_parent(&s).unwrap().unwrap(), engine::diff::Basis::Since(at), None, 1000)
        .unwrap();
    assert_eq!(page.entries.len(), 2, "{:?}", page.entries);
    for x in &page.entries {
        let t = x.theirs.clone().unwrap_or_default();
        assert!(x.key == "mine" || !t.contains(SECRET), "{x:?}");
    }
}

#[test]
fn hydration_copies_and_clones_keep_the_mask() {
    let fx = Fx::new();
    let e = fx.engine();
    let p = prod(&e);
    let at = p.head_lsn;
    e.create_operation(&masked_req(&p, "staging")).unwrap();
    let s = e.container("native", "acme", "staging").unwrap();
    let before = everything(&e, &s, at);
    // A branch and a physical copy of the masked branch, made before it
    // is hydrated.
    e.create_operation(&branch_req(&s, "child", Strategy::Now, true)).unwrap();
    let (copy, _) = e.create_operation(&clone_req(&s, "copy", Strategy::Now, true)).unwrap();
    run_to_end(&e, &copy.id, Some(3));
    let h = e.hydrate(&s).unwrap().expect("a branch");
    run_to_end(&e, &h.id, Some(3));
    let s = e.container("native", "acme", "staging").unwrap();
    assert!(s.chain.is_empty(), "hydrated");
    assert_eq!(everything(&e, &s, at), before, "a hydrated masked branch answers what it answered");
    assert!(!stored(&e, &s).contains(SECRET), "hydration writes masked values");
    clean(&e, &s);
    for name in ["child", "copy"] {
        let c = e.container("native", "acme", name).unwrap();
        assert_eq!(export(&e, &c, i64::MAX), export(&e, &s, i64::MAX), "{name}");
        assert!(!everything(&e, &c, at).contains(SECRET), "{name}");
        assert!(!stored(&e, &c).contains(SECRET), "{name}");
        clean(&e, &c);
    }
    // A reset reads the parent again, masked again (the same salt: the
    // same values as before).
    let masked = export(&e, &s, i64::MAX);
    e.write("native", "acme", "staging", &[put("users", "k000", "{}")]).unwrap();
    let (s2, _) = e.reset("native", "acme", "staging", AsOf::Head, false).unwrap();
    assert!(s2.mask.is_some());
    assert!(!everything(&e, &s2, at).contains(SECRET));
    assert_eq!(export(&e, &s2, i64::MAX), masked);
}

#[test]
fn a_masked_branch_merges_back_only_the_paths_it_names() {
    let fx = Fx::new();
    let e = fx.engine();
    let p = prod(&e);
    e.create_operation(&masked_req(&p, "staging")).unwrap();
    let s = e.container("native", "acme", "staging").unwrap();
    // The branch edits a record it read masked, and adds one.
    let mut v: Value = serde_json::from_str(e.get(&s, "users", "k000", AsOf::Head).unwrap().body.as_deref().unwrap()).unwrap();
    v["status"] = json!("vip");
    e.write("native", "acme", "staging", &[put("users", "k000", &v.to_string()), put("users", "new", &json!({"status": "new", "email": "x@y.z"}).to_string())]).unwrap();
    let err = e.merge("native", "acme", "staging", None, None, 10).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidInput, "{err:?}");
    let paths = vec!["/status".to_string()];
    let m = match e.merge("native", "acme", "staging", None, Some(&paths), 10).unwrap() {
        Outcome::Merged(m) => m,
        Outcome::Conflicts { entries, .. } => panic!("{entries:?}"),
    };
    assert_eq!(m.applied, 2);
    let p = e.container("native", "acme", "prod").unwrap();
    let k: Value = serde_json::from_str(e.get(&p, "users", "k000", AsOf::Head).unwrap().body.as_deref().unwrap()).unwrap();
    assert_eq!(k["status"], "vip");
    assert_eq!(k["email"], json!(format!("0-{SECRET}")), "the parent keeps its real email");
    assert_eq!(k["name"], "Ann");
    let n = e.get(&p, "users", "new", AsOf::Head).unwrap().body.unwrap();
    assert_eq!(n, json!({"status": "new"}).to_string(), "only the named paths flow back");
    // A conflict lists the parent's side masked.
    e.write("native", "acme", "prod", &[put("users", "k000", &json!({"email": SECRET, "status": "gold"}).to_string())]).unwrap();
    let mut v2 = v.clone();
    v2["status"] = json!("platinum");
    e.write("native", "acme", "staging", &[put("users", "k000", &v2.to_string())]).unwrap();
    match e.merge("native", "acme", "staging", None, Some(&paths), 10).unwrap() {
        Outcome::Conflicts { entries, .. } => {
            assert_eq!(entries.len(), 1);
            assert!(!entries[0].theirs.as_deref().unwrap().contains(SECRET), "{:?}", entries[0]);
            assert!(!entries[0].ours.as_deref().unwrap().contains(SECRET), "what would be written shows masked: {:?}", entries[0]);
        }
        Outcome::Merged(m) => panic!("{m:?}"),
    }
}

#[test]
fn a_bad_mask_refuses_the_clone() {
    let fx = Fx::new();
    let e = fx.engine();
    let p = prod(&e);
    for bad in [json!({"users": {"email": "null"}}), json!({"users": {"/email": "scramble"}}), json!("x")] {
        let req = CloneRequest {
            mask: Some(bad.clone()),
            ..branch_req(&p, "bad", Strategy::Now, true)
        };
        let err = e.create_operation(&req).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidInput, "{bad}");
    }
    assert!(e.container("native", "acme", "bad").is_err());
}
