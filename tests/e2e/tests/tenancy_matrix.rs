//! Tenants and tokens across every family: each family's routes called with
//! no token, a malformed one, and another tenant's answer 401 or 404 — never
//! the other tenant's data.

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

#[test]
fn every_family_refuses_missing_bad_and_foreign_tokens() {
    let app = App::start();
    let owner = app.token("acme");
    let other = app.token("globex");
    let ob = format!("Bearer {owner}");
    let oh = [("authorization", ob.as_str())];

    // One resource per family, owned by acme.
    app.send_json("PUT", "/data/v1/resources/native:n1", &oh, &json!({}));
    let cluster = app
        .send_json("POST", "/api/v1/clusters", &[("x-typesense-cloud-management-api-key", owner.as_str())],
            &json!({"memory": "1_gb", "vcpu": "2_vcpus", "regions": ["oregon"], "typesense_server_version": "28.0"}))
        .json()["cluster"]["id"].as_str().unwrap().to_string();
    let ns = app
        .send_json("POST", "/v1/namespaces", &oh, &json!({"namespace_name": "ns1", "feature_extractors": [{"feature_extractor_name": "t", "version": "v1"}]}))
        .json()["namespace_id"].as_str().unwrap().to_string();
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
    ];
    for (kind, method, path) in &routes {
        let call = |hs: Vec<(String, String)>| {
            let h: Vec<(&str, &str)> = hs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            app.request(method, path, &h, None)
        };
        let own = call(headers(*kind, &owner));
        assert_eq!(own.status, 200, "{path} as owner: {}", own.body);
        assert_eq!(call(vec![]).status, 401, "{path} without a token");
        assert_eq!(
            call(headers(*kind, "spk_not-a-real-token")).status,
            401,
            "{path} with a bad token"
        );
        let foreign = call(headers(*kind, &other));
        assert_eq!(
            foreign.status, 404,
            "{path} as another tenant: {}",
            foreign.body
        );
        // Nothing of acme's leaks into the answer (beyond echoing the path).
        for secret in [&cluster, &ns, &svc, &db, &env, &op] {
            assert!(
                !foreign.body.contains(secret.as_str()) || path.contains(secret.as_str()),
                "{path} leaked {secret}: {}",
                foreign.body
            );
        }
    }
    // Lists are per tenant.
    let ts_other = [("x-typesense-cloud-management-api-key", other.as_str())];
    assert_eq!(app.get("/api/v1/clusters", &ts_other).json()["total"], 0);
    let gb = format!("Bearer {other}");
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
