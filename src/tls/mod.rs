//! HTTPS on sigproxy's own listeners (`tls` for `listen`, `admin_tls` for `admin_listen`).
//!
//! A listener's certificate and key are read from two PEM files at start (and by `--check`),
//! then polled (see [`watch`]): when either file's bytes change — cert-manager swaps a symlink
//! in a Kubernetes secret volume — the pair is read again and, if it is whole and matches, new
//! handshakes get it. Connections already open keep theirs. A pair that does not load (a
//! half-written rotation, a key for another certificate) leaves the old one serving, and is
//! logged and counted (`sigproxy_tls_certificate_reloads_total{result="failure"}`).
//!
//! The handshake itself happens in [`crate::conn`], inside the connection limits, with the
//! [`Acceptor`] built here: TLS 1.2 and 1.3 only, ALPN `http/1.1` only (the traffic loop
//! serves HTTP/1 and nothing else).

pub mod watch;

use crate::metrics::metrics;
use arc_swap::ArcSwap;
use pingora::listeners::tls::Acceptor;
use pingora::tls::sign::CertifiedKey;
use pingora::tls::{version, ClientHello, CryptoProvider, ResolvesServerCert, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `tls` / `admin_tls`: where a listener's certificate chain and private key are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerTls {
    /// PEM: the server certificate first, then any intermediates.
    pub cert_file: PathBuf,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1), unencrypted.
    pub key_file: PathBuf,
}

/// A listener's files and the pair they held when the configuration was checked.
#[derive(Debug, Clone)]
pub struct CertPair {
    pub files: ListenerTls,
    pub loaded: Loaded,
}

/// Which of the file's pair a loading error is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Cert,
    Key,
}

/// Why a certificate and key pair cannot serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub part: Part,
    pub reason: String,
}

/// A pair that loaded: what rustls serves, and what the metrics and logs say of it. Its
/// `Debug` shows neither file's bytes (one is the private key).
#[derive(Clone)]
pub struct Loaded {
    pub key: Arc<CertifiedKey>,
    /// The server certificate's notAfter, Unix time.
    pub not_after: i64,
    /// The server certificate's serial number, hex (for the logs).
    pub serial: String,
    /// The files' bytes, to tell a later change from none.
    contents: (Vec<u8>, Vec<u8>),
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("serial", &self.serial)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl Loaded {
    /// Past its notAfter.
    pub fn expired(&self) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.not_after < now
    }
}

impl ListenerTls {
    /// Reads and checks the pair: both files readable, at least one certificate that parses,
    /// one private key, and the key belongs to the first certificate.
    pub fn load(&self) -> Result<Loaded, LoadError> {
        let cert_err = |reason: String| LoadError {
            part: Part::Cert,
            reason,
        };
        let key_err = |reason: String| LoadError {
            part: Part::Key,
            reason,
        };
        let cert_pem = read(&self.cert_file).map_err(cert_err)?;
        let key_pem = read(&self.key_file).map_err(key_err)?;
        let cert_path = self.cert_file.display();
        let mut chain = Vec::new();
        for cert in CertificateDer::pem_slice_iter(&cert_pem) {
            let der = cert.map_err(|e| cert_err(format!("{cert_path} is not PEM: {e:?}")))?;
            if x509_parser::parse_x509_certificate(der.as_ref()).is_err() {
                return Err(cert_err(format!(
                    "{cert_path} holds a certificate that does not parse"
                )));
            }
            chain.push(der);
        }
        let Some(first) = chain.first() else {
            return Err(cert_err(format!("{cert_path} holds no PEM certificate")));
        };
        let (not_after, serial) = match x509_parser::parse_x509_certificate(first.as_ref()) {
            Ok((_, cert)) => (
                cert.validity().not_after.timestamp(),
                cert.raw_serial_as_string().replace(':', ""),
            ),
            Err(_) => return Err(cert_err(format!("{cert_path}: does not parse"))),
        };
        let key_path = self.key_file.display();
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
            key_err(format!(
                "{key_path} holds no unencrypted PEM private key (PKCS#8, PKCS#1 or SEC1)"
            ))
        })?;
        let signing = provider()
            .ok_or_else(|| key_err("no TLS crypto provider is installed".into()))?
            .key_provider
            .load_private_key(key)
            .map_err(|e| key_err(format!("{key_path}: the key cannot be used: {e}")))?;
        let key = CertifiedKey::new(chain, signing);
        if key.keys_match().is_err() {
            return Err(key_err(format!(
                "{key_path} is not the private key of the certificate in {cert_path}"
            )));
        }
        Ok(Loaded {
            key: Arc::new(key),
            not_after,
            serial,
            contents: (cert_pem, key_pem),
        })
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// rustls' process-wide crypto provider (pingora installs `ring`'s).
fn provider() -> Option<Arc<CryptoProvider>> {
    pingora::tls::install_default_crypto_provider();
    CryptoProvider::get_default().cloned()
}

/// One listener's certificate as handshakes see it: swapped whole when the files change.
#[derive(Debug)]
pub struct Certificate {
    /// `listen` or `admin_listen`: the metrics' `listener` label.
    pub listener: &'static str,
    pub files: ListenerTls,
    current: ArcSwap<Loaded>,
}

impl Certificate {
    /// Starts serving `loaded` (as `--check` read it) and sets the expiry metric.
    pub fn new(listener: &'static str, pair: &CertPair) -> Arc<Certificate> {
        let CertPair { files, loaded } = pair.clone();
        let m = metrics();
        for result in ["success", "failure"] {
            m.tls_certificate_reloads
                .with_label_values(&[listener, result]);
        }
        m.tls_certificate_expiry
            .with_label_values(&[listener])
            .set(loaded.not_after as f64);
        Arc::new(Certificate {
            listener,
            files,
            current: ArcSwap::from_pointee(loaded),
        })
    }

    /// The pair new handshakes get.
    pub fn current(&self) -> Arc<Loaded> {
        self.current.load_full()
    }

    fn replace(&self, loaded: Loaded) {
        metrics()
            .tls_certificate_expiry
            .with_label_values(&[self.listener])
            .set(loaded.not_after as f64);
        self.current.store(Arc::new(loaded));
    }

    /// The acceptor for this listener: TLS 1.2+, ALPN `http/1.1`, this certificate.
    pub fn acceptor(self: &Arc<Self>) -> Acceptor {
        pingora::tls::install_default_crypto_provider();
        let resolver: Arc<dyn ResolvesServerCert> = Arc::new(Resolver(self.clone()));
        let mut config =
            ServerConfig::builder_with_protocol_versions(&[&version::TLS12, &version::TLS13])
                .with_no_client_auth()
                .with_cert_resolver(resolver);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Acceptor::from_server_config(Arc::new(config))
    }
}

/// What rustls asks for a certificate during each handshake.
#[derive(Debug)]
struct Resolver(Arc<Certificate>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current.load().key.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> ListenerTls {
        ListenerTls {
            cert_file: dir.join("tls.crt"),
            key_file: dir.join("tls.key"),
        }
    }

    /// Stands in for a private key: only `Debug` is looked at.
    #[derive(Debug)]
    struct NoKey;

    impl pingora::tls::sign::SigningKey for NoKey {
        fn choose_scheme(
            &self,
            _offered: &[pingora::tls::SignatureScheme],
        ) -> Option<Box<dyn pingora::tls::sign::Signer>> {
            None
        }

        fn algorithm(&self) -> rustls::SignatureAlgorithm {
            rustls::SignatureAlgorithm::ED25519
        }
    }

    #[test]
    fn debug_shows_no_key_material() {
        let key_pem = b"-----BEGIN PRIVATE KEY-----\nTUFURVJJQUw=\n-----END PRIVATE KEY-----\n";
        let loaded = Loaded {
            key: Arc::new(CertifiedKey::new(vec![], Arc::new(NoKey))),
            not_after: 0,
            serial: "01ab".into(),
            contents: (b"cert".to_vec(), key_pem.to_vec()),
        };
        let shown = format!("{loaded:?}");
        assert!(shown.contains("01ab"), "{shown}");
        let bytes = format!("{:?}", &key_pem[..8]);
        let bytes = bytes.trim_end_matches(']');
        assert!(!shown.contains(bytes), "the key file's bytes: {shown}");
        assert!(!shown.contains("PRIVATE KEY"), "{shown}");
    }

    #[test]
    fn unreadable_and_empty_files_name_the_file_at_fault() {
        let dir = tempfile::tempdir().unwrap();
        let pair = files(dir.path());
        let e = pair.load().unwrap_err();
        assert_eq!(e.part, Part::Cert);
        assert!(e.reason.starts_with("cannot read "), "{}", e.reason);
        std::fs::write(&pair.cert_file, "not a certificate\n").unwrap();
        let e = pair.load().unwrap_err();
        assert_eq!(
            e.part,
            Part::Key,
            "the key is read before the certificate is parsed"
        );
        std::fs::write(&pair.key_file, "not a key\n").unwrap();
        let e = pair.load().unwrap_err();
        assert_eq!(e.part, Part::Cert);
        assert!(
            e.reason.contains("holds no PEM certificate"),
            "{}",
            e.reason
        );
    }
}
