//! The request body's deadline (`request_body_timeout`, `min_request_body_rate`): Apache's
//! `RequestReadTimeout body=20,MinRate=500`.
//!
//! The route's `read_timeout` bounds each read of a body, not the body: a client sending one
//! byte just inside it keeps its connection, its place among `max_connections` and an upstream
//! connection for as long as it likes. So each body must be in by
//! `start + request_body_timeout + bytes received / min_request_body_rate`.
//!
//! The deadline holds only while sigproxy waits for the body's bytes, never while a complete
//! body waits for the upstream's answer (pingora reads the client's connection all that time,
//! to see it close: a Lambda taking a minute to answer must not be cut). One [`BodyClock`] per
//! connection, shared by two parties that each know half of it:
//! - the request phases know when a body begins and ends: the forwarder around its reading of
//!   a body to be signed (`proxy::body`), pingora's proxy loop (pass-through and streamed
//!   bodies) from `upstream_request_filter`, just before the body starts to flow, to
//!   `request_body_filter`'s end of stream. They [`arm`] and [`disarm`] the clock of the
//!   connection they run on, which [`scope`] (around each request, in [`super::Guarded`])
//!   makes theirs: pingora runs a request's phases and its reads of the body in the
//!   connection's task (`tokio::try_join!`, no task spawned);
//! - the connection ([`super::stream::Downstream`]) sees the bytes: while the clock is armed
//!   it counts every byte read ([`BodyClock::received`]: chunked framing and, over TLS, record
//!   overhead included — what the client spends), and a read that waits for the client past
//!   the deadline fails with [`SlowBody`]. A read that finds bytes waiting never fails: a body
//!   slowed down by sigproxy (an upstream slow to take it) is not the client's fault.
//!
//! The request then gets a JSON `408` (`body_too_slow`) if nothing of its response was sent,
//! the upstream request is abandoned with its body cut short, the connection closes, and
//! `sigproxy_request_body_timeouts_total` counts it.

use crate::error::SlowBody;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

tokio::task_local! {
    /// The clock of the connection the current request arrived on.
    static CLOCK: Arc<BodyClock>;
}

/// Runs `request` (one request's phases) with `clock` as the clock [`arm`] and [`disarm`] reach.
pub async fn scope<F: std::future::Future>(clock: Arc<BodyClock>, request: F) -> F::Output {
    CLOCK.scope(clock, request).await
}

/// The current request's body begins: its deadline runs from now (if not already running).
/// Outside a [`scope`] (the admin port), nothing happens.
pub fn arm() {
    let _ = CLOCK.try_with(|c| c.arm());
}

/// The current request's body is all in: no more deadline.
pub fn disarm() {
    let _ = CLOCK.try_with(|c| c.disarm());
}

/// Keeps the current request's clock armed until dropped: for a body read from start to end
/// in one place, whichever way that ends.
pub struct Awaiting(());

/// [`arm`]s the clock until the returned guard is dropped.
pub fn awaiting() -> Awaiting {
    arm();
    Awaiting(())
}

impl Drop for Awaiting {
    fn drop(&mut self) {
        disarm();
    }
}

/// One connection's body deadline (see the module doc).
#[derive(Debug)]
pub struct BodyClock {
    /// `request_body_timeout`.
    grace: Duration,
    /// `min_request_body_rate`; 0: no deadline.
    rate: u64,
    state: Mutex<State>,
    /// Counts the bodies cut (the traffic port's).
    counted: Option<prometheus::IntCounter>,
}

#[derive(Debug, Default)]
struct State {
    /// While a body is awaited: when it began and the bytes received since.
    armed: Option<(Instant, u64)>,
    /// The current body was cut (counted once).
    expired: bool,
}

impl BodyClock {
    pub fn new(grace: Duration, rate: u64, counted: Option<prometheus::IntCounter>) -> Self {
        BodyClock {
            grace,
            rate,
            state: Mutex::default(),
            counted,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Nothing here can panic while holding the lock; a poisoned one is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts the deadline, unless a body is already under way (a retried upstream attempt
    /// keeps the first start).
    pub fn arm(&self) {
        if self.rate == 0 {
            return;
        }
        let mut state = self.state();
        if state.armed.is_none() {
            state.armed = Some((Instant::now(), 0));
        }
    }

    /// Stops the deadline: the body is in, or the request is over.
    pub fn disarm(&self) {
        *self.state() = State::default();
    }

    /// `bytes` more arrived from the client; counted while a body is awaited.
    pub fn received(&self, bytes: usize) {
        if let Some((_, received)) = &mut self.state().armed {
            *received = received.saturating_add(bytes as u64);
        }
    }

    /// When the body awaited must have arrived, as far as it has come; `None` when no body is
    /// awaited (or the deadline is beyond reckoning).
    pub fn deadline(&self) -> Option<Instant> {
        let (started, received) = self.state().armed?;
        let earned = u128::from(received) * 1_000_000_000 / u128::from(self.rate);
        let earned = Duration::from_nanos(u64::try_from(earned).ok()?);
        started.checked_add(self.grace)?.checked_add(earned)
    }

    /// A read waited for the client past the deadline: the error it fails with. Counted and
    /// logged once per body.
    pub fn expire(&self) -> io::Error {
        let first = !std::mem::replace(&mut self.state().expired, true);
        if first {
            if let Some(c) = &self.counted {
                c.inc();
            }
            tracing::debug!(
                timeout_s = self.grace.as_secs_f64(),
                rate = self.rate,
                "cutting a request body that arrives too slowly (request_body_timeout, min_request_body_rate)"
            );
        }
        let slow = SlowBody {
            grace: self.grace,
            rate: self.rate,
        };
        io::Error::new(io::ErrorKind::TimedOut, slow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn each_byte_buys_one_rate_th_of_a_second_after_the_grace() {
        let clock = BodyClock::new(Duration::from_secs(20), 500, None);
        assert_eq!(clock.deadline(), None, "no body awaited");
        clock.received(10_000);
        clock.arm();
        let start = Instant::now();
        assert_eq!(clock.deadline(), Some(start + Duration::from_secs(20)));
        clock.received(1000);
        tokio::time::advance(Duration::from_secs(5)).await;
        clock.arm(); // a second attempt keeps the first start
        clock.received(250);
        assert_eq!(
            clock.deadline(),
            Some(start + Duration::from_millis(22_500))
        );
        clock.disarm();
        assert_eq!(clock.deadline(), None);
    }

    #[tokio::test]
    async fn a_rate_of_zero_is_no_deadline_and_overflow_is_none() {
        let off = BodyClock::new(Duration::from_secs(20), 0, None);
        off.arm();
        assert_eq!(off.deadline(), None);
        let slow = BodyClock::new(Duration::from_secs(1), 1, None);
        slow.arm();
        slow.received(usize::MAX);
        assert_eq!(slow.deadline(), None);
    }

    #[tokio::test]
    async fn expiry_is_counted_once_per_body() {
        let counter = prometheus::IntCounter::new("t", "t").unwrap();
        let clock = BodyClock::new(Duration::from_secs(1), 100, Some(counter.clone()));
        clock.arm();
        let e = clock.expire();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(e.get_ref().unwrap().downcast_ref::<SlowBody>().is_some());
        clock.expire();
        assert_eq!(counter.get(), 1);
        clock.disarm();
        clock.arm();
        clock.expire();
        assert_eq!(counter.get(), 2);
    }

    #[tokio::test]
    async fn arm_and_disarm_reach_the_scoped_clock_only() {
        arm(); // outside any scope: nothing
        let clock = Arc::new(BodyClock::new(Duration::from_secs(1), 100, None));
        scope(clock.clone(), async { arm() }).await;
        assert!(clock.deadline().is_some());
        scope(clock.clone(), async { disarm() }).await;
        assert!(clock.deadline().is_none());
    }
}
