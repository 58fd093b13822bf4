//! Validation of the access-control keys: `access` (who may use the traffic port) and each
//! route's `allow` list (what it may be used for).

use super::check::{word_char, Checker};
use super::file;
use super::kept::token_file_state;
use super::ConfigError;
use crate::access::browser::{host_name, BrowserPolicy};
use crate::access::{AllowRule, BearerToken, ClientAccess, PathPattern, FORWARDED_METHODS};
use crate::actions::ActionPattern;
use std::net::SocketAddr;

/// Why a token file or variable's text is no token.
fn no_token() -> String {
    format!(
        "the token must be at least {} printable characters, without spaces",
        BearerToken::MIN_LEN
    )
}

impl Checker<'_> {
    /// `access`, checked against the addresses sigproxy is to listen on; `clients` is
    /// handed back as read, to be checked once the routes are known ([`Checker::clients`]).
    pub(super) fn access(
        &self,
        raw: Option<file::Access>,
        listeners: &[(&str, SocketAddr)],
    ) -> Result<(ClientAccess, Option<Vec<file::Client>>), ConfigError> {
        let file::Access {
            allow_non_loopback,
            allowed_clients: raw_clients,
            bearer_token_file,
            bearer_token_env,
            allowed_hosts,
            allowed_origins,
            clients,
        } = raw.unwrap_or_default();
        if clients.is_some() {
            if let Some(key) = [
                ("bearer_token_file", bearer_token_file.is_some()),
                ("bearer_token_env", bearer_token_env.is_some()),
            ]
            .iter()
            .find_map(|(key, set)| set.then_some(key))
            {
                return self.err(
                    format!("access.{key}"),
                    "clients and a single bearer token exclude each other: with access.clients, \
                     each client sends its own token",
                );
            }
        }
        // A listener's name in `allow_non_loopback` is its key's first part
        // (`credential_endpoint.listen` → `credential_endpoint`).
        let name_of = |key: &str| key.split('.').next().unwrap_or(key).to_string();
        for (i, name) in allow_non_loopback.iter().enumerate() {
            if !listeners.iter().any(|(key, _)| name_of(key) == *name) {
                let names: Vec<String> = listeners.iter().map(|(key, _)| name_of(key)).collect();
                return self.err(
                    format!("access.allow_non_loopback[{i}]"),
                    format!(
                        "'{name}' is not a listener; expected one of {}",
                        names.join(", ")
                    ),
                );
            }
        }
        // An empty list, or one that admits every address, limits nothing.
        let limits_clients = raw_clients.as_ref().is_some_and(|list| {
            !list.is_empty()
                && !list
                    .iter()
                    .any(|c| matches!(c.trim(), "0.0.0.0/0" | "::/0" | "::ffff:0.0.0.0/96"))
        });
        let guarded = limits_clients
            || bearer_token_file.is_some()
            || bearer_token_env.is_some()
            || clients.as_ref().is_some_and(|c| !c.is_empty());
        for (key, addr) in listeners {
            if crate::access::is_loopback(addr.ip()) {
                continue;
            }
            let name = name_of(key);
            if !allow_non_loopback.contains(&name) {
                let why = match name.as_str() {
                    "listen" => {
                        "anything that can reach it acts with the routes' AWS credentials. Add \
                         listen to access.allow_non_loopback to mean it, and limit who can with \
                         access.allowed_clients or access.bearer_token_file"
                    }
                    "credential_endpoint" => {
                        "it hands out AWS credentials to whoever holds its token. Add \
                         credential_endpoint to access.allow_non_loopback to mean it"
                    }
                    _ => {
                        "it serves health and metrics. Add admin_listen to \
                         access.allow_non_loopback to mean it"
                    }
                };
                return self.err(*key, format!("{addr} is not a loopback address: {why}"));
            }
            if *key == "listen" && !guarded {
                return self.err(
                    "access",
                    format!(
                        "listen {addr} is not loopback, and nothing limits who may use it: \
                         anyone who can reach it acts with the routes' AWS credentials. Set \
                         access.allowed_clients (CIDRs) or access.bearer_token_file"
                    ),
                );
            }
        }
        let mut allowed_clients = Vec::new();
        for (i, cidr) in raw_clients.unwrap_or_default().iter().enumerate() {
            let net = cidr
                .parse::<ipnet::IpNet>()
                .or_else(|_| cidr.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
            match net {
                Ok(net) => allowed_clients.push(net.trunc()),
                Err(_) => {
                    return self.err(
                        format!("access.allowed_clients[{i}]"),
                        format!("'{cidr}' is not an address or CIDR such as 10.0.0.0/8"),
                    )
                }
            }
        }
        let token_file = bearer_token_file.clone().map(std::path::PathBuf::from);
        let bearer_token = self.token(
            "access.bearer_token_file",
            ("access.bearer_token_file", bearer_token_file),
            ("access.bearer_token_env", bearer_token_env),
        )?;
        let hosts = self.list("access.allowed_hosts", allowed_hosts, host_entry)?;
        let origins = self.list("access.allowed_origins", allowed_origins, origin_entry)?;
        let access = ClientAccess {
            allowed_clients,
            bearer_token,
            bearer_token_file: token_file,
            clients: Vec::new(),
            browser: BrowserPolicy {
                hosts: hosts.unwrap_or_default(),
                origins: origins.unwrap_or_default(),
                aws_endpoints: false,
            },
        };
        Ok((access, clients))
    }

    /// A secret token read from a file or an environment variable (`(key, value)` each; they
    /// exclude each other): at least [`BearerToken::MIN_LEN`] printable characters.
    pub(super) fn token(
        &self,
        owner: &str,
        (file_key, file): (&str, Option<String>),
        (env_key, env): (&str, Option<String>),
    ) -> Result<Option<BearerToken>, ConfigError> {
        let (key, text) = match (file, env) {
            (Some(_), Some(_)) => {
                let file_name = file_key.rsplit('.').next().unwrap_or(file_key);
                let env_name = env_key.rsplit('.').next().unwrap_or(env_key);
                return self.err(
                    env_key,
                    format!("{file_name} and {env_name} exclude each other"),
                );
            }
            (Some(path), None) => {
                let read = std::fs::read_to_string(&path);
                let state = token_file_state(&read);
                let token = read
                    .map_err(|e| format!("cannot read {path}: {e}"))
                    .and_then(|text| BearerToken::parse(&text).ok_or_else(no_token));
                return match token {
                    Ok(token) => Ok(Some(token)),
                    Err(why) => {
                        let whose = (self.path, file_key, owner);
                        match self.kept.and_then(|k| k.keep(whose, &path, &why, state)) {
                            Some(token) => Ok(Some(token)),
                            None => self.err(file_key, why),
                        }
                    }
                };
            }
            (None, Some(name)) => (
                env_key,
                std::env::var(&name).or_else(|_| {
                    self.err(
                        env_key,
                        format!("the environment variable {name} is not set"),
                    )
                })?,
            ),
            (None, None) => return Ok(None),
        };
        match BearerToken::parse(&text) {
            Some(token) => Ok(Some(token)),
            None => self.err(key, no_token()),
        }
    }

    /// A route's `allow` list.
    /// A route's `allow` list; `service` is the route's signing name (`None`: unsigned).
    pub(super) fn allow_rules(
        &self,
        key: &str,
        raw: Option<Vec<file::Allow>>,
        service: Option<&str>,
    ) -> Result<Vec<AllowRule>, ConfigError> {
        let Some(raw) = raw else {
            return Ok(Vec::new());
        };
        if raw.is_empty() {
            return self.err(
                key,
                "must list at least one rule (or be left out to allow all)",
            );
        }
        let mut rules = Vec::with_capacity(raw.len());
        for (i, rule) in raw.into_iter().enumerate() {
            let key = format!("{key}[{i}]");
            let file::Allow {
                methods,
                actions,
                paths,
            } = rule;
            if methods.is_some() && actions.is_some() {
                return self.err(
                    format!("{key}.actions"),
                    "a rule lists methods or actions, not both (write two rules)",
                );
            }
            let actions =
                self.list(&format!("{key}.actions"), actions, |a| {
                    let pattern = ActionPattern::parse(a)?;
                    match service {
                        None => Err("actions need a signed route: its service names the actions"
                            .to_string()),
                        Some(s) if pattern.service() != s => Err(format!(
                            "'{a}' is not an action of {s}, the service this route signs for"
                        )),
                        // Their APIs are REST, and their requests reach the user's own code:
                        // no X-Amz-Target or Action names what such a request does.
                        Some(s @ ("lambda" | "execute-api")) => Err(format!(
                            "{s} requests are told apart by method and path, not by a named \
                             operation: list methods and paths instead"
                        )),
                        Some(_) => Ok(pattern),
                    }
                })?;
            let methods = self.list(&format!("{key}.methods"), methods, |m| {
                let upper = m.to_ascii_uppercase();
                if FORWARDED_METHODS.contains(&upper.as_str()) {
                    Ok(upper.parse().expect("a standard method"))
                } else {
                    Err(format!(
                        "'{m}' is not one of {}",
                        FORWARDED_METHODS.join(", ")
                    ))
                }
            })?;
            let paths = self.list(&format!("{key}.paths"), paths, PathPattern::parse)?;
            rules.push(AllowRule {
                methods,
                actions,
                paths,
            });
        }
        Ok(rules)
    }

    /// An optional list that, when given, is not empty and whose every item `parse` accepts.
    pub(super) fn list<T>(
        &self,
        key: &str,
        raw: Option<Vec<String>>,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<Vec<T>>, ConfigError> {
        let Some(raw) = raw else {
            return Ok(None);
        };
        if raw.is_empty() {
            return self.err(key, "must not be empty");
        }
        let mut items = Vec::with_capacity(raw.len());
        for (i, text) in raw.iter().enumerate() {
            match parse(text) {
                Ok(item) => items.push(item),
                Err(why) => return self.err(format!("{key}[{i}]"), why),
            }
        }
        Ok(Some(items))
    }
}

/// An `access.allowed_hosts` entry: a host name or address as clients write it in `Host`,
/// without scheme, port or path.
fn host_entry(text: &str) -> Result<String, String> {
    let name = host_name(text);
    let valid = !name.is_empty()
        && !text.contains("://")
        && name.chars().all(|c| word_char(c, "-._:"))
        && !name.starts_with('.');
    if !valid {
        return Err(format!(
            "'{text}' is not a host name or address such as sigproxy.tools.svc"
        ));
    }
    if text.contains(':') && !text.contains('[') && name.parse::<std::net::Ipv6Addr>().is_err() {
        return Err(format!("'{text}': list the name without a port"));
    }
    Ok(name)
}

/// An `access.allowed_origins` entry: `http[s]://host[:port]`, exactly as browsers send
/// `Origin` (no path, no wildcard).
fn origin_entry(text: &str) -> Result<String, String> {
    let lower = text.trim().to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"));
    let valid =
        rest.is_some_and(|host| !host.is_empty() && host.chars().all(|c| word_char(c, "-.:[]")));
    if !valid {
        return Err(format!(
            "'{text}' is not an origin such as https://app.example.com (scheme, host and \
             port only; no path, no wildcard)"
        ));
    }
    Ok(lower)
}
