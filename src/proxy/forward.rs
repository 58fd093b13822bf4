//! Forwarding a request whose body the proxy has already read (to hash it for the signature).
//!
//! pingora replays a body consumed in `request_filter` only through its retry buffer, which holds
//! 64 KiB; a larger body would never be sent. So every request whose body sigproxy reads is sent
//! here instead, for all sizes alike: one code path, tested from 0 B to the route's limit. It uses
//! pingora's own connector (same pool, TLS and timeouts) and streams the response back.

use crate::error::ProxyError;
use crate::headers;
use crate::route::Route;
use bytes::Bytes;
use pingora::connectors::http::Connector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::client::HttpSession;
use pingora::proxy::Session;
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error as PingoraError, ErrorType};
use std::time::{Duration, Instant};
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

/// The upstream's answer, or the error that stopped the exchange.
///
/// `Err(_, true)` means a response was already being written to the client: its connection must
/// simply be closed, not answered with an error page.
pub type Outcome = Result<Answer, (ProxyError, bool)>;

pub async fn forward(
    connector: &Connector,
    session: &mut Session,
    route: &Route,
    request: RequestHeader,
    body: Bytes,
) -> Outcome {
    let peer = route.peers.peer().await.map_err(|e| (e, false))?;
    let started = Instant::now();
    let mut attempt = 0;
    let (mut upstream, _reused) = loop {
        attempt += 1;
        let (mut upstream, reused) = connector
            .get_http_session(&peer)
            .await
            .map_err(|e| (upstream_error(e), false))?;
        upstream.set_read_timeout(Some(route.peers.read_timeout()));
        upstream.set_write_timeout(Some(route.peers.read_timeout()));
        match send(&mut upstream, request.clone(), body.clone()).await {
            Ok(()) => break (upstream, reused),
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
            Err((e, _)) => return Err((upstream_error(e), false)),
        }
    };

    let upstream_time = started.elapsed();
    let request_id = upstream.response_header().and_then(aws_request_id);
    let status = relay_response(session, &mut upstream).await?;
    release(connector, upstream, &peer).await;
    Ok(Answer {
        status,
        upstream_time,
        request_id,
    })
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

/// AWS's request id from a response header, for the access log.
pub fn aws_request_id(resp: &ResponseHeader) -> Option<String> {
    ["x-amz-request-id", "x-amzn-requestid"]
        .iter()
        .find_map(|name| resp.headers.get(*name))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

async fn relay_response(
    session: &mut Session,
    upstream: &mut HttpSession,
) -> Result<u16, (ProxyError, bool)> {
    let mut resp = upstream.response_header().cloned().ok_or_else(|| {
        (
            ProxyError::Internal("missing response header".into()),
            false,
        )
    })?;
    let status = resp.status.as_u16();
    headers::prepare_response(&mut resp);
    let done = upstream.response_done();
    session
        .write_response_header(Box::new(resp), done)
        .await
        .map_err(|e| (ProxyError::BodyRead(e.to_string()), true))?;
    if done {
        return Ok(status);
    }
    loop {
        let chunk = upstream
            .read_response_body()
            .await
            .map_err(|e| (upstream_error(e), true))?;
        let end = chunk.is_none() || upstream.response_done();
        session
            .write_response_body(chunk, end)
            .await
            .map_err(|e| (ProxyError::BodyRead(e.to_string()), true))?;
        if end {
            return Ok(status);
        }
    }
}

/// Errors talking to the upstream are the upstream's, whatever pingora tagged them with.
fn upstream_error(e: Box<PingoraError>) -> ProxyError {
    ProxyError::from_pingora(&e.into_up())
}

async fn release(connector: &Connector, upstream: HttpSession, peer: &HttpPeer) {
    let idle = peer.options.idle_timeout;
    connector.release_http_session(upstream, peer, idle).await;
}
