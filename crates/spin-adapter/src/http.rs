//! Requests in, replies out. A component's entry point hands the incoming
//! request to [`serve`] with its handler; the handler sees a plain [`Req`]
//! (body read up to a limit) and returns a [`Reply`], buffered or streamed.

use futures::SinkExt;
use spin_sdk::http::{Fields, IncomingRequest, OutgoingResponse, ResponseOutparam};

/// Largest request body any route accepts (a bulk import); bigger answers 413.
pub const MAX_BODY: usize = 64 << 20;

/// A request with its body read.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    /// The path, still percent-encoded.
    pub path: String,
    pub query: Vec<(String, String)>,
    /// Header names in lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The authority the client addressed (`name[:port]`): the `host`
    /// header, which Spin passes through, else the authority of Spin's
    /// `spin-full-url`.
    pub fn host(&self) -> Option<&str> {
        if let Some(h) = self.header("host").map(str::trim).filter(|h| !h.is_empty()) {
            return Some(h);
        }
        let url = self.header("spin-full-url")?;
        let rest = url.split_once("://")?.1;
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        Some(&rest[..end]).filter(|a| !a.is_empty())
    }

    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The query parameters as `T` (`serde_urlencoded`: numbers and
    /// booleans parsed from their text; parameters `T` does not name are
    /// ignored), or a message naming the parameter that does not fit.
    pub fn query_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, String> {
        let encoded = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&self.query)
            .finish();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(encoded.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map_err(|e| format!("query parameter {}: {}", e.path(), e.inner()))
    }

    /// Path segments after `prefix`, percent-decoded. `None` if the path is
    /// not under `prefix` or a segment is not UTF-8.
    pub fn segments(&self, prefix: &str) -> Option<Vec<String>> {
        let rest = self.path.strip_prefix(prefix)?;
        if !(rest.is_empty() || rest.starts_with('/')) {
            return None;
        }
        rest.split('/')
            .filter(|s| !s.is_empty())
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8()
                    .ok()
                    .map(|c| c.into_owned())
            })
            .collect()
    }

    /// The token of `Authorization: <scheme> <token>` (scheme case-insensitive).
    pub fn credential(&self, scheme: &str) -> Option<&str> {
        let v = self.header("authorization")?.trim();
        let (s, t) = v.split_once(' ')?;
        s.eq_ignore_ascii_case(scheme)
            .then(|| t.trim())
            .filter(|t| !t.is_empty())
    }

    /// The body as JSON, or a 400 naming the problem.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, Reply> {
        if self.body.is_empty() {
            return Err(Reply::problem(
                400,
                "invalid_json",
                "the request body is empty; send a JSON document",
            ));
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            Reply::problem(
                400,
                "invalid_json",
                &format!("the request body is not valid JSON for this request: {e}"),
            )
        })
    }
}

/// A streamed body: each call yields the next chunk, `Ok(None)` at the
/// end. An `Err` mid-way aborts the response: the body is dropped without
/// its end (no terminating chunk), so the client sees a transfer error and
/// never a clean end of a short body.
pub type Chunks = Box<dyn FnMut() -> Result<Option<Vec<u8>>, engine::Error>>;

pub enum Body {
    Bytes(Vec<u8>),
    Stream(Chunks),
}

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Reply {
    pub fn json(status: u16, v: &serde_json::Value) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Body::Bytes(v.to_string().into_bytes()),
        }
    }

    pub fn empty(status: u16) -> Reply {
        Reply {
            status,
            headers: vec![],
            body: Body::Bytes(vec![]),
        }
    }

    /// The `message` of a buffered JSON reply (empty when there is none),
    /// for families that re-shape adapter errors into their vendor's body.
    pub fn message(&self) -> String {
        match &self.body {
            Body::Bytes(b) => serde_json::from_slice::<serde_json::Value>(b)
                .ok()
                .and_then(|v| v["message"].as_str().map(String::from))
                .unwrap_or_default(),
            Body::Stream(_) => String::new(),
        }
    }

    /// `{"error": code, "message": message}`.
    pub fn problem(status: u16, code: &str, message: &str) -> Reply {
        Reply::json(
            status,
            &serde_json::json!({"error": code, "message": message}),
        )
    }

    /// An engine error in the default shape, with its status.
    pub fn error(e: &engine::Error) -> Reply {
        Reply::json(crate::status_of(e), &crate::errors::body_of(e)).with_retry_after(e)
    }

    /// `Retry-After` when the engine error says when to retry (busy, a
    /// rate limit); every family's error reply goes through this.
    pub fn with_retry_after(self, e: &engine::Error) -> Reply {
        match e.retry_after_s() {
            Some(s) => self.with_header("retry-after", &s.to_string()),
            None => self,
        }
    }

    pub fn stream(status: u16, content_type: &str, chunks: Chunks) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: Body::Stream(chunks),
        }
    }

    pub fn with_header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }
}

/// Read the request (bounded), run `handler`, send its reply.
pub async fn serve(
    req: IncomingRequest,
    out: ResponseOutparam,
    handler: impl FnOnce(Req) -> Reply,
) {
    let reply = match read(req).await {
        Ok(r) => handler(r),
        Err(reply) => reply,
    };
    send(out, reply).await;
}

/// [`serve`] for a family whose clients parse every error body: `shape`
/// sees every reply before it is sent, the adapter's own answers to an
/// unreadable or oversized body included.
pub async fn serve_shaped(
    req: IncomingRequest,
    out: ResponseOutparam,
    handler: impl FnOnce(Req) -> Reply,
    shape: fn(Reply) -> Reply,
) {
    let reply = match read(req).await {
        Ok(r) => handler(r),
        Err(reply) => reply,
    };
    send(out, shape(reply)).await;
}

async fn read(req: IncomingRequest) -> Result<Req, Reply> {
    use futures::TryStreamExt;
    let method = req.method().to_string();
    let pq = req.path_with_query().unwrap_or_else(|| "/".into());
    let (path, q) = pq.split_once('?').unwrap_or((&pq, ""));
    let query = form_urlencoded::parse(q.as_bytes()).into_owned().collect();
    let headers: Vec<(String, String)> = req
        .headers()
        .entries()
        .into_iter()
        .map(|(k, v)| {
            (
                k.to_ascii_lowercase(),
                String::from_utf8_lossy(&v).into_owned(),
            )
        })
        .collect();
    let too_large = || {
        Reply::problem(
            413,
            "too_large",
            &format!("the request body is larger than {} MiB", MAX_BODY >> 20),
        )
    };
    if let Some((_, len)) = headers.iter().find(|(k, _)| k == "content-length") {
        if len
            .trim()
            .parse::<usize>()
            .map(|n| n > MAX_BODY)
            .unwrap_or(false)
        {
            return Err(too_large());
        }
    }
    let (path, method) = (path.to_string(), method);
    let mut body = Vec::new();
    let mut stream = req.into_body_stream();
    while let Some(chunk) = stream.try_next().await.map_err(|e| {
        Reply::problem(
            400,
            "bad_request",
            &format!("reading the request body: {e:?}"),
        )
    })? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(too_large());
        }
        body.extend(chunk);
    }
    Ok(Req {
        method,
        path,
        query,
        headers,
        body,
    })
}

/// Largest in-memory body written before the response is handed over
/// (wasi-http buffers one chunk of a body nobody reads yet; 1 MiB in
/// wasmtime).
const WRITE_FIRST_MAX: usize = 256 << 10;

async fn send(out: ResponseOutparam, reply: Reply) {
    let mut headers: Vec<(String, Vec<u8>)> = reply
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
        .collect();
    // A body held in memory goes with its length, and is written (and
    // finished) before the response is set: the runtime then sends head and
    // body in one TCP segment. Set first, the head left alone and the body
    // (and a chunked end) followed in later segments, which Nagle's
    // algorithm on Spin's sockets (no TCP_NODELAY) held back until the
    // client's delayed ACK: 40 ms on a keep-alive connection.
    let write_first = matches!(&reply.body, Body::Bytes(b) if b.len() <= WRITE_FIRST_MAX);
    if let Body::Bytes(b) = &reply.body {
        headers.push(("content-length".into(), b.len().to_string().into_bytes()));
    }
    let fields = Fields::from_list(&headers).unwrap_or_else(|_| Fields::new());
    let response = OutgoingResponse::new(fields);
    let _ = response.set_status_code(reply.status);
    let next = match reply.body {
        Body::Stream(next) => next,
        Body::Bytes(b) => {
            let mut sink = response.take_body();
            if write_first {
                if !b.is_empty() {
                    let _ = sink.send(b).await;
                }
                drop(sink);
                out.set(response);
                return;
            }
            out.set(response);
            if !b.is_empty() {
                let _ = sink.send(b).await;
            }
            return;
        }
    };
    let Ok(body) = response.body() else {
        return;
    };
    out.set(response);
    stream_body(body, next);
}

/// Write a streamed body chunk by chunk, then finish it; when the stream
/// fails, leave it unfinished: the runtime then aborts the response (an
/// HTTP/1.1 chunked body without its last chunk), which every client
/// reports as an error.
fn stream_body(body: spin_sdk::http::OutgoingBody, mut next: Chunks) {
    let Ok(stream) = body.write() else {
        return;
    };
    loop {
        match next() {
            Ok(Some(chunk)) => {
                let mut rest = chunk.as_slice();
                while !rest.is_empty() {
                    match stream.check_write() {
                        Ok(0) => stream.subscribe().block(),
                        Ok(n) => {
                            let k = rest.len().min(n as usize);
                            if stream.write(&rest[..k]).is_err() {
                                return; // the client went away
                            }
                            rest = &rest[k..];
                        }
                        Err(_) => return,
                    }
                }
                if stream.flush().is_err() {
                    return;
                }
            }
            Ok(None) => {
                // Wait for the flush, then end the body properly.
                loop {
                    match stream.check_write() {
                        Ok(0) => stream.subscribe().block(),
                        Ok(_) => break,
                        Err(_) => return,
                    }
                }
                drop(stream);
                let _ = spin_sdk::http::OutgoingBody::finish(body, None);
                return;
            }
            Err(e) => {
                eprintln!("stream aborted: {e}");
                drop(stream);
                drop(body);
                return;
            }
        }
    }
}

/// `v`, when it is within `lo..=hi`; else a message naming parameter `name`.
pub fn within(name: &str, v: i64, lo: i64, hi: i64) -> Result<i64, String> {
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{name} must be an integer from {lo} to {hi}, got {v}"))
    }
}

/// A query flag as the vendors write it: `true`/`false`, `1`/`0`; empty
/// counts as absent. For `#[serde(default, deserialize_with = "flag")]`.
pub fn flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    let s: Option<String> = serde::Deserialize::deserialize(d)?;
    match s.as_deref() {
        None | Some("") => Ok(None),
        Some("true") | Some("1") => Ok(Some(true)),
        Some("false") | Some("0") => Ok(Some(false)),
        Some(v) => Err(serde::de::Error::custom(format!("is true or false, not {v:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::Req;

    fn req(headers: &[(&str, &str)]) -> Req {
        Req {
            method: "GET".into(),
            path: "/".into(),
            query: vec![],
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: vec![],
        }
    }

    #[test]
    fn the_host_is_the_host_header_else_spin_full_urls_authority() {
        let full = (
            "spin-full-url",
            "http://p1.api.example.com:3000/v1/datasets?x=1",
        );
        assert_eq!(req(&[("host", "a.b.c"), full]).host(), Some("a.b.c"));
        assert_eq!(req(&[full]).host(), Some("p1.api.example.com:3000"));
        assert_eq!(
            req(&[("spin-full-url", "http://h.example")]).host(),
            Some("h.example")
        );
        assert_eq!(
            req(&[("host", " "), full]).host(),
            Some("p1.api.example.com:3000")
        );
        assert_eq!(req(&[]).host(), None);
        assert_eq!(req(&[("spin-full-url", "nonsense")]).host(), None);
    }
}
