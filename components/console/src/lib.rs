//! `console`: Spinoff's web console, at `/console/`. Serves one page and
//! its script and style, built into the component: no server of its own,
//! no CDN, no build step. The page signs in with a tenant token (kept in
//! the tab's `sessionStorage` only) and uses the data API with it, so it
//! sees what that token may see and nothing else; the admin token lists
//! tenants and mints a token for the one picked.
//!
//! Every answer carries a Content-Security-Policy that allows only this
//! component's own script and style and calls to this origin: markup a
//! record could smuggle into the page would not run. The script itself
//! never writes data as markup (`textContent`, SVG elements by name).

use spin_adapter::http::{serve, Body, Reply, Req};
use spin_adapter::router::Router;
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

const BASE: &str = "/console";

/// What every answer carries.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve(req, out, route).await
}

fn asset(content_type: &str, bytes: &'static [u8]) -> Reply {
    Reply {
        status: 200,
        headers: vec![
            ("content-type".into(), content_type.into()),
            ("content-security-policy".into(), CSP.into()),
            ("x-content-type-options".into(), "nosniff".into()),
            ("referrer-policy".into(), "no-referrer".into()),
            ("cache-control".into(), "no-cache".into()),
        ],
        body: Body::Bytes(bytes.to_vec()),
    }
}

fn page(_: &Req, _: &[&str]) -> Result<Reply, Reply> {
    Ok(asset("text/html; charset=utf-8", include_bytes!("../assets/index.html")))
}

static ROUTER: Router = Router {
    component: "console",
    routes: &[
        ("GET", "", page),
        ("GET", "index.html", page),
        ("GET", "app.js", |_, _| {
            Ok(asset("text/javascript; charset=utf-8", include_bytes!("../assets/app.js")))
        }),
        ("GET", "app.css", |_, _| {
            Ok(asset("text/css; charset=utf-8", include_bytes!("../assets/app.css")))
        }),
    ],
    error: |status, message| Reply::problem(status, "not_found", message),
};

fn route(req: Req) -> Reply {
    // `/console` itself: to `/console/`, so relative asset paths resolve.
    if req.path == BASE {
        return Reply {
            status: 308,
            headers: vec![("location".into(), format!("{BASE}/"))],
            body: Body::Bytes(Vec::new()),
        };
    }
    ROUTER.serve(&req, BASE)
}
