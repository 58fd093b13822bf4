//! The upstream connections of sigproxy's own forwarder: pingora's transport pool (its TLS,
//! connect timeouts, keep-alive pool and idle reaping) with the HTTP/1.1 sessions on top made
//! here, so that a connection whose response body was read past pingora's session (see
//! [`super::relay`]) can go back to the pool like any other. Upstream peers speak HTTP/1.1
//! only (no ALPN `h2` is offered), as with pingora's own connector.

use pingora::connectors::{ConnectorOptions, TransportConnector};
use pingora::protocols::http::client::HttpSession;
use pingora::protocols::http::v1::client::HttpSession as Http1Client;
use pingora::protocols::Stream;
use pingora::upstreams::peer::{HttpPeer, Peer};

pub struct Pool {
    transport: TransportConnector,
}

impl Pool {
    pub fn new(options: ConnectorOptions) -> Self {
        Pool {
            transport: TransportConnector::new(Some(options)),
        }
    }

    /// An idle pooled connection to `peer` if there is one (`true`), else a new one.
    pub async fn session(&self, peer: &HttpPeer) -> pingora::Result<(HttpSession, bool)> {
        let (stream, reused) = self.transport.get_stream(peer).await?;
        let session = Http1Client::new_with_options(stream, peer);
        Ok((HttpSession::H1(session), reused))
    }

    /// Pools the connection again when its response was read to the end and both sides keep
    /// it alive; closes it otherwise.
    pub async fn release(&self, session: HttpSession, peer: &HttpPeer) {
        let HttpSession::H1(mut session) = session else {
            return;
        };
        session.respect_keepalive();
        if let Some(stream) = session.reuse().await {
            self.keep(stream, peer);
        }
    }

    /// Pools a connection whose response body was read here to its declared end, the upstream
    /// having agreed to keep it alive. pingora drops it instead if it holds unexpected bytes.
    pub fn keep(&self, stream: Stream, peer: &HttpPeer) {
        let key = peer.reuse_hash();
        self.transport
            .release_stream(stream, key, peer.options.idle_timeout);
    }
}
