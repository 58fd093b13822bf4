//! "pingora 0.9 + own forwarder": the floor under sigproxy's signed requests. Those do not go
//! through pingora's proxy loop: `request_filter` reads the whole body and hands the request to
//! sigproxy's own forwarder (`src/proxy/forward.rs`), which sends it on a pooled connection
//! from pingora's `Connector` and writes the answer downstream itself. This baseline does just
//! that, on the same server settings as "bare pingora 0.9" (`bare::run`), with none of
//! sigproxy's work: no routes, checks, signing, hashing, body budget, retries, access log or
//! metrics.
//!
//! Per request: read the body (if any) from the session; take a pooled connection to the
//! backend; write the request head (the client's method, path and headers, less the standard
//! hop-by-hop ones, as pingora's proxy loop drops them) and the body; read the response head and
//! body; write them downstream; put the connection back in the pool; return `Ok(true)`.
//!
//! Only what the benchmark sends: no `100 Continue` (wrk sends no `Expect`), no upgrades. Like
//! the bare baseline, no upstream timeouts (pingora's defaults: none); any error ends the
//! request through pingora's `fail_to_proxy`, and the connection is not pooled.

use async_trait::async_trait;
use bytes::Bytes;
use http::header;
use pingora::connectors::http::Connector;
use pingora::connectors::ConnectorOptions;
use pingora::modules::http::HttpModules;
use pingora::prelude::*;
use pingora::protocols::http::client::HttpSession;
use std::net::SocketAddr;

/// Request headers that pingora's proxy loop drops before the upstream sees them.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Forwards every request to one plain-HTTP backend from `request_filter`.
struct Forwarder {
    /// The backend, over plain HTTP/1.1, no SNI; built once (its pool key with it).
    peer: HttpPeer,
    /// pingora's connector on the server's settings, as sigproxy makes it.
    connector: Connector,
}

#[async_trait]
impl ProxyHttp for Forwarder {
    type CTX = ();

    fn new_ctx(&self) {}

    /// As sigproxy: no downstream modules.
    fn init_downstream_modules(&self, _: &mut HttpModules) {}

    /// Answers every request here; pingora's proxy loop never runs.
    async fn request_filter(&self, session: &mut Session, _: &mut ()) -> Result<bool> {
        // The whole body first, as sigproxy reads it to hash it: kept in the pieces it came in.
        let mut body: Vec<Bytes> = Vec::new();
        let mut length = 0;
        if !session.as_downstream_mut().is_body_empty() {
            while let Some(chunk) = session.read_request_body().await? {
                length += chunk.len();
                body.push(chunk);
            }
        }
        let mut request = session.req_header().clone();
        for name in HOP_BY_HOP {
            request.remove_header(name);
        }
        if length > 0 {
            // A body that was read goes with its length, whatever framing it came in.
            request.insert_header(header::CONTENT_LENGTH, length.to_string())?;
        }

        let (mut upstream, _reused) = self.connector.get_http_session(&self.peer).await?;
        upstream.write_request_header(Box::new(request)).await?;
        for chunk in body {
            upstream.write_request_body(chunk, false).await?;
        }
        upstream.finish_request_body().await?;
        read_final_header(&mut upstream).await?;

        let mut response = upstream
            .response_header()
            .cloned()
            .expect("read_final_header read it");
        // The downstream writer sets its own `Connection`; the framing headers stay.
        response.remove_header(&header::CONNECTION);
        response.remove_header("keep-alive");
        let done = upstream.response_done();
        session
            .write_response_header(Box::new(response), done)
            .await?;
        while !upstream.response_done() {
            let chunk = upstream.read_response_body().await?;
            let end = chunk.is_none() || upstream.response_done();
            session.write_response_body(chunk, end).await?;
            if end {
                break;
            }
        }
        // Reusable: the response was read to its end.
        let idle = self.peer.options.idle_timeout;
        self.connector
            .release_http_session(upstream, &self.peer, idle)
            .await;
        Ok(true)
    }

    /// Never reached: `request_filter` answers every request.
    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        Err(Error::explain(InternalError, "answered in request_filter"))
    }
}

/// Reads the response head, skipping informational (1xx) answers but a 101.
async fn read_final_header(upstream: &mut HttpSession) -> Result<()> {
    loop {
        upstream.read_response_header().await?;
        match upstream.response_header() {
            Some(r) if r.status.is_informational() && r.status != 101 => continue,
            Some(_) => return Ok(()),
            None => return Error::e_explain(InvalidHTTPHeader, "no response header"),
        }
    }
}

/// Serves on `listen` until killed.
pub fn serve(listen: SocketAddr, backend: SocketAddr) -> ! {
    super::bare::run(listen, |conf| Forwarder {
        peer: HttpPeer::new(backend, false, String::new()),
        connector: Connector::new(Some(ConnectorOptions::from_server_conf(conf))),
    })
}
