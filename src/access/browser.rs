//! Browsers are strangers: a web page the user opens can make the browser send requests to
//! `127.0.0.1:8080` (CSRF), and read the answers if its own host name is re-pointed there (DNS
//! rebinding). Neither can forge the headers that give them away:
//!
//! - `Host` carries the name the browser thinks it talks to. sigproxy serves only loopback
//!   names and addresses, the hosts its routes match, and `access.allowed_hosts`; a rebound
//!   `attacker.example` is none of these (`421`).
//! - `Origin` (sent on every cross-origin request and on same-origin writes) and
//!   `Sec-Fetch-Site` (sent by current browsers on every request) mark a page's request. It is
//!   refused (`403`) unless `access.allowed_origins` lists the page's origin; for a listed origin
//!   sigproxy answers CORS itself, so an upstream's own `Access-Control-*` never reaches the
//!   browser.
//!
//! `curl`, SDKs and server-side apps send neither header and are not affected.

use super::Denied;
use crate::access::FORWARDED_METHODS;
use http::{HeaderMap, HeaderValue, Method};
use pingora::http::ResponseHeader;
use std::net::IpAddr;

/// Looked up by a typed name: no parsing of the name on every request.
static SEC_FETCH_SITE: http::HeaderName = http::HeaderName::from_static("sec-fetch-site");

/// The host names and origins a listener serves besides loopback.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrowserPolicy {
    /// Lower case, without port or trailing dot: `access.allowed_hosts` and the routes'
    /// `match.host`.
    pub hosts: Vec<String>,
    /// `scheme://host[:port]`, lower case: `access.allowed_origins`.
    pub origins: Vec<String>,
    /// A route takes its upstream from `Host` (`upstream_from_host`): any AWS endpoint name
    /// ([`crate::endpoints::resolve`]) is a host it serves. A page cannot make its `Host` an
    /// AWS name unless it is served from that name (see the README's threat model).
    pub aws_endpoints: bool,
}

/// What a browser's request turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageRequest {
    /// No sign of a web page: curl, an SDK, a server-side app (or a page's same-origin read).
    None,
    /// A request from a listed origin: served, and answered with CORS headers for it.
    Cors(HeaderValue),
    /// A CORS preflight from a listed origin: sigproxy answers it; nothing goes upstream.
    Preflight(HeaderValue),
}

impl BrowserPolicy {
    /// Whether the request's host (from `Host`, or the absolute-form target) is one this
    /// listener serves. Without a host at all (HTTP/1.0), it cannot be a browser's request.
    pub fn check_host(&self, host: Option<&str>) -> Result<(), Denied> {
        let Some(host) = host else {
            return Ok(());
        };
        if self.serves(host, self.aws_endpoints) {
            Ok(())
        } else {
            Err(Denied::Host)
        }
    }

    /// Whether the request comes from a web page, and if so whether its origin is listed.
    pub fn check_page(&self, method: &Method, headers: &HeaderMap) -> Result<PageRequest, Denied> {
        if headers.get_all(http::header::ORIGIN).iter().count() > 1 {
            // No browser sends two; which one would count is anybody's guess.
            return Err(Denied::Origin);
        }
        if headers.get_all(&SEC_FETCH_SITE).iter().count() > 1 {
            // Nor two of these: the first might say `none` and the second `cross-site`.
            return Err(Denied::Origin);
        }
        let origin = headers.get(http::header::ORIGIN);
        let fetch_site = headers
            .get(&SEC_FETCH_SITE)
            .map(|v| v.as_bytes().to_ascii_lowercase());
        let from_page = origin.is_some()
            || fetch_site
                .as_deref()
                .is_some_and(|site| site != b"none" && site != b"same-origin");
        if !from_page {
            return Ok(PageRequest::None);
        }
        let Some(origin) = origin.filter(|o| self.lists(o)) else {
            return Err(Denied::Origin);
        };
        if *method == Method::OPTIONS
            && headers.contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            Ok(PageRequest::Preflight(origin.clone()))
        } else {
            Ok(PageRequest::Cors(origin.clone()))
        }
    }

    /// The admin port's check: no web page at all, and a `Host` that is loopback, listed, or
    /// an IP address (what the kubelet's probes and Prometheus send; a rebinding page's `Host`
    /// is always its own name).
    pub fn check_admin(&self, host: Option<&str>, headers: &HeaderMap) -> Result<(), Denied> {
        let is_address = host.is_some_and(|h| host_name(h).parse::<IpAddr>().is_ok());
        // AWS names are the traffic port's upstreams, never the admin port's.
        if !is_address && !host.is_none_or(|h| self.serves(h, false)) {
            return Err(Denied::Host);
        }
        match BrowserPolicy::default().check_page(&Method::GET, headers)? {
            PageRequest::None => Ok(()),
            _ => Err(Denied::Origin),
        }
    }

    /// Whether `host` is loopback, listed, or (with `aws`) an AWS endpoint name.
    fn serves(&self, host: &str, aws: bool) -> bool {
        let name = host_name(host);
        is_loopback_name(&name)
            || self.hosts.contains(&name)
            || (aws && crate::endpoints::resolve(&name).is_ok())
    }

    fn lists(&self, origin: &HeaderValue) -> bool {
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        let origin = origin.trim().to_ascii_lowercase();
        self.origins.contains(&origin)
    }
}

/// `host[:port]`, `[v6][:port]` → the lower-case name or address, without a trailing dot.
pub fn host_name(host: &str) -> String {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((h, after)) if after.is_empty() || after.starts_with(':') => h,
            // Not `[v6]` or `[v6]:port` (`[::1].evil.example`): taken whole, it matches nothing.
            _ => host,
        }
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    name.to_ascii_lowercase()
}

/// `localhost`, `*.localhost` (RFC 6761: always loopback), 127.0.0.0/8 and ::1.
pub fn is_loopback_name(name: &str) -> bool {
    name == "localhost"
        || name.ends_with(".localhost")
        || name.parse::<IpAddr>().is_ok_and(super::is_loopback)
}

/// The answer to a preflight from a listed origin: which methods and headers the page may use.
pub fn preflight_response(origin: &HeaderValue, request: &HeaderMap) -> ResponseHeader {
    let mut resp = ResponseHeader::build(204, Some(8)).expect("valid status");
    add_cors(&mut resp, origin);
    let methods = FORWARDED_METHODS.join(", ");
    let _ = resp.insert_header("access-control-allow-methods", methods);
    // The headers the page asked for are a comma-separated token list; echo it when it is one.
    if let Some(asked) = request
        .get("access-control-request-headers")
        .filter(|v| is_token_list(v.as_bytes()))
    {
        let _ = resp.insert_header("access-control-allow-headers", asked.clone());
    }
    if request
        .get("access-control-request-private-network")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"))
    {
        let _ = resp.insert_header("access-control-allow-private-network", "true");
    }
    let _ = resp.insert_header("access-control-max-age", "600");
    let _ = resp.insert_header("content-length", "0");
    resp
}

fn is_token_list(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b" ,\t!#$%&'*+-.^_`|~".contains(&b))
}

/// Drops every `Access-Control-*` header an upstream sent: only sigproxy decides CORS.
fn strip_cors(resp: &mut ResponseHeader) {
    let doomed: Vec<_> = resp
        .headers
        .keys()
        .filter(|name| name.as_str().starts_with("access-control-"))
        .cloned()
        .collect();
    for name in &doomed {
        resp.remove_header(name);
    }
}

/// What every response to a client gets: no upstream `Access-Control-*`, and for a listed
/// origin's request, sigproxy's own.
pub fn answer_cors(resp: &mut ResponseHeader, page: &PageRequest) {
    strip_cors(resp);
    if let PageRequest::Cors(origin) | PageRequest::Preflight(origin) = page {
        add_cors(resp, origin);
    }
}

/// Lets a listed origin's page read the response.
pub fn add_cors(resp: &mut ResponseHeader, origin: &HeaderValue) {
    let _ = resp.insert_header("access-control-allow-origin", origin.clone());
    let _ = resp.insert_header("access-control-expose-headers", "*");
    let _ = resp.append_header("vary", "Origin");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BrowserPolicy {
        BrowserPolicy {
            hosts: vec!["sigproxy.tools.svc".into(), "orders.internal".into()],
            aws_endpoints: false,
            origins: vec!["https://app.example.com".into()],
        }
    }

    #[test]
    fn only_loopback_and_listed_hosts_are_served() {
        let p = policy();
        for ok in [
            "localhost",
            "LOCALHOST:8080",
            "localhost.",
            "127.0.0.1:8080",
            "127.9.9.9",
            "[::1]:8080",
            "[::ffff:127.0.0.1]",
            "api.localhost:8080",
            "sigproxy.tools.svc:8080",
            "Orders.Internal",
        ] {
            assert_eq!(p.check_host(Some(ok)), Ok(()), "{ok}");
        }
        for bad in [
            "attacker.example:8080",
            "localhost.attacker.example",
            "127.0.0.1.nip.io",
            "10.0.0.1",
            "0.0.0.0",
            "[::]",
            "",
            "sigproxy.tools.svc.evil",
        ] {
            assert_eq!(p.check_host(Some(bad)), Err(Denied::Host), "{bad}");
        }
        assert_eq!(p.check_host(None), Ok(()));
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn pages_are_refused_unless_their_origin_is_listed() {
        let p = policy();
        let get = Method::GET;
        assert_eq!(p.check_page(&get, &headers(&[])), Ok(PageRequest::None));
        let same = headers(&[("sec-fetch-site", "same-origin")]);
        assert_eq!(p.check_page(&get, &same), Ok(PageRequest::None));
        let typed = headers(&[("sec-fetch-site", "none")]);
        assert_eq!(p.check_page(&get, &typed), Ok(PageRequest::None));
        for bad in [
            headers(&[("origin", "http://attacker.example")]),
            headers(&[("origin", "null")]),
            headers(&[("sec-fetch-site", "cross-site")]),
            headers(&[("sec-fetch-site", "same-site")]),
            headers(&[("origin", "https://app.example.com.evil")]),
            headers(&[
                ("origin", "http://attacker.example"),
                ("sec-fetch-site", "same-origin"),
            ]),
        ] {
            assert_eq!(p.check_page(&get, &bad), Err(Denied::Origin), "{bad:?}");
        }
        let twice = headers(&[
            ("origin", "https://app.example.com"),
            ("origin", "http://attacker.example"),
        ]);
        assert_eq!(p.check_page(&get, &twice), Err(Denied::Origin));
        let two_sites = headers(&[("sec-fetch-site", "none"), ("sec-fetch-site", "cross-site")]);
        assert_eq!(p.check_page(&get, &two_sites), Err(Denied::Origin));
        let listed = headers(&[
            ("origin", "https://APP.example.com"),
            ("sec-fetch-site", "cross-site"),
        ]);
        assert!(matches!(
            p.check_page(&Method::POST, &listed),
            Ok(PageRequest::Cors(_))
        ));
        // A cross-site request from a listed page without Origin (a no-cors GET) is refused.
        let no_origin = headers(&[("sec-fetch-site", "cross-site")]);
        assert_eq!(p.check_page(&get, &no_origin), Err(Denied::Origin));
        let preflight = headers(&[
            ("origin", "https://app.example.com"),
            ("access-control-request-method", "PUT"),
        ]);
        assert!(matches!(
            p.check_page(&Method::OPTIONS, &preflight),
            Ok(PageRequest::Preflight(_))
        ));
    }

    #[test]
    fn the_preflight_answer_names_the_origin_and_echoes_only_token_lists() {
        let origin = HeaderValue::from_static("https://app.example.com");
        let asked = headers(&[
            ("access-control-request-method", "PUT"),
            (
                "access-control-request-headers",
                "content-type, x-amz-meta-a",
            ),
        ]);
        let resp = preflight_response(&origin, &asked);
        assert_eq!(resp.status.as_u16(), 204);
        let h = |n| resp.headers.get(n).map(|v| v.to_str().unwrap().to_string());
        assert_eq!(
            h("access-control-allow-origin").as_deref(),
            Some("https://app.example.com")
        );
        assert_eq!(
            h("access-control-allow-headers").as_deref(),
            Some("content-type, x-amz-meta-a")
        );
        assert_eq!(h("vary").as_deref(), Some("Origin"));
        let odd = headers(&[("access-control-request-headers", "a\"b")]);
        assert!(preflight_response(&origin, &odd)
            .headers
            .get("access-control-allow-headers")
            .is_none());
    }

    #[test]
    fn upstream_cors_headers_are_dropped() {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.insert_header("Access-Control-Allow-Origin", "*")
            .unwrap();
        resp.insert_header("Access-Control-Allow-Credentials", "true")
            .unwrap();
        resp.insert_header("etag", "\"x\"").unwrap();
        strip_cors(&mut resp);
        assert_eq!(resp.headers.len(), 1);
    }

    #[test]
    fn the_admin_port_serves_probes_and_scrapers_but_no_page() {
        let p = policy();
        assert_eq!(p.check_admin(Some("10.1.2.3:9901"), &headers(&[])), Ok(()));
        assert_eq!(p.check_admin(Some("[fd00::1]:9901"), &headers(&[])), Ok(()));
        assert_eq!(p.check_admin(Some("localhost:9901"), &headers(&[])), Ok(()));
        assert_eq!(p.check_admin(None, &headers(&[])), Ok(()));
        assert_eq!(
            p.check_admin(Some("attacker.example:9901"), &headers(&[])),
            Err(Denied::Host)
        );
        let page = headers(&[("origin", "https://app.example.com")]);
        assert_eq!(
            p.check_admin(Some("127.0.0.1:9901"), &page),
            Err(Denied::Origin),
            "not even a listed origin: the admin port has no CORS"
        );
    }

    #[test]
    fn host_names_lose_port_case_and_trailing_dot() {
        assert_eq!(host_name("A.b.:80"), "a.b");
        assert_eq!(host_name("[::1]:8080"), "::1");
        assert_eq!(host_name("[::1]"), "::1");
        assert_eq!(host_name("[::1].evil.example"), "[::1].evil.example");
        assert_eq!(host_name("[::1"), "[::1");
        assert_eq!(host_name("h"), "h");
    }
}
