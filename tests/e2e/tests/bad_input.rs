//! Bad input on every family: malformed JSON, wrong types, unknown enum
//! values, path injection (`../`, quotes, percent-encoded slashes), very long
//! ids and names, out-of-range page sizes, and a body over the limit. Each
//! is a 4xx whose message names the problem — never a 5xx, never a panic.

use spinoff_e2e::*;

struct Case {
    method: &'static str,
    path: String,
    body: Option<String>,
    status: u16,
    /// A word the answer's message must contain (lowercase match).
    says: &'static str,
}

fn case(
    method: &'static str,
    path: impl Into<String>,
    body: Option<&str>,
    status: u16,
    says: &'static str,
) -> Case {
    Case {
        method,
        path: path.into(),
        body: body.map(String::from),
        status,
        says,
    }
}

#[test]
fn every_family_answers_bad_input_with_a_clear_4xx() {
    let app = App::start();
    let token = app.token("acme");
    let bearer = format!("Bearer {token}");
    let long = "x".repeat(10_000);
    let long_name = format!("\"{}\"", "a".repeat(300));

    // A resource per family to aim at.
    let ts_h = [
        ("x-typesense-cloud-management-api-key", token.as_str()),
        ("content-type", "application/json"),
    ];
    let cluster = app
        .send_json("POST", "/api/v1/clusters", &ts_h[..1], &json!({"memory": "1_gb", "vcpu": "2_vcpus", "regions": ["oregon"], "typesense_server_version": "28.0"}))
        .json()["cluster"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let bh = [
        ("authorization", bearer.as_str()),
        ("content-type", "application/json"),
    ];
    app.send_json("PUT", "/v1/projects/sp/datasets/prod", &bh[..1], &json!({}));
    let svc = app
        .send_json(
            "POST",
            "/public/api/v1/projects/pa/services",
            &bh[..1],
            &json!({"name": "db"}),
        )
        .json()["service_id"]
        .as_str()
        .unwrap()
        .to_string();
    let qt = format!("Token {token}");
    let qh = [
        ("authorization", qt.as_str()),
        ("content-type", "application/json"),
    ];
    let env = app
        .send_json(
            "POST",
            "/project/qp/environment",
            &qh[..1],
            &json!({"name": "prod"}),
        )
        .json()["id"]
        .as_str()
        .unwrap()
        .to_string();

    let typesense = vec![
        case("POST", "/api/v1/clusters", Some("{not json"), 400, "json"),
        case("POST", "/api/v1/clusters", Some("[1, 2]"), 400, "object"),
        case(
            "POST",
            "/api/v1/clusters",
            Some(
                r#"{"memory": 1, "vcpu": "2", "regions": ["oregon"], "typesense_server_version": "28"}"#,
            ),
            400,
            "memory",
        ),
        case(
            "POST",
            "/api/v1/clusters",
            Some(
                r#"{"memory": "1", "vcpu": "2", "regions": ["mars"], "typesense_server_version": "28"}"#,
            ),
            400,
            "region",
        ),
        case(
            "POST",
            "/api/v1/clusters",
            Some(
                r#"{"memory": "1", "vcpu": "2", "regions": ["oregon"], "typesense_server_version": "28", "high_availability": "maybe"}"#,
            ),
            400,
            "high_availability",
        ),
        case(
            "POST",
            "/api/v1/clusters",
            Some(&format!(
                r#"{{"name": {long_name}, "memory": "1", "vcpu": "2", "regions": ["oregon"], "typesense_server_version": "28"}}"#
            )),
            400,
            "name",
        ),
        case(
            "GET",
            "/api/v1/clusters?per_page=101",
            None,
            400,
            "per_page",
        ),
        case("GET", "/api/v1/clusters?page=0", None, 400, "page"),
        case(
            "GET",
            "/api/v1/clusters/..%2F..%2Fetc%2Fpasswd",
            None,
            404,
            "not found",
        ),
        case(
            "GET",
            "/api/v1/clusters/%22%3B%20DROP%20TABLE%20records%3B--",
            None,
            404,
            "not found",
        ),
        case(
            "GET",
            format!("/api/v1/clusters/{long}"),
            None,
            404,
            "not found",
        ),
        case(
            "POST",
            format!("/api/v1/clusters/{cluster}/cloning-operations"),
            Some(r#"{"target_region": "atlantis"}"#),
            400,
            "region",
        ),
        case(
            "POST",
            format!("/api/v1/clusters/{cluster}/cloning-operations"),
            Some(r#"{"colour": "red"}"#),
            400,
            "colour",
        ),
        case(
            "PATCH",
            format!("/api/v1/clusters/{cluster}/cloning-operations/x"),
            Some(r#"{"status": "running"}"#),
            400,
            "canceled",
        ),
        case("PUT", "/api/v1/clusters", None, 405, "post"),
    ];
    let mixpeek = vec![
        case("POST", "/v1/namespaces", Some("{"), 400, "json"),
        case(
            "POST",
            "/v1/namespaces",
            Some(
                r#"{"namespace_name": "../etc", "feature_extractors": [{"feature_extractor_name": "t", "version": "v1"}]}"#,
            ),
            400,
            "namespace_name",
        ),
        case(
            "POST",
            "/v1/namespaces",
            Some(
                r#"{"namespace_name": "a\"b", "feature_extractors": [{"feature_extractor_name": "t", "version": "v1"}]}"#,
            ),
            400,
            "namespace_name",
        ),
        case(
            "POST",
            "/v1/namespaces",
            Some(
                r#"{"namespace_name": "ok", "feature_extractors": [{"feature_extractor_name": "t", "version": "v1"}], "auto_create_indexes": "yes"}"#,
            ),
            400,
            "auto_create_indexes",
        ),
        case(
            "POST",
            "/v1/namespaces",
            Some(r#"{"namespace_name": "ok"}"#),
            400,
            "feature_extractors",
        ),
        case(
            "GET",
            "/v1/namespaces?page_size=1000",
            None,
            400,
            "page_size",
        ),
        case(
            "GET",
            format!("/v1/namespaces/{long}"),
            None,
            404,
            "not found",
        ),
        case("GET", "/v1/namespaces/..%2F..", None, 404, "not found"),
        case(
            "POST",
            "/v1/namespaces/ns_x/clone",
            Some(r#"{"namespace_name": "c", "include_resources": {"collections": "all"}}"#),
            400,
            "include_resources.collections",
        ),
        case("GET", "/v1/tasks/%27%20OR%201%3D1", None, 404, "not found"),
    ];
    let timescale = vec![
        case(
            "POST",
            "/public/api/v1/projects/pa/services",
            Some("nope"),
            400,
            "json",
        ),
        case(
            "POST",
            "/public/api/v1/projects/pa/services",
            Some(r#"{"name": "x", "region_code": "moon-1"}"#),
            400,
            "region_code",
        ),
        case(
            "POST",
            "/public/api/v1/projects/pa/services",
            Some(r#"{"name": "x", "region_code": 7}"#),
            400,
            "region_code",
        ),
        case(
            "POST",
            "/public/api/v1/projects/pa/services",
            Some(r#"{"name": "x", "cpu_millis": "-5"}"#),
            400,
            "cpu_millis",
        ),
        case(
            "POST",
            "/public/api/v1/projects/pa/services",
            Some(&format!(r#"{{"name": {long_name}}}"#)),
            400,
            "name",
        ),
        case(
            "POST",
            format!("/public/api/v1/projects/pa/services/{svc}/forkService"),
            Some(r#"{"fork_strategy": "YESTERDAY"}"#),
            400,
            "fork_strategy",
        ),
        case(
            "POST",
            format!("/public/api/v1/projects/pa/services/{svc}/forkService"),
            Some(r#"{"fork_strategy": "PITR", "target_time": "last tuesday"}"#),
            400,
            "target_time",
        ),
        case(
            "POST",
            format!("/public/api/v1/projects/pa/services/{svc}/forkService"),
            Some(r#"{"fork_strategy": "PITR", "target_time": "1999-01-01T00:00:00Z"}"#),
            400,
            "retained",
        ),
        case(
            "GET",
            format!("/public/api/v1/projects/pa/services/{long}"),
            None,
            404,
            "not found",
        ),
        case(
            "GET",
            "/public/api/v1/projects/..%2Fpb/services",
            None,
            404,
            "not found",
        ),
    ];
    let sanity = vec![
        case(
            "PUT",
            "/v1/projects/sp/datasets/..%2Fetc",
            None,
            400,
            "dataset name",
        ),
        case(
            "PUT",
            "/v1/projects/sp/datasets/Prod",
            None,
            400,
            "lowercase",
        ),
        case(
            "PUT",
            format!("/v1/projects/sp/datasets/{}", "a".repeat(65)),
            None,
            400,
            "dataset name",
        ),
        case(
            "PUT",
            "/v1/projects/sp/datasets/x1",
            Some(r#"{"aclMode": "secret"}"#),
            400,
            "aclmode",
        ),
        case("PUT", "/v1/projects/sp/datasets/x1", Some("{"), 400, "json"),
        case(
            "PUT",
            "/v1/projects/sp/datasets/prod/copy",
            Some(r#"{"targetDataset": "a/b"}"#),
            400,
            "dataset name",
        ),
        case(
            "PUT",
            "/v1/projects/sp/datasets/prod/copy",
            Some(r#"{"targetDataset": "b", "skipHistory": "no"}"#),
            400,
            "skiphistory",
        ),
        case(
            "GET",
            "/v1/projects/sp/datasets/copy?limit=5000",
            None,
            400,
            "limit",
        ),
        case(
            "GET",
            "/v1/projects/%22quoted%22/datasets",
            None,
            400,
            "project",
        ),
        case("GET", format!("/v1/jobs/{long}"), None, 404, "not found"),
    ];
    let qovery = vec![
        case("POST", "/project/qp/environment", Some("]"), 400, "json"),
        case(
            "POST",
            "/project/qp/environment",
            Some(r#"{"name": "e", "mode": "CHAOS"}"#),
            400,
            "mode",
        ),
        case(
            "POST",
            format!("/environment/{env}/database"),
            Some(r#"{"name": "d", "type": "ORACLE", "version": "1", "mode": "CONTAINER"}"#),
            400,
            "type",
        ),
        case(
            "POST",
            format!("/environment/{env}/database"),
            Some(
                r#"{"name": "d", "type": "REDIS", "version": "7", "mode": "CONTAINER", "cpu": "lots"}"#,
            ),
            400,
            "cpu",
        ),
        case(
            "POST",
            format!("/environment/{env}/database"),
            Some(
                r#"{"name": "d", "type": "REDIS", "version": "7", "mode": "CONTAINER", "description": 5}"#,
            ),
            400,
            "description",
        ),
        case(
            "POST",
            format!("/environment/{env}/database"),
            Some(&format!(
                r#"{{"name": "{}", "type": "REDIS", "version": "7", "mode": "CONTAINER"}}"#,
                "n".repeat(300)
            )),
            400,
            "name",
        ),
        case("GET", format!("/database/{long}"), None, 404, "not found"),
        case(
            "GET",
            "/environment/..%2F..%2Forganization",
            None,
            404,
            "not found",
        ),
        case(
            "POST",
            "/database/x/clone",
            Some(r#"{"name": 1}"#),
            400,
            "name",
        ),
    ];
    type Family<'a> = (&'a str, &'a [(&'a str, &'a str)], Vec<Case>);
    let families: Vec<Family> = vec![
        ("typesense", &ts_h, typesense),
        ("mixpeek", &bh, mixpeek),
        ("timescale", &bh, timescale),
        ("sanity", &bh, sanity),
        ("qovery", &qh, qovery),
    ];
    for (family, headers, cases) in &families {
        for c in cases {
            let r = app.request(
                c.method,
                &c.path,
                headers,
                c.body.as_deref().map(str::as_bytes),
            );
            let shown = &c.path[..c.path.len().min(80)];
            assert_eq!(
                r.status, c.status,
                "{family} {} {shown}: {}",
                c.method, r.body
            );
            assert!(
                r.body.to_lowercase().contains(c.says),
                "{family} {} {shown}: the answer should name {:?}: {}",
                c.method,
                c.says,
                r.body
            );
            assert_eq!(
                r.header("content-type"),
                Some("application/json"),
                "{family} {} {shown}",
                c.method
            );
        }
        // A body over the limit is refused before it is read.
        let path = match *family {
            "typesense" => "/api/v1/clusters".to_string(),
            "mixpeek" => "/v1/namespaces".to_string(),
            "timescale" => "/public/api/v1/projects/pa/services".to_string(),
            "sanity" => "/v1/projects/sp/datasets/huge".to_string(),
            _ => format!("/environment/{env}/database"),
        };
        let method = if *family == "sanity" { "PUT" } else { "POST" };
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(app.base.trim_start_matches("http://")).unwrap();
        let auth: String = headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}\r\n"))
            .collect();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nhost: x\r\n{auth}content-length: {}\r\n\r\n",
            (64 << 20) + 1
        )
        .unwrap();
        let mut head = [0u8; 12];
        s.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 413", "{family}");
    }
}
