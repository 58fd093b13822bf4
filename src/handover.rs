//! Whether a new process waits for the listening sockets on the upgrade socket.
//!
//! pingora's SIGQUIT sends the sockets to whatever listens there, tries again for about 5 s
//! when nothing does, and then stops listening all the same: a SIGQUIT with no new process
//! waiting (sent too early, or to the wrong process; the new one still at its MFA prompt, or
//! dead) left nothing listening. `signals::Signals` asks here first, and keeps serving if no
//! one comes. A connection to the socket cannot ask: the new process would take it for the
//! transfer itself.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// Whether a new process waits at `path`: a socket file there owned by the owner of its
/// (private, checked at start-up) directory, and a socket listening at that path in the
/// kernel's table of this network namespace. `Err` says why the table could not be read.
pub fn someone_waits(path: &Path) -> Result<bool, String> {
    // /proc/self: a unit's ProcSubset=pid hides /proc/net.
    let table =
        std::fs::read("/proc/self/net/unix").map_err(|e| format!("/proc/self/net/unix: {e}"))?;
    let path_bytes = path.as_os_str().as_bytes();
    Ok(owned_socket_file(path)
        && table
            .split(|b| *b == b'\n')
            .skip(1)
            .any(|line| listens_at(line, path_bytes)))
}

/// A socket file at `path` owned by whoever owns its directory (a file whose listener is gone
/// was unlinked by pingora, or stays a stale file no socket in the table names).
fn owned_socket_file(path: &Path) -> bool {
    let (Ok(file), Some(Ok(dir))) = (
        std::fs::symlink_metadata(path),
        path.parent().map(std::fs::metadata),
    ) else {
        return false;
    };
    file.file_type().is_socket() && file.uid() == dir.uid()
}

/// One line of /proc/net/unix: `Num RefCount Protocol Flags Type St Inode Path`, the flags in
/// hex (`__SO_ACCEPTCON`, 0x10000: listening), then after one space the path exactly as bound
/// (an abstract name starts with `@`; a path may hold spaces).
fn listens_at(line: &[u8], path: &[u8]) -> bool {
    let mut rest = line;
    let mut flags = None;
    for field in 0..7 {
        rest = &rest[rest.iter().take_while(|b| **b == b' ').count()..];
        let end = rest.iter().position(|b| *b == b' ').unwrap_or(rest.len());
        if field == 3 {
            flags = std::str::from_utf8(&rest[..end])
                .ok()
                .and_then(|f| u32::from_str_radix(f, 16).ok());
        }
        rest = &rest[end..];
    }
    let listening = flags.is_some_and(|flags| flags & 0x10000 != 0);
    listening && rest.strip_prefix(b" ") == Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listening_socket_is_found_by_its_whole_path() {
        let path = b"/run/sigproxy/sigproxy-8080.upgrade.sock";
        let line = |flags: &str, st: &str, name: &str| {
            format!("0000000000000000: 00000002 00000000 {flags} 0001 {st}  12345 {name}")
        };
        let ours = "/run/sigproxy/sigproxy-8080.upgrade.sock";
        assert!(listens_at(line("00010000", "01", ours).as_bytes(), path));
        assert!(!listens_at(line("00000000", "03", ours).as_bytes(), path));
        let other = "/run/sigproxy/sigproxy-18080.upgrade.sock";
        assert!(!listens_at(line("00010000", "01", other).as_bytes(), path));
        // An abstract name that ends with the path, after a space.
        let abstract_name = format!("@x {ours}");
        assert!(!listens_at(
            line("00010000", "01", &abstract_name).as_bytes(),
            path
        ));
        assert!(!listens_at(line("00010000", "01", "").as_bytes(), path));
        let spaced = b"/run/a b/x y.sock";
        assert!(listens_at(
            line("00010000", "01", "/run/a b/x y.sock").as_bytes(),
            spaced
        ));
    }

    #[test]
    fn a_socket_bound_here_is_seen_waiting_and_gone_once_closed_or_unlinked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upgrade.sock");
        assert_eq!(someone_waits(&path), Ok(false));
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert_eq!(someone_waits(&path), Ok(true));
        // Still listening, but no longer at that path (pingora unlinks it when it gives up).
        std::fs::remove_file(&path).unwrap();
        assert_eq!(someone_waits(&path), Ok(false));
        drop(listener);
        // A stale file no one listens at.
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        drop(listener);
        assert!(path.exists());
        assert_eq!(someone_waits(&path), Ok(false));
    }
}
