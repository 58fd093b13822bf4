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
use super::failed;
use super::refused::{refused_by_header, refused_by_s3};
use super::relay::{self, client_failure};
use crate::access::browser::{answer_cors, PageRequest};
use crate::error::ProxyError;
use crate::headers;
use crate::metrics::metrics;
use crate::route::Route;
use crate::service::TokenVerdict;
use crate::sign::{sha256_hex, EMPTY_SHA256};
use crate::upstream::pool::Pool;
use bytes::Bytes;
use pingora::http::RequestHeader;
use pingora::protocols::http::client::HttpSession;
use pingora::proxy::Session;
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error as PingoraError, ErrorType, RetryType};
use std::future::Future;
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
    let peer = route.peers.peer().await.map_err(Failure::Unanswered)?;
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
        let (mut upstream, sent) = while_client_waits(session, exchanged).await?;
        let upstream_time = match relay {
            Relay::Own => started.elapsed(),
            Relay::AsPingora => {
                final_answer(session, &mut upstream, &peer, page).await?;
                sent.elapsed()
            }
        };
        let response = upstream.response_header().expect("exchange read it");
        let request_id = headers::aws_request_id(response);
        let mut held = Vec::new();
        // S3 says so in its body, everyone else in a header: only then is the body read here.
        let signer = signing.as_ref().map(|(signer, ..)| *signer);
        let s3 = signer.is_some_and(|s| s.service().token_verdict() == TokenVerdict::S3ErrorBody);
        let may_be_refused = signer.is_some()
            && !resent
            && matches!(response.status.as_u16(), 400 | 403)
            && (s3 || refused_by_header(response));
        let complete = may_be_refused && read_small_body(&mut upstream, &mut held).await?;
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
                connector.release(upstream, &peer).await;
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
        return match relay::relay_response(session, connector, upstream, &peer, held, page, relay)
            .await
        {
            Ok(_) => Ok(answer),
            Err(Failure::Midway(e, _)) => Err(Failure::Midway(e, Some(answer))),
            Err(unanswered) => Err(unanswered),
        };
    }
}

/// Passes the upstream's `1xx` answers but `101` on to the client (with the page's CORS
/// headers, as `response_filter` gives them on pingora's loop) until its final answer.
async fn final_answer(
    session: &mut Session,
    upstream: &mut HttpSession,
    peer: &HttpPeer,
    page: &PageRequest,
) -> Result<(), Failure> {
    loop {
        let Some(response) = upstream.response_header() else {
            return Err(Failure::Unanswered(ProxyError::Internal(
                "missing response header".into(),
            )));
        };
        if !response.status.is_informational() || response.status == 101 {
            return Ok(());
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
    }
}

/// How long [`while_client_waits`] lets an exchange run before it watches the client.
const WATCH_AFTER: Duration = Duration::from_millis(20);

/// Runs `exchange` (the request sent, the answer's head awaited) while watching the client's
/// connection, as pingora's proxy loop does: a client that closes it (or resets it) first is
/// gone, and the exchange is dropped with its upstream connection, so an answer nobody waits
/// for neither holds that connection nor is logged as delivered (`499`). The client's request
/// is read whole by then, so anything else it sends is the start of another request, which
/// the connection cannot serve with a byte of it taken: it closes after this answer.
///
/// Watching starts after [`WATCH_AFTER`]: most answers come sooner, and watching costs a read
/// of the client's socket.
async fn while_client_waits<T>(
    session: &mut Session,
    exchange: impl Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    let client = session.as_downstream_mut();
    let mut exchange = std::pin::pin!(exchange);
    // Pends while the connection is quiet; ends with an error once the client closes it,
    // resets it or sends more (pingora's pipelining is off).
    let watch = async {
        tokio::time::sleep(WATCH_AFTER).await;
        client.read_body_or_idle(true).await
    };
    tokio::select! {
        biased;
        done = &mut exchange => done,
        watched = watch => match watched {
            Err(e) if e.etype() != &ErrorType::ConnectError => Err(Failure::Midway(
                ProxyError::ClientGone(format!("before the answer came: {e}")),
                None,
            )),
            _ => {
                client.set_keepalive(None);
                exchange.await
            }
        },
    }
}

/// Sends one request and reads the response header: the final one ([`Relay::Own`]) or the
/// first, which may be a `1xx` ([`Relay::AsPingora`]); and when the request was sent.
pub(super) async fn exchange(
    connector: &Pool,
    route: &Route,
    peer: &HttpPeer,
    request: &RequestHeader,
    body: &Bytes,
    relay: Relay,
) -> Result<(HttpSession, Instant), Failure> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (mut upstream, reused) = connector
            .session(peer)
            .await
            .map_err(|e| Failure::Unanswered(upstream_error(e)))?;
        upstream.set_read_timeout(Some(route.peers.read_timeout()));
        upstream.set_write_timeout(Some(route.peers.read_timeout()));
        let sent = Instant::now();
        match send(&mut upstream, request.clone(), body.clone(), relay).await {
            Ok(()) => return Ok((upstream, sent)),
            // A pooled connection that the server has closed fails on first use: retry once on
            // a fresh connection when the request failed while being written, or when an
            // idempotent one met the closed connection's own signs (end of stream or a reset
            // where the answer should be, which pingora marks `ReusedOnly`). Never after a
            // timeout or a malformed answer: the upstream may have acted on the request, and a
            // second copy would act again and double the wait.
            Err((e, phase))
                if reused
                    && attempt == 1
                    && (phase == Phase::Write
                        || (request.method.is_idempotent()
                            && matches!(e.retry, RetryType::ReusedOnly))) =>
            {
                debug!(error = %e, "reused upstream connection failed; retrying on a new one");
                metrics()
                    .upstream_retries
                    .with_label_values(&[&route.name, "stale_connection"])
                    .inc();
                upstream.shutdown().await;
            }
            Err((e, _)) => return Err(Failure::Unanswered(connected_error(e, relay, peer))),
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

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    Write,
    Read,
}

async fn send(
    upstream: &mut HttpSession,
    request: RequestHeader,
    body: Bytes,
    relay: Relay,
) -> Result<(), (Box<PingoraError>, Phase)> {
    let write = |e| (e, Phase::Write);
    let upgrade = request.headers.contains_key(http::header::UPGRADE);
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
    // Read the response header; for our own relay, the final one, skipping `1xx` answers.
    loop {
        upstream
            .read_response_header()
            .await
            .map_err(|e| (e, Phase::Read))?;
        match upstream.response_header() {
            Some(resp)
                if relay == Relay::Own && resp.status.is_informational() && resp.status != 101 =>
            {
                continue
            }
            // Switching protocols on a request that asked for none would leave the client
            // reading whatever follows as the answer; pingora's loop passes it on as it is.
            Some(resp) if relay == Relay::Own && resp.status == 101 && !upgrade => {
                let why = "101 Switching Protocols to a request that asked for no upgrade";
                return Err((
                    PingoraError::explain(ErrorType::InvalidHTTPHeader, why),
                    Phase::Read,
                ));
            }
            Some(_) => return Ok(()),
            None => {
                let e = PingoraError::explain(ErrorType::InvalidHTTPHeader, "no response header");
                return Err((e, Phase::Read));
            }
        }
    }
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
