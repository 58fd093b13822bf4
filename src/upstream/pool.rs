//! The upstream connections of the requests sigproxy sends itself: new ones opened by pingora's
//! HTTP/1 connector (TCP, TLS, timeouts), idle ones kept here until a request for the same peer
//! takes them.
//!
//! pingora's own pool cost about a tenth of a small request's instructions (callgrind: ~10 k of
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
        let key = peer.reuse_hash();
        while let Some(mut stream) = self.take(key) {
            if quiet(&mut stream) {
                return Ok((HttpSession::H1(Http1::new_with_options(stream, peer)), true));
            }
        }
        // A new connection: pingora's future for it is large, so it is boxed rather than kept
        // in every request's future.
        let (fresh, reused) = Box::pin(self.connector.get_http_session(peer)).await?;
        Ok((HttpSession::H1(fresh), reused))
    }

    /// Pools `upstream` again when its answer was read to the end and both sides keep it
    /// alive; closes it otherwise.
    pub async fn release(&self, upstream: HttpSession, peer: &HttpPeer) {
        let HttpSession::H1(mut h1) = upstream else {
            return;
        };
        h1.respect_keepalive();
        let Some(mut stream) = h1.reuse().await else {
            return;
        };
        let idle = peer.options.idle_timeout.unwrap_or(Duration::ZERO);
        // Bytes the answer did not account for, or a close: not to be used again.
        if idle.is_zero() || !quiet(&mut stream) {
            return;
        }
        // `upstream_idle_timeout: 1000years` is a valid setting: kept for as long as an
        // `Instant` goes.
        let now = Instant::now();
        let until = now.checked_add(idle).unwrap_or(now + LONGEST);
        self.park(peer.reuse_hash(), stream, until);
    }

    /// The newest idle connection for `peer` that has not expired; expired ones met on the
    /// way are closed.
    fn take(&self, peer: u64) -> Option<Stream> {
        let now = Instant::now();
        let mut idle = lock(&self.idle);
        while let Some(at) = idle.parked.iter().rposition(|p| p.peer == peer) {
            let parked = idle.parked.remove(at)?;
            if parked.until > now {
                return Some(parked.stream);
            }
        }
        None
    }

    fn park(&self, peer: u64, stream: Stream, until: Instant) {
        let mut idle = lock(&self.idle);
        if idle.capacity == 0 {
            return;
        }
        if idle.parked.len() >= idle.capacity {
            idle.parked.pop_front();
        }
        idle.parked.push_back(Parked {
            peer,
            stream,
            until,
        });
        if !idle.sweeping {
            idle.sweeping = true;
            tokio::spawn(sweep(Arc::downgrade(&self.idle)));
        }
    }

    /// How many idle connections are kept (for tests).
    #[cfg(test)]
    fn idle_count(&self) -> usize {
        lock(&self.idle).parked.len()
    }
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

/// Closes the pool's expired connections and those the upstream closed or wrote to, once a
/// second, until none is kept (the next release starts it again) or the pool is gone.
async fn sweep(pool: Weak<Mutex<Idle>>) {
    // Should the task end another way (its runtime shutting down), the next release starts one.
    struct Running(Weak<Mutex<Idle>>);
    impl Drop for Running {
        fn drop(&mut self) {
            if let Some(idle) = self.0.upgrade() {
                lock(&idle).sweeping = false;
            }
        }
    }
    let mut running = Running(pool.clone());
    let mut every = tokio::time::interval(SWEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        every.tick().await;
        let Some(idle) = pool.upgrade() else {
            return;
        };
        let now = Instant::now();
        let mut idle = lock(&idle);
        idle.parked
            .retain_mut(|p| p.until > now && quiet(&mut p.stream));
        if idle.parked.is_empty() {
            idle.sweeping = false;
            running.0 = Weak::new();
            return;
        }
    }
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
