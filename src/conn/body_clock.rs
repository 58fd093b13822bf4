//! The request body's deadline (`request_body_timeout`, `min_request_body_rate`): Apache's
//! `RequestReadTimeout body=20,MinRate=500`.
//!
//! The route's `read_timeout` bounds each read of a body, not the body: a client sending one
//! byte just inside it keeps its connection, its place among `max_connections` and an upstream
//! connection for as long as it likes. So a client may keep sigproxy waiting for a body's bytes
//! `request_body_timeout + bytes received / min_request_body_rate` in all.
//!
//! Only the time sigproxy waits counts, not the body's whole time: while an upstream slow to
//! take the body has sigproxy stop reading (its buffers full), the client is the one waiting,
//! and a fast client must not find, once sigproxy catches up, that this time was charged to it.
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
//!   the deadline fails with [`SlowBody`]. A read that finds bytes waiting never fails, and
//!   adds nothing to the time waited: a body slowed down by sigproxy (an upstream slow to take
//!   it) is not the client's fault.
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

/// The current request's body begins, but its client waits for the upstream's `100 Continue`
/// before sending it: its deadline runs from the first byte it sends, or from the `100` (see
/// [`continued`]), whichever comes first (if not already running).
pub fn arm_after_continue() {
    let _ = CLOCK.try_with(|c| c.arm_held());
}

/// The upstream sent `100 Continue`: a held deadline (see [`arm_after_continue`]) runs.
pub fn continued() {
    let _ = CLOCK.try_with(|c| c.continued());
}

/// Whether the current request's body is awaited from its client right now: a read of it waits
/// for bytes the client has not sent. `false` outside a [`scope`], before the client may send
/// (`100 Continue`), or with no deadline (`min_request_body_rate: 0`).
pub fn waiting_for_client() -> bool {
    CLOCK.try_with(|c| c.waiting_for_client()).unwrap_or(false)
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
    /// While a body is awaited: what it has taken so far.
    armed: Option<Awaited>,
    /// The current body was cut (counted once).
    expired: bool,
}

/// A body awaited: the bytes it brought and the time sigproxy spent waiting for them.
#[derive(Debug, Default, Clone, Copy)]
struct Awaited {
    received: u64,
    /// The waits of reads that have ended.
    waited: Duration,
    /// Since when the read under way has waited for the client. A read given up while waiting
    /// and polled again later counts the time in between (in pingora's body loop: writing a
    /// response that began before the body ended), as the wall clock would.
    waiting_since: Option<Instant>,
    /// The client waits for `100 Continue` and has sent nothing: no deadline yet.
    held: bool,
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
    /// keeps what the first one counted).
    pub fn arm(&self) {
        self.start(false);
    }

    /// [`BodyClock::arm`], held until the client sends a byte or [`BodyClock::continued`].
    pub fn arm_held(&self) {
        self.start(true);
    }

    /// Stops the deadline: the body is in, or the request is over.
    pub fn disarm(&self) {
        *self.state() = State::default();
    }

    fn start(&self, held: bool) {
        if self.rate == 0 {
            return;
        }
        let mut state = self.state();
        if state.armed.is_none() {
            state.armed = Some(Awaited {
                held,
                ..Awaited::default()
            });
        }
    }

    /// The body may start now (`100 Continue` was relayed): a held deadline runs.
    pub fn continued(&self) {
        if let Some(awaited) = &mut self.state().armed {
            awaited.held = false;
        }
    }

    /// `bytes` more arrived from the client (a read ended); counted while a body is awaited.
    pub fn received(&self, bytes: usize) {
        if let Some(awaited) = &mut self.state().armed {
            awaited.received = awaited.received.saturating_add(bytes as u64);
            awaited.held &= bytes == 0;
            if let Some(since) = awaited.waiting_since.take() {
                awaited.waited = awaited.waited.saturating_add(since.elapsed());
            }
        }
    }

    /// See [`waiting_for_client`].
    pub fn waiting_for_client(&self) -> bool {
        let state = self.state();
        state
            .armed
            .as_ref()
            .is_some_and(|a| a.waiting_since.is_some())
    }

    /// A read waits for the client: when that wait must end, the time this body has already
    /// kept sigproxy waiting deducted; `None` when no body is awaited (or the deadline is
    /// beyond reckoning).
    pub fn waiting(&self) -> Option<Instant> {
        let mut state = self.state();
        let awaited = state.armed.as_mut().filter(|a| !a.held)?;
        let since = *awaited.waiting_since.get_or_insert_with(Instant::now);
        let earned = u128::from(awaited.received) * 1_000_000_000 / u128::from(self.rate);
        let earned = Duration::from_nanos(u64::try_from(earned).ok()?);
        let allowed = self.grace.checked_add(earned)?;
        since.checked_add(allowed.saturating_sub(awaited.waited))
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
        assert_eq!(clock.waiting(), None, "no body awaited");
        clock.received(10_000);
        clock.arm();
        let start = Instant::now();
        assert_eq!(clock.waiting(), Some(start + Duration::from_secs(20)));
        tokio::time::advance(Duration::from_secs(5)).await;
        clock.received(1000); // after 5 s of waiting: 15 s + 2 s left
        clock.arm(); // a second attempt keeps what the first counted
        clock.received(250); // found waiting: no wait
        let now = Instant::now();
        assert_eq!(clock.waiting(), Some(now + Duration::from_millis(17_500)));
        clock.disarm();
        assert_eq!(clock.waiting(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn only_the_time_spent_waiting_for_the_client_counts() {
        let clock = BodyClock::new(Duration::from_secs(1), 100, None);
        clock.arm();
        // A read waits 800 ms for 10 bytes (100 ms earned): 300 ms left.
        assert!(clock.waiting().is_some());
        tokio::time::advance(Duration::from_millis(800)).await;
        clock.received(10);
        // sigproxy reads nothing for a minute (an upstream slow to take the body): the client
        // is not the one making anybody wait.
        tokio::time::advance(Duration::from_secs(60)).await;
        clock.received(0);
        let now = Instant::now();
        assert_eq!(clock.waiting(), Some(now + Duration::from_millis(300)));
        // A wait polled again keeps its start; past the allowance, the deadline is now.
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(clock.waiting(), Some(now + Duration::from_millis(300)));
        clock.received(0);
        assert_eq!(clock.waiting(), Some(Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_held_deadline_runs_from_the_continue_or_the_first_byte() {
        let clock = BodyClock::new(Duration::from_secs(1), 100, None);
        clock.arm_held();
        assert_eq!(clock.waiting(), None, "waiting for 100 Continue");
        tokio::time::advance(Duration::from_secs(5)).await;
        clock.continued();
        assert_eq!(
            clock.waiting(),
            Some(Instant::now() + Duration::from_secs(1))
        );
        // A client that sends without waiting for the 100 starts it with its first byte.
        let eager = BodyClock::new(Duration::from_secs(1), 100, None);
        eager.arm_held();
        assert_eq!(eager.waiting(), None);
        tokio::time::advance(Duration::from_secs(5)).await;
        eager.received(1);
        let left = Duration::from_millis(1010);
        assert_eq!(eager.waiting(), Some(Instant::now() + left));
    }

    #[tokio::test]
    async fn a_rate_of_zero_is_no_deadline_and_overflow_is_none() {
        let off = BodyClock::new(Duration::from_secs(20), 0, None);
        off.arm();
        assert_eq!(off.waiting(), None);
        let slow = BodyClock::new(Duration::from_secs(1), 1, None);
        slow.arm();
        slow.received(usize::MAX);
        assert_eq!(slow.waiting(), None);
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
        assert!(clock.waiting().is_some());
        scope(clock.clone(), async { disarm() }).await;
        assert!(clock.waiting().is_none());
    }
}
