//! Keep-alive connections waiting for their next request, longest-waiting first: at
//! `max_connections` a new connection takes the place of the one idle longest instead of being
//! refused, so clients that merely hold connections open cannot lock others out.
//!
//! A connection is idle from its accept, or the end of a response, until the first byte of its
//! next request: a new connection that sends nothing is no better than an idle keep-alive one
//! (nginx closes both to make room). One whose next request has begun to arrive is not idle
//! (closing it could cut that request), except on the admin port (see [`super::head::read`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::Notify;

/// The idle connections of one listener.
#[derive(Debug, Default)]
pub struct IdleSet {
    /// Keyed by when each became idle (an increasing number): the first is the oldest.
    waiting: Mutex<Waiting>,
}

#[derive(Debug, Default)]
struct Waiting {
    next: u64,
    by_age: BTreeMap<u64, Arc<Notify>>,
}

impl IdleSet {
    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a connection as idle until the returned [`Idle`] is dropped.
    pub fn enter(self: &Arc<Self>) -> Idle {
        let notify = Arc::new(Notify::new());
        let mut waiting = self.lock();
        let id = waiting.next;
        waiting.next += 1;
        waiting.by_age.insert(id, notify.clone());
        Idle {
            set: self.clone(),
            id,
            notify,
        }
    }

    /// Tells the connection idle longest to close; false if none is idle.
    pub fn evict_longest(&self) -> bool {
        let oldest = self.lock().by_age.pop_first();
        match oldest {
            Some((_, notify)) => {
                // Kept as a permit if the connection is not waiting on it right now.
                notify.notify_one();
                true
            }
            None => false,
        }
    }
}

/// One idle connection's place in the [`IdleSet`].
#[derive(Debug)]
pub struct Idle {
    set: Arc<IdleSet>,
    id: u64,
    notify: Arc<Notify>,
}

impl Idle {
    /// Completes once the connection is to close to make room.
    pub async fn evicted(&self) {
        self.notify.notified().await
    }
}

impl Drop for Idle {
    fn drop(&mut self) {
        self.set.lock().by_age.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn the_longest_idle_is_evicted_and_a_busy_one_never() {
        let set = Arc::new(IdleSet::default());
        let first = set.enter();
        let second = set.enter();
        let third = set.enter();
        // `second` got its next request: no longer idle.
        drop(second);
        assert!(set.evict_longest());
        let soon = Duration::from_millis(50);
        assert!(tokio::time::timeout(soon, first.evicted()).await.is_ok());
        assert!(tokio::time::timeout(soon, third.evicted()).await.is_err());
        assert!(set.evict_longest());
        assert!(tokio::time::timeout(soon, third.evicted()).await.is_ok());
        assert!(!set.evict_longest(), "nothing idle is left");
    }
}
