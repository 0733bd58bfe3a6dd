//! Tenants and tokens across every family: each family's routes — reads and
//! writes — called with no token, a malformed one, a revoked one and another
//! tenant's answer 401 or 404, never the other tenant's data, and change
//! nothing. Token revocation by id and by `current`.

use spinoff_e2e::*;

#[derive(Clone, Copy)]
enum Auth {
    Bearer,
    Typesense,
    QoveryToken,
}

fn headers(kind: Auth, token: &str) -> Vec<(String, String)> {
    match kind {
        Auth::Bearer => vec![("authorization".into(), format!("Bearer {token}"))],
        Auth::QoveryToken => vec![("authorization".into(), format!("Token {token}"))],
        Auth::Typesense => vec![("x-typesense-cloud-management-api-key".into(), token.into())],
    }
}

/// Every wrong credential is refused: none, a malformed one and a revoked
/// one answer 401; another tenant's answers 404 (returned, to check that
/// nothing of the owner's leaks into it).
fn refused(
    call: impl Fn(Vec<(String, String)>) -> Reply,
    kind: Auth,
    what: &str,
    revoked: &str,
    other: &str,
) -> Reply {
    assert_eq!(call(vec![]).status, 401, "{what} without a token");
    assert_eq!(
        call(headers(kind, "spk_not-a-real-token")).status,
        401,
        "{what} with a bad token"
    );
    assert_eq!(
        call(headers(kind, revoked)).status,
        401,
        "{what} with a revoked token"
    );
    let foreign = call(headers(kind, other));
    assert_eq!(
        foreign.status, 404,
        "{what} as another tenant: {}",
        foreign.body
    );
    foreign
}

#[test]
fn every_family_refuses_missing_bad_revoked_and_foreign_tokens() {
    let app = App::start();
    let owner = app.token("acme");
    let other = app.token("globex");
    // A second acme token, revoked by acme itself through its id.
    let admin = format!("Bearer {}", ADMIN_TOKEN);
    let minted = app
        .send_json(
            "POST",
            "/data/v1/tokens",
            &[("authorization", admin.as_str())],
            &json!({"tenant": "acme"}),
        )
        .json();
    let revoked = minted["token"].as_str().unwrap().to_string();
    let rb = format!("Bearer {revoked}");
    let me = app
        .get("/data/v1/tokens/current", &[("authorization", rb.as_str())])
        .json();
    assert_eq!(
        (me["tenant"].as_str(), me["id"].as_str()),
        (Some("acme"), minted["id"].as_str()),
        "{me}"
    );
    assert!(
        !me.to_string().contains(&revoked),
        "the secret is never shown again"
    );
    let ob = format!("Bearer {owner}");
    let oh = [("authorization", ob.as_str())];

    // One resource per family, owned by acme.
    app.send_json("PUT", "/data/v1/resources/native:n1", &oh, &json!({}));
    let cluster = app
        .send_json(
            "POST",
            "/api/v1/clusters",
            &[("x-typesense-cloud-management-api-key", owner.as_str())],
            &json!({"memory": "1_gb", "vcpu": "2_vcpus", "regions": ["oregon"], "typesense_server_version": "28.0"}),
        )
        .json()["cluster"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let ns = app
        .send_json("POST", "/v1/namespaces", &oh, &json!({"namespace_name": "ns1", "feature_extractors": [{"feature_extractor_name": "t", "version": "v1"}]}))
        .json()["namespace_id"]
        .as_str()
        .unwrap()
        .to_string();
    let svc = app
        .send_json(
            "POST",
            "/public/api/v1/projects/pa/services",
            &oh,
            &json!({"name": "db"}),
        )
        .json()["service_id"]
        .as_str()
        .unwrap()
        .to_string();
    app.send_json("PUT", "/v1/projects/sp/datasets/prod", &oh, &json!({}));
    let qt = format!("Token {owner}");
    let env = app
        .send_json(
            "POST",
            "/project/qp/environment",
            &[("authorization", qt.as_str())],
            &json!({"name": "prod"}),
        )
        .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let db = app
        .send_json(
            "POST",
            &format!("/environment/{env}/database"),
            &[("authorization", qt.as_str())],
            &json!({"name": "db", "type": "REDIS", "version": "7", "mode": "CONTAINER"}),
        )
        .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let org = app
        .get("/organization", &[("authorization", qt.as_str())])
        .json()["results"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let made = app
        .send_json(
            "POST",
            &format!("/organization/{org}/project"),
            &[("authorization", qt.as_str())],
            &json!({"name": "made"}),
        )
        .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let op = app
        .send_json(
            "POST",
            "/data/v1/resources/native:n1/clones",
            &oh,
            &json!({"target": "native:n2"}),
        )
        .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.send_json(
        "PUT",
        "/data/v1/resources/native:n1/collections/c/records/k",
        &oh,
        &json!({"v": 1}),
    );

    // The revoked token worked until its revocation, then never again.
    assert_eq!(
        app.get(
            "/data/v1/resources/native:n1",
            &[("authorization", rb.as_str())]
        )
        .status,
        200
    );
    let gb = format!("Bearer {other}");
    let id = minted["id"].as_str().unwrap();
    assert_eq!(
        app.request(
            "DELETE",
            &format!("/data/v1/tokens/{id}"),
            &[("authorization", gb.as_str())],
            None
        )
        .status,
        404,
        "globex cannot revoke acme's token"
    );
    assert_eq!(
        app.request(
            "DELETE",
            &format!("/data/v1/tokens/{id}"),
            &[("authorization", ob.as_str())],
            None
        )
        .status,
        204
    );
    assert_eq!(
        app.request(
            "DELETE",
            &format!("/data/v1/tokens/{id}"),
            &[("authorization", ob.as_str())],
            None
        )
        .status,
        404,
        "already revoked"
    );

    // Writes with every wrong credential: refused, and nothing changes.
    let writes: Vec<(Auth, &str, String, Option<serde_json::Value>)> = vec![
        (
            Auth::Bearer,
            "DELETE",
            "/data/v1/resources/native:n1".into(),
            None,
        ),
        (
            Auth::Bearer,
            "PUT",
            "/data/v1/resources/native:n1/collections/c/records/k".into(),
            Some(json!({"v": 666})),
        ),
        (
            Auth::Bearer,
            "DELETE",
            "/data/v1/resources/native:n1/collections/c/records/k".into(),
            None,
        ),
        (
            Auth::Bearer,
            "POST",
            "/data/v1/resources/native:n1/clones".into(),
            Some(json!({"target": "native:stolen"})),
        ),
        (
            Auth::Bearer,
            "POST",
            "/data/v1/resources/native:n1/snapshots".into(),
            Some(json!({})),
        ),
        (
            Auth::Bearer,
            "POST",
            format!("/data/v1/operations/{op}/cancel"),
            None,
        ),
        (
            Auth::Bearer,
            "POST",
            format!("/data/v1/operations/{op}/retry"),
            None,
        ),
        (
            Auth::Typesense,
            "POST",
            format!("/api/v1/clusters/{cluster}/cloning-operations"),
            Some(json!({})),
        ),
        (
            Auth::Typesense,
            "DELETE",
            format!("/api/v1/clusters/{cluster}"),
            None,
        ),
        (
            Auth::Typesense,
            "POST",
            format!("/api/v1/clusters/{cluster}/terminate"),
            None,
        ),
        (
            Auth::Bearer,
            "POST",
            format!("/v1/namespaces/{ns}/clone"),
            Some(json!({"namespace_name": "stolen"})),
        ),
        (Auth::Bearer, "DELETE", format!("/v1/namespaces/{ns}"), None),
        (
            Auth::Bearer,
            "POST",
            format!("/v1/templates/namespaces/from-namespace/{ns}"),
            Some(json!({})),
        ),
        (
            Auth::Bearer,
            "POST",
            "/public/api/v1/projects/pa/services".into(),
            Some(json!({"name": "intruder"})),
        ),
        (
            Auth::Bearer,
            "POST",
            format!("/public/api/v1/projects/pa/services/{svc}/forkService"),
            Some(json!({"fork_strategy": "NOW"})),
        ),
        (
            Auth::Bearer,
            "POST",
            format!("/public/api/v1/projects/pa/services/{svc}/snapshots"),
            None,
        ),
        (
            Auth::Bearer,
            "DELETE",
            format!("/public/api/v1/projects/pa/services/{svc}"),
            None,
        ),
        (
            Auth::Bearer,
            "PUT",
            "/v1/projects/sp/datasets/intruder".into(),
            Some(json!({})),
        ),
        (
            Auth::Bearer,
            "PUT",
            "/v1/projects/sp/datasets/prod/copy".into(),
            Some(json!({"targetDataset": "stolen"})),
        ),
        (
            Auth::Bearer,
            "DELETE",
            "/v1/projects/sp/datasets/prod".into(),
            None,
        ),
        (
            Auth::QoveryToken,
            "POST",
            "/project/qp/environment".into(),
            Some(json!({"name": "intruder"})),
        ),
        (
            Auth::QoveryToken,
            "POST",
            format!("/environment/{env}/database"),
            Some(json!({"name": "x", "type": "REDIS", "version": "7", "mode": "CONTAINER"})),
        ),
        (
            Auth::QoveryToken,
            "POST",
            format!("/database/{db}/clone"),
            Some(json!({"name": "stolen", "environment_id": env})),
        ),
        (Auth::QoveryToken, "DELETE", format!("/database/{db}"), None),
        (
            Auth::QoveryToken,
            "POST",
            format!("/organization/{org}/project"),
            Some(json!({"name": "intruder"})),
        ),
        (
            Auth::QoveryToken,
            "DELETE",
            format!("/environment/{env}"),
            None,
        ),
        (Auth::QoveryToken, "DELETE", "/project/qp".into(), None),
        (
            Auth::QoveryToken,
            "DELETE",
            format!("/project/{made}"),
            None,
        ),
    ];
    for (kind, method, path, body) in &writes {
        let body = body.as_ref().map(|b| b.to_string());
        let call = |hs: Vec<(String, String)>| {
            let mut h: Vec<(&str, &str)> =
                hs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            h.push(("content-type", "application/json"));
            app.request(method, path, &h, body.as_deref().map(str::as_bytes))
        };
        refused(call, *kind, &format!("{method} {path}"), &revoked, &other);
    }
    // Nothing of acme's changed, and globex got nothing.
    assert_eq!(
        app.get("/data/v1/resources/native:n1/collections/c/records/k", &oh)
            .json()["body"],
        json!({"v": 1})
    );
    assert_eq!(
        app.get(
            &format!("/api/v1/clusters/{cluster}"),
            &[("x-typesense-cloud-management-api-key", owner.as_str())]
        )
        .json()["status"],
        "in_service"
    );
    assert_eq!(
        app.get(
            &format!("/api/v1/clusters/{cluster}/cloning-operations"),
            &[("x-typesense-cloud-management-api-key", owner.as_str())]
        )
        .json()["total"],
        0
    );
    assert_eq!(app.get("/v1/namespaces", &oh).json()["total_count"], 1);
    assert_eq!(
        app.get("/public/api/v1/projects/pa/services", &oh)
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        app.get("/v1/projects/sp/datasets", &oh)
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        app.get(
            &format!("/environment/{env}/database"),
            &[("authorization", qt.as_str())]
        )
        .json()["results"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        app.get(
            &format!("/organization/{org}/project"),
            &[("authorization", qt.as_str())]
        )
        .json()["results"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "qp and made, no intruder"
    );
    assert_eq!(
        app.get("/project/qp/environment", &[("authorization", qt.as_str())])
            .json()["results"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        app.get("/data/v1/operations", &oh).json()["total"],
        1,
        "only acme's own clone"
    );
    assert_eq!(
        app.get("/data/v1/operations", &[("authorization", gb.as_str())])
            .json()["total"],
        0
    );

    let routes: Vec<(Auth, &str, String)> = vec![
        (Auth::Bearer, "GET", "/data/v1/resources/native:n1".into()),
        (Auth::Bearer, "GET", format!("/data/v1/operations/{op}")),
        (
            Auth::Bearer,
            "GET",
            format!("/data/v1/resources/typesense:{cluster}/export"),
        ),
        (
            Auth::Typesense,
            "GET",
            format!("/api/v1/clusters/{cluster}"),
        ),
        (
            Auth::Typesense,
            "GET",
            format!("/api/v1/clusters/{cluster}/cloning-operations"),
        ),
        (Auth::Bearer, "GET", format!("/v1/namespaces/{ns}")),
        (Auth::Bearer, "GET", "/v1/namespaces/ns1".into()),
        (
            Auth::Bearer,
            "GET",
            format!("/public/api/v1/projects/pa/services/{svc}"),
        ),
        (
            Auth::Bearer,
            "GET",
            "/public/api/v1/projects/pa/services".into(),
        ),
        (Auth::Bearer, "GET", "/v1/projects/sp/datasets".into()),
        (Auth::QoveryToken, "GET", format!("/database/{db}")),
        (Auth::QoveryToken, "GET", format!("/database/{db}/status")),
        (Auth::QoveryToken, "GET", format!("/environment/{env}")),
        (Auth::QoveryToken, "GET", format!("/organization/{org}")),
        (
            Auth::QoveryToken,
            "GET",
            format!("/organization/{org}/project"),
        ),
        (Auth::QoveryToken, "GET", "/project/qp".into()),
        (Auth::QoveryToken, "GET", format!("/project/{made}")),
        (Auth::QoveryToken, "GET", "/project/qp/environment".into()),
    ];
    for (kind, method, path) in &routes {
        let call = |hs: Vec<(String, String)>| {
            let h: Vec<(&str, &str)> = hs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            app.request(method, path, &h, None)
        };
        let own = call(headers(*kind, &owner));
        assert_eq!(own.status, 200, "{path} as owner: {}", own.body);
        let foreign = refused(call, *kind, path, &revoked, &other);
        // Nothing of acme's leaks into the answer (beyond echoing the path).
        for secret in [&cluster, &ns, &svc, &db, &env, &op, &org, &made] {
            assert!(
                !foreign.body.contains(secret.as_str()) || path.contains(secret.as_str()),
                "{path} leaked {secret}: {}",
                foreign.body
            );
        }
    }
    // Lists are per tenant.
    let qg = format!("Token {other}");
    let gq = [("authorization", qg.as_str())];
    let other_org = app.get("/organization", &gq).json()["results"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(other_org, org);
    assert_eq!(
        app.get(&format!("/organization/{other_org}/project"), &gq)
            .json()["results"],
        json!([])
    );
    let ts_other = [("x-typesense-cloud-management-api-key", other.as_str())];
    assert_eq!(app.get("/api/v1/clusters", &ts_other).json()["total"], 0);
    assert_eq!(
        app.get("/v1/namespaces", &[("authorization", gb.as_str())])
            .json()["total_count"],
        0
    );
    assert_eq!(
        app.get("/data/v1/operations", &[("authorization", gb.as_str())])
            .json()["total"],
        0
    );
}

/// `DELETE /tokens/current` revokes the presented token; the admin token
/// revokes any tenant's by id; an unknown id is 404.
#[test]
fn tokens_revoke_themselves_and_the_admin_revokes_any() {
    let app = App::start();
    let t1 = app.token("acme");
    let b1 = format!("Bearer {t1}");
    assert_eq!(
        app.request(
            "DELETE",
            "/data/v1/tokens/current",
            &[("authorization", b1.as_str())],
            None
        )
        .status,
        204
    );
    assert_eq!(
        app.get(
            "/data/v1/resources/native:x",
            &[("authorization", b1.as_str())]
        )
        .status,
        401
    );
    let admin = format!("Bearer {}", ADMIN_TOKEN);
    let m = app
        .send_json(
            "POST",
            "/data/v1/tokens",
            &[("authorization", admin.as_str())],
            &json!({"tenant": "globex"}),
        )
        .json();
    let b2 = format!("Bearer {}", m["token"].as_str().unwrap());
    assert_eq!(
        app.get("/data/v1/operations", &[("authorization", b2.as_str())])
            .status,
        200
    );
    let path = format!("/data/v1/tokens/{}", m["id"].as_str().unwrap());
    assert_eq!(
        app.request("DELETE", &path, &[("authorization", admin.as_str())], None)
            .status,
        204
    );
    assert_eq!(
        app.get("/data/v1/operations", &[("authorization", b2.as_str())])
            .status,
        401
    );
    assert_eq!(
        app.request(
            "DELETE",
            "/data/v1/tokens/tok_0000000000000000",
            &[("authorization", admin.as_str())],
            None
        )
        .status,
        404
    );
    assert_eq!(
        app.request(
            "DELETE",
            "/data/v1/tokens/current",
            &[("authorization", admin.as_str())],
            None
        )
        .status,
        400
    );
    assert_eq!(app.request("DELETE", &path, &[], None).status, 401);
    // Nothing but hashes and ids in key-value: neither secret appears.
    let kv = app.kv_dump();
    assert!(!kv.contains(&t1) && !kv.contains(m["token"].as_str().unwrap()));
}
