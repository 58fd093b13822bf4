//! One exchange with the upstream for a request [`super::forward`] sends: a connection from the
//! pool, the request written, the answer's head read; once more on a fresh connection when a
//! pooled one turns out closed and sending again cannot repeat what the upstream did.

use super::forward::{connected_error, upstream_error, Failure, Relay};
use crate::error::ProxyError;
use crate::metrics::metrics;
use crate::route::Route;
use crate::upstream::pool::Pool;
use bytes::Bytes;
use pingora::http::RequestHeader;
use pingora::protocols::http::client::HttpSession;
use pingora::proxy::Session;
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error as PingoraError, ErrorType, RetryType};
use std::future::Future;
use std::time::{Duration, Instant};
use tracing::debug;

/// A request on its way: the connection it went on, with the answer's head read; when it was
/// sent; whether all of it went; and when the connection may carry another ([`Reuse`]). An
/// upstream may answer before it has read the whole body (S3's early `403` or `413`) and stop reading: its answer is the
/// request's, but the connection, a request cut short on it, must never carry another one
/// ([`Sent::release`]).
pub struct Sent {
    pub upstream: HttpSession,
    pub at: Instant,
    whole: bool,
    reuse: Reuse,
}

/// Whether a connection that carried a request may carry another, once its answer is read.
///
/// A body that fit in the socket's buffers went whole whether or not the upstream read it. An
/// upstream that answers without reading it must close the connection or read the body after
/// (RFC 9112 §9.3); one that does neither (Python's `http.server`, a handler that ignores a
/// GET's body) reads the body as the next request on the connection. AWS's front ends are not
/// such upstreams; any other may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reuse {
    /// No body, or an AWS endpoint.
    Always,
    /// A body on a method whose body some handlers ignore (`GET`, `HEAD`, `DELETE`,
    /// `OPTIONS`): never pooled again.
    Never,
    /// Another body: pooled again after a success (`2xx`), which an upstream gives once it has
    /// read the request; an early answer is a refusal.
    AfterSuccess,
}

impl Reuse {
    fn of(route: &Route, request: &RequestHeader, body: &Bytes) -> Reuse {
        use http::Method;
        if body.is_empty() || route.peers.aws_front_end() {
            return Reuse::Always;
        }
        match request.method {
            Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS => Reuse::Never,
            _ => Reuse::AfterSuccess,
        }
    }
}

impl Sent {
    /// Returns the connection to the pool if it can carry another request (see [`Reuse`]),
    /// closes it otherwise. Whatever the upstream, a connection is pooled for the same route
    /// and client only (see [`Route::peer`](crate::route::Route::peer)).
    pub async fn release(mut self, connector: &Pool, peer: &HttpPeer) {
        let success = || {
            self.upstream
                .response_header()
                .is_some_and(|r| r.status.is_success())
        };
        let reusable = match self.reuse {
            Reuse::Always => true,
            Reuse::Never => false,
            Reuse::AfterSuccess => success(),
        };
        match self.whole && reusable {
            true => connector.release(self.upstream, peer).await,
            false => self.upstream.shutdown().await,
        }
    }
}

/// How far a request went before it failed.
#[derive(Debug, PartialEq, Eq)]
enum Phase {
    /// Writing its head: the upstream has nothing it could act on.
    Head,
    /// Writing its body, with no answer after.
    Body,
    /// Reading the answer.
    Read,
}

/// Sends one request and reads the response header: the final one ([`Relay::Own`]) or the
/// first, which may be a `1xx` ([`Relay::AsPingora`]).
pub async fn exchange(
    connector: &Pool,
    route: &Route,
    peer: &HttpPeer,
    request: &RequestHeader,
    body: &Bytes,
    relay: Relay,
) -> Result<Sent, Failure> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let connected = match attempt {
            1 => connector.session(peer).await,
            _ => connector.fresh(peer).await.map(|fresh| (fresh, false)),
        };
        let (mut upstream, reused) =
            connected.map_err(|e| Failure::Unanswered(upstream_error(e)))?;
        upstream.set_read_timeout(Some(route.peers.read_timeout()));
        upstream.set_write_timeout(Some(route.peers.read_timeout()));
        let at = Instant::now();
        match send(&mut upstream, request.clone(), body.clone(), relay).await {
            Ok(whole) => {
                // For the answer's body (an early answer's head may have been looked for
                // briefly).
                upstream.set_read_timeout(Some(route.peers.read_timeout()));
                return Ok(Sent {
                    upstream,
                    at,
                    whole,
                    reuse: Reuse::of(route, request, body),
                });
            }
            // A pooled connection that the server has closed fails on first use: retry once on
            // a fresh connection when nothing the upstream could act on went (the head failed
            // to go), or, for an idempotent request, when its body failed to go or the closed
            // connection's own signs showed where the answer should be (end of stream or a
            // reset, which pingora marks `ReusedOnly`). Never after a timeout or a malformed
            // answer, nor after part of a non-idempotent request's body went (the upstream may
            // have acted on it without answering): a second copy would act again.
            Err((e, phase))
                if reused
                    && attempt == 1
                    && !timed_out(&e)
                    && (phase == Phase::Head
                        || (request.method.is_idempotent()
                            && (phase == Phase::Body
                                || matches!(e.retry, RetryType::ReusedOnly)))) =>
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

/// A timeout is the upstream's slowness, not a closed pooled connection: never sent again.
fn timed_out(e: &PingoraError) -> bool {
    matches!(
        e.etype(),
        ErrorType::WriteTimedout | ErrorType::ReadTimedout | ErrorType::ConnectTimedout
    )
}

/// How long an answer is looked for after writing the body timed out.
const EARLY_ANSWER_WAIT: Duration = Duration::from_millis(100);

/// Writes the request and reads the answer's head; whether all of the request went.
async fn send(
    upstream: &mut HttpSession,
    request: RequestHeader,
    body: Bytes,
    relay: Relay,
) -> Result<bool, (Box<PingoraError>, Phase)> {
    let upgrade = request.headers.contains_key(http::header::UPGRADE);
    upstream
        .write_request_header(Box::new(request))
        .await
        .map_err(|e| (e, Phase::Head))?;
    let mut written = Ok(());
    if !body.is_empty() {
        written = upstream.write_request_body(body, true).await;
    }
    if written.is_ok() {
        written = upstream.finish_request_body().await;
    }
    // A body the upstream stopped reading may have an answer after it (see `Sent`). When the
    // write timed out, only an answer already there is taken: the read timeout was spent.
    let cut = match written {
        Ok(()) => None,
        Err(e) => {
            if e.etype() == &ErrorType::WriteTimedout {
                upstream.set_read_timeout(Some(EARLY_ANSWER_WAIT));
            }
            Some(e)
        }
    };
    let failed = |read: Box<PingoraError>, cut: Option<Box<PingoraError>>| match cut {
        Some(write) => (write, Phase::Body),
        None => (read, Phase::Read),
    };
    // Read the response header; for our own relay, the final one, skipping `1xx` answers.
    let mut informational = 0;
    loop {
        if let Err(e) = upstream.read_response_header().await {
            return Err(failed(e, cut));
        }
        match upstream.response_header() {
            Some(resp)
                if relay == Relay::Own && resp.status.is_informational() && resp.status != 101 =>
            {
                informational += 1;
                if informational > MAX_INFORMATIONAL {
                    return Err((too_many_informational(), Phase::Read));
                }
                continue;
            }
            // Switching protocols on a request that asked for none (RFC 9110 §15.2.2) would
            // leave the client reading whatever follows as the answer, or waiting for it.
            Some(resp) if resp.status == 101 && !upgrade => {
                return Err((unasked_switch(), Phase::Read));
            }
            Some(_) => return Ok(cut.is_none()),
            None => {
                let e = PingoraError::explain(ErrorType::InvalidHTTPHeader, "no response header");
                return Err(failed(e, cut));
            }
        }
    }
}

/// What an upstream that answers `101 Switching Protocols` to a request that asked for no
/// upgrade gets: a `502`, never the switch.
pub fn unasked_switch() -> Box<PingoraError> {
    let why = "101 Switching Protocols to a request that asked for no upgrade";
    PingoraError::explain(ErrorType::InvalidHTTPHeader, why)
}

/// The most `1xx` answers taken before the final one. Each may come just inside the read
/// timeout; without a cap an upstream could hold a request (its body budget and connection)
/// for ever.
pub const MAX_INFORMATIONAL: usize = 10;

/// What an upstream that keeps answering `1xx` gets.
pub fn too_many_informational() -> Box<PingoraError> {
    let why = format!("more than {MAX_INFORMATIONAL} informational (1xx) answers");
    PingoraError::explain(ErrorType::InvalidHTTPHeader, why)
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
pub async fn while_client_waits<T>(
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
