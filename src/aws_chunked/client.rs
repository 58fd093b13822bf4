//! Bodies the client framed itself as aws-chunked, the form current AWS SDKs and CLIs send
//! uploads in: `STREAMING-UNSIGNED-PAYLOAD-TRAILER`, chunks with no signature and a checksum
//! trailer (`x-amz-trailer: x-amz-checksum-crc32`, …). On an `unsigned` route such a body goes
//! upstream as sent, the header signed with that same content hash; on a `streaming` route it is
//! re-framed with signed chunks ([`super::trailer`]). Either way the service verifies the
//! checksum.
//!
//! [`FrameCheck`] follows the framing as the body streams through, so a malformed body (a size
//! line that does not parse, more or fewer bytes than `x-amz-decoded-content-length`, a missing
//! or unannounced trailer, a value that is not a checksum's base64) fails instead of passing
//! through.

use crate::error::ProxyError;
use http::header::{HeaderName, CONTENT_ENCODING};
use pingora::http::RequestHeader;

/// The content hash of an aws-chunked body with unsigned chunks and a trailer.
pub const UNSIGNED_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";

/// The checksum trailers S3 takes, with the size of their digest in bytes.
const CHECKSUMS: [(&str, usize); 5] = [
    ("x-amz-checksum-crc32", 4),
    ("x-amz-checksum-crc32c", 4),
    ("x-amz-checksum-crc64nvme", 8),
    ("x-amz-checksum-sha1", 20),
    ("x-amz-checksum-sha256", 32),
];
/// The headers that say how the body is framed; each must come once.
const FRAMING_HEADERS: [&str; 3] = [
    "content-encoding",
    "x-amz-decoded-content-length",
    "x-amz-trailer",
];
// Looked up on every signed request: names built once, not parsed for each lookup.
const X_AMZ_CONTENT_SHA256: HeaderName = HeaderName::from_static("x-amz-content-sha256");
const X_AMZ_TRAILER: HeaderName = HeaderName::from_static("x-amz-trailer");
/// The longest size line: 16 hex digits and CRLF.
const MAX_SIZE_LINE: usize = 18;
/// The longest trailer line: a name above, a base64 SHA-256 and some room.
const MAX_TRAILER_LINE: usize = 128;

/// How a request's body is framed, as its header tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientForm {
    /// Not aws-chunked: sigproxy signs (and, for `streaming`, frames) it.
    Plain,
    /// aws-chunked with unsigned chunks and a checksum trailer: forwarded as sent.
    UnsignedTrailer,
    /// Any other aws-chunked form (chunks signed with the client's own keys): not re-signable.
    Other,
}

/// How the client framed its body (`Content-Encoding: aws-chunked` or a `STREAMING-…`
/// content hash). A client that leaves signing to sigproxy (no credentials, as
/// `--no-sign-request`) sends no content hash: `aws-chunked` with `x-amz-trailer` is the
/// unsigned trailer form too.
pub fn client_form(req: &RequestHeader) -> ClientForm {
    let sha = req
        .headers
        .get(X_AMZ_CONTENT_SHA256)
        .map_or(&b""[..], |v| v.as_bytes());
    // Every Content-Encoding header: a list may be split over several.
    let chunked_encoding = req.headers.get_all(CONTENT_ENCODING).iter().any(|v| {
        v.as_bytes()
            .windows(b"aws-chunked".len())
            .any(|w| w.eq_ignore_ascii_case(b"aws-chunked"))
    });
    let streaming = sha.len() >= 10 && sha[..10].eq_ignore_ascii_case(b"streaming-");
    let trailer = req.headers.contains_key(X_AMZ_TRAILER);
    if chunked_encoding && trailer && (sha.is_empty() || sha == UNSIGNED_TRAILER.as_bytes()) {
        ClientForm::UnsignedTrailer
    } else if chunked_encoding || streaming {
        ClientForm::Other
    } else {
        ClientForm::Plain
    }
}

/// Where the check is in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a chunk's size line.
    Size,
    /// Inside a chunk's data: the bytes still to come.
    Data(u64),
    /// Reading the CRLF after a chunk's data.
    DataEnd,
    /// Reading trailer lines, up to the empty line that ends the body.
    Trailer,
    Done,
}

/// Follows an [`ClientForm::UnsignedTrailer`] body as it streams, holding at most one line.
#[derive(Debug)]
pub struct FrameCheck {
    state: State,
    line: Vec<u8>,
    decoded: u64,
    expected: u64,
    /// The trailer x-amz-trailer names (lower case), and its digest's size in bytes.
    trailer: (&'static str, usize),
    /// The trailer's value once read, as sent (base64, checked for form only).
    value: Option<String>,
}

fn bad(what: impl std::fmt::Display) -> ProxyError {
    ProxyError::BadRequest(format!("malformed aws-chunked body: {what}"))
}

impl FrameCheck {
    /// The check for the body of `req`, whose header must name the decoded length
    /// (`x-amz-decoded-content-length`) and one checksum trailer (`x-amz-trailer`).
    pub fn new(req: &RequestHeader) -> Result<Self, ProxyError> {
        // Stated twice, a header would be checked in one form while S3 may read the other.
        for name in FRAMING_HEADERS {
            if req.headers.get_all(name).iter().count() > 1 {
                return Err(ProxyError::BadRequest(format!(
                    "an aws-chunked body needs one {name} header, not several"
                )));
            }
        }
        let header = |name| req.headers.get(name).and_then(|v| v.to_str().ok());
        let expected = header("x-amz-decoded-content-length")
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| {
                ProxyError::BadRequest(
                    "an aws-chunked body needs a valid x-amz-decoded-content-length".into(),
                )
            })?;
        let named = header("x-amz-trailer").unwrap_or("").trim();
        let trailer = CHECKSUMS
            .into_iter()
            .find(|(c, _)| c.eq_ignore_ascii_case(named))
            .ok_or_else(|| {
                let names: Vec<&str> = CHECKSUMS.iter().map(|(c, _)| *c).collect();
                ProxyError::BadRequest(format!(
                    "x-amz-trailer must name one checksum trailer ({})",
                    names.join(", ")
                ))
            })?;
        Ok(FrameCheck {
            state: State::Size,
            line: Vec::new(),
            decoded: 0,
            expected,
            trailer,
            value: None,
        })
    }

    /// The payload's length, as `x-amz-decoded-content-length` declares it.
    pub fn decoded_length(&self) -> u64 {
        self.expected
    }

    /// The trailer's name (lower case) and the length of its base64 value.
    pub fn trailer_shape(&self) -> (&'static str, usize) {
        (self.trailer.0, base64_len(self.trailer.1))
    }

    /// The trailer's name and value, once the body has been followed to its end.
    pub fn trailer(&self) -> Option<(&'static str, &str)> {
        match self.state {
            State::Done => self.value.as_deref().map(|v| (self.trailer.0, v)),
            _ => None,
        }
    }

    /// Follows the next piece of the body; `end`: the body ends after it.
    pub fn feed(&mut self, data: &[u8], end: bool) -> Result<(), ProxyError> {
        self.feed_with(data, end, |_| {})
    }

    /// As [`FrameCheck::feed`], handing each piece of chunk data to `payload` as it is read.
    pub fn feed_with(
        &mut self,
        mut data: &[u8],
        end: bool,
        mut payload: impl FnMut(&[u8]),
    ) -> Result<(), ProxyError> {
        while !data.is_empty() {
            if let State::Data(left) = self.state {
                let take = left.min(data.len() as u64);
                payload(&data[..take as usize]);
                data = &data[take as usize..];
                self.state = match left - take {
                    0 => State::DataEnd,
                    left => State::Data(left),
                };
                continue;
            }
            if self.state == State::Done {
                return Err(bad("bytes after the final chunk's trailer"));
            }
            // Size, DataEnd and Trailer read a line up to its LF.
            let limit = match self.state {
                State::Size => MAX_SIZE_LINE,
                State::DataEnd => 2,
                _ => MAX_TRAILER_LINE,
            };
            let (part, rest, complete) = match data.iter().position(|&b| b == b'\n') {
                Some(i) => (&data[..=i], &data[i + 1..], true),
                None => (data, &[][..], false),
            };
            data = rest;
            if self.line.len() + part.len() > limit {
                return Err(bad("a line is longer than the format allows"));
            }
            self.line.extend_from_slice(part);
            if complete {
                let line = std::mem::take(&mut self.line);
                let text = line
                    .strip_suffix(b"\r\n")
                    .ok_or_else(|| bad("a line does not end in CRLF"))?;
                self.line_done(text)?;
                self.line = line;
                self.line.clear();
            }
        }
        if end && self.state != State::Done {
            return Err(bad("the body ended before its final chunk and trailer"));
        }
        Ok(())
    }

    fn line_done(&mut self, text: &[u8]) -> Result<(), ProxyError> {
        self.state = match self.state {
            State::Size => {
                let size = std::str::from_utf8(text)
                    .ok()
                    .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_hexdigit()))
                    .and_then(|t| u64::from_str_radix(t, 16).ok())
                    .ok_or_else(|| bad("a chunk size is not a hex number"))?;
                self.decoded = self
                    .decoded
                    .checked_add(size)
                    .filter(|&d| d <= self.expected)
                    .ok_or_else(|| bad("more data than x-amz-decoded-content-length"))?;
                match size {
                    0 if self.decoded != self.expected => {
                        return Err(bad("less data than x-amz-decoded-content-length"))
                    }
                    0 => State::Trailer,
                    size => State::Data(size),
                }
            }
            State::DataEnd if text.is_empty() => State::Size,
            State::DataEnd => return Err(bad("a chunk is longer than its size")),
            State::Trailer if text.is_empty() && self.value.is_some() => State::Done,
            State::Trailer if text.is_empty() => {
                return Err(bad(format!("no {} trailer", self.trailer.0)))
            }
            State::Trailer => {
                let (name, value) = std::str::from_utf8(text)
                    .ok()
                    .and_then(|t| t.split_once(':'))
                    .ok_or_else(|| bad("a trailer line is not `name:value`"))?;
                let (expected, size) = self.trailer;
                if !name.trim().eq_ignore_ascii_case(expected) || self.value.is_some() {
                    return Err(bad(format!(
                        "the trailer is not the one x-amz-trailer names ({expected})"
                    )));
                }
                let value = value.trim();
                if !is_base64_of(value, size) {
                    return Err(bad(format!(
                        "the {expected} trailer is not the base64 of a {size}-byte checksum"
                    )));
                }
                self.value = Some(value.to_string());
                State::Trailer
            }
            State::Data(_) | State::Done => unreachable!("no line is read in this state"),
        };
        Ok(())
    }
}

/// The length of `bytes` bytes in padded base64.
fn base64_len(bytes: usize) -> usize {
    bytes.div_ceil(3) * 4
}

/// Whether `value` has the form of `bytes` bytes in padded base64 (its value is the service's
/// to check: a wrong checksum must reach it as sent).
fn is_base64_of(value: &str, bytes: usize) -> bool {
    let padding = (3 - bytes % 3) % 3;
    let (body, pad) = value
        .as_bytes()
        .split_at(value.len().saturating_sub(padding));
    value.len() == base64_len(bytes)
        && pad.iter().all(|&b| b == b'=')
        && body
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(extra: &[(&str, &str)]) -> RequestHeader {
        let mut req = RequestHeader::build("PUT", b"/b/k", None).unwrap();
        for (name, value) in extra {
            req.insert_header(name.to_string(), *value).unwrap();
        }
        req
    }

    fn check(body: &[u8], decoded: &str, piece: usize) -> Result<(), ProxyError> {
        let req = header(&[
            ("x-amz-decoded-content-length", decoded),
            ("x-amz-trailer", "x-amz-checksum-crc32"),
        ]);
        let mut check = FrameCheck::new(&req)?;
        let pieces: Vec<&[u8]> = body.chunks(piece).collect();
        for (i, p) in pieces.iter().enumerate() {
            check.feed(p, i + 1 == pieces.len())?;
        }
        Ok(())
    }

    const GOOD: &[u8] = b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n";

    #[test]
    fn a_well_formed_body_passes_in_pieces_of_any_size() {
        for piece in 1..=GOOD.len() {
            check(GOOD, "11", piece).unwrap_or_else(|e| panic!("{piece}: {e}"));
        }
    }

    #[test]
    fn malformed_bodies_fail() {
        let cases: [(&[u8], &str); 13] = [
            (GOOD, "12"),
            (GOOD, "10"),
            (b"z\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\n\r\n", "5"),
            (b"5\r\nhello!\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\n\r\n", "5"),
            (b"5;chunk-signature=00\r\nhello\r\n0\r\n\r\n", "5"),
            (b"5\r\nhello\r\n0\r\n\r\n", "5"),
            (b"5\r\nhello\r\n0\r\nx-amz-checksum-sha256:NhCmhg==\r\n\r\n", "5"),
            (b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\n", "5"),
            (
                b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\n\r\nmore",
                "5",
            ),
            // The value must have the form of a CRC-32 in base64 (its value is S3's to check).
            (b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:a\r\n\r\n", "5"),
            (b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg=\r\n\r\n", "5"),
            (b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhC*hg==\r\n\r\n", "5"),
            (
                b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\nx-amz-checksum-crc32:NhCmhg==\r\n\r\n",
                "5",
            ),
        ];
        for (body, decoded) in cases {
            let result = check(body, decoded, 3);
            assert!(
                matches!(result, Err(ProxyError::BadRequest(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn forms_are_told_apart() {
        let form = |sha: &str, encoding| {
            let mut headers = vec![
                ("content-encoding", encoding),
                ("x-amz-trailer", "x-amz-checksum-crc32"),
            ];
            if !sha.is_empty() {
                headers.push(("x-amz-content-sha256", sha));
            }
            client_form(&header(&headers))
        };
        assert_eq!(
            form(UNSIGNED_TRAILER, "aws-chunked"),
            ClientForm::UnsignedTrailer
        );
        assert_eq!(
            form(UNSIGNED_TRAILER, "gzip,aws-chunked"),
            ClientForm::UnsignedTrailer
        );
        assert_eq!(form(UNSIGNED_TRAILER, "gzip"), ClientForm::Other);
        assert_eq!(
            form("STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", "aws-chunked"),
            ClientForm::Other
        );
        assert_eq!(form("UNSIGNED-PAYLOAD", "aws-chunked"), ClientForm::Other);
        assert_eq!(form("UNSIGNED-PAYLOAD", "gzip"), ClientForm::Plain);
        assert_eq!(form("", "aws-chunked"), ClientForm::UnsignedTrailer);
        assert_eq!(form("", "gzip"), ClientForm::Plain);
        // A Content-Encoding list split over two headers is still aws-chunked, and refused:
        // each framing header must come once.
        let mut split = header(&[
            ("content-encoding", "gzip"),
            ("x-amz-trailer", "x-amz-checksum-crc32"),
            ("x-amz-decoded-content-length", "5"),
        ]);
        split
            .append_header("content-encoding", "aws-chunked")
            .unwrap();
        assert_eq!(client_form(&split), ClientForm::UnsignedTrailer);
        assert!(FrameCheck::new(&split).is_err());
        let no_trailer = [("content-encoding", "aws-chunked")];
        assert_eq!(client_form(&header(&no_trailer)), ClientForm::Other);
        assert!(FrameCheck::new(&header(&[("x-amz-trailer", "x-amz-checksum-crc32")])).is_err());
        assert!(FrameCheck::new(&header(&[
            ("x-amz-decoded-content-length", "5"),
            ("x-amz-trailer", "x-amz-meta-a")
        ]))
        .is_err());
    }
}
