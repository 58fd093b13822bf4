//! Requests whose body is read here (bounded) and sent by [`super::forward`]:
//! - every signed request but the uploads that stream (see [`super::streamed`]), bodiless ones
//!   included: the body, held within the body budget, is checked against the allow list's body
//!   rules and hashed for the signature;
//! - the pass-through requests that are cheap to hold ([`forwards_whole`]): no body, or a
//!   `Content-Length` one of at most [`PASS_THROUGH_WHOLE`] bytes. pingora's duplex proxy loop
//!   costs more per request than the forwarder, so they go here, unsigned, and leave as they
//!   would have left pingora's loop (see [`super::forward::Relay::AsPingora`]). Larger or
//!   chunked bodies, which must stream, stay on pingora's loop, and so does whatever that loop
//!   treats its own way (`Expect`, a `Connection` header listing other headers).

use super::budget::Reservation;
use super::forward::{self, Failure};
use super::{body, prepare_upstream, write_error, RequestCtx, SigningProxy};
use crate::error::ProxyError;
use crate::headers;
use crate::route::Route;
use bytes::Bytes;
use http::header;
use pingora::prelude::*;
use pingora::proxy::Session;
use std::sync::Arc;

/// The largest pass-through body read whole and sent by the forwarder (pingora's own retry
/// buffer holds as much).
pub const PASS_THROUGH_WHOLE: u64 = 64 * 1024;

/// Whether a pass-through request is read whole and sent by the forwarder. It must leave exactly
/// as pingora's loop would send it, so only requests whose treatment there is plain qualify:
/// HTTP/1.x, no `Transfer-Encoding`, at most [`PASS_THROUGH_WHOLE`] bytes of body, no
/// `Expect` (there the upstream answers `100 Continue`), no `Upgrade`, and a `Connection`
/// header, if any, that lists only `keep-alive` or `close` (pingora refuses some listed names).
pub fn forwards_whole(session: &Session) -> bool {
    let req = session.req_header();
    let h = &req.headers;
    let plain_connection = || {
        let mut tokens = h
            .get_all(header::CONNECTION)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .filter(|t| !t.is_empty());
        tokens
            .by_ref()
            .take(2)
            .all(|t| t.eq_ignore_ascii_case(b"keep-alive") || t.eq_ignore_ascii_case(b"close"))
            && tokens.next().is_none()
    };
    matches!(req.version, http::Version::HTTP_10 | http::Version::HTTP_11)
        && !h.contains_key(header::TRANSFER_ENCODING)
        && !h.contains_key(header::EXPECT)
        && !h.contains_key(header::UPGRADE)
        && (!h.contains_key(header::CONTENT_LENGTH)
            || body::content_length(session).is_some_and(|n| n <= PASS_THROUGH_WHOLE))
        && plain_connection()
}

impl SigningProxy {
    /// Reads the whole body, then sends it with [`forward`]: signed on a signed route.
    pub(super) async fn forward_read(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        route: &Arc<Route>,
    ) -> Result<bool> {
        let signed = route.signer.is_some();
        // A request with no body keeps its own framing header (none, or `Content-Length: 0`);
        // a signed body that was read goes with its exact length, whatever framing it came in.
        let read = !session.as_downstream_mut().is_body_empty();
        // `reserved` holds the body's bytes in the budget until it can no longer be sent again.
        let (limit, reserved) = match signed {
            true => (route.max_body_bytes, self.budget.reservation()),
            false => (PASS_THROUGH_WHOLE as usize, Reservation::outside()),
        };
        let (body, reserved) = if read {
            let idle = route.peers.read_timeout();
            let continue_sent = &mut ctx.continue_sent;
            match body::read_bounded(session, limit, idle, reserved, continue_sent).await {
                Ok(b) => b,
                Err(e) => return self.reject(session, ctx, e).await,
            }
        } else {
            (Bytes::new(), reserved)
        };
        if let Some(pending) = ctx.after_body.take() {
            // What the body says it does (the keys of a DeleteObjects, a form's Action) is
            // checked before anything is signed.
            if let Err(refused) = route.permits_body(*pending, &body) {
                return self.reject(session, ctx, refused.into()).await;
            }
        }
        let mut request = session.req_header().clone();
        if !signed {
            headers::strip_like_pingora(&mut request);
        }
        let prepared = prepare_upstream(route, &ctx.target, &mut request, signed).and_then(|()| {
            if read && signed {
                request
                    .insert_header("content-length", body.len().to_string())
                    .map_err(|e| ProxyError::Internal(e.to_string()))?;
            }
            Ok(())
        });
        if let Err(e) = prepared {
            return self.reject(session, ctx, e).await;
        }
        let body = forward::ReadBody {
            bytes: body,
            reserved,
        };
        let client = ctx.client.as_deref();
        let forwarded = forward::forward(
            &self.connector,
            session,
            route,
            client,
            request,
            body,
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
            Err(Failure::Midway(e, answer)) => {
                if let Some(answer) = answer {
                    ctx.upstream_status = Some(answer.status);
                    ctx.upstream_time = Some(answer.upstream_time);
                    ctx.aws_request_id = answer.request_id;
                }
                // The response had started: pingora's error path closes the client's
                // connection without ending the answer (a final empty chunk would make a cut
                // body look whole), and `fail_to_proxy` keeps the error for the access line.
                return Err(e.into_pingora());
            }
        }
        Ok(true)
    }
}
