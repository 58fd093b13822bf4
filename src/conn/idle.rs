//! Connections that may be closed to make room at `max_connections`, in the order they go:
//! a newcomer takes the place of one of them instead of being refused, so clients that merely
//! hold connections open, or dribble heads, cannot lock others out.
//!
//! First the idle ones, longest-idle first: a connection is idle from its accept, or the end
//! of a response, until the first byte of its next request (a new connection that sends
//! nothing is no better than an idle keep-alive one; nginx closes both to make room). Then,
//! when none is idle, the connections whose head (or TLS handshake) has begun but is not
//! complete, the one begun longest ago first, once it has been under way for the set's
//! `slow_head` at least: a client's head normally arrives in one packet, so only a dribbled
//! one is ever cut (a legitimate client caught mid-head is the rare loser; before, every
//! newcomer was refused while heads were dribbled at the cap).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The evictable connections of one listener.
#[derive(Debug)]
pub struct IdleSet {
    waiting: Mutex<Waiting>,
    /// How long a head must have been under way before it may be cut.
    slow_head: Duration,
}

#[derive(Debug, Default)]
struct Waiting {
    next: u64,
    /// Keyed by when each became idle (an increasing number): the first is the oldest.
    idle: BTreeMap<u64, Arc<Notify>>,
    /// Keyed by when each head began (and the number, to tell apart equal instants).
    begun: BTreeMap<(Instant, u64), Arc<Notify>>,
}

impl IdleSet {
    /// A set whose begun heads may be cut once under way for `slow_head`.
    pub fn new(slow_head: Duration) -> IdleSet {
        IdleSet {
            waiting: Mutex::default(),
            slow_head,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a connection as idle until the returned [`Idle`] is dropped.
    pub fn enter(self: &Arc<Self>) -> Idle {
        let notify = Arc::new(Notify::new());
        let mut waiting = self.lock();
        let id = waiting.next;
        waiting.next += 1;
        waiting.idle.insert(id, notify.clone());
        Idle {
            set: self.clone(),
            id,
            begun: None,
            notify,
        }
    }

    /// Tells the connection idle longest (else the slow head begun longest ago) to close;
    /// false if there is none.
    pub fn evict_longest(&self) -> bool {
        let mut waiting = self.lock();
        let oldest = match waiting.idle.pop_first() {
            Some((_, notify)) => Some(notify),
            None => match waiting.begun.first_key_value() {
                Some((&(began, _), _)) if began + self.slow_head <= Instant::now() => {
                    waiting.begun.pop_first().map(|(_, notify)| notify)
                }
                _ => None,
            },
        };
        drop(waiting);
        match oldest {
            Some(notify) => {
                // Kept as a permit if the connection is not waiting on it right now.
                notify.notify_one();
                true
            }
            None => false,
        }
    }
}

/// One connection's place in the [`IdleSet`].
#[derive(Debug)]
pub struct Idle {
    set: Arc<IdleSet>,
    id: u64,
    /// When its head began; `None` while idle.
    begun: Option<Instant>,
    notify: Arc<Notify>,
}

impl Idle {
    /// Completes once the connection is to close to make room.
    pub async fn evicted(&self) {
        self.notify.notified().await
    }

    /// The connection's head (or handshake) has begun: it is no longer idle, and goes after
    /// every idle one. Nothing if it had begun already, or was told to close already.
    pub fn begin(&mut self) {
        if self.begun.is_some() {
            return;
        }
        let now = Instant::now();
        self.begun = Some(now);
        let mut waiting = self.set.lock();
        if let Some(notify) = waiting.idle.remove(&self.id) {
            waiting.begun.insert((now, self.id), notify);
        }
    }
}

impl Drop for Idle {
    fn drop(&mut self) {
        let mut waiting = self.set.lock();
        match self.begun {
            None => waiting.idle.remove(&self.id),
            Some(began) => waiting.begun.remove(&(began, self.id)),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOON: Duration = Duration::from_millis(50);

    #[tokio::test]
    async fn the_longest_idle_is_evicted_and_a_busy_one_never() {
        let set = Arc::new(IdleSet::new(Duration::from_secs(3600)));
        let first = set.enter();
        let second = set.enter();
        let third = set.enter();
        // `second` got its next request: no longer idle.
        drop(second);
        assert!(set.evict_longest());
        assert!(tokio::time::timeout(SOON, first.evicted()).await.is_ok());
        assert!(tokio::time::timeout(SOON, third.evicted()).await.is_err());
        assert!(set.evict_longest());
        assert!(tokio::time::timeout(SOON, third.evicted()).await.is_ok());
        assert!(!set.evict_longest(), "nothing idle is left");
    }

    #[tokio::test(start_paused = true)]
    async fn slow_heads_go_after_idle_ones_the_one_begun_longest_ago_first() {
        let slow = Duration::from_secs(1);
        let set = Arc::new(IdleSet::new(slow));
        let mut older = set.enter();
        let mut newer = set.enter();
        let idle = set.enter();
        older.begin();
        tokio::time::advance(Duration::from_millis(300)).await;
        newer.begin();
        assert!(set.evict_longest(), "the idle one");
        assert!(tokio::time::timeout(SOON, idle.evicted()).await.is_ok());
        assert!(
            !set.evict_longest(),
            "heads under way for less than slow_head"
        );
        tokio::time::advance(slow).await;
        assert!(set.evict_longest());
        assert!(tokio::time::timeout(SOON, older.evicted()).await.is_ok());
        assert!(tokio::time::timeout(SOON, newer.evicted()).await.is_err());
        drop(newer);
        assert!(
            !set.evict_longest(),
            "a finished head is no longer in the set"
        );
    }
}
