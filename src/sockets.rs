//! The listening sockets: bound once, at start-up, and handed to pingora.
//!
//! pingora binds a service's listeners itself when the service starts, a moment after start-up.
//! Binding first only to check an address and then letting pingora bind it again left a window
//! in which another process could take the port: pingora then retried, gave up in its service
//! thread, and the admin port went on saying healthy with no traffic listener behind it. Here
//! each address is bound once, before anything starts, and pingora is given that very socket
//! (through the table of listening sockets it also fills on a SIGQUIT hand-over): the port is
//! sigproxy's from the first check on, or sigproxy does not start.

use async_trait::async_trait;
use pingora::server::{ListenFds, RuntimeOpts, ShutdownWatch};
use pingora::services::Service;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::IntoRawFd;
use std::time::Duration;

/// A listening socket bound for the address pingora is told to listen on.
pub struct Bound {
    /// The address exactly as given to pingora's listener: the table is keyed by it.
    addr: String,
    socket: TcpListener,
}

/// Binds `addr` and listens on it; `what` names the config key in the error.
pub fn bind(what: &str, addr: SocketAddr) -> Result<Bound, String> {
    let fail = |e: std::io::Error| format!("cannot listen on {addr} ({what}): {e}");
    let socket = TcpListener::bind(addr).map_err(fail)?;
    // pingora's accept loop runs on tokio, which needs the socket non-blocking.
    socket.set_nonblocking(true).map_err(fail)?;
    Ok(Bound {
        addr: addr.to_string(),
        socket,
    })
}

/// A pingora service that listens on sockets bound beforehand instead of binding its own.
pub struct OnSockets<S> {
    pub inner: S,
    pub sockets: Vec<Bound>,
}

#[async_trait]
impl<S: Service> Service for OnSockets<S> {
    async fn start_service(
        &mut self,
        fds: Option<ListenFds>,
        shutdown: ShutdownWatch,
        listeners_per_fd: usize,
    ) {
        if let Some(table) = &fds {
            let mut table = table.lock();
            for bound in self.sockets.drain(..) {
                // The table owns the socket from here on: pingora listens on it, and a
                // SIGQUIT hand-over sends it to the next process.
                table.add(bound.addr, bound.socket.into_raw_fd());
            }
        }
        self.inner
            .start_service(fds, shutdown, listeners_per_fd)
            .await
    }

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn threads(&self) -> Option<usize> {
        self.inner.threads()
    }

    fn runtime_opts_override(&self, global: &RuntimeOpts) -> Option<RuntimeOpts> {
        self.inner.runtime_opts_override(global)
    }

    fn on_startup_delay(&self, time_waited: Duration) {
        self.inner.on_startup_delay(time_waited)
    }

    fn listen_addresses(&self) -> Option<Vec<String>> {
        self.inner.listen_addresses()
    }
}
