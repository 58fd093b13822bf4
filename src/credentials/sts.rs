//! The one place STS clients are configured: which region's STS endpoint (the set's
//! `sts_region`, else `AWS_REGION` or the profile's, else STS's global region), and an explicit
//! `sts_endpoint` when given. AssumeRole and GetSessionToken/GetFederationToken alike.

use aws_config::meta::region::RegionProviderChain;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_sts::config::http::HttpResponse;
use aws_sdk_sts::config::Region;
use aws_sdk_sts::error::SdkError;
use aws_sdk_sts::operation::assume_role::AssumeRoleError;
use aws_sdk_sts::operation::assume_role_with_web_identity::AssumeRoleWithWebIdentityError;
use aws_sdk_sts::operation::get_federation_token::GetFederationTokenError;
use aws_sdk_sts::operation::get_session_token::GetSessionTokenError;
use std::error::Error;

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

/// An STS (or credential provider) error as a sentence: the `Display` of it and of each cause,
/// joined with ": ", and where STS answered with an error, its status, code and message. Never
/// the error's `Debug` form (what aws-smithy's `DisplayErrorContext` appends), which holds the
/// raw HTTP response: an answer that could not be read may hold the very secret key and
/// session token it failed to deliver.
pub fn error_sentence(e: &(dyn Error + 'static)) -> String {
    let mut out = String::new();
    let mut cause = Some(e);
    while let Some(c) = cause {
        let text = c.to_string();
        // Some layers repeat their cause's words in their own.
        if !text.is_empty() && !out.ends_with(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
        if let Some(answer) = error_answer(c) {
            out.push_str(&format!(" ({answer})"));
        }
        cause = c.source();
    }
    // Some providers' own words quote what they were given (credential_process's output).
    withhold_credentials(&out).into_owned()
}

/// Text that may carry an AWS response as the SDK's errors print it (their `Debug` form holds
/// the raw HTTP response: `raw: Response { … body: … }`), cut before the response or before
/// anything named as a credential. An answer that could not be read (a `200` whose expiry
/// does not parse, a truncated body) holds the very secret key and session token it failed to
/// deliver; aws-config logs such errors at `warn` (the web identity and profile providers,
/// the default chain), whatever sigproxy does with them.
pub fn withhold_credentials(text: &str) -> std::borrow::Cow<'_, str> {
    // Found in any letter case, with or without `_` (`SecretAccessKey`, `secret_access_key`,
    // `AWS_SECRET_ACCESS_KEY`, `sessionToken`): the SDK reads credential documents that way.
    const MARKS: [&str; 9] = [
        "raw: response",
        "sdkbody",
        "secretaccesskey",
        "secret_access_key",
        "sessiontoken",
        "session_token",
        "\"token\"",
        "\\\"token\\\"",
        // A credential process's own error output, quoted by the SDK.
        "stderr:",
    ];
    let lower = text.to_ascii_lowercase();
    match MARKS.iter().filter_map(|m| lower.find(m)).min() {
        None => std::borrow::Cow::Borrowed(text),
        Some(at) => std::borrow::Cow::Owned(format!(
            "{}[the rest withheld: it may hold credentials]",
            &text[..at]
        )),
    }
}

/// STS's error answer, when `e` is one: `HTTP 403 AccessDenied <its message>`. An error
/// answer (`4xx`, `5xx`) holds no credentials (a `2xx` that could not be read may, and is
/// never looked at).
/// Read here because the SDK finds no code in some STS stand-ins' error shapes.
fn error_answer(e: &(dyn Error + 'static)) -> Option<String> {
    fn raw<'a, E: Error + 'static>(e: &'a (dyn Error + 'static)) -> Option<&'a HttpResponse> {
        match e.downcast_ref::<SdkError<E, HttpResponse>>()? {
            SdkError::ServiceError(answered) => Some(answered.raw()),
            _ => None,
        }
    }
    let raw = raw::<AssumeRoleError>(e)
        .or_else(|| raw::<GetSessionTokenError>(e))
        .or_else(|| raw::<GetFederationTokenError>(e))
        .or_else(|| raw::<AssumeRoleWithWebIdentityError>(e))?;
    let status = raw.status().as_u16();
    if !(400..600).contains(&status) {
        return None;
    }
    let body = raw.body().bytes().map(String::from_utf8_lossy);
    let field = |tag: &str| -> Option<String> {
        let body: &str = body.as_deref()?;
        let start = body.find(&format!("<{tag}>"))? + tag.len() + 2;
        let end = start + body[start..].find(&format!("</{tag}>"))?;
        // Printable ASCII only, as AWS writes them: no control, bidirectional or line
        // separator characters into a log line or /readyz.
        let text: String = body[start..end]
            .chars()
            .filter(|c| c.is_ascii_graphic() || *c == ' ')
            .take(300)
            .collect();
        Some(text)
    };
    let mut answer = format!("HTTP {status}");
    for part in [field("Code"), field("Message")].into_iter().flatten() {
        answer.push(' ');
        answer.push_str(&part);
    }
    Some(answer)
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
