//! Method overrides: what makes a web framework behind the upstream act on another method than
//! the request's own. A route's allow list checks the request's method, so a request that
//! carries one is refused where the list decides by method: the headers (many frameworks),
//! `_method` in the query, and `_method` in a `POST` body (Rails and Symfony read it from a
//! form or multipart body; Laravel from a JSON one too).

/// Headers some web frameworks take as the request's method instead of its own.
pub const HEADERS: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Whether a query names `_method` (any case, escaped or not).
pub fn in_query(query: &str) -> bool {
    query.split('&').any(|pair| is_method_name(pair.as_bytes()))
}

/// Whether a `POST` body names `_method`: as a form field (`form`: the body is
/// `application/x-www-form-urlencoded`), a JSON key or a multipart part's name.
pub fn in_body(body: &[u8], form: bool) -> bool {
    if form && body.split(|&b| b == b'&').any(is_method_name) {
        return true;
    }
    // `"_method"` as a JSON key or `name="_method"`; `name=_method` unquoted.
    contains_ignoring_case(body, b"\"_method\"") || contains_ignoring_case(body, b"name=_method")
}

/// Whether a form pair's name (before `=`) decodes to `_method`.
fn is_method_name(pair: &[u8]) -> bool {
    let name = pair.split(|&b| b == b'=').next().unwrap_or_default();
    let spaced: Vec<u8> = name
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    let decoded: Vec<u8> = percent_encoding::percent_decode(&spaced).collect();
    decoded.trim_ascii().eq_ignore_ascii_case(b"_method")
}

fn contains_ignoring_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_method_fields_where_frameworks_read_them() {
        assert!(in_query("a=1&_method=DELETE"));
        assert!(in_query("%5Fmethod=PUT"));
        assert!(!in_query("payment_method=card"));
        assert!(in_body(b"a=1&_method=DELETE", true));
        assert!(in_body(b"_METHOD=delete", true));
        assert!(in_body(b"%5fmethod=delete", true));
        assert!(in_body(br#"{"name":"x","_method":"DELETE"}"#, false));
        assert!(in_body(
            b"--b\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nDELETE\r\n--b--",
            false
        ));
        assert!(!in_body(b"payment_method=card&a=b", true));
        assert!(!in_body(br#"{"payment_method":"card"}"#, false));
        // A JSON string holding form-like text is not a form.
        assert!(!in_body(br#"{"note":"x&_method=y"}"#, false));
    }
}
