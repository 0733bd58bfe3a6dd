//! One route table per component, for dispatch and for the 404/405 of a
//! request no route serves. A table is a static list of `(method, pattern,
//! handler)`; a pattern is segments joined by `/` where `*` matches any one
//! segment, and the handler receives the request and the segments its `*`s
//! captured, in order.
//!
//! Precedence: the route with the most literal segments wins
//! (`namespaces/list` over `namespaces/*`), then the earlier one. A path some
//! route matches under other methods answers 405 with `Allow` (the methods of
//! the most literal matching patterns) in the family's error shape; any other
//! path the component's 404 naming itself.
//!
//! spin-sdk's `Router` is not used: it buffers bodies (no streamed NDJSON or
//! SSE), and its 405 has neither `Allow` nor the vendor's error body.

use crate::http::{Reply, Req};

/// A route's handler: the request and the segments its pattern's `*`s matched.
pub type Handler = fn(&Req, &[&str]) -> Result<Reply, Reply>;

/// `(method, pattern, handler)`.
pub type Route = (&'static str, &'static str, Handler);

/// A component's route table and its family's error body for 405.
pub struct Router {
    /// The component's name, in its 404 bodies.
    pub component: &'static str,
    pub routes: &'static [Route],
    /// The family's error body for `(status, message)`.
    pub error: fn(u16, &str) -> Reply,
}

/// The segments `*` matched when `segments` match `pattern`.
fn capture<'a>(pattern: &str, segments: &[&'a str]) -> Option<Vec<&'a str>> {
    let p: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    if p.len() != segments.len() {
        return None;
    }
    let mut out = Vec::new();
    for (p, s) in p.iter().zip(segments) {
        if *p == "*" {
            out.push(*s);
        } else if p != s {
            return None;
        }
    }
    Some(out)
}

/// How many segments of `pattern` are literal (not `*`).
fn literal(pattern: &str) -> usize {
    pattern
        .split('/')
        .filter(|s| !s.is_empty() && *s != "*")
        .count()
}

impl Router {
    /// Route the request's path under `prefix` (a path outside it is a 404).
    pub fn serve(&self, req: &Req, prefix: &str) -> Reply {
        match req.segments(prefix) {
            Some(seg) => {
                let s: Vec<&str> = seg.iter().map(String::as_str).collect();
                self.dispatch(req, &s)
            }
            None => self.not_found(req),
        }
    }

    /// Route the request by its already split, percent-decoded `segments`.
    pub fn dispatch(&self, req: &Req, segments: &[&str]) -> Reply {
        match self.find(&req.method, segments) {
            Ok((handler, captured)) => handler(req, &captured).unwrap_or_else(|e| e),
            Err(allow) if allow.is_empty() => self.not_found(req),
            Err(allow) => {
                let allow = allow.join(", ");
                (self.error)(
                    405,
                    &format!("{} is not allowed on {}; use {allow}", req.method, req.path),
                )
                .with_header("allow", &allow)
            }
        }
    }

    /// The 404 for a request no route serves: names the component, so a
    /// caller sees which family got it.
    pub fn not_found(&self, req: &Req) -> Reply {
        Reply::json(
            404,
            &serde_json::json!({
                "error": "not_found",
                "message": format!("{} has no route for {} {}", self.component, req.method, req.path),
                "component": self.component,
            }),
        )
    }

    /// The handler and captured segments for `method` on `segments`, or the
    /// methods the path allows (empty: no route has the path).
    fn find<'a>(
        &self,
        method: &str,
        segments: &[&'a str],
    ) -> Result<(Handler, Vec<&'a str>), Vec<&'static str>> {
        let mut best: Option<(usize, Handler, Vec<&'a str>)> = None;
        let mut allow: Vec<&'static str> = Vec::new();
        let mut allow_rank = 0;
        for (m, pattern, handler) in self.routes {
            let Some(captured) = capture(pattern, segments) else {
                continue;
            };
            let rank = literal(pattern);
            if *m == method && best.as_ref().is_none_or(|(r, _, _)| rank > *r) {
                best = Some((rank, *handler, captured));
            }
            if allow.is_empty() || rank > allow_rank {
                allow.clear();
                allow_rank = rank;
            }
            if rank == allow_rank && !allow.contains(m) {
                allow.push(m);
            }
        }
        match best {
            Some((_, handler, captured)) => Ok((handler, captured)),
            None => Err(allow),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, path: &str) -> Req {
        Req {
            method: method.into(),
            path: path.into(),
            query: vec![],
            headers: vec![],
            body: vec![],
        }
    }

    fn echo(name: &'static str, captured: &[&str]) -> Result<Reply, Reply> {
        Ok(Reply::json(
            200,
            &serde_json::json!({"route": name, "captured": captured}),
        ))
    }

    static ROUTER: Router = Router {
        component: "probe",
        routes: &[
            ("POST", "namespaces", |_, s| echo("create", s)),
            ("GET", "namespaces/*", |_, s| echo("get", s)),
            ("DELETE", "namespaces/*", |_, s| echo("delete", s)),
            ("POST", "namespaces/list", |_, s| echo("list", s)),
            ("GET", "namespaces/*/tasks/*", |_, s| echo("task", s)),
            ("GET", "fails", |_, _| {
                Err(Reply::problem(418, "teapot", "no"))
            }),
        ],
        error: |status, message| {
            Reply::json(
                status,
                &serde_json::json!({"family": true, "message": message}),
            )
        },
    };

    fn body(r: &Reply) -> serde_json::Value {
        match &r.body {
            crate::http::Body::Bytes(b) => serde_json::from_slice(b).unwrap(),
            crate::http::Body::Stream(_) => panic!("streamed"),
        }
    }

    fn header<'a>(r: &'a Reply, name: &str) -> Option<&'a str> {
        r.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn patterns_match_whole_segments_and_capture_the_stars() {
        assert_eq!(
            capture("clusters/*", &["clusters", "abc"]),
            Some(vec!["abc"])
        );
        assert_eq!(capture("clusters/*", &["clusters"]), None);
        assert_eq!(capture("clusters/*", &["clusters", "a", "b"]), None);
        assert_eq!(capture("/clusters", &["clusters"]), Some(vec![]));
        assert_eq!(
            capture("a/*/b/*", &["a", "x", "b", "y"]),
            Some(vec!["x", "y"])
        );
        assert_eq!(literal("a/*/b/*"), 2);
    }

    #[test]
    fn dispatch_hands_the_captured_segments_to_the_handler() {
        let r = ROUTER.serve(&req("GET", "/v1/namespaces/a%20b/tasks/t1"), "/v1");
        assert_eq!(r.status, 200);
        assert_eq!(body(&r)["route"], "task");
        assert_eq!(body(&r)["captured"], serde_json::json!(["a b", "t1"]));
        let r = ROUTER.serve(&req("GET", "/v1/fails"), "/v1");
        assert_eq!(r.status, 418, "a handler's Err is the reply");
    }

    #[test]
    fn the_most_literal_pattern_wins() {
        let r = ROUTER.serve(&req("POST", "/v1/namespaces/list"), "/v1");
        assert_eq!(body(&r)["route"], "list");
        // GET still reaches namespaces/* (no GET namespaces/list).
        let r = ROUTER.serve(&req("GET", "/v1/namespaces/list"), "/v1");
        assert_eq!(body(&r)["route"], "get");
        assert_eq!(body(&r)["captured"], serde_json::json!(["list"]));
        // 405 names the methods of the most literal patterns only.
        let r = ROUTER.serve(&req("PUT", "/v1/namespaces/list"), "/v1");
        assert_eq!(r.status, 405);
        assert_eq!(header(&r, "allow"), Some("POST"));
    }

    #[test]
    fn another_method_is_405_with_allow_in_the_family_shape() {
        let r = ROUTER.serve(&req("PATCH", "/v1/namespaces/x"), "/v1");
        assert_eq!(r.status, 405);
        assert_eq!(header(&r, "allow"), Some("GET, DELETE"));
        assert_eq!(body(&r)["family"], true);
        assert_eq!(
            body(&r)["message"],
            "PATCH is not allowed on /v1/namespaces/x; use GET, DELETE"
        );
    }

    #[test]
    fn an_unknown_path_is_the_components_404() {
        for (method, path) in [
            ("GET", "/v1/nowhere"),
            ("GET", "/v1/namespaces/x/y"),
            ("GET", "/v1"),
            ("GET", "/v2/namespaces"),
            ("GET", "/v1x/namespaces"),
        ] {
            let r = ROUTER.serve(&req(method, path), "/v1");
            assert_eq!(r.status, 404, "{path}");
            assert_eq!(body(&r)["component"], "probe", "{path}");
            assert_eq!(body(&r)["error"], "not_found", "{path}");
        }
    }
}
