//! The upstream connections of the requests sigproxy sends itself: pingora's HTTP/1 connector
//! (its pool, TLS and timeouts), a pooled connection looked for first.
//!
//! pingora's `get_http_session` is one future for both cases, and most of its ~9 KB is opening
//! a new connection (TCP, TLS). Awaited inline, it made every request's future that much larger,
//! and a request's future is moved whole more than once. Here the common case, a pooled
//! connection, takes a small future, and a new connection is opened in a boxed one.

use pingora::connectors::http::v1::Connector;
use pingora::connectors::ConnectorOptions;
use pingora::prelude::*;
use pingora::protocols::http::client::HttpSession;
use pingora::upstreams::peer::HttpPeer;

/// HTTP/1 connections to upstreams, pooled per peer.
pub struct Pool {
    connector: Connector,
}

impl Pool {
    pub fn new(options: ConnectorOptions) -> Pool {
        Pool {
            connector: Connector::new(Some(options)),
        }
    }

    /// A connection to `peer`, and whether it came from the pool.
    pub async fn session(&self, peer: &HttpPeer) -> Result<(HttpSession, bool)> {
        if let Some(pooled) = self.connector.reused_http_session(peer).await {
            return Ok((HttpSession::H1(pooled), true));
        }
        let (fresh, reused) = Box::pin(self.connector.get_http_session(peer)).await?;
        Ok((HttpSession::H1(fresh), reused))
    }

    /// Pools `upstream` again when its answer was read to the end and both sides keep it
    /// alive; closes it otherwise.
    pub async fn release(&self, upstream: HttpSession, peer: &HttpPeer) {
        if let HttpSession::H1(h1) = upstream {
            let idle = peer.options.idle_timeout;
            self.connector.release_http_session(h1, peer, idle).await;
        }
    }
}
