//! Configuration: the YAML file parsed into one validated [`Config`].
//!
//! `file.rs` is the format users write; `check.rs` and its siblings (one file per part of the
//! file) turn it into these types, key by key, before anything starts, so `sigproxy --check` and the server refuse exactly the same files;
//! `signing.rs` settles each route's service and region (from [`crate::endpoints`] unless the
//! route names them) once, as a [`crate::service::Service`] the rest of the crate asks.
//! Errors name the file, the key and the reason: `config/lambda.yaml: routes[0].upstream: ...`.

mod access;
mod check;
mod clients;
mod credential_endpoint;
mod credentials;
mod file;
mod flags;
mod from_host;
mod kept;
mod limits;
mod listeners;
mod mfa;
mod route;
mod shutdown;
mod signing;
mod upstream;
mod websocket;

/// Re-exported: the payload mode is part of a route's signing configuration.
pub use crate::service::{Algorithm, Payload};
use check::Checker;
#[cfg(test)]
use credentials::{default_session_name, valid_session_name};
pub use flags::Flags;
pub use from_host::FromHost;
pub use kept::{token_file_state, KeptTokens};
pub use limits::ClientLimits;
pub use websocket::WebSocketLimits;

use crate::access::{AllowRule, BearerToken, ClientAccess};
use crate::service::Service;
use crate::tls::CertPair;
use crate::upstream::edits::HeaderEdits;
use crate::upstream::{Upstream, UpstreamTls};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Lambda's own request payload limit; the default for signed-payload routes.
pub const DEFAULT_MAX_BODY_BYTES: usize = 6 * 1024 * 1024;
/// Signed payloads are held in memory to be hashed, so they are capped.
pub const MAX_MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);
/// Request line and headers together; far above what any AWS client sends.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;
/// pingora's own ceiling on a request header section.
pub const MAX_MAX_HEADER_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct Config {
    /// The file this configuration was read from.
    pub path: PathBuf,
    pub listen: SocketAddr,
    /// None only when built from aws-sigv4-proxy's flags without `--admin-listen`.
    pub admin_listen: Option<SocketAddr>,
    /// HTTPS on `listen` (`tls`): the files, and the pair as read at start.
    pub tls: Option<CertPair>,
    /// HTTPS on `admin_listen` (`admin_tls`).
    pub admin_tls: Option<CertPair>,
    pub threads: usize,
    /// After SIGTERM: keep accepting this long (endpoint removal propagating), see `drain`.
    pub shutdown_delay: Duration,
    /// Then: requests in flight get at most this long to finish.
    pub shutdown_grace: Duration,
    /// Client address and bearer token checks on the traffic port.
    pub access: ClientAccess,
    pub max_header_bytes: usize,
    /// Timeouts, connection count and body memory limits for clients of the traffic port.
    pub limits: ClientLimits,
    pub upgrade_socket: PathBuf,
    /// Serves one set's credentials to AWS SDKs (`credential_endpoint`).
    pub credential_endpoint: Option<CredentialEndpointConfig>,
    pub credentials: BTreeMap<String, CredentialsConfig>,
    pub routes: Vec<RouteConfig>,
}

/// `credential_endpoint`: the container-credentials protocol for AWS SDKs.
#[derive(Debug, Clone)]
pub struct CredentialEndpointConfig {
    pub listen: SocketAddr,
    /// The credential set served.
    pub credentials: String,
    /// What SDKs send as `Authorization` (its digest; `Debug` redacts it). `None` when the
    /// set is `per_client`: each client (`access.clients[].credential_endpoint`) sends its own.
    pub token: Option<BearerToken>,
    /// Where the token was read from (`authorization_token_file`).
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialsConfig {
    pub name: String,
    pub source: Source,
    /// Roles to assume in turn on top of the source (role chaining); empty for none.
    pub assume_role: Vec<AssumeRoleConfig>,
    /// GetSessionToken or GetFederationToken on top of the source, instead of roles.
    pub sts_token: Option<StsTokenConfig>,
    pub refresh_before_expiry: Duration,
    /// `per_client: true`: no session of its own, one per client that uses it (see
    /// [`CredentialsConfig::for_client`]).
    pub per_client: Option<PerClient>,
    /// In one client's session of a `per_client` set: that client's name.
    pub client: Option<String>,
}

/// What a `per_client` set gives each client besides its name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PerClient {
    /// GetFederationToken: a client's own session policy (JSON), by client name; clients not
    /// listed get the set's `policy`.
    pub policies: BTreeMap<String, String>,
}

/// Where a credential set's base credentials come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// aws-config's default chain: environment, profile/SSO, web identity (IRSA), container
    /// credentials (ECS, EKS Pod Identity), IMDSv2.
    Default,
    /// One named profile from the shared config and credentials files.
    Profile(Option<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StsTokenConfig {
    pub kind: StsTokenKind,
    pub duration: Duration,
    pub sts_region: Option<String>,
    pub sts_endpoint: Option<String>,
    /// GetSessionToken only.
    pub mfa: Option<MfaConfig>,
}

/// An MFA device: its codes go with the STS call that starts each session.
#[derive(Debug, Clone)]
pub struct MfaConfig {
    /// The device's ARN or a hardware token's serial number (`SerialNumber`).
    pub serial_number: String,
    /// The program and its arguments printing the current code; `None`: asked for once on the
    /// terminal at start.
    pub token_command: Option<Vec<String>>,
    /// Environment variables the configuration reads tokens from (`*_token_env`): kept from
    /// `token_command`, as sigproxy's AWS keys are.
    pub withheld_env: Vec<String>,
}

/// The same device and command: `withheld_env` follows the access settings, and a change there
/// must not make a set count as changed (a reload would start its session again, asking for
/// another code).
impl PartialEq for MfaConfig {
    fn eq(&self, other: &Self) -> bool {
        self.serial_number == other.serial_number && self.token_command == other.token_command
    }
}

impl Eq for MfaConfig {}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StsTokenKind {
    /// GetSessionToken: the same identity, as temporary credentials.
    Session,
    /// GetFederationToken: a federated user, permissions narrowed by `policy`.
    Federation {
        name: String,
        policy: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssumeRoleConfig {
    pub role_arn: String,
    pub session_name: String,
    pub external_id: Option<String>,
    pub duration: Duration,
    pub sts_region: Option<String>,
    pub sts_endpoint: Option<String>,
    /// The first role of a chain only.
    pub mfa: Option<MfaConfig>,
}

#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub name: String,
    pub host: Option<String>,
    pub path_prefix: Option<String>,
    pub strip_prefix: bool,
    pub upstream: Upstream,
    /// `None` forwards the request unsigned (pass-through).
    pub signing: Option<SigningConfig>,
    pub max_body_bytes: usize,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// Methods and paths served; empty allows all.
    pub allow: Vec<AllowRule>,
    /// S3 only: where the upstream puts the bucket, when stated (`s3_addressing`).
    pub s3_addressing: Option<S3Addressing>,
    /// Sent as `Host` and signed, instead of the upstream's own host (`sign_host`).
    pub sign_host: Option<String>,
    pub header_edits: HeaderEdits,
    pub tls: UpstreamTls,
    pub upstream_idle_timeout: Duration,
    /// `websocket`: idle and lifetime limits of the route's upgraded connections.
    pub websocket: WebSocketLimits,
    /// `upstream_from_host`: the upstream (and signing) is settled per request from its `Host`;
    /// `upstream` is then a placeholder and `signing` is `None` until [`RouteConfig::for_host`].
    pub from_host: Option<FromHost>,
}

/// `s3_addressing`: the bucket in the path (`/bucket/key`) or in the upstream's host name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Addressing {
    Path,
    VirtualHost,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningConfig {
    /// Resolved once here; its signing name is what goes into the credential scope.
    pub service: Service,
    /// The region signed for; with SigV4A the region set as sent in `X-Amz-Region-Set`
    /// (`*`, or names joined with `,`).
    pub region: String,
    pub credentials: String,
    pub payload: Payload,
    pub algorithm: Algorithm,
}

impl CredentialsConfig {
    /// A set named `name` that takes the default credential chain's credentials as they are (no
    /// role, no STS token), refreshed the default time before they expire: what
    /// `{name}: {source: default}` checks into.
    pub fn default_chain(name: &str) -> CredentialsConfig {
        CredentialsConfig {
            name: name.into(),
            source: Source::Default,
            assume_role: vec![],
            sts_token: None,
            refresh_before_expiry: DEFAULT_REFRESH_BEFORE_EXPIRY,
            per_client: None,
            client: None,
        }
    }

    /// `client`'s own session of this `per_client` set: the last role's session name, or the
    /// federated user's name, is the client's name (so CloudTrail names the client), and a
    /// federation token carries the client's own policy when the set lists one.
    pub fn for_client(&self, client: &str) -> CredentialsConfig {
        let mut session = self.clone();
        session.client = Some(client.to_string());
        let policies = session.per_client.take().unwrap_or_default().policies;
        if let Some(role) = session.assume_role.last_mut() {
            role.session_name = client.to_string();
        }
        if let Some(StsTokenConfig {
            kind: StsTokenKind::Federation { name, policy },
            ..
        }) = &mut session.sts_token
        {
            *name = client.to_string();
            if let Some(own) = policies.get(client) {
                *policy = Some(own.clone());
            }
        }
        session
    }
}

impl Config {
    /// Every client's session of every `per_client` set: a client has one of a set when a
    /// route it may use signs with the set, or when it fetches the credential endpoint's set.
    pub fn client_sessions(&self) -> Vec<CredentialsConfig> {
        let mut sessions = Vec::new();
        for set in self.credentials.values().filter(|s| s.per_client.is_some()) {
            for client in &self.access.clients {
                let by_route = self.routes.iter().any(|r| {
                    client.routes.contains(&r.name)
                        && r.signing
                            .as_ref()
                            .is_some_and(|s| s.credentials == set.name)
                });
                let by_endpoint = client.credential_endpoint
                    && self
                        .credential_endpoint
                        .as_ref()
                        .is_some_and(|e| e.credentials == set.name);
                if by_route || by_endpoint {
                    sessions.push(set.for_client(&client.name));
                }
            }
        }
        sessions
    }
}

/// A configuration error: which file, which key, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: PathBuf,
    pub key: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.path.display(), self.reason)
        } else {
            write!(f, "{}: {}: {}", self.path.display(), self.key, self.reason)
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.to_owned(),
            key: String::new(),
            reason: format!("cannot read the file: {e}"),
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates configuration text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        Self::parse_keeping(text, path, None)
    }

    /// [`Config::parse`] for a reload: a token file that cannot give a token now keeps the
    /// one in force (`kept` says which, to be reported).
    pub fn parse_keeping(
        text: &str,
        path: &Path,
        kept: Option<&KeptTokens>,
    ) -> Result<Config, ConfigError> {
        let raw: file::File = serde_yaml_ng::from_str(text).map_err(|e| ConfigError {
            path: path.to_owned(),
            key: e
                .location()
                .map(|l| format!("line {} column {}", l.line(), l.column()))
                .unwrap_or_default(),
            reason: strip_location(&e.to_string()),
        })?;
        Checker {
            path,
            flags: false,
            kept,
        }
        .config(raw)
    }
}

/// serde_yaml_ng appends "at line X column Y"; the location is already in the key.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests;
