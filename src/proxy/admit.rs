//! Everything decided about a request before a body byte is read: who is asking, whether the
//! head is sound, whether a web page asks (and a CORS preflight is answered here), the bearer
//! token, which route serves it, what its allow list says, and whether it can be signed now.

use super::{inbound, streamed, RequestCtx, SigningProxy};
use crate::access::browser::{self, PageRequest};
use crate::access::Denied;
use crate::error::ProxyError;
use crate::headers;
use crate::metrics::{metrics, InFlight};
use crate::reload::Snapshot;
use crate::route::Route;
use pingora::http::RequestHeader;
use pingora::prelude::*;
use pingora::proxy::Session;
use std::net::IpAddr;
use std::sync::Arc;

impl SigningProxy {
    /// Everything decided before a body byte is read: who is asking (client address), whether
    /// the head is sound, whether a web page is asking (host, origin), the bearer token, which
    /// route serves it and whether that route allows it, and whether it can be signed now.
    /// `Ok(None)`: a CORS preflight, answered here.
    pub(super) fn admit(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Arc<Route>>, ProxyError> {
        // Routes and access rules as they are now; a reload from here on is for later requests.
        let live = self.live.load();
        let req = session.req_header();
        let host = headers::request_host(req);
        // Looked up first so that refusals are counted under the route they were for.
        let routed = live.router.find(host, req.uri.path());
        if let Ok(Some((route, _))) = &routed {
            ctx.route = Some((*route).clone());
            ctx.in_flight = Some(InFlight::enter(&route.metrics.in_flight));
        }
        // Who is asking comes first: an unknown client learns nothing, not even which routes
        // exist.
        let client = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        live.access
            .check_client(client)
            .map_err(ProxyError::Forbidden)?;
        // Errors name the route only to a client that has shown it may use the proxy.
        ctx.vouched = !live.access.wants_token();
        inbound::check(session, self.max_header_bytes)?;
        let browser = &live.access.browser;
        // A host this listener does not serve is refused after the token check: a caller
        // without the token does not learn which host names are routed.
        let host_served = browser.check_host(host).map_err(ProxyError::Forbidden);
        ctx.page = browser
            .check_page(&req.method, &req.headers)
            .map_err(ProxyError::Forbidden)?;
        if let PageRequest::Preflight(_) = ctx.page {
            // Answered before the token check (browsers never send credentials on a
            // preflight), whatever the host, for the same reason: the request it clears still
            // meets the host check.
            return Ok(None);
        }
        let mut authorizations = req.headers.get_all(http::header::AUTHORIZATION).iter();
        let authorization = authorizations.next().map(|v| v.as_bytes());
        if live.access.wants_token() && authorizations.next().is_some() {
            // Which one would count is anybody's guess: neither does.
            return Err(ProxyError::BadRequest(
                "more than one Authorization header".into(),
            ));
        }
        let client = live
            .access
            .check_token(authorization)
            .map_err(|_| ProxyError::Unauthorized)?;
        let refused_route = |client: &crate::access::clients::Client| {
            metrics()
                .client_denied
                .with_label_values(&[&client.name])
                .inc();
            ProxyError::Forbidden(Denied::ClientRoute)
        };
        if let Err(not_served) = host_served {
            // With `access.clients`, as any route the client may not use: `421` here and `403`
            // for another client's route host would tell which names are routed.
            return Err(client.map_or(not_served, refused_route));
        }
        ctx.vouched = true;
        let routed = match (routed, client) {
            // A client is told why a path cannot be routed only by a route it may use: another
            // client's route would show it exists. Looked at again only then (it is rare).
            (Err(_), Some(client)) => live.router.find_for(host, req.uri.path(), |name| {
                client.check_route(name).is_ok()
            }),
            (routed, _) => routed,
        };
        let (route, resolved) = match (routed, client) {
            (found, None) => found?.ok_or(ProxyError::NoRoute)?,
            (found, Some(client)) => {
                ctx.client = Some(client.name.clone());
                let found = match found {
                    Err(ProxyError::Forbidden(Denied::ClientRoute)) => None,
                    found => found?,
                };
                // A client learns of no route but its own: another's is refused as no route is.
                let Some((route, resolved)) =
                    found.filter(|(route, _)| client.check_route(&route.name).is_ok())
                else {
                    return Err(refused_route(client));
                };
                // Signing with the client's own session when the route's set is per_client.
                let own = route.for_client(&client.name);
                ctx.route = Some(own.clone());
                (own, resolved)
            }
        };
        if live.access.wants_token() {
            // The token is sigproxy's; the upstream never sees it. An upgrade keeps it to be
            // admitted again while its connection lasts (see `upgrade::join::withdrawn`).
            let req = session.req_header_mut();
            if req.headers.contains_key(http::header::UPGRADE) {
                ctx.admitted_with = req.headers.get(http::header::AUTHORIZATION).map(|v| {
                    let mut kept = v.clone();
                    kept.set_sensitive(true);
                    kept
                });
            }
            req.remove_header("authorization");
        }
        let req = session.req_header();
        ctx.target = route.target(&resolved, req.uri.query())?;
        ctx.after_body = route
            .permits(&req.method, &ctx.target, &req.headers)?
            .map(Box::new);
        if let Some(signer) = &route.signer {
            signer.credentials().check()?;
            streamed::admit_client_framed(signer, req, ctx.after_body.is_some())?;
        }
        Ok(Some(route))
    }

    /// Answers a CORS preflight from a listed origin; nothing goes upstream.
    pub(super) async fn answer_preflight(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<bool> {
        let PageRequest::Preflight(origin) = &ctx.page else {
            return Ok(false);
        };
        let resp = browser::preflight_response(origin, &session.req_header().headers);
        ctx.status = Some(204);
        session
            .as_downstream_mut()
            .write_response_header(Box::new(resp))
            .await?;
        session.as_downstream_mut().finish_body().await?;
        Ok(true)
    }
}

/// Whether `live` (a configuration put in force since) would still admit an upgraded request
/// admitted on `route`: its client (address, token, the client's routes: see
/// [`ClientAccess::still_admits`](crate::access::ClientAccess::still_admits)), its host and
/// web page, the route its host and path find (the same, by name) and that route's allow
/// list, and the credentials it signs with (the same set, unchanged). `request` is the
/// client's head as admitted, its token taken off (`authorization` is that token).
pub(super) fn readmits(
    live: &Snapshot,
    client: Option<IpAddr>,
    request: &RequestHeader,
    authorization: Option<&[u8]>,
    route: &Route,
) -> bool {
    let access = &live.access;
    if !access.still_admits(client, authorization, &route.name) {
        return false;
    }
    let host = headers::request_host(request);
    let page = access.browser.check_page(&request.method, &request.headers);
    if access.browser.check_host(host).is_err() || page.is_err() {
        return false;
    }
    let Ok(Some((now, resolved))) = live.router.find(host, request.uri.path()) else {
        return false;
    };
    let now = match access.check_token(authorization) {
        Ok(Some(client)) => now.for_client(&client.name),
        _ => now,
    };
    let permitted = now
        .target(&resolved, request.uri.query())
        .is_ok_and(|target| {
            now.permits(&request.method, &target, &request.headers)
                .is_ok()
        });
    let same_credentials = match (&route.signer, &now.signer) {
        (None, None) => true,
        (Some(then), Some(now)) => std::ptr::eq(then.credentials(), now.credentials()),
        _ => false,
    };
    now.name == route.name && permitted && same_credentials
}
