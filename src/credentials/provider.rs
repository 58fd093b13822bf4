//! Builds a credential set's provider from aws-config: the base source, then AssumeRole on top.
//!
//! Nothing here caches: the refresh loop decides when to call the provider.

use super::mfa::Gate;
use super::mfa_role::MfaRoleProvider;
use super::sts::{self, FALLBACK_REGION};
use super::sts_token::StsTokenProvider;
use crate::config::{AssumeRoleConfig, CredentialsConfig, Source, StsTokenKind};
use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::region::ProfileFileRegionProvider;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_config::provider_config::ProviderConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sdk_sts::config::Region;
use std::sync::Arc;

/// The provider for one credential set.
#[derive(Debug)]
pub struct Provider {
    inner: SharedCredentialsProvider,
    /// Describes what is being asked for, for error messages (e.g. the role ARN).
    what: String,
    /// The set's MFA device: when a code is what failed, it says why.
    mfa: Option<Arc<Gate>>,
}

impl Provider {
    /// `mfa` is the set's MFA device (see [`super::CredentialSet::mfa`]), if it has one.
    pub async fn build(config: &CredentialsConfig, mfa: Option<Arc<Gate>>) -> Provider {
        // The source's own STS calls (web identity, a profile's role_arn) need a region:
        // the profile's, else the environment's, else STS's global region.
        let profile = match &config.source {
            Source::Profile(name) => name.clone(),
            Source::Default => None,
        };
        let mut profile_region = ProfileFileRegionProvider::builder();
        if let Some(name) = &profile {
            profile_region = profile_region.profile_name(name);
        }
        let region = RegionProviderChain::first_try(profile_region.build())
            .or_default_provider()
            .or_else(Region::from_static(FALLBACK_REGION))
            .region()
            .await;
        let source = match &config.source {
            Source::Default => SharedCredentialsProvider::new(
                DefaultCredentialsChain::builder()
                    .region(region.clone())
                    .build()
                    .await,
            ),
            Source::Profile(name) => {
                let mut builder = ProfileFileCredentialsProvider::builder()
                    .configure(&ProviderConfig::default().with_region(region));
                if let Some(name) = name {
                    builder = builder.profile_name(name);
                }
                SharedCredentialsProvider::new(builder.build())
            }
        };
        if let Some(token) = &config.sts_token {
            let what = match &token.kind {
                StsTokenKind::Session => "GetSessionToken".to_string(),
                StsTokenKind::Federation { name, .. } => format!("GetFederationToken {name}"),
            };
            let inner = StsTokenProvider::new(token, source, mfa.clone()).await;
            return Provider {
                inner: SharedCredentialsProvider::new(inner),
                what,
                mfa,
            };
        }
        if config.assume_role.is_empty() {
            let what = match &config.source {
                Source::Default => "the default credential chain".to_string(),
                Source::Profile(Some(p)) => format!("profile '{p}'"),
                Source::Profile(None) => "the default profile".to_string(),
            };
            return Provider {
                inner: source,
                what,
                mfa: None,
            };
        }
        // Each role is assumed with the credentials of the one before (role chaining).
        // Only the first may carry an MFA code (the configuration checks say why).
        let mut inner = source;
        for (i, role) in config.assume_role.iter().enumerate() {
            inner = match (&mfa, i) {
                (Some(gate), 0) => SharedCredentialsProvider::new(
                    MfaRoleProvider::new(role, inner, gate.clone()).await,
                ),
                _ => SharedCredentialsProvider::new(assume_role(role, inner).await),
            };
        }
        let arns: Vec<&str> = config
            .assume_role
            .iter()
            .map(|r| r.role_arn.as_str())
            .collect();
        Provider {
            inner,
            what: format!("AssumeRole {}", arns.join(" then ")),
            mfa,
        }
    }

    /// Fetches credentials once. The error is a complete, secret-free sentence.
    pub async fn fetch(&self) -> Result<Credentials, String> {
        self.inner.provide_credentials().await.map_err(|e| {
            match self
                .mfa
                .as_ref()
                .filter(|g| g.needed())
                .and_then(|g| g.reason())
            {
                Some(why) => format!("{}: {why}", self.what),
                None => format!("{} failed: {}", self.what, sts::error_sentence(&e)),
            }
        })
    }
}

/// An AssumeRole provider for `role`, calling STS with the credentials of `source`.
async fn assume_role(
    role: &AssumeRoleConfig,
    source: SharedCredentialsProvider,
) -> AssumeRoleProvider {
    let sdk_config = sts::sdk_config(
        role.sts_region.as_deref(),
        role.sts_endpoint.as_deref(),
        None,
    )
    .await;
    let mut builder = AssumeRoleProvider::builder(&role.role_arn)
        .session_name(&role.session_name)
        .session_length(role.duration)
        .configure(&sdk_config);
    if let Some(id) = &role.external_id {
        builder = builder.external_id(id);
    }
    builder.build_from_provider(source).await
}

#[cfg(test)]
#[path = "provider_tests.rs"]
mod tests;
