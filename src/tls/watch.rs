//! Re-reads the listeners' certificate files when they change.
//!
//! The files are polled through their paths every second and their bytes compared, rather than
//! watched with inotify: a Kubernetes secret volume is updated by swapping a `..data` symlink,
//! which changes what the paths resolve to without touching the files' own inodes, and a
//! polled comparison sees that (and any other way of replacing them) the same way.

use super::{Certificate, LoadError, Part};
use crate::metrics::metrics;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// How often the files are compared with what is serving.
const POLL: Duration = Duration::from_secs(1);

/// Polls every TLS listener's files.
pub struct Watch {
    pub certificates: Vec<Arc<Certificate>>,
}

/// What one listener's files held when last looked at.
#[derive(Default)]
struct Seen {
    /// The bytes at the previous poll: a change is loaded once it has held still for a poll,
    /// so a certificate and key written one after the other are not taken half-done.
    last: Option<Option<(Vec<u8>, Vec<u8>)>>,
    /// The bytes of a pair that failed to load (or `None` for unreadable files): not reported
    /// again until the files change once more.
    failed: Option<Option<(Vec<u8>, Vec<u8>)>>,
}

#[async_trait]
impl BackgroundService for Watch {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut seen: Vec<Seen> = self.certificates.iter().map(|_| Seen::default()).collect();
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tick.tick() => {
                    for (cert, seen) in self.certificates.iter().zip(seen.iter_mut()) {
                        poll(cert, seen);
                    }
                }
            }
        }
    }
}

/// Compares one listener's files with the pair serving; loads them again if they differ.
fn poll(cert: &Certificate, seen: &mut Seen) {
    let now = match (
        std::fs::read(&cert.files.cert_file),
        std::fs::read(&cert.files.key_file),
    ) {
        (Ok(c), Ok(k)) => Some((c, k)),
        _ => None,
    };
    if now.as_ref() == Some(&cert.current().contents) {
        seen.failed = None;
        seen.last = None;
        return;
    }
    if seen.failed.as_ref() == Some(&now) {
        return;
    }
    if seen.last.as_ref() != Some(&now) {
        seen.last = Some(now);
        return;
    }
    let listener = cert.listener;
    let counter = |result: &str| {
        metrics()
            .tls_certificate_reloads
            .with_label_values(&[listener, result])
            .inc();
    };
    match cert.files.load() {
        Ok(loaded) => {
            info!(
                listener,
                serial = %loaded.serial,
                not_after = loaded.not_after,
                "TLS certificate files changed: new connections get the new certificate"
            );
            counter("success");
            seen.failed = None;
            cert.replace(loaded);
        }
        Err(LoadError { part, reason }) => {
            let file = match part {
                Part::Cert => &cert.files.cert_file,
                Part::Key => &cert.files.key_file,
            };
            warn!(
                listener,
                file = %file.display(),
                error = %reason,
                "TLS certificate files changed but do not load; still serving the previous \
                 certificate"
            );
            counter("failure");
            seen.failed = Some(now);
        }
    }
}
