//! What SIGTERM does: a drain that loses no request.
//!
//! pingora's own SIGTERM closes every listener at once, then sleeps `grace_period_seconds`
//! whatever is still in flight, then cuts what is left. Behind a Kubernetes Service that loses
//! requests: the endpoint is removed from the Services *while* the pod gets SIGTERM, and
//! kube-proxies, ingress controllers and client-side load balancers keep sending new
//! connections to it for a few seconds; those meet a closed port. So sigproxy handles SIGTERM
//! itself (`signals::Signals`), in three steps:
//!
//! 1. **`shutdown_delay`**: keep accepting and serving as usual, so that what still routes here
//!    is served while the endpoint removal propagates; every response now says
//!    `Connection: close`, which moves keep-alive clients to a new connection (and so to
//!    another endpoint) after their next request instead of cutting them; and `/readyz` on the
//!    admin port answers 503, for load balancers that health-check it themselves.
//! 2. Stop accepting (the traffic listener closes: connects are refused, never accepted and
//!    dropped); idle connections close; requests in flight go on.
//! 3. Exit as soon as no client connection is left, or when `shutdown_grace` has passed.
//!
//! SIGQUIT (the `-u` hand-over) is pingora's: it sends the listening sockets to the new process,
//! both accept for 5 s more, then this one stops accepting. sigproxy adds two things: responses
//! say `Connection: close` from the signal on (keep-alive clients move to the new process), and
//! the process exits as soon as no client connection is left instead of sleeping out pingora's
//! grace period (`shutdown_grace`); no `shutdown_delay`, as the new process already holds the
//! sockets. SIGINT exits at once, as pingora's does, also during a drain or a hand-over; during a
//! drain SIGQUIT and a second SIGTERM are ignored (the listening sockets may already be closed,
//! so there is nothing to hand over), and during a hand-over SIGTERM is.

use pingora::server::ShutdownWatch;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// How often the last step looks at the number of open connections. Exiting up to this much
/// later than possible costs nothing; a notification on every connection close would cost
/// every connection something.
const POLL: Duration = Duration::from_millis(50);

/// The shutdown state shared by the signal handler, the traffic listener and its connections.
pub struct Drain {
    delay: Duration,
    grace: Duration,
    /// True once connections are not to be reused: each response says `Connection: close`.
    closing: watch::Sender<bool>,
    /// True once the traffic listener stops accepting; idle connections close then.
    stopped: watch::Sender<bool>,
    /// Client connections open on the traffic port, lingering ones included.
    open: Arc<AtomicUsize>,
    /// True from SIGTERM on: `/readyz` answers 503, so health-checking load balancers stop
    /// sending. Not set by pingora's own shutdown (SIGQUIT): after a hand-over the admin port
    /// belongs to the new process too, whose readiness it would misreport.
    draining: AtomicBool,
    /// Sockets bound at start-up and not yet in pingora's table (see `sockets::OnSockets`): a
    /// SIGQUIT hand-over sends the table as it is, so it waits for this to be 0.
    unlisted: watch::Sender<usize>,
}

impl Drain {
    pub fn new(delay: Duration, grace: Duration) -> Arc<Drain> {
        Arc::new(Drain {
            delay,
            grace,
            closing: watch::channel(false).0,
            stopped: watch::channel(false).0,
            open: Arc::default(),
            draining: AtomicBool::new(false),
            unlisted: watch::channel(0).0,
        })
    }

    /// One more socket is to be put in pingora's table before a hand-over may send it.
    pub fn socket_to_list(&self) {
        self.unlisted.send_modify(|n| *n += 1);
    }

    /// A socket counted by [`Drain::socket_to_list`] is in pingora's table now.
    pub fn socket_listed(&self) {
        self.unlisted.send_modify(|n| *n = n.saturating_sub(1));
    }

    /// Resolves once every socket bound at start-up is in pingora's table.
    pub(crate) async fn sockets_listed(&self) {
        let mut unlisted = self.unlisted.subscribe();
        let left = *unlisted.borrow();
        if left > 0 {
            tracing::info!(
                sockets = left,
                "SIGQUIT: handing over once every listener has its socket"
            );
        }
        // The sender lives in `self`: this ends only with 0.
        let _ = unlisted.wait_for(|n| *n == 0).await;
    }

    /// The count of open client connections, kept by the connection loop.
    pub fn connections(&self) -> Arc<AtomicUsize> {
        self.open.clone()
    }

    /// True once SIGTERM has started the drain.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// From a SIGQUIT hand-over on: keep-alive clients move to the new process after their
    /// next response.
    pub(crate) fn hand_over(&self) {
        self.closing.send_replace(true);
    }

    /// True from the start of a drain (or of pingora's own shutdown): stop reusing connections.
    pub fn closing(&self) -> ShutdownWatch {
        self.closing.subscribe()
    }

    /// The shutdown the traffic listener is to stop at: the drain's, not pingora's alone.
    /// pingora's listening service stops at the shutdown it is given; pingora's own shutdown
    /// (SIGQUIT after the hand-over, SIGINT) stops the drain at once.
    pub fn listening_until(self: &Arc<Self>, mut shutdown: ShutdownWatch) -> ShutdownWatch {
        let drain = self.clone();
        tokio::spawn(async move {
            if shutdown.wait_for(|stopping| *stopping).await.is_ok() {
                drain.stop();
            }
        });
        let mut stopped = self.stopped.subscribe();
        // A listener that starts after the drain stopped accepting (a SIGTERM during start-up,
        // with the traffic service still waiting for its dependencies) stops at once: a fresh
        // receiver would take the value it starts with as seen, and never fire.
        if *stopped.borrow() {
            stopped.mark_changed();
        }
        stopped
    }

    /// Stops reusing connections and accepting new ones, at once (pingora's own shutdown:
    /// SIGQUIT after the hand-over, SIGINT).
    fn stop(&self) {
        self.closing.send_replace(true);
        self.stopped.send_replace(true);
    }

    /// The three steps; returns when the process may exit.
    pub(crate) async fn run(&self) {
        tracing::info!(
            shutdown_delay = ?self.delay,
            shutdown_grace = ?self.grace,
            "SIGTERM: still accepting for shutdown_delay; every response closes its connection, \
             /readyz answers 503"
        );
        self.draining.store(true, Ordering::Release);
        self.closing.send_replace(true);
        tokio::time::sleep(self.delay).await;
        let open = self.open.load(Ordering::Acquire);
        tracing::info!(
            connections = open,
            "shutdown_delay over: no longer accepting; waiting for requests in flight"
        );
        self.stopped.send_replace(true);
        if self.idle_by(Instant::now() + self.grace).await {
            tracing::info!("nothing in flight: exiting");
        } else {
            tracing::warn!(
                connections = self.open.load(Ordering::Acquire),
                "shutdown_grace over: closing the connections still open and exiting"
            );
        }
    }

    /// Waits until no client connection is left (true) or `deadline` has passed (false).
    async fn idle_by(&self, deadline: Instant) -> bool {
        loop {
            // Also gives the accept loops (on other threads) time to see `stopped`.
            tokio::time::sleep(POLL).await;
            if self.open.load(Ordering::Acquire) == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
        }
    }

    /// After SIGQUIT: once pingora has handed the sockets over and stopped accepting, exits as
    /// soon as no client connection is left. pingora itself would sleep its whole grace period
    /// (an uninterruptible sleep on the main thread, after which it drops whatever is left):
    /// this runs on the signal runtime, which lives on meanwhile. Past `shutdown_grace`
    /// pingora's own end applies.
    pub(crate) async fn exit_when_handed_over(&self) {
        let mut stopped = self.stopped.subscribe();
        if stopped.wait_for(|stopped| *stopped).await.is_err() {
            return;
        }
        if self.idle_by(Instant::now() + self.grace).await {
            // pingora has said whether the new process took the sockets ("Unable to send
            // listener sockets" when none did): this only knows listening stopped.
            tracing::info!("SIGQUIT: stopped listening and nothing in flight: exiting");
            // Nothing is left to finish: the runtimes' shutdown has nothing to do.
            exit();
        }
    }
}

/// Ends the process with success, past pingora's runtime shutdown (see `signals::Signals`).
pub fn exit() -> ! {
    std::process::exit(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listener that starts after the drain stopped accepting (a SIGTERM during start-up)
    /// must stop at once; a fresh receiver of `stopped` would never fire.
    #[tokio::test]
    async fn a_listener_started_after_the_drain_stopped_accepting_stops_at_once() {
        let drain = Drain::new(Duration::ZERO, Duration::ZERO);
        drain.stopped.send_replace(true);
        let (_pingora, shutdown) = watch::channel(false);
        let mut until = drain.listening_until(shutdown);
        let fired = tokio::time::timeout(Duration::from_secs(1), until.changed()).await;
        assert!(matches!(fired, Ok(Ok(()))), "{fired:?}");
        assert!(*until.borrow());
    }

    #[tokio::test]
    async fn sockets_are_listed_once_each_one_counted_is() {
        let drain = Drain::new(Duration::ZERO, Duration::ZERO);
        drain.socket_to_list();
        drain.socket_to_list();
        drain.socket_listed();
        let soon = Duration::from_millis(50);
        assert!(tokio::time::timeout(soon, drain.sockets_listed())
            .await
            .is_err());
        drain.socket_listed();
        assert!(tokio::time::timeout(soon, drain.sockets_listed())
            .await
            .is_ok());
    }
}
