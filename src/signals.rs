//! The signal handlers: SIGTERM starts the drain, SIGQUIT the `-u` hand-over, SIGINT exits
//! (see `drain` for what each does).

use crate::drain::{exit, Drain};
use async_trait::async_trait;
use pingora::server::{ShutdownSignal, ShutdownSignalWatch};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::time::Instant;

/// Replaces pingora's signal watch: SIGTERM drains as `drain` describes, then the process exits
/// (pingora's grace period applies to SIGQUIT only, cut short once nothing is in flight).
/// SIGINT exits at once.
///
/// Both exit here rather than through pingora's fast shutdown. That shuts each service's
/// runtime down with its listeners still accepting (the admin port and the credential endpoint
/// have no drain), and with `threads` above 1 an accept loop can run on one thread while its
/// socket belongs to another's reactor: once that one is shut down, every accept fails at once,
/// and pingora's loop retries without ever yielding, so its thread never shuts down. The
/// process then hung, a core busy and millions of "Accept() failed" lines a second in the log,
/// until killed (in about 1 of 10 SIGTERMs at `threads: 2`). Nothing is left to finish by then:
/// the drain waited for the traffic port's requests, and a log line is written whole or not at
/// all.
///
/// The handlers are installed by [`Signals::install`], before any service starts: pingora
/// calls `recv` only after starting them all, and a SIGTERM sent once the admin port answered
/// but before that took its default action, ending the process at once with nothing drained
/// (seen in CI at `threads: 8`; nearly every time at `threads: 64`, whose services take longer
/// to start). A signal that comes before `recv` is kept for it.
pub struct Signals {
    drain: Arc<Drain>,
    handlers: std::sync::Mutex<Option<Handlers>>,
    /// Where a new process waits for the sockets (`upgrade_socket`).
    upgrade_socket: PathBuf,
}

/// Runs `make` (which makes tokio signal streams) before pingora's runtimes exist. tokio
/// installs a handler for the whole process at once, and what it catches reaches every stream
/// made before, from whichever runtime polls the stream: the runtime made here only makes them.
pub fn before_any_runtime<T>(make: impl FnOnce() -> std::io::Result<T>) -> std::io::Result<T> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    runtime.block_on(async { make() })
}

/// How long a SIGQUIT waits for a new process on the upgrade socket, as pingora's own sending
/// would; with none by then the process goes on serving.
const NEW_PROCESS_WAIT: Duration = Duration::from_secs(5);

struct Handlers {
    quit: Signal,
    term: Signal,
    int: Signal,
}

impl Signals {
    /// Installs the SIGTERM, SIGQUIT and SIGINT handlers now; from here on those signals wait
    /// for `recv`. Called once the start-up's prompts are over (Ctrl-C must still end an MFA
    /// prompt) and before any service starts.
    pub fn install(drain: Arc<Drain>, upgrade_socket: PathBuf) -> Result<Signals, String> {
        let handlers = before_any_runtime(|| {
            Ok(Handlers {
                quit: signal(SignalKind::quit())?,
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        })
        .map_err(|e| format!("cannot handle SIGTERM, SIGQUIT or SIGINT: {e}"))?;
        Ok(Signals {
            drain,
            handlers: std::sync::Mutex::new(Some(handlers)),
            upgrade_socket,
        })
    }

    /// After SIGQUIT: true once a new process waits for the sockets and every socket is in
    /// pingora's table; false if no new process came within [`NEW_PROCESS_WAIT`].
    async fn ready_to_hand_over(&self) -> bool {
        let deadline = Instant::now() + NEW_PROCESS_WAIT;
        let mut told = false;
        loop {
            match crate::handover::someone_waits(&self.upgrade_socket) {
                Ok(true) => break,
                Ok(false) if Instant::now() < deadline => {
                    if !std::mem::replace(&mut told, true) {
                        tracing::info!(
                            upgrade_socket = %self.upgrade_socket.display(),
                            "SIGQUIT: waiting up to 5 s for a new process to wait for the sockets"
                        );
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Ok(false) => {
                    tracing::warn!(
                        upgrade_socket = %self.upgrade_socket.display(),
                        "SIGQUIT: no new process waits for the sockets: still serving (start \
                         `sigproxy -u` first, in this network namespace, then send SIGQUIT)"
                    );
                    return false;
                }
                Err(e) => {
                    // pingora's way: it tries for 5 s, then stops listening anyway.
                    tracing::warn!(
                        error = %e,
                        "SIGQUIT: cannot tell whether a new process waits: handing over"
                    );
                    break;
                }
            }
        }
        // pingora sends its table of listening sockets as it is when `recv` returns; a SIGQUIT
        // right after start-up can come before every service has put its socket there (the
        // new process then cannot listen where it is missing).
        self.drain.sockets_listed().await;
        true
    }
}

/// What `recv` does next.
enum Next {
    HandOver,
    KeepServing,
    Drain,
}

#[async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        // pingora calls this once; a second call would have nothing left to wait for (the first
        // one's outcome ends the process or began the hand-over).
        let taken = self.handlers.lock().map(|mut h| h.take()).ok().flatten();
        let Some(Handlers {
            mut quit,
            mut term,
            mut int,
        }) = taken
        else {
            return std::future::pending().await;
        };
        loop {
            let next = tokio::select! {
                _ = quit.recv() => tokio::select! {
                    ready = self.ready_to_hand_over() => match ready {
                        true => Next::HandOver,
                        false => Next::KeepServing,
                    },
                    _ = int.recv() => {
                        tracing::info!("SIGINT before the hand-over: exiting now");
                        exit()
                    }
                    _ = term.recv() => {
                        tracing::info!("SIGTERM before the hand-over: draining instead");
                        Next::Drain
                    }
                },
                _ = int.recv() => {
                    tracing::info!("SIGINT: exiting now");
                    exit()
                }
                _ = term.recv() => Next::Drain,
            };
            match next {
                Next::KeepServing => {
                    // A SIGQUIT sent during that wait was answered by it: no second wait.
                    let _ = tokio::time::timeout(Duration::ZERO, quit.recv()).await;
                    continue;
                }
                Next::HandOver => {
                    self.drain.hand_over();
                    let drain = self.drain.clone();
                    // pingora waits for no signal from here on: SIGINT still exits at once.
                    tokio::spawn(async move {
                        let exit_when_handed_over = drain.exit_when_handed_over();
                        tokio::pin!(exit_when_handed_over);
                        loop {
                            tokio::select! {
                                () = &mut exit_when_handed_over => return,
                                _ = int.recv() => {
                                    tracing::info!("SIGINT during the hand-over: exiting now");
                                    exit()
                                }
                                _ = term.recv() => tracing::info!(
                                    "SIGTERM during the hand-over: ignored (the new process \
                                     has the sockets; this one exits once nothing is in flight)"
                                ),
                            }
                        }
                    });
                    return ShutdownSignal::GracefulUpgrade;
                }
                Next::Drain => {
                    // The handlers stay installed: another SIGTERM or a SIGQUIT does nothing.
                    let run = self.drain.run();
                    tokio::pin!(run);
                    loop {
                        tokio::select! {
                            () = &mut run => break,
                            _ = int.recv() => {
                                tracing::warn!("SIGINT during the drain: exiting now");
                                break;
                            }
                            _ = quit.recv() => tracing::info!(
                                "SIGQUIT during the drain: ignored (the listener may be closed \
                                 already: there is nothing to hand over)"
                            ),
                        }
                    }
                    // The drain's last line said why.
                    exit()
                }
            }
        }
    }
}
