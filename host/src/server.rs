//! The HTTP front end: route a request, give the component Spin's headers,
//! instantiate it in a fresh store and stream its response back.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::WasiHttpView;

use crate::runtime::Host;

/// Serve the app on `listener` until the task is dropped.
pub async fn serve(host: Arc<Host>, listener: TcpListener) -> Result<()> {
    loop {
        // No TCP_NODELAY: Spin's server leaves Nagle's algorithm on, and a
        // reply split over segments waits for the client's delayed ACK
        // there; the host must show that cost too.
        let (client, client_addr) = listener.accept().await?;
        let host = host.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let host = host.clone();
                async move {
                    // Spin drops the connection, without an answer, when a
                    // request's authority is missing or unusable.
                    authority_of(req.headers(), req.uri())?;
                    Ok::<_, anyhow::Error>(host.handle(req, client_addr).await)
                }
            });
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(client), service)
                .await;
        });
    }
}

/// Bind `addr` and serve; returns the bound address (useful with port 0).
pub async fn bind(
    host: Arc<Host>,
    addr: SocketAddr,
) -> Result<(SocketAddr, tokio::task::JoinHandle<Result<()>>)> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    Ok((local, tokio::spawn(serve(host, listener))))
}

/// The request's authority as Spin takes it: the `Host` header or the
/// URI's, which must agree when both are there.
fn authority_of(headers: &http::HeaderMap, uri: &http::Uri) -> Result<String> {
    let header = headers
        .get(http::header::HOST)
        .map(|h| -> Result<http::uri::Authority> {
            Ok(h.to_str()
                .context("'Host' header is not valid UTF-8")?
                .parse()?)
        })
        .transpose()?;
    match (header, uri.authority()) {
        (None, None) => anyhow::bail!("no 'Host' header present in request"),
        (Some(a), None) => Ok(a.to_string()),
        (None, Some(a)) => Ok(a.to_string()),
        (Some(a), Some(b)) if a == *b => Ok(a.to_string()),
        _ => anyhow::bail!("authority in 'Host' header does not match authority in URI"),
    }
}

/// A reply with a fixed body (none when empty), as Spin's own replies are.
fn fixed(
    status: StatusCode,
    content_type: Option<&str>,
    body: impl Into<Bytes>,
) -> Response<HyperOutgoingBody> {
    let body = Full::new(body.into())
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut r = Response::builder().status(status);
    if let Some(ct) = content_type {
        r = r.header("content-type", ct);
    }
    r.body(body).expect("static response")
}

impl Host {
    /// Handle one request as Spin does: `/.well-known/spin/health` and
    /// `/info` answered by the runtime itself, an empty 404 when no route
    /// matches, an empty 500 when the request cannot be given to the
    /// component (a header value that is not UTF-8) or the guest traps.
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        client_addr: SocketAddr,
    ) -> Response<HyperOutgoingBody> {
        if let Some(which) = req.uri().path().strip_prefix("/.well-known/spin/") {
            return match which {
                "health" => fixed(StatusCode::OK, None, "OK"),
                "info" => {
                    let app = &self.manifest().application;
                    let mut info = serde_json::json!({"name": app.name});
                    if let Some(v) = &app.version {
                        info["version"] = v.clone().into();
                    }
                    let body = serde_json::to_vec_pretty(&info).expect("JSON");
                    fixed(StatusCode::OK, Some("application/json"), body)
                }
                _ => fixed(StatusCode::NOT_FOUND, None, ""),
            };
        }
        match self.handle_impl(req, client_addr).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("spinoff-host: request failed: {e:?}");
                fixed(StatusCode::INTERNAL_SERVER_ERROR, None, "")
            }
        }
    }

    async fn handle_impl(
        &self,
        req: Request<Incoming>,
        client_addr: SocketAddr,
    ) -> Result<Response<HyperOutgoingBody>> {
        let path = req.uri().path().to_string();
        let Some(m) = self.router.route(&path) else {
            return Ok(fixed(StatusCode::NOT_FOUND, None, ""));
        };
        // Spin hands the component its headers as UTF-8 text, and fails
        // the request (500) when a value is not.
        if let Some((name, _)) = req
            .headers()
            .iter()
            .find(|(_, v)| std::str::from_utf8(v.as_bytes()).is_err())
        {
            anyhow::bail!("header {name} is not valid UTF-8");
        }
        let component_id = self.route_components[m.index].clone();
        let loaded = self.component(&component_id)?;
        let proxy = loaded
            .proxy
            .clone()
            .context("component has no HTTP handler")?;

        let (mut parts, body) = req.into_parts();
        let authority = authority_of(&parts.headers, &parts.uri)?;
        let path_and_query = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        let full_url = format!("http://{authority}{path_and_query}");
        parts.uri = full_url.parse().context("building the full URL")?;
        let h = &mut parts.headers;
        let mut set = |name: &str, value: &str| -> Result<()> {
            h.insert(
                http::HeaderName::from_bytes(name.as_bytes())?,
                http::HeaderValue::from_str(value)?,
            );
            Ok(())
        };
        set("spin-full-url", &full_url)?;
        set("spin-path-info", &m.path_info)?;
        set("spin-matched-route", &m.raw_route)?;
        set("spin-raw-component-route", &m.raw_route)?;
        set("spin-component-route", &m.component_route)?;
        set("spin-base-path", "/")?;
        set("spin-client-addr", &client_addr.to_string())?;
        for (name, value) in &m.params {
            set(
                &format!("spin-path-match-{}", name.to_ascii_lowercase()),
                value,
            )?;
        }
        let body = body.map_err(wasmtime_wasi_http::p2::hyper_request_error);
        let req = Request::from_parts(parts, body);

        let mut store = self.new_store(&component_id);
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let wasi_req = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)?;
        let out = store.data_mut().http().new_response_outparam(sender)?;
        let task = tokio::spawn(async move {
            let instance = proxy.instantiate_async(&mut store).await?;
            instance
                .wasi_http_incoming_handler()
                .call_handle(&mut store, wasi_req, out)
                .await
        });
        match receiver.await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(code)) => Err(anyhow::anyhow!(
                "component {component_id} answered with error {code:?}"
            )),
            Err(_) => {
                let why = match task.await {
                    Ok(Ok(())) => anyhow::anyhow!(
                        "component {component_id} returned without setting a response"
                    ),
                    Ok(Err(e)) => {
                        anyhow::Error::from(e).context(format!("component {component_id} trapped"))
                    }
                    Err(e) => anyhow::Error::from(e),
                };
                Err(why)
            }
        }
    }
}
