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
