//! The HTTP connector the `libsql` client reaches a remote database with:
//! the client's own (hyper 0.14 and rustls, native roots, plain HTTP
//! allowed), except that a connection the client drops while a response
//! is still arriving is read to the response's end before it closes.
//!
//! Why: `libsql` reads a statement's rows from a Hrana cursor response and
//! drops that response as soon as it has read the step's end, before sqld
//! has sent the last entry and the body's final chunk. sqld takes the
//! closed connection for a canceled request, and a canceled request leaves
//! a flag on its database connection that makes SQLite's progress handler
//! interrupt work until the next statement starts executing there — and a
//! large statement's prepare (Hrana `describe`, sent before every query)
//! consults that handler too. So a statement after any other could fail
//! with `SQLITE_INTERRUPT`, and again on every retry, since a failed
//! describe never reaches the statement start that clears the flag (seen
//! in the e2e suites on the remote backend: a branch's reads through
//! several levels, tens of times per run). A connection that reads on to
//! the response's end closes like any idle one, and sqld cancels nothing.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_014::client::connect::{Connected, Connection};
use hyper_014::client::HttpConnector;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// The end of a chunked body: the last chunk (size 0) and an empty trailer.
const LAST_CHUNK: &[u8; 5] = b"0\r\n\r\n";
/// How long a dropped connection waits for more of a response, at most.
const DRAIN_IDLE: Duration = Duration::from_millis(500);
const DRAIN_TOTAL: Duration = Duration::from_secs(5);

type Https = hyper_rustls_025::HttpsConnector<HttpConnector>;
type Stream = hyper_rustls_025::MaybeHttpsStream<tokio::net::TcpStream>;

/// `libsql::Builder::new_remote(..).connector(connector()?)`.
pub fn connector() -> io::Result<Connector> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let https = hyper_rustls_025::HttpsConnectorBuilder::new()
        .with_native_roots()?
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Connector(https))
}

#[derive(Clone)]
pub struct Connector(Https);

impl tower_04::Service<http_02::Uri> for Connector {
    type Response = Draining;
    type Error = <Https as tower_04::Service<http_02::Uri>>::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Draining, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: http_02::Uri) -> Self::Future {
        let connecting = self.0.call(uri);
        Box::pin(async move {
            Ok(Draining {
                io: Some(connecting.await?),
                tail: [0; 5],
            })
        })
    }
}

/// A connection that, dropped in the middle of a chunked response, reads
/// it to its end (or to [`DRAIN_TOTAL`]) in the background first. It never
/// half-closes: hyper's shutdown is a no-op, the socket closes on drop.
pub struct Draining {
    io: Option<Stream>,
    /// The last bytes read.
    tail: [u8; 5],
}

impl Draining {
    fn io(&mut self) -> &mut Stream {
        self.io.as_mut().expect("present until drop")
    }
}

/// Keep the last five bytes of everything read in `tail`.
fn push_tail(tail: &mut [u8; 5], read: &[u8]) {
    if read.len() >= 5 {
        tail.copy_from_slice(&read[read.len() - 5..]);
    } else {
        tail.rotate_left(read.len());
        let n = tail.len() - read.len();
        tail[n..].copy_from_slice(read);
    }
}

impl AsyncRead for Draining {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(self.io()).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let this = &mut *self;
            push_tail(&mut this.tail, &buf.filled()[before..]);
        }
        polled
    }
}

impl AsyncWrite for Draining {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.io()).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.io()).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A half-close reaches sqld as the end of the request stream, which
        // it takes for a cancel while its response is unfinished.
        Poll::Ready(Ok(()))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.io()).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.as_ref().is_some_and(|io| io.is_write_vectored())
    }
}

impl Connection for Draining {
    fn connected(&self) -> Connected {
        match &self.io {
            Some(io) => io.connected(),
            None => Connected::new(),
        }
    }
}

impl Drop for Draining {
    fn drop(&mut self) {
        // Also the end of a response that was read in full: nothing to wait for.
        if &self.tail == LAST_CHUNK {
            return;
        }
        let Some(io) = self.io.take() else { return };
        // hyper drops connections on the client's runtime; without one,
        // there is nothing to drain on.
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let tail = self.tail;
        rt.spawn(drain(io, tail));
    }
}

/// Read until a chunked body's end, the peer's close, a quiet
/// [`DRAIN_IDLE`] (a response with a length that was read in full), or
/// [`DRAIN_TOTAL`]; then close.
async fn drain(mut io: Stream, mut tail: [u8; 5]) {
    let until = tokio::time::Instant::now() + DRAIN_TOTAL;
    let mut buf = vec![0u8; 8192];
    while tokio::time::Instant::now() < until {
        match tokio::time::timeout(DRAIN_IDLE, io.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                push_tail(&mut tail, &buf[..n]);
                if &tail == LAST_CHUNK {
                    return;
                }
            }
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_is_the_last_five_bytes_read() {
        let mut tail = [0; 5];
        push_tail(&mut tail, b"{\"type\":\"step_end\"}\n\r\n");
        assert_ne!(&tail, LAST_CHUNK);
        push_tail(&mut tail, b"0\r");
        push_tail(&mut tail, b"\n");
        push_tail(&mut tail, b"\r\n");
        assert_eq!(&tail, LAST_CHUNK);
        push_tail(&mut tail, b"xy0\r\n\r\n");
        assert_eq!(&tail, LAST_CHUNK);
        push_tail(&mut tail, b"");
        assert_eq!(&tail, LAST_CHUNK);
    }
}
