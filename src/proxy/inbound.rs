//! Checks on the request head before it is routed: size, method, target form and body framing.
//! Each failure is a JSON error and nothing goes upstream. (Header values that are not
//! printable ASCII are refused with 400 when they would be signed; elsewhere they are opaque
//! bytes and forwarded as they are.)
//!
//! pingora's parser refuses some shapes itself, before any of sigproxy's code runs, with an
//! empty `400` and a closed connection: a malformed request line, control bytes or spaces in
//! header names and values, more than 256 headers or a head over 1 MiB, differing or
//! non-numeric `Content-Length`s, a final transfer coding other than `chunked`, and `CONNECT`
//! (an empty `405`). What it lets through, these checks refuse.

use crate::access::FORWARDED_METHODS;
use crate::error::ProxyError;
use pingora::http::RequestHeader;
use pingora::proxy::Session;

/// Everything about the head that sigproxy refuses to forward.
pub fn check(session: &Session, max_header_bytes: usize) -> Result<(), ProxyError> {
    let raw = session
        .as_downstream()
        .as_http1()
        .map(|h1| h1.get_headers_raw_bytes());
    if let Some(raw) = &raw {
        if raw.len() > max_header_bytes {
            return Err(ProxyError::HeadersTooLarge {
                limit: max_header_bytes,
            });
        }
    }
    let req = session.req_header();
    if !FORWARDED_METHODS.contains(&req.method.as_str()) {
        return Err(ProxyError::MethodNotAllowed(req.method.to_string()));
    }
    check_target(req)?;
    // RFC 9112 §3.2: an HTTP/1.1 request without exactly one `Host` is a 400.
    if req.version == http::Version::HTTP_11
        && req.headers.get_all(http::header::HOST).iter().count() != 1
    {
        return Err(ProxyError::BadRequest(
            "an HTTP/1.1 request needs exactly one Host header".into(),
        ));
    }
    check_framing(req, raw.as_deref())
}

/// Origin-form (`/path`) or absolute-form (`http://host/path`) only: `OPTIONS *` and bare
/// names have no path to route or sign.
fn check_target(req: &RequestHeader) -> Result<(), ProxyError> {
    let raw = req.raw_path();
    let absolute = raw.len() > 7
        && (raw[..7].eq_ignore_ascii_case(b"http://")
            || raw.len() > 8 && raw[..8].eq_ignore_ascii_case(b"https://"));
    if raw.first() == Some(&b'/') || absolute {
        Ok(())
    } else {
        Err(ProxyError::BadRequest(
            "the request target must be a path starting with '/'".into(),
        ))
    }
}

/// One way of framing the body, stated once: `Content-Length` (digits only) or
/// `Transfer-Encoding: chunked`, never both, never repeated. (pingora drops `Content-Length` when both come, so the raw head
/// is where that shape shows.)
fn check_framing(req: &RequestHeader, raw: Option<&[u8]>) -> Result<(), ProxyError> {
    let bad = |why: &str| Err(ProxyError::BadRequest(why.to_string()));
    let mut cl = req.headers.get_all(http::header::CONTENT_LENGTH).iter();
    if let Some(length) = cl.next() {
        if cl.next().is_some() {
            return bad("more than one Content-Length header");
        }
        // pingora reads `3, 3` as 3 and would forward the list as it came: an upstream may
        // read it otherwise.
        let digits = length.as_bytes().trim_ascii();
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return bad("a Content-Length that is not a plain number");
        }
    }
    let mut te = req.headers.get_all("transfer-encoding").iter();
    let Some(first) = te.next() else {
        return Ok(());
    };
    if te.next().is_some() {
        return bad("more than one Transfer-Encoding header");
    }
    if !first
        .as_bytes()
        .trim_ascii()
        .eq_ignore_ascii_case(b"chunked")
    {
        return bad("Transfer-Encoding other than 'chunked'");
    }
    if raw.is_some_and(has_content_length_line) {
        return bad("both Content-Length and Transfer-Encoding");
    }
    Ok(())
}

/// Whether a raw request head has a `Content-Length` header line.
fn has_content_length_line(raw: &[u8]) -> bool {
    raw.split(|&b| b == b'\n')
        .skip(1)
        .any(|line| line.len() > 15 && line[..15].eq_ignore_ascii_case(b"content-length:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(target: &[u8], headers: &[(&str, &[u8])]) -> RequestHeader {
        let mut r = RequestHeader::build("POST", target, None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), http::HeaderValue::from_bytes(v).unwrap())
                .unwrap();
        }
        r
    }

    #[test]
    fn targets_must_be_paths_or_absolute_urls() {
        assert!(check_target(&req(b"/a", &[])).is_ok());
        assert!(check_target(&req(b"http://h/a", &[])).is_ok());
        assert!(check_target(&req(b"*", &[])).is_err());
        assert!(check_target(&req(b"foo", &[])).is_err());
    }

    #[test]
    fn framing_is_stated_once() {
        let te = |v: &'static [u8]| req(b"/", &[("transfer-encoding", v)]);
        assert!(check_framing(&te(b"chunked"), Some(b"POST / HTTP/1.1\r\n")).is_ok());
        assert!(check_framing(&te(b"Chunked "), None).is_ok());
        assert!(check_framing(&te(b"gzip, chunked"), None).is_err());
        let both = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(check_framing(&te(b"chunked"), Some(both)).is_err());
        let twice = req(
            b"/",
            &[
                ("transfer-encoding", b"chunked"),
                ("transfer-encoding", b"chunked"),
            ],
        );
        assert!(check_framing(&twice, None).is_err());
        let cl = req(b"/", &[("content-length", b"1"), ("content-length", b"1")]);
        assert!(check_framing(&cl, None).is_err());
        let ok = req(b"/", &[("content-length", b"1")]);
        assert!(check_framing(&ok, None).is_ok());
        for list in [&b"1, 1"[..], b"1,1", b"", b"0x1"] {
            let cl = req(b"/", &[("content-length", list)]);
            assert!(check_framing(&cl, None).is_err(), "{list:?}");
        }
    }
}
