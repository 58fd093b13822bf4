//! Where a route sends its requests: the upstream URL, its DNS resolution, TLS, and pingora
//! peers; [`edits`]: what a route does to request headers on the way; [`pool`]: the
//! connections of the requests sigproxy sends itself.
//!
//! pingora's `HttpPeer::new` resolves host names synchronously and panics when that fails, so
//! names are resolved here, asynchronously, and cached for a short while.

pub mod edits;
pub mod pool;

use crate::error::ProxyError;
use pingora::upstreams::peer::HttpPeer;
use pingora::utils::tls::WrappedX509;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a DNS answer is reused. AWS endpoints rotate addresses; a minute is a fair balance.
const DNS_TTL: Duration = Duration::from_secs(30);
/// How long an idle upstream connection is kept in the pool, unless the route says otherwise.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How a route's TLS connections to its upstream are checked (`tls:`).
#[derive(Debug, Clone, Default)]
pub struct UpstreamTls {
    /// Certificates to trust instead of the system's (`tls.ca_file`).
    pub ca: Option<Arc<[WrappedX509]>>,
    /// The name sent as SNI and checked in the certificate, instead of the upstream's host.
    pub server_name: Option<String>,
    /// Accept any certificate (`tls.insecure_skip_verify`): for tests and tunnels only.
    pub insecure_skip_verify: bool,
}

/// Reads PEM certificates (`tls.ca_file`); the error says what is wrong.
pub fn load_ca_file(path: &str) -> Result<Arc<[WrappedX509]>, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let mut certs = Vec::new();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let der = cert.map_err(|e| format!("{path} is not PEM certificates: {e:?}"))?;
        if x509_parser::parse_x509_certificate(der.as_ref()).is_err() {
            return Err(format!("{path} holds a certificate that does not parse"));
        }
        certs.push(WrappedX509::new(
            der.to_vec(),
            pingora::utils::tls::parse_x509,
        ));
    }
    if certs.is_empty() {
        return Err(format!("{path} holds no PEM certificate"));
    }
    Ok(certs.into())
}
/// An upstream base URL: `http[s]://host[:port][/base/path]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    tls: bool,
    host: String,
    port: u16,
    /// The `Host` header value: the host, with the port only when it is not the scheme's default.
    authority: String,
    /// A path prefix to put in front of every forwarded path, without a trailing `/`.
    base_path: String,
}

impl Upstream {
    /// Parses an upstream URL; the error says what is wrong with it.
    pub fn parse(url: &str) -> Result<Upstream, String> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("'{url}' is not a URL: {e}"))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            Some(other) => return Err(format!("scheme '{other}' is not http or https")),
            None => return Err(format!("'{url}' needs a scheme (https://...)")),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| format!("'{url}' has no host"))?;
        if authority.as_str().contains('@') {
            return Err("user information in the URL is not supported".into());
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("'{url}' has no host"));
        }
        let default_port = if tls { 443 } else { 80 };
        // `http::Uri` takes `host:abc` or `host:99999` and has no number for it: refused, or
        // the scheme's port would be used in its place.
        let port = match authority.as_str()[authority.host().len()..].strip_prefix(':') {
            None => default_port,
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("'{port}' is not a port (1-65535)"))?,
        };
        if uri.query().is_some() {
            return Err("an upstream URL cannot have a query string".into());
        }
        let base_path = uri.path().trim_end_matches('/').to_string();
        let authority = if port == default_port {
            authority.host().to_string()
        } else {
            format!("{}:{port}", authority.host())
        };
        Ok(Upstream {
            tls,
            host: host.to_ascii_lowercase(),
            port,
            authority,
            base_path,
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// The value to send as `Host` (and sign).
    pub fn authority(&self) -> &str {
        &self.authority
    }

    pub fn base_path(&self) -> &str {
        &self.base_path
    }

    pub fn tls(&self) -> bool {
        self.tls
    }

    /// The URL as it is used: scheme, `Host`, base path (`https://s3.eu-west-1.amazonaws.com`).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{}", self.authority, self.base_path)
    }
}

/// Makes `peer`'s connection serve one request: a pool group of its own, which no other
/// request asks for, and no idle time once released. pingora's proxy loop pools a connection
/// again after any whole answer; a body it streams to an upstream that may answer without
/// reading it (see `proxy::exchange`'s `Reuse`) must not leave that connection to anyone.
pub fn used_once(peer: &mut HttpPeer) {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let once = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // A route's group is a hash: this one meets it by chance only.
    peer.group_key = !once;
    peer.options.idle_timeout = Some(Duration::ZERO);
}

/// A hash of the certificates `tls` trusts instead of the system's (0 for none).
fn trust(tls: &UpstreamTls) -> u64 {
    use std::hash::{Hash, Hasher};
    let Some(ca) = &tls.ca else {
        return 0;
    };
    let mut hash = std::hash::DefaultHasher::new();
    for cert in ca.iter() {
        cert.borrow_raw_cert().hash(&mut hash);
    }
    hash.finish()
}

/// Resolves an upstream's host and builds pingora peers for it.
#[derive(Debug)]
pub struct PeerFactory {
    upstream: Upstream,
    connect_timeout: Duration,
    read_timeout: Duration,
    idle_timeout: Duration,
    tls: UpstreamTls,
    cache: Mutex<Option<(Instant, SocketAddr)>>,
    /// The upstream is an AWS endpoint (see [`PeerFactory::aws_front_end`]).
    aws: bool,
    /// The certificates `tls.ca_file` trusts, as a number (see [`PeerFactory::trust`]).
    trust: u64,
}

impl PeerFactory {
    pub fn new(
        upstream: Upstream,
        connect_timeout: Duration,
        read_timeout: Duration,
        idle_timeout: Duration,
        tls: UpstreamTls,
    ) -> Self {
        let literal = upstream
            .host
            .parse::<IpAddr>()
            .ok()
            .map(|ip| (Instant::now(), SocketAddr::new(ip, upstream.port)));
        // AWS's name is not enough: only its certificate, checked against the system's roots,
        // says the other end is AWS (not LocalStack, a hosts-file entry or a tunnel).
        let verified = upstream.tls
            && !tls.insecure_skip_verify
            && tls.ca.is_none()
            && tls.server_name.is_none();
        let aws = verified && crate::endpoints::resolve(&upstream.host).is_ok();
        PeerFactory {
            aws,
            trust: trust(&tls),
            upstream,
            connect_timeout,
            read_timeout,
            idle_timeout,
            tls,
            cache: Mutex::new(literal),
        }
    }

    pub fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    /// Whether the upstream is an AWS endpoint, whose front ends read (or discard) a request's
    /// whole body before they take the next request on a connection, or close it: an AWS name
    /// reached over TLS whose certificate is checked against the system's roots.
    pub fn aws_front_end(&self) -> bool {
        self.aws
    }

    /// What the route's `tls.ca_file` trusts, as a number: part of its pooled connections'
    /// group, since pingora's peer hash (address, name, verification, group) leaves the CA out.
    /// A reload that changes the CA must not leave requests on connections the old one checked.
    pub fn trust(&self) -> u64 {
        self.trust
    }

    pub fn read_timeout(&self) -> Duration {
        self.read_timeout
    }

    /// A peer for the next request, resolving the host name when the cached answer is stale.
    pub async fn peer(&self) -> Result<HttpPeer, ProxyError> {
        let addr = self.address().await?;
        let sni = self.tls.server_name.as_ref().unwrap_or(&self.upstream.host);
        let mut peer = HttpPeer::new(addr, self.upstream.tls, sni.clone());
        let options = &mut peer.options;
        if self.upstream.tls {
            options.ca = self.tls.ca.clone();
            options.verify_cert = !self.tls.insecure_skip_verify;
            options.verify_hostname = !self.tls.insecure_skip_verify;
        }
        options.connection_timeout = Some(self.connect_timeout);
        options.total_connection_timeout = Some(self.connect_timeout * 2);
        options.read_timeout = Some(self.read_timeout);
        options.write_timeout = Some(self.read_timeout);
        options.idle_timeout = Some(self.idle_timeout);
        Ok(peer)
    }

    async fn address(&self) -> Result<SocketAddr, ProxyError> {
        let is_literal = self.upstream.host.parse::<IpAddr>().is_ok();
        let cached = *self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, addr)) = cached {
            if is_literal || at.elapsed() < DNS_TTL {
                return Ok(addr);
            }
        }
        let lookup = tokio::time::timeout(
            self.connect_timeout,
            tokio::net::lookup_host((self.upstream.host.as_str(), self.upstream.port)),
        )
        .await;
        let fresh = match lookup {
            Ok(Ok(mut addrs)) => addrs.next(),
            Ok(Err(_)) | Err(_) => None,
        };
        match (fresh, cached) {
            (Some(addr), _) => {
                *self.cache.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((Instant::now(), addr));
                Ok(addr)
            }
            // A failed lookup keeps using the last good answer rather than failing requests.
            (None, Some((_, addr))) => Ok(addr),
            (None, None) => Err(ProxyError::UpstreamUnreachable {
                kind: "connect",
                detail: format!("cannot resolve upstream host '{}'", self.upstream.host),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lambda_url() {
        let u = Upstream::parse("https://abc123.lambda-url.us-east-1.on.aws").unwrap();
        assert!(u.tls());
        assert_eq!(u.host(), "abc123.lambda-url.us-east-1.on.aws");
        assert_eq!(u.authority(), "abc123.lambda-url.us-east-1.on.aws");
        assert_eq!(u.base_path(), "");
    }

    #[test]
    fn only_an_aws_name_over_checked_tls_counts_as_aws() {
        let factory = |url: &str, insecure: bool| {
            let tls = UpstreamTls {
                insecure_skip_verify: insecure,
                ..UpstreamTls::default()
            };
            let s = Duration::from_secs(1);
            PeerFactory::new(Upstream::parse(url).unwrap(), s, s, s, tls).aws_front_end()
        };
        assert!(factory("https://s3.us-east-1.amazonaws.com", false));
        assert!(factory("https://abc.lambda-url.us-east-1.on.aws", false));
        // LocalStack, a tunnel, a hosts-file entry: the name alone says nothing.
        assert!(!factory("http://s3.us-east-1.amazonaws.com", false));
        assert!(!factory("https://s3.us-east-1.amazonaws.com", true));
        assert!(!factory("https://api.example.com", false));
    }

    #[test]
    fn keeps_non_default_port_and_base_path() {
        let u = Upstream::parse("http://127.0.0.1:9000/base/").unwrap();
        assert!(!u.tls());
        assert_eq!(u.authority(), "127.0.0.1:9000");
        assert_eq!(u.base_path(), "/base");
        let u = Upstream::parse("https://example.com:443").unwrap();
        assert_eq!(u.authority(), "example.com");
    }

    #[test]
    fn rejects_what_it_cannot_use() {
        assert!(Upstream::parse("ftp://x").unwrap_err().contains("scheme"));
        assert!(Upstream::parse("example.com").is_err());
        assert!(Upstream::parse("https://x/?a=b")
            .unwrap_err()
            .contains("query"));
        assert!(Upstream::parse("https://u:p@x/")
            .unwrap_err()
            .contains("user"));
        // Once taken as the scheme's port (80) in silence.
        for bad in ["abc", "99999", "8080x", "0"] {
            let e = Upstream::parse(&format!("http://127.0.0.1:{bad}")).unwrap_err();
            assert!(e.contains(&format!("'{bad}' is not a port")), "{bad}: {e}");
        }
    }
}
