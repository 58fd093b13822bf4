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

/// Whether process `pid` holds a socket listening on TCP `port` (any local address), by
/// matching the listening sockets' inodes in /proc/net/tcp{,6} with the process's descriptors.
/// A connect alone cannot tell: it reaches whoever holds the port.
pub fn listened_on_by(pid: u32, port: u16) -> bool {
    let listening: Vec<String> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|table| {
            table
                .lines()
                .skip(1)
                .filter_map(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    let local_port = fields.get(1)?.rsplit(':').next()?;
                    let inode = fields.get(9)?;
                    let listens = *fields.get(3)? == "0A";
                    (listens && u16::from_str_radix(local_port, 16).ok()? == port)
                        .then(|| format!("socket:[{inode}]"))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .any(|link| listening.iter().any(|l| link.as_os_str() == l.as_str()))
}
