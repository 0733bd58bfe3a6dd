//! Deliveries of the notification outbox: the `notifier` duty.
//!
//! One pass claims due notifications (at most two per destination, so one
//! dead receiver never crowds out the others), checks every webhook URL
//! again against the address rules with the addresses its host resolves to
//! now, signs each delivery (Standard Webhooks) with its tenant's secrets,
//! and sends them all at once through `wasi:http` with connect, first-byte
//! and between-bytes timeouts. The pass waits for the answers until one
//! shared deadline (`webhook_timeout_ms`, default 3 000); whatever has not
//! answered by then is a failed attempt, retried with backoff and failed
//! for good after `engine::events::MAX_DELIVERY_ATTEMPTS`, the reason kept on
//! the operation. Redirects are not followed (a 3xx is a failure).
//!
//! The pass runs in its own component (`notifier` in spin.toml: this same
//! Wasm, its own cron trigger and `/internal/notifier/tick`), so a slow
//! receiver never holds up the copies of the clone worker.

use std::net::IpAddr;

use engine::webhooks::{self, AllowList, Destination};
use engine::{Engine, Notification};
use serde_json::{json, Value};
use spin_adapter::vars::variable;
use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, FutureIncomingResponse, Headers, Method, OutgoingBody, OutgoingRequest,
    RequestOptions, Scheme,
};
use wasi::io::poll::{poll, Pollable};

/// Most notifications one pass claims.
const BATCH: i64 = 20;

/// What one pass did.
#[derive(Default)]
pub struct Report {
    pub claimed: usize,
    pub delivered: usize,
    pub failed: usize,
}

impl Report {
    pub fn json(&self) -> Value {
        json!({"claimed": self.claimed, "delivered": self.delivered, "failed": self.failed})
    }
}

/// A delivery ready to send, or the reason it cannot be sent.
struct Prepared {
    id: i64,
    url: url::Url,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
}

enum Outcome {
    Delivered,
    /// A failed attempt: retried with backoff unless `permanent`.
    Failed {
        reason: String,
        permanent: bool,
    },
}

/// Deliver due notifications, waiting at most `webhook_timeout_ms` for
/// answers.
pub fn run(e: &Engine) -> Result<Report, engine::Error> {
    let timeout_ms =
        spin_adapter::vars::variable_i64("webhook_timeout_ms", 3000).clamp(100, 60_000);
    let allow = AllowList::parse(&variable("webhook_allowed_hosts").unwrap_or_default());
    // The claim outlives the pass, so no other worker sends these meanwhile.
    let due = e.claim_notifications(BATCH, (timeout_ms * 1000 * 4).max(30_000_000))?;
    let mut report = Report {
        claimed: due.len(),
        ..Report::default()
    };
    if due.is_empty() {
        return Ok(report);
    }
    let deadline = Deadline::start(timeout_ms);
    let mut ready = Vec::new();
    for n in &due {
        match prepare(e, n, &allow, &deadline) {
            Ok(p) => ready.push(p),
            Err(outcome) => record(e, n.id, outcome, &mut report)?,
        }
    }
    for (id, outcome) in send_all(ready, timeout_ms, &deadline) {
        record(e, id, outcome, &mut report)?;
    }
    Ok(report)
}

fn record(e: &Engine, id: i64, outcome: Outcome, report: &mut Report) -> Result<(), engine::Error> {
    match outcome {
        Outcome::Delivered => {
            e.notification_delivered(id)?;
            report.delivered += 1;
        }
        Outcome::Failed { reason, permanent } => {
            e.notification_failed(id, &reason, permanent)?;
            report.failed += 1;
        }
    }
    Ok(())
}

fn failed(reason: impl Into<String>, permanent: bool) -> Outcome {
    Outcome::Failed {
        reason: reason.into(),
        permanent,
    }
}

/// Where a notification goes and what it carries, checked and signed.
fn prepare(
    e: &Engine,
    n: &Notification,
    allow: &AllowList,
    deadline: &Deadline,
) -> Result<Prepared, Outcome> {
    let webhook = n.destination.starts_with("http://") || n.destination.starts_with("https://");
    let (url, body) = if webhook {
        let d = webhooks::check_url(&n.destination, allow).map_err(|r| failed(r, true))?;
        check_addresses(&d, deadline)?;
        (d.url, n.payload.clone().into_bytes())
    } else {
        // E-mail goes through the operator's own mail webhook: trusted
        // configuration, not a tenant's URL.
        let Some(mail) = variable("mail_webhook_url").filter(|u| !u.is_empty()) else {
            return Err(failed(
                "no mail webhook configured (Spin variable mail_webhook_url)",
                true,
            ));
        };
        let url = url::Url::parse(&mail)
            .map_err(|err| failed(format!("mail_webhook_url {mail:?}: {err}"), true))?;
        let body = json!({"to": n.destination, "subject": "Spinoff operation update",
                          "operation": serde_json::from_str::<Value>(&n.payload).unwrap_or(Value::Null)});
        (url, body.to_string().into_bytes())
    };
    let msg_id = format!("msg_{}_{}", n.op, n.id);
    let timestamp = e.env().now_us() / 1_000_000;
    let mut headers = vec![
        ("content-type", "application/json".to_string()),
        ("spinoff-notification", n.id.to_string()),
        ("webhook-id", msg_id.clone()),
        ("webhook-timestamp", timestamp.to_string()),
    ];
    if webhook {
        let secrets = e
            .webhook_signing_secrets(&n.tenant)
            .map_err(|err| failed(format!("reading the signing secret: {err}"), false))?;
        if secrets.is_empty() {
            return Err(failed(
                "the tenant has no webhook signing secret (POST /data/v1/webhooks/secret)",
                true,
            ));
        }
        let sigs: Vec<String> = secrets
            .iter()
            .map(|s| webhooks::signature(s, &msg_id, timestamp, &body))
            .collect();
        headers.push(("webhook-signature", sigs.join(" ")));
    }
    Ok(Prepared {
        id: n.id,
        url,
        body,
        headers,
    })
}

/// The host's addresses now, each checked against the address rules. Where
/// the runtime gives guests no name lookup (Spin refuses
/// `wasi:sockets/ip-name-lookup` to every component), this check falls to
/// the runtime: Spin's runtime config `[outbound_networking] block_networks
/// = ["private"]` refuses the connection after its own lookup (README,
/// "Webhooks").
fn check_addresses(d: &Destination, deadline: &Deadline) -> Result<(), Outcome> {
    if d.allowed || d.literal.is_some() {
        return Ok(());
    }
    match resolve(&d.host, deadline).map_err(|r| failed(r, false))? {
        Some(addrs) => webhooks::check_resolved(d, &addrs).map_err(|r| failed(r, true)),
        None => Ok(()),
    }
}

/// Resolve `host` with `wasi:sockets/ip-name-lookup`, within the deadline;
/// `None` when the runtime offers guests no name lookup.
fn resolve(host: &str, deadline: &Deadline) -> Result<Option<Vec<IpAddr>>, String> {
    use wasi::sockets::ip_name_lookup::{resolve_addresses, ErrorCode as E};
    use wasi::sockets::network::IpAddress;
    let net = wasi::sockets::instance_network::instance_network();
    let stream = match resolve_addresses(&net, host) {
        Ok(s) => s,
        Err(E::PermanentResolverFailure | E::AccessDenied | E::NotSupported) => return Ok(None),
        Err(err) => return Err(format!("resolving webhook host {host:?}: {err:?}")),
    };
    let mut out = Vec::new();
    loop {
        match stream.resolve_next_address() {
            Ok(Some(IpAddress::Ipv4((a, b, c, d)))) => out.push(IpAddr::from([a, b, c, d])),
            Ok(Some(IpAddress::Ipv6((a, b, c, d, e, f, g, h)))) => {
                out.push(IpAddr::from([a, b, c, d, e, f, g, h]))
            }
            Ok(None) => return Ok(Some(out)),
            Err(E::WouldBlock) => {
                let wait = stream.subscribe();
                let timer = deadline.pollable();
                if poll(&[&wait, &timer]) == [1] {
                    return Err(format!("resolving webhook host {host:?} timed out"));
                }
            }
            Err(err) => return Err(format!("resolving webhook host {host:?}: {err:?}")),
        }
    }
}

/// The pass's one deadline, on the monotonic clock.
struct Deadline(u64);

impl Deadline {
    fn start(ms: i64) -> Deadline {
        Deadline(wasi::clocks::monotonic_clock::now() + ms as u64 * 1_000_000)
    }
    fn pollable(&self) -> Pollable {
        wasi::clocks::monotonic_clock::subscribe_instant(self.0)
    }
    fn passed(&self) -> bool {
        wasi::clocks::monotonic_clock::now() >= self.0
    }
}

/// One request in flight.
struct InFlight {
    id: i64,
    response: FutureIncomingResponse,
}

/// Send every prepared delivery at once and wait for the answers until the
/// deadline.
fn send_all(ready: Vec<Prepared>, timeout_ms: i64, deadline: &Deadline) -> Vec<(i64, Outcome)> {
    let mut done = Vec::new();
    let mut flight = Vec::new();
    for p in ready {
        match start(&p, timeout_ms, deadline) {
            Ok(response) => flight.push(InFlight { id: p.id, response }),
            Err(reason) => done.push((p.id, failed(reason, false))),
        }
    }
    while !flight.is_empty() {
        let mut still = Vec::new();
        for f in flight {
            match f.response.get() {
                Some(answer) => done.push((f.id, outcome(answer, timeout_ms))),
                None => still.push(f),
            }
        }
        flight = still;
        if flight.is_empty() {
            break;
        }
        if deadline.passed() {
            for f in flight.drain(..) {
                // Dropping the future cancels the request.
                done.push((
                    f.id,
                    failed(
                        format!("no answer within {timeout_ms} ms (webhook_timeout_ms)"),
                        false,
                    ),
                ));
            }
            break;
        }
        let subs: Vec<Pollable> = flight.iter().map(|f| f.response.subscribe()).collect();
        let timer = deadline.pollable();
        let mut refs: Vec<&Pollable> = subs.iter().collect();
        refs.push(&timer);
        poll(&refs);
    }
    done
}

fn outcome(
    answer: Result<Result<wasi::http::types::IncomingResponse, ErrorCode>, ()>,
    timeout_ms: i64,
) -> Outcome {
    match answer {
        Ok(Ok(resp)) => {
            let status = resp.status();
            match status {
                200..=299 => Outcome::Delivered,
                300..=399 => failed(
                    format!("answered {status}: redirects are not followed"),
                    false,
                ),
                _ => failed(format!("answered {status}"), false),
            }
        }
        Ok(Err(code)) => failed(describe(&code, timeout_ms), false),
        Err(()) => failed("the response was already taken", false),
    }
}

fn describe(code: &ErrorCode, timeout_ms: i64) -> String {
    match code {
        ErrorCode::ConnectionTimeout => {
            format!("no connection within {timeout_ms} ms (webhook_timeout_ms)")
        }
        ErrorCode::ConnectionReadTimeout => {
            format!("no answer within {timeout_ms} ms (webhook_timeout_ms)")
        }
        ErrorCode::ConnectionRefused => "connection refused".into(),
        ErrorCode::DnsError(_) => "the host name did not resolve".into(),
        ErrorCode::HttpRequestDenied => {
            "the runtime denied the request (allowed_outbound_hosts)".into()
        }
        other => format!("sending failed: {other:?}"),
    }
}

/// Start one request: headers, timeouts, body written and finished.
fn start(
    p: &Prepared,
    timeout_ms: i64,
    deadline: &Deadline,
) -> Result<FutureIncomingResponse, String> {
    let entries: Vec<(String, Vec<u8>)> = p
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone().into_bytes()))
        .chain([(
            "content-length".to_string(),
            p.body.len().to_string().into_bytes(),
        )])
        .collect();
    let headers = Headers::from_list(&entries).map_err(|e| format!("headers: {e:?}"))?;
    let req = OutgoingRequest::new(headers);
    let scheme = if p.url.scheme() == "https" {
        Scheme::Https
    } else {
        Scheme::Http
    };
    let authority = match p.url.port() {
        Some(port) => format!("{}:{port}", p.url.host_str().unwrap_or_default()),
        None => p.url.host_str().unwrap_or_default().to_string(),
    };
    let path = match p.url.query() {
        Some(q) => format!("{}?{q}", p.url.path()),
        None => p.url.path().to_string(),
    };
    let bad = |what: &str| format!("the URL's {what} is not valid for wasi:http");
    req.set_method(&Method::Post).map_err(|_| bad("method"))?;
    req.set_scheme(Some(&scheme)).map_err(|_| bad("scheme"))?;
    req.set_authority(Some(&authority))
        .map_err(|_| bad("authority"))?;
    req.set_path_with_query(Some(&path))
        .map_err(|_| bad("path"))?;
    let opts = RequestOptions::new();
    let ns = Some(timeout_ms as u64 * 1_000_000);
    // A runtime may refuse to set a timeout; the pass's deadline still holds.
    let _ = opts.set_connect_timeout(ns);
    let _ = opts.set_first_byte_timeout(ns);
    let _ = opts.set_between_bytes_timeout(ns);
    let body = req
        .body()
        .map_err(|_| "the request body was taken".to_string())?;
    let response =
        outgoing_handler::handle(req, Some(opts)).map_err(|e| describe(&e, timeout_ms))?;
    // A receiver may answer and close as soon as it has read the declared
    // length, before the stream reports the flush: a write error is not the
    // outcome. The response says what happened (or the deadline does).
    let _ = write_body(body, &p.body, deadline);
    Ok(response)
}

/// Write a (small) body without blocking on the receiver: what the stream
/// takes now, the rest waits for the stream, never past the pass.
fn write_body(body: OutgoingBody, bytes: &[u8], deadline: &Deadline) -> Result<(), String> {
    {
        let out = body
            .write()
            .map_err(|_| "the body stream was taken".to_string())?;
        let mut off = 0;
        while off < bytes.len() {
            let n = out
                .check_write()
                .map_err(|e| format!("writing the body: {e:?}"))? as usize;
            if n == 0 {
                let wait = out.subscribe();
                let timer = deadline.pollable();
                if poll(&[&wait, &timer]) == [1] {
                    return Err("the receiver took no body before the deadline".into());
                }
                continue;
            }
            let end = (off + n).min(bytes.len());
            out.write(&bytes[off..end])
                .map_err(|e| format!("writing the body: {e:?}"))?;
            off = end;
        }
        out.flush()
            .map_err(|e| format!("writing the body: {e:?}"))?;
    }
    OutgoingBody::finish(body, None).map_err(|e| format!("finishing the body: {e:?}"))
}
