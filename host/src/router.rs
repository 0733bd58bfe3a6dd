//! Spin's HTTP routing.
//!
//! A route is a path of literal segments and `:name` segments, optionally
//! ending in `/...` (a wildcard matching any rest of the path, including
//! nothing). Among the routes that match, the most specific wins: routes are
//! compared segment by segment (literal beats `:name` beats wildcard), and an
//! exact route beats a wildcard with the same prefix. No match is a 404.

use anyhow::{bail, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// One parsed `[[trigger.http]]` route.
#[derive(Debug, Clone)]
pub struct Route {
    raw: String,
    segments: Vec<Segment>,
    wildcard: bool,
}

/// What a match tells the component (the `spin-*` headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    /// Index of the route in the router's list.
    pub index: usize,
    /// The route as written in spin.toml (`spin-matched-route`, `spin-raw-component-route`).
    pub raw_route: String,
    /// The route without its `/...` (`spin-component-route`).
    pub component_route: String,
    /// The part of the path the wildcard matched, with its leading `/` (`spin-path-info`).
    pub path_info: String,
    /// `:name` segments and their values (`spin-path-match-<name>`).
    pub params: Vec<(String, String)>,
}

impl Route {
    pub fn parse(raw: &str) -> Result<Route> {
        if !raw.starts_with('/') {
            bail!("route {raw:?} must start with '/'");
        }
        let (body, wildcard) = if raw == "/..." {
            ("", true)
        } else if let Some(b) = raw.strip_suffix("/...") {
            (b, true)
        } else {
            (raw.trim_end_matches('/'), false)
        };
        let mut segments = Vec::new();
        for s in body.split('/').filter(|s| !s.is_empty()) {
            if s == "..." {
                bail!("route {raw:?}: '...' is only allowed at the end");
            }
            match s.strip_prefix(':') {
                Some("") => bail!("route {raw:?}: a ':' segment needs a name"),
                Some(name) => segments.push(Segment::Param(name.to_string())),
                None => segments.push(Segment::Literal(s.to_string())),
            }
        }
        Ok(Route {
            raw: raw.to_string(),
            segments,
            wildcard,
        })
    }

    fn component_route(&self) -> String {
        if self.wildcard {
            self.raw.strip_suffix("/...").unwrap_or("").to_string()
        } else {
            self.raw.trim_end_matches('/').to_string()
        }
    }

    fn matches(&self, path_segments: &[&str]) -> Option<(Vec<(String, String)>, usize)> {
        if path_segments.len() < self.segments.len()
            || (!self.wildcard && path_segments.len() != self.segments.len())
        {
            return None;
        }
        let mut params = Vec::new();
        for (seg, actual) in self.segments.iter().zip(path_segments) {
            match seg {
                Segment::Literal(l) if l == actual => {}
                Segment::Literal(_) => return None,
                Segment::Param(name) => params.push((name.clone(), actual.to_string())),
            }
        }
        Some((params, self.segments.len()))
    }

    /// Rank for "most specific wins": per segment 2 = literal, 1 = param;
    /// then exact (1) over wildcard (0).
    fn rank(&self) -> (Vec<u8>, u8) {
        let per: Vec<u8> = self
            .segments
            .iter()
            .map(|s| match s {
                Segment::Literal(_) => 2,
                Segment::Param(_) => 1,
            })
            .collect();
        (per, if self.wildcard { 0 } else { 1 })
    }
}

/// Routes in manifest order; `route` picks the most specific match.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    pub fn new(routes: &[String]) -> Result<Router> {
        Ok(Router {
            routes: routes
                .iter()
                .map(|r| Route::parse(r))
                .collect::<Result<_>>()?,
        })
    }

    /// Match a request path (without query string).
    pub fn route(&self, path: &str) -> Option<RouteMatch> {
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        // (route index, captured parameters, segments consumed)
        type Best = (usize, Vec<(String, String)>, usize);
        let mut best: Option<Best> = None;
        for (i, r) in self.routes.iter().enumerate() {
            if let Some((params, consumed)) = r.matches(&segs) {
                let better = match &best {
                    None => true,
                    Some((b, _, _)) => more_specific(r, &self.routes[*b]),
                };
                if better {
                    best = Some((i, params, consumed));
                }
            }
        }
        let (index, params, consumed) = best?;
        let r = &self.routes[index];
        let path_info = if r.wildcard {
            // Keep the path's own text (and a trailing '/') after the consumed segments.
            let mut rest = path;
            for _ in 0..consumed {
                rest = rest.trim_start_matches('/');
                rest = rest.find('/').map(|i| &rest[i..]).unwrap_or("");
            }
            rest.to_string()
        } else {
            String::new()
        };
        Some(RouteMatch {
            index,
            raw_route: r.raw.clone(),
            component_route: r.component_route(),
            path_info,
            params,
        })
    }
}

fn more_specific(a: &Route, b: &Route) -> bool {
    let (ra, ea) = a.rank();
    let (rb, eb) = b.rank();
    for (x, y) in ra.iter().zip(rb.iter()) {
        if x != y {
            return x > y;
        }
    }
    if ra.len() != rb.len() {
        // Both matched the same path: the longer one consumed more literally.
        return ra.len() > rb.len();
    }
    ea > eb
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        Router::new(&[
            "/api/v1/clusters/...".into(),
            "/api/v1/clusters/special".into(),
            "/v1/jobs/:id/listen".into(),
            "/v1/...".into(),
            "/...".into(),
            "/exact".into(),
        ])
        .unwrap()
    }

    #[test]
    fn wildcard_path_info_and_component_route() {
        let m = router()
            .route("/api/v1/clusters/abc/cloning-operations")
            .unwrap();
        assert_eq!(m.index, 0);
        assert_eq!(m.path_info, "/abc/cloning-operations");
        assert_eq!(m.component_route, "/api/v1/clusters");
        assert_eq!(m.raw_route, "/api/v1/clusters/...");
    }

    #[test]
    fn exact_beats_wildcard() {
        let m = router().route("/api/v1/clusters/special").unwrap();
        assert_eq!(m.index, 1);
        assert_eq!(m.path_info, "");
    }

    #[test]
    fn params_are_captured_and_beat_wildcards() {
        let m = router().route("/v1/jobs/j123/listen").unwrap();
        assert_eq!(m.index, 2);
        assert_eq!(m.params, vec![("id".to_string(), "j123".to_string())]);
        let m = router().route("/v1/jobs/j123").unwrap();
        assert_eq!(m.index, 3);
        assert_eq!(m.path_info, "/jobs/j123");
    }

    #[test]
    fn wildcard_matches_its_own_prefix_and_root_catches_all() {
        let m = router().route("/api/v1/clusters").unwrap();
        assert_eq!((m.index, m.path_info.as_str()), (0, ""));
        let m = router().route("/nothing/here").unwrap();
        assert_eq!(
            (m.index, m.path_info.as_str(), m.component_route.as_str()),
            (4, "/nothing/here", "")
        );
        assert_eq!(router().route("/exact").unwrap().index, 5);
        assert_eq!(router().route("/exact/more").unwrap().index, 4);
    }

    #[test]
    fn no_match_without_catch_all() {
        let r = Router::new(&["/a/...".into()]).unwrap();
        assert!(r.route("/b").is_none());
        assert!(r.route("/ab").is_none());
    }

    #[test]
    fn bad_routes_are_rejected() {
        assert!(Route::parse("nope").is_err());
        assert!(Route::parse("/a/.../b").is_err());
        assert!(Route::parse("/a/:").is_err());
    }
}
