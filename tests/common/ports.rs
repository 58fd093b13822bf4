//! Loopback ports for the processes under test, and who holds them.

use std::net::TcpListener;

/// A port free right now on 127.0.0.1 (pingora needs a concrete port to listen on). Another
/// process may take it before the caller binds it: see [`listened_on_by`].
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether process `pid` holds a socket listening on TCP `port` (any local address).
pub fn listened_on_by(pid: u32, port: u16) -> bool {
    sigproxy::sockets::listens(&pid.to_string(), |local| local.port() == port).unwrap_or(false)
}
