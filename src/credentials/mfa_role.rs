//! AssumeRole with an MFA code: aws-config's `AssumeRoleProvider` cannot send one, so the
//! first role of an MFA set is assumed here, with aws-sdk-sts signed by the source's
//! credentials. Later roles of a chain are assumed as usual on top of it.

use super::mfa::Gate;
use crate::config::AssumeRoleConfig;
use aws_credential_types::provider::{
    error::CredentialsError, future, ProvideCredentials, SharedCredentialsProvider,
};
use aws_credential_types::Credentials;
use std::sync::Arc;

#[derive(Debug)]
pub struct MfaRoleProvider {
    client: aws_sdk_sts::Client,
    role: AssumeRoleConfig,
    gate: Arc<Gate>,
}

impl MfaRoleProvider {
    pub async fn new(
        role: &AssumeRoleConfig,
        source: SharedCredentialsProvider,
        gate: Arc<Gate>,
    ) -> Self {
        let sdk_config = super::sts::sdk_config(
            role.sts_region.as_deref(),
            role.sts_endpoint.as_deref(),
            Some(source),
        )
        .await;
        MfaRoleProvider {
            // A code goes to STS once: no retries.
            client: super::sts::client_without_retries(&sdk_config),
            role: role.clone(),
            gate,
        }
    }

    async fn fetch(&self) -> Result<Credentials, CredentialsError> {
        let role = &self.role;
        let issued = self
            .gate
            .call(|code| {
                self.client
                    .assume_role()
                    .role_arn(&role.role_arn)
                    .role_session_name(&role.session_name)
                    .set_external_id(role.external_id.clone())
                    .duration_seconds(role.duration.as_secs() as i32)
                    .serial_number(self.gate.serial_number())
                    .token_code(code.expose())
                    .send()
            })
            .await
            .map(|out| out.credentials)
            .map_err(CredentialsError::provider_error)?;
        super::sts::issued(issued, "sigproxy-mfa-role").map_err(CredentialsError::provider_error)
    }
}

impl ProvideCredentials for MfaRoleProvider {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.fetch())
    }
}
