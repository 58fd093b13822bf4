//! aws-sigv4-proxy's command line: the same flag names and meanings, no file needed.
//!
//! The flags are turned into the file's own structures (one route, one credential set) and go
//! through the same [`Checker`] as a file, so every rule a file obeys holds for them too. Errors
//! name the flag: `command line: --region: 'x y' is not a region name`.

use super::check::Checker;
use super::file::{self, OneOrMore};
use super::limits::DEFAULT_MAX_BUFFERED_BODY_BYTES;
use super::{Config, ConfigError};
use crate::upstream::edits::never_forwarded_when_signed;
use http::HeaderName;
use std::collections::BTreeMap;
use std::path::Path;
use tracing::{info, warn};

/// aws-sigv4-proxy's default `--transport.idle-conn-timeout`.
const GO_IDLE_TIMEOUT: &str = "40s";
/// The route and credential set the flags build.
const ROUTE: &str = "proxy";
const SET: &str = "default";
/// What a configuration built from flags names as its file.
const COMMAND_LINE: &str = "command line";

/// Which flag each checked key comes from; the first matching prefix wins.
const KEYS: &[(&str, &str)] = &[
    (
        "routes[0].upstream_from_host.allowed_hosts",
        "--allowed-upstream-hosts",
    ),
    (
        "routes[0].upstream_from_host.scheme",
        "--upstream-url-scheme",
    ),
    ("routes[0].upstream_from_host", "--host"),
    ("routes[0].upstream", "--host"),
    ("routes[0].service", "--name"),
    ("routes[0].region", "--region"),
    ("routes[0].sign_host", "--sign-host"),
    ("routes[0].payload", "--unsigned-payload"),
    ("routes[0].headers.add", "--custom-headers"),
    ("routes[0].headers.remove", "--strip"),
    ("routes[0].headers.duplicate", "--duplicate-headers"),
    ("routes[0].tls", "--no-verify-ssl"),
    ("routes[0].max_body_bytes", "--max-body-bytes"),
    ("routes[0].read_timeout", "--read-timeout"),
    ("max_buffered_body_bytes", "--max-buffered-body-bytes"),
    (
        "routes[0].upstream_idle_timeout",
        "--transport.idle-conn-timeout",
    ),
    ("credentials.default.assume_role.role_arn", "--role-arn"),
    ("credentials.default.assume_role.sts_region", "--region"),
    ("admin_listen", "--admin-listen"),
    ("listen", "--port"),
    ("access.allowed_clients", "--allowed-clients"),
    ("access.bearer_token_file", "--bearer-token-file"),
    ("access.allowed_hosts", "--allowed-hosts"),
    ("access.allowed_origins", "--allowed-origins"),
    ("access", "--port"),
];

/// Words of a file's keys in reasons, said as flags.
const REASONS: &[(&str, &str)] = &[
    ("access.allowed_clients", "--allowed-clients"),
    ("access.bearer_token_file", "--bearer-token-file"),
    ("access.allowed_hosts", "--allowed-hosts"),
    ("access.allowed_origins", "--allowed-origins"),
    (
        "upstream_from_host.allowed_hosts",
        "--allowed-upstream-hosts",
    ),
    ("set service and region", "set --name and --region"),
    ("set it (e.g. us-east-1)", "set --region"),
    (
        "raise max_buffered_body_bytes",
        "raise --max-buffered-body-bytes",
    ),
    ("routes[0].max_body_bytes", "--max-body-bytes"),
    ("the route's limit", "--max-body-bytes"),
];

impl Config {
    /// The configuration aws-sigv4-proxy's flags describe, checked as a file would be.
    pub fn from_flags(flags: &Flags) -> Result<Config, ConfigError> {
        let path = Path::new(COMMAND_LINE);
        let fail = |key: &str, reason: String| ConfigError {
            path: path.to_owned(),
            key: key.into(),
            reason,
        };
        let raw = to_file(flags).map_err(|(key, reason)| fail(key, reason))?;
        Checker {
            path,
            flags: true,
            kept: None,
        }
        .config(raw)
        .map_err(|e| {
            let key = flag_of(&e.key).map_or(e.key.clone(), str::to_string);
            let reason = REASONS
                .iter()
                .fold(e.reason, |r, (from, to)| r.replace(from, to));
            fail(&key, reason)
        })
    }
}

impl Config {
    /// How errors name a configuration key: the flag it came from when built from flags.
    pub fn key(&self, key: &'static str) -> &'static str {
        match self.path == Path::new(COMMAND_LINE) {
            true => flag_of(key).unwrap_or(key),
            false => key,
        }
    }
}

/// The flag a checked key comes from.
fn flag_of(key: &str) -> Option<&'static str> {
    KEYS.iter()
        .find(|(prefix, _)| {
            key.strip_prefix(prefix).is_some_and(|rest| {
                rest.is_empty() || rest.starts_with('.') || rest.starts_with('[')
            })
        })
        .map(|(_, flag)| *flag)
}

/// The file a user would have written for these flags; `Err((flag, reason))` for what only the
/// command line can get wrong.
fn to_file(f: &Flags) -> Result<file::File, (&'static str, String)> {
    let (listen, listen_wide) = address(f.port.as_deref(), "--port")?;
    let (admin_listen, admin_wide) = address(f.admin_listen.as_deref(), "--admin-listen")?;
    if let (Some(port), false) = (&f.port, listen_wide) {
        if port.starts_with(':') || !port.contains(':') {
            warn!(
                "--port {port}: aws-sigv4-proxy listened on all interfaces; sigproxy listens on \
                 loopback ({}). Use --port 0.0.0.0{} with --allowed-clients or \
                 --bearer-token-file to listen wider",
                listen.as_deref().unwrap_or_default(),
                port.rsplit_once(':')
                    .map_or(format!(":{port}"), |(_, p)| format!(":{p}"))
            );
        }
    }
    // An explicit wide address says it is meant; who may use it is still checked.
    let mut allow_non_loopback = Vec::new();
    if listen_wide {
        allow_non_loopback.push("listen".to_string());
    }
    if admin_wide {
        allow_non_loopback.push("admin_listen".to_string());
    }
    let access = file::Access {
        allow_non_loopback,
        allowed_clients: (!f.allowed_clients.is_empty()).then(|| f.allowed_clients.clone()),
        bearer_token_file: f.bearer_token_file.clone(),
        allowed_hosts: (!f.allowed_hosts.is_empty()).then(|| f.allowed_hosts.clone()),
        allowed_origins: (!f.allowed_origins.is_empty()).then(|| f.allowed_origins.clone()),
        ..Default::default()
    };

    // Go's URL parsing took `HTTP` as `http`.
    let scheme = f
        .upstream_url_scheme
        .as_deref()
        .map(str::to_ascii_lowercase);
    let (upstream, upstream_from_host) = match &f.host {
        Some(host) => {
            if host.contains("://") || host.contains('/') {
                return Err((
                    "--host",
                    format!("'{host}' is a host[:port]; the scheme is --upstream-url-scheme"),
                ));
            }
            let scheme = scheme.as_deref().unwrap_or("https");
            if !matches!(scheme, "http" | "https") {
                return Err((
                    "--upstream-url-scheme",
                    format!("'{scheme}' is not http or https"),
                ));
            }
            if !f.allowed_upstream_hosts.is_empty() {
                return Err((
                    "--allowed-upstream-hosts",
                    "is for running without --host (the Host header picks the upstream)".into(),
                ));
            }
            (Some(format!("{scheme}://{host}")), None)
        }
        None => {
            if f.sign_host.is_some() {
                return Err((
                    "--sign-host",
                    "needs --host: without it the request's Host is signed".into(),
                ));
            }
            let from = file::UpstreamFromHost {
                scheme,
                allowed_hosts: Some(f.allowed_upstream_hosts.clone()),
            };
            (None, Some(from))
        }
    };

    let mut add = BTreeMap::new();
    let mut ignored = Vec::new();
    for list in &f.custom_headers {
        for pair in list.split(',').filter(|p| !p.trim().is_empty()) {
            let Some((k, v)) = pair.split_once('=') else {
                return Err(("--custom-headers", format!("'{pair}' is not name=value")));
            };
            let k = k.trim();
            // aws-sigv4-proxy added custom headers after signing, where the request had none:
            // one sigproxy sets itself (Authorization, X-Amz-Date, Host, framing) was a no-op.
            if HeaderName::from_bytes(k.as_bytes()).is_ok_and(|n| never_forwarded_when_signed(&n)) {
                ignored.push(k.to_string());
                continue;
            }
            add.insert(k.to_string(), v.trim().to_string());
        }
    }
    if !ignored.is_empty() {
        warn!(
            "--custom-headers {}: sigproxy sets these itself (it signs the request and frames its \
             body); ignored, as they were by aws-sigv4-proxy, which never replaced them",
            ignored.join(", ")
        );
    }
    let strip = f.strip.iter().chain(&f.strip_header);
    if let Some(wild) = strip.clone().find(|h| h.ends_with('*')) {
        return Err((
            "--strip",
            format!("'{wild}': wildcards are not supported; name each header"),
        ));
    }
    // A client's `Authorization` (or date, token, framing) never reaches the upstream: stripping
    // it is already done, as it was in aws-sigv4-proxy, where it is a common flag.
    let (done, remove): (Vec<String>, Vec<String>) = strip.cloned().partition(|h| {
        HeaderName::from_bytes(h.trim().as_bytes()).is_ok_and(|n| never_forwarded_when_signed(&n))
    });
    if !done.is_empty() {
        info!(
            "--strip {}: sigproxy never sends a client's own (it signs the request and frames \
             its body itself); nothing to strip",
            done.join(", ")
        );
    }
    // aws-sigv4-proxy strips before it copies: a header both stripped and duplicated is not
    // sent at all, under either name (a client's credential stripped stays stripped).
    let stripped = |h: &String| {
        let h = h.trim();
        f.strip
            .iter()
            .chain(&f.strip_header)
            .any(|s| s.trim().eq_ignore_ascii_case(h))
    };
    let (gone, duplicate): (Vec<String>, Vec<String>) =
        f.duplicate_headers.iter().cloned().partition(stripped);
    if !gone.is_empty() {
        info!(
            "--duplicate-headers {}: stripped too (--strip), so not copied, as in aws-sigv4-proxy",
            gone.join(", ")
        );
    }
    let headers = file::Headers {
        add: (!add.is_empty()).then_some(add),
        remove: (!remove.is_empty()).then_some(remove),
        duplicate: (!duplicate.is_empty()).then_some(duplicate),
    };
    // As in aws-sigv4-proxy: --name and --region together name what is signed for; either one
    // alone does not, and the host says (--region alone is STS's region).
    let named = f.name.is_some() && f.region.is_some();
    if !named && (f.name.is_some() || f.region.is_some()) {
        let (given, missing) = match f.name.is_some() {
            true => ("--name", "--region"),
            false => ("--region", "--name"),
        };
        warn!(
            "{given} without {missing}: as in aws-sigv4-proxy, the service and region signed for \
             are read from the host{}",
            match f.region.is_some() && f.role_arn.is_some() {
                true => "; --region is STS's region",
                false => "",
            }
        );
    }
    let route = file::Route {
        name: Some(ROUTE.into()),
        matcher: None,
        strip_prefix: false,
        upstream,
        upstream_from_host,
        service: f.name.clone().filter(|_| named),
        region: f.region.clone().filter(|_| named),
        signing: None,
        region_set: None,
        credentials: Some(SET.into()),
        payload: f.unsigned_payload.then(|| "unsigned".into()),
        max_body_bytes: f.max_body_bytes,
        connect_timeout: None,
        read_timeout: f.read_timeout.clone(),
        allow: None,
        s3_addressing: None,
        sign_host: f.sign_host.clone(),
        headers: Some(headers),
        tls: f.no_verify_ssl.then_some(file::Tls {
            ca_file: None,
            server_name: None,
            insecure_skip_verify: Some(true),
        }),
        upstream_idle_timeout: Some(
            f.idle_conn_timeout
                .clone()
                .unwrap_or_else(|| GO_IDLE_TIMEOUT.into()),
        ),
        websocket: None,
    };
    let assume_role = f.role_arn.as_ref().map(|arn| {
        OneOrMore::One(file::AssumeRole {
            role_arn: Some(arn.clone()),
            session_name: None,
            external_id: None,
            duration_seconds: None,
            // aws-sigv4-proxy's session region: --region, else the environment's.
            sts_region: f.region.clone(),
            sts_endpoint: None,
            mfa: None,
        })
    });
    let set = file::CredentialSet {
        source: None,
        profile: None,
        assume_role,
        session_token: None,
        federation_token: None,
        refresh_before_expiry: None,
        per_client: None,
    };
    Ok(file::File {
        listen,
        admin_listen,
        tls: None,
        admin_tls: None,
        threads: None,
        shutdown_delay: None,
        shutdown_grace: None,
        upgrade_socket: None,
        access: Some(access),
        max_header_bytes: None,
        keepalive_timeout: None,
        request_header_timeout: None,
        client_write_timeout: None,
        request_body_timeout: None,
        min_request_body_rate: None,
        max_connections: None,
        max_websocket_connections: None,
        // One body of --max-body-bytes must fit, whatever the default budget.
        max_buffered_body_bytes: f.max_buffered_body_bytes.or_else(|| {
            f.max_body_bytes
                .filter(|&n| n > DEFAULT_MAX_BUFFERED_BODY_BYTES as u64)
        }),
        credential_endpoint: None,
        credentials: BTreeMap::from([(SET.to_string(), set)]),
        routes: vec![route],
    })
}

/// `--port` / `--admin-listen`: `:P` or `P` is loopback; an explicit address is taken as is.
/// Returns the address for the file and whether it was explicitly not loopback.
fn address(
    value: Option<&str>,
    flag: &'static str,
) -> Result<(Option<String>, bool), (&'static str, String)> {
    let Some(value) = value.map(str::trim) else {
        return Ok((None, false));
    };
    let port = value.strip_prefix(':').unwrap_or(value);
    if port.parse::<u16>().is_ok() {
        return Ok((Some(format!("127.0.0.1:{port}")), false));
    }
    let addr: std::net::SocketAddr = value.parse().map_err(|_| {
        (
            flag,
            format!("'{value}' is not a port (:8080) or an address and port (0.0.0.0:8080)"),
        )
    })?;
    Ok((
        Some(value.to_string()),
        !crate::access::is_loopback(addr.ip()),
    ))
}

mod args;
#[cfg(test)]
mod tests;

pub use args::Flags;
