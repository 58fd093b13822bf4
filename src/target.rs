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
//! - query: each name and value percent-decoded and re-encoded with only unreserved characters
//!   left bare, order kept. A `+` is a space on signed routes, as AWS reads a query (form
//!   encoding) and as every AWS client writes one, so it goes as `%20` (a literal plus arrives
//!   as `%2B` and stays one); on pass-through routes it goes as the client sent it (see
//!   [`QueryPlus`]).

use crate::error::ProxyError;
use crate::service::PathRules;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Everything but RFC 3986 unreserved characters: the SigV4 query encoding.
const QUERY_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Everything but unreserved characters and `/`: S3's canonical path encoding.
const S3_PATH: &AsciiSet = &QUERY_COMPONENT.remove(b'/');

/// What a bare `+` in the client's query stands for, which decides how it is sent.
///
/// RFC 3986 makes `+` a literal plus; form encoding, which AWS services (and moto, MinIO, …)
/// apply to the query, makes it a space. AWS clients agree with AWS: a space goes as `+` or
/// `%20`, a plus always as `%2B` (s5cmd and rclone list `prefix=sp+dir%2F`). Sending that `+`
/// on as `%2B` would ask for keys that do not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryPlus {
    /// A space, sent (and signed) as `%20`: signed routes, whose upstreams read SigV4 queries.
    Space,
    /// Kept as the client sent it: pass-through routes, whose upstream reads it as it would
    /// from the client directly (a plus to some servers, a space to most web frameworks).
    /// Changing it either way would change what the request means to one of them.
    AsSent,
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
            climbs_elsewhere(&decoded)?;
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

/// What some upstreams read as a climb all the same: `..;/` (a path parameter, dropped by Java
/// servers) and escapes of escapes (`%252e`, decoded twice). `decoded`: a decoded path.
fn climbs_elsewhere(decoded: &[u8]) -> Result<(), ProxyError> {
    let climbs = decoded
        .split(|&b| b == b'/')
        .any(|segment| segment.starts_with(b".;") || segment.starts_with(b"..;"))
        || decoded.windows(3).any(|w| {
            w[0] == b'%' && matches!(&w[1..].to_ascii_lowercase()[..], b"2e" | b"2f" | b"5c")
        });
    match climbs {
        true => Err(ProxyError::BadRequest(
            "the path has a segment some upstreams read as a climb ('..;' or an escaped escape \
             such as %252e)"
                .into(),
        )),
        false => Ok(()),
    }
}

/// What is left of a resolved (normalised) path once a route prefix is stripped. A prefix that
/// ends inside a segment (`/open` of `/open../admin`) leaves part of a segment, which joins the
/// base path as a segment of its own (`/base/../admin`): it must not be one that climbs.
pub fn stripped_rest<'a>(encoded: &'a str, prefix: &str) -> Result<&'a str, ProxyError> {
    let rest = strip_prefix(encoded, prefix);
    if rest.is_empty() || rest.starts_with('/') {
        return Ok(rest);
    }
    let first = rest.split('/').next().unwrap_or_default();
    let decoded: Vec<u8> = percent_decode_str(first).collect();
    if decoded == b"." || decoded == b".." {
        return Err(ProxyError::BadRequest(
            "the path climbs out of the route's base path once its prefix is stripped".into(),
        ));
    }
    climbs_elsewhere(&decoded)?;
    Ok(rest)
}

/// The upstream path-and-query: `base` (the upstream's base path), then `rest` (a resolved
/// path, its route prefix stripped or not), then the query in canonical form, its `+` read as
/// `plus` says.
pub fn target_from(
    rest: &str,
    base: &str,
    query: Option<&str>,
    plus: QueryPlus,
) -> Result<String, ProxyError> {
    let mut target = String::with_capacity(base.len() + rest.len() + 16);
    target.push_str(base);
    if !rest.starts_with('/') {
        target.push('/');
    }
    target.push_str(rest);
    if let Some(query) = query.filter(|q| !q.is_empty()) {
        target.push('?');
        canonical_query(query, plus, &mut target)?;
        // A query of only separators (`?&&`) is no query at all.
        if target.ends_with('?') {
            target.pop();
        }
    }
    Ok(target)
}

/// Resolves `path` and builds its upstream target in one step, as a signed route sends it (see
/// [`resolve`] and [`target_from`]); `strip` is a route prefix to remove.
pub fn upstream_target(
    path: &str,
    query: Option<&str>,
    strip: Option<&str>,
    base: &str,
    rules: PathRules,
) -> Result<String, ProxyError> {
    let resolved = resolve(path, rules)?;
    let rest = match strip {
        Some(prefix) if rules == PathRules::Normalized => stripped_rest(&resolved.encoded, prefix)?,
        Some(prefix) => strip_prefix(&resolved.encoded, prefix),
        None => &resolved.encoded,
    };
    target_from(rest, base, query, QueryPlus::Space)
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
fn canonical_query(query: &str, plus: QueryPlus, out: &mut String) -> Result<(), ProxyError> {
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
        encode_component(name, plus, out)?;
        if let Some(value) = value {
            out.push('=');
            encode_component(value, plus, out)?;
        }
    }
    Ok(())
}

/// Appends one query name or value, decoded and re-encoded; `+` as `plus` says. The result is
/// its own canonical form under the same `plus` (no bare `+` with `Space`; `+` kept with
/// `AsSent`), so what is signed is what is sent.
fn encode_component(raw: &str, plus: QueryPlus, out: &mut String) -> Result<(), ProxyError> {
    check_escapes(raw, "query")?;
    if !raw.contains('+') {
        return encode_piece(raw, out);
    }
    match plus {
        QueryPlus::Space => encode_piece(&raw.replace('+', "%20"), out),
        QueryPlus::AsSent => {
            for (i, piece) in raw.split('+').enumerate() {
                if i > 0 {
                    out.push('+');
                }
                encode_piece(piece, out)?;
            }
            Ok(())
        }
    }
}

/// Appends `raw` (escapes already checked) percent-decoded and re-encoded.
fn encode_piece(raw: &str, out: &mut String) -> Result<(), ProxyError> {
    let decoded = percent_decode_str(raw).decode_utf8().map_err(|_| {
        ProxyError::BadRequest(
            "the query decodes to bytes that are not UTF-8, which SigV4 cannot sign".into(),
        )
    })?;
    out.extend(utf8_percent_encode(&decoded, QUERY_COMPONENT));
    Ok(())
}

#[cfg(test)]
#[path = "target_tests.rs"]
mod tests;
