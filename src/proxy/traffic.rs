//! The traffic port's requests, each served by sigproxy's phases directly when sigproxy answers
//! it itself, else by pingora's proxy loop.
//!
//! Most requests never need pingora's loop: refusals, preflights, WebSockets and every request
//! sigproxy forwards itself (signed ones, small pass-through ones; see the module above) are
//! answered in `request_filter`. pingora's HTTP app would still wrap each in its own request
//! futures (about 27 KB, moved into two boxes per request) and its session. Here such a request
//! runs the same phases in the same order (`new_ctx`, `request_filter`, `logging`, or on an
//! error `fail_to_proxy` then `logging`), on pingora's own session types, without them.
//!
//! A request `request_filter` leaves to pingora's loop (streamed bodies: see
//! [`super::Next::PingorasLoop`]) is handed to pingora's app unread: its head, kept, is parsed
//! again there and the request starts over. Nothing of it has been sent or answered by then.

use super::{Next, RequestCtx, SigningProxy};
use crate::conn::{self, Parsed, Serve};
use crate::metrics::metrics;
use bytes::BytesMut;
use pingora::apps::HttpServerApp;
use pingora::prelude::*;
use pingora::protocols::http::ServerSession;
use pingora::protocols::Stream;
use pingora::proxy::{HttpProxy, ProxyHttp, Session};
use pingora::server::ShutdownWatch;
use std::sync::Arc;
use tracing::error;

/// The traffic listener's requests: sigproxy's phases first, pingora's proxy loop for the rest.
pub struct Traffic {
    phases: SigningProxy,
    pingora: Arc<HttpProxy<SigningProxy>>,
}

impl Traffic {
    /// `pingora`: pingora's HTTP app running a clone of `phases`.
    pub fn new(phases: SigningProxy, pingora: HttpProxy<SigningProxy>) -> Traffic {
        Traffic {
            phases,
            pingora: Arc::new(pingora),
        }
    }

    /// What pingora's app does once `request_filter` answered or failed: `logging`, then the
    /// connection kept for the next request if it can be.
    async fn end(
        &self,
        mut session: Session,
        mut ctx: RequestCtx,
        failed: Option<Box<Error>>,
    ) -> Option<Stream> {
        let reuse = match failed {
            None => {
                self.phases.logging(&mut session, None, &mut ctx).await;
                true
            }
            Some(e) => {
                let answer = self.phases.fail_to_proxy(&mut session, &e, &mut ctx).await;
                if !self.phases.suppress_error_log(&session, &ctx, &e) {
                    error!(
                        "Fail to filter request: {e}, status: {}, {}",
                        answer.error_code,
                        self.phases.request_summary(&session, &ctx)
                    );
                }
                self.phases.logging(&mut session, Some(&e), &mut ctx).await;
                session.downstream_session.on_proxy_failure(e);
                answer.can_reuse_downstream
            }
        };
        if !reuse {
            return None;
        }
        let reusable = session.downstream_session.finish().await.ok().flatten()?;
        Some(reusable.into_parts().0)
    }
}

impl Serve for Traffic {
    async fn serve(
        self: &Arc<Self>,
        io: Stream,
        head: BytesMut,
        keepalive_secs: u64,
        closing: &ShutdownWatch,
    ) -> Option<Stream> {
        // Kept for pingora's loop, should the request go there.
        let kept = head.clone();
        let mut session = Session::new_h1(io);
        let downstream = &mut session.downstream_session;
        // The head is all in `head`: parsed without reading.
        match conn::parse_head(downstream, head, keepalive_secs).await {
            Parsed::Request => {}
            Parsed::Closed => return None,
            Parsed::Malformed => {
                metrics()
                    .request_heads_refused
                    .with_label_values(&["malformed"])
                    .inc();
                downstream.shutdown().await;
                return None;
            }
        }
        if *closing.borrow() {
            // Draining: this response closes its connection.
            session.set_keepalive(None);
        }
        let mut ctx = self.phases.new_ctx();
        match self.phases.filter(&mut session, &mut ctx).await {
            Ok(Next::Answered) => self.end(session, ctx, None).await,
            Err(e) => self.end(session, ctx, Some(e)).await,
            Ok(Next::PingorasLoop) => {
                // Served from its start by pingora's loop, whose own `admit` counts it in
                // flight again.
                drop(ctx);
                // `Session::new_h1` made it an HTTP/1 session.
                let ServerSession::H1(h1) = *session.downstream_session else {
                    return None;
                };
                let mut again = ServerSession::new_http1(h1.into_inner());
                again.set_keepalive(Some(keepalive_secs));
                again.set_pipelined_prefix(kept);
                let reused = self.pingora.process_new_http(again, closing).await?;
                Some(reused.consume().0)
            }
        }
    }

    async fn cleanup(&self) {
        self.pingora.http_cleanup().await;
    }
}
