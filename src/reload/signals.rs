//! SIGHUP: held from the start (its default action ends the process), then awaited.

use tokio::signal::unix::{signal, Signal, SignalKind};

/// Takes SIGHUP's default action (ending the process) away before anything else runs.
///
/// The reloader installs its own handler only once pingora starts the services; before that,
/// a `-u` process waits seconds for the old one's sockets, and a SIGHUP meant for a reload
/// would end it. The handler installed here stays for the life of the process (tokio never
/// removes one); a SIGHUP it catches before the reloader listens is lost, which loses
/// nothing: the reloader compares the file with what was read at start-up on its first poll.
pub fn hold_sighup() -> Result<(), String> {
    crate::signals::before_any_runtime(|| signal(SignalKind::hangup()))
        .map(drop)
        .map_err(|e| format!("cannot handle SIGHUP: {e}"))
}

/// Resolves at each SIGHUP; never, without a handler.
pub(super) async fn hangup_received(hangup: &mut Option<Signal>) {
    if let Some(signal) = hangup {
        if signal.recv().await.is_some() {
            return;
        }
    }
    std::future::pending().await
}
