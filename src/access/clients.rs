//! `access.clients`: callers with a name, a bearer token of their own and the routes they may
//! use. With them, a request is made on behalf of the client whose token it carries; a credential
//! set with `per_client: true` signs it with that client's own AWS session (see
//! [`crate::config::CredentialsConfig::for_client`]).
//!
//! A presented token is hashed once and compared with every client's token in constant time,
//! all of them, whichever matches: neither which client it is nor how far down the list it
//! sits shows in the time taken.

use super::{BearerToken, Denied};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::PathBuf;
use subtle::{ConditionallySelectable, ConstantTimeEq};

/// One `access.clients` entry. `Debug` shows its name and routes, never its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub name: String,
    pub token: BearerToken,
    /// Where the token was read from (`token_file`): a reload watches it.
    pub token_file: Option<PathBuf>,
    /// The names of the routes it may use.
    pub routes: BTreeSet<String>,
    /// Its token may fetch its own session of the credential endpoint's (`per_client`) set.
    pub credential_endpoint: bool,
}

impl Client {
    /// Whether this client may use the route named `route`.
    pub fn check_route(&self, route: &str) -> Result<(), Denied> {
        if self.routes.contains(route) {
            Ok(())
        } else {
            Err(Denied::ClientRoute)
        }
    }
}

/// Which client, if any, `presented` (a token, no scheme) belongs to.
pub fn identify<'a>(clients: &'a [Client], presented: &[u8]) -> Option<&'a Client> {
    let digest: [u8; 32] = Sha256::digest(presented.trim_ascii()).into();
    // Index + 1 of the match, 0 for none; every token is compared, the loop never stops early.
    let mut found = 0u32;
    for (i, client) in clients.iter().enumerate() {
        let candidate = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let hit = client.token.digest().ct_eq(&digest);
        found = u32::conditional_select(&found, &candidate, hit);
    }
    found.checked_sub(1).and_then(|i| clients.get(i as usize))
}

/// The token of an `Authorization: Bearer <token>` value, if it has that scheme.
pub fn bearer(authorization: &[u8]) -> Option<&[u8]> {
    authorization
        .get(..7)
        .filter(|scheme| scheme.eq_ignore_ascii_case(b"bearer "))
        .map(|_| &authorization[7..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(name: &str, token: &str, routes: &[&str]) -> Client {
        Client {
            name: name.into(),
            token: BearerToken::new(token),
            token_file: None,
            routes: routes.iter().map(|r| r.to_string()).collect(),
            credential_endpoint: false,
        }
    }

    #[test]
    fn a_token_names_its_client_and_only_that_one() {
        let clients = [
            client("alpha", "alpha-token-0123456789", &["a"]),
            client("beta", "beta-token-0123456789", &["b"]),
        ];
        assert_eq!(
            identify(&clients, b"beta-token-0123456789").map(|c| c.name.as_str()),
            Some("beta")
        );
        assert_eq!(
            identify(&clients, b"alpha-token-0123456789").map(|c| c.name.as_str()),
            Some("alpha")
        );
        assert!(identify(&clients, b"beta-token-012345678").is_none());
        assert!(identify(&clients, b"").is_none());
        assert!(identify(&[], b"beta-token-0123456789").is_none());
        assert_eq!(bearer(b"Bearer xyz"), Some(&b"xyz"[..]));
        assert_eq!(bearer(b"Basic xyz"), None);
    }

    #[test]
    fn a_client_uses_its_routes_only_and_debug_hides_its_token() {
        let c = client("alpha", "alpha-token-0123456789", &["a"]);
        assert_eq!(c.check_route("a"), Ok(()));
        assert_eq!(c.check_route("b"), Err(Denied::ClientRoute));
        assert!(!format!("{c:?}").contains("alpha-token"));
    }
}
