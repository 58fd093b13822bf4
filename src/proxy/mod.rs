//! The request path, as pingora phases: route → credentials → body → sign → upstream → log.
//!
//! Two ways to the upstream, chosen in `request_filter`:
//! - no body to hash (GET, HEAD, empty bodies, pass-through routes): pingora proxies it, and
//!   `upstream_request_filter` signs with the empty-payload hash;
//! - a body on a signed route: it is read (bounded), hashed, signed and sent by
//!   [`forward`], and the phase returns `true` (response already written).

mod body;
mod forward;

use crate::error::ProxyError;
use crate::headers;
use crate::route::{Route, Router};
use crate::sign::{sha256_hex, EMPTY_SHA256};
use async_trait::async_trait;
use pingora::connectors::http::Connector;
use pingora::connectors::ConnectorOptions;
use pingora::http::RequestHeader;
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::server::configuration::ServerConf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tracing::{info, warn};

pub struct SigningProxy {
    router: Arc<Router>,
    /// For requests whose body was read here (see [`forward`]).
    connector: Connector,
}

impl SigningProxy {
    pub fn new(router: Arc<Router>, conf: &ServerConf) -> Self {
        SigningProxy {
            router,
            connector: Connector::new(Some(ConnectorOptions::from_server_conf(conf))),
        }
    }
}

/// What one request has learnt on its way through the phases.
pub struct RequestCtx {
    started: Instant,
    route: Option<Arc<Route>>,
    /// The upstream path and query, as signed.
    target: String,
    /// The error answered to the client, if any.
    error: Option<ProxyError>,
    /// Status sent to the client when sigproxy wrote the response itself.
    status: Option<u16>,
}

impl SigningProxy {
    /// Writes `error` as the JSON response and records it; the request ends here.
    async fn reject(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        error: ProxyError,
    ) -> Result<bool> {
        write_error(session, ctx, error).await;
        Ok(true)
    }

    /// Builds the upstream request header from the client's: target, host, hygiene.
    fn upstream_request(
        route: &Route,
        target: &str,
        client: &RequestHeader,
        body_len: Option<usize>,
    ) -> Result<RequestHeader, ProxyError> {
        let mut req = client.clone();
        prepare_upstream(route, target, &mut req)?;
        if let Some(len) = body_len {
            req.insert_header("content-length", len.to_string())
                .map_err(|e| ProxyError::Internal(e.to_string()))?;
        }
        Ok(req)
    }
}

/// Sets the signed target and host and applies header hygiene.
fn prepare_upstream(
    route: &Route,
    target: &str,
    req: &mut RequestHeader,
) -> Result<(), ProxyError> {
    let uri: http::Uri = target
        .parse()
        .map_err(|_| ProxyError::BadRequest(format!("cannot forward the path {target}")))?;
    req.set_uri(uri);
    headers::prepare_request(
        req,
        route.peers.upstream().authority(),
        route.signer.is_some(),
    );
    Ok(())
}

async fn write_error(session: &mut Session, ctx: &mut RequestCtx, error: ProxyError) {
    let body = error.body(ctx.route.as_ref().map(|r| r.name.as_str()));
    let resp = error.response_header(body.len());
    ctx.status = Some(error.status());
    if let Err(e) = session
        .as_downstream_mut()
        .write_error_response(resp, body)
        .await
    {
        warn!(error = %e, "could not send the error response");
    }
    ctx.error = Some(error);
}

fn request_host(req: &RequestHeader) -> Option<&str> {
    req.headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri.authority().map(|a| a.as_str()))
}

#[async_trait]
impl ProxyHttp for SigningProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            route: None,
            target: String::new(),
            error: None,
            status: None,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let req = session.req_header();
        let Some(route) = self.router.find(request_host(req), req.uri.path()).cloned() else {
            return self.reject(session, ctx, ProxyError::NoRoute).await;
        };
        ctx.route = Some(route.clone());
        match route.target(req.uri.path(), req.uri.query()) {
            Ok(target) => ctx.target = target,
            Err(e) => return self.reject(session, ctx, e).await,
        }
        let Some(signer) = &route.signer else {
            return Ok(false); // pass-through: pingora streams it as is
        };
        let credentials = match signer.current_credentials() {
            Ok(c) => c,
            Err(e) => return self.reject(session, ctx, e).await,
        };
        if session.as_downstream_mut().is_body_empty() {
            return Ok(false); // signed in upstream_request_filter with the empty hash
        }

        let body =
            match body::read_bounded(session, route.max_body_bytes, route.peers.read_timeout())
                .await
            {
                Ok(b) => b,
                Err(e) => return self.reject(session, ctx, e).await,
            };
        let hash = sha256_hex(&body);
        let signed =
            Self::upstream_request(&route, &ctx.target, session.req_header(), Some(body.len()))
                .and_then(|mut req| {
                    signer.sign(&mut req, credentials, &hash, SystemTime::now())?;
                    Ok(req)
                });
        let request = match signed {
            Ok(r) => r,
            Err(e) => return self.reject(session, ctx, e).await,
        };
        match forward::forward(&self.connector, session, &route, request, body).await {
            Ok(status) => ctx.status = Some(status),
            Err((e, false)) => write_error(session, ctx, e).await,
            Err((e, true)) => {
                // The response had started: all that is left is to close the connection.
                session.as_downstream_mut().set_keepalive(None);
                ctx.error = Some(e);
            }
        }
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let route = ctx.route.as_ref().expect("request_filter sets the route");
        route
            .peers
            .peer()
            .await
            .map(Box::new)
            .map_err(ProxyError::into_pingora)
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let route = ctx.route.as_ref().expect("request_filter sets the route");
        prepare_upstream(route, &ctx.target, upstream_request).map_err(ProxyError::into_pingora)?;
        if let Some(signer) = &route.signer {
            // Fetched again: a refresh may have landed since request_filter.
            let credentials = signer
                .current_credentials()
                .map_err(ProxyError::into_pingora)?;
            signer
                .sign(
                    upstream_request,
                    credentials,
                    EMPTY_SHA256,
                    SystemTime::now(),
                )
                .map_err(ProxyError::into_pingora)?;
        }
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let error = ProxyError::from_pingora(e);
        let code = error.status();
        let already_answered = session
            .as_downstream()
            .response_written()
            .is_some_and(|r| !r.status.is_informational());
        if already_answered {
            ctx.error = Some(error);
        } else {
            write_error(session, ctx, error).await;
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let req = session.req_header();
        let status = ctx
            .status
            .or_else(|| session.response_written().map(|r| r.status.as_u16()))
            .unwrap_or(0);
        let route = ctx.route.as_ref().map_or("-", |r| r.name.as_str());
        let error = ctx
            .error
            .as_ref()
            .map(|e| e.to_string())
            .or_else(|| e.map(|e| e.to_string()));
        info!(
            target: "access",
            route,
            method = %req.method,
            path = req.uri.path(),
            status,
            duration_ms = ctx.started.elapsed().as_secs_f64() * 1000.0,
            error = error.as_deref(),
            "request"
        );
    }
}
