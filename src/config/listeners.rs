//! The listeners: the traffic and admin addresses and their TLS files, the request head's size,
//! worker threads and the upgrade socket.

use super::check::Checker;
use super::file;
use super::{ConfigError, DEFAULT_MAX_HEADER_BYTES, MAX_MAX_HEADER_BYTES};
use crate::tls::{CertPair, ListenerTls, Part};
use std::net::SocketAddr;
use std::path::PathBuf;

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9901";

impl Checker<'_> {
    /// `listen` and `admin_listen`, which must differ. aws-sigv4-proxy's flags have no admin
    /// listener unless `--admin-listen` names one (aws-sigv4-proxy has none: a second sidecar
    /// in the pod, or anything on 9901, must not keep it from starting).
    pub(super) fn listeners(
        &self,
        listen: Option<&str>,
        admin_listen: Option<&str>,
    ) -> Result<(SocketAddr, Option<SocketAddr>), ConfigError> {
        let listen = self.socket_addr("listen", listen, DEFAULT_LISTEN)?;
        if self.flags && admin_listen.is_none() {
            return Ok((listen, None));
        }
        let admin_listen = self.socket_addr("admin_listen", admin_listen, DEFAULT_ADMIN_LISTEN)?;
        if listen == admin_listen {
            return self.err("admin_listen", "must differ from listen");
        }
        Ok((listen, Some(admin_listen)))
    }

    /// `tls` or `admin_tls` (`key`): both files given, and the pair loads as it will serve.
    pub(super) fn listener_tls(
        &self,
        key: &str,
        raw: Option<file::ListenerTls>,
    ) -> Result<Option<CertPair>, ConfigError> {
        let Some(raw) = raw else {
            return Ok(None);
        };
        let file::ListenerTls {
            cert_file,
            key_file,
        } = raw;
        let path = |name: &str, value: Option<String>| match value {
            Some(p) if !p.trim().is_empty() => Ok(PathBuf::from(p)),
            _ => self.err(
                format!("{key}.{name}"),
                "is required: the path of a PEM file",
            ),
        };
        let files = ListenerTls {
            cert_file: path("cert_file", cert_file)?,
            key_file: path("key_file", key_file)?,
        };
        let loaded = files.load().or_else(|e| {
            let name = match e.part {
                Part::Cert => "cert_file",
                Part::Key => "key_file",
            };
            self.err(format!("{key}.{name}"), e.reason)
        })?;
        if loaded.expired() {
            tracing::warn!(
                key,
                cert_file = %files.cert_file.display(),
                "the certificate has expired: clients will refuse it until it is renewed"
            );
        }
        if let Some(mode) = world_readable(&files.key_file) {
            tracing::warn!(
                key,
                key_file = %files.key_file.display(),
                "the private key file can be read by every user of this machine (mode {mode:o}): \
                 make it readable by sigproxy's user only (chmod 600; in Kubernetes, the secret \
                 volume's defaultMode: 0400)"
            );
        }
        Ok(Some(CertPair { files, loaded }))
    }

    fn socket_addr(
        &self,
        key: &str,
        value: Option<&str>,
        default: &str,
    ) -> Result<SocketAddr, ConfigError> {
        self.listen_addr(key, value.unwrap_or(default), default)
    }

    /// An address to listen on: an IP address and a port other than 0, which would listen on
    /// a port the system picks and no client could be told.
    pub(super) fn listen_addr(
        &self,
        key: &str,
        value: &str,
        example: &str,
    ) -> Result<SocketAddr, ConfigError> {
        let addr: SocketAddr = value.parse().or_else(|_| {
            self.err(
                key,
                format!("'{value}' is not an IP address and port, e.g. {example}"),
            )
        })?;
        if addr.port() == 0 {
            return self.err(
                key,
                format!(
                    "'{value}': port 0 would listen on a port the system picks, which no client \
                     could be told; name a port, e.g. {example}"
                ),
            );
        }
        Ok(addr)
    }

    pub(super) fn max_header_bytes(&self, value: Option<u64>) -> Result<usize, ConfigError> {
        match value {
            None => Ok(DEFAULT_MAX_HEADER_BYTES),
            Some(n) if (1024..=MAX_MAX_HEADER_BYTES as u64).contains(&n) => Ok(n as usize),
            Some(n) => self.err(
                "max_header_bytes",
                format!("{n} is outside 1024 to {MAX_MAX_HEADER_BYTES}"),
            ),
        }
    }

    pub(super) fn threads(&self, value: Option<usize>) -> Result<usize, ConfigError> {
        let threads = value.unwrap_or(1);
        if !(1..=64).contains(&threads) {
            return self.err("threads", "must be between 1 and 64");
        }
        Ok(threads)
    }

    pub(super) fn upgrade_socket(
        &self,
        value: Option<String>,
        port: u16,
    ) -> Result<PathBuf, ConfigError> {
        match value {
            Some(path) if path.starts_with('/') => Ok(PathBuf::from(path)),
            Some(_) => self.err("upgrade_socket", "must be an absolute path"),
            None => Ok(default_upgrade_socket(port)),
        }
    }
}

/// `sigproxy-<port>.upgrade.sock` in a directory only sigproxy's user can write:
/// systemd's `$RUNTIME_DIRECTORY`, else `$XDG_RUNTIME_DIR/sigproxy`, else `/tmp/sigproxy-<uid>`
/// (created with mode 0700 at start; see `server.rs`).
fn default_upgrade_socket(port: u16) -> PathBuf {
    let file = format!("sigproxy-{port}.upgrade.sock");
    let env_dir = |name| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    if let Some(dir) = std::env::var("RUNTIME_DIRECTORY")
        .ok()
        .and_then(|d| d.split(':').next().map(PathBuf::from))
        .filter(|p| p.is_absolute())
    {
        return dir.join(file);
    }
    if let Some(dir) = env_dir("XDG_RUNTIME_DIR") {
        return dir.join("sigproxy").join(file);
    }
    let uid = std::fs::metadata("/proc/self").map_or(0, |m| {
        use std::os::unix::fs::MetadataExt;
        m.uid()
    });
    PathBuf::from(format!("/tmp/sigproxy-{uid}")).join(file)
}

/// The mode of `path` (followed through symlinks) when every user may read it.
fn world_readable(path: &std::path::Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o7777;
    (mode & 0o004 != 0).then_some(mode)
}
