//! JSON responses.

use spin_sdk::http::Response;

/// A response with a JSON body.
pub fn json(status: u16, body: &serde_json::Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.to_string())
        .build()
}

/// The answer for a path no handler of `component` serves: 404 naming the
/// component and the path, so a caller sees which family got the request.
pub fn no_route(component: &str, method: &str, path: &str) -> Response {
    json(
        404,
        &serde_json::json!({
            "error": "not_found",
            "message": format!("{component} has no route for {method} {path}"),
            "component": component,
        }),
    )
}

/// [`no_route`] as an [`crate::http::Reply`].
pub fn no_route_reply(component: &str, method: &str, path: &str) -> crate::http::Reply {
    crate::http::Reply::json(
        404,
        &serde_json::json!({
            "error": "not_found",
            "message": format!("{component} has no route for {method} {path}"),
            "component": component,
        }),
    )
}

/// Whether `segments` match `pattern`: segments joined by `/`, where `*`
/// matches any one segment.
pub fn matches(pattern: &str, segments: &[&str]) -> bool {
    let p: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    p.len() == segments.len() && p.iter().zip(segments).all(|(p, s)| *p == "*" || p == s)
}

/// The answer for a request no route of `component` matched. When the path
/// is one of `routes` (method, pattern) under another method: 405 with
/// `Allow` and `error` (the family's error body for the message). Else the
/// 404 of [`no_route_reply`].
pub fn unmatched(
    component: &str,
    routes: &[(&str, &str)],
    method: &str,
    path: &str,
    segments: &[&str],
    error: impl Fn(u16, &str) -> crate::http::Reply,
) -> crate::http::Reply {
    // The most specific patterns win (`namespaces/list` over `namespaces/*`).
    let literal = |p: &str| p.split('/').filter(|s| !s.is_empty() && *s != "*").count();
    let hits: Vec<&(&str, &str)> = routes
        .iter()
        .filter(|(_, p)| matches(p, segments))
        .collect();
    let best = hits.iter().map(|(_, p)| literal(p)).max().unwrap_or(0);
    let mut allow: Vec<&str> = hits
        .iter()
        .filter(|(_, p)| literal(p) == best)
        .map(|(m, _)| *m)
        .collect();
    allow.dedup();
    if allow.is_empty() {
        return no_route_reply(component, method, path);
    }
    let allow = allow.join(", ");
    error(
        405,
        &format!("{method} is not allowed on {path}; use {allow}"),
    )
    .with_header("allow", &allow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_segments() {
        assert!(matches("clusters/*", &["clusters", "abc"]));
        assert!(!matches("clusters/*", &["clusters"]));
        assert!(!matches("clusters/*", &["clusters", "a", "b"]));
        assert!(matches("/clusters", &["clusters"]));
    }
}
