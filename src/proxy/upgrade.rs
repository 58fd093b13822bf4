//! WebSocket: an `Upgrade: websocket` request is checked, signed like any other request
//! (API Gateway WebSocket APIs authorize the upgrade `GET` with SigV4, service `execute-api`),
//! and sent by the forwarder's own connection; on `101 Switching Protocols` that completes the
//! WebSocket handshake (`Upgrade: websocket`, the right `Sec-WebSocket-Accept`; any other `101`
//! is a `502`) the client's and the upstream's connections are joined ([`join`]) until either closes, goes idle for the route's
//! `websocket.idle_timeout`, or reaches its `websocket.max_lifetime`. Any other answer is
//! relayed as the normal response it is.
//!
//! Everything [`super::admit`] checks applies to the upgrade as to any request: the client's
//! address and token, the `Host` (DNS rebinding), and `Origin`/`Sec-Fetch-Site`, which matter
//! most here: browsers open WebSockets cross-origin without CORS, so a page's upgrade is served
//! only for an origin `access.allowed_origins` lists. Only WebSocket is carried: any other
//! `Upgrade` (`h2c`, TLS) is refused with `400`, never forwarded with the header dropped.
//!
//! `Sec-WebSocket-*` headers go upstream as the client sent them; the signature covers what the
//! signer always covers (`host`, `x-amz-*`), so `Upgrade` and `Connection`, which intermediaries
//! may rewrite, are added after signing.

mod join;
mod slots;

pub use slots::WebSocketSlots;

use super::exchange::{self, Sent};
use super::forward::{Failure, Relay};
use super::relay;
use super::{failed, prepare_upstream, write_error, RequestCtx, SigningProxy};
use crate::access::browser::answer_cors;
use crate::access::Denied;
use crate::error::ProxyError;
use crate::headers;
use crate::metrics::websocket::{Closed, RouteWebSocket};
use crate::route::Route;
use crate::sign::EMPTY_SHA256;
use bytes::Bytes;
use http::header;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::protocols::http::client::HttpSession;
use pingora::proxy::Session;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// What became of an upgraded connection, for the access log.
#[derive(Debug, Clone, Copy)]
pub struct Joined {
    /// From the request's start to the `101` sent to the client.
    pub handshake: Duration,
    /// Bytes from the client to the upstream, and back.
    pub to_upstream: u64,
    pub to_client: u64,
    pub closed: Closed,
}

/// Whether the request asks to switch protocols; `Err` if it asks for anything but a WebSocket
/// handshake sigproxy can carry.
pub fn asked(req: &RequestHeader) -> Result<bool, ProxyError> {
    let mut upgrade = req.headers.get_all(header::UPGRADE).iter();
    let Some(protocol) = upgrade.next() else {
        return Ok(false);
    };
    let refuse = |why: &str| Err(ProxyError::BadRequest(why.to_string()));
    if upgrade.next().is_some() {
        return refuse("more than one Upgrade header");
    }
    if !protocol
        .as_bytes()
        .trim_ascii()
        .eq_ignore_ascii_case(b"websocket")
    {
        return refuse("Upgrade is supported for 'websocket' only");
    }
    if req.version != http::Version::HTTP_11 {
        return refuse("a WebSocket upgrade needs HTTP/1.1");
    }
    if req.method != http::Method::GET {
        return refuse("a WebSocket upgrade is a GET");
    }
    let connection_upgrade = req
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    if !connection_upgrade {
        return refuse("a WebSocket upgrade needs 'Connection: Upgrade'");
    }
    let has_body = req.headers.contains_key(header::TRANSFER_ENCODING)
        || req
            .headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes().trim_ascii() != b"0");
    if has_body {
        return refuse("a WebSocket upgrade has no body");
    }
    Ok(true)
}

/// Whether `response`, a `101`, completes the WebSocket handshake `request` began (RFC 6455
/// 4.1): it switches to `websocket`, and its `Sec-WebSocket-Accept` answers the request's key.
fn switched_to_websocket(request: &RequestHeader, response: &ResponseHeader) -> bool {
    use base64::Engine;
    use sha1::{Digest, Sha1};
    const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    let has = |name, token: &str| {
        response
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    let (Some(key), Some(accept)) = (
        request.headers.get("sec-websocket-key"),
        response.headers.get("sec-websocket-accept"),
    ) else {
        return false;
    };
    let mut hash = Sha1::new();
    hash.update(key.as_bytes().trim_ascii());
    hash.update(GUID);
    let expected = base64::engine::general_purpose::STANDARD.encode(hash.finalize());
    response.version == http::Version::HTTP_11
        && has(header::UPGRADE, "websocket")
        && has(header::CONNECTION, "upgrade")
        && accept.as_bytes().trim_ascii() == expected.as_bytes()
}

impl SigningProxy {
    /// `None` if the request asks for no upgrade; otherwise it is answered here: refused (see
    /// [`asked`]), or sent and, on `101`, joined.
    pub(super) async fn upgrade_if_asked(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        route: &Arc<Route>,
    ) -> Option<Result<bool>> {
        let refused = match asked(session.req_header()) {
            Ok(false) => return None,
            // An allow rule that needs the body cannot pass: an upgrade has none.
            Ok(true) if ctx.after_body.is_some() => ProxyError::Forbidden(Denied::Action),
            Ok(true) => return Some(self.upgrade(session, ctx, route).await),
            Err(e) => e,
        };
        Some(self.reject(session, ctx, refused).await)
    }

    /// Sends the checked upgrade request and, on `101`, joins the connections.
    async fn upgrade(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        route: &Arc<Route>,
    ) -> Result<bool> {
        let counts = &route.metrics.websocket;
        // Held until the joined connections close, the upgrade fails or is declined (its answer
        // is an ordinary response, bounded as any), or the task is dropped.
        let Some(slot) = self.websocket_slots.take() else {
            counts.refused.inc();
            let e = ProxyError::Busy(format!(
                "too many WebSocket connections (max_websocket_connections: {}); try again later",
                self.websocket_slots.limit()
            ));
            write_error(session, ctx, e).await;
            return Ok(true);
        };
        let (sent, peer) = match self.handshake(session, ctx, route).await {
            Ok(sent) => sent,
            Err(e) => {
                counts.failed.inc();
                write_error(session, ctx, e).await;
                return Ok(true);
            }
        };
        let response = sent
            .upstream
            .response_header()
            .expect("exchange read it")
            .clone();
        ctx.upstream_status = Some(response.status.as_u16());
        ctx.aws_request_id = headers::aws_request_id(&response);
        let path = ctx.target.split('?').next().unwrap_or_default();
        failed::log(
            &route.name,
            &session.req_header().method,
            path,
            &response,
            &[],
        );
        if response.status != http::StatusCode::SWITCHING_PROTOCOLS {
            counts.declined.inc();
            // Its place comes back before the answer is relayed, however long that takes.
            drop(slot);
            return self.relay_declined(session, ctx, sent, &peer).await;
        }
        let mut upstream = sent.upstream;
        if !switched_to_websocket(session.req_header(), &response) {
            // Joined, the client would have a raw connection to the upstream, past signing
            // and every check: an endpoint that answers any status it is asked for is enough.
            counts.failed.inc();
            upstream.shutdown().await;
            let e = ProxyError::UpstreamUnreachable {
                kind: "reset",
                detail: "answered 101 without switching to WebSocket (Upgrade, Connection, \
                         Sec-WebSocket-Accept)"
                    .into(),
            };
            write_error(session, ctx, e).await;
            return Ok(true);
        }

        // The handshake's own headers go back as the upstream sent them
        // (`Sec-WebSocket-Accept`, `-Protocol`, `-Extensions`); of the hop-by-hop ones, only
        // the two the switch needs.
        let mut resp = response;
        headers::prepare_response(&mut resp);
        answer_cors(&mut resp, &ctx.page);
        resp.insert_header(header::UPGRADE, "websocket")?;
        resp.insert_header(header::CONNECTION, "Upgrade")?;
        session
            .as_downstream_mut()
            .write_response_header(Box::new(resp))
            .await?;
        ctx.status = Some(101);
        counts.upgraded.inc();
        let handshake = ctx.started.elapsed();
        // After the 101 the connection is the two peers'; its request body is their bytes.
        if let HttpSession::H1(h1) = &mut upstream {
            h1.maybe_upgrade_body_writer();
        }
        // A reload that withdraws this client's admission closes the connection too.
        let authorization = ctx.admitted_with.take();
        let withdrawn = join::withdrawn(self.live.clone(), session, authorization, route.clone());
        let joined = counted(
            counts,
            join::join(session, &mut upstream, route.websocket, counts, withdrawn),
        )
        .await;
        upstream.shutdown().await;
        ctx.upgraded = Some(Joined {
            handshake,
            ..joined
        });
        Ok(true)
    }

    /// Signs the upgrade request and sends it; the upstream's answer is read, not yet relayed.
    async fn handshake(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        route: &Route,
    ) -> Result<(Sent, HttpPeer), ProxyError> {
        let mut request = session.req_header().clone();
        prepare_upstream(route, &ctx.target, &mut request, true)?;
        request.remove_header(&header::CONTENT_LENGTH);
        if let Some(signer) = &route.signer {
            let credentials = signer.current_credentials()?;
            signer.sign(&mut request, &credentials, EMPTY_SHA256, SystemTime::now())?;
        }
        let internal = |e: Box<pingora::Error>| ProxyError::Internal(e.to_string());
        request
            .insert_header(header::UPGRADE, "websocket")
            .map_err(internal)?;
        request
            .insert_header(header::CONNECTION, "Upgrade")
            .map_err(internal)?;
        let peer = route.peer(ctx.client.as_deref()).await?;
        let started = Instant::now();
        ctx.upstream_started = Some(started);
        let body = Bytes::new();
        let sent = exchange::exchange(&self.connector, route, &peer, &request, &body, Relay::Own)
            .await
            .map_err(|f| match f {
                Failure::Unanswered(e) | Failure::Midway(e, _) => e,
            })?;
        ctx.upstream_time = Some(started.elapsed());
        Ok((sent, peer))
    }

    /// The upstream would not switch: its answer is the response, as for any request.
    async fn relay_declined(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        sent: Sent,
        peer: &HttpPeer,
    ) -> Result<bool> {
        let connector = &self.connector;
        let relayed = relay::relay_response(
            session,
            connector,
            sent,
            peer,
            vec![],
            &ctx.page,
            Relay::Own,
        );
        match relayed.await {
            Ok(status) => ctx.status = Some(status),
            Err(Failure::Unanswered(e)) => write_error(session, ctx, e).await,
            // pingora's error path: the client's connection closes without the answer's end.
            Err(Failure::Midway(e, _)) => return Err(e.into_pingora()),
        }
        Ok(true)
    }
}

/// Runs `join`, with the connection counted as open meanwhile and its end in the metrics.
async fn counted(counts: &RouteWebSocket, join: impl Future<Output = Joined>) -> Joined {
    struct Open<'a>(&'a RouteWebSocket, Instant);
    impl Drop for Open<'_> {
        // Also when the task is dropped (the process exits after the drain's grace).
        fn drop(&mut self) {
            self.0.open.dec();
            self.0.duration.observe(self.1.elapsed().as_secs_f64());
        }
    }
    counts.open.inc();
    let open = Open(counts, Instant::now());
    let joined = join.await;
    drop(open);
    counts.closed(joined.closed);
    joined
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build(method, b"/chat", None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    const HANDSHAKE: &[(&str, &str)] = &[
        ("upgrade", "websocket"),
        ("connection", "keep-alive, Upgrade"),
        ("sec-websocket-version", "13"),
    ];

    #[test]
    fn a_websocket_handshake_is_an_upgrade() {
        assert!(!asked(&req("GET", &[])).unwrap());
        assert!(asked(&req("GET", HANDSHAKE)).unwrap());
        let shouted = [("upgrade", "WebSocket"), ("connection", "UPGRADE")];
        assert!(asked(&req("GET", &shouted)).unwrap());
    }

    #[test]
    fn anything_else_that_asks_to_switch_is_refused() {
        let refused = |r: RequestHeader| match asked(&r) {
            Err(ProxyError::BadRequest(why)) => why,
            other => panic!("{other:?}"),
        };
        let h2c = [
            ("upgrade", "h2c"),
            ("connection", "Upgrade, HTTP2-Settings"),
        ];
        assert!(refused(req("GET", &h2c)).contains("'websocket' only"));
        let both = [("upgrade", "websocket, h2c"), ("connection", "upgrade")];
        assert!(refused(req("GET", &both)).contains("'websocket' only"));
        assert!(refused(req("POST", HANDSHAKE)).contains("GET"));
        let unlisted = [("upgrade", "websocket"), ("connection", "keep-alive")];
        assert!(refused(req("GET", &unlisted)).contains("Connection: Upgrade"));
        let mut old = req("GET", HANDSHAKE);
        old.set_version(http::Version::HTTP_10);
        assert!(refused(old).contains("HTTP/1.1"));
        let mut body = req("GET", HANDSHAKE);
        body.insert_header("content-length", "5").unwrap();
        assert!(refused(body).contains("no body"));
        let mut twice = req("GET", HANDSHAKE);
        twice.append_header("upgrade", "websocket").unwrap();
        assert!(refused(twice).contains("more than one"));
    }
}
