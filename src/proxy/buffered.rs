//! Signed requests whose body is read here (bounded, within the body budget), hashed, checked
//! against the allow list's body rules, signed and sent by [`super::forward`]: every signed
//! request but the uploads that stream (see [`super::streamed`]), bodiless ones included.

use super::forward::{self, Failure};
use super::{body, prepare_upstream, write_error, RequestCtx, SigningProxy};
use crate::error::ProxyError;
use crate::route::Route;
use crate::sign::{sha256_hex, EMPTY_SHA256};
use bytes::Bytes;
use pingora::prelude::*;
use pingora::proxy::Session;
use std::sync::Arc;

impl SigningProxy {
    /// Reads and hashes the whole body, then signs and sends it with [`forward`].
    pub(super) async fn forward_signed(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        route: &Arc<Route>,
    ) -> Result<bool> {
        // A request with no body keeps its own framing header (none, or `Content-Length: 0`);
        // a body that was read goes with its exact length, whatever framing it came in.
        let read = !session.as_downstream_mut().is_body_empty();
        // `reserved` holds the body's bytes in the budget until it can no longer be sent again.
        let (body, reserved) = if read {
            let limit = route.max_body_bytes;
            let idle = route.peers.read_timeout();
            let budget = &self.budget;
            match body::read_bounded(session, limit, idle, budget, &mut ctx.continue_sent).await {
                Ok(b) => b,
                Err(e) => return self.reject(session, ctx, e).await,
            }
        } else {
            (Bytes::new(), self.budget.reservation())
        };
        if let Some(pending) = ctx.after_body.take() {
            // What the body says it does (the keys of a DeleteObjects, a form's Action) is
            // checked before anything is signed.
            if let Err(refused) = route.permits_body(*pending, &body) {
                return self.reject(session, ctx, refused.into()).await;
            }
        }
        let hash = if body.is_empty() {
            EMPTY_SHA256.to_string()
        } else {
            sha256_hex(&body)
        };
        let mut request = session.req_header().clone();
        let prepared = prepare_upstream(route, &ctx.target, &mut request, true).and_then(|()| {
            if read {
                request
                    .insert_header("content-length", body.len().to_string())
                    .map_err(|e| ProxyError::Internal(e.to_string()))?;
            }
            Ok(())
        });
        if let Err(e) = prepared {
            return self.reject(session, ctx, e).await;
        }
        let forwarded = forward::forward(
            &self.pool,
            session,
            route,
            request,
            forward::ReadBody {
                bytes: body,
                hash,
                reserved,
            },
            &ctx.page,
        )
        .await;
        match forwarded {
            Ok(answer) => {
                ctx.status = Some(answer.status);
                ctx.upstream_status = Some(answer.status);
                ctx.upstream_time = Some(answer.upstream_time);
                ctx.aws_request_id = answer.request_id;
            }
            Err(Failure::Unanswered(e)) => write_error(session, ctx, e).await,
            Err(Failure::Midway(e)) => {
                // The response had started: all that is left is to close the connection.
                session.as_downstream_mut().set_keepalive(None);
                ctx.error = Some(e);
            }
        }
        Ok(true)
    }
}
