//! Named credential sets, shared by every request and refreshed in the background.
//!
//! A request never waits for STS: it takes whatever valid credentials its set holds right now
//! ([`CredentialSet::current`]) or fails fast with 503. The refresh loop in [`refresh`] keeps the
//! sets filled well before expiry; [`provider`] builds each set's aws-config provider chain.
//!
//! A set with `per_client: true` has no session of its own: the store holds one set per client
//! that uses it instead ([`sessions`]), each with the client's name in its STS call, each
//! refreshed on its own, keyed by set and client ([`SetKey`]).

pub mod mfa;
mod mfa_role;
pub mod provider;
pub mod refresh;
mod sts;
pub use sts::withhold_credentials;
pub mod sts_token;

use crate::config::{Config, CredentialsConfig};
use crate::error::ProxyError;
use aws_credential_types::Credentials;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

/// Credentials closer to expiry than this are not used to sign.
const MIN_REMAINING: Duration = Duration::from_secs(1);
/// How long a request waits for a refresh it asked for (after AWS refused its credentials).
const REFRESH_WAIT: Duration = Duration::from_secs(10);

/// A set's place in a store: its name and, for one client's session of a `per_client` set,
/// the client's name.
pub type SetKey = (String, Option<String>);

/// What `config` refreshes: each set with a session of its own, and each client's session of
/// each `per_client` set (a `per_client` set has none of its own).
pub fn sessions(config: &Config) -> Vec<CredentialsConfig> {
    let shared = config
        .credentials
        .values()
        .filter(|c| c.per_client.is_none())
        .cloned();
    shared.chain(config.client_sessions()).collect()
}

/// All credential sets of a configuration, by name (and client).
#[derive(Debug)]
pub struct CredentialStore {
    sets: BTreeMap<SetKey, Arc<CredentialSet>>,
}

impl CredentialStore {
    pub fn new(config: &Config) -> Self {
        let sets = sessions(config)
            .into_iter()
            .map(|c| {
                let set = CredentialSet::new(c);
                (set.key(), Arc::new(set))
            })
            .collect();
        CredentialStore { sets }
    }

    /// A store of sets already made: a reload keeps the sets whose definition did not change.
    pub fn from_sets(sets: BTreeMap<SetKey, Arc<CredentialSet>>) -> Self {
        CredentialStore { sets }
    }

    /// The set `name`, when it has a session of its own (is not `per_client`).
    pub fn get(&self, name: &str) -> Option<&Arc<CredentialSet>> {
        self.sets.get(&(name.to_string(), None))
    }

    /// `client`'s own session of the `per_client` set `name`, if it has one.
    pub fn session(&self, name: &str, client: &str) -> Option<&Arc<CredentialSet>> {
        self.sets.get(&(name.to_string(), Some(client.to_string())))
    }

    /// The clients' sessions of the `per_client` set `name`, by client.
    pub fn sessions_of<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a Arc<CredentialSet>)> + 'a {
        self.sets
            .iter()
            .filter(move |((set, _), _)| set == name)
            .filter_map(|((_, client), set)| Some((client.as_deref()?, set)))
    }

    pub fn sets(&self) -> impl Iterator<Item = &Arc<CredentialSet>> {
        self.sets.values()
    }

    /// At start, for each set with an MFA device but no `token_command`: asks for a code on
    /// the terminal, once (nothing happens without one; those sets then say a code is needed).
    pub fn prompt_for_mfa_codes(&self) {
        for set in self.sets() {
            if let Some(gate) = set.mfa().filter(|g| g.asks_on_terminal()) {
                if let Some(code) = mfa::prompt_on_terminal(set.name(), gate.serial_number()) {
                    gate.typed(code);
                }
            }
        }
    }
}

/// One named set: its configuration and the credentials it currently holds.
#[derive(Debug)]
pub struct CredentialSet {
    config: CredentialsConfig,
    state: RwLock<State>,
    /// Wakes the refresh loop early (AWS refused the credentials it holds).
    refresh_requested: tokio::sync::Notify,
    /// Bumped by every fetch, good or bad, for requests waiting on one.
    fetches: tokio::sync::watch::Sender<u64>,
    /// An access key AWS refused that a refresh asked for then could not replace: later
    /// refusals of the same key do not wait for another refresh.
    unreplaceable: std::sync::Mutex<Option<String>>,
    /// The MFA device whose codes start each session, if the set has one.
    mfa: Option<Arc<mfa::Gate>>,
}

/// `Credentials`' own `Debug` redacts the secret key and session token.
#[derive(Debug, Default)]
struct State {
    credentials: Option<Credentials>,
    /// Why the last fetch failed, if it did; cleared by a success.
    last_error: Option<String>,
    /// The last fetch failed for want of a good MFA code.
    mfa_needed: bool,
}

impl CredentialSet {
    pub fn new(config: CredentialsConfig) -> Self {
        let mfa = config.mfa().map(|m| Arc::new(mfa::Gate::new(m.clone())));
        CredentialSet {
            mfa,
            config,
            state: RwLock::new(State::default()),
            refresh_requested: tokio::sync::Notify::new(),
            fetches: tokio::sync::watch::Sender::new(0),
            unreplaceable: std::sync::Mutex::new(None),
        }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The client whose own session of a `per_client` set this is.
    pub fn client(&self) -> Option<&str> {
        self.config.client.as_deref()
    }

    /// Where this set sits in a store.
    pub fn key(&self) -> SetKey {
        (self.config.name.clone(), self.config.client.clone())
    }

    pub fn config(&self) -> &CredentialsConfig {
        &self.config
    }

    pub fn mfa(&self) -> Option<&Arc<mfa::Gate>> {
        self.mfa.as_ref()
    }

    /// Credentials valid for signing now, or a 503-class error saying why there are none.
    pub fn current(&self) -> Result<Credentials, ProxyError> {
        self.with_current(Credentials::clone)
    }

    /// [`Self::current`]'s answer without the copy of the credentials (it allocates).
    pub fn check(&self) -> Result<(), ProxyError> {
        self.with_current(|_| ())
    }

    fn with_current<T>(&self, f: impl FnOnce(&Credentials) -> T) -> Result<T, ProxyError> {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        let unavailable =
            |state: &'static str, reason: String| ProxyError::CredentialsUnavailable {
                credentials: self.config.name.clone(),
                state,
                reason,
            };
        match &state.credentials {
            Some(creds) if is_usable(creds, SystemTime::now()) => Ok(f(creds)),
            _ if state.mfa_needed => Err(unavailable(
                "an MFA code is needed",
                state.last_error.clone().unwrap_or_default(),
            )),
            Some(_) => Err(match &state.last_error {
                Some(e) => unavailable(
                    "they expired and refreshing them failed",
                    format!("credentials expired and refreshing failed: {e}"),
                ),
                None => unavailable(
                    "they expired; a refresh is under way",
                    "credentials expired; a refresh is under way".into(),
                ),
            }),
            None if self.config.per_client.is_some() => Err(unavailable(
                "it holds one session per client",
                "this set is per_client: only a client's own session signs".into(),
            )),
            None => Err(match &state.last_error {
                Some(e) => unavailable("fetching them failed", e.clone()),
                None => unavailable(
                    "they are still being fetched",
                    "credentials are still being fetched".into(),
                ),
            }),
        }
    }

    /// When the held credentials expire (`None` if there are none or they never expire).
    pub fn expiry(&self) -> Option<SystemTime> {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        state.credentials.as_ref().and_then(|c| c.expiry())
    }

    /// Replaces the credentials held (the refresh loop does this; benchmarks and tests too).
    pub fn store(&self, credentials: Credentials) {
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        state.credentials = Some(credentials);
        state.last_error = None;
        state.mfa_needed = false;
        drop(state);
        self.fetches.send_modify(|n| *n += 1);
    }

    fn record_failure(&self, error: String) {
        let mfa_needed = self.mfa.as_ref().is_some_and(|g| g.needed());
        let error = if mfa_needed {
            format!("MFA code needed for {}: {error}", self.config.name)
        } else {
            error
        };
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        state.last_error = Some(error);
        state.mfa_needed = mfa_needed;
        drop(state);
        self.fetches.send_modify(|n| *n += 1);
    }

    /// After AWS refused `rejected` (expired or invalid token), asks the refresh loop for new
    /// credentials now and waits for its next fetch, at most 10 s. Returns credentials other
    /// than the rejected ones, or `None` if there are none to be had: at once for keys that
    /// do not expire (an IAM user's come back the same from any refresh) and for keys a
    /// refresh already failed to replace.
    pub async fn replace_rejected(&self, rejected: &Credentials) -> Option<Credentials> {
        rejected.expiry()?;
        let key = rejected.access_key_id();
        let differs = |c: &Credentials| c.access_key_id() != key;
        let mut fetches = self.fetches.subscribe();
        // Another request may have got them replaced already.
        if let Some(fresh) = self.current().ok().filter(differs) {
            return Some(fresh);
        }
        let unreplaceable = || self.unreplaceable.lock().unwrap_or_else(|p| p.into_inner());
        if unreplaceable().as_deref() == Some(key) {
            return None;
        }
        // Wakes the loop only if it is waiting; a fetch under way bumps `fetches` anyway.
        self.refresh_requested.notify_waiters();
        let _ = tokio::time::timeout(REFRESH_WAIT, fetches.changed()).await;
        let fresh = self.current().ok().filter(differs);
        if fresh.is_none() {
            *unreplaceable() = Some(key.to_string());
        }
        fresh
    }

    /// Resolves when a request has asked for a refresh (see [`Self::replace_rejected`]).
    pub async fn refresh_requested(&self) {
        self.refresh_requested.notified().await
    }
}

fn is_usable(creds: &Credentials, now: SystemTime) -> bool {
    match creds.expiry() {
        None => true,
        Some(expiry) => expiry
            .duration_since(now)
            .is_ok_and(|left| left >= MIN_REMAINING),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> CredentialSet {
        CredentialSet::new(CredentialsConfig::default_chain("app"))
    }

    fn creds(expiry: Option<SystemTime>) -> Credentials {
        Credentials::new(
            "AKIDEXAMPLE",
            "SECRETSECRET",
            Some("TOKENTOKEN".into()),
            expiry,
            "test",
        )
    }

    #[test]
    fn empty_set_is_unavailable_with_reason() {
        let s = set();
        let e = s.current().unwrap_err();
        assert_eq!(e.status(), 503);
        s.record_failure("AccessDenied on arn:aws:iam::123456789012:role/app".into());
        assert!(s
            .current()
            .unwrap_err()
            .to_string()
            .contains("AccessDenied"));
    }

    #[test]
    fn valid_credentials_are_served_and_expired_ones_are_not() {
        let s = set();
        s.store(creds(Some(SystemTime::now() + Duration::from_secs(600))));
        assert_eq!(s.current().unwrap().access_key_id(), "AKIDEXAMPLE");
        s.store(creds(Some(SystemTime::now() - Duration::from_secs(1))));
        assert!(s.current().is_err());
        s.store(creds(None));
        assert!(s.current().is_ok());
    }

    #[test]
    fn debug_output_has_no_secrets() {
        let s = set();
        s.store(creds(None));
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("SECRETSECRET"), "{dbg}");
        assert!(!dbg.contains("TOKENTOKEN"), "{dbg}");
    }
}
