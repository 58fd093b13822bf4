//! Limits on every client connection of the traffic port, enforced before pingora's HTTP code.
//!
//! [`Guarded`] is the traffic listener's application: it wraps pingora's HTTP proxy app and
//! takes over the part of pingora's per-connection loop that reads request heads:
//! - `max_connections`: a connection beyond it takes the place of the connection idle longest
//!   (see [`idle`]: a keep-alive one between requests, or a new one that has sent nothing yet),
//!   else of the one dribbling a head (or TLS handshake) for longest, which is closed; when
//!   there is none, it gets a JSON `503` with `Retry-After` (over TLS once its handshake is
//!   done) and is closed, before anything of it is read;
//! - `request_header_timeout`: each request head must be complete within it (from the
//!   connection's accept for the first request, from its first byte for later ones), however
//!   fast each byte comes;
//! - `keepalive_timeout`: a connection idle that long between requests is closed;
//! - `client_write_timeout`: a connection whose client reads nothing of a response that long is
//!   closed (see [`stream`]);
//! - `request_body_timeout` and `min_request_body_rate`: while a request body is awaited, it
//!   must arrive by `start + request_body_timeout + bytes received / min_request_body_rate`,
//!   else the request gets a `408` and the connection is closed (see [`body_clock`]);
//! - `max_header_bytes`: no more of an unfinished head is taken in; such a head gets the JSON
//!   `431` and the connection is closed;
//! - every close lingers (see [`stream`]), so a client still sending a body reads the refusal;
//! - the drain on SIGTERM (see [`crate::drain`]): once it starts every response closes its
//!   connection, once the listener stops idle connections close, and the open connections are
//!   what the drain waits for.
//!
//! - with `tls`, the TLS handshake (see [`tls`]) is part of the first request head's time, and
//!   plain HTTP sent to the port gets a plain `400` saying to use HTTPS.
//!
//! Only HTTP/1 is served (over TLS or not; no h2, no h2c), so every connection goes through
//! this loop.

pub mod body_clock;
mod head;
mod idle;
pub mod stream;
mod tls;

use crate::config::ClientLimits;
use crate::drain::Drain;
use crate::error::ProxyError;
use crate::metrics::{metrics, Metrics};
use async_trait::async_trait;
use body_clock::BodyClock;
use bytes::BytesMut;
use head::Head;
use idle::IdleSet;
use pingora::apps::http_app::ServeHttp;
use pingora::apps::ServerApp;
use pingora::http::ResponseHeader;
use pingora::listeners::tls::Acceptor;
use pingora::prelude::ErrorType;
use pingora::protocols::http::ServerSession;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use std::future::Future;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;
use stream::{Downstream, Linger, Slot, LINGER};
use tokio::time::Instant;

/// How long a new connection waits for the place of the idle connection it evicted.
const EVICTION_WAIT: Duration = Duration::from_millis(500);
/// How often, meanwhile, it makes room again when the place it made went to another.
const EVICTION_RETRY: Duration = Duration::from_millis(50);

/// A head (or TLS handshake) under way this long may be cut to make room at `max_connections`
/// on the traffic port (see [`idle`]): a client's head normally arrives in one packet.
const SLOW_HEAD: Duration = Duration::from_secs(1);

/// How long a refused TLS client gets to finish its handshake and be told `503`.
const REFUSAL_HANDSHAKE: Duration = Duration::from_secs(1);

/// Refused connections linger only briefly: their client has sent a head at most.
const REFUSAL_LINGER: Linger = Linger {
    time: Duration::from_secs(1),
    bytes: 64 * 1024,
};

/// What serves the requests whose heads [`Guarded`] reads: a plain HTTP app (the admin port,
/// the credential endpoint), or sigproxy's own request loop (the traffic port's,
/// `proxy::Traffic`).
pub trait Serve: Send + Sync + 'static {
    /// Serves the request whose head (with any body bytes read along) is `head`, not parsed
    /// yet; the connection, when it can carry another request. `keepalive_secs` bounds each
    /// read of the head should the parser read more; `closing`: the drain has begun, and the
    /// response must close its connection.
    fn serve(
        self: &Arc<Self>,
        io: Stream,
        head: BytesMut,
        keepalive_secs: u64,
        closing: &ShutdownWatch,
    ) -> impl Future<Output = Option<Stream>> + Send;

    /// When the service stops.
    fn cleanup(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Why a head the parser refused is `400` (it is not echoed: it may hold a secret).
const MALFORMED: &str = "the request head is not valid HTTP/1.1: its request line (or a full \
     URL in it naming another host than Host), a header (control bytes, spaces in a name), or \
     its framing (differing Content-Lengths, a transfer coding other than chunked last)";

/// How [`parse_head`] ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A request to serve.
    Request,
    /// Nothing to serve: the client closed, or the connection failed.
    Closed,
    /// The parser refused the head; it got the JSON `400`.
    Malformed,
}

/// Parses on `http` the head [`Guarded`] read, all of it in `head` (should the parser want
/// more, each read is bounded by `keepalive_secs`). A head pingora's parser refuses (a
/// malformed request line, control bytes in a header, differing `Content-Length`s, a transfer
/// coding after `chunked`) gets the JSON `400`, and nothing is logged: pingora's own apps log
/// such a head with its bytes (an `Authorization` token included) at error level.
pub async fn parse_head(http: &mut ServerSession, head: BytesMut, keepalive_secs: u64) -> Parsed {
    http.set_keepalive(Some(keepalive_secs));
    http.set_pipelined_prefix(head);
    match http.read_request().await {
        Ok(true) => Parsed::Request,
        Ok(false) => Parsed::Closed,
        Err(e) if matches!(e.etype, ErrorType::InvalidHTTPHeader) => {
            let error = ProxyError::BadRequest(MALFORMED.into());
            let body = error.body(None);
            let resp = error.response_header(body.len());
            let _ = http.write_error_response(resp, body).await;
            Parsed::Malformed
        }
        Err(_) => Parsed::Closed,
    }
}

/// A plain HTTP app's requests, served as pingora's `ServeHttp` apps are, but for a head the
/// parser refuses (see [`parse_head`]).
impl<S: ServeHttp + Send + Sync + 'static> Serve for S {
    async fn serve(
        self: &Arc<Self>,
        io: Stream,
        head: BytesMut,
        keepalive_secs: u64,
        closing: &ShutdownWatch,
    ) -> Option<Stream> {
        let mut http = ServerSession::new_http1(io);
        if parse_head(&mut http, head, keepalive_secs).await != Parsed::Request {
            return None;
        }
        let keepalive = if *closing.borrow() { None } else { Some(60) };
        http.set_keepalive(keepalive);
        let (parts, body) = self.response(&mut http).await.into_parts();
        let header = ResponseHeader::from(parts);
        http.write_response_header(Box::new(header)).await.ok()?;
        if !body.is_empty() {
            http.write_response_body(body.into(), true).await.ok()?;
        }
        let reusable = http.finish().await.ok().flatten()?;
        Some(reusable.into_parts().0)
    }
}

/// The traffic listener's application: `inner` (what serves requests) behind the limits.
pub struct Guarded<A> {
    inner: Arc<A>,
    limits: ClientLimits,
    max_header_bytes: usize,
    /// Connections open, lingering ones included (shared with the drain, which waits for none).
    open: Arc<AtomicUsize>,
    /// True once the drain has started: pingora then answers with `Connection: close`.
    closing: ShutdownWatch,
    /// Refused connections still lingering (at most `max_connections`; beyond, closed at once).
    refusing: Arc<AtomicUsize>,
    /// Connections that may be closed to make room at `max_connections`.
    idle: Arc<IdleSet>,
    /// The traffic listener's (counted in the connection metrics); false for the admin one.
    traffic: bool,
    /// HTTPS: the handshake every connection begins with.
    tls: Option<Acceptor>,
}

impl<A> Guarded<A> {
    pub fn new(
        inner: A,
        limits: ClientLimits,
        max_header_bytes: usize,
        drain: &Drain,
    ) -> Guarded<A> {
        Guarded {
            inner: Arc::new(inner),
            limits,
            max_header_bytes,
            open: drain.connections(),
            closing: drain.closing(),
            refusing: Arc::default(),
            idle: Arc::new(IdleSet::new(SLOW_HEAD)),
            traffic: true,
            tls: None,
        }
    }

    /// Serves HTTPS: every connection begins with a TLS handshake through `acceptor`.
    pub fn with_tls(mut self, acceptor: Option<Acceptor>) -> Guarded<A> {
        self.tls = acceptor;
        self
    }

    /// The admin listener's application: the same limits, its own count of connections (the
    /// drain waits for none of them: a scraper's keep-alive connection would hold it up), no
    /// drain and no connection metrics.
    pub fn admin(inner: A, limits: ClientLimits, max_header_bytes: usize) -> Guarded<A> {
        Guarded {
            inner: Arc::new(inner),
            limits,
            max_header_bytes,
            open: Arc::default(),
            closing: tokio::sync::watch::channel(false).1,
            refusing: Arc::default(),
            // A probe always finds room: any begun head may go (after every idle connection).
            idle: Arc::new(IdleSet::new(Duration::ZERO)),
            traffic: false,
            tls: None,
        }
    }

    /// The connection metrics, for the traffic listener only.
    fn counted(&self) -> Option<&'static Metrics> {
        self.traffic.then(metrics)
    }

    /// A connection closed before its request head was complete, for `reason`.
    fn count_refused_head(&self, reason: &str) {
        if let Some(m) = self.counted() {
            m.request_heads_refused.with_label_values(&[reason]).inc();
        }
    }

    /// A place among `max_connections`: a free one, else that of the connection idle longest
    /// (told to close; its place comes back once it has). `None`: every connection is busy.
    async fn place(&self) -> Option<Slot> {
        let max = self.limits.max_connections;
        let gauge = self.counted().map(|m| m.connections.clone());
        let take = || Slot::take(&self.open, max, gauge.clone());
        if let Some(slot) = take() {
            return Some(slot);
        }
        // Another newcomer may take the place this one made, and a connection between its
        // accept and its first read cannot be evicted yet: so room is made again now and then
        // (at most every EVICTION_RETRY) until a place is free or EVICTION_WAIT is over.
        let deadline = Instant::now() + EVICTION_WAIT;
        let mut evict_at = Instant::now();
        while Instant::now() < deadline {
            if Instant::now() >= evict_at {
                self.idle.evict_longest();
                evict_at = Instant::now() + EVICTION_RETRY;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
            if let Some(slot) = take() {
                return Some(slot);
            }
        }
        None
    }

    /// Answers `503` to a connection over `max_connections` and closes it. Over TLS the answer
    /// follows a handshake bounded by [`REFUSAL_HANDSHAKE`] (a client reports a `503`
    /// clearly, and retries it; plain bytes on a TLS socket would be a protocol error), unless
    /// `max_connections` refusals are already under way: then the connection just closes.
    async fn refuse(&self, io: Stream) {
        if let Some(m) = self.counted() {
            m.connections_refused.inc();
        }
        let slot = Slot::take(&self.refusing, self.limits.max_connections, None);
        if slot.is_none() && self.tls.is_some() {
            return;
        }
        let linger = slot.is_some().then_some(REFUSAL_LINGER);
        let downstream =
            Downstream::new(io, slot, linger).with_write_timeout(REFUSAL_LINGER.time, None);
        let mut io: Stream = match &self.tls {
            None => Box::new(downstream),
            Some(acceptor) => {
                let by = Instant::now() + REFUSAL_HANDSHAKE;
                match tls::handshake(acceptor, downstream, by, None).await {
                    tls::Handshake::Done(io) => io,
                    _ => return,
                }
            }
        };
        let busy = ProxyError::Busy(format!(
            "sigproxy is serving as many connections as max_connections allows ({}); retry shortly",
            self.limits.max_connections
        ));
        head::answer(&mut io, &busy).await;
    }
}

/// Waits until the listener stops (the drain's second step, or pingora's shutdown).
async fn shutting_down(shutdown: &ShutdownWatch) {
    let mut watch = shutdown.clone();
    let _ = watch.wait_for(|stopping| *stopping).await;
}

#[async_trait]
impl<A: Serve> ServerApp for Guarded<A> {
    async fn process_new(self: &Arc<Self>, io: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        let accepted = Instant::now();
        let Some(slot) = self.place().await else {
            self.refuse(io).await;
            return None;
        };
        let header_time = self.limits.request_header_timeout;
        let counted = self.counted().map(|m| m.client_write_timeouts.clone());
        let body_clock = Arc::new(BodyClock::new(
            self.limits.request_body_timeout,
            self.limits.min_request_body_rate,
            self.counted().map(|m| m.request_body_timeouts.clone()),
        ));
        let downstream = Downstream::new(io, Some(slot), Some(LINGER))
            .with_write_timeout(self.limits.client_write_timeout, counted)
            .with_body_clock(body_clock.clone());
        let closer = downstream.closer();
        // The connection's place among those that may make room: idle until its first byte.
        let mut idle = self.idle.enter();
        let mut io: Stream = match &self.tls {
            None => Box::new(downstream),
            Some(acceptor) => {
                let by = accepted + header_time;
                match tls::handshake(acceptor, downstream, by, Some(&mut idle)).await {
                    tls::Handshake::Done(io) => io,
                    tls::Handshake::TimedOut => {
                        self.count_refused_head("timeout");
                        return None;
                    }
                    tls::Handshake::Evicted => {
                        // A handshake begun and left stalled, as a dribbled head is.
                        self.count_refused_head("evicted");
                        return None;
                    }
                    tls::Handshake::Failed => return None,
                }
            }
        };
        // The first head keeps the place (begun, over TLS) the connection has had so far.
        let mut idle = Some(idle);
        let mut first = true;
        let mut timer = Box::pin(tokio::time::sleep_until(accepted + header_time));
        loop {
            let (first_byte_by, head_by) = if first {
                (accepted + header_time, Some(accepted + header_time))
            } else {
                (Instant::now() + self.limits.keepalive_timeout, None)
            };
            let reading = head::read(
                &mut io,
                &mut timer,
                first_byte_by,
                header_time,
                head_by,
                self.max_header_bytes,
                Some(idle.take().unwrap_or_else(|| self.idle.enter())),
            );
            let head = if first {
                reading.await
            } else {
                // Between requests, a stopped listener closes the connection (as pingora
                // does); a request already arriving is served. During the drain's delay the
                // connection stays: its next response tells the client to close it.
                tokio::select! {
                    biased;
                    head = reading => head,
                    () = shutting_down(shutdown) => return None,
                }
            };
            let buf = match head {
                Head::Complete(buf) => buf,
                Head::Closed | Head::Idle => return None,
                Head::Evicted { begun } => {
                    // Nothing unread but part of a dribbled head: no need to linger, and the
                    // newcomer waits for the place.
                    if begun {
                        self.count_refused_head("evicted");
                    }
                    closer.close_at_once();
                    return None;
                }
                Head::TimedOut => {
                    self.count_refused_head("timeout");
                    return None;
                }
                Head::TooLarge => {
                    self.count_refused_head("too_large");
                    let limit = self.max_header_bytes;
                    head::answer(&mut io, &ProxyError::HeadersTooLarge { limit }).await;
                    return None;
                }
            };
            // The head is all here: it is parsed without reading. Should the parser read more
            // anyway, each read is bounded by `header_time`. The request's phases reach the
            // connection's body clock (see `body_clock`).
            let keepalive = header_time.as_secs().max(1);
            // Boxed once: the request's future is large (the forwarder's), and moving it by
            // value into the body clock's scope and then into this loop's state copied it twice.
            let served = Box::pin(self.inner.serve(io, buf, keepalive, &self.closing));
            let reused = body_clock::scope(body_clock.clone(), served).await;
            // Whatever became of the request, no body of it is awaited any more.
            body_clock.disarm();
            // Nothing else of the finished session carries over: sigproxy keeps no
            // per-connection context and does not pipeline.
            io = reused?;
            first = false;
        }
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await;
    }
}
