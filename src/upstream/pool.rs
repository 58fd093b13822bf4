//! The upstream connections of the requests sigproxy sends itself: new ones opened by pingora's
//! HTTP/1 connector (TCP, TLS, timeouts), idle ones kept here until a request for the same peer
//! takes them.
//!
//! pingora's own pool cost about a tenth of a small request's instructions (callgrind: ~12 k of
//! ~111 k): each release locked the connection behind a fresh `Arc<Mutex>`, put it in an LRU and
//! spawned a task to watch it; each take asked the kernel for the socket's peer (`getpeername`).
//! Here an idle connection is an entry in one short list. Whether it is still usable is read from
//! the readiness its runtime already tracks (a read is tried only when something arrived), and
//! one task per pool, running while anything is kept, closes what expired or the upstream closed.
//!
//! Which connections may serve which requests is pingora's peer hash: it covers address, TLS
//! settings and the peer's group (sigproxy's route and client, see
//! [`Route::peer`](crate::route::Route::peer)). The caller decides whether a connection may be
//! pooled at all (`proxy::exchange`'s `Reuse`).

use pingora::connectors::http::v1::Connector;
use pingora::connectors::ConnectorOptions;
use pingora::prelude::*;
use pingora::protocols::http::client::HttpSession;
use pingora::protocols::http::v1::client::HttpSession as Http1;
use pingora::protocols::Stream;
use pingora::upstreams::peer::{HttpPeer, Peer};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

/// How often the pool's task looks for connections to close.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// How long an idle connection is kept at most (when its idle timeout is longer than an
/// `Instant` can count from now).
const LONGEST: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// HTTP/1 connections to upstreams, pooled per peer.
pub struct Pool {
    connector: Connector,
    idle: Arc<Mutex<Idle>>,
}

/// The idle connections, oldest first.
struct Idle {
    parked: VecDeque<Parked>,
    /// At most this many are kept; a new one pushes out the oldest.
    capacity: usize,
    /// Whether the task that closes expired connections runs.
    sweeping: bool,
}

struct Parked {
    /// The peer's reuse hash.
    peer: u64,
    stream: Stream,
    /// When it was released.
    since: Instant,
    /// Not handed out from then on (the peer's idle timeout after it was released).
    until: Instant,
}

impl Pool {
    pub fn new(options: ConnectorOptions) -> Pool {
        let capacity = options.keepalive_pool_size;
        Pool {
            connector: Connector::new(Some(options)),
            idle: Arc::new(Mutex::new(Idle {
                parked: VecDeque::new(),
                capacity,
                sweeping: false,
            })),
        }
    }

    /// A connection to `peer`, and whether it came from the pool.
    pub async fn session(&self, peer: &HttpPeer) -> Result<(HttpSession, bool)> {
        let (key, idle) = (peer.reuse_hash(), idle_timeout(peer));
        while let Some(mut stream) = self.take(key, idle) {
            if quiet(&mut stream) {
                return Ok((HttpSession::H1(Http1::new_with_options(stream, peer)), true));
            }
        }
        Ok((self.fresh(peer).await?, false))
    }

    /// A new connection to `peer`, past the pool: when none is kept, and for a request sent
    /// again because a pooled connection turned out closed (the others kept with it may be
    /// too: an upstream restart). pingora's future for it is large, so it is boxed rather than
    /// kept in every request's future. (pingora's own pool, which it looks in first, is always
    /// empty: nothing is released to it.)
    pub async fn fresh(&self, peer: &HttpPeer) -> Result<HttpSession> {
        let (fresh, _) = Box::pin(self.connector.get_http_session(peer)).await?;
        Ok(HttpSession::H1(fresh))
    }

    /// Pools `upstream` again when its answer was read to the end and both sides keep it
    /// alive; closes it otherwise.
    pub async fn release(&self, upstream: HttpSession, peer: &HttpPeer) {
        let HttpSession::H1(mut h1) = upstream else {
            return;
        };
        h1.respect_keepalive();
        let configured = idle_timeout(peer);
        let idle = h1
            .resp_header()
            .and_then(keeps)
            .map_or(configured, |k| k.min(configured));
        let Some(mut stream) = h1.reuse().await else {
            return;
        };
        // Bytes the answer did not account for, or a close: not to be used again.
        if idle.is_zero() || !quiet(&mut stream) {
            return;
        }
        // `upstream_idle_timeout: 1000years` is a valid setting: kept for as long as an
        // `Instant` goes.
        let since = Instant::now();
        let until = since.checked_add(idle).unwrap_or(since + LONGEST);
        let parked = Parked {
            peer: peer.reuse_hash(),
            stream,
            since,
            until,
        };
        if self.park(parked) {
            // Started outside the lock: should the runtime be shutting down, the task (and
            // its guard, which takes the lock) is dropped at once.
            tokio::spawn(sweep(Sweeping(Arc::downgrade(&self.idle))));
        }
    }

    /// The newest idle connection for `peer` that has been idle for less than `idle` (the
    /// peer's idle timeout now: a reload may have shortened it) and than the timeout it was
    /// parked with; the expired ones met on the way are closed.
    fn take(&self, peer: u64, idle: Duration) -> Option<Stream> {
        let now = Instant::now();
        let mut pool = lock(&self.idle);
        while let Some(at) = pool.parked.iter().rposition(|p| p.peer == peer) {
            let parked = pool.parked.remove(at)?;
            if parked.until > now && now.duration_since(parked.since) < idle {
                return Some(parked.stream);
            }
        }
        None
    }

    /// Keeps `parked`, pushing out the oldest when full; true when the sweeping task must be
    /// started.
    fn park(&self, parked: Parked) -> bool {
        let mut pool = lock(&self.idle);
        if pool.capacity == 0 {
            return false;
        }
        if pool.parked.len() >= pool.capacity {
            pool.parked.pop_front();
        }
        pool.parked.push_back(parked);
        !std::mem::replace(&mut pool.sweeping, true)
    }

    /// How many idle connections are kept (for tests).
    #[cfg(test)]
    fn idle_count(&self) -> usize {
        lock(&self.idle).parked.len()
    }
}

/// How long the upstream's answer says it keeps an idle connection (`Keep-Alive: timeout=N`,
/// what Node.js, Apache and nginx with `keepalive_timeout A B` send), less a margin for the
/// next request to reach it before it closes: N − 1 s, at least N / 2. Kept any longer, a
/// request meets the upstream's close, and one that may not be sent again (a `POST`) fails.
fn keeps(answer: &ResponseHeader) -> Option<Duration> {
    const KEEP_ALIVE: http::HeaderName = http::HeaderName::from_static("keep-alive");
    // Every line of it (one list, RFC 9110 §5.3), and the shortest timeout said.
    let lines = answer.headers.get_all(KEEP_ALIVE).into_iter();
    let params = lines
        .filter_map(|line| line.to_str().ok())
        .flat_map(|l| l.split(','));
    let secs: u64 = params
        .filter_map(|param| {
            let (name, secs) = param.split_once('=')?;
            let timeout = name.trim().eq_ignore_ascii_case("timeout");
            timeout.then(|| secs.trim().parse().ok())?
        })
        .min()?;
    let said = Duration::from_secs(secs);
    Some(said.saturating_sub(Duration::from_secs(1)).max(said / 2))
}

fn idle_timeout(peer: &HttpPeer) -> Duration {
    peer.options.idle_timeout.unwrap_or(Duration::ZERO)
}

fn lock(idle: &Mutex<Idle>) -> MutexGuard<'_, Idle> {
    idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether nothing has arrived on an idle connection: no bytes (an upstream never speaks first
/// on an idle HTTP/1 connection, so any would belong to no request) and no close. The read is
/// tried once, without waiting; it costs a system call only when the runtime saw the socket
/// become readable. TLS records that carry no data (a session ticket) are taken in by the read.
fn quiet(stream: &mut Stream) -> bool {
    let mut byte = [0u8; 1];
    let read = pin!(tokio::task::unconstrained(stream.read(&mut byte)));
    let mut cx = Context::from_waker(Waker::noop());
    matches!(read.poll(&mut cx), Poll::Pending)
}

/// The pool's claim on its sweeping task: whichever way the task ends (its pool empty, or its
/// runtime shutting down before or after it began), the next release starts another.
struct Sweeping(Weak<Mutex<Idle>>);

impl Drop for Sweeping {
    fn drop(&mut self) {
        if let Some(idle) = self.0.upgrade() {
            lock(&idle).sweeping = false;
        }
    }
}

/// Closes the pool's expired connections and those the upstream closed or wrote to, once a
/// second, until none is kept or the pool is gone.
async fn sweep(mut claim: Sweeping) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        every.tick().await;
        let Some(idle) = claim.0.upgrade() else {
            return;
        };
        let now = Instant::now();
        let mut pool = lock(&idle);
        pool.parked
            .retain_mut(|p| p.until > now && quiet(&mut p.stream));
        if pool.parked.is_empty() {
            // Ends here, under the lock: a release from now on starts a new task.
            pool.sweeping = false;
            claim.0 = Weak::new();
            return;
        }
    }
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
