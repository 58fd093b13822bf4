//! Forwarding a request whose body the proxy has already read: to hash it for the signature, or,
//! on a pass-through route, a small one that is cheaper to send whole than through pingora's
//! proxy loop (see [`super::buffered`]).
//!
//! pingora replays a body consumed in `request_filter` only through its retry buffer, which holds
//! 64 KiB; a larger body would never be sent. So every request whose body sigproxy reads is sent
//! here instead, for all sizes alike: one code path, tested from 0 B to the route's limit. It uses
//! pingora's own connector (same pool, TLS and timeouts); [`super::relay`] streams the response
//! back.

use super::budget::Reservation;
use super::exchange::{
    exchange, too_many_informational, unasked_switch, while_client_waits, MAX_INFORMATIONAL,
};
use super::failed;
use super::refused::{refused_by_header, refused_by_s3};
use super::relay::{self, client_failure};
use crate::access::browser::{answer_cors, PageRequest};
use crate::access::method_override;
use crate::error::ProxyError;
use crate::headers;
use crate::metrics::metrics;
use crate::route::Route;
use crate::service::TokenVerdict;
use crate::sign::{sha256_hex, Signer, EMPTY_SHA256};
use crate::upstream::pool::Pool;
use bytes::Bytes;
use pingora::http::RequestHeader;
use pingora::protocols::http::client::HttpSession;
use pingora::proxy::Session;
use pingora::upstreams::peer::HttpPeer;
use pingora::Error as PingoraError;
use std::time::{Duration, Instant, SystemTime};
use tracing::debug;

/// What the upstream answered.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// From sending the request to the upstream's response header (signed requests: from
    /// asking for a connection).
    pub upstream_time: Duration,
    /// `x-amz-request-id` or `x-amzn-requestid`.
    pub request_id: Option<String>,
}

/// A body read whole: its bytes, and their place in the body budget.
pub struct ReadBody<'a> {
    pub bytes: Bytes,
    pub reserved: Reservation<'a>,
}

/// How an answer goes back to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relay {
    /// Signed requests and upgrades: `1xx` answers are not passed on, hop-by-hop headers are
    /// dropped.
    Own,
    /// Pass-through requests, as pingora's proxy loop relays them (their bodies that stream
    /// still take it): `1xx` answers are passed on, the headers go as the upstream sent them,
    /// and a body delimited by the connection's close goes chunked.
    AsPingora,
}

/// Why an exchange with the upstream stopped.
#[derive(Debug)]
pub enum Failure {
    /// Before any of the answer reached the client, who can still be told with a JSON error.
    Unanswered(ProxyError),
    /// While the answer was being relayed: all that is left is to close the connection
    /// without ending the answer, so that the client sees it cut off. With what the upstream
    /// had answered, once known (for the access line).
    Midway(ProxyError, Option<Answer>),
}

/// The upstream's answer, or why there is none.
pub type Outcome = Result<Answer, Failure>;

/// Sends `request` (prepared for the upstream) with `body` and streams the answer back. On a
/// signed route the request is signed for `body` first; a pass-through request goes as it is,
/// its answer relayed as pingora's loop would ([`Relay::AsPingora`]).
///
/// If AWS refuses the credentials of a signed request (an expired or invalid session token:
/// see [`refused_by_header`] and [`refused_by_s3`]), the credential set is refreshed at once
/// and the request, whose body is at hand, is signed again and sent once more.
pub async fn forward(
    connector: &Pool,
    session: &mut Session,
    route: &Route,
    client: Option<&str>,
    request: RequestHeader,
    body: ReadBody<'_>,
    page: &PageRequest,
) -> Outcome {
    let ReadBody { bytes, reserved } = body;
    let (relay, mut signing) = match &route.signer {
        Some(signer) => {
            let hash = match bytes.is_empty() {
                true => EMPTY_SHA256.to_string(),
                false => sha256_hex(&bytes),
            };
            let credentials = signer.current_credentials().map_err(Failure::Unanswered)?;
            (Relay::Own, Some((signer, credentials, hash)))
        }
        None => (Relay::AsPingora, None),
    };
    let peer = route.peer(client).await.map_err(Failure::Unanswered)?;
    let mut request = request;
    let mut resent = false;
    // Kept, with its place in the body budget, only while the request may be sent again.
    let mut body = Some((bytes, reserved));
    loop {
        if let Some((signer, credentials, hash)) = &signing {
            // Signed in place; signing again replaces the first signature's headers.
            let now = SystemTime::now();
            signer
                .sign(&mut request, credentials, hash, now)
                .map_err(Failure::Unanswered)?;
        }
        let started = Instant::now();
        let payload = &body.as_ref().expect("kept while it may be sent again").0;
        let exchanged = exchange(connector, route, &peer, &request, payload, relay);
        let mut sent = while_client_waits(session, exchanged).await?;
        let upstream = &mut sent.upstream;
        let upstream_time = match relay {
            Relay::Own => started.elapsed(),
            Relay::AsPingora => {
                final_answer(session, upstream, &peer, page).await?;
                sent.at.elapsed()
            }
        };
        let upstream = &mut sent.upstream;
        let response = upstream.response_header().expect("exchange read it");
        let request_id = headers::aws_request_id(response);
        let mut held = Vec::new();
        // S3 says so in its body, everyone else in a header: only then is the body read here.
        let signer = signing.as_ref().map(|(signer, ..)| *signer);
        let s3 = signer.is_some_and(|s| s.service().token_verdict() == TokenVerdict::S3ErrorBody);
        let may_be_refused = !resent
            && matches!(response.status.as_u16(), 400 | 403)
            && (s3 || refused_by_header(response))
            && signer.is_some_and(|s| resendable(route, &request, s));
        let complete = may_be_refused && read_small_body(upstream, &mut held).await?;
        let response = upstream.response_header().expect("exchange read it");
        let status = response.status.as_u16();
        let path = request.uri.path();
        failed::log(&route.name, &request.method, path, response, &held);
        if let Some((signer, rejected, _)) = signing.as_mut().filter(|_| complete) {
            let fresh = match !s3 || refused_by_s3(&held) {
                true => signer.credentials().replace_rejected(rejected).await,
                false => None,
            };
            if let Some(fresh) = fresh {
                debug!("AWS refused the credentials; sending again with fresh ones");
                metrics()
                    .upstream_retries
                    .with_label_values(&[&route.name, "expired_token"])
                    .inc();
                sent.release(connector, &peer).await;
                *rejected = fresh;
                resent = true;
                continue;
            }
        }
        // No resend from here: the body and its budget go before the answer streams, however
        // slowly the client reads it.
        drop(body.take());
        let answer = Answer {
            status,
            upstream_time,
            request_id,
        };
        return match relay::relay_response(session, connector, sent, &peer, held, page, relay).await
        {
            Ok(_) => Ok(answer),
            Err(Failure::Midway(e, _)) => Err(Failure::Midway(e, Some(answer))),
            Err(unanswered) => Err(unanswered),
        };
    }
}

/// Whether a request the upstream says it refused for its credentials may be sent again
/// (with credentials fetched afresh for it). AWS's front end refuses before anything runs;
/// only its word counts for a request that must not run twice, and for a set whose fetch
/// spends an MFA code (a prompt, a hardware key's touch). Any other upstream's
/// `x-amzn-ErrorType` may come from a handler that ran (a function passing on an error of its
/// own): there only idempotent requests go again, and only those no web framework would take
/// for another method (an override header, `_method` in the query).
fn resendable(route: &Route, request: &RequestHeader, signer: &Signer) -> bool {
    if route.peers.aws_front_end() {
        return true;
    }
    if signer.credentials().mfa().is_some() {
        return false;
    }
    let overridden = method_override::in_headers(&request.headers).is_some()
        || request.uri.query().is_some_and(method_override::in_query);
    request.method.is_idempotent() && !overridden
}

/// Passes the upstream's `1xx` answers but `101` on to the client (with the page's CORS
/// headers, as `response_filter` gives them on pingora's loop) until its final answer.
async fn final_answer(
    session: &mut Session,
    upstream: &mut HttpSession,
    peer: &HttpPeer,
    page: &PageRequest,
) -> Result<(), Failure> {
    let mut relayed = 0;
    loop {
        let Some(response) = upstream.response_header() else {
            return Err(Failure::Unanswered(ProxyError::Internal(
                "missing response header".into(),
            )));
        };
        if response.status == 101
            && !session
                .req_header()
                .headers
                .contains_key(http::header::UPGRADE)
        {
            // After a 1xx as on its own (see `exchange::send`): no switch nobody asked for.
            let e = connected_error(unasked_switch(), Relay::AsPingora, peer);
            return Err(Failure::Unanswered(e));
        }
        if !response.status.is_informational() || response.status == 101 {
            return Ok(());
        }
        if relayed == MAX_INFORMATIONAL {
            let e = too_many_informational();
            return Err(Failure::Unanswered(connected_error(
                e,
                Relay::AsPingora,
                peer,
            )));
        }
        let mut informational = response.clone();
        answer_cors(&mut informational, page);
        session
            .write_response_header(Box::new(informational), false)
            .await
            .map_err(client_failure)?;
        upstream
            .read_response_header()
            .await
            .map_err(|e| Failure::Unanswered(connected_error(e, Relay::AsPingora, peer)))?;
        relayed += 1;
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

/// An error talking to a connected upstream. pingora's loop names the peer in its context
/// (which the access line shows); the pass-through requests sent here name it the same way.
pub(super) fn connected_error(e: Box<PingoraError>, relay: Relay, peer: &HttpPeer) -> ProxyError {
    upstream_error(match relay {
        Relay::Own => e,
        Relay::AsPingora => e.more_context(format!("Peer: {peer}")),
    })
}

/// Errors talking to the upstream are the upstream's, whatever pingora tagged them with.
pub(super) fn upstream_error(e: Box<PingoraError>) -> ProxyError {
    ProxyError::from_pingora(&e.into_up())
}
