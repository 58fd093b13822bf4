//! A route's `headers` edits, applied to each request before it is signed: `duplicate` copies a
//! client header to `X-Original-<name>` (aws-sigv4-proxy's `--duplicate-headers`), `remove` drops
//! it (`--strip`), `add` sets one (`--custom-headers`). Edits are applied in that order, so a
//! duplicated header keeps the client's value even when it is then removed or replaced.
//!
//! The names sigproxy owns (signing, framing, hop-by-hop, `host`) cannot be added or removed: a
//! configuration could otherwise unframe a body or forge what the signature vouches for. Any
//! header may be duplicated: the copy is a new name.

use http::header::{HeaderName, HeaderValue};
use pingora::http::RequestHeader;

/// What a route does to request headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderEdits {
    /// `(name, X-Original-<name>)`.
    pub duplicate: Vec<(HeaderName, HeaderName)>,
    pub remove: Vec<HeaderName>,
    pub add: Vec<(HeaderName, HeaderValue)>,
}

/// Header names a route may not edit, and why.
pub fn owned_by_sigproxy(name: &HeaderName) -> Option<&'static str> {
    const SIGNING: &[&str] = &[
        "authorization",
        "x-amz-date",
        "x-amz-security-token",
        "x-amz-content-sha256",
        "x-amz-decoded-content-length",
        "x-amz-region-set",
    ];
    const FRAMING: &[&str] = &[
        "content-length",
        "transfer-encoding",
        "content-encoding",
        "expect",
    ];
    const HOP: &[&str] = &[
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "host",
    ];
    let n = name.as_str();
    if SIGNING.contains(&n) {
        Some("sigproxy signs the request and sets it")
    } else if FRAMING.contains(&n) {
        Some("it frames the body, which sigproxy sets")
    } else if HOP.contains(&n) {
        Some("it belongs to the connection (the upstream host is the route's)")
    } else {
        None
    }
}

/// Owned names whose client value never reaches the upstream of a signed route: sigproxy signs
/// and sets them, sets the body's length, or drops them as hop-by-hop. Removing one changes
/// nothing (aws-sigv4-proxy's `--strip Authorization` is such a no-op there too). The other
/// owned names (`content-encoding`, `expect`, `x-amz-decoded-content-length`) may be the
/// client's own, and go upstream.
pub fn never_forwarded_when_signed(name: &HeaderName) -> bool {
    const CLIENTS_MAY_SEND: &[&str] =
        &["content-encoding", "expect", "x-amz-decoded-content-length"];
    owned_by_sigproxy(name).is_some() && !CLIENTS_MAY_SEND.contains(&name.as_str())
}

impl HeaderEdits {
    pub fn is_empty(&self) -> bool {
        self.duplicate.is_empty() && self.remove.is_empty() && self.add.is_empty()
    }

    /// Applies the edits to a request on its way upstream.
    pub fn apply(&self, req: &mut RequestHeader) {
        for (name, original) in &self.duplicate {
            let values: Vec<HeaderValue> = req.headers.get_all(name).iter().cloned().collect();
            req.remove_header(original);
            for value in values {
                let _ = req.append_header(original.clone(), value);
            }
        }
        for name in &self.remove {
            req.remove_header(name);
        }
        for (name, value) in &self.add {
            let _ = req.insert_header(name.clone(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_then_remove_then_add() {
        let name = |n: &str| HeaderName::from_bytes(n.as_bytes()).unwrap();
        let edits = HeaderEdits {
            duplicate: vec![(name("x-user"), name("x-original-x-user"))],
            remove: vec![name("x-user"), name("cookie")],
            add: vec![(name("x-team"), HeaderValue::from_static("orders"))],
        };
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.append_header("x-user", "ada").unwrap();
        req.append_header("cookie", "s=1").unwrap();
        req.append_header("x-original-x-user", "forged").unwrap();
        req.append_header("x-team", "client's").unwrap();
        edits.apply(&mut req);
        let h = |n: &str| {
            req.headers
                .get_all(n)
                .iter()
                .map(|v| v.to_str().unwrap().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            h("x-original-x-user"),
            ["ada"],
            "the client cannot forge the copy"
        );
        assert!(h("x-user").is_empty() && h("cookie").is_empty());
        assert_eq!(h("x-team"), ["orders"]);
    }

    #[test]
    fn signing_framing_and_connection_headers_are_sigproxys() {
        for n in [
            "authorization",
            "X-Amz-Date",
            "x-amz-region-set",
            "content-length",
            "host",
            "connection",
        ] {
            let name = HeaderName::from_bytes(n.as_bytes()).unwrap();
            assert!(owned_by_sigproxy(&name).is_some(), "{n}");
        }
        assert!(owned_by_sigproxy(&HeaderName::from_static("x-amz-meta-a")).is_none());
    }
}
