//! The request path, as pingora phases: who → route → credentials → body → sign → upstream → log.
//!
//! `request_filter` first decides whether and how the request may go ([`admit`]: who is asking,
//! [`inbound`] head checks, the route and its allow list), then how it travels:
//! - on a signed route, every request (with no body, or with a body whose SHA-256 is signed) is
//!   read, bounded, hashed and signed ([`buffered`]) and sent by [`forward`], which streams the
//!   answer back; the phase returns `true`. With the body at hand, a request whose credentials
//!   AWS refuses (expired token) can be signed afresh and sent again;
//! - on a pass-through route, a request with no body or a small `Content-Length` one is read
//!   and sent the same way, unsigned, its answer relayed as pingora's loop would
//!   ([`buffered::forwards_whole`]): the forwarder costs less per request;
//! - a signed body that streams ([`streamed`]: uploads on `unsigned` and `streaming` payloads)
//!   and the other pass-through requests (large or chunked bodies, `Expect`): pingora proxies
//!   it; `upstream_request_filter` signs the header (signed routes), and for `streaming` the
//!   `request_body_filter` turns the body into signed aws-chunked frames as it flows.
//!
//! The `logging` phase hands the request's outcome to [`crate::metrics`] and writes the access
//! line.

mod admit;
mod body;
mod budget;
mod buffered;
mod exchange;
mod failed;
mod finished;
mod forward;
mod inbound;
mod refused;
mod relay;
mod streamed;
mod traffic;
mod upgrade;

pub use failed::TARGET as FAILED_REQUESTS_TARGET;
pub use traffic::Traffic;

use crate::access::browser::{self, PageRequest};
use crate::access::policy::AfterBody;
use crate::access::Denied;
use crate::config::Config;
use crate::conn::body_clock;
use crate::error::ProxyError;
use crate::headers;
use crate::metrics::InFlight;
use crate::reload::Live;
use crate::route::Route;
use crate::upstream::pool::Pool;
use async_trait::async_trait;
use bytes::Bytes;
use pingora::connectors::ConnectorOptions;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::server::configuration::ServerConf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use streamed::{BodyFilter, BodyPlan};
use tracing::warn;

/// The request path's phases and what they share. Clones share it all: pingora's proxy loop
/// holds one, sigproxy's own loop ([`Traffic`]) another.
#[derive(Clone)]
pub struct SigningProxy {
    /// Routes and client access checks, as the last reload left them.
    live: Live,
    max_header_bytes: usize,
    /// Bodies held in memory to be hashed, all requests together (`max_buffered_body_bytes`).
    budget: Arc<budget::BodyBudget>,
    /// Upgraded connections open, all routes together (`max_websocket_connections`).
    websocket_slots: Arc<upgrade::WebSocketSlots>,
    /// Upstream connections for requests sent by sigproxy itself (see [`forward`]).
    connector: Arc<Pool>,
}

impl SigningProxy {
    pub fn new(live: Live, config: &Config, conf: &ServerConf) -> Self {
        let slots = upgrade::WebSocketSlots::new(config.limits.max_websocket_connections);
        SigningProxy {
            live,
            max_header_bytes: config.max_header_bytes,
            budget: Arc::new(budget::BodyBudget::new(
                config.limits.max_buffered_body_bytes,
            )),
            websocket_slots: Arc::new(slots),
            connector: Arc::new(Pool::new(ConnectorOptions::from_server_conf(conf))),
        }
    }
}

/// Where a request goes once `request_filter`'s checks are done.
pub(crate) enum Next {
    /// sigproxy answered it (an error, a preflight, a request it forwarded itself, a WebSocket).
    Answered,
    /// pingora's proxy loop streams it (see the module's documentation).
    PingorasLoop,
}

impl Next {
    /// From what a phase helper returned in pingora's terms (`true`: answered).
    fn of(answered: Result<bool>) -> Result<Next> {
        answered.map(|a| {
            if a {
                Next::Answered
            } else {
                Next::PingorasLoop
            }
        })
    }
}

/// What one request has learnt on its way through the phases.
pub struct RequestCtx {
    started: Instant,
    route: Option<Arc<Route>>,
    /// The request's place in its route's in-flight gauge, left when the context goes.
    in_flight: Option<InFlight>,
    /// Whether a web page asks, and from which listed origin (CORS).
    page: PageRequest,
    /// The client passed the address and token checks: error bodies may name the route.
    vouched: bool,
    /// With `access.clients`: the client whose token the request carries (for the log).
    client: Option<String>,
    /// The part of the allow-list check that needs the body.
    after_body: Option<Box<AfterBody>>,
    /// `1xx` answers the upstream gave on pingora's loop (see [`exchange::MAX_INFORMATIONAL`]).
    informational: usize,
    /// The upstream path and query, as signed.
    target: String,
    /// Set on a signed route whose body pingora streams; `None` otherwise.
    plan: Option<BodyPlan>,
    /// Frames (or checks) the body of a [`BodyPlan`], set once the header is signed.
    body_filter: Option<BodyFilter>,
    /// Whether `100 Continue` was sent (the client then sends its body).
    continue_sent: bool,
    /// The error answered to the client, if any.
    error: Option<ProxyError>,
    /// Status sent to the client when sigproxy wrote the response itself.
    status: Option<u16>,
    /// When the request went upstream, and how long the upstream took to answer.
    upstream_started: Option<Instant>,
    upstream_time: Option<Duration>,
    upstream_status: Option<u16>,
    aws_request_id: Option<String>,
    /// Set once a WebSocket upgrade's connections were joined, and they have closed.
    upgraded: Option<upgrade::Joined>,
    /// An upgrade request's `Authorization`, taken off before it goes upstream: its joined
    /// connection is admitted again with it after each reload. Never logged.
    admitted_with: Option<http::HeaderValue>,
}

impl SigningProxy {
    /// `request_filter`: every check, then the request answered here or left to pingora's loop.
    /// Nothing is changed outside `session` and `ctx` before it returns
    /// [`Next::PingorasLoop`] but the route's in-flight count, which ends with `ctx`.
    async fn filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<Next> {
        // A client that stops reading its answer is let go by `client_write_timeout`, on
        // the connection itself (see `conn::stream`).
        if session.req_header().version < http::Version::HTTP_11 {
            // An HTTP/1.0 client expects no `1xx` (RFC 9110 §15.2) but the `100` it asked for.
            session.as_downstream_mut().set_ignore_info_resp(true);
        }
        let admitted = self.admit(session, ctx);
        let route = match admitted {
            Ok(Some(route)) => route,
            Ok(None) => return Next::of(self.answer_preflight(session, ctx).await),
            Err(e) => return Next::of(self.reject(session, ctx, e).await),
        };
        if let Some(answered) = self.upgrade_if_asked(session, ctx, &route).await {
            return Next::of(answered);
        }
        let Some(signer) = &route.signer else {
            if ctx.after_body.is_some() {
                // Pass-through bodies are not read; a check that needs one cannot pass.
                let refused = ProxyError::Forbidden(Denied::Action);
                return Next::of(self.reject(session, ctx, refused).await);
            }
            if buffered::forwards_whole(session) {
                return Next::of(self.forward_read(session, ctx, &route).await);
            }
            return Ok(Next::PingorasLoop); // pass-through: pingora streams it as is
        };
        ctx.plan = BodyPlan::choose(session, signer, ctx.after_body.is_some());
        if ctx.plan.is_none() {
            return Next::of(self.forward_read(session, ctx, &route).await);
        }
        Ok(Next::PingorasLoop)
    }

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
}

/// Sets the signed target and host and applies header hygiene.
fn prepare_upstream(
    route: &Route,
    target: &str,
    req: &mut RequestHeader,
    drop_expect: bool,
) -> Result<(), ProxyError> {
    let uri: http::Uri = target
        .parse()
        .map_err(|_| ProxyError::BadRequest(format!("cannot forward the path {target}")))?;
    req.set_uri(uri);
    // Whatever the client spoke: HTTP/1.0 upstream would mean a connection per request.
    req.set_version(http::Version::HTTP_11);
    let signed = route.signer.is_some();
    let edits = |req: &mut RequestHeader| route.header_edits.apply(req);
    headers::prepare_request(req, &route.host_header, signed, drop_expect, edits);
    Ok(())
}

async fn write_error(session: &mut Session, ctx: &mut RequestCtx, error: ProxyError) {
    let route = ctx
        .route
        .as_ref()
        .filter(|_| ctx.vouched && error.may_name_route());
    let body = error.body(route.map(|r| r.name.as_str()));
    let mut resp = error.response_header(body.len());
    browser::answer_cors(&mut resp, &ctx.page);
    ctx.status = Some(error.status());
    // The connection closes after an error answer. A client may still be sending its body
    // (some do even when they asked for `100 Continue`): the close lingers, so the kernel
    // does not reset the connection before the client reads this (see `conn::stream`).
    if let Err(e) = session
        .as_downstream_mut()
        .write_error_response(resp, body)
        .await
    {
        warn!(error = %e, "could not send the error response");
    }
    ctx.error = Some(error);
}

#[async_trait]
impl ProxyHttp for SigningProxy {
    type CTX = RequestCtx;

    /// No downstream modules. pingora's default adds a response-compression module (switched
    /// off) that is still built and consulted for every request; sigproxy never compresses.
    fn init_downstream_modules(&self, _: &mut pingora::modules::http::HttpModules) {}

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            route: None,
            in_flight: None,
            page: PageRequest::None,
            vouched: false,
            client: None,
            after_body: None,
            informational: 0,
            target: String::new(),
            plan: None,
            body_filter: None,
            continue_sent: false,
            error: None,
            status: None,
            upstream_started: None,
            upstream_time: None,
            upstream_status: None,
            aws_request_id: None,
            upgraded: None,
            admitted_with: None,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        self.filter(session, ctx)
            .await
            .map(|next| matches!(next, Next::Answered))
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let route = ctx.route.as_ref().expect("request_filter sets the route");
        let mut peer = route
            .peer(ctx.client.as_deref())
            .await
            .map_err(ProxyError::into_pingora)?;
        // pingora's loop pools a connection again after any whole answer; a body streamed to an
        // upstream that is not AWS's gets a connection of its own (see `exchange::Reuse`).
        if !route.peers.aws_front_end() && !session.as_downstream_mut().is_body_empty() {
            crate::upstream::used_once(&mut peer);
        }
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        // The upstream is connected and the body starts to flow: from here until its end (see
        // `request_body_filter`), it must keep min_request_body_rate (see `conn::body_clock`).
        let downstream = session.as_downstream_mut();
        if !downstream.is_body_empty() && !downstream.is_body_done() {
            // A client asking for `100 Continue` waits for the upstream's before it sends.
            if body::expects_continue(session) {
                body_clock::arm_after_continue();
            } else {
                body_clock::arm();
            }
        }
        let route = ctx.route.as_ref().expect("request_filter sets the route");
        prepare_upstream(route, &ctx.target, upstream_request, false)
            .map_err(ProxyError::into_pingora)?;
        let Some(signer) = &route.signer else {
            ctx.upstream_started = Some(Instant::now());
            return Ok(());
        };
        // request_filter sends every other signed request itself.
        let Some(plan) = ctx.plan else {
            return Err(
                ProxyError::Internal("a signed request reached pingora's path".into())
                    .into_pingora(),
            );
        };
        // Made anew on every attempt: a retried request starts its chain from its new seed.
        ctx.body_filter = plan
            .sign(signer, upstream_request)
            .map_err(ProxyError::into_pingora)?;
        ctx.upstream_started = Some(Instant::now());
        Ok(())
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if end_of_stream {
            // All in: waiting for the upstream's answer is not the client's doing.
            body_clock::disarm();
        }
        if let Some(filter) = ctx.body_filter.as_mut() {
            let piece = body.take().unwrap_or_default();
            let out = filter
                .push(piece, end_of_stream)
                .map_err(ProxyError::into_pingora)?;
            // An empty last piece stays `None`: pingora writes an empty piece at the end to a
            // chunked upstream as a zero-size chunk, then ends the body again with its own,
            // and the second one reaches the upstream as the start of another request. (An
            // empty piece before the end is not written at all.)
            *body = (!out.is_empty() || !end_of_stream).then_some(out);
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if upstream_response.status == 101
            && !session
                .req_header()
                .headers
                .contains_key(http::header::UPGRADE)
        {
            return Err(exchange::unasked_switch().into_up());
        }
        if upstream_response.status.is_informational() {
            ctx.informational += 1;
            if ctx.informational > exchange::MAX_INFORMATIONAL {
                return Err(exchange::too_many_informational().into_up());
            }
            if upstream_response.status == 100 {
                // The client's body may come now (see `upstream_request_filter`).
                body_clock::continued();
            }
            return Ok(());
        }
        if let Some(route) = &ctx.route {
            let path = ctx.target.split('?').next().unwrap_or_default();
            let method = &session.req_header().method;
            failed::log(&route.name, method, path, upstream_response, &[]);
        }
        ctx.upstream_time = ctx.upstream_started.map(|t| t.elapsed());
        ctx.upstream_status = Some(upstream_response.status.as_u16());
        ctx.aws_request_id = headers::aws_request_id(upstream_response);
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        browser::answer_cors(upstream_response, &ctx.page);
        headers::frame_for_client(upstream_response, session.req_header().version);
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let error = match ProxyError::from_pingora(e) {
            // pingora's loop waits for the upstream's answer and the client's body at once: an
            // upstream silent while the client owes it body bytes waits for them, as sigproxy
            // does, and the time ran out on the client (a stalled upload is not an upstream
            // timeout, nor counted and alerted on as one).
            ProxyError::UpstreamTimeout(_)
                if e.etype() == &ErrorType::ReadTimedout && body_clock::waiting_for_client() =>
            {
                ProxyError::ClientTimeout
            }
            error => error,
        };
        let code = error.status();
        // A `101` is the last answer the connection carries, informational or not.
        let already_answered = session
            .as_downstream()
            .response_written()
            .is_some_and(|r| !r.status.is_informational() || r.status == 101);
        if already_answered {
            ctx.error = Some(error);
        } else if let ProxyError::ClientGone(_) = error {
            // Nobody is there to read an answer.
            ctx.status = Some(code);
            ctx.error = Some(error);
        } else {
            write_error(session, ctx, error).await;
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    /// pingora's `Fail to proxy` line (at ERROR) only for what an operator must look at: a
    /// client that went away, stalled or sent a body that could not be read has its access
    /// line, which says why.
    fn suppress_error_log(&self, _session: &Session, ctx: &RequestCtx, _e: &Error) -> bool {
        ctx.error.as_ref().is_some_and(ProxyError::is_clients)
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        finished::record(session, e, ctx);
    }

    /// What pingora's own error line names the request by: like the access line, never the
    /// query (it may carry secrets: a presigned URL's signature, a token).
    fn request_summary(&self, session: &Session, _ctx: &RequestCtx) -> String {
        let req = session.req_header();
        format!("{} {}", req.method, req.uri.path())
    }
}
