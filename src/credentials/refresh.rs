//! The background loop that keeps each credential set filled.
//!
//! Schedule: credentials are refreshed when `min(refresh_before_expiry, lifetime / 2)` of their
//! lifetime is left, minus a random jitter of up to a quarter of that window (so many proxies
//! started together do not call STS together). A failed fetch is retried with exponential
//! backoff (1 s doubling to 60 s, with jitter) while the credentials already held keep serving;
//! a set with an MFA device waits at least as long as its [`super::mfa::Gate`] says.

use super::provider::Provider;
use super::CredentialSet;
use crate::metrics::metrics;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;
use tracing::{info, warn};

const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// One fetch (source chain plus STS) may take at most this long.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// Never refresh more often than this, whatever the credentials' lifetime.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Credentials that have less than this left when they arrive are refused (see
/// [`usable_on_arrival`]): refreshed at half their life, they would call STS every second or
/// two. (STS's shortest session is 15 minutes; tests use a few seconds.)
const MIN_LIFETIME: Duration = Duration::from_secs(3);

/// Refreshes asked for by requests come at most this often.
const MIN_FORCED_INTERVAL: Duration = Duration::from_secs(5);
/// "Until asked": the wait after credentials that never expire (about 30 years).
const NEVER: Duration = Duration::from_secs(1 << 30);

/// How long start-up waits for the first fetch of every set before serving anyway.
pub const FIRST_FETCH_WAIT: Duration = Duration::from_secs(10);

/// Keeps one credential set filled until the task running it is aborted. `first` is told when
/// the first fetch is over, whether it succeeded or not (see [`crate::reload`], which runs one
/// of these per set and aborts it when a reload removes or replaces the set).
pub async fn keep_filled(set: Arc<CredentialSet>, first: Option<oneshot::Sender<()>>) {
    let mut first = first;
    let provider = Provider::build(set.config(), set.mfa().cloned()).await;
    let mut backoff = FIRST_BACKOFF;
    let m = metrics();
    loop {
        let started = Instant::now();
        let fetched = match tokio::time::timeout(FETCH_TIMEOUT, provider.fetch()).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "fetching credentials took longer than {}s",
                FETCH_TIMEOUT.as_secs()
            )),
        };
        m.sts_duration
            .with_label_values(&[set.name()])
            .observe(started.elapsed().as_secs_f64());
        let fetched = fetched.and_then(|creds| usable_on_arrival(creds, SystemTime::now()));
        let result = if fetched.is_ok() {
            "success"
        } else {
            "failure"
        };
        m.credential_refreshes
            .with_label_values(&[set.name(), result])
            .inc();
        let wait = match fetched {
            Ok(creds) => {
                backoff = FIRST_BACKOFF;
                let expiry = creds.expiry();
                if let Some(at) = expiry.and_then(|e| e.duration_since(UNIX_EPOCH).ok()) {
                    m.credentials_expiry
                        .with_label_values(&[set.name(), set.client().unwrap_or_default()])
                        .set(at.as_secs_f64());
                }
                set.store(creds);
                let next = next_refresh(
                    SystemTime::now(),
                    expiry,
                    set.config().refresh_before_expiry,
                );
                info!(
                    credentials = set.name(),
                    client = set.client(),
                    expires_in_s = expiry
                        .and_then(|e| e.duration_since(SystemTime::now()).ok())
                        .map(|d| d.as_secs()),
                    next_refresh_in_s = next.map(|d| d.as_secs()),
                    "credentials refreshed"
                );
                // Credentials that never expire are fetched again only on request.
                next.unwrap_or(NEVER)
            }
            Err(error) => {
                set.record_failure(error.clone());
                // An MFA device is not asked again before its gate allows (see `mfa`).
                let wait =
                    jittered(backoff).max(set.mfa().map_or(Duration::ZERO, |g| g.retry_after()));
                backoff = (backoff * 2).min(MAX_BACKOFF);
                warn!(credentials = set.name(), client = set.client(), retry_in_ms = wait.as_millis() as u64, %error, "credential refresh failed");
                wait
            }
        };
        // Told once the outcome is stored: a reload checks the set right after.
        if let Some(done) = first.take() {
            let _ = done.send(());
        }
        let last_fetch = Instant::now();
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = set.refresh_requested() => {
                // AWS refused the credentials held: fetch again now, but never more
                // often than every few seconds, whatever a misbehaving upstream says.
                tokio::time::sleep_until((last_fetch + MIN_FORCED_INTERVAL).into()).await;
                info!(credentials = set.name(), "refreshing early: AWS refused the credentials held");
            }
        }
    }
}

/// Credentials that expire before they could sign anything (this host's clock ahead of
/// AWS's by more than their lifetime, a broken stand-in) are a failed fetch, retried with
/// backoff, not a success to be refreshed again at once, twice a second, for ever.
fn usable_on_arrival(
    creds: aws_credential_types::Credentials,
    now: SystemTime,
) -> Result<aws_credential_types::Credentials, String> {
    match creds.expiry() {
        // An expiry before 1971 is none at all: an answer cut short or malformed.
        Some(expiry) if expiry < UNIX_EPOCH + Duration::from_secs(365 * 86_400) => Err(
            "the credentials fetched carry no valid expiry: STS's answer was malformed or \
                 cut short"
                .into(),
        ),
        Some(expiry) if expiry <= now + MIN_LIFETIME => {
            let ago = now.duration_since(expiry).unwrap_or_default().as_secs();
            let left = expiry.duration_since(now).unwrap_or_default().as_secs();
            Err(format!(
                "the credentials fetched expire at once ({}): is this host's clock right, or \
                 the session's duration that short?",
                match ago {
                    0 => format!("{left} s left by this host's clock"),
                    _ => format!("expired {ago} s ago by this host's clock"),
                }
            ))
        }
        _ => Ok(creds),
    }
}

/// How long to wait before refreshing credentials that expire at `expiry`.
pub fn next_refresh(
    now: SystemTime,
    expiry: Option<SystemTime>,
    margin: Duration,
) -> Option<Duration> {
    let lifetime = expiry?.duration_since(now).unwrap_or_default();
    let window = margin.min(lifetime / 2);
    let jitter = window.mul_f64(fastrand::f64() / 4.0);
    Some((lifetime - window - jitter).max(MIN_INTERVAL))
}

/// `d` plus or minus up to 20 %.
fn jittered(d: Duration) -> Duration {
    d.mul_f64(0.8 + fastrand::f64() * 0.4)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn credentials_that_expire_on_arrival_are_a_failed_fetch() {
        let now = SystemTime::now();
        let creds =
            |expiry| aws_credential_types::Credentials::new("AKID", "secret", None, expiry, "test");
        let e = usable_on_arrival(creds(Some(UNIX_EPOCH)), now).unwrap_err();
        assert!(e.contains("malformed"), "{e}");
        let e = usable_on_arrival(creds(Some(now - 60 * MIN)), now).unwrap_err();
        assert!(
            e.contains("clock") && e.contains("expired 3600 s ago"),
            "{e}"
        );
        let e = usable_on_arrival(creds(Some(now + Duration::from_secs(2))), now).unwrap_err();
        assert!(e.contains("s left"), "{e}");
        assert!(usable_on_arrival(creds(Some(now)), now).is_err());
        assert!(usable_on_arrival(creds(Some(now + Duration::from_secs(5))), now).is_ok());
        assert!(usable_on_arrival(creds(Some(now + 6 * MIN)), now).is_ok());
        assert!(
            usable_on_arrival(creds(None), now).is_ok(),
            "keys that never expire"
        );
    }

    #[test]
    fn hour_long_credentials_refresh_minutes_before_expiry() {
        let now = SystemTime::now();
        for _ in 0..100 {
            let wait = next_refresh(now, Some(now + 60 * MIN), 5 * MIN).unwrap();
            // 55 minutes minus a jitter of at most 75 seconds.
            assert!(wait <= 55 * MIN, "{wait:?}");
            assert!(wait >= 55 * MIN - Duration::from_secs(75), "{wait:?}");
        }
    }

    #[test]
    fn short_credentials_refresh_at_half_life() {
        let now = SystemTime::now();
        let wait = next_refresh(now, Some(now + Duration::from_secs(20)), 5 * MIN).unwrap();
        assert!(wait <= Duration::from_secs(10), "{wait:?}");
        assert!(wait >= Duration::from_millis(7500), "{wait:?}");
    }

    #[test]
    fn expired_credentials_refresh_soon_but_not_in_a_hot_loop() {
        let now = SystemTime::now();
        let wait = next_refresh(now, Some(now - MIN), 5 * MIN).unwrap();
        assert_eq!(wait, MIN_INTERVAL);
    }

    #[test]
    fn credentials_without_expiry_are_not_refreshed() {
        assert_eq!(next_refresh(SystemTime::now(), None, 5 * MIN), None);
    }
}
