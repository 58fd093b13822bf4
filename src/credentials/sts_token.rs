//! STS GetSessionToken and GetFederationToken as a credentials provider.
//!
//! aws-config has providers for AssumeRole and web identity but not for these two; this one
//! calls them with aws-sdk-sts, signed with the source's credentials.

use crate::config::{StsTokenConfig, StsTokenKind};
use aws_credential_types::provider::{
    error::CredentialsError, future, ProvideCredentials, SharedCredentialsProvider,
};
use aws_credential_types::Credentials;
use aws_sdk_sts::config::Region;
use std::time::SystemTime;

#[derive(Debug)]
pub struct StsTokenProvider {
    client: aws_sdk_sts::Client,
    config: StsTokenConfig,
}

impl StsTokenProvider {
    pub async fn new(config: &StsTokenConfig, source: SharedCredentialsProvider) -> Self {
        let region = aws_config::meta::region::RegionProviderChain::first_try(
            config.sts_region.clone().map(Region::new),
        )
        .or_default_provider()
        .or_else(Region::from_static(super::provider::FALLBACK_REGION));
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(region)
            .credentials_provider(source);
        if let Some(endpoint) = &config.sts_endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        StsTokenProvider {
            client: aws_sdk_sts::Client::new(&loader.load().await),
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
