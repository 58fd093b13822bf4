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
            Some(text) => self.listen_addr("credential_endpoint.listen", text, "127.0.0.1:9911")?,
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
            "credential_endpoint",
            (
                "credential_endpoint.authorization_token_file",
                authorization_token_file,
            ),
            (
                "credential_endpoint.authorization_token_env",
                authorization_token_env,
            ),
        )?;
        if config.per_client.is_some() {
            if token.is_some() {
                return self.err(
                    "credential_endpoint.authorization_token_file",
                    format!(
                        "'{set}' is per_client: each client fetches its own session with its \
                         own token (access.clients[].credential_endpoint); leave the \
                         endpoint's token out"
                    ),
                );
            }
        } else if token.is_none() {
            return self.err(
                "credential_endpoint",
                "authorization_token_file or authorization_token_env is required: an \
                 endpoint that hands out AWS credentials to anyone who asks is never safe",
            );
        }
        Ok(Some(CredentialEndpointConfig {
            listen,
            credentials: set,
            token,
            token_file,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use std::path::Path;

    const SETS: &str = "credentials:\n  app: { assume_role: { role_arn: 'arn:aws:iam::123456789012:role/app' } }\n  keys: { source: default }\nroutes:\n  - upstream: http://127.0.0.1:1\n";

    fn parse(endpoint: &str, access: &str) -> Result<Config, String> {
        std::env::set_var("CONFIG_TEST_ENDPOINT_TOKEN", "endpoint-token-0123456789");
        let text = format!("{access}credential_endpoint:\n{endpoint}{SETS}");
        Config::parse(&text, Path::new("e.yaml")).map_err(|e| e.to_string())
    }

    const TOKEN: &str = "  authorization_token_env: CONFIG_TEST_ENDPOINT_TOKEN\n";

    #[test]
    fn a_loopback_endpoint_with_a_set_and_a_token_is_accepted() {
        let c = parse(
            &format!("  listen: 127.0.0.1:9911\n  credentials: app\n{TOKEN}"),
            "",
        )
        .unwrap();
        let e = c.credential_endpoint.unwrap();
        assert_eq!(e.listen.to_string(), "127.0.0.1:9911");
        assert_eq!(e.credentials, "app");
        assert!(e
            .token
            .as_ref()
            .unwrap()
            .matches(b"endpoint-token-0123456789"));
        assert!(!format!("{e:?}").contains("endpoint-token"));
    }

    #[test]
    fn errors_name_the_file_the_key_and_the_reason() {
        for (endpoint, access, expected) in [
            (
                format!("  credentials: app\n{TOKEN}"),
                "",
                "e.yaml: credential_endpoint.listen: is required",
            ),
            (
                format!("  listen: 127.0.0.1:9911\n  credentials: nope\n{TOKEN}"),
                "",
                "e.yaml: credential_endpoint.credentials: 'nope' is not a credential set",
            ),
            (
                format!("  listen: 127.0.0.1:9911\n  credentials: keys\n{TOKEN}"),
                "",
                "e.yaml: credential_endpoint.credentials: 'keys' has no assume_role",
            ),
            (
                "  listen: 127.0.0.1:9911\n  credentials: app\n".to_string(),
                "",
                "e.yaml: credential_endpoint: authorization_token_file or authorization_token_env is required",
            ),
            (
                format!("  listen: 127.0.0.1:9901\n  credentials: app\n{TOKEN}"),
                "",
                "e.yaml: credential_endpoint.listen: must differ from admin_listen",
            ),
            (
                format!("  listen: 0.0.0.0:9911\n  credentials: app\n{TOKEN}"),
                "",
                "e.yaml: credential_endpoint.listen: 0.0.0.0:9911 is not a loopback address",
            ),
            (
                format!("  listen: 127.0.0.1:9911\n  credentials: app\n{TOKEN}  authorization_token_file: /nonexistent\n"),
                "",
                "e.yaml: credential_endpoint.authorization_token_env: authorization_token_file and authorization_token_env exclude each other",
            ),
            (
                "  listen: 127.0.0.1:9911\n  credentials: app\n  authorization_token_file: /nonexistent/token\n".to_string(),
                "",
                "e.yaml: credential_endpoint.authorization_token_file: cannot read /nonexistent/token",
            ),
            (
                format!("  listen: 127.0.0.1:9911\n  credentials: app\n{TOKEN}"),
                "access:\n  bearer_token_env: CONFIG_TEST_ENDPOINT_TOKEN\n",
                "e.yaml: credential_endpoint.authorization_token_env: is the traffic port's bearer token",
            ),
        ] {
            let e = parse(&endpoint, access).unwrap_err();
            assert!(e.starts_with(expected), "{e}\nexpected: {expected}");
        }
    }

    #[test]
    fn a_wider_address_is_allowed_only_when_listed() {
        let endpoint = format!("  listen: 0.0.0.0:9911\n  credentials: app\n{TOKEN}");
        let c = parse(
            &endpoint,
            "access:\n  allow_non_loopback: [credential_endpoint]\n",
        )
        .unwrap();
        assert_eq!(
            c.credential_endpoint.unwrap().listen.to_string(),
            "0.0.0.0:9911"
        );
        // Listing it does not open the traffic port.
        assert!(c.listen.ip().is_loopback());
        let e = parse(
            &format!("  listen: 127.0.0.1:9911\n  credentials: app\n{TOKEN}"),
            "access:\n  allow_non_loopback: [credential_endpoints]\n",
        )
        .unwrap_err();
        assert!(
            e.contains("access.allow_non_loopback[0]: 'credential_endpoints' is not a listener; expected one of listen, admin_listen, credential_endpoint"),
            "{e}"
        );
    }
}
