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
use wasmtime_wasi_http::{WasiHttpCtxView, WasiHttpHooks, DEFAULT_FORBIDDEN_HEADERS};

use crate::runtime::Host;

/// Serve the app on `listener` until the task is dropped.
pub async fn serve(host: Arc<Host>, listener: TcpListener) -> Result<()> {
    loop {
        let (client, client_addr) = listener.accept().await?;
        let _ = client.set_nodelay(true);
        let host = host.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let host = host.clone();
                async move { Ok::<_, std::convert::Infallible>(host.handle(req, client_addr).await) }
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

fn plain(status: StatusCode, text: impl Into<String>) -> Response<HyperOutgoingBody> {
    let body = Full::new(Bytes::from(text.into()))
        .map_err(|never| match never {})
        .boxed_unsync();
    Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(body)
        .expect("static response")
}

/// The headers an incoming request hands the guest: like Spin, the `host`
/// header stays (wasmtime's default strips it with the hop-by-hop headers,
/// and a family that reads the project from the host name would see none);
/// requests the guest builds still may not set it.
struct IncomingHooks;

impl WasiHttpHooks for IncomingHooks {
    fn is_forbidden_header(&mut self, name: &http::HeaderName) -> bool {
        *name != http::header::HOST && DEFAULT_FORBIDDEN_HEADERS.contains(name)
    }
    fn forbidden_header_filter(&mut self) -> wasmtime_wasi_http::ForbiddenHeaderFilter {
        Arc::new(|name| *name != http::header::HOST && DEFAULT_FORBIDDEN_HEADERS.contains(name))
    }
}

impl Host {
    /// Handle one request: 404 when no route matches, 500 when the guest traps.
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        client_addr: SocketAddr,
    ) -> Response<HyperOutgoingBody> {
        match self.handle_impl(req, client_addr).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("spinoff-host: request failed: {e:?}");
                plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error\n")
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
            return Ok(plain(StatusCode::NOT_FOUND, "Not Found\n"));
        };
        let component_id = self.route_components[m.index].clone();
        let loaded = self.component(&component_id)?;
        let proxy = loaded
            .proxy
            .clone()
            .context("component has no HTTP handler")?;

        let (mut parts, body) = req.into_parts();
        let authority = parts
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(String::from)
            .unwrap_or_else(|| "localhost".to_string());
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
        let state = store.data_mut();
        let mut view = WasiHttpCtxView {
            ctx: &mut state.http,
            table: &mut state.table,
            hooks: &mut IncomingHooks,
        };
        let wasi_req = view.new_incoming_request(Scheme::Http, req)?;
        let out = view.new_response_outparam(sender)?;
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
