//! Who may use the proxy, and for what. Anything that reaches the traffic port acts with the
//! routes' AWS roles, so these checks run before a request is routed or signed:
//!
//! - [`ClientAccess`]: the client's address must fall in `access.allowed_clients`, and with
//!   `access.bearer_token_file` / `bearer_token_env` it must send `Authorization: Bearer <token>`
//!   (compared in constant time; the header never goes upstream); or, with `access.clients`,
//!   each client its own token, and only its own routes ([`clients`]);
//! - [`browser`]: web pages are strangers (`Host`, `Origin`, CORS);
//! - [`policy`]: a route's `allow` list of methods or IAM actions on path patterns
//!   ([`pattern`]). Patterns match the path as it is sent upstream, percent-decoded (and,
//!   outside S3, with dot segments resolved), so no spelling of a path reaches more than the
//!   rule grants.

pub mod browser;
pub mod clients;
pub mod method_override;
pub mod pattern;
pub mod policy;

pub use pattern::PathPattern;
pub use policy::{AllowRule, Policy, Refusal};

use browser::BrowserPolicy;
use clients::Client;
use ipnet::IpNet;
use sha2::{Digest, Sha256};
use std::fmt;
use std::net::IpAddr;
use subtle::ConstantTimeEq;

/// Methods a route may list, and the only ones sigproxy forwards (others get 405: `TRACE`
/// would echo the signed headers, session token included, back to the client).
pub const FORWARDED_METHODS: &[&str] =
    &["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];

/// Why a request was refused; the `reason` label of `sigproxy_denied_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// The client's address is outside `access.allowed_clients`.
    ClientAddress,
    /// No bearer token, or the wrong one.
    BearerToken,
    /// The route's `allow` rules do not grant this method.
    Method,
    /// The route's `allow` rules grant the method, but not for this path.
    Path,
    /// The request's IAM action (an S3 sub-resource, a bucket operation, `X-Amz-Target`) is
    /// not granted, or cannot be classified.
    Action,
    /// The `Host` is not loopback, a route's `match.host` or in `access.allowed_hosts`.
    Host,
    /// A web page's request (`Origin`, `Sec-Fetch-Site`) from an origin not listed in
    /// `access.allowed_origins`.
    Origin,
    /// The client (`access.clients`) may not use this route, or no route it may use matches.
    ClientRoute,
    /// An S3 copy's source (`x-amz-copy-source`) is outside what the route reaches (its
    /// bucket and base path), or cannot be placed (a host that is not AWS's, its layout not
    /// stated), whatever the allow list.
    CopySource,
}

impl Denied {
    pub fn label(self) -> &'static str {
        match self {
            Denied::ClientAddress => "client_address",
            Denied::BearerToken => "bearer_token",
            Denied::Method => "method",
            Denied::Path => "path",
            Denied::Action => "action",
            Denied::Host => "host",
            Denied::Origin => "origin",
            Denied::ClientRoute => "client_route",
            Denied::CopySource => "copy_source",
        }
    }
}

/// A shared secret clients present as `Authorization: Bearer <token>`.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken {
    digest: [u8; 32],
}

impl BearerToken {
    /// The shortest token accepted: anything shorter is guessable.
    pub const MIN_LEN: usize = 16;

    pub fn new(token: &str) -> BearerToken {
        BearerToken {
            digest: Sha256::digest(token.as_bytes()).into(),
        }
    }

    /// The token a token file or variable holds (surrounding white space aside), if it is one:
    /// at least [`Self::MIN_LEN`] printable characters, without spaces.
    pub fn parse(text: &str) -> Option<BearerToken> {
        let text = text.trim();
        (text.len() >= Self::MIN_LEN && text.bytes().all(|b| b.is_ascii_graphic()))
            .then(|| BearerToken::new(text))
    }

    /// The token's SHA-256 (what is kept instead of the text): a reload compares tokens by it.
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// Whether an `Authorization` header value carries this token. Digests of equal length are
    /// compared in constant time, so neither the token's bytes nor its length leak by timing.
    pub fn accepts(&self, authorization: Option<&[u8]>) -> bool {
        let Some(value) = authorization else {
            return false;
        };
        clients::bearer(value).is_some_and(|presented| self.matches(presented))
    }

    /// Whether `presented` (the token itself, no scheme: the container-credentials protocol's
    /// `Authorization: <token>`) is this token, compared as [`Self::accepts`] compares.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.trim_ascii()).into();
        digest.ct_eq(&self.digest).into()
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(** redacted **)")
    }
}

/// Listener-wide checks on who the client is.
#[derive(Debug, Clone, Default)]
pub struct ClientAccess {
    /// Empty: every client that can reach the port.
    pub allowed_clients: Vec<IpNet>,
    pub bearer_token: Option<BearerToken>,
    /// Where the token was read from (`bearer_token_file`): a reload watches it too.
    pub bearer_token_file: Option<std::path::PathBuf>,
    /// `access.clients` (excludes `bearer_token`): each its own token and routes.
    pub clients: Vec<Client>,
    /// Which hosts and web origins are served (see [`browser`]).
    pub browser: BrowserPolicy,
}

impl ClientAccess {
    /// Whether the client's address (when known) is allowed.
    pub fn check_client(&self, client: Option<IpAddr>) -> Result<(), Denied> {
        if self.allowed_clients.is_empty() {
            return Ok(());
        }
        // An IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d.
        let allowed = client
            .map(|ip| ip.to_canonical())
            .is_some_and(|ip| self.allowed_clients.iter().any(|net| net.contains(&ip)));
        if allowed {
            Ok(())
        } else {
            Err(Denied::ClientAddress)
        }
    }

    /// Whether a request for `route` from `client` with `authorization`, admitted once, would
    /// be admitted now: its address, its token and (for a client of `access.clients`) its use
    /// of the route. For a connection that outlives a reload (a WebSocket).
    pub fn still_admits(
        &self,
        client: Option<IpAddr>,
        authorization: Option<&[u8]>,
        route: &str,
    ) -> bool {
        self.check_client(client).is_ok()
            && match self.check_token(authorization) {
                Ok(None) => true,
                Ok(Some(client)) => client.check_route(route).is_ok(),
                Err(_) => false,
            }
    }

    /// Whether a token is asked of every request (`bearer_token` or `clients`).
    pub fn wants_token(&self) -> bool {
        self.bearer_token.is_some() || !self.clients.is_empty()
    }

    /// Whether the request carries the bearer token, when one is required; with
    /// `access.clients`, the client whose token it carries.
    pub fn check_token(&self, authorization: Option<&[u8]>) -> Result<Option<&Client>, Denied> {
        if !self.clients.is_empty() {
            return authorization
                .and_then(clients::bearer)
                .and_then(|presented| clients::identify(&self.clients, presented))
                .map(Some)
                .ok_or(Denied::BearerToken);
        }
        match &self.bearer_token {
            Some(token) if !token.accepts(authorization) => Err(Denied::BearerToken),
            _ => Ok(None),
        }
    }
}

/// Whether the address is loopback (127.0.0.0/8, ::1, or ::ffff:127.x.y.z).
pub fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_token_needs_the_scheme_and_exact_value() {
        let token = BearerToken::new("0123456789abcdef");
        assert!(token.accepts(Some(b"Bearer 0123456789abcdef")));
        assert!(token.accepts(Some(b"bearer 0123456789abcdef")));
        assert!(!token.accepts(Some(b"Bearer 0123456789abcdeF")));
        assert!(!token.accepts(Some(b"Bearer 0123456789abcde")));
        assert!(!token.accepts(Some(b"Basic 0123456789abcdef")));
        assert!(!token.accepts(Some(b"0123456789abcdef")));
        assert!(!token.accepts(None));
        assert!(!format!("{token:?}").contains("0123"));
    }

    #[test]
    fn client_addresses_are_checked_against_cidrs() {
        let access = ClientAccess {
            allowed_clients: vec!["10.1.0.0/16".parse().unwrap(), "::1/128".parse().unwrap()],
            ..ClientAccess::default()
        };
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(access.check_client(ip("10.1.2.3")), Ok(()));
        assert_eq!(access.check_client(ip("::ffff:10.1.2.3")), Ok(()));
        assert_eq!(access.check_client(ip("::1")), Ok(()));
        assert_eq!(
            access.check_client(ip("10.2.0.1")),
            Err(Denied::ClientAddress)
        );
        assert_eq!(access.check_client(None), Err(Denied::ClientAddress));
        assert_eq!(ClientAccess::default().check_client(None), Ok(()));
        assert_eq!(ClientAccess::default().check_token(None), Ok(None));
    }
}
