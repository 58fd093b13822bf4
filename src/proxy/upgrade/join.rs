//! The two connections of an upgraded request, joined: bytes go each way as they come, until
//! either side closes, nothing moves for `idle_timeout`, or `max_lifetime` passes.
//!
//! One task waits on both reads at once; a read that loses the race is dropped before it has
//! taken anything (pingora's body reads take bytes off the socket in one step, as its own proxy
//! relies on), and the bytes of the one that won are written before either side is read again.
//! A side that stops reading therefore holds the other back, within the write timeout set on
//! each (the route's `read_timeout`), after which the connection closes: nothing is buffered
//! without bound. A write that crawls (its reader takes a little now and then) still ends at
//! `max_lifetime`.
//!
//! Bytes are carried as they are: WebSocket frames, pings and the close handshake are the
//! peers' business. A limit closes both connections without a close frame, as a dropped
//! connection would (API Gateway does the same at its own limits).

use super::Joined;
use crate::config::WebSocketLimits;
use crate::metrics::websocket::{Closed, RouteWebSocket};
use crate::proxy::admit::readmits;
use crate::reload::Live;
use crate::route::Route;
use bytes::Bytes;
use pingora::protocols::http::client::HttpSession;
use pingora::proxy::Session;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{sleep_until, timeout_at, Instant};

/// What one wait ended with.
enum Step {
    FromClient(pingora::Result<Option<Bytes>>),
    FromUpstream(pingora::Result<Option<Bytes>>),
    Limit(Closed),
}

/// How often a joined connection asks whether a reload withdrew its admission.
const WITHDRAWN_EVERY: Duration = Duration::from_secs(1);

/// Resolves once the configuration in force would no longer admit the upgrade request of
/// `session` on `route`, made with `authorization` (the header as it came, taken off the
/// request before it went upstream): see [`readmits`](crate::proxy::admit::readmits). A
/// client removed, a token rotated (revoked), an address no longer allowed; the route
/// removed, its allow list or the origins narrowed, its credentials changed.
pub fn withdrawn(
    live: Live,
    session: &Session,
    authorization: Option<http::HeaderValue>,
    route: Arc<Route>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let client = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip());
    let request = session.req_header().clone();
    async move {
        let mut checked = live.load_full();
        loop {
            tokio::time::sleep(WITHDRAWN_EVERY).await;
            let now = live.load_full();
            if Arc::ptr_eq(&now, &checked) {
                continue; // no reload since
            }
            let presented = authorization.as_ref().map(|v| v.as_bytes());
            if !readmits(&now, client, &request, presented, &route) {
                return;
            }
            checked = now;
        }
    }
}

/// Carries bytes both ways until one side closes, a limit is reached or `withdrawn` resolves.
pub async fn join(
    session: &mut Session,
    upstream: &mut HttpSession,
    limits: WebSocketLimits,
    counts: &RouteWebSocket,
    withdrawn: impl std::future::Future<Output = ()>,
) -> Joined {
    let mut withdrawn = std::pin::pin!(withdrawn);
    // The limits below replace the per-read timeouts: a quiet WebSocket is not a slow request.
    session.as_downstream_mut().set_read_timeout(None);
    upstream.set_read_timeout(None);
    let end_of_life = Instant::now() + limits.max_lifetime;
    let mut joined = Joined {
        handshake: Duration::ZERO,
        to_upstream: 0,
        to_client: 0,
        closed: Closed::Error,
    };
    loop {
        let idle_until = Instant::now() + limits.idle_timeout;
        let step = tokio::select! {
            read = session.as_downstream_mut().read_request_body() => Step::FromClient(read),
            read = upstream.read_response_body() => Step::FromUpstream(read),
            () = sleep_until(idle_until) => Step::Limit(Closed::IdleTimeout),
            () = sleep_until(end_of_life) => Step::Limit(Closed::MaxLifetime),
            () = &mut withdrawn => Step::Limit(Closed::Revoked),
        };
        let closed = match step {
            Step::FromClient(Ok(Some(bytes))) => {
                let n = bytes.len() as u64;
                let write = upstream.write_request_body(bytes, false);
                match timeout_at(end_of_life, write).await {
                    Err(_) => Closed::MaxLifetime,
                    Ok(Ok(())) => {
                        joined.to_upstream += n;
                        counts.to_upstream.inc_by(n);
                        continue;
                    }
                    Ok(Err(_)) => Closed::Error,
                }
            }
            Step::FromUpstream(Ok(Some(bytes))) => {
                let n = bytes.len() as u64;
                let downstream = session.as_downstream_mut();
                let write = downstream.write_response_body(bytes, false);
                match timeout_at(end_of_life, write).await {
                    Err(_) => Closed::MaxLifetime,
                    Ok(Ok(())) => {
                        joined.to_client += n;
                        counts.to_client.inc_by(n);
                        continue;
                    }
                    Ok(Err(_)) => Closed::Error,
                }
            }
            Step::FromClient(Ok(None)) => Closed::Client,
            Step::FromUpstream(Ok(None)) => Closed::Upstream,
            Step::FromClient(Err(_)) | Step::FromUpstream(Err(_)) => Closed::Error,
            Step::Limit(limit) => limit,
        };
        joined.closed = closed;
        return joined;
    }
}
