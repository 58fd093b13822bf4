//! The SigV4 canonical request and string to sign, for the request shapes sigproxy produces.
//!
//! aws-sigv4's `sign()` builds these too, generically, and derives the signing key (four
//! HMACs) on every call. sigproxy signs every request on the hot path, so it builds them here
//! from parts it has already put in canonical form (the target from `target.rs`, the signed
//! header set from `is_signed`) and lets `Signer` reuse the signing key for the day. The HMAC
//! and key derivation remain aws-sigv4's own (`sign::v4::calculate_signature`,
//! `generate_signing_key`), and the unit tests check that the result is identical to
//! aws-sigv4's `sign()` across services, paths, queries, headers and credentials.

use crate::utc::Utc;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::time::SystemTime;

/// Everything but unreserved characters and `/`: SigV4's path encoding.
const PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// `YYYYMMDDTHHMMSSZ` for `time` (UTC).
pub fn amz_date(time: SystemTime) -> String {
    let mut out = String::with_capacity(16);
    Utc::from(time).push_date_time(&mut out, false);
    out.push('Z');
    out
}

/// How the path goes into the canonical request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathEncoding {
    /// Encoded once more (`%` becomes `%25`): Lambda and most services.
    Double,
    /// As sent: S3.
    Single,
}

/// Builds the canonical request. `path_and_query` must come from `target::upstream_target`
/// (normalised where the service normalises, query in canonical encoding); `headers` are the
/// signed headers, lower-case, in any order.
pub fn canonical_request(
    method: &str,
    path_and_query: &str,
    encoding: PathEncoding,
    headers: &mut [(&str, &str)],
    payload_hash: &str,
    signed_names: &mut String,
) -> String {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, q),
        None => (path_and_query, ""),
    };
    let path = if path.is_empty() { "/" } else { path };
    let mut out = String::with_capacity(256 + path_and_query.len() + 64 * headers.len());
    out.push_str(method);
    out.push('\n');
    match encoding {
        PathEncoding::Double => out.extend(utf8_percent_encode(path, PATH)),
        PathEncoding::Single => out.push_str(path),
    }
    out.push('\n');

    let mut params: Vec<(&str, &str)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    params.sort_unstable();
    for (i, (k, v)) in params.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out.push('\n');

    // Stable: values of a repeated header keep their order, joined with ','.
    headers.sort_by(|a, b| a.0.cmp(b.0));
    let mut previous: Option<&str> = None;
    for (name, value) in headers.iter() {
        if previous == Some(name) {
            out.push(',');
        } else {
            if previous.is_some() {
                out.push('\n');
                signed_names.push(';');
            }
            out.push_str(name);
            out.push(':');
            signed_names.push_str(name);
        }
        push_trimmed(&mut out, value);
        previous = Some(name);
    }
    out.push_str("\n\n");
    out.push_str(signed_names);
    out.push('\n');
    out.push_str(payload_hash);
    out
}

/// The header value with leading and trailing spaces removed and runs of spaces collapsed.
fn push_trimmed(out: &mut String, value: &str) {
    let value = value.trim_matches(' ');
    if !value.contains("  ") {
        out.push_str(value); // the common case, and the long session token's
        return;
    }
    let mut last_space = false;
    for c in value.chars() {
        if c == ' ' {
            if !last_space {
                out.push(' ');
            }
            last_space = true;
        } else {
            out.push(c);
            last_space = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn dates_are_formatted_in_utc() {
        let at = |s| UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(amz_date(at(0)), "19700101T000000Z");
        assert_eq!(amz_date(at(1_369_353_600)), "20130524T000000Z");
        assert_eq!(amz_date(at(951_782_400)), "20000229T000000Z");
        assert_eq!(amz_date(at(4_107_542_399)), "21000228T235959Z");
        assert_eq!(amz_date(at(1_795_000_000)), "20261118T110640Z");
    }
}
