//! One process-wide budget for request bodies held in memory to be hashed
//! (`max_buffered_body_bytes`).
//!
//! A body with a `Content-Length` reserves its whole length before its first byte is read (or
//! `100 Continue` sent), so a request the budget cannot hold is refused at once with `503`, not
//! after its body was taken in. A chunked body, of unknown length, grows its reservation chunk
//! by chunk. Reservations are released when the request is done with its body.

use crate::error::ProxyError;
use crate::metrics::metrics;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug)]
pub struct BodyBudget {
    limit: usize,
    used: AtomicUsize,
}

impl BodyBudget {
    pub fn new(limit: usize) -> BodyBudget {
        BodyBudget {
            limit,
            used: AtomicUsize::new(0),
        }
    }

    /// An empty reservation, to grow.
    pub fn reservation(&self) -> Reservation<'_> {
        Reservation {
            budget: Some(self),
            bytes: 0,
        }
    }

    /// Takes `n` bytes from the budget if they are free.
    fn take(&self, n: usize) -> bool {
        let taken = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|total| *total <= self.limit)
            })
            .is_ok();
        if taken {
            metrics().buffered_body_bytes.add(n as i64);
        }
        taken
    }

    fn give_back(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
        metrics().buffered_body_bytes.sub(n as i64);
    }

    /// Bytes reserved right now.
    #[cfg(test)]
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// Bytes held from a [`BodyBudget`]; given back when dropped.
#[derive(Debug)]
pub struct Reservation<'a> {
    /// `None`: a body the budget does not count (see [`Reservation::outside`]).
    budget: Option<&'a BodyBudget>,
    bytes: usize,
}

impl Reservation<'_> {
    /// For a body held outside the budget: a small pass-through body, read whole only to be
    /// sent on the forwarder's path. pingora's proxy loop, which took those bodies before,
    /// holds as much per request in its own buffers, and the budget never counted them.
    pub fn outside() -> Reservation<'static> {
        Reservation {
            budget: None,
            bytes: 0,
        }
    }

    /// Makes the reservation cover `total` bytes; `503 busy` if the budget cannot.
    pub fn cover(&mut self, total: usize) -> Result<(), ProxyError> {
        let Some(budget) = self.budget else {
            return Ok(());
        };
        if total <= self.bytes {
            return Ok(());
        }
        let more = total - self.bytes;
        if !budget.take(more) {
            metrics().body_budget_refusals.inc();
            return Err(ProxyError::Busy(format!(
                "sigproxy is holding as many request bodies as max_buffered_body_bytes allows ({} bytes); retry shortly",
                budget.limit
            )));
        }
        self.bytes = total;
        Ok(())
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if let Some(budget) = self.budget.filter(|_| self.bytes > 0) {
            budget.give_back(self.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserves_up_to_the_limit_and_releases_on_drop() {
        let budget = BodyBudget::new(100);
        let mut a = budget.reservation();
        a.cover(60).unwrap();
        let mut b = budget.reservation();
        assert_eq!(b.cover(50).unwrap_err().status(), 503);
        b.cover(40).unwrap();
        assert_eq!(budget.used(), 100);
        // Growing covers only the difference.
        a.cover(60).unwrap();
        assert!(a.cover(61).is_err());
        drop(a);
        assert_eq!(budget.used(), 40);
        b.cover(100).unwrap();
        drop(b);
        assert_eq!(budget.used(), 0);
        // A body held outside the budget takes nothing from it.
        let mut outside = Reservation::outside();
        outside.cover(1000).unwrap();
        assert_eq!(budget.used(), 0);
    }
}
