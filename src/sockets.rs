//! The listening sockets: bound once, at start-up, and handed to pingora.
//!
//! pingora binds a service's listeners itself when the service starts, a moment after start-up.
//! Binding first only to check an address and then letting pingora bind it again left a window
//! in which another process could take the port: pingora then retried, gave up in its service
//! thread, and the admin port went on saying healthy with no traffic listener behind it. Here
//! each address is bound once, before any service starts, and pingora is given that very socket
//! (through the table of listening sockets it also fills on a SIGQUIT hand-over): the port is
//! sigproxy's, or sigproxy exits saying it cannot listen. On a `-u` hand-over the sockets come
//! from the running process; an address it did not hand over (a changed `listen`, a new
//! credential endpoint) is bound here like any other.

use crate::drain::Drain;
use async_trait::async_trait;
use pingora::server::{ListenFds, RuntimeOpts, ShutdownWatch};
use pingora::services::Service;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::os::fd::IntoRawFd;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A listening socket bound for the address pingora is told to listen on.
pub struct Bound {
    /// The address exactly as given to pingora's listener: the table is keyed by it.
    addr: String,
    socket: TcpListener,
}

/// Fails early, with a clear message, when `addr` cannot be listened on. The port is not kept:
/// this only spares an operator an MFA prompt before a start that cannot succeed.
pub fn check(what: &str, addr: SocketAddr) -> Result<(), String> {
    bind(what, addr).map(drop)
}

/// Binds `addr` and listens on it, unless this process listens on it already (a socket handed
/// over by `-u`: pingora finds it in its table). `what` names the config key in the error.
/// Where /proc cannot tell, an `upgrade` leaves the address to the handed-over sockets; one
/// not among them stops the start (see [`OnSockets`]).
pub fn bind_unless_held(
    what: &str,
    addr: SocketAddr,
    upgrade: bool,
) -> Result<Option<Bound>, String> {
    match held_here(addr) {
        Some(true) => Ok(None),
        None if upgrade => Ok(None),
        _ => bind(what, addr).map(Some),
    }
}

fn bind(what: &str, addr: SocketAddr) -> Result<Bound, String> {
    let fail = |e: std::io::Error| format!("cannot listen on {addr} ({what}): {e}");
    let socket = TcpListener::bind(addr).map_err(fail)?;
    // pingora's accept loop runs on tokio, which needs the socket non-blocking.
    socket.set_nonblocking(true).map_err(fail)?;
    Ok(Bound {
        addr: addr.to_string(),
        socket,
    })
}

/// Whether one of this process's descriptors is a socket listening on `addr`; `None` if /proc
/// cannot tell.
fn held_here(addr: SocketAddr) -> Option<bool> {
    // Not `==`: /proc prints no IPv6 scope id, which a configured address may have.
    listens("self", |local| {
        local.ip() == addr.ip() && local.port() == addr.port()
    })
}

/// Whether process `pid` (`"self"`: this one) holds a TCP socket listening on a local address
/// that `wanted` accepts, from the kernel's socket tables (/proc/PID/net/tcp{,6}) matched with
/// the process's descriptors; `None` if /proc cannot tell. A connect cannot tell: it reaches
/// whoever holds the port.
pub fn listens(pid: &str, wanted: impl Fn(SocketAddr) -> bool) -> Option<bool> {
    let tables: Vec<String> = ["tcp", "tcp6"]
        .iter()
        .filter_map(|t| std::fs::read_to_string(format!("/proc/{pid}/net/{t}")).ok())
        .collect();
    if tables.is_empty() {
        return None;
    }
    let inodes: Vec<String> = tables
        .iter()
        .flat_map(|table| table.lines().skip(1))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let listening = *fields.get(3)? == "0A";
            let inode = fields.get(9)?;
            (listening && wanted(parse_local(fields.get(1)?)?)).then(|| format!("socket:[{inode}]"))
        })
        .collect();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    Some(
        fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
            .any(|link| {
                inodes
                    .iter()
                    .any(|inode| link.as_os_str() == inode.as_str())
            }),
    )
}

/// A local address as /proc/net/tcp{,6} print it: the address's 32-bit words in hex, each in
/// the machine's byte order, a colon, the port in hex.
fn parse_local(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| {
        let hex = ip.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(hex, 16).ok()?.to_ne_bytes())
    };
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// A pingora service that listens on a socket bound beforehand instead of binding its own
/// (`None`: one handed over by `-u`), until the drain stops accepting (see `drain`) or, for a
/// service that does not drain, until pingora's shutdown.
pub struct OnSockets<S> {
    inner: S,
    socket: Option<Bound>,
    drain: Arc<Drain>,
    drains: bool,
    /// Accepting starts once this is true (or its sender is gone); see [`OnSockets::after`].
    after: Option<(watch::Receiver<bool>, &'static str)>,
}

impl<S> OnSockets<S> {
    /// `drains`: the listener stops when the drain says, not at pingora's shutdown. The socket
    /// is counted until the service puts it in pingora's table (see `Drain::socket_to_list`).
    pub fn new(inner: S, socket: Option<Bound>, drain: &Arc<Drain>, drains: bool) -> Self {
        if socket.is_some() {
            drain.socket_to_list();
        }
        OnSockets {
            inner,
            socket,
            drain: drain.clone(),
            drains,
            after: None,
        }
    }

    /// With `ready`: accepts only once it says true, or once SIGTERM starts the drain (what
    /// is queued then is served, not reset at the exit); connections wait in the listen queue
    /// meanwhile. The socket is in pingora's table from the start all the same, so that a
    /// SIGQUIT hand-over meanwhile sends it (pingora's own service dependencies would keep it
    /// out until then, and the next process gives up on the sockets after about 6 s). `what`
    /// is logged.
    pub fn after(mut self, ready: Option<watch::Receiver<bool>>, what: &'static str) -> Self {
        self.after = ready.map(|ready| (ready, what));
        self
    }
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
            if let Some(bound) = self.socket.take() {
                // The table owns the socket from here on: pingora listens on it, and a
                // SIGQUIT hand-over sends it to the next process.
                table.add(bound.addr, bound.socket.into_raw_fd());
                self.drain.socket_listed();
            }
            // pingora binds an address missing from the table itself, retrying and then
            // giving up in this thread while the admin port says healthy: stop instead.
            for addr in self.inner.listen_addresses().unwrap_or_default() {
                if table.get(&addr).is_none() {
                    eprintln!("sigproxy: cannot listen on {addr}: no socket was bound for it");
                    std::process::exit(1);
                }
            }
        }
        let shutdown = match self.drains {
            true => self.drain.listening_until(shutdown),
            false => shutdown,
        };
        if let Some((mut ready, what)) = self.after.take() {
            let name = self.inner.name().to_string();
            if !*ready.borrow() {
                tracing::info!("{name}: accepting once {what}");
            }
            // Set by SIGTERM's drain and by a SIGQUIT hand-over.
            let mut closing = self.drain.closing();
            tokio::select! {
                biased;
                _ = closing.wait_for(|closing| *closing) => {
                    if !self.drain.draining() {
                        // The next process holds the socket: what is queued waits for it.
                        tracing::info!("{name}: handed over before it accepted: not accepting");
                        return;
                    }
                    tracing::info!("{name}: SIGTERM: accepting for the drain")
                }
                // A sender gone (its service ended) waits for nothing more.
                _ = ready.wait_for(|ready| *ready) => tracing::info!("{name}: accepting"),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_addresses_parse() {
        let v4: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(parse_local("0100007F:1F90"), Some(v4));
        let v6: SocketAddr = "[::1]:443".parse().unwrap();
        assert_eq!(
            parse_local("00000000000000000000000001000000:01BB"),
            Some(v6)
        );
        assert_eq!(parse_local("0100007F"), None);
        assert_eq!(parse_local("zz:1F90"), None);
    }

    #[test]
    fn a_socket_this_process_listens_on_is_held_here() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        assert_eq!(held_here(addr), Some(true));
        let other: SocketAddr = format!("127.0.0.2:{}", addr.port()).parse().unwrap();
        assert_eq!(held_here(other), Some(false));
        drop(listener);
        assert_eq!(held_here(addr), Some(false));
    }
}
