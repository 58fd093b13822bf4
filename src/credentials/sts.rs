//! The one place STS clients are configured: which region's STS endpoint (the set's
//! `sts_region`, else `AWS_REGION` or the profile's, else STS's global region), and an explicit
//! `sts_endpoint` when given. AssumeRole and GetSessionToken/GetFederationToken alike.

use aws_config::meta::region::RegionProviderChain;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_sts::config::Region;

/// STS's global region, used when nothing else names one.
pub(super) const FALLBACK_REGION: &str = "us-east-1";

/// The SDK configuration for calling STS; `credentials` signs the calls (`None`: the caller
/// gives them another way, as `AssumeRoleProvider::build_from_provider` does).
pub(super) async fn sdk_config(
    sts_region: Option<&str>,
    sts_endpoint: Option<&str>,
    credentials: Option<SharedCredentialsProvider>,
) -> SdkConfig {
    let region = RegionProviderChain::first_try(sts_region.map(|r| Region::new(r.to_string())))
        .or_default_provider()
        .or_else(Region::from_static(FALLBACK_REGION));
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(region);
    if let Some(endpoint) = sts_endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    if let Some(credentials) = credentials {
        loader = loader.credentials_provider(credentials);
    }
    loader.load().await
}

/// A client for calls carrying an MFA code: no retries. The SDK's standard retries (of a 5xx,
/// throttling, a timeout) would send the same code again, which AWS refuses as reused and
/// counts towards locking the device; the MFA gate decides when to try again, with a new code.
pub(super) fn client_without_retries(sdk_config: &SdkConfig) -> aws_sdk_sts::Client {
    let config = aws_sdk_sts::config::Builder::from(sdk_config)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_sts::Client::from_conf(config)
}

/// Credentials as STS issued them, for signing.
pub(super) fn issued(
    issued: Option<aws_sdk_sts::types::Credentials>,
    provider: &'static str,
) -> Result<aws_credential_types::Credentials, String> {
    let c = issued.ok_or("STS answered without credentials")?;
    Ok(aws_credential_types::Credentials::new(
        c.access_key_id,
        c.secret_access_key,
        Some(c.session_token),
        std::time::SystemTime::try_from(c.expiration).ok(),
        provider,
    ))
}
