//! The credential endpoint: one credential set's temporary credentials, served to AWS SDKs in
//! the container-credentials format (what ECS and EKS Pod Identity serve), for apps that sign
//! their own requests but hold no credentials.
//!
//! An SDK started with `AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:PORT/credentials`
//! and `AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE)` sends `GET <that URI>` with
//! `Authorization: <token>` (the token itself, no scheme) and reads
//! `{"AccessKeyId","SecretAccessKey","Token","Expiration"}`; it asks again as `Expiration`
//! nears, and gets whatever the background refresh holds by then.
//!
//! What it vends never reaches a log line or a metric label. A request without the token is
//! `401`, with another token `403` (compared in constant time, see [`crate::access::BearerToken::matches`]),
//! from a web page (`Origin`, `Sec-Fetch-Site`) or for a foreign `Host` (DNS rebinding) `403` /
//! `421` as on the admin port, and `503` while the set holds no valid credentials.
//!
//! Who gets which session is decided in one place, [`CredentialEndpoint::session_for`]: the
//! endpoint's one token gets the configured set's session; when that set is `per_client`, the
//! endpoint has no token of its own and each client of `access.clients` that has
//! `credential_endpoint: true` gets its own session of the set (named for it), with its own
//! token. A client's token never gets another client's session.

use crate::access::clients::identify;
use crate::access::Denied;
use crate::credentials::CredentialSet;
use crate::error::ProxyError;
use crate::metrics::metrics;
use crate::reload::{Live, Snapshot};
use crate::utc::Utc;
use async_trait::async_trait;
use aws_credential_types::Credentials;
use http::{HeaderMap, Method, Response};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use std::sync::Arc;
use tracing::info;

/// The `result` label of `sigproxy_credential_endpoint_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Served,
    MissingToken,
    WrongToken,
    /// A web page's request, or a `Host` that is not this machine's.
    Browser,
    /// The set holds no valid temporary credentials right now.
    Unavailable,
    /// Anything but `GET`.
    Method,
    /// A reload removed `credential_endpoint`; the listener stays until a restart.
    Disabled,
}

impl Outcome {
    const ALL: [Outcome; 7] = [
        Outcome::Served,
        Outcome::MissingToken,
        Outcome::WrongToken,
        Outcome::Browser,
        Outcome::Unavailable,
        Outcome::Method,
        Outcome::Disabled,
    ];

    fn label(self) -> &'static str {
        match self {
            Outcome::Served => "served",
            Outcome::MissingToken => "missing_token",
            Outcome::WrongToken => "wrong_token",
            Outcome::Browser => "browser",
            Outcome::Unavailable => "unavailable",
            Outcome::Method => "method",
            Outcome::Disabled => "disabled",
        }
    }
}

type Refusal = (Outcome, ProxyError);

pub struct CredentialEndpoint {
    /// The set and token in force, and the browser policy, as the last reload left them.
    live: Live,
}

impl CredentialEndpoint {
    /// The endpoint's application; its request counter's series exist from now on, at zero.
    pub fn new(live: Live) -> CredentialEndpoint {
        for outcome in Outcome::ALL {
            metrics()
                .credential_endpoint_requests
                .with_label_values(&[outcome.label()]);
        }
        CredentialEndpoint { live }
    }

    /// The credentials for this request, or why there are none.
    fn answer(
        &self,
        method: &Method,
        host: Option<&str>,
        headers: &HeaderMap,
    ) -> Result<Credentials, Refusal> {
        let live = self.live.load();
        // As on the admin port: no web page at all, and only this machine's names.
        live.access
            .browser
            .check_admin(host, headers)
            .map_err(|denied| (Outcome::Browser, ProxyError::Forbidden(denied)))?;
        if method != Method::GET {
            return Err((
                Outcome::Method,
                ProxyError::MethodNotAllowed(method.to_string()),
            ));
        }
        let mut authorization = headers.get_all(http::header::AUTHORIZATION).iter();
        let presented = authorization.next();
        if authorization.next().is_some() {
            // Which one would count is anybody's guess: neither does.
            let e = ProxyError::BadRequest("more than one Authorization header".into());
            return Err((Outcome::WrongToken, e));
        }
        let set = Self::session_for(&live, presented)?;
        let credentials = set.current().map_err(|e| (Outcome::Unavailable, e))?;
        if credentials.session_token().is_none() || credentials.expiry().is_none() {
            // Config checks allow only sets ending in an STS call; this is a second guard.
            return Err((
                Outcome::Unavailable,
                ProxyError::CredentialsUnavailable {
                    credentials: set.name().to_string(),
                    state: "they are not temporary credentials",
                    reason: "the credential endpoint serves temporary STS credentials only".into(),
                },
            ));
        }
        Ok(credentials)
    }

    /// The credential set whose session the bearer of `authorization` gets.
    fn session_for(
        live: &Snapshot,
        authorization: Option<&http::HeaderValue>,
    ) -> Result<Arc<CredentialSet>, Refusal> {
        let Some(endpoint) = &live.credential_endpoint else {
            return Err((
                Outcome::Disabled,
                ProxyError::CredentialsUnavailable {
                    credentials: String::new(),
                    state: "credential_endpoint is not in the configuration in force",
                    reason: "credential_endpoint was removed by a reload; its listener closes \
                             at the next restart"
                        .into(),
                },
            ));
        };
        let presented = authorization
            .map(|v| v.as_bytes().trim_ascii())
            .filter(|v| !v.is_empty());
        let Some(presented) = presented else {
            return Err((Outcome::MissingToken, ProxyError::Unauthorized));
        };
        let wrong = || {
            (
                Outcome::WrongToken,
                ProxyError::Forbidden(Denied::BearerToken),
            )
        };
        let set = match &endpoint.token {
            Some(token) if token.matches(presented) => live.store.get(&endpoint.credentials),
            Some(_) => return Err(wrong()),
            None => {
                let client = identify(&live.access.clients, presented)
                    .filter(|c| c.credential_endpoint)
                    .ok_or_else(wrong)?;
                live.store.session(&endpoint.credentials, &client.name)
            }
        };
        set.cloned().ok_or_else(|| {
            (
                Outcome::Unavailable,
                ProxyError::Internal(format!(
                    "credential set '{}' is not in the store",
                    endpoint.credentials
                )),
            )
        })
    }
}

/// The container-credentials document: `Expiration` in RFC 3339, UTC, to the second.
fn document(credentials: &Credentials) -> Vec<u8> {
    let mut expiration = String::with_capacity(20);
    if let Some(expiry) = credentials.expiry() {
        Utc::from(expiry).push_date_time(&mut expiration, true);
        expiration.push('Z');
    }
    serde_json::json!({
        "AccessKeyId": credentials.access_key_id(),
        "SecretAccessKey": credentials.secret_access_key(),
        "Token": credentials.session_token(),
        "Expiration": expiration,
    })
    .to_string()
    .into_bytes()
}

/// What this listener says where the traffic port's words would mislead: its token is the
/// whole `Authorization` value, it answers `GET` only, and no web page, listed or not.
fn endpoint_message(error: &ProxyError) -> Option<&'static str> {
    match error {
        ProxyError::Unauthorized => Some(
            "the endpoint's token is required: the whole Authorization value, as AWS SDKs send \
             AWS_CONTAINER_AUTHORIZATION_TOKEN (no Bearer prefix)",
        ),
        ProxyError::Forbidden(Denied::BearerToken) => {
            Some("this token fetches no credentials here: it is not the endpoint's, nor that of a client with credential_endpoint: true")
        }
        ProxyError::MethodNotAllowed(_) => Some("the credential endpoint answers GET only"),
        ProxyError::Forbidden(Denied::Origin) => {
            Some("the credential endpoint answers no web page, whatever its origin")
        }
        _ => None,
    }
}

/// `error` as the JSON error response every sigproxy listener gives.
fn refusal(error: &ProxyError) -> Response<Vec<u8>> {
    let body = match endpoint_message(error) {
        Some(message) => {
            let error = serde_json::json!({ "code": error.code(), "message": message });
            serde_json::json!({ "error": error })
                .to_string()
                .into_bytes()
        }
        None => error.body(None).to_vec(),
    };
    let head = error.response_header(body.len());
    let mut response = Response::builder().status(head.status);
    for (name, value) in head.headers.iter() {
        // The traffic port's `WWW-Authenticate: Bearer` and method list are not this one's.
        if name != http::header::WWW_AUTHENTICATE && name != http::header::ALLOW {
            response = response.header(name, value);
        }
    }
    if matches!(error, ProxyError::MethodNotAllowed(_)) {
        response = response.header(http::header::ALLOW, "GET");
    }
    response
        .body(body)
        .expect("an error response's parts are valid")
}

#[async_trait]
impl ServeHttp for CredentialEndpoint {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let host = crate::headers::request_host(req);
        let (outcome, response) = match self.answer(&req.method, host, &req.headers) {
            Ok(credentials) => {
                let body = document(&credentials);
                let response = Response::builder()
                    .status(200)
                    .header("content-type", "application/json")
                    .header("content-length", body.len())
                    .header("cache-control", "no-store")
                    .body(body)
                    .expect("static response parts are valid");
                (Outcome::Served, response)
            }
            Err((outcome, error)) => (outcome, refusal(&error)),
        };
        metrics()
            .credential_endpoint_requests
            .with_label_values(&[outcome.label()])
            .inc();
        // Never the body, the query or any header: what is served stays out of the log.
        info!(
            target: "access",
            listener = "credential_endpoint",
            method = %req.method,
            path = req.uri.path(),
            status = response.status().as_u16(),
            result = outcome.label(),
            "credential request"
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn the_document_has_the_four_fields_with_an_rfc3339_utc_expiration() {
        let expiry = UNIX_EPOCH + Duration::from_secs(1_795_644_000);
        let creds = Credentials::new(
            "AKIDEXAMPLE",
            "secret",
            Some("tok".into()),
            Some(expiry),
            "t",
        );
        let doc: serde_json::Value = serde_json::from_slice(&document(&creds)).unwrap();
        assert_eq!(doc["AccessKeyId"], "AKIDEXAMPLE");
        assert_eq!(doc["SecretAccessKey"], "secret");
        assert_eq!(doc["Token"], "tok");
        assert_eq!(doc["Expiration"], "2026-11-25T22:00:00Z");
    }

    #[test]
    fn the_token_is_the_raw_value_without_a_scheme() {
        let token = crate::access::BearerToken::new("s3cret-token-0123456789");
        assert!(token.matches(b"s3cret-token-0123456789"));
        assert!(!token.matches(b"Bearer s3cret-token-0123456789"));
        assert!(!token.matches(b"s3cret-token-012345678"));
    }

    #[test]
    fn refusals_are_json_with_this_listeners_headers() {
        let r = refusal(&ProxyError::MethodNotAllowed("POST".into()));
        assert_eq!(r.status(), 405);
        assert_eq!(r.headers()["allow"], "GET");
        let r = refusal(&ProxyError::Unauthorized);
        assert_eq!(r.status(), 401);
        assert!(r.headers().get("www-authenticate").is_none());
        assert_eq!(r.headers()["cache-control"], "no-store");
        let body: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
        // This listener's own words: no `Bearer`, `GET` only.
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("no Bearer prefix"), "{message}");
        let r = refusal(&ProxyError::MethodNotAllowed("POST".into()));
        let body: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(
            body["error"]["message"],
            "the credential endpoint answers GET only"
        );
    }
}
