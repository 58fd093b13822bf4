//! The `logging` phase: the request's outcome goes to [`crate::metrics`] and into the access
//! line, whichever path it took.

use super::RequestCtx;
use crate::error::ProxyError;
use crate::metrics::{metrics, Finished};
use pingora::proxy::Session;
use pingora::Error;
use std::time::Duration;
use tracing::info;

/// Records the finished request: its metrics and its access line.
pub fn record(session: &Session, e: Option<&Error>, ctx: &RequestCtx) {
    let req = session.req_header();
    let status = ctx
        .status
        .or_else(|| session.response_written().map(|r| r.status.as_u16()))
        .unwrap_or(0);
    let route = ctx.route.as_ref().map_or("unmatched", |r| r.name.as_str());
    let error = match (&ctx.error, e) {
        (Some(ours), _) => Some(ours.clone()),
        (None, Some(theirs)) => Some(ProxyError::from_pingora(theirs)),
        (None, None) => None,
    };
    let duration = ctx.started.elapsed();
    let bytes_in = session.as_downstream().body_bytes_read() as u64;
    let bytes_out = session.as_downstream().body_bytes_sent() as u64;

    // An upgraded connection's request ended with its 101: its bytes and lifetime are
    // counted in the WebSocket metrics, not in the request latencies.
    let upgraded = ctx.upgraded.as_ref();
    metrics().record(Finished {
        route: ctx.route.as_ref().map(|r| &r.metrics),
        route_name: route,
        method: &req.method,
        status,
        duration: upgraded.map_or(duration, |u| u.handshake),
        upstream_time: ctx.upstream_time,
        bytes_in: if upgraded.is_some() { 0 } else { bytes_in },
        bytes_out: if upgraded.is_some() { 0 } else { bytes_out },
        error: error.as_ref(),
    });
    // The access line: an upgraded connection's whole time and the bytes it carried.
    let (bytes_in, bytes_out) =
        upgraded.map_or((bytes_in, bytes_out), |u| (u.to_upstream, u.to_client));

    // The path as it went (or would have gone) upstream; never the query.
    let path = match ctx.target.split_once('?') {
        _ if ctx.target.is_empty() => req.uri.path(),
        Some((path, _)) => path,
        None => ctx.target.as_str(),
    };
    info!(
        target: "access",
        route,
        client = ctx.client.as_deref(),
        method = %req.method,
        path,
        status,
        duration_ms = millis(duration),
        bytes_in,
        bytes_out,
        upstream_status = ctx.upstream_status,
        upstream_ms = ctx.upstream_time.map(millis),
        aws_request_id = ctx.aws_request_id.as_deref(),
        upgrade = upgraded.map(|_| "websocket"),
        close = upgraded.map(|u| u.closed.label()),
        error = error.as_ref().map(|e| e.to_string()),
        "request"
    );
}

/// Milliseconds to the microsecond (`1.234`, not `1.2340000000000002`).
fn millis(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}
