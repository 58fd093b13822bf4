//! STS GetSessionToken and GetFederationToken as a credentials provider.
//!
//! aws-config has providers for AssumeRole and web identity but not for these two; this one
//! calls them with aws-sdk-sts, signed with the source's credentials. GetSessionToken may carry
//! an MFA code (see [`super::mfa`]).

use super::mfa::Gate;
use crate::config::{StsTokenConfig, StsTokenKind};
use aws_credential_types::provider::{
    error::CredentialsError, future, ProvideCredentials, SharedCredentialsProvider,
};
use aws_credential_types::Credentials;
use std::sync::Arc;

#[derive(Debug)]
pub struct StsTokenProvider {
    client: aws_sdk_sts::Client,
    config: StsTokenConfig,
    mfa: Option<Arc<Gate>>,
}

impl StsTokenProvider {
    pub async fn new(
        config: &StsTokenConfig,
        source: SharedCredentialsProvider,
        mfa: Option<Arc<Gate>>,
    ) -> Self {
        let sdk_config = super::sts::sdk_config(
            config.sts_region.as_deref(),
            config.sts_endpoint.as_deref(),
            Some(source),
        )
        .await;
        // A code goes to STS once: no retries when one is sent.
        let client = match mfa {
            Some(_) => super::sts::client_without_retries(&sdk_config),
            None => aws_sdk_sts::Client::new(&sdk_config),
        };
        StsTokenProvider {
            client,
            config: config.clone(),
            mfa,
        }
    }

    async fn fetch(&self) -> Result<Credentials, CredentialsError> {
        let seconds = self.config.duration.as_secs() as i32;
        let issued = match (&self.config.kind, &self.mfa) {
            (StsTokenKind::Session, None) => self
                .client
                .get_session_token()
                .duration_seconds(seconds)
                .send()
                .await
                .map(|out| out.credentials)
                .map_err(CredentialsError::provider_error)?,
            (StsTokenKind::Session, Some(gate)) => gate
                .call(|code| {
                    self.client
                        .get_session_token()
                        .duration_seconds(seconds)
                        .serial_number(gate.serial_number())
                        .token_code(code.expose())
                        .send()
                })
                .await
                .map(|out| out.credentials)
                .map_err(CredentialsError::provider_error)?,
            (StsTokenKind::Federation { name, policy }, _) => self
                .client
                .get_federation_token()
                .name(name)
                .set_policy(policy.clone())
                .duration_seconds(seconds)
                .send()
                .await
                .map(|out| out.credentials)
                .map_err(CredentialsError::provider_error)?,
        };
        super::sts::issued(issued, "sigproxy-sts-token").map_err(CredentialsError::provider_error)
    }
}

impl ProvideCredentials for StsTokenProvider {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.fetch())
    }
}
