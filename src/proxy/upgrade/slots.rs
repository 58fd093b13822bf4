//! The process-wide cap on upgraded connections (`max_websocket_connections`): an upgraded
//! connection holds one of `max_connections` for up to its route's `websocket.max_lifetime`, so
//! without a cap of their own WebSockets could take every place and starve ordinary requests.
//!
//! A place is taken when an upgrade is admitted, before anything is signed or sent upstream,
//! and given back when its [`Slot`] drops: after the joined connections close, on a declined
//! or failed upgrade, and when the request's task is dropped. The count lives with the
//! listener, not the configuration snapshot, so reloads neither reset nor leak it.

use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug)]
pub struct WebSocketSlots {
    limit: usize,
    open: AtomicUsize,
}

impl WebSocketSlots {
    pub fn new(limit: usize) -> WebSocketSlots {
        WebSocketSlots {
            limit,
            open: AtomicUsize::new(0),
        }
    }

    /// A place for one more upgraded connection, or `None` if `limit` are taken.
    pub fn take(&self) -> Option<Slot<'_>> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < self.limit).then_some(open + 1)
            })
            .ok()
            .map(|_| Slot(self))
    }

    /// The cap (`max_websocket_connections`).
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Places taken right now.
    #[cfg(test)]
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

/// One place among [`WebSocketSlots`]; given back when dropped.
#[derive(Debug)]
pub struct Slot<'a>(&'a WebSocketSlots);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_up_to_the_limit_and_gives_back_on_drop() {
        let slots = WebSocketSlots::new(2);
        let a = slots.take().unwrap();
        let b = slots.take().unwrap();
        assert!(slots.take().is_none());
        assert_eq!(slots.open(), 2);
        drop(a);
        let c = slots.take().unwrap();
        assert!(slots.take().is_none());
        drop(b);
        drop(c);
        assert_eq!(slots.open(), 0);
    }
}
