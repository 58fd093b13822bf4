//! Whether a new process waits for the listening sockets on the upgrade socket.
//!
//! pingora's SIGQUIT sends the sockets to whatever listens there, tries again for about 5 s
//! when nothing does, and then stops listening all the same: a SIGQUIT with no new process
//! waiting (sent too early, or to the wrong process; the new one still at its MFA prompt, or
//! dead) left nothing listening. `drain::Signals` asks here first, and keeps serving if no one
//! comes.

use std::path::Path;

/// Whether a socket listens at `path`, from the kernel's table of Unix sockets; `None` where
/// that table cannot be read (the hand-over then goes ahead, as pingora's would).
pub fn someone_waits(path: &Path) -> Option<bool> {
    let table = std::fs::read_to_string("/proc/net/unix").ok()?;
    Some(table.lines().skip(1).any(|line| listens_at(line, path)))
}

/// One line of /proc/net/unix: `Num RefCount Protocol Flags Type St Inode Path`, the flags in
/// hex (`__SO_ACCEPTCON`, 0x10000: listening) and the path last, as bound.
fn listens_at(line: &str, path: &Path) -> bool {
    let listening = line
        .split_whitespace()
        .nth(3)
        .and_then(|flags| u32::from_str_radix(flags, 16).ok())
        .is_some_and(|flags| flags & 0x10000 != 0);
    let path = path.to_string_lossy();
    listening
        && line
            .strip_suffix(path.as_ref())
            .is_some_and(|rest| rest.ends_with(' '))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listening_socket_is_found_by_its_path() {
        let path = Path::new("/run/sigproxy/sigproxy-8080.upgrade.sock");
        let listening = "0000000000000000: 00000002 00000000 00010000 0001 01 123456 /run/sigproxy/sigproxy-8080.upgrade.sock";
        let connected = "0000000000000000: 00000003 00000000 00000000 0001 03 123457 /run/sigproxy/sigproxy-8080.upgrade.sock";
        let other = "0000000000000000: 00000002 00000000 00010000 0001 01 123458 /run/sigproxy/sigproxy-18080.upgrade.sock";
        assert!(listens_at(listening, path));
        assert!(!listens_at(connected, path));
        assert!(!listens_at(other, path));
        assert!(!listens_at(
            "0000000000000000: 00000002 00000000 00010000 0001 01 1",
            path
        ));
    }

    #[test]
    fn a_socket_bound_here_is_seen_waiting_and_gone_once_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upgrade.sock");
        assert_eq!(someone_waits(&path), Some(false));
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert_eq!(someone_waits(&path), Some(true));
        drop(listener);
        // The file stays; no one listens at it.
        assert!(path.exists());
        assert_eq!(someone_waits(&path), Some(false));
    }
}
