//! The client connection as pingora sees it: the accepted stream, wrapped so that it counts
//! towards `max_connections` until it is really closed, and so that closing it lingers.
//!
//! Closing a TCP connection whose receive queue still holds bytes makes the kernel send a reset
//! instead of a FIN, and a client still sending its body (rclone's 70 MiB PUT after an early
//! `413`) then fails its write with "broken pipe" or "connection reset" before it reads the
//! answer. So when the stream is dropped while the client may still be sending, the write half
//! is shut down (FIN: the answer is complete) and whatever arrives is read and thrown away for
//! at most [`Linger::time`] and [`Linger::bytes`] before the socket is closed — the lingering
//! close of Apache and nginx.
//!
//! A client that reads nothing of its answer (or a byte now and then) would hold its place and
//! the upstream response for ever: a write that makes no progress for `client_write_timeout`
//! fails here, whoever writes (pingora's response, an early refusal, the TLS layer above), and
//! the connection closes at once (with [`Stalled`], which [`crate::error`] recognises).
//!
//! A client sending a body too slowly is cut the same way, on reads: see [`super::body_clock`].

use super::body_clock::BodyClock;
use crate::error::Stalled;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::{SslDigest, TlsRef};
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::time::{sleep_until, timeout_at, Instant, Sleep};

/// How long, and how many bytes, a closing connection reads and discards at most.
#[derive(Debug, Clone, Copy)]
pub struct Linger {
    pub time: Duration,
    pub bytes: usize,
}

/// After a response: long enough for a client to read it, however much body it had in flight.
/// (rclone, over loopback, sends 4 to 8 MiB more of a 70 MiB PUT before it has read an early
/// `413` and closes.)
pub const LINGER: Linger = Linger {
    time: Duration::from_secs(2),
    bytes: 16 * 1024 * 1024,
};

/// One place in a counted set of connections (`max_connections`); given back when dropped.
#[derive(Debug)]
pub struct Slot {
    count: Arc<AtomicUsize>,
    gauge: Option<prometheus::IntGauge>,
}

impl Slot {
    /// A place if fewer than `max` are taken.
    pub fn take(
        count: &Arc<AtomicUsize>,
        max: usize,
        gauge: Option<prometheus::IntGauge>,
    ) -> Option<Slot> {
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        if let Some(g) = &gauge {
            g.inc();
        }
        Some(Slot {
            count: count.clone(),
            gauge,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
        if let Some(g) = &self.gauge {
            g.dec();
        }
    }
}

/// A client connection: the accepted stream, its [`Slot`], and how to close it.
#[derive(Debug)]
pub struct Downstream {
    /// Always present until dropped (taken by the lingering close).
    io: Option<Stream>,
    /// Held until the socket is closed, lingering included.
    slot: Option<Slot>,
    /// `None`: close at once.
    linger: Option<Linger>,
    /// The client closed its side, or the connection broke: closing cannot reset anything.
    finished: bool,
    /// Set through a [`Closer`]: close without lingering.
    at_once: Arc<AtomicBool>,
    /// `client_write_timeout`, and what counts a write given up.
    write_limit: Option<(Duration, Option<prometheus::IntCounter>)>,
    /// Runs while a write waits for the client (reset, not reallocated, at each stall).
    stall: Option<Pin<Box<Sleep>>>,
    stalled: bool,
    /// The deadline of the request body being received, if any (see [`super::body_clock`]).
    body_clock: Option<Arc<BodyClock>>,
    /// Runs while a read waits for a body's bytes, until the body's deadline.
    body_wait: Option<Pin<Box<Sleep>>>,
}

/// Tells a [`Downstream`] to close at once when dropped, wherever it is by then (inside a TLS
/// stream, say): for a connection with nothing unread, an idle keep-alive one.
#[derive(Debug, Clone)]
pub struct Closer(Arc<AtomicBool>);

impl Closer {
    pub fn close_at_once(&self) {
        self.0.store(true, Ordering::Release);
    }
}

impl Downstream {
    pub fn new(io: Stream, slot: Option<Slot>, linger: Option<Linger>) -> Downstream {
        Downstream {
            io: Some(io),
            slot,
            linger,
            finished: false,
            at_once: Arc::default(),
            write_limit: None,
            stall: None,
            stalled: false,
            body_clock: None,
            body_wait: None,
        }
    }

    /// Fails a read that waits for a request body's bytes past `clock`'s deadline.
    pub fn with_body_clock(mut self, clock: Arc<BodyClock>) -> Downstream {
        self.body_clock = Some(clock);
        self
    }

    /// A read is waiting for the client: fine unless a body is awaited and its deadline is
    /// past (then the read fails, and the connection closes).
    fn body_wait(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(clock) = &self.body_clock else {
            return Poll::Pending;
        };
        let Some(deadline) = clock.waiting() else {
            return Poll::Pending;
        };
        if timer_at(&mut self.body_wait, deadline)
            .as_mut()
            .poll(cx)
            .is_pending()
        {
            return Poll::Pending;
        }
        // The close lingers: the client, still sending, reads its `408`.
        Poll::Ready(Err(clock.expire()))
    }

    /// Fails a write that makes no progress for `limit`; `counted` counts each one.
    pub fn with_write_timeout(
        mut self,
        limit: Duration,
        counted: Option<prometheus::IntCounter>,
    ) -> Downstream {
        self.write_limit = Some((limit, counted));
        self
    }

    /// Passes a write's outcome on, unless it has waited for the client longer than allowed.
    fn progress<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        let Poll::Pending = polled else {
            self.stalled = false;
            if let Poll::Ready(Err(_)) = polled {
                self.finished = true;
            }
            return polled;
        };
        let Some((limit, counted)) = &self.write_limit else {
            return Poll::Pending;
        };
        let limit = *limit;
        let stall = match (self.stalled, &mut self.stall) {
            (true, Some(stall)) => stall,
            _ => timer_at(&mut self.stall, Instant::now() + limit),
        };
        self.stalled = true;
        if stall.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        if let Some(c) = counted {
            c.inc();
        }
        tracing::debug!(
            timeout_s = limit.as_secs_f64(),
            "closing a connection whose client reads nothing of its response (client_write_timeout)"
        );
        // Nothing more can reach the client: close without lingering, give the place back.
        self.stalled = false;
        self.at_once.store(true, Ordering::Release);
        Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, Stalled(limit))))
    }

    /// What makes this connection close without lingering (and give its place back at once).
    pub fn closer(&self) -> Closer {
        Closer(self.at_once.clone())
    }

    fn io(&mut self) -> &mut Stream {
        self.io.as_mut().expect("present until dropped")
    }

    fn io_ref(&self) -> &Stream {
        self.io.as_ref().expect("present until dropped")
    }
}

impl Drop for Downstream {
    fn drop(&mut self) {
        let (Some(io), Some(linger)) = (self.io.take(), self.linger) else {
            return;
        };
        if self.finished || self.at_once.load(Ordering::Acquire) {
            return;
        }
        // No runtime (the process is exiting): the socket just closes.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(linger_close(io, linger, self.slot.take()));
        }
    }
}

/// FIN, then read and discard until the client closes, or `linger` runs out.
async fn linger_close(mut io: Stream, linger: Linger, _slot: Option<Slot>) {
    let deadline = Instant::now() + linger.time;
    if timeout_at(deadline, Shutdown::shutdown(io.as_mut()))
        .await
        .is_err()
    {
        return;
    }
    let mut buf = [0u8; 16 * 1024];
    let mut left = linger.bytes;
    while left > 0 {
        match timeout_at(deadline, io.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => left = left.saturating_sub(n),
            _ => return,
        }
    }
}

/// The timer in `slot`, set to fire at `at`: reset, not reallocated, when there is one.
fn timer_at(slot: &mut Option<Pin<Box<Sleep>>>, at: Instant) -> &mut Pin<Box<Sleep>> {
    match slot {
        Some(timer) => {
            if timer.deadline() != at {
                timer.as_mut().reset(at);
            }
            timer
        }
        None => slot.insert(Box::pin(sleep_until(at))),
    }
}

impl AsyncRead for Downstream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let asked = buf.remaining() > 0;
        let polled = Pin::new(self.io()).poll_read(cx, buf);
        match &polled {
            Poll::Ready(Ok(())) if asked && buf.filled().len() == before => self.finished = true,
            Poll::Ready(Ok(())) => {
                if let Some(clock) = &self.body_clock {
                    clock.received(buf.filled().len() - before);
                }
            }
            Poll::Ready(Err(_)) => self.finished = true,
            Poll::Pending => return self.body_wait(cx),
        }
        polled
    }
}

impl AsyncWrite for Downstream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(self.io()).poll_write(cx, buf);
        self.progress(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(self.io()).poll_write_vectored(cx, bufs);
        self.progress(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io_ref().is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(self.io()).poll_flush(cx);
        self.progress(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.io()).poll_shutdown(cx)
    }
}

#[async_trait::async_trait]
impl Shutdown for Downstream {
    async fn shutdown(&mut self) {
        Shutdown::shutdown(self.io().as_mut()).await
    }
}

impl UniqueID for Downstream {
    fn id(&self) -> UniqueIDType {
        self.io_ref().id()
    }
}

impl Ssl for Downstream {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.io_ref().get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.io_ref().get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.io_ref().selected_alpn_proto()
    }
}

impl GetTimingDigest for Downstream {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.io_ref().get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.io_ref().get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.io_ref().get_write_pending_time()
    }
}

impl GetProxyDigest for Downstream {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.io_ref().get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.io().set_proxy_digest(digest)
    }
}

impl GetSocketDigest for Downstream {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.io_ref().get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.io().set_socket_digest(digest)
    }
}

#[async_trait::async_trait]
impl Peek for Downstream {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.io().try_peek(buf).await
    }
}
