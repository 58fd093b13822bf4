//! Upstream answers that failed (4xx, 5xx), with AWS's error code, in the log:
//! `--log-failed-requests`, or `RUST_LOG=sigproxy::failed_requests=debug`.
//!
//! The access log already has every status; this adds what AWS called the failure
//! (`SignatureDoesNotMatch`, `AccessDenied`, `ExpiredTokenException`, …), which tells a wrong
//! signature from a missing permission. The code comes from the `x-amzn-ErrorType` header, or
//! from an error body sigproxy already holds (the forwarder reads S3's 400/403 bodies, up to
//! 16 KiB, to look for an expired token): no response is buffered or delayed for this, so
//! streamed answers are untouched, and a body that was not read gives no code. Bodies are never
//! logged: S3's `SignatureDoesNotMatch` carries the canonical request, session token included.

use bytes::Bytes;
use http::Method;
use pingora::http::ResponseHeader;

/// The tracing target of these events (debug level).
pub const TARGET: &str = "sigproxy::failed_requests";

/// The most of a held body that is looked at.
const PEEK: usize = 16 * 1024;

/// Logs `response` if it is a 4xx or 5xx and [`TARGET`] is enabled at debug; `held` is what of
/// its body has been read already, if anything. `path` is the upstream path, without the query.
#[inline]
pub fn log(route: &str, method: &Method, path: &str, response: &ResponseHeader, held: &[Bytes]) {
    let status = response.status.as_u16();
    if status >= 400 && tracing::enabled!(target: TARGET, tracing::Level::DEBUG) {
        emit(route, method, path, status, response, held);
    }
}

#[cold]
fn emit(
    route: &str,
    method: &Method,
    path: &str,
    status: u16,
    response: &ResponseHeader,
    held: &[Bytes],
) {
    let code = error_code(response, held);
    let aws_request_id = crate::headers::aws_request_id(response);
    tracing::debug!(
        target: TARGET,
        route,
        method = %method,
        path,
        status,
        code = code.as_deref(),
        aws_request_id = aws_request_id.as_deref(),
        "upstream answered with an error"
    );
}

/// AWS's error code: `x-amzn-ErrorType` (without its `:` suffix), else an XML error
/// envelope's `<Code>`, else a JSON body's `__type` (without its namespace) or `code`.
pub fn error_code(response: &ResponseHeader, held: &[Bytes]) -> Option<String> {
    if let Some(kind) = response
        .headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
    {
        let kind = kind.split(':').next().unwrap_or(kind).trim();
        if !kind.is_empty() {
            return Some(kind.to_string());
        }
    }
    let mut body = Vec::with_capacity(held.iter().map(Bytes::len).sum::<usize>().min(PEEK));
    for chunk in held {
        let room = PEEK - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
    let text = String::from_utf8_lossy(&body);
    let text = text.trim_start();
    if text.starts_with('<') {
        let (_, rest) = text.split_once("<Error>")?;
        let (_, rest) = rest.split_once("<Code>")?;
        let (code, _) = rest.split_once("</Code>")?;
        return plausible(code);
    }
    if text.starts_with('{') {
        let json: serde_json::Value = serde_json::from_str(text).ok()?;
        let code = ["__type", "code", "Code"]
            .iter()
            .find_map(|k| json.get(*k).and_then(|v| v.as_str()))?;
        return plausible(code.rsplit('#').next().unwrap_or(code));
    }
    None
}

/// A code is a short word (`AccessDenied`, `Throttling.Exception`): anything else is not one.
fn plausible(code: &str) -> Option<String> {
    let code = code.trim();
    let word = code
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    (word && !code.is_empty() && code.len() <= 100).then(|| code.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, error_type: Option<&str>) -> ResponseHeader {
        let mut r = ResponseHeader::build(status, None).unwrap();
        if let Some(t) = error_type {
            r.insert_header("x-amzn-ErrorType", t).unwrap();
        }
        r
    }

    fn body(parts: &[&'static str]) -> Vec<Bytes> {
        parts
            .iter()
            .map(|p| Bytes::from_static(p.as_bytes()))
            .collect()
    }

    #[test]
    fn the_code_comes_from_the_header_first() {
        let r = answer(
            403,
            Some("AccessDeniedException:http://internal.amazon.com/coral/"),
        );
        let held = body(&[r#"{"__type":"Other"}"#]);
        assert_eq!(error_code(&r, &held).unwrap(), "AccessDeniedException");
    }

    #[test]
    fn then_from_an_s3_xml_envelope_even_split_across_chunks() {
        let held = body(&[
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>Signature",
            "DoesNotMatch</Code><Message>…</Message><CanonicalRequest>GET…</CanonicalRequest></Error>",
        ]);
        let code = error_code(&answer(403, None), &held);
        assert_eq!(code.unwrap(), "SignatureDoesNotMatch");
        // An XML document that is not AWS's error envelope has no code.
        let other = body(&["<x><Code>Nope</Code></x>"]);
        assert_eq!(error_code(&answer(400, None), &other), None);
    }

    #[test]
    fn then_from_a_json_body() {
        let typed = body(&[r#"{"__type":"com.amazon.coral.service#ExpiredTokenException"}"#]);
        let code = error_code(&answer(400, None), &typed);
        assert_eq!(code.unwrap(), "ExpiredTokenException");
        let lower = body(&[r#"{"code":"ThrottlingException","message":"slow down"}"#]);
        assert_eq!(
            error_code(&answer(429, None), &lower).unwrap(),
            "ThrottlingException"
        );
        // A function's own words are not a code.
        let words = body(&[r#"{"code":"no such <b>thing</b>"}"#]);
        assert_eq!(error_code(&answer(404, None), &words), None);
        assert_eq!(error_code(&answer(500, None), &[]), None);
    }
}
