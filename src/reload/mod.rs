//! Reload without restart: on `SIGHUP`, and when the configuration file's content changes.
//!
//! The file is polled through its path every second and its bytes compared by SHA-256, rather
//! than watched with inotify: Kubernetes updates a mounted ConfigMap by swapping a `..data`
//! symlink and editors replace the file, neither of which a watch on the path itself sees.
//! A change is acted on once two polls in a row read the same bytes ([`poll`]): a file caught
//! half-written is neither applied nor counted as a failure. The token files in force (the
//! bearer token's, each `access.clients` entry's, the credential endpoint's) are polled with it:
//! a rotated Secret is a change though the configuration file is not.
//!
//! A reload checks the file exactly as `--check` does ([`crate::config`]), then as it would be
//! in force: keys fixed at start-up ([`fixed`]) keep their running values and are reported as
//! needing a restart. New and changed credential sets fetch their credentials first; then the
//! routes, access rules and credential sets are swapped as one [`Snapshot`]. Requests already
//! admitted finish with what they took; sets whose definition did not change keep their
//! credentials and refresh task ([`sets`]). Whatever refuses a reload (an invalid file, a new
//! credential set that cannot get credentials) leaves the running configuration in force, is
//! logged with the file, key and reason, and counted in `sigproxy_config_reloads_total`.

mod apply;
mod fixed;
mod live;
mod poll;
mod sets;
mod signals;

pub use fixed::{checked, Change};
pub use live::{needed_sets, Live, Snapshot};
pub use signals::hold_sighup;

use crate::config::{Config, ConfigError};
use crate::credentials::refresh::FIRST_FETCH_WAIT;
use crate::metrics::metrics;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::services::ServiceReadyNotifier;
use poll::{in_force, look, Act, Polls, Seen};
use sets::Refreshers;
use sha2::{Digest, Sha256};
use signals::hangup_received;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tracing::{error, info};

/// How often the file is read and compared.
const POLL: Duration = Duration::from_secs(1);
/// How long a reload waits for new credential sets' first fetch (one fetch may take 30 s).
const RELOAD_FETCH_WAIT: Duration = Duration::from_secs(35);
/// After new credentials could not be had, the unchanged file is tried again this often.
const RETRY: Duration = Duration::from_secs(30);
/// A SIGHUP asks STS again for a file it refused no sooner than this: a tool that sends SIGHUP
/// every second must not load the account's STS (its limits are the account's, per region).
const MIN_REFETCH: Duration = Duration::from_secs(5);

type Hash = [u8; 32];

/// Where the configuration came from.
#[derive(Clone)]
pub enum Source {
    /// aws-sigv4-proxy's flags: nothing to reload.
    Flags,
    /// A file, with the bytes the running configuration was read from (kept: the file may
    /// change before the reloader starts, and a token rotation re-reads these) and their hash.
    File {
        path: PathBuf,
        bytes: Arc<[u8]>,
        hash: Hash,
    },
}

impl std::fmt::Debug for Source {
    /// The file's bytes are left out: they may hold what a log should not.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Flags => f.write_str("Flags"),
            Source::File { path, bytes, .. } => f
                .debug_struct("File")
                .field("path", path)
                .field("bytes", &bytes.len())
                .finish_non_exhaustive(),
        }
    }
}

/// Reads and checks a configuration file (as `Config::load` does), remembering what was read.
pub fn load_file(path: &Path) -> Result<(Config, Source), ConfigError> {
    let bytes = read(path)?;
    let config = Config::parse(text(&bytes, path)?, path)?;
    let hash = Sha256::digest(&bytes).into();
    Ok((
        config,
        Source::File {
            path: path.to_owned(),
            bytes: bytes.into(),
            hash,
        },
    ))
}

fn read(path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| ConfigError {
        path: path.to_owned(),
        key: String::new(),
        reason: format!("cannot read the file: {e}"),
    })
}

fn text<'a>(bytes: &'a [u8], path: &Path) -> Result<&'a str, ConfigError> {
    std::str::from_utf8(bytes).map_err(|e| ConfigError {
        path: path.to_owned(),
        key: String::new(),
        reason: format!("cannot read the file: it is not UTF-8 ({e})"),
    })
}

/// The background service that keeps credential sets refreshed and reloads the configuration.
pub struct Reloader {
    live: Live,
    source: Source,
    /// The configuration the process started with; taken when the service starts.
    start: Mutex<Option<Config>>,
    /// True once every credential set has had its first fetch (or `FIRST_FETCH_WAIT` passed).
    first_fetches: watch::Sender<bool>,
}

impl Reloader {
    pub fn new(config: Config, live: Live, source: Source) -> Reloader {
        Reloader {
            live,
            source,
            start: Mutex::new(Some(config)),
            first_fetches: watch::channel(false).0,
        }
    }

    /// Says when every credential set has had its first fetch, or the wait for it is over.
    pub fn first_fetches(&self) -> watch::Receiver<bool> {
        self.first_fetches.subscribe()
    }
}

/// The reloader's own state.
struct State {
    /// The configuration in force (fixed keys as started).
    running: Config,
    /// The file's bytes it was read from, if known.
    running_bytes: Option<Vec<u8>>,
    /// Where the credential endpoint listens, if it was configured at start-up: a reload may
    /// remove the block (the endpoint then answers 503) and put it back.
    endpoint: Option<SocketAddr>,
    refreshers: Refreshers,
    /// The file as last acted on; changes not yet settled.
    polls: Polls,
    /// What a look at the running file finds while it is in force (with a token kept, that
    /// token's file as the check read it): a look that finds otherwise is a rotated token.
    running_seen: Seen,
    /// Set when new credentials could not be had: the same file is tried again then.
    retry_at: Option<Instant>,
    /// The file (as looked at) whose new credentials STS last refused, and when.
    fetch_refused: Option<(Seen, Instant)>,
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start_with_ready_notifier(
        &self,
        mut shutdown: ShutdownWatch,
        ready: ServiceReadyNotifier,
    ) {
        let Some(running) = self.start.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            self.first_fetches.send_replace(true);
            return;
        };
        // First: a SIGHUP's default action ends the process.
        let mut hangup = signal(SignalKind::hangup())
            .inspect_err(
                |e| error!(error = %e, "cannot handle SIGHUP; reload by changing the file"),
            )
            .ok();
        let refreshers = Refreshers::start(&self.live.load().store, FIRST_FETCH_WAIT).await;
        ready.notify_ready();
        self.first_fetches.send_replace(true);
        let m = metrics();
        for result in ["success", "failure"] {
            m.config_reloads.with_label_values(&[result]);
        }
        m.config_last_reload_success.set(unix_now());
        let (path, seen, running_bytes) = match &self.source {
            Source::File { path, bytes, hash } => {
                m.config_hash.set(hash_number(hash));
                // The bytes read at start, whatever the file holds by now: a token rotated
                // later is put in force from them even if an edit made meanwhile is refused.
                let bytes = Some(bytes.to_vec());
                (Some(path.as_path()), in_force(hash, &running), bytes)
            }
            Source::Flags => (None, Seen::Unreadable, None),
        };
        let mut state = State {
            endpoint: running.credential_endpoint.as_ref().map(|e| e.listen),
            running,
            running_bytes,
            running_seen: seen,
            refreshers,
            polls: Polls::new(seen),
            retry_at: None,
            fetch_refused: None,
        };
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                () = hangup_received(&mut hangup) => match path {
                    Some(path) => match read(path) {
                        Ok(bytes) => {
                            let seen = look(&bytes, &state.running);
                            self.reload_or_tokens(&mut state, path, &bytes, seen, "SIGHUP").await;
                        }
                        Err(e) => {
                            state.polls.acted(Seen::Unreadable);
                            refused(&e, "SIGHUP");
                        }
                    },
                    None => info!(
                        "SIGHUP: the configuration comes from command-line flags, there is no \
                         file to reload; restart sigproxy to change it"
                    ),
                },
                _ = tick.tick(), if path.is_some() => {
                    let Some(path) = path else { continue };
                    let (read, seen) = match read(path) {
                        Ok(bytes) => {
                            let seen = look(&bytes, &state.running);
                            (Ok(bytes), seen)
                        }
                        Err(e) => (Err(e), Seen::Unreadable),
                    };
                    let act = state.polls.look(seen);
                    let retry = state.retry_at.is_some_and(|at| Instant::now() >= at);
                    match (act, read) {
                        (Act::Reload, Ok(bytes)) => {
                            let trigger = "file changed";
                            self.reload_or_tokens(&mut state, path, &bytes, seen, trigger).await;
                        }
                        (Act::Refuse, Err(e)) => refused(&e, "file changed"),
                        (Act::Unchanged, Ok(bytes)) if retry => {
                            self.reload_or_tokens(&mut state, path, &bytes, seen, "retry").await;
                        }
                        _ => {}
                    }
                }
            }
        }
        state.refreshers.stop_all();
    }
}

/// Logs and counts a refused reload; the running configuration stays.
fn refused(e: &ConfigError, trigger: &'static str) {
    failed(
        e,
        trigger,
        "configuration reload refused; the running configuration stays in force",
    );
}

/// Logs and counts a token file that gave no token to a reload that went in: its token in
/// force stays (a deleted Secret does not lock every client out), and the reload counts as a
/// failure too, so the reload alert says a token file needs looking at.
fn token_kept(e: &ConfigError, trigger: &'static str) {
    failed(
        e,
        trigger,
        "configuration reload: a token file gives no token; the rest of the file is in force",
    );
}

/// A failed reload (or part of one): counted, and logged as `what` with the file, key and
/// reason.
fn failed(e: &ConfigError, trigger: &'static str, what: &str) {
    metrics()
        .config_reloads
        .with_label_values(&["failure"])
        .inc();
    error!(
        config = %e.path.display(),
        key = %e.key,
        trigger,
        error = %e,
        "{what}"
    );
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The hash's first 48 bits: a number a float holds exactly.
fn hash_number(hash: &Hash) -> f64 {
    hash[..6].iter().fold(0u64, |n, b| (n << 8) | u64::from(*b)) as f64
}
