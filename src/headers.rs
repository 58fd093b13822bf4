//! Header hygiene for requests going upstream and responses coming back.

use http::header::{self, HeaderName};
use pingora::http::{RequestHeader, ResponseHeader};

// Typed names: removing by `HeaderName` skips parsing the name on every request. Statics, not
// consts: a const array of names is built (and dropped) again wherever it is used.

/// Hop-by-hop headers (RFC 9110 §7.6.1) and their common non-standard relatives.
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Signing headers a client may have sent; on a signed route, ours replace them.
static CLIENT_SIGNING: [HeaderName; 4] = [
    header::AUTHORIZATION,
    HeaderName::from_static("x-amz-security-token"),
    HeaderName::from_static("x-amz-date"),
    HeaderName::from_static("x-amz-content-sha256"),
];

/// Names listed in the `Connection` header are hop-by-hop too.
fn connection_listed(headers: &http::HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// The first header of `headers` that its `Connection` header names, other than the hop-by-hop
/// ones: it is dropped before the request goes upstream, after the checks read it.
pub fn connection_named(headers: &http::HeaderMap) -> Option<String> {
    connection_listed(headers).into_iter().find(|name| {
        let hop = HeaderName::from_bytes(name.as_bytes())
            .is_ok_and(|n| HOP_BY_HOP.contains(&n) || n == "http2-settings");
        !hop && headers.contains_key(name.as_str())
    })
}

/// Prepares the request for the upstream: drops hop-by-hop headers (and those `Connection`
/// lists), applies `edits` (the route's own), and sets `host`. On a signed route it also drops
/// the client's own signing headers; `drop_expect` drops `Expect` when the proxy has read the
/// body itself (and answered `100 Continue`) or there is none.
///
/// The order is what it is on pingora's proxy loop: what is not the client's to send on goes
/// before the edits (a header gone cannot be duplicated, whatever path the request takes), the
/// client's signing headers after them (a duplicated one keeps the client's value; edits cannot
/// touch what sigproxy sets, checked when the file was loaded).
pub fn prepare_request(
    req: &mut RequestHeader,
    host: &str,
    signed: bool,
    drop_expect: bool,
    edits: impl FnOnce(&mut RequestHeader),
) {
    let doomed = picked(&req.headers, |name, listed| {
        listed || HOP_BY_HOP.contains(name) || (drop_expect && *name == header::EXPECT)
    });
    for name in &doomed {
        req.remove_header(name);
    }
    edits(req);
    if signed {
        for name in &CLIENT_SIGNING {
            req.remove_header(name);
        }
    }
    // A valid host (checked when the configuration was loaded) is always a valid header value.
    let _ = req.insert_header("host", host);
}

/// What pingora's proxy loop drops from a request before `upstream_request_filter` sees it, in
/// the order it drops them (a header map's order changes with each removal, and the upstream
/// sees the order): first the headers `Connection` lists, then these.
static PINGORA_HOP_BY_HOP: [HeaderName; 10] = [
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::CONNECTION,
    header::UPGRADE,
    HeaderName::from_static("http2-settings"),
];

/// Drops what pingora's proxy loop drops from a request before `upstream_request_filter`: a
/// pass-through request that sigproxy forwards itself loses the same, in the same order, at the
/// same point (before the route's header edits: a header gone cannot be duplicated). Only for
/// requests whose `Connection` lists nothing pingora would refuse (see
/// `proxy::buffered::forwards_whole`).
pub fn strip_like_pingora(req: &mut RequestHeader) {
    for name in connection_listed(&req.headers) {
        req.remove_header(&name);
    }
    // Which of them the request has: one pass over its few headers (a lookup per name hashes
    // each of the ten), then removed in pingora's order (removing also searches the names'
    // spellings, so only those there are removed).
    let mut present = [false; PINGORA_HOP_BY_HOP.len()];
    for name in req.headers.keys() {
        if let Some(i) = PINGORA_HOP_BY_HOP.iter().position(|h| h == name) {
            present[i] = true;
        }
    }
    for (name, _) in PINGORA_HOP_BY_HOP
        .iter()
        .zip(present)
        .filter(|(_, there)| *there)
    {
        req.remove_header(name);
    }
}

/// Drops hop-by-hop headers from an upstream response, keeping its body framing
/// (`content-length` / `transfer-encoding`), which the downstream writer relies on.
pub fn prepare_response(resp: &mut ResponseHeader) {
    let doomed = picked(&resp.headers, |name, listed| {
        *name != header::TRANSFER_ENCODING
            && *name != header::CONTENT_LENGTH
            && (listed || HOP_BY_HOP.contains(name))
    });
    for name in &doomed {
        resp.remove_header(name);
    }
}

/// An HTTP/1.0 client reads no chunked framing (RFC 9112 §6.1): for it, a body that
/// `Content-Length` does not frame goes as bytes ended by closing the connection (pingora's
/// writer then closes it, and says so in `Connection`). Call last, once the framing is chosen.
pub fn frame_for_client(resp: &mut ResponseHeader, client: http::Version) {
    if client < http::Version::HTTP_11 {
        resp.remove_header(&header::TRANSFER_ENCODING);
    }
}

/// The names in `headers` that `pick` chooses, told whether `Connection` lists each one: one pass
/// over the few headers a message has, rather than a lookup per name that might be there.
fn picked(headers: &http::HeaderMap, pick: impl Fn(&HeaderName, bool) -> bool) -> Vec<HeaderName> {
    let listed = connection_listed(headers);
    headers
        .keys()
        .filter(|name| pick(name, listed.iter().any(|l| l == name.as_str())))
        .cloned()
        .collect()
}

/// AWS's request id from a response header, for the access log.
pub fn aws_request_id(resp: &ResponseHeader) -> Option<String> {
    ["x-amz-request-id", "x-amzn-requestid"]
        .iter()
        .find_map(|name| resp.headers.get(*name))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The host a request is for: an absolute-form target's authority overrides `Host`
/// (RFC 9112 §3.2.2), as it does for every server that reads the request after us.
pub fn request_host(req: &RequestHeader) -> Option<&str> {
    req.uri.authority().map(|a| a.as_str()).or_else(|| {
        req.headers
            .get(header::HOST)
            .map(|h| std::str::from_utf8(h.as_bytes()).unwrap_or("\u{fffd}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("POST", b"/x", None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn signed_route_drops_client_signing_and_hop_by_hop_headers() {
        let mut r = req(&[
            ("authorization", "AWS4-HMAC-SHA256 client"),
            ("x-amz-security-token", "t"),
            ("x-amz-date", "d"),
            ("x-amz-content-sha256", "h"),
            ("connection", "keep-alive, x-private"),
            ("x-private", "p"),
            ("keep-alive", "timeout=5"),
            ("expect", "100-continue"),
            ("x-amz-meta-kept", "k"),
            ("user-agent", "curl"),
            ("host", "localhost:8080"),
        ]);
        prepare_request(
            &mut r,
            "abc.lambda-url.us-east-1.on.aws",
            true,
            true,
            |_| {},
        );
        for gone in [
            "authorization",
            "x-amz-security-token",
            "x-amz-date",
            "x-amz-content-sha256",
            "connection",
            "x-private",
            "keep-alive",
            "expect",
        ] {
            assert!(r.headers.get(gone).is_none(), "{gone} survived");
        }
        assert_eq!(r.headers["x-amz-meta-kept"], "k");
        assert_eq!(r.headers["user-agent"], "curl");
        assert_eq!(r.headers["host"], "abc.lambda-url.us-east-1.on.aws");
    }

    #[test]
    fn pass_through_route_keeps_client_authorization() {
        let mut r = req(&[("authorization", "Bearer x"), ("expect", "100-continue")]);
        prepare_request(&mut r, "example.com", false, false, |_| {});
        assert_eq!(r.headers["authorization"], "Bearer x");
        assert_eq!(r.headers["expect"], "100-continue");
    }

    #[test]
    fn edits_see_the_request_without_its_hop_by_hop_headers() {
        // Whether the body is read or streamed, signed or not: a header the client's own
        // `Connection` makes hop-by-hop is not the route's to copy on.
        let mut r = req(&[
            ("connection", "close, x-keep, te"),
            ("x-keep", "k"),
            ("te", "trailers"),
            ("proxy-authorization", "Basic eA=="),
            ("authorization", "client"),
        ]);
        let mut seen = Vec::new();
        prepare_request(&mut r, "example.com", true, false, |r| {
            seen = r.headers.keys().map(|k| k.to_string()).collect();
        });
        assert_eq!(seen, ["authorization"], "the edits saw {seen:?}");
        assert!(r.headers.get("authorization").is_none());
    }

    #[test]
    fn response_loses_hop_by_hop_headers_but_keeps_its_framing() {
        let mut r = ResponseHeader::build(200, None).unwrap();
        for (k, v) in [
            ("connection", "close, X-Private, transfer-encoding"),
            ("x-private", "p"),
            ("keep-alive", "timeout=5"),
            ("upgrade", "h2c"),
            ("transfer-encoding", "chunked"),
            ("x-amzn-requestid", "abc"),
        ] {
            r.append_header(k, v).unwrap();
        }
        prepare_response(&mut r);
        for gone in ["connection", "x-private", "keep-alive", "upgrade"] {
            assert!(r.headers.get(gone).is_none(), "{gone} survived");
        }
        assert_eq!(r.headers["transfer-encoding"], "chunked");
        assert_eq!(r.headers["x-amzn-requestid"], "abc");
    }
}
