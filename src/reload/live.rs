//! What a reload swaps: the routes, the access rules and the credential sets, as one value.

use crate::access::ClientAccess;
use crate::config::{Config, CredentialEndpointConfig};
use crate::credentials::CredentialStore;
use crate::route::Router;
use arc_swap::ArcSwap;
use std::collections::BTreeSet;
use std::sync::Arc;

/// The configuration in force. A request loads it once, when it is admitted, and keeps what it
/// took (its route holds its signer and credential set): a reload changes what the next
/// request sees, never one under way.
#[derive(Debug)]
pub struct Snapshot {
    pub router: Router,
    /// Client address and bearer token checks, and the browser policy (admin port included).
    pub access: ClientAccess,
    pub store: CredentialStore,
    /// Credential sets some route signs with or the credential endpoint serves; only these
    /// decide readiness.
    pub needed: BTreeSet<String>,
    /// The credential endpoint's set and token (its listener is the process's, fixed at start).
    pub credential_endpoint: Option<CredentialEndpointConfig>,
}

/// Shared by the proxy, the admin listener and the reloader.
pub type Live = Arc<ArcSwap<Snapshot>>;

impl Snapshot {
    pub fn new(config: &Config, store: CredentialStore) -> Snapshot {
        let router = Router::new(config, &store);
        let mut needed: BTreeSet<String> = router.credential_sets().into_iter().collect();
        needed.extend(
            config
                .credential_endpoint
                .iter()
                .map(|e| e.credentials.clone()),
        );
        Snapshot {
            router,
            access: config.access.clone(),
            store,
            needed,
            credential_endpoint: config.credential_endpoint.clone(),
        }
    }

    /// The handle the rest of the process shares.
    pub fn live(self) -> Live {
        Arc::new(ArcSwap::from_pointee(self))
    }
}

/// The credential sets `config`'s routes sign with and its credential endpoint serves, known
/// before any route is built.
pub fn needed_sets(config: &Config) -> BTreeSet<String> {
    let endpoint = config
        .credential_endpoint
        .iter()
        .map(|e| e.credentials.clone());
    config
        .routes
        .iter()
        .filter_map(|r| match (&r.signing, &r.from_host) {
            (Some(s), _) => Some(s.credentials.clone()),
            (None, Some(from)) => Some(from.credentials().to_string()),
            (None, None) => None,
        })
        .chain(endpoint)
        .collect()
}
