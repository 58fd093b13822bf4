//! Validation: the file's raw structures checked, key by key, into the internal types.
//!
//! This file holds the [`Checker`], the file's top level and the character sets that names are
//! checked against; each part of the file has its own: `listeners.rs` (addresses, their TLS files, threads, the
//! upgrade socket), `access.rs`, `credentials.rs`, `route.rs`, `signing.rs`, `upstream.rs`,
//! `from_host.rs`, `credential_endpoint.rs`, `clients.rs`, `limits.rs` and `shutdown.rs`. Each raw structure is taken apart whole
//! (`let file::Route { name, .. every field .. } = raw;`), so a key added to the file format
//! cannot go unchecked without the compiler saying so.

use super::file;
use super::*;
use crate::access::browser::host_name;
use std::ops::RangeInclusive;

pub(super) struct Checker<'a> {
    pub(super) path: &'a Path,
    /// Built from aws-sigv4-proxy's flags: an unsigned payload is allowed for any service, as
    /// that tool allows it.
    pub(super) flags: bool,
    /// A reload's: the tokens in force, kept when their files cannot give one now.
    pub(super) kept: Option<&'a KeptTokens>,
}

impl Checker<'_> {
    pub(super) fn err<T>(
        &self,
        key: impl Into<String>,
        reason: impl Into<String>,
    ) -> Result<T, ConfigError> {
        Err(ConfigError {
            path: self.path.to_owned(),
            key: key.into(),
            reason: reason.into(),
        })
    }

    pub(super) fn config(&self, raw: file::File) -> Result<Config, ConfigError> {
        let file::File {
            listen,
            admin_listen,
            tls,
            admin_tls,
            threads,
            shutdown_delay,
            shutdown_grace,
            upgrade_socket,
            access,
            max_header_bytes,
            keepalive_timeout,
            request_header_timeout,
            client_write_timeout,
            request_body_timeout,
            min_request_body_rate,
            max_connections,
            max_websocket_connections,
            max_buffered_body_bytes,
            credential_endpoint,
            credentials,
            routes,
        } = raw;
        let tokens_env = tokens_env(access.as_ref(), credential_endpoint.as_ref());
        let (listen, admin_listen) = self.listeners(listen.as_deref(), admin_listen.as_deref())?;
        let tls = self.listener_tls("tls", tls)?;
        let admin_tls = self.listener_tls("admin_tls", admin_tls)?;
        let mut credentials = self.credential_sets(credentials)?;
        for set in credentials.values_mut() {
            let mfa = set.assume_role.iter_mut().filter_map(|r| r.mfa.as_mut());
            for mfa in mfa.chain(set.sts_token.iter_mut().filter_map(|t| t.mfa.as_mut())) {
                mfa.withheld_env = tokens_env.clone();
            }
        }
        let mut listeners = vec![("listen", listen)];
        listeners.extend(admin_listen.map(|a| ("admin_listen", a)));
        let credential_endpoint =
            self.credential_endpoint(credential_endpoint, &credentials, &listeners)?;
        if let Some(endpoint) = &credential_endpoint {
            listeners.push(("credential_endpoint.listen", endpoint.listen));
        }
        let (mut access, clients) = self.access(access, &listeners)?;
        let max_header_bytes = self.max_header_bytes(max_header_bytes)?;
        let threads = self.threads(threads)?;
        let shutdown = self.shutdown(shutdown_delay.as_deref(), shutdown_grace.as_deref())?;
        let upgrade_socket = self.upgrade_socket(upgrade_socket, listen.port())?;
        // Routes named in the file: a default name (`route<i>`) moves with the route's place.
        let named: Vec<String> = routes.iter().filter_map(|r| r.name.clone()).collect();
        let routes = self.routes(routes, &credentials)?;
        access.clients = self.clients(clients, &routes, &named)?;
        self.per_client_uses(
            &credentials,
            &access.clients,
            &routes,
            credential_endpoint.as_ref(),
        )?;
        self.session_names_unclaimed(&credentials, &access.clients, &routes)?;
        // The endpoint's token fetches its set's raw credentials, outside every route's `allow`
        // rules; the traffic port's token must not be that key too.
        if let Some(endpoint) = &credential_endpoint {
            if endpoint.token.is_some() && endpoint.token == access.bearer_token {
                let key = if endpoint.token_file.is_some() {
                    "credential_endpoint.authorization_token_file"
                } else {
                    "credential_endpoint.authorization_token_env"
                };
                return self.err(
                    key,
                    "is the traffic port's bearer token: whoever may use the routes could fetch \
                     the endpoint's credentials, outside the routes' allow rules; give each its \
                     own",
                );
            }
        }
        // A route's own host is a name clients reach sigproxy by.
        access.browser.hosts.extend(
            routes
                .iter()
                .filter_map(|r| r.host.as_deref())
                .map(host_name),
        );
        // A page's blind GET to a name that leads here over plain HTTP carries nothing that
        // gives it away (no Fetch Metadata outside loopback and HTTPS, no Origin on a GET).
        let named: Vec<&str> = access
            .browser
            .hosts
            .iter()
            .map(String::as_str)
            .filter(|h| !crate::access::browser::is_loopback_name(h))
            .collect();
        if !named.is_empty() && tls.is_none() && !access.wants_token() {
            tracing::warn!(
                hosts = %named.join(","),
                "plain HTTP on names that are not loopback, and no bearer token: a web page can \
                 make blind GET requests through sigproxy by those names (browsers send no \
                 Sec-Fetch-Site to them). Require a bearer token (access.bearer_token_file, or \
                 access.clients), or serve HTTPS (tls)"
            );
        }
        // A from-host route's Host names its upstream: AWS endpoints (over https) and its
        // listed hosts.
        for from in routes.iter().filter_map(|r| r.from_host.as_ref()) {
            access.browser.aws_endpoints |= from.serves_aws_endpoints();
            access.browser.hosts.extend(from.listed_names());
        }
        let limits = self.limits(
            super::limits::Raw {
                keepalive_timeout: keepalive_timeout.as_deref(),
                request_header_timeout: request_header_timeout.as_deref(),
                client_write_timeout: client_write_timeout.as_deref(),
                request_body_timeout: request_body_timeout.as_deref(),
                min_request_body_rate,
                max_connections,
                max_websocket_connections,
                max_buffered_body_bytes,
            },
            &routes,
        )?;

        Ok(Config {
            path: self.path.to_owned(),
            listen,
            admin_listen,
            tls,
            admin_tls,
            threads,
            shutdown_delay: shutdown.delay,
            shutdown_grace: shutdown.grace,
            access,
            max_header_bytes,
            limits,
            upgrade_socket,
            credential_endpoint,
            credentials,
            routes,
        })
    }

    pub(super) fn duration(
        &self,
        key: &str,
        value: Option<&str>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        match value {
            None => Ok(default),
            Some(text) => match humantime::parse_duration(text) {
                Ok(d) if !d.is_zero() => Ok(d),
                Ok(_) => self.err(key, "must be greater than zero"),
                Err(e) => self.err(
                    key,
                    format!("'{text}' is not a duration like 5s or 2m: {e}"),
                ),
            },
        }
    }
}

/// Whether `c` is an ASCII letter or digit, or one of `extra`: the one character-set check
/// behind every name, id and host the file holds.
pub(super) fn word_char(c: char, extra: &str) -> bool {
    c.is_ascii_alphanumeric() || extra.contains(c)
}

/// Whether `text` is `len` bytes long and made of [`word_char`]s only.
pub(super) fn is_word(text: &str, len: RangeInclusive<usize>, extra: &str) -> bool {
    len.contains(&text.len()) && text.chars().all(|c| word_char(c, extra))
}

/// Route and credential set names: letters, digits, `-` and `_`.
pub(super) fn valid_name(name: &str) -> bool {
    is_word(name, 1..=64, "-_")
}

/// Region and signing names: lowercase words joined by `-` (`eu-west-1`, `execute-api`).
pub(super) fn is_lowercase_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The environment variables the file reads tokens from.
fn tokens_env(
    access: Option<&file::Access>,
    endpoint: Option<&file::CredentialEndpoint>,
) -> Vec<String> {
    let mut names = Vec::new();
    if let Some(access) = access {
        names.extend(access.bearer_token_env.clone());
        let clients = access.clients.iter().flatten();
        names.extend(clients.filter_map(|c| c.token_env.clone()));
    }
    names.extend(endpoint.and_then(|e| e.authorization_token_env.clone()));
    names
}
