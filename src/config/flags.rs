//! aws-sigv4-proxy's command line: the same flag names and meanings, no file needed.
//!
//! The flags are turned into the file's own structures (one route, one credential set) and go
//! through the same [`Checker`] as a file, so every rule a file obeys holds for them too. Errors
//! name the flag: `command line: --region: 'x y' is not a region name`.

use super::check::Checker;
use super::file::{self, OneOrMore};
use super::{Config, ConfigError};
use std::collections::BTreeMap;
use std::path::Path;
use tracing::info;

/// aws-sigv4-proxy's default `--transport.idle-conn-timeout`.
const GO_IDLE_TIMEOUT: &str = "40s";
/// The route and credential set the flags build.
const ROUTE: &str = "proxy";
const SET: &str = "default";

/// The flags, as aws-sigv4-proxy names them (plus sigproxy's access and admin flags).
#[derive(Debug, Default, Clone, clap::Args)]
pub struct Flags {
    /// AWS service to sign for (the signing name, e.g. aps, es, execute-api). Default: read
    /// from the host.
    #[arg(long, value_name = "SERVICE")]
    pub name: Option<String>,
    /// AWS region to sign for. Default: read from the host.
    #[arg(long)]
    pub region: Option<String>,
    /// Host to proxy to (`host[:port]`). Without it, each request's Host picks the upstream:
    /// AWS endpoints and --allowed-upstream-hosts only.
    #[arg(long)]
    pub host: Option<String>,
    /// Host to sign for (and send as Host), when it differs from --host.
    #[arg(long)]
    pub sign_host: Option<String>,
    /// IAM role to assume on top of the default credential chain.
    #[arg(long)]
    pub role_arn: Option<String>,
    /// Protocol to proxy with: https (default) or http.
    #[arg(long, value_name = "SCHEME")]
    pub upstream_url_scheme: Option<String>,
    /// Sign the body as UNSIGNED-PAYLOAD (any service, as aws-sigv4-proxy does).
    #[arg(long)]
    pub unsigned_payload: bool,
    /// Header to strip from requests (repeatable).
    #[arg(short = 's', long = "strip", value_name = "HEADER")]
    pub strip: Vec<String>,
    /// Header to strip from requests (repeatable); the same as --strip.
    #[arg(long = "strip-header", value_name = "HEADER")]
    pub strip_header: Vec<String>,
    /// Headers to set on every request: `name=value,name=value` (repeatable).
    #[arg(long, value_name = "K=V,...")]
    pub custom_headers: Vec<String>,
    /// Header to copy to `X-Original-<name>` (repeatable).
    #[arg(long, value_name = "HEADER")]
    pub duplicate_headers: Vec<String>,
    /// Address to serve on: `:8080` (loopback), `127.0.0.1:8080`, or `0.0.0.0:8080` (needs
    /// --allowed-clients or --bearer-token-file).
    #[arg(long, value_name = "[ADDR]:PORT")]
    pub port: Option<String>,
    /// Do not check the upstream's TLS certificate.
    #[arg(long)]
    pub no_verify_ssl: bool,
    /// How long an idle upstream connection is kept (default 40s).
    #[arg(long = "transport.idle-conn-timeout", value_name = "DURATION")]
    pub idle_conn_timeout: Option<String>,
    /// Address of /healthz, /readyz and /metrics (default 127.0.0.1:9901).
    #[arg(long, value_name = "ADDR:PORT")]
    pub admin_listen: Option<String>,
    /// CIDRs allowed on the traffic port (comma-separated or repeated).
    #[arg(long, value_delimiter = ',', value_name = "CIDR")]
    pub allowed_clients: Vec<String>,
    /// File holding the bearer token clients must send.
    #[arg(long, value_name = "FILE")]
    pub bearer_token_file: Option<String>,
    /// Without --host: hosts served besides AWS endpoints (`name` or `name:port`,
    /// comma-separated or repeated).
    #[arg(long, value_delimiter = ',', value_name = "HOST")]
    pub allowed_upstream_hosts: Vec<String>,
}

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
    ("access", "--port"),
];

/// Words of a file's keys in reasons, said as flags.
const REASONS: &[(&str, &str)] = &[
    ("access.allowed_clients", "--allowed-clients"),
    ("access.bearer_token_file", "--bearer-token-file"),
    ("set service and region", "set --name and --region"),
    ("set it (e.g. us-east-1)", "set --region"),
];

impl Flags {
    /// Whether any flag that builds a configuration is given.
    pub fn any(&self) -> bool {
        let f = self;
        f.name.is_some()
            || f.region.is_some()
            || f.host.is_some()
            || f.sign_host.is_some()
            || f.role_arn.is_some()
            || f.upstream_url_scheme.is_some()
            || f.unsigned_payload
            || !f.strip.is_empty()
            || !f.strip_header.is_empty()
            || !f.custom_headers.is_empty()
            || !f.duplicate_headers.is_empty()
            || f.port.is_some()
            || f.no_verify_ssl
            || f.idle_conn_timeout.is_some()
            || f.admin_listen.is_some()
            || !f.allowed_clients.is_empty()
            || f.bearer_token_file.is_some()
            || !f.allowed_upstream_hosts.is_empty()
    }
}

impl Config {
    /// The configuration aws-sigv4-proxy's flags describe, checked as a file would be.
    pub fn from_flags(flags: &Flags) -> Result<Config, ConfigError> {
        let path = Path::new("command line");
        let fail = |key: &str, reason: String| ConfigError {
            path: path.to_owned(),
            key: key.into(),
            reason,
        };
        let raw = to_file(flags).map_err(|(key, reason)| fail(key, reason))?;
        Checker { path, flags: true }.config(raw).map_err(|e| {
            let key = KEYS
                .iter()
                .find(|(prefix, _)| {
                    e.key.strip_prefix(prefix).is_some_and(|rest| {
                        rest.is_empty() || rest.starts_with('.') || rest.starts_with('[')
                    })
                })
                .map_or(e.key.clone(), |(_, flag)| flag.to_string());
            let reason = REASONS
                .iter()
                .fold(e.reason, |r, (from, to)| r.replace(from, to));
            fail(&key, reason)
        })
    }
}

/// The file a user would have written for these flags; `Err((flag, reason))` for what only the
/// command line can get wrong.
fn to_file(f: &Flags) -> Result<file::File, (&'static str, String)> {
    let (listen, listen_wide) = address(f.port.as_deref(), "--port")?;
    let (admin_listen, admin_wide) = address(f.admin_listen.as_deref(), "--admin-listen")?;
    if let (Some(port), false) = (&f.port, listen_wide) {
        if port.starts_with(':') || !port.contains(':') {
            info!(
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
        ..Default::default()
    };

    let scheme = f.upstream_url_scheme.clone();
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
    for list in &f.custom_headers {
        for pair in list.split(',').filter(|p| !p.trim().is_empty()) {
            let Some((k, v)) = pair.split_once('=') else {
                return Err(("--custom-headers", format!("'{pair}' is not name=value")));
            };
            add.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    let remove: Vec<String> = f.strip.iter().chain(&f.strip_header).cloned().collect();
    if let Some(wild) = remove.iter().find(|h| h.ends_with('*')) {
        return Err((
            "--strip",
            format!("'{wild}': wildcards are not supported; name each header"),
        ));
    }
    let headers = file::Headers {
        add: (!add.is_empty()).then_some(add),
        remove: (!remove.is_empty()).then_some(remove),
        duplicate: (!f.duplicate_headers.is_empty()).then(|| f.duplicate_headers.clone()),
    };
    let route = file::Route {
        name: Some(ROUTE.into()),
        matcher: None,
        strip_prefix: false,
        upstream,
        upstream_from_host,
        service: f.name.clone(),
        region: f.region.clone(),
        signing: None,
        region_set: None,
        credentials: Some(SET.into()),
        payload: f.unsigned_payload.then(|| "unsigned".into()),
        max_body_bytes: None,
        connect_timeout: None,
        read_timeout: None,
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
        max_buffered_body_bytes: None,
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

#[cfg(test)]
mod tests;
