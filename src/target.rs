//! The request target (path and query) sent upstream, in the exact form that is signed.
//!
//! SigV4 signs a canonical form of the path and query. If the proxy sent the client's bytes and
//! signed something else, any difference in encoding (`+` versus `%20`, `//`, `..`, lower-case
//! escapes) would become a signature mismatch at AWS. So the target is rewritten once, here, into
//! a form whose canonicalisation is the identity, and that same string is both signed and sent:
//!
//! - path, most services: dot segments and empty segments removed (as AWS and aws-sigv4
//!   normalise them), every character RFC 3986 does not allow in a path percent-encoded,
//!   existing escapes kept;
//! - path, S3: never normalised (`//` and `..` are part of object keys); decoded and re-encoded
//!   the way S3 canonicalises it, every byte but unreserved characters and `/` escaped;
//! - query: each name and value percent-decoded (`+` is a literal plus, RFC 3986) and re-encoded
//!   with only unreserved characters left bare, order kept.

use crate::error::ProxyError;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Everything but RFC 3986 unreserved characters: the SigV4 query encoding.
const QUERY_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Everything but unreserved characters and `/`: S3's canonical path encoding.
const S3_PATH: &AsciiSet = &QUERY_COMPONENT.remove(b'/');

/// How a service canonicalises paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathRules {
    /// Normalised, double-encoded when signed (Lambda and most services).
    Normalized,
    /// As is, single-encoded (S3).
    S3,
}

/// A client's path as one route's service reads it: the one form that routes are matched on,
/// allow lists are checked against, and that is signed and sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Canonically encoded: what is signed and sent (before a prefix is stripped and the
    /// upstream's base path is added).
    pub encoded: String,
    /// The same path percent-decoded.
    pub decoded: Vec<u8>,
}

/// Resolves the client's raw path (percent-encoded, starting with `/`) under `rules`.
///
/// Outside S3, a path whose decoded form still has a `.` or `..` segment (hidden behind an
/// escaped `/` or `\`: `/v1/..%2Fadmin`) is refused: an upstream that decodes it could climb
/// out of what was routed and checked.
pub fn resolve(path: &str, rules: PathRules) -> Result<Resolved, ProxyError> {
    let path = if path.starts_with('/') {
        std::borrow::Cow::Borrowed(path)
    } else {
        std::borrow::Cow::Owned(format!("/{path}"))
    };
    match rules {
        PathRules::Normalized => {
            let encoded = normalize_path(&encode_path(&path)?);
            let decoded: Vec<u8> = percent_decode_str(&encoded).collect();
            let hidden_dots = decoded
                .split(|&b| b == b'/' || b == b'\\')
                .any(|segment| segment == b"." || segment == b"..");
            if hidden_dots {
                return Err(ProxyError::BadRequest(
                    "the path hides a '.' or '..' segment behind an escaped '/' or '\\'".into(),
                ));
            }
            // What some upstreams read as a climb all the same: `..;/` (a path parameter,
            // dropped by Java servers) and escapes of escapes (`%252e`, decoded twice).
            let climbs_elsewhere = decoded
                .split(|&b| b == b'/')
                .any(|segment| segment.starts_with(b".;") || segment.starts_with(b"..;"))
                || decoded.windows(3).any(|w| {
                    w[0] == b'%'
                        && matches!(&w[1..].to_ascii_lowercase()[..], b"2e" | b"2f" | b"5c")
                });
            if climbs_elsewhere {
                return Err(ProxyError::BadRequest(
                    "the path has a segment some upstreams read as a climb ('..;' or an escaped \
                     escape such as %252e)"
                        .into(),
                ));
            }
            Ok(Resolved { encoded, decoded })
        }
        PathRules::S3 => {
            check_escapes(&path, "path")?;
            let decoded: Vec<u8> = percent_decode_str(&path).collect();
            let encoded = percent_encoding::percent_encode(&decoded, S3_PATH).to_string();
            Ok(Resolved { encoded, decoded })
        }
    }
}

/// The upstream path-and-query: `base` (the upstream's base path), then `rest` (a resolved
/// path, its route prefix stripped or not), then the query in canonical form.
pub fn target_from(rest: &str, base: &str, query: Option<&str>) -> Result<String, ProxyError> {
    let mut target = String::with_capacity(base.len() + rest.len() + 16);
    target.push_str(base);
    if !rest.starts_with('/') {
        target.push('/');
    }
    target.push_str(rest);
    if let Some(query) = query.filter(|q| !q.is_empty()) {
        target.push('?');
        canonical_query(query, &mut target)?;
        // A query of only separators (`?&&`) is no query at all.
        if target.ends_with('?') {
            target.pop();
        }
    }
    Ok(target)
}

/// Resolves `path` and builds its upstream target in one step (see [`resolve`] and
/// [`target_from`]); `strip` is a route prefix to remove.
pub fn upstream_target(
    path: &str,
    query: Option<&str>,
    strip: Option<&str>,
    base: &str,
    rules: PathRules,
) -> Result<String, ProxyError> {
    let resolved = resolve(path, rules)?;
    let rest = match strip {
        Some(prefix) => strip_prefix(&resolved.encoded, prefix),
        None => &resolved.encoded,
    };
    target_from(rest, base, query)
}

/// Removes a matched route prefix; `/orders/` also strips a bare `/orders`.
pub fn strip_prefix<'a>(path: &'a str, prefix: &str) -> &'a str {
    if let Some(rest) = path.strip_prefix(prefix) {
        return rest;
    }
    let bare = prefix.trim_end_matches('/');
    if path == bare {
        return "";
    }
    path
}

/// Percent-encodes characters that may not appear bare in a path; rejects broken escapes.
fn encode_path(path: &str) -> Result<String, ProxyError> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let valid = bytes.len() > i + 2
                && bytes[i + 1].is_ascii_hexdigit()
                && bytes[i + 2].is_ascii_hexdigit();
            if !valid {
                return Err(ProxyError::BadRequest(
                    "the path has a '%' that is not followed by two hex digits".into(),
                ));
            }
            // An escaped unreserved character is that character (RFC 3986 §6.2.2.2): `%2E%2E`
            // is a `..` segment and is resolved as one, not passed on for an upstream to
            // resolve differently from what was checked and signed.
            let decoded = u8::from_str_radix(&path[i + 1..i + 3], 16).expect("two hex digits");
            if decoded.is_ascii_alphanumeric() || b"-._~".contains(&decoded) {
                out.push(decoded as char);
            } else {
                out.push_str(&path[i..i + 3]);
            }
            i += 3;
            continue;
        }
        if is_path_char(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
        i += 1;
    }
    Ok(out)
}

fn check_escapes(raw: &str, what: &str) -> Result<(), ProxyError> {
    let bytes = raw.as_bytes();
    for (i, _) in raw.match_indices('%') {
        let valid = bytes.len() > i + 2
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit();
        if !valid {
            return Err(ProxyError::BadRequest(format!(
                "the {what} has a '%' that is not followed by two hex digits"
            )));
        }
    }
    Ok(())
}

/// RFC 3986 `pchar` plus `/`, excluding `%` (handled by the caller).
fn is_path_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b)
}

/// Removes `.` and `..` segments and empty segments, keeping a trailing slash.
fn normalize_path(path: &str) -> String {
    if !(path.contains("/.") || path.contains("//")) {
        return path.to_string();
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    let trailing = ["/", "/.", "/.."].iter().any(|t| path.ends_with(t));
    if out.is_empty() || trailing {
        out.push('/');
    }
    out
}

/// Appends the query in canonical SigV4 encoding, keeping the client's order.
fn canonical_query(query: &str, out: &mut String) -> Result<(), ProxyError> {
    let mut first = true;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        if !first {
            out.push('&');
        }
        first = false;
        let (name, value) = match pair.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (pair, None),
        };
        encode_component(name, out)?;
        if let Some(value) = value {
            out.push('=');
            encode_component(value, out)?;
        }
    }
    Ok(())
}

fn encode_component(raw: &str, out: &mut String) -> Result<(), ProxyError> {
    check_escapes(raw, "query")?;
    let decoded = percent_decode_str(raw).decode_utf8().map_err(|_| {
        ProxyError::BadRequest(
            "the query decodes to bytes that are not UTF-8, which SigV4 cannot sign".into(),
        )
    })?;
    out.extend(utf8_percent_encode(&decoded, QUERY_COMPONENT));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(path: &str, query: Option<&str>) -> String {
        upstream_target(path, query, None, "", PathRules::Normalized).unwrap()
    }

    #[test]
    fn escaped_unreserved_characters_are_decoded_so_dot_segments_resolve() {
        assert_eq!(t("/a/%2e%2E/b", None), "/b");
        assert_eq!(t("/a/.%2e/b", None), "/b");
        assert_eq!(t("/%61%7E%2D", None), "/a~-");
        // Reserved and other escapes stay as they are.
        assert_eq!(t("/a%2Fb/%20", None), "/a%2Fb/%20");
    }

    #[test]
    fn a_climb_hidden_behind_an_escaped_slash_is_refused_outside_s3() {
        for path in [
            "/v1/..%2Fadmin",
            "/a/%2E%2E%2Fb",
            "/a/.%5Cb/..%5C..",
            "/x/%2F..%2F",
            "/public/..;/admin",
            "/public/%2e%2e;/admin",
            "/public/.;/x",
            "/public/%252e%252e%252fadmin",
            "/public/%255C",
        ] {
            let e = resolve(path, PathRules::Normalized).unwrap_err();
            assert_eq!(e.status(), 400, "{path}");
        }
        // A plain escaped slash is data, and S3 keys are literal.
        assert_eq!(
            resolve("/a%2Fb", PathRules::Normalized).unwrap().decoded,
            b"/a/b"
        );
        assert_eq!(
            resolve("/b/..%2Fk", PathRules::S3).unwrap().encoded,
            "/b/../k"
        );
    }

    #[test]
    fn a_query_of_only_separators_is_dropped() {
        assert_eq!(t("/a", Some("&&")), "/a");
        assert_eq!(t("/a", Some("&x=1&")), "/a?x=1");
    }

    fn s3(path: &str) -> String {
        upstream_target(path, None, None, "", PathRules::S3).unwrap()
    }

    #[test]
    fn plain_paths_are_untouched() {
        assert_eq!(t("/orders/42", None), "/orders/42");
        assert_eq!(t("/", None), "/");
        assert_eq!(t("/a%20b/%2F/c", None), "/a%20b/%2F/c");
    }

    #[test]
    fn dot_and_empty_segments_are_removed() {
        assert_eq!(t("/a/./b/../c", None), "/a/c");
        assert_eq!(t("//a//b//", None), "/a/b/");
        assert_eq!(t("/a/..", None), "/");
        assert_eq!(t("/../..", None), "/");
        assert_eq!(t("/a/.", None), "/a/");
    }

    #[test]
    fn characters_not_allowed_in_paths_are_encoded() {
        assert_eq!(t("/a\"b{c}", None), "/a%22b%7Bc%7D");
        assert_eq!(t("/é", None), "/%C3%A9");
    }

    #[test]
    fn broken_escapes_are_rejected() {
        assert_eq!(
            upstream_target("/a%zz", None, None, "", PathRules::Normalized)
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(
            upstream_target("/a", Some("x=%4"), None, "", PathRules::Normalized)
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(
            upstream_target("/a", Some("x=%ff"), None, "", PathRules::Normalized)
                .unwrap_err()
                .status(),
            400
        );
    }

    #[test]
    fn query_is_canonically_encoded_in_client_order() {
        assert_eq!(
            t("/", Some("b=2&a=1&a=0&empty=&flag")),
            "/?b=2&a=1&a=0&empty=&flag"
        );
        assert_eq!(t("/", Some("q=a+b%20c")), "/?q=a%2Bb%20c");
        assert_eq!(t("/", Some("p=%2f%2F/")), "/?p=%2F%2F%2F");
        assert_eq!(t("/", Some("u=%C3%A9")), "/?u=%C3%A9");
        assert_eq!(t("/", Some("k=v~-_.*")), "/?k=v~-_.%2A");
        assert_eq!(t("/x", Some("")), "/x");
    }

    #[test]
    fn prefix_is_stripped_and_base_added() {
        let r = upstream_target(
            "/orders/42",
            Some("a=1"),
            Some("/orders/"),
            "/base",
            PathRules::Normalized,
        )
        .unwrap();
        assert_eq!(r, "/base/42?a=1");
        let r =
            upstream_target("/orders", None, Some("/orders/"), "", PathRules::Normalized).unwrap();
        assert_eq!(r, "/");
        let r = upstream_target(
            "/orders/",
            None,
            Some("/orders/"),
            "",
            PathRules::Normalized,
        )
        .unwrap();
        assert_eq!(r, "/");
    }

    #[test]
    fn s3_keys_are_kept_as_is_and_encoded_as_s3_does() {
        assert_eq!(s3("/bucket/a b"), "/bucket/a%20b");
        assert_eq!(s3("/bucket/a%20b+c"), "/bucket/a%20b%2Bc");
        assert_eq!(s3("/bucket/x//y/../z/./w"), "/bucket/x//y/../z/./w");
        assert_eq!(
            s3("/bucket/k&=:~@!$'()*,;"),
            "/bucket/k%26%3D%3A~%40%21%24%27%28%29%2A%2C%3B"
        );
        assert_eq!(s3("/bucket/a%2Fb"), "/bucket/a/b");
        assert_eq!(s3("/bucket/caf%c3%a9"), "/bucket/caf%C3%A9");
        assert_eq!(
            upstream_target("/b/%zz", None, None, "", PathRules::S3)
                .unwrap_err()
                .status(),
            400
        );
    }
}
