//! Who may use the proxy, and for what. Anything that reaches the traffic port acts with the
//! routes' AWS roles, so these checks run before a request is routed or signed:
//!
//! - [`ClientAccess`]: the client's address must fall in `access.allowed_clients`, and with
//!   `access.bearer_token_file` / `bearer_token_env` it must send `Authorization: Bearer <token>`
//!   (compared in constant time; the header never goes upstream);
//! - [`AllowRule`]: a route's `allow` list of methods and path patterns. Patterns match the path
//!   as it is sent upstream, percent-decoded (and, outside S3, with dot segments resolved), so no
//!   spelling of a path reaches more than the rule grants.

pub mod browser;

use browser::BrowserPolicy;
use http::Method;
use ipnet::IpNet;
use sha2::{Digest, Sha256};
use std::fmt;
use std::net::IpAddr;
use subtle::ConstantTimeEq;

/// Why a request was refused; the `reason` label of `sigproxy_denied_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// The client's address is outside `access.allowed_clients`.
    ClientAddress,
    /// No bearer token, or the wrong one.
    BearerToken,
    /// The route's `allow` rules do not grant this method.
    Method,
    /// The route's `allow` rules grant the method, but not for this path.
    Path,
    /// The `Host` is not loopback, a route's `match.host` or in `access.allowed_hosts`.
    Host,
    /// A web page's request (`Origin`, `Sec-Fetch-Site`) from an origin not listed in
    /// `access.allowed_origins`.
    Origin,
}

impl Denied {
    pub fn label(self) -> &'static str {
        match self {
            Denied::ClientAddress => "client_address",
            Denied::BearerToken => "bearer_token",
            Denied::Method => "method",
            Denied::Path => "path",
            Denied::Host => "host",
            Denied::Origin => "origin",
        }
    }
}

/// A shared secret clients present as `Authorization: Bearer <token>`.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken {
    digest: [u8; 32],
}

impl BearerToken {
    /// The shortest token accepted: anything shorter is guessable.
    pub const MIN_LEN: usize = 16;

    pub fn new(token: &str) -> BearerToken {
        BearerToken {
            digest: Sha256::digest(token.as_bytes()).into(),
        }
    }

    /// Whether an `Authorization` header value carries this token. Digests of equal length are
    /// compared in constant time, so neither the token's bytes nor its length leak by timing.
    pub fn accepts(&self, authorization: Option<&[u8]>) -> bool {
        let Some(value) = authorization else {
            return false;
        };
        let Some(presented) = value
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case(b"bearer "))
            .map(|_| &value[7..])
        else {
            return false;
        };
        let digest: [u8; 32] = Sha256::digest(presented.trim_ascii()).into();
        digest.ct_eq(&self.digest).into()
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(** redacted **)")
    }
}

/// Listener-wide checks on who the client is.
#[derive(Debug, Clone, Default)]
pub struct ClientAccess {
    /// Empty: every client that can reach the port.
    pub allowed_clients: Vec<IpNet>,
    pub bearer_token: Option<BearerToken>,
    /// Which hosts and web origins are served (see [`browser`]).
    pub browser: BrowserPolicy,
}

impl ClientAccess {
    /// Whether the client's address (when known) is allowed.
    pub fn check_client(&self, client: Option<IpAddr>) -> Result<(), Denied> {
        if self.allowed_clients.is_empty() {
            return Ok(());
        }
        // An IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d.
        let allowed = client
            .map(|ip| ip.to_canonical())
            .is_some_and(|ip| self.allowed_clients.iter().any(|net| net.contains(&ip)));
        if allowed {
            Ok(())
        } else {
            Err(Denied::ClientAddress)
        }
    }

    /// Whether the request carries the bearer token, when one is required.
    pub fn check_token(&self, authorization: Option<&[u8]>) -> Result<(), Denied> {
        match &self.bearer_token {
            Some(token) if !token.accepts(authorization) => Err(Denied::BearerToken),
            _ => Ok(()),
        }
    }
}

/// One entry of a route's `allow` list: these methods, on paths matching these patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowRule {
    /// `None`: any method.
    pub methods: Option<Vec<Method>>,
    /// `None`: any path.
    pub paths: Option<Vec<PathPattern>>,
}

/// Checks a request against a route's rules; an empty list allows everything.
///
/// `path` is the upstream path as policy sees it (see [`policy_path`]).
pub fn check_rules(rules: &[AllowRule], method: &Method, path: &[u8]) -> Result<(), Denied> {
    if rules.is_empty() {
        return Ok(());
    }
    let mut method_granted = false;
    for rule in rules {
        if rule.methods.as_ref().is_some_and(|m| !m.contains(method)) {
            continue;
        }
        method_granted = true;
        match &rule.paths {
            None => return Ok(()),
            Some(patterns) if patterns.iter().any(|p| p.matches(path)) => return Ok(()),
            Some(_) => {}
        }
    }
    Err(if method_granted {
        Denied::Path
    } else {
        Denied::Method
    })
}

/// A path pattern: `*` matches within one segment (no `/`), `**` matches anything, including
/// `/`; neither matches nothing. Everything else matches itself. `/bucket/reports/**` is
/// everything under that prefix, but not `/bucket/reports/` itself.
#[derive(Clone, PartialEq, Eq)]
pub struct PathPattern {
    text: String,
}

impl PathPattern {
    pub fn parse(text: &str) -> Result<PathPattern, String> {
        if !text.starts_with('/') {
            return Err(format!("'{text}' must start with '/'"));
        }
        if text.contains("***") {
            return Err(format!("'{text}': use * (one segment) or ** (any depth)"));
        }
        Ok(PathPattern {
            text: text.to_string(),
        })
    }

    pub fn matches(&self, path: &[u8]) -> bool {
        glob(self.text.as_bytes(), path)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

/// Iterative glob match, linear in practice and never exponential. A star matches at least
/// one byte: `/bucket/*` is not the bucket itself (`/bucket/`). On a mismatch the last single
/// `*` swallows one more byte if that byte is not `/`; failing that, the last `**` does (and
/// whatever followed it is matched afresh).
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // For the last `*` and the last `**`: the pattern index after it, and where in the text
    // its match ends.
    let mut single: Option<(usize, usize)> = None;
    let mut double: Option<(usize, usize)> = None;
    loop {
        if p < pattern.len() && pattern[p] == b'*' {
            let is_double = pattern.get(p + 1) == Some(&b'*');
            if t < text.len() && (is_double || text[t] != b'/') {
                if is_double {
                    p += 2;
                    double = Some((p, t + 1));
                    single = None;
                } else {
                    p += 1;
                    single = Some((p, t + 1));
                }
                t += 1;
                continue;
            }
        } else if p < pattern.len() && t < text.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
            continue;
        } else if p == pattern.len() && t == text.len() {
            return true;
        }
        if let Some((after, end)) = single.filter(|&(_, end)| end < text.len() && text[end] != b'/')
        {
            single = Some((after, end + 1));
            p = after;
            t = end + 1;
        } else if let Some((after, end)) = double.filter(|&(_, end)| end < text.len()) {
            single = None;
            double = Some((after, end + 1));
            p = after;
            t = end + 1;
        } else {
            return false;
        }
    }
}

/// The path a policy is checked against: the upstream target's path, percent-decoded, as the
/// upstream will understand it; `None` when that is ambiguous, and then no rule can grant it.
///
/// For S3 (`normalize: false`) keys are literal: the decoded path is exactly the key S3 uses.
/// For every other service the target has been normalised already ([`crate::target`] resolves
/// dot segments, escaped dots included); a segment that still decodes to something with a
/// `/` or `\` in it (`..%2Fsecret`) could be read as several segments upstream, so it is
/// refused rather than guessed at.
pub fn policy_path(target: &str, normalize: bool) -> Option<Vec<u8>> {
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    if !normalize {
        return Some(percent_encoding::percent_decode_str(path).collect());
    }
    let mut out = Vec::with_capacity(path.len());
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        let decoded: Vec<u8> = percent_encoding::percent_decode_str(segment).collect();
        if decoded.iter().any(|&b| b == b'/' || b == b'\\') || decoded == b".." {
            return None;
        }
        out.extend_from_slice(&decoded);
    }
    Some(out)
}

/// An S3 `x-amz-copy-source` (`[/]bucket/key[?versionId=…]`, URL-encoded) as the path a read
/// of that object would have on a path-style route.
pub fn copy_source_path(value: &str) -> Vec<u8> {
    let source = value.split_once('?').map_or(value, |(s, _)| s);
    let source = source.strip_prefix('/').unwrap_or(source);
    let mut path = vec![b'/'];
    path.extend(percent_encoding::percent_decode_str(source));
    path
}

/// Whether the address is loopback (127.0.0.0/8, ::1, or ::ffff:127.x.y.z).
pub fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat(p: &str) -> PathPattern {
        PathPattern::parse(p).unwrap()
    }

    #[test]
    fn single_star_stays_in_its_segment() {
        let p = pat("/bucket/*/report.csv");
        assert!(p.matches(b"/bucket/2024/report.csv"));
        assert!(!p.matches(b"/bucket/2024/01/report.csv"));
        assert!(!p.matches(b"/bucket/report.csv"));
        assert!(pat("/a/*").matches(b"/a/b"));
        assert!(
            !pat("/a/*").matches(b"/a/"),
            "a star never matches an empty segment"
        );
        assert!(!pat("/a/*").matches(b"/a/b/c"));
    }

    #[test]
    fn double_star_crosses_segments() {
        let p = pat("/bucket/reports/**");
        assert!(!p.matches(b"/bucket/reports/"), "nor does a double star");
        assert!(p.matches(b"/bucket/reports/x"));
        assert!(p.matches(b"/bucket/reports/a/b/c.txt"));
        assert!(!p.matches(b"/bucket/reports"));
        assert!(!p.matches(b"/bucket/reportsX/a"));
        assert!(!p.matches(b"/other/reports/a"));
        assert!(pat("/**/x").matches(b"/a/b/x"));
        assert!(pat("/**.json").matches(b"/a/b.json"));
        assert!(!pat("/*.json").matches(b"/a/b.json"));
    }

    /// A slow, obviously correct matcher to compare the fast one with.
    fn reference(p: &[u8], t: &[u8]) -> bool {
        if p.starts_with(b"**") {
            return (1..=t.len()).any(|i| reference(&p[2..], &t[i..]));
        }
        if p.starts_with(b"*") {
            let limit = t.iter().position(|&b| b == b'/').unwrap_or(t.len());
            return (1..=limit).any(|i| reference(&p[1..], &t[i..]));
        }
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(a), Some(b)) if a == b => reference(&p[1..], &t[1..]),
            _ => false,
        }
    }

    #[test]
    fn glob_agrees_with_the_reference_matcher() {
        let patterns = [
            "/**/a/*",
            "/*/a/**",
            "/a*/**b",
            "/**a**",
            "/*a*/b*",
            "/**/a/**/b",
            "/a/*",
            "/*",
            "/**",
            "/a/**/*b",
            "/*/*/*",
        ];
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..20_000 {
            let len = rng.usize(0..9);
            let text: Vec<u8> = std::iter::once(b'/')
                .chain((0..len).map(|_| b"ab/"[rng.usize(0..3)]))
                .collect();
            for p in patterns {
                assert_eq!(
                    glob(p.as_bytes(), &text),
                    reference(p.as_bytes(), &text),
                    "{p} on {}",
                    String::from_utf8_lossy(&text)
                );
            }
        }
    }

    #[test]
    fn literal_patterns_match_exactly() {
        assert!(pat("/health").matches(b"/health"));
        assert!(!pat("/health").matches(b"/health/x"));
        assert!(!pat("/health").matches(b"/healt"));
    }

    #[test]
    fn patterns_are_checked_when_parsed() {
        assert!(PathPattern::parse("reports/**").is_err());
        assert!(PathPattern::parse("/a/***").is_err());
    }

    #[test]
    fn glob_does_not_blow_up_on_many_stars() {
        let p = pat("/*a*a*a*a*a*a*a*a*a*a*b");
        let text = [b'/']
            .into_iter()
            .chain(std::iter::repeat_n(b'a', 5000))
            .collect::<Vec<u8>>();
        assert!(!p.matches(&text));
    }

    #[test]
    fn rules_tell_method_from_path_denials() {
        let rules = vec![AllowRule {
            methods: Some(vec![Method::GET, Method::HEAD]),
            paths: Some(vec![pat("/bucket/reports/**")]),
        }];
        assert_eq!(
            check_rules(&rules, &Method::GET, b"/bucket/reports/a"),
            Ok(())
        );
        assert_eq!(
            check_rules(&rules, &Method::PUT, b"/bucket/reports/a"),
            Err(Denied::Method)
        );
        assert_eq!(
            check_rules(&rules, &Method::GET, b"/bucket/secret"),
            Err(Denied::Path)
        );
        assert_eq!(check_rules(&[], &Method::DELETE, b"/x"), Ok(()));
    }

    #[test]
    fn policy_path_decodes_and_refuses_what_an_upstream_could_split() {
        let p = |t| policy_path(t, true);
        assert_eq!(
            p("/reports/a%20b?x=1").as_deref(),
            Some(&b"/reports/a b"[..])
        );
        assert_eq!(p("/a/b/").as_deref(), Some(&b"/a/b/"[..]));
        // Read as one segment here, as two (or a climb) by some upstreams: refused.
        assert_eq!(p("/secret/..%2Freports/x"), None);
        assert_eq!(p("/reports%2Fx"), None);
        assert_eq!(p("/reports%5C..%5Csecret"), None);
        // S3 keys are literal: dots stay, escapes are decoded.
        assert_eq!(
            policy_path("/b/r/%2E%2E/k", false).as_deref(),
            Some(&b"/b/r/../k"[..])
        );
        assert_eq!(
            policy_path("/b/r%2Fk", false).as_deref(),
            Some(&b"/b/r/k"[..])
        );
    }

    #[test]
    fn copy_sources_become_paths() {
        assert_eq!(copy_source_path("bkt/a%20b.txt"), b"/bkt/a b.txt");
        assert_eq!(copy_source_path("/bkt/k?versionId=3"), b"/bkt/k");
    }

    #[test]
    fn bearer_token_needs_the_scheme_and_exact_value() {
        let token = BearerToken::new("0123456789abcdef");
        assert!(token.accepts(Some(b"Bearer 0123456789abcdef")));
        assert!(token.accepts(Some(b"bearer 0123456789abcdef")));
        assert!(!token.accepts(Some(b"Bearer 0123456789abcdeF")));
        assert!(!token.accepts(Some(b"Bearer 0123456789abcde")));
        assert!(!token.accepts(Some(b"Basic 0123456789abcdef")));
        assert!(!token.accepts(Some(b"0123456789abcdef")));
        assert!(!token.accepts(None));
        assert!(!format!("{token:?}").contains("0123"));
    }

    #[test]
    fn client_addresses_are_checked_against_cidrs() {
        let access = ClientAccess {
            allowed_clients: vec!["10.1.0.0/16".parse().unwrap(), "::1/128".parse().unwrap()],
            ..ClientAccess::default()
        };
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(access.check_client(ip("10.1.2.3")), Ok(()));
        assert_eq!(access.check_client(ip("::ffff:10.1.2.3")), Ok(()));
        assert_eq!(access.check_client(ip("::1")), Ok(()));
        assert_eq!(
            access.check_client(ip("10.2.0.1")),
            Err(Denied::ClientAddress)
        );
        assert_eq!(access.check_client(None), Err(Denied::ClientAddress));
        assert_eq!(ClientAccess::default().check_client(None), Ok(()));
        assert_eq!(ClientAccess::default().check_token(None), Ok(()));
    }
}
