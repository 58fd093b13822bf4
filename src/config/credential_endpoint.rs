//! Validation of `credential_endpoint`: where AWS SDKs fetch a credential set's temporary
//! credentials, and the token they must present.

use super::check::Checker;
use super::file;
use super::{ConfigError, CredentialEndpointConfig, CredentialsConfig};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

impl Checker<'_> {
    /// `credential_endpoint`, its set checked against the file's `credentials`. Its listen
    /// address is weighed against `access.allow_non_loopback` with the other listeners.
    pub(super) fn credential_endpoint(
        &self,
        raw: Option<file::CredentialEndpoint>,
        credentials: &BTreeMap<String, CredentialsConfig>,
        others: &[(&str, SocketAddr)],
    ) -> Result<Option<CredentialEndpointConfig>, ConfigError> {
        let Some(raw) = raw else {
            return Ok(None);
        };
        let file::CredentialEndpoint {
            listen,
            credentials: set,
            authorization_token_file,
            authorization_token_env,
        } = raw;
        let listen = match listen.as_deref() {
            None => {
                return self.err(
                    "credential_endpoint.listen",
                    "is required: an IP address and port, e.g. 127.0.0.1:9911",
                )
            }
            Some(text) => text.parse::<SocketAddr>().or_else(|_| {
                self.err(
                    "credential_endpoint.listen",
                    format!("'{text}' is not an IP address and port, e.g. 127.0.0.1:9911"),
                )
            })?,
        };
        if let Some((other, _)) = others.iter().find(|(_, addr)| *addr == listen) {
            return self.err(
                "credential_endpoint.listen",
                format!("must differ from {other}"),
            );
        }
        let Some(set) = set else {
            return self.err(
                "credential_endpoint.credentials",
                "is required: the credential set whose credentials are served",
            );
        };
        let Some(config) = credentials.get(&set) else {
            return self.err(
                "credential_endpoint.credentials",
                format!("'{set}' is not a credential set defined under credentials"),
            );
        };
        if config.assume_role.is_empty() && config.sts_token.is_none() {
            return self.err(
                "credential_endpoint.credentials",
                format!(
                    "'{set}' has no assume_role, session_token or federation_token: the \
                     endpoint hands out temporary STS credentials only, never a source's \
                     long-term keys"
                ),
            );
        }
        let token_file = authorization_token_file.clone().map(PathBuf::from);
        let token = self.token(
            (
                "credential_endpoint.authorization_token_file",
                authorization_token_file,
            ),
            (
                "credential_endpoint.authorization_token_env",
                authorization_token_env,
            ),
        )?;
        let Some(token) = token else {
            return self.err(
                "credential_endpoint",
                "authorization_token_file or authorization_token_env is required: an \
                 endpoint that hands out AWS credentials to anyone who asks is never safe",
            );
        };
        Ok(Some(CredentialEndpointConfig {
            listen,
            credentials: set,
            token,
            token_file,
        }))
    }
}
