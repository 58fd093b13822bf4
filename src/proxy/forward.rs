//! Forwarding a request whose body the proxy has already read (to hash it for the signature).
//!
//! pingora replays a body consumed in `request_filter` only through its retry buffer, which holds
//! 64 KiB; a larger body would never be sent. So every request whose body sigproxy reads is sent
//! here instead, for all sizes alike: one code path, tested from 0 B to the route's limit. It uses
//! pingora's own connector (same pool, TLS and timeouts) and streams the response back.

use super::budget::Reservation;
use super::failed;
use super::pool::Pool;
use super::relay;
use crate::access::browser::PageRequest;
use crate::error::ProxyError;
use crate::headers;
use crate::metrics::metrics;
use crate::route::Route;
use crate::service::TokenVerdict;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::client::HttpSession;
use pingora::proxy::Session;
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error as PingoraError, ErrorType};
use std::time::{Duration, Instant, SystemTime};
use tracing::debug;

/// What the upstream answered.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// From sending the request to the upstream's response header.
    pub upstream_time: Duration,
    /// `x-amz-request-id` or `x-amzn-requestid`.
    pub request_id: Option<String>,
}

/// A body read to be signed: its bytes, their SHA-256, and their place in the body budget.
pub struct ReadBody<'a> {
    pub bytes: Bytes,
    pub hash: String,
    pub reserved: Reservation<'a>,
}

/// Why an exchange with the upstream stopped.
#[derive(Debug)]
pub enum Failure {
    /// Before any of the answer reached the client, who can still be told with a JSON error.
    Unanswered(ProxyError),
    /// While the answer was being relayed: all that is left is to close the connection.
    Midway(ProxyError),
}

/// The upstream's answer, or why there is none.
pub type Outcome = Result<Answer, Failure>;

/// Signs `request` (prepared for the upstream, not yet signed) for `body`, sends it with the
/// body, and streams the answer back.
///
/// If AWS refuses the credentials (an expired or invalid session token: see
/// [`refused_by_header`] and [`refused_by_s3`]), the credential set is refreshed at once and
/// the request, whose body is at hand, is signed again and sent once more.
pub async fn forward(
    pool: &Pool,
    session: &mut Session,
    route: &Route,
    request: RequestHeader,
    body: ReadBody<'_>,
    page: &PageRequest,
) -> Outcome {
    let ReadBody {
        bytes,
        hash,
        reserved,
    } = body;
    let payload_hash = hash.as_str();
    let signer = route
        .signer
        .as_ref()
        .expect("only signed routes are forwarded here");
    let peer = route.peers.peer().await.map_err(Failure::Unanswered)?;
    let mut credentials = signer.current_credentials().map_err(Failure::Unanswered)?;
    let mut request = request;
    let mut resent = false;
    // Kept, with its place in the body budget, only while the request may be sent again.
    let mut body = Some((bytes, reserved));
    loop {
        // Signed in place; signing again replaces the first signature's headers.
        signer
            .sign(
                &mut request,
                credentials.clone(),
                payload_hash,
                SystemTime::now(),
            )
            .map_err(Failure::Unanswered)?;
        let started = Instant::now();
        let payload = &body.as_ref().expect("kept while it may be sent again").0;
        let mut upstream = exchange(pool, route, &peer, &request, payload).await?;
        let upstream_time = started.elapsed();
        let response = upstream.response_header().expect("exchange read it");
        let request_id = headers::aws_request_id(response);
        let mut held = Vec::new();
        // S3 says so in its body, everyone else in a header: only then is the body read here.
        let s3 = signer.service().token_verdict() == TokenVerdict::S3ErrorBody;
        let may_be_refused = !resent
            && matches!(response.status.as_u16(), 400 | 403)
            && (s3 || refused_by_header(response));
        let complete = may_be_refused && read_small_body(&mut upstream, &mut held).await?;
        let response = upstream.response_header().expect("exchange read it");
        let path = request.uri.path();
        failed::log(&route.name, &request.method, path, response, &held);
        if complete && (!s3 || refused_by_s3(&held)) {
            if let Some(fresh) = signer.credentials().replace_rejected(&credentials).await {
                debug!("AWS refused the credentials; sending again with fresh ones");
                metrics()
                    .upstream_retries
                    .with_label_values(&[&route.name, "expired_token"])
                    .inc();
                pool.release(upstream, &peer).await;
                credentials = fresh;
                resent = true;
                continue;
            }
        }
        // No resend from here: the body and its budget go before the answer streams, however
        // slowly the client reads it.
        drop(body.take());
        let status = relay::relay_response(session, pool, upstream, &peer, held, page).await?;
        return Ok(Answer {
            status,
            upstream_time,
            request_id,
        });
    }
}

/// Sends one signed request and reads the response header.
pub(super) async fn exchange(
    pool: &Pool,
    route: &Route,
    peer: &HttpPeer,
    request: &RequestHeader,
    body: &Bytes,
) -> Result<HttpSession, Failure> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (mut upstream, reused) = pool
            .session(peer)
            .await
            .map_err(|e| Failure::Unanswered(upstream_error(e)))?;
        upstream.set_read_timeout(Some(route.peers.read_timeout()));
        upstream.set_write_timeout(Some(route.peers.read_timeout()));
        match send(&mut upstream, request.clone(), body.clone()).await {
            Ok(()) => return Ok(upstream),
            // A pooled connection that the server has closed fails on first use. Like Go's
            // net/http, retry once on a fresh connection when the request cannot have reached
            // the upstream (it failed while being written) or is idempotent.
            Err((e, phase))
                if reused
                    && attempt == 1
                    && (phase == Phase::Write || request.method.is_idempotent()) =>
            {
                debug!(error = %e, "reused upstream connection failed; retrying on a new one");
                upstream.shutdown().await;
            }
            Err((e, _)) => return Err(Failure::Unanswered(upstream_error(e))),
        }
    }
}

/// The most of an error response read to look for a refused-credentials code.
const ERROR_BODY_PEEK: usize = 16 * 1024;

/// Reads the response body into `held` while it stays small; `true` if it was read whole.
async fn read_small_body(
    upstream: &mut HttpSession,
    held: &mut Vec<Bytes>,
) -> Result<bool, Failure> {
    let mut size = 0;
    while !upstream.response_done() {
        match upstream
            .read_response_body()
            .await
            .map_err(|e| Failure::Unanswered(upstream_error(e)))?
        {
            None => break,
            Some(chunk) => {
                size += chunk.len();
                held.push(chunk);
                if size > ERROR_BODY_PEEK {
                    return Ok(false);
                }
            }
        }
    }
    Ok(true)
}

// Whether AWS says a request's credentials were refused: an expired or invalid session token.
// Only AWS's own error shapes count, never words a Lambda function might put in its own
// response body (that request ran; sending it again would run it twice).

/// S3's XML error envelope (`<Error><Code>ExpiredToken</Code>…`): S3 answers for itself.
pub fn refused_by_s3(body: &[Bytes]) -> bool {
    let body: Vec<u8> = body.concat();
    let text = String::from_utf8_lossy(&body);
    let text = text.trim_start();
    let envelope = text.starts_with("<?xml") || text.starts_with("<Error>");
    envelope
        && ["<Code>ExpiredToken</Code>", "<Code>InvalidToken</Code>"]
            .iter()
            .any(|code| text.contains(code))
}

/// Every other service: the `x-amzn-ErrorType` header set by AWS's front end.
pub fn refused_by_header(response: &ResponseHeader) -> bool {
    const ERROR_TYPES: &[&str] = &[
        "ExpiredToken",
        "InvalidToken",
        "UnrecognizedClient",
        "InvalidClientTokenId",
    ];
    response
        .headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| ERROR_TYPES.iter().any(|e| t.starts_with(e)))
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    Write,
    Read,
}

async fn send(
    upstream: &mut HttpSession,
    request: RequestHeader,
    body: Bytes,
) -> Result<(), (Box<PingoraError>, Phase)> {
    let write = |e| (e, Phase::Write);
    upstream
        .write_request_header(Box::new(request))
        .await
        .map_err(write)?;
    if !body.is_empty() {
        upstream
            .write_request_body(body, true)
            .await
            .map_err(write)?;
    }
    upstream.finish_request_body().await.map_err(write)?;
    // Read the final response header, skipping informational 1xx answers.
    loop {
        upstream
            .read_response_header()
            .await
            .map_err(|e| (e, Phase::Read))?;
        match upstream.response_header() {
            Some(resp) if resp.status.is_informational() && resp.status != 101 => continue,
            Some(_) => return Ok(()),
            None => {
                let e = PingoraError::explain(ErrorType::InvalidHTTPHeader, "no response header");
                return Err((e, Phase::Read));
            }
        }
    }
}

/// Errors talking to the upstream are the upstream's, whatever pingora tagged them with.
pub(super) fn upstream_error(e: Box<PingoraError>) -> ProxyError {
    ProxyError::from_pingora(&e.into_up())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(error_type: Option<&str>) -> ResponseHeader {
        let mut r = ResponseHeader::build(403, None).unwrap();
        if let Some(t) = error_type {
            r.insert_header("x-amzn-ErrorType", t).unwrap();
        }
        r
    }

    #[test]
    fn lambda_and_json_apis_are_read_from_the_error_type_header() {
        let expired = response(Some("ExpiredTokenException:http://internal.amazon.com/"));
        assert!(refused_by_header(&expired));
        let invalid = response(Some("UnrecognizedClientException"));
        assert!(refused_by_header(&invalid));
        let denied = response(Some("AccessDeniedException"));
        assert!(!refused_by_header(&denied));
        // A function's own words are not AWS's verdict: without the header, no retry.
        assert!(!refused_by_header(&response(None)));
    }

    #[test]
    fn s3_is_read_from_its_xml_error_envelope_even_split_across_chunks() {
        let body = [
            Bytes::from_static(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>Expired"),
            Bytes::from_static(
                b"Token</Code><Message>The provided token has expired.</Message></Error>",
            ),
        ];
        assert!(refused_by_s3(&body));
        let other = [Bytes::from_static(
            b"<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code></Error>",
        )];
        assert!(!refused_by_s3(&other));
        let object = [Bytes::from_static(
            b"an object that mentions <Code>ExpiredToken</Code>",
        )];
        assert!(!refused_by_s3(&object));
    }
}
