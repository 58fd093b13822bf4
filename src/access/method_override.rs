//! Method overrides: what makes a web framework behind the upstream act on another method than
//! the request's own. A route's allow list checks the request's method, so a request that
//! carries one is refused where the list decides by method: the headers (many frameworks),
//! `_method` in the query, and `_method` in a `POST` body (Rails and Symfony read it from a
//! form or multipart body; Laravel from a JSON one too).
//!
//! A field name counts as `_method` the way those frameworks read names: PHP turns `.`, ` ` and
//! an unclosed `[` into `_`; Rack drops the brackets of `[_method]` and a backslash in a
//! multipart name; JSON keys are unescaped (`"\u005fmethod"`).

/// Headers some web frameworks take as the request's method instead of its own.
pub const HEADERS: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// The override header `headers` carry, if any: its name as sent. `_` counts as `-`, since
/// CGI, PHP, WSGI and Rack adapters turn both into the same variable
/// (`X_HTTP_METHOD_OVERRIDE` is `HTTP_X_HTTP_METHOD_OVERRIDE` too).
pub fn in_headers(headers: &http::HeaderMap) -> Option<&str> {
    let same = |known: &str, name: &str| {
        known.len() == name.len()
            && known
                .bytes()
                .zip(name.bytes())
                .all(|(k, n)| k == n || (k == b'-' && n == b'_'))
    };
    headers
        .keys()
        .map(|name| name.as_str())
        .find(|name| HEADERS.iter().any(|known| same(known, name)))
}

/// Whether a query names `_method` (any case, escaped or not; `;` separates pairs as `&`
/// does for some frameworks).
pub fn in_query(query: &str) -> bool {
    query
        .split(['&', ';'])
        .any(|pair| form_pair_names_method(pair.as_bytes()))
}

/// How a `POST` body is read by the frameworks, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `application/x-www-form-urlencoded`, or no type at all (Rack reads such a `POST` as a
    /// form).
    Form,
    Multipart,
    Json,
    /// Anything else: no framework reads fields from it.
    Other,
    /// More than one `Content-Type`: read every way.
    Any,
}

impl BodyKind {
    pub fn of(content_type: Option<&[u8]>) -> BodyKind {
        let Some(value) = content_type else {
            return BodyKind::Form;
        };
        let value = value.trim_ascii().to_ascii_lowercase();
        // Rack cuts the media type at `;` or `,`, PHP at whitespace too.
        let media = value
            .split(|&b| matches!(b, b';' | b',') || b.is_ascii_whitespace())
            .next()
            .unwrap_or_default();
        match media {
            b"" | b"application/x-www-form-urlencoded" => BodyKind::Form,
            m if m.starts_with(b"multipart/") => BodyKind::Multipart,
            // Laravel: any type with `/json` or `+json` in it.
            _ if find(&value, b"/json").is_some() || find(&value, b"+json").is_some() => {
                BodyKind::Json
            }
            _ => BodyKind::Other,
        }
    }
}

/// Whether a `POST` body of `kind` names `_method`.
pub fn in_body(body: &[u8], kind: BodyKind) -> bool {
    match kind {
        BodyKind::Form => body.split(|&b| b == b'&').any(form_pair_names_method),
        BodyKind::Multipart => multipart_names_method(body),
        BodyKind::Json => json_names_method(body),
        BodyKind::Other => false,
        BodyKind::Any => [BodyKind::Form, BodyKind::Multipart, BodyKind::Json]
            .into_iter()
            .any(|kind| in_body(body, kind)),
    }
}

/// Whether a form pair's name (before `=`) decodes to `_method`.
fn form_pair_names_method(pair: &[u8]) -> bool {
    let name = pair.split(|&b| b == b'=').next().unwrap_or_default();
    let spaced: Vec<u8> = name
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    let decoded: Vec<u8> = percent_encoding::percent_decode(&spaced).collect();
    is_method_name(&decoded)
}

/// Whether a field name reads as `_method` to Rack or PHP.
fn is_method_name(name: &[u8]) -> bool {
    // PHP ends a name at NUL; Rack 3 drops backslashes; both ignore case here.
    let name = name.split(|&b| b == 0).next().unwrap_or_default();
    let name: Vec<u8> = name
        .trim_ascii()
        .iter()
        .filter(|&&b| b != b'\\')
        .map(|b| b.to_ascii_lowercase())
        .collect();
    // Rack 2: leading brackets skipped, the name runs to the next bracket (`]_method`,
    // `[_method]`).
    let start = name.iter().position(|&b| b != b'[' && b != b']');
    let rack = start.map_or(&[][..], |i| {
        let rest = &name[i..];
        let end = rest.iter().position(|&b| b == b'[' || b == b']');
        &rest[..end.unwrap_or(rest.len())]
    });
    // PHP: `.`, ` ` and an unclosed `[` read as `_` (`.method`, `[method`).
    let php: Vec<u8> = name
        .iter()
        .map(|&b| {
            if matches!(b, b'.' | b' ' | b'[') {
                b'_'
            } else {
                b
            }
        })
        .collect();
    rack == b"_method" || php == b"_method" || php.strip_suffix(b"]") == Some(b"_method")
}

/// Every part name of a multipart body (`name="…"`, `name='…'`, `name=…`), and every
/// `Content-ID` (Rack's name for a part without one), read in the parts' headers only: the
/// lines after a `--` delimiter line, up to the blank line.
fn multipart_names_method(body: &[u8]) -> bool {
    headers_of_parts(body).any(|block| {
        let lower = block.to_ascii_lowercase();
        [&b"name="[..], b"content-id:"].iter().any(|marker| {
            let mut at = 0;
            while let Some(i) = find(&lower[at..], marker) {
                let start = at + i + marker.len();
                at = start;
                // `name=`, not `filename=`.
                let begins = start - marker.len();
                if begins > 0 && lower[begins - 1].is_ascii_alphanumeric() {
                    continue;
                }
                let rest = block[start..].trim_ascii_start();
                // Quoted, or a token as Rack reads one (it ends at separators and spaces).
                let value = match rest.first() {
                    Some(&q @ (b'"' | b'\'')) => rest[1..].split(|&b| b == q).next(),
                    _ => rest
                        .split(|&b| b.is_ascii_whitespace() || b"()<>,;:\"/[]?=".contains(&b))
                        .next(),
                };
                if is_method_name(value.unwrap_or_default()) {
                    return true;
                }
            }
            false
        })
    })
}

/// The header blocks of a multipart body's parts.
fn headers_of_parts(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut at = 0;
    std::iter::from_fn(move || {
        loop {
            let rest = body.get(at..)?;
            // The next line that starts with `--`, after spaces (Rack strips the line).
            let line = if rest.trim_ascii_start().starts_with(b"--") {
                0
            } else {
                let mut from = 0;
                loop {
                    let next = from + find(&rest[from..], b"\n")? + 1;
                    if rest[next..].trim_ascii_start().starts_with(b"--") {
                        break next;
                    }
                    from = next;
                }
            };
            let line_end = line + find(&rest[line..], b"\n")? + 1;
            let block = &rest[line_end..];
            let end = find(block, b"\r\n\r\n")
                .or_else(|| find(block, b"\n\n"))
                .unwrap_or(block.len());
            at += line_end + end;
            if end > 0 {
                return Some(&block[..end]);
            }
        }
    })
}

/// The top-level keys of a JSON object, unescaped; the raw bytes when it does not parse.
fn json_names_method(body: &[u8]) -> bool {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(map)) => map.keys().any(|k| is_method_name(k.as_bytes())),
        Ok(_) => false,
        // A parser lenient where serde_json is not (PHP takes `1e400`, deeper nesting) may
        // still read it: any `"_method"` key, escapes (`\u005f`) read.
        Err(_) => {
            let text = unescape_json(body);
            find(&text, b"\"_method\"").is_some_and(|i| {
                text[i + 9..]
                    .iter()
                    .find(|b| !b.is_ascii_whitespace())
                    .is_some_and(|&b| b == b':')
            })
        }
    }
}

/// `body` lower-cased, with `\uXXXX` escapes of ASCII characters read and other backslashes
/// dropped.
fn unescape_json(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        if body[i] == b'\\' {
            let hex = body
                .get(i + 2..i + 6)
                .filter(|_| body.get(i + 1) == Some(&b'u'));
            let ascii = hex.and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| {
                u8::from_str_radix(h, 16)
                    .ok()
                    .filter(|_| h.starts_with("00"))
            });
            match ascii {
                Some(c) => {
                    out.push(c.to_ascii_lowercase());
                    i += 6;
                }
                None => i += 1,
            }
            continue;
        }
        out.push(body[i].to_ascii_lowercase());
        i += 1;
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use BodyKind::*;

    #[test]
    fn finds_method_fields_where_frameworks_read_them() {
        assert!(in_query("a=1&_method=DELETE"));
        assert!(in_query("%5Fmethod=PUT"));
        assert!(!in_query("payment_method=card"));
        for form in [
            &b"a=1&_method=DELETE"[..],
            b"_METHOD=delete",
            b"%5fmethod=delete",
            b"[_method]=DELETE",
            b"_method]=DELETE",
            b".method=DELETE",
            b"%2Emethod=DELETE",
            b"[method=DELETE",
            b"_method%20=DELETE",
            b"_method%00x=DELETE",
            b"]_method=DELETE",
            b"[[_method=DELETE",
            b"[]_method=DELETE",
        ] {
            assert!(in_body(form, Form), "{}", String::from_utf8_lossy(form));
        }
        for json in [
            &br#"{"name":"x","_method":"DELETE"}"#[..],
            br#"{"\u005fmethod":"DELETE"}"#,
            br#"{"_\u006dethod":"DELETE"}"#,
            br#"{"_method" : "DELETE", broken"#,
            br#"{"\u005fmethod":"DELETE","n":1e400}"#,
        ] {
            assert!(in_body(json, Json), "{}", String::from_utf8_lossy(json));
        }
        for part in [
            "name=\"_method\"",
            "name='_method'",
            "name=_method",
            "name=\"[_method]\"",
            "name=\"_meth\\od\"",
            "name=\".method\"",
            "name=_method x",
            "name=_method\tx",
            "name=_method,x",
            "name=_method/x",
        ] {
            let body =
                format!("--b\r\nContent-Disposition: form-data; {part}\r\n\r\nDELETE\r\n--b--\r\n");
            assert!(in_body(body.as_bytes(), Multipart), "{part}");
        }
        let by_id = b"--b\r\nContent-ID: _method\r\n\r\nDELETE\r\n--b--\r\n";
        assert!(in_body(by_id, Multipart));
        let indented =
            b"  --b\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nX\r\n--b--";
        assert!(in_body(indented, Multipart));
    }

    #[test]
    fn other_fields_and_values_pass() {
        assert!(!in_body(b"payment_method=card&a=b", Form));
        assert!(!in_body(br#"{"payment_method":"card"}"#, Json));
        assert!(!in_body(br#"{"fields":["name","_method"]}"#, Json));
        assert!(!in_body(br#"{"note":"x&_method=y"}"#, Json));
        let template = b"<input type=hidden name=\"_method\" value=\"delete\">";
        assert!(!in_body(template, Other));
        let upload =
            b"--b\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n_method\r\n--b--";
        assert!(!in_body(upload, Multipart));
        // A template uploaded as a file: its content is not a part's header.
        let file = b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.html\"\r\n\r\n<input name=\"_method\" value=\"delete\">\r\n--b--\r\n";
        assert!(!in_body(file, Multipart));
        let named_file = b"--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"_method\"\r\n\r\nx\r\n--b--";
        assert!(!in_body(named_file, Multipart));
    }

    #[test]
    fn the_content_type_says_how_the_body_is_read() {
        assert_eq!(BodyKind::of(None), Form);
        assert_eq!(
            BodyKind::of(Some(b"Application/X-WWW-Form-Urlencoded; charset=utf-8")),
            Form
        );
        assert_eq!(
            BodyKind::of(Some(b"multipart/form-data; boundary=x")),
            Multipart
        );
        assert_eq!(BodyKind::of(Some(b"application/vnd.api+json")), Json);
        assert_eq!(BodyKind::of(Some(b"text/html")), Other);
        assert_eq!(BodyKind::of(Some(b"application/octet-stream")), Other);
        assert_eq!(
            BodyKind::of(Some(b"application/x-www-form-urlencoded, x")),
            Form
        );
        assert_eq!(
            BodyKind::of(Some(b"application/x-www-form-urlencoded x")),
            Form
        );
        assert_eq!(
            BodyKind::of(Some(b"multipart/form-data, boundary=b")),
            Multipart
        );
        assert_eq!(
            BodyKind::of(Some(b"multipart/related; boundary=b")),
            Multipart
        );
        assert_eq!(BodyKind::of(Some(b"text/json")), Json);
        assert_eq!(BodyKind::of(Some(b"application/json-seq")), Json);
    }
}
