//! "bare pingora 0.9": the cheapest HTTP proxy pingora 0.9 makes, on sigproxy's server
//! settings. Its CPU per request is what any proxy built on pingora 0.9 pays, before any work
//! of its own (routes, checks, signing, access log, metrics).
//!
//! What is mirrored from sigproxy (`src/server.rs`, `src/proxy/mod.rs`, `src/main.rs`), because
//! each changes the cost of a request:
//! - one worker thread (`threads: 1`) on a per-thread runtime (`work_stealing: false`);
//! - pingora's default upstream keep-alive pool (`upstream_keepalive_pool_size`: 128), which
//!   sigproxy keeps too;
//! - the plain-HTTP listener without pingora's 64 KiB read buffer in front of the socket
//!   (`L4BufferSettings::read(0)`), which saves a copy of every body byte;
//! - no downstream modules (pingora's default adds a switched-off compression module that is
//!   still consulted per request);
//! - mimalloc as the global allocator: set in `load.rs` for the whole bench binary.
//!
//! What is not: sigproxy's own connection loop (`conn`), its checks, the access log and metrics,
//! and its upstream timeouts (connect, read, write, idle: each read and write then arms a
//! timer). Those are sigproxy's costs, which this baseline leaves out on purpose.

use async_trait::async_trait;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::modules::http::HttpModules;
use pingora::prelude::*;
use pingora::server::configuration::{Opt, ServerConf};
use std::net::SocketAddr;
use std::sync::Arc;

/// Forwards every request to one plain-HTTP backend.
struct Bare {
    backend: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) {}

    /// As sigproxy: no downstream modules.
    fn init_downstream_modules(&self, _: &mut HttpModules) {}

    /// The only phase with work in it: the backend, over plain HTTP/1.1, no SNI.
    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.backend, false, String::new())))
    }
}

/// Serves on `listen` until killed.
pub fn serve(listen: SocketAddr, backend: SocketAddr) -> ! {
    run(listen, |_| Bare { backend })
}

/// Serves the `ProxyHttp` that `proxy` makes (given the server's settings) on `listen`, on
/// sigproxy's server settings (above), until killed. Shared with the `forwarder` baseline.
pub fn run<P>(listen: SocketAddr, proxy: impl FnOnce(&Arc<ServerConf>) -> P) -> !
where
    P: ProxyHttp + Send + Sync + 'static,
    P::CTX: Send + Sync,
{
    let conf = ServerConf {
        threads: 1,
        work_stealing: false,
        // A SIGTERM (scripts/callgrind-requests ends it so) stops it within seconds, as
        // sigproxy with the benchmark's `shutdown_grace: 1s`: pingora's default waits 300 s.
        grace_period_seconds: Some(1),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(Opt::default(), conf);
    server.bootstrap();
    let proxy = proxy(&server.configuration);
    let mut service = pingora::proxy::http_proxy_service(&server.configuration, proxy);
    service.add_listener(
        ListenerConfig::tcp(listen.to_string()).l4_buffer(L4BufferSettings::default().read(0)),
    );
    server.add_service(service);
    server.run_forever()
}
