//! The signing process in the log, for comparing with AWS's answer to a `SignatureDoesNotMatch`
//! (S3 puts its own canonical request and string to sign in that error; other services describe
//! them): `--log-signing-process`, or `RUST_LOG=sigproxy::signing=debug`.
//!
//! What is logged is what AWS shows, minus what must never be in a log: the session token's
//! value (a signed header, and a query parameter of presigned requests) is replaced by
//! `<redacted>`, and neither the `Authorization` header nor the signing key is ever at hand
//! here. The string to sign carries the SHA-256 of the real canonical request, so two runs can
//! still be told apart by it.

/// The tracing target of these events (debug level).
pub const TARGET: &str = "sigproxy::signing";

/// What stands where a secret was.
const REDACTED: &str = "<redacted>";

/// Logs the canonical request and string to sign, if [`TARGET`] is enabled at debug. When it is
/// not (the default), this costs one check of a cached flag: nothing is formatted or copied.
#[inline]
pub fn log(canonical_request: &str, string_to_sign: &str) {
    if tracing::enabled!(target: TARGET, tracing::Level::DEBUG) {
        emit(canonical_request, string_to_sign);
    }
}

#[cold]
fn emit(canonical_request: &str, string_to_sign: &str) {
    let canonical_request = redact(canonical_request);
    tracing::debug!(
        target: TARGET,
        canonical_request = canonical_request.as_str(),
        string_to_sign,
        "signing"
    );
}

/// The canonical request with secrets' values replaced: the `x-amz-security-token` header, and
/// the `X-Amz-Security-Token` and `X-Amz-Signature` query parameters (a client's presigned URL).
fn redact(canonical_request: &str) -> String {
    let mut out = String::with_capacity(canonical_request.len());
    for (i, line) in canonical_request.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        match i {
            // Method, path, query, then headers: the query is the third line.
            2 => redact_query(line, &mut out),
            _ if i > 2 && line.starts_with("x-amz-security-token:") => {
                out.push_str("x-amz-security-token:");
                out.push_str(REDACTED);
            }
            _ => out.push_str(line),
        }
    }
    out
}

fn redact_query(query: &str, out: &mut String) {
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((name, _))
                if name.eq_ignore_ascii_case("X-Amz-Security-Token")
                    || name.eq_ignore_ascii_case("X-Amz-Signature") =>
            {
                out.push_str(name);
                out.push('=');
                out.push_str(REDACTED);
            }
            _ => out.push_str(pair),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_token_and_presigned_secrets_are_redacted_and_nothing_else() {
        let creq = "GET\n/bucket/key\nX-Amz-Signature=abc&prefix=a%20b&x-amz-security-token=q\n\
                    host:s3.amazonaws.com\nx-amz-date:20261125T000000Z\n\
                    x-amz-security-token:FwoGZXIvYXdzEJr+/=\n\n\
                    host;x-amz-date;x-amz-security-token\nUNSIGNED-PAYLOAD";
        let want = "GET\n/bucket/key\nX-Amz-Signature=<redacted>&prefix=a%20b&x-amz-security-token=<redacted>\n\
                    host:s3.amazonaws.com\nx-amz-date:20261125T000000Z\n\
                    x-amz-security-token:<redacted>\n\n\
                    host;x-amz-date;x-amz-security-token\nUNSIGNED-PAYLOAD";
        assert_eq!(redact(creq), want);
        // A request without a token is logged as it is.
        let plain = "POST\n/\n\nhost:h\n\nhost\ne3b0";
        assert_eq!(redact(plain), plain);
    }
}
