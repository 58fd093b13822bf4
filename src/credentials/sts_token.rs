//! STS GetSessionToken and GetFederationToken as a credentials provider.
//!
//! aws-config has providers for AssumeRole and web identity but not for these two; this one
//! calls them with aws-sdk-sts, signed with the source's credentials.

use crate::config::{StsTokenConfig, StsTokenKind};
use aws_credential_types::provider::{
    error::CredentialsError, future, ProvideCredentials, SharedCredentialsProvider,
};
use aws_credential_types::Credentials;
use std::time::SystemTime;

#[derive(Debug)]
pub struct StsTokenProvider {
    client: aws_sdk_sts::Client,
    config: StsTokenConfig,
}

impl StsTokenProvider {
    pub async fn new(config: &StsTokenConfig, source: SharedCredentialsProvider) -> Self {
        let sdk_config = super::sts::sdk_config(
            config.sts_region.as_deref(),
            config.sts_endpoint.as_deref(),
            Some(source),
        )
        .await;
        StsTokenProvider {
            client: aws_sdk_sts::Client::new(&sdk_config),
            config: config.clone(),
        }
    }

    async fn fetch(&self) -> Result<Credentials, CredentialsError> {
        let seconds = self.config.duration.as_secs() as i32;
        let issued = match &self.config.kind {
            StsTokenKind::Session => self
                .client
                .get_session_token()
                .duration_seconds(seconds)
                .send()
                .await
                .map(|out| out.credentials)
                .map_err(CredentialsError::provider_error)?,
            StsTokenKind::Federation { name, policy } => self
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
        let c = issued
            .ok_or_else(|| CredentialsError::provider_error("STS answered without credentials"))?;
        Ok(Credentials::new(
            c.access_key_id,
            c.secret_access_key,
            Some(c.session_token),
            SystemTime::try_from(c.expiration).ok(),
            "sigproxy-sts-token",
        ))
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
