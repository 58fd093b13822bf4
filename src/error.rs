//! The one place where failures become HTTP responses.
//!
//! Every error a client can see is a [`ProxyError`]: it knows its status code, a stable
//! machine-readable `code`, and a message safe to show (no secrets, no credentials). The
//! response body is always JSON: `{"error":{"code":"...","message":"...","route":"..."}}`.

use crate::access::FORWARDED_METHODS;
use crate::access::{Denied, Refusal};
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::{Error as PingoraError, ErrorSource, ErrorType};
use std::fmt;

mod client_io;
pub use client_io::{SlowBody, Stalled};

/// What `Retry-After` tells a client refused with [`ProxyError::Busy`].
pub const RETRY_AFTER_SECONDS: u32 = 1;

/// What went wrong, as the client is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyError {
    /// No route matches the request's host and path.
    NoRoute,
    /// Access control refused the request (client address, method or path).
    Forbidden(Denied),
    /// The listener wants a bearer token and the request has none, or the wrong one.
    Unauthorized,
    /// A method sigproxy never forwards (`TRACE`, `CONNECT`, extensions).
    MethodNotAllowed(String),
    /// The request line and headers are larger than `max_header_bytes`.
    HeadersTooLarge { limit: usize },
    /// The request target or headers cannot be forwarded as they are.
    BadRequest(String),
    /// The request body is larger than the route's `max_body_bytes`.
    BodyTooLarge { limit: usize },
    /// The client sent a malformed body or broke off.
    BodyRead(String),
    /// The client stopped sending the body for longer than the route's `read_timeout`.
    ClientTimeout,
    /// The request body arrived slower than `min_request_body_rate` once
    /// `request_body_timeout` was over (the detail says both): the connection was closed.
    BodyTooSlow(String),
    /// The client read nothing of the response for `client_write_timeout` (the detail says
    /// how long): the connection was closed. Never sent: the client is not reading.
    ClientStalled(String),
    /// The client closed or reset its connection: while the response was written to it, or
    /// before the upstream answered (the detail says which). Never sent: nobody is there.
    ClientGone(String),
    /// The route's credential set has no valid credentials right now. `state` is the short
    /// reason a client is told; `reason` the detail (role ARNs, STS's answer) for the log and
    /// `/readyz` only.
    CredentialsUnavailable {
        credentials: String,
        state: &'static str,
        reason: String,
    },
    /// aws-sigv4 refused to sign the request.
    Signing(String),
    /// sigproxy is at one of its limits (`max_buffered_body_bytes`, `max_connections`): the
    /// client should retry shortly (`Retry-After`).
    Busy(String),
    /// The upstream could not be reached or broke off; `kind` is `connect`, `reset` or `tls`.
    UpstreamUnreachable { kind: &'static str, detail: String },
    /// The upstream did not connect or answer within the configured timeout.
    UpstreamTimeout(String),
    /// Anything else: a bug or an unexpected state.
    Internal(String),
}

impl ProxyError {
    pub fn status(&self) -> u16 {
        match self {
            Self::NoRoute => 404,
            Self::Forbidden(Denied::Host) => 421,
            Self::Forbidden(_) => 403,
            Self::Unauthorized => 401,
            Self::MethodNotAllowed(_) => 405,
            Self::HeadersTooLarge { .. } => 431,
            Self::BadRequest(_) | Self::BodyRead(_) => 400,
            Self::ClientTimeout | Self::BodyTooSlow(_) | Self::ClientStalled(_) => 408,
            // nginx's "client closed request"; only ever logged.
            Self::ClientGone(_) => 499,
            Self::BodyTooLarge { .. } => 413,
            Self::CredentialsUnavailable { .. } | Self::Busy(_) => 503,
            Self::Signing(_) | Self::Internal(_) => 500,
            Self::UpstreamUnreachable { .. } => 502,
            Self::UpstreamTimeout(_) => 504,
        }
    }

    /// A stable identifier for the kind of error, for scripts and dashboards.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoRoute => "no_route",
            Self::Forbidden(Denied::Host) => "misdirected_request",
            Self::Forbidden(_) => "forbidden",
            Self::Unauthorized => "unauthorized",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::HeadersTooLarge { .. } => "headers_too_large",
            Self::BadRequest(_) => "bad_request",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::BodyRead(_) => "body_read_failed",
            Self::ClientTimeout => "client_timeout",
            Self::BodyTooSlow(_) => "body_too_slow",
            Self::ClientStalled(_) => "client_stalled",
            Self::ClientGone(_) => "client_gone",
            Self::CredentialsUnavailable { .. } => "credentials_unavailable",
            Self::Signing(_) => "signing_failed",
            Self::Busy(_) => "busy",
            Self::UpstreamUnreachable { .. } => "upstream_unreachable",
            Self::UpstreamTimeout(_) => "upstream_timeout",
            Self::Internal(_) => "internal_error",
        }
    }

    /// Maps an error raised inside pingora (connecting, reading, writing) to what the client sees.
    pub fn from_pingora(e: &PingoraError) -> Self {
        if let Some(ours) = e
            .root_cause()
            .downcast_ref::<ProxyErrorCause>()
            .map(|c| c.0.clone())
        {
            return ours;
        }
        // The client connection's own failures (`conn::stream`), carried in an io::Error.
        let io_cause = e
            .root_cause()
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref());
        if let Some(stalled) = io_cause.and_then(|c| c.downcast_ref::<Stalled>()) {
            return Self::ClientStalled(stalled.to_string());
        }
        if let Some(slow) = io_cause.and_then(|c| c.downcast_ref::<SlowBody>()) {
            return Self::BodyTooSlow(slow.to_string());
        }
        let what = e.context.as_ref().map_or("", |c| c.as_str());
        let detail = if what.is_empty() {
            e.etype().as_str().to_string()
        } else {
            format!("{} ({what})", e.etype().as_str())
        };
        match e.etype() {
            ErrorType::ConnectTimedout => Self::UpstreamTimeout(format!(
                "no connection within the route's connect_timeout: {detail}"
            )),
            ErrorType::ReadTimedout | ErrorType::WriteTimedout => Self::UpstreamTimeout(format!(
                "no answer within the route's read_timeout: {detail}"
            )),
            _ => match e.esource() {
                ErrorSource::Upstream => Self::UpstreamUnreachable {
                    kind: failure_kind(e.etype()),
                    detail,
                },
                ErrorSource::Downstream if e.etype() == &ErrorType::WriteError => {
                    Self::ClientGone(format!("during the response: {detail}"))
                }
                ErrorSource::Downstream => Self::BodyRead(detail),
                ErrorSource::Internal | ErrorSource::Unset => Self::Internal(detail),
            },
        }
    }

    /// Whether the client caused it: it sent what cannot be read or forwarded, stalled, or
    /// went away. The access line says so; no operator need look at it.
    pub fn is_clients(&self) -> bool {
        matches!(
            self,
            Self::BodyRead(_)
                | Self::BadRequest(_)
                | Self::ClientTimeout
                | Self::BodyTooSlow(_)
                | Self::ClientStalled(_)
                | Self::ClientGone(_)
        )
    }

    /// Whether the error body may name the route the request matched: not for a client that
    /// has not shown it may use the proxy at all.
    pub fn may_name_route(&self) -> bool {
        !matches!(
            self,
            Self::Unauthorized
                | Self::Forbidden(
                    Denied::ClientAddress | Denied::Host | Denied::Origin | Denied::ClientRoute
                )
        )
    }

    /// The message a client is shown. Whoever reaches the traffic port may be a stranger: it
    /// never carries a role ARN, an account, an endpoint or an SDK's error text. Those are in
    /// [`Display`](fmt::Display), for the log.
    pub fn public_message(&self) -> String {
        match self {
            Self::CredentialsUnavailable { state, .. } => {
                format!("no valid AWS credentials: {state} (the admin port's /readyz says why)")
            }
            Self::Signing(_) => "could not sign the request".into(),
            Self::UpstreamUnreachable { kind, .. } => {
                format!("the upstream could not be reached ({kind})")
            }
            Self::UpstreamTimeout(_) => {
                "the upstream did not answer within the route's timeouts".into()
            }
            Self::BodyRead(_) => "could not read the request body".into(),
            Self::Internal(_) => "internal error (the log says more)".into(),
            other => other.to_string(),
        }
    }

    /// For refusals, the `reason` label of `sigproxy_denied_requests_total`.
    pub fn denied_reason(&self) -> Option<&'static str> {
        match self {
            Self::Forbidden(denied) => Some(denied.label()),
            Self::Unauthorized => Some(Denied::BearerToken.label()),
            _ => None,
        }
    }

    /// For signing failures, the `reason` label of `sigproxy_signing_errors_total`.
    pub fn signing_reason(&self) -> Option<&'static str> {
        match self {
            Self::CredentialsUnavailable { .. } => Some("credentials_unavailable"),
            Self::Signing(_) => Some("signing_failed"),
            _ => None,
        }
    }

    /// For upstream failures, the `kind` label of `sigproxy_upstream_errors_total`.
    pub fn upstream_kind(&self) -> Option<&'static str> {
        match self {
            Self::UpstreamUnreachable { kind, .. } => Some(kind),
            Self::UpstreamTimeout(_) => Some("timeout"),
            _ => None,
        }
    }

    /// Wraps this error into a pingora error so it can travel through pingora's phases and be
    /// recovered intact by [`ProxyError::from_pingora`].
    pub fn into_pingora(self) -> Box<PingoraError> {
        let etype = ErrorType::HTTPStatus(self.status());
        let source = match self {
            Self::UpstreamUnreachable { .. } | Self::UpstreamTimeout(_) => ErrorSource::Upstream,
            _ if self.is_clients() => ErrorSource::Downstream,
            _ => ErrorSource::Internal,
        };
        let mut e = PingoraError::because(etype, self.code(), ProxyErrorCause(self));
        e.esource = source;
        e
    }

    /// The JSON body of the error response.
    pub fn body(&self, route: Option<&str>) -> Bytes {
        let mut error = serde_json::json!({
            "code": self.code(),
            "message": self.public_message(),
        });
        if let Some(route) = route {
            error["route"] = serde_json::Value::from(route);
        }
        Bytes::from(serde_json::json!({ "error": error }).to_string())
    }

    /// The complete response header for this error, with a JSON content type and length.
    pub fn response_header(&self, body_len: usize) -> ResponseHeader {
        let mut resp = ResponseHeader::build(self.status(), Some(4)).expect("valid status");
        // The values are static and valid; inserting them cannot fail.
        let _ = resp.insert_header("content-type", "application/json");
        let _ = resp.insert_header("content-length", body_len.to_string());
        let _ = resp.insert_header("cache-control", "no-store");
        let _ = resp.insert_header("x-sigproxy-error", self.code());
        match self {
            Self::Unauthorized => {
                let _ = resp.insert_header("www-authenticate", "Bearer realm=\"sigproxy\"");
            }
            Self::MethodNotAllowed(_) => {
                let _ = resp.insert_header("allow", FORWARDED_METHODS.join(", "));
            }
            Self::Busy(_) => {
                let _ = resp.insert_header("retry-after", RETRY_AFTER_SECONDS.to_string());
            }
            _ => {}
        }
        resp
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoRoute => write!(f, "no route matches this host and path"),
            Self::Forbidden(Denied::ClientAddress) => {
                write!(f, "this client's address is not in access.allowed_clients")
            }
            Self::Forbidden(Denied::BearerToken) | Self::Unauthorized => write!(
                f,
                "a valid bearer token is required (Authorization: Bearer <token>)"
            ),
            Self::Forbidden(Denied::Host) => write!(
                f,
                "this Host is not served here: sigproxy answers loopback names, its routes' \
                 match.host and access.allowed_hosts (--allowed-hosts); where the Host names \
                 the upstream (no --host), only AWS endpoint names and the hosts listed for it \
                 (--allowed-upstream-hosts), loopback names not included"
            ),
            Self::Forbidden(Denied::Origin) => write!(
                f,
                "requests from web pages (Origin, Sec-Fetch-Site) are refused unless \
                 access.allowed_origins (--allowed-origins) lists the page's origin"
            ),
            Self::Forbidden(Denied::Action) => write!(
                f,
                "this route's allow list does not grant what this request does (its IAM \
                 action, such as an S3 sub-resource or bucket operation)"
            ),
            Self::Forbidden(Denied::ClientRoute) => write!(
                f,
                "this client may not use this route (access.clients[].routes lists those it may)"
            ),
            Self::Forbidden(Denied::CopySource) => write!(
                f,
                "a copy's source (x-amz-copy-source) must be inside what this route reaches: \
                 its bucket and base path (on a host that is not AWS's, once s3_addressing \
                 says where the bucket is), whatever its allow list"
            ),
            Self::Forbidden(Denied::Method) => {
                write!(f, "this route's allow list does not grant this method")
            }
            Self::Forbidden(Denied::Path) => write!(
                f,
                "this route's allow list does not grant this method on this path"
            ),
            Self::MethodNotAllowed(method) => write!(
                f,
                "method {method} is not forwarded; sigproxy forwards {}",
                FORWARDED_METHODS.join(", ")
            ),
            Self::HeadersTooLarge { limit } => write!(
                f,
                "the request line and headers are larger than max_header_bytes ({limit} bytes)"
            ),
            Self::BadRequest(why) => write!(f, "bad request: {why}"),
            Self::BodyTooLarge { limit: 0 } => write!(f, "request body is too large"),
            Self::BodyTooLarge { limit } => {
                write!(
                    f,
                    "request body is larger than this route's limit of {limit} bytes"
                )
            }
            Self::BodyRead(why) => write!(f, "could not read the request body: {why}"),
            Self::ClientTimeout => write!(f, "the client stopped sending the request body"),
            Self::BodyTooSlow(why) | Self::ClientStalled(why) => write!(f, "{why}"),
            Self::ClientGone(why) => write!(f, "the client went away {why}"),
            Self::CredentialsUnavailable {
                credentials,
                reason,
                ..
            } => write!(
                f,
                "no valid AWS credentials for credential set '{credentials}': {reason}"
            ),
            Self::Signing(why) => write!(f, "could not sign the request: {why}"),
            Self::Busy(why) => write!(f, "busy: {why}"),
            Self::UpstreamUnreachable { detail, .. } => write!(f, "upstream unreachable: {detail}"),
            Self::UpstreamTimeout(why) => write!(f, "upstream timed out: {why}"),
            Self::Internal(why) => write!(f, "internal error: {why}"),
        }
    }
}

impl std::error::Error for ProxyError {}

impl From<Refusal> for ProxyError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Denied(denied) => ProxyError::Forbidden(denied),
            Refusal::Ambiguous(why) => ProxyError::BadRequest(why),
        }
    }
}

/// What kind of upstream failure a pingora error type is.
fn failure_kind(etype: &ErrorType) -> &'static str {
    match etype {
        ErrorType::TLSHandshakeFailure
        | ErrorType::TLSHandshakeTimedout
        | ErrorType::InvalidCert
        | ErrorType::HandshakeError
        | ErrorType::TLSWantX509Lookup => "tls",
        ErrorType::ConnectionClosed
        | ErrorType::ReadError
        | ErrorType::WriteError
        | ErrorType::H2Error
        | ErrorType::InvalidHTTPHeader => "reset",
        _ => "connect",
    }
}

/// Carries a [`ProxyError`] inside a pingora error as its cause.
#[derive(Debug)]
struct ProxyErrorCause(ProxyError);

impl fmt::Display for ProxyErrorCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for ProxyErrorCause {}

#[cfg(test)]
#[path = "error_tests.rs"]
mod tests;
