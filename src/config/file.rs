//! The configuration file's format, exactly as users write it (YAML).
//!
//! Nothing here is validated beyond its type: [`super::Config::from_file`] turns a [`File`] into the
//! checked internal [`super::Config`]. Unknown keys are errors, so a typo never silently disables
//! a setting.

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub listen: Option<String>,
    pub admin_listen: Option<String>,
    /// HTTPS on `listen`: the certificate and key files.
    pub tls: Option<ListenerTls>,
    /// HTTPS on `admin_listen`: the certificate and key files.
    pub admin_tls: Option<ListenerTls>,
    /// Worker threads for the traffic listener.
    pub threads: Option<usize>,
    /// After SIGTERM, how long to keep accepting connections (e.g. `5s`; `0s` for none).
    pub shutdown_delay: Option<String>,
    /// Then, how long requests in flight get to finish (e.g. `10s`).
    pub shutdown_grace: Option<String>,
    /// Unix socket through which listening sockets pass to a new process on upgrade.
    pub upgrade_socket: Option<String>,
    /// Who may use the traffic port.
    pub access: Option<Access>,
    /// The largest request header section accepted (431 above it).
    pub max_header_bytes: Option<u64>,
    /// How long an idle keep-alive connection stays open (e.g. `60s`).
    pub keepalive_timeout: Option<String>,
    /// How long a client gets to send a whole request head (e.g. `10s`).
    pub request_header_timeout: Option<String>,
    /// How long a write to a client may make no progress (e.g. `60s`).
    pub client_write_timeout: Option<String>,
    /// How long a request body may take before it must keep `min_request_body_rate` (e.g. `20s`).
    pub request_body_timeout: Option<String>,
    /// Bytes per second a request body must keep arriving at after `request_body_timeout`.
    pub min_request_body_rate: Option<u64>,
    /// Connections served at once on the traffic listener.
    pub max_connections: Option<u64>,
    /// Upgraded (WebSocket) connections open at once (default: half of `max_connections`).
    pub max_websocket_connections: Option<u64>,
    /// Body bytes buffered for signing, all requests together.
    pub max_buffered_body_bytes: Option<u64>,
    /// Serves a credential set's temporary credentials to AWS SDKs (the container-credentials
    /// protocol).
    pub credential_endpoint: Option<CredentialEndpoint>,
    #[serde(default)]
    pub credentials: BTreeMap<String, CredentialSet>,
    #[serde(default)]
    pub routes: Vec<Route>,
}

/// `credential_endpoint`: where SDKs fetch credentials (`AWS_CONTAINER_CREDENTIALS_FULL_URI`)
/// and the token they must send (`AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE)`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialEndpoint {
    /// The address to listen on (loopback unless `access.allow_non_loopback` lists
    /// `credential_endpoint`).
    pub listen: Option<String>,
    /// The credential set whose credentials are served.
    pub credentials: Option<String>,
    /// A file holding the token SDKs must send.
    pub authorization_token_file: Option<String>,
    /// An environment variable holding the token SDKs must send.
    pub authorization_token_env: Option<String>,
}

/// `tls` / `admin_tls`: a listener's certificate and key (PEM), re-read when they change.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTls {
    /// The server certificate, then any intermediates.
    pub cert_file: Option<String>,
    /// Its private key, unencrypted.
    pub key_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Access {
    /// The listeners (`listen`, `admin_listen`, `credential_endpoint`) that may bind to anything
    /// but loopback.
    #[serde(default)]
    pub allow_non_loopback: Vec<String>,
    /// CIDRs of the clients allowed on the traffic port.
    pub allowed_clients: Option<Vec<String>>,
    /// A file holding the bearer token clients must send.
    pub bearer_token_file: Option<String>,
    /// An environment variable holding the bearer token clients must send.
    pub bearer_token_env: Option<String>,
    /// Host names (besides loopback and the routes' `match.host`) the traffic port answers to.
    pub allowed_hosts: Option<Vec<String>>,
    /// Web origins (`https://app.example.com`) whose pages may call the traffic port (CORS).
    pub allowed_origins: Option<Vec<String>>,
    /// Callers with their own token, routes and (with `per_client` sets) AWS session.
    pub clients: Option<Vec<Client>>,
}

/// One `access.clients` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Client {
    /// Its name: the role session or federated user name of its own sessions.
    pub name: Option<String>,
    /// A file holding the bearer token this client sends.
    pub token_file: Option<String>,
    /// An environment variable holding the bearer token this client sends.
    pub token_env: Option<String>,
    /// The routes (by name) it may use.
    pub routes: Option<Vec<String>>,
    /// Whether its token may fetch its own session from the credential endpoint.
    pub credential_endpoint: Option<bool>,
}

/// A route whose upstream is the request's own `Host` (aws-sigv4-proxy without `--host`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamFromHost {
    /// `https` (default) or `http`.
    pub scheme: Option<String>,
    /// Hosts served besides AWS endpoints (`name` or `name:port`).
    pub allowed_hosts: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialSet {
    /// Where the base credentials come from: `default` (the aws-config chain) or `profile`.
    pub source: Option<String>,
    /// With `source: profile`: the profile name (otherwise `AWS_PROFILE` or `default`).
    pub profile: Option<String>,
    /// One role, or a chain of roles each assumed with the previous one's credentials.
    pub assume_role: Option<OneOrMore<AssumeRole>>,
    /// STS GetSessionToken on top of the source (IAM user keys).
    pub session_token: Option<StsToken>,
    /// STS GetFederationToken on top of the source: a federated session scoped by a policy.
    pub federation_token: Option<StsToken>,
    /// How long before expiry to refresh (e.g. `5m`).
    pub refresh_before_expiry: Option<String>,
    /// One session per `access.clients` entry that uses the set, named for the client.
    pub per_client: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StsToken {
    /// GetFederationToken only: the federated user's name.
    pub name: Option<String>,
    /// GetFederationToken only: the session policy (JSON) that narrows its permissions.
    pub policy: Option<String>,
    /// GetFederationToken with `per_client` only: a client's own policy, by client name
    /// (instead of `policy`).
    pub client_policies: Option<std::collections::BTreeMap<String, String>>,
    pub duration_seconds: Option<i64>,
    pub sts_region: Option<String>,
    pub sts_endpoint: Option<String>,
    /// GetSessionToken only: the MFA device and how to get its codes.
    pub mfa: Option<Mfa>,
}

/// An MFA device whose code goes with the STS call (GetSessionToken, AssumeRole).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mfa {
    /// The device's ARN (`arn:aws:iam::<account>:mfa/<name>`) or a hardware token's serial.
    pub serial_number: Option<String>,
    /// The program printing the current code, as a list of arguments (run without a shell).
    pub token_command: Option<OneOrMore<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMore<T> {
    One(T),
    More(Vec<T>),
}

impl<T> OneOrMore<T> {
    pub fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMore::One(one) => vec![one],
            OneOrMore::More(more) => more,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssumeRole {
    pub role_arn: Option<String>,
    pub session_name: Option<String>,
    pub external_id: Option<String>,
    pub duration_seconds: Option<i64>,
    /// Region of the STS endpoint (otherwise `AWS_REGION`, the profile, or `us-east-1`).
    pub sts_region: Option<String>,
    /// Full STS endpoint URL (otherwise `AWS_ENDPOINT_URL_STS` or the regional endpoint).
    pub sts_endpoint: Option<String>,
    /// The first role of a chain only: the MFA device whose code goes with AssumeRole.
    pub mfa: Option<Mfa>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub name: Option<String>,
    #[serde(rename = "match")]
    pub matcher: Option<Match>,
    #[serde(default)]
    pub strip_prefix: bool,
    pub upstream: Option<String>,
    /// Instead of `upstream`: the request's `Host` names it, if it is an AWS endpoint or listed.
    pub upstream_from_host: Option<UpstreamFromHost>,
    pub service: Option<String>,
    pub region: Option<String>,
    /// `sigv4` (default) or `sigv4a`; S3 Multi-Region Access Points get `sigv4a` by themselves.
    pub signing: Option<String>,
    /// With `signing: sigv4a`: the regions the signature is valid in (`["*"]` for all).
    pub region_set: Option<Vec<String>>,
    pub credentials: Option<String>,
    /// `signed`, `unsigned` or `streaming` (S3 only for the last two).
    pub payload: Option<String>,
    pub max_body_bytes: Option<u64>,
    pub connect_timeout: Option<String>,
    pub read_timeout: Option<String>,
    /// Methods and path patterns this route serves; anything else is refused with 403.
    pub allow: Option<Vec<Allow>>,
    /// S3 on a host that is not AWS's: `path` or `virtual-host` (the bucket in the host name).
    pub s3_addressing: Option<String>,
    /// The host to sign for and send as `Host`, when it differs from the one connected to.
    pub sign_host: Option<String>,
    /// Request header edits: `add`, `remove`, `duplicate`.
    pub headers: Option<Headers>,
    /// How the TLS connection to the upstream is checked.
    pub tls: Option<Tls>,
    /// How long an idle upstream connection is kept for reuse (e.g. `90s`).
    pub upstream_idle_timeout: Option<String>,
    /// Limits on upgraded (WebSocket) connections.
    pub websocket: Option<WebSocket>,
}

/// `websocket`: how long an upgraded connection may idle, and last at all.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSocket {
    /// No byte either way for this long closes it (e.g. `10m`).
    pub idle_timeout: Option<String>,
    /// It is closed this long after the upgrade (e.g. `2h`).
    pub max_lifetime: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allow {
    pub methods: Option<Vec<String>>,
    /// IAM actions (`s3:GetObject`, `dynamodb:Query`, wildcards like `s3:Get*`).
    pub actions: Option<Vec<String>>,
    pub paths: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    pub path_prefix: Option<String>,
    pub host: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Headers {
    /// Set on every request (replacing the client's).
    pub add: Option<BTreeMap<String, String>>,
    /// Dropped from every request.
    pub remove: Option<Vec<String>>,
    /// Copied to `X-Original-<name>` before anything else.
    pub duplicate: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// PEM certificates to trust instead of the system's.
    pub ca_file: Option<String>,
    /// The name sent as SNI and checked in the certificate.
    pub server_name: Option<String>,
    /// Accept any certificate. For tests and tunnels only; logged as a warning at start.
    pub insecure_skip_verify: Option<bool>,
}
