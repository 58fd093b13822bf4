//! The admin listener, apart from traffic: `/healthz` (alive), `/readyz` (can sign, and not
//! draining) and `/metrics` (Prometheus).

use crate::access::Denied;
use crate::config::ClientLimits;
use crate::drain::Drain;
use crate::error::ProxyError;
use crate::metrics::metrics;
use crate::reload::Live;
use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use std::sync::Arc;

/// Connections the admin port serves at once (probes and a scraper or two; beyond, the
/// connection waiting longest for a whole head makes room, else `503`).
const MAX_CONNECTIONS: usize = 32;
/// Admin requests are a request line and a few headers.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// The admin listener's limits: the traffic port's header and keep-alive timeouts, a small
/// connection cap. A client that holds admin connections open, or sends a head a byte at a
/// time, cannot take the probes' port away: kubelet opens a new connection for every probe, and
/// it takes the place of the oldest connection still waiting for its head.
pub fn limits(traffic: &ClientLimits) -> ClientLimits {
    ClientLimits {
        max_connections: MAX_CONNECTIONS,
        max_websocket_connections: traffic.max_websocket_connections.min(MAX_CONNECTIONS),
        ..*traffic
    }
}

pub struct AdminApp {
    /// The credential sets (those some route signs with decide readiness) and the browser
    /// policy (web pages may not read it: `/readyz` says why credentials fail, `/metrics` names
    /// routes), as the last reload left them.
    live: Live,
    /// From SIGTERM on, not ready whatever the credentials.
    drain: Arc<Drain>,
}

impl AdminApp {
    pub fn new(live: Live, drain: Arc<Drain>) -> Self {
        AdminApp { live, drain }
    }

    /// 200 when every credential set in use holds valid credentials; 503 naming those that don't.
    /// With `detail` (a caller on this machine, see [`shows_detail`]), each failing set says why
    /// and a `per_client` set lists each client's session under `clients`; others learn only
    /// which sets are ready: STS's reasons name role ARNs and client names are identities, and a
    /// non-loopback admin port answers whoever reaches the pod.
    /// From SIGTERM on, 503 saying so: a load balancer that health-checks (an NLB target group,
    /// anything not driven by Kubernetes endpoints) stops sending new connections during
    /// `shutdown_delay`, while the traffic port still serves those that come.
    fn readiness(&self, detail: bool) -> (StatusCode, serde_json::Value) {
        let mut sets = serde_json::Map::new();
        let mut ready = true;
        let live = self.live.load();
        for set in live.store.sets().filter(|s| live.needed.contains(s.name())) {
            let state = match set.current() {
                Ok(_) => serde_json::json!({ "ready": true }),
                Err(e) if detail => {
                    ready = false;
                    serde_json::json!({ "ready": false, "reason": one_line(&e.to_string()) })
                }
                // What a stranger's 503 says too ("an MFA code is needed", "fetching them
                // failed"): no ARN, no STS answer.
                Err(ProxyError::CredentialsUnavailable { state, .. }) => {
                    ready = false;
                    serde_json::json!({ "ready": false, "state": state })
                }
                Err(_) => {
                    ready = false;
                    serde_json::json!({ "ready": false })
                }
            };
            let Some(client) = set.client() else {
                sets.insert(set.name().to_string(), state);
                continue;
            };
            // A per_client set: ready when every client's session is, each listed.
            let entry = sets
                .entry(set.name().to_string())
                .or_insert_with(|| match detail {
                    true => serde_json::json!({ "ready": true, "clients": {} }),
                    false => serde_json::json!({ "ready": true }),
                });
            if state["ready"] == false {
                entry["ready"] = false.into();
            }
            if detail {
                entry["clients"][client] = state;
            }
        }
        let mut body = serde_json::json!({ "ready": ready, "credentials": sets });
        if !detail && !ready {
            body["detail"] = "reasons are shown to callers on this machine (kubectl port-forward) \
                              and in sigproxy's log"
                .into();
        }
        if self.drain.draining() {
            ready = false;
            body["ready"] = false.into();
            body["draining"] = true.into();
            body["reason"] = "shutting down (SIGTERM): finishing what is in flight".into();
        }
        let status = if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        (status, body)
    }
}

/// Whether the caller may read why credentials fail and which clients have sessions: a caller on
/// this machine's loopback (a `kubectl port-forward` arrives there too). A caller whose address
/// is unknown is treated as a stranger.
fn shows_detail(peer: Option<&pingora::protocols::l4::socket::SocketAddr>) -> bool {
    peer.and_then(|a| a.as_inet())
        .is_some_and(|a| crate::access::is_loopback(a.ip()))
}

/// An error on one line (SDK errors can span several), at most 2,000 characters.
fn one_line(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(2000) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line,
    }
}

fn json(status: StatusCode, body: serde_json::Value) -> Response<Vec<u8>> {
    let body = body.to_string().into_bytes();
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .header("cache-control", "no-store")
        .body(body)
        .expect("static response parts are valid")
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let host = crate::headers::request_host(req);
        if let Err(denied) = self
            .live
            .load()
            .access
            .browser
            .check_admin(host, &req.headers)
        {
            let status = match denied {
                Denied::Host => StatusCode::MISDIRECTED_REQUEST,
                _ => StatusCode::FORBIDDEN,
            };
            return json(
                status,
                serde_json::json!({ "error": { "code": denied.label(), "message": "the admin port serves probes and scrapers, not web pages" } }),
            );
        }
        match session.req_header().uri.path() {
            "/healthz" => json(StatusCode::OK, serde_json::json!({ "status": "ok" })),
            "/readyz" => {
                let (status, body) = self.readiness(shows_detail(session.client_addr()));
                json(status, body)
            }
            "/metrics" => {
                let body = metrics().render();
                Response::builder()
                    .status(StatusCode::OK)
                    .header("content-type", "text/plain; version=0.0.4")
                    .header("content-length", body.len())
                    .body(body)
                    .expect("static response parts are valid")
            }
            _ => json(
                StatusCode::NOT_FOUND,
                serde_json::json!({ "error": { "code": "not_found", "message": "admin endpoints: /healthz, /readyz, /metrics" } }),
            ),
        }
    }
}

#[cfg(test)]
#[path = "admin_tests.rs"]
mod tests;
