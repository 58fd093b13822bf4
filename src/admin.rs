//! The admin listener, apart from traffic: `/healthz` (alive), `/readyz` (can sign) and
//! `/metrics` (Prometheus).

use crate::access::browser::BrowserPolicy;
use crate::access::Denied;
use crate::credentials::CredentialStore;
use crate::metrics::metrics;
use crate::route::Router;
use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use std::collections::BTreeSet;
use std::sync::Arc;

pub struct AdminApp {
    store: Arc<CredentialStore>,
    /// Web pages may not read it: `/readyz` says why credentials fail, `/metrics` names routes.
    browser: BrowserPolicy,
    /// Credential sets some route signs with; only these decide readiness.
    needed: BTreeSet<String>,
}

impl AdminApp {
    pub fn new(store: Arc<CredentialStore>, router: &Router, browser: BrowserPolicy) -> Self {
        let needed = router.credential_sets().into_iter().collect();
        AdminApp {
            store,
            browser,
            needed,
        }
    }

    /// 200 when every credential set in use holds valid credentials; 503 naming those that don't.
    fn readiness(&self) -> (StatusCode, serde_json::Value) {
        let mut sets = serde_json::Map::new();
        let mut ready = true;
        for set in self.store.sets().filter(|s| self.needed.contains(s.name())) {
            let state = match set.current() {
                Ok(_) => serde_json::json!({ "ready": true }),
                Err(e) => {
                    ready = false;
                    serde_json::json!({ "ready": false, "reason": one_line(&e.to_string()) })
                }
            };
            sets.insert(set.name().to_string(), state);
        }
        let status = if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        (
            status,
            serde_json::json!({ "ready": ready, "credentials": sets }),
        )
    }
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
        let host = req
            .uri
            .authority()
            .map(|a| a.as_str())
            .or_else(|| req.headers.get("host").and_then(|h| h.to_str().ok()));
        if let Err(denied) = self.browser.check_admin(host, &req.headers) {
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
                let (status, body) = self.readiness();
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
