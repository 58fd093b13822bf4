//! A client's `STREAMING-UNSIGNED-PAYLOAD-TRAILER` upload re-framed, on a `streaming` route, as
//! `STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`: sigproxy's own chunks, each signed, chained from
//! the seed signature; then the final empty chunk, the client's checksum trailer exactly as it
//! sent it, and `x-amz-trailer-signature`, the trailer signed (`AWS4-HMAC-SHA256-TRAILER`)
//! on the final chunk's signature. S3 checks every signature and the checksum: a checksum the
//! client got wrong is refused by S3, never recomputed here.
//!
//! The body is re-chunked as it streams ([`FrameCheck`] reads the client's framing, [`Encoder`]
//! writes sigproxy's), holding at most one chunk. Its length is known before the first byte:
//! the payload's (`x-amz-decoded-content-length`) and the trailer's (a checksum's base64 has a
//! fixed size). The final chunk and the trailer go upstream only once the client's body has
//! ended well-formed, so a malformed body never reaches S3 whole.

use super::{encoded_length, within_s3s_largest, ChunkSigner, Encoder, FrameCheck};
use crate::error::ProxyError;
use aws_smithy_runtime_api::http::Headers;
use bytes::{Bytes, BytesMut};
use pingora::http::RequestHeader;

/// The content hash of an aws-chunked body with signed chunks and a signed trailer.
pub const SIGNED_TRAILER: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
/// The trailer line carrying the trailer's signature.
const TRAILER_SIGNATURE: &str = "x-amz-trailer-signature";

/// Size on the wire of the re-framed body for the upload `check` follows.
pub fn reframed_length(check: &FrameCheck) -> Result<u64, ProxyError> {
    let decoded = check.decoded_length();
    within_s3s_largest(decoded, "x-amz-decoded-content-length")?;
    let (name, value) = check.trailer_shape();
    // The final chunk ends in one CRLF, not two; then `name:value`, the signature and a CRLF.
    let trailer = name.len() + 1 + value + 2 + TRAILER_SIGNATURE.len() + 1 + 64 + 2 + 2;
    Ok(encoded_length(decoded) - 2 + trailer as u64)
}

/// Rewrites the upstream header `req` for the re-framed body (`x-amz-content-sha256` is the
/// signer's). `Content-Encoding` (`aws-chunked`), `x-amz-trailer` and
/// `x-amz-decoded-content-length` stay as the client sent them.
pub fn set_reframed_headers(req: &mut RequestHeader, check: &FrameCheck) -> Result<(), ProxyError> {
    let length = reframed_length(check)?;
    req.insert_header("content-length", length.to_string())
        .map_err(|e| ProxyError::Internal(e.to_string()))?;
    req.remove_header("transfer-encoding");
    Ok(())
}

/// Turns the client's unsigned-trailer body, pushed piece by piece, into signed frames.
pub struct Reframer {
    check: FrameCheck,
    encoder: Encoder,
    /// The final chunk and the trailer have been written.
    finished: bool,
}

impl Reframer {
    /// `check` follows the client's body; `signer` starts from the header's seed signature.
    pub fn new(check: FrameCheck, signer: ChunkSigner) -> Self {
        Reframer {
            check,
            encoder: Encoder::new(signer),
            finished: false,
        }
    }

    /// Takes the next piece of the client's body; returns what goes upstream for it. With
    /// `end`, the body must have ended well-formed, and the last chunks and the trailer follow.
    pub fn push(&mut self, data: &[u8], end: bool) -> Result<Bytes, ProxyError> {
        let mut out = BytesMut::new();
        let encoder = &mut self.encoder;
        self.check.feed_with(data, end, |payload| {
            out.extend_from_slice(&encoder.push(payload, false));
        })?;
        if end && !self.finished {
            self.finished = true;
            let (name, value) = self.check.trailer().ok_or_else(|| {
                ProxyError::Internal("a finished aws-chunked body has no trailer".into())
            })?;
            // The last partial chunk and the empty one: `0;chunk-signature=…\r\n\r\n`, whose
            // second CRLF gives way to the trailer.
            let last = self.encoder.push(&[], true);
            out.extend_from_slice(last.strip_suffix(b"\r\n").unwrap_or(&last));
            let signature = self.encoder.signer.sign_trailer(name, value);
            out.extend_from_slice(
                format!("{name}:{value}\r\n{TRAILER_SIGNATURE}:{signature}\r\n\r\n").as_bytes(),
            );
        }
        Ok(out.freeze())
    }
}

impl ChunkSigner {
    /// The signature of the trailer `name:value`, chained on the last chunk's signature.
    fn sign_trailer(&mut self, name: &str, value: &str) -> String {
        let params = self.params();
        let mut trailer = Headers::new();
        trailer.insert(name.to_string(), value.to_string());
        let (_, signature) = aws_sigv4::sign::v4::sign_trailer(&trailer, &self.previous, &params)
            .expect("trailer signing cannot fail with credentials")
            .into_parts();
        self.previous = signature.clone();
        signature
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{docs_signer, test_signer};
    use super::*;

    fn header(decoded: usize, trailer: &str) -> RequestHeader {
        let mut req = RequestHeader::build("PUT", b"/b/k", None).unwrap();
        req.insert_header("x-amz-decoded-content-length", decoded.to_string())
            .unwrap();
        req.insert_header("x-amz-trailer", trailer.to_string())
            .unwrap();
        req
    }

    /// `body` as a client frames it unsigned: chunks of `chunk` bytes, then the trailer.
    fn client_body(body: &[u8], chunk: usize, trailer: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for piece in body.chunks(chunk) {
            out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            out.extend_from_slice(piece);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("0\r\n{trailer}\r\n\r\n").as_bytes());
        out
    }

    fn reframe(req: &RequestHeader, signer: ChunkSigner, wire: &[u8], piece: usize) -> Vec<u8> {
        let mut reframer = Reframer::new(FrameCheck::new(req).unwrap(), signer);
        let pieces: Vec<&[u8]> = wire.chunks(piece).collect();
        let mut out = Vec::new();
        for (i, p) in pieces.iter().enumerate() {
            out.extend_from_slice(&reframer.push(p, i + 1 == pieces.len()).unwrap());
        }
        out
    }

    /// The worked example of "Signature calculation: Including trailing headers" in the S3
    /// documentation: 66560 bytes of 'a' with a CRC32C trailer, seed signature 106e2a8a….
    /// Every chunk signature and the trailer signature are the documented ones.
    #[test]
    fn matches_the_s3_documentation_trailer_example() {
        let body = vec![b'a'; 66560];
        let wire = client_body(&body, 8000, "x-amz-checksum-crc32c:sOO8/Q==");
        let req = header(body.len(), "x-amz-checksum-crc32c");
        let seed = "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e";
        for piece in [1, 777, 65536, wire.len()] {
            let out = reframe(&req, docs_signer(seed), &wire, piece);
            let text = String::from_utf8_lossy(&out);
            assert!(text.starts_with(
                "10000;chunk-signature=b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2\r\n"
            ));
            assert!(text.contains(
                "\r\n400;chunk-signature=1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7\r\n"
            ));
            assert!(text.ends_with(
                "\r\n0;chunk-signature=2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992\r\n\
                 x-amz-checksum-crc32c:sOO8/Q==\r\n\
                 x-amz-trailer-signature:d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n\r\n"
            ));
            let check = FrameCheck::new(&req).unwrap();
            assert_eq!(
                out.len() as u64,
                reframed_length(&check).unwrap(),
                "{piece}"
            );
        }
    }

    /// A flipped bit anywhere in the chunk data or the trailer changes a signature the
    /// verifier would recompute: the chain is over the bytes, not only their lengths.
    #[test]
    fn the_signatures_cover_the_data_and_the_trailer() {
        let body = vec![b'a'; 66560];
        let req = header(body.len(), "x-amz-checksum-crc32c");
        let honest = reframe(
            &req,
            docs_signer("seed"),
            &client_body(&body, 9000, "x-amz-checksum-crc32c:sOO8/Q=="),
            4096,
        );
        let mut flipped = body.clone();
        flipped[70_000 % body.len()] ^= 1;
        let data = reframe(
            &req,
            docs_signer("seed"),
            &client_body(&flipped, 9000, "x-amz-checksum-crc32c:sOO8/Q=="),
            4096,
        );
        let trailer = reframe(
            &req,
            docs_signer("seed"),
            &client_body(&body, 9000, "x-amz-checksum-crc32c:tOO8/Q=="),
            4096,
        );
        let signatures = |out: &[u8]| -> Vec<String> {
            String::from_utf8_lossy(out)
                .split("signature")
                .skip(1)
                .map(|s| s[1..65].to_string())
                .collect()
        };
        let (honest, data, trailer) =
            (signatures(&honest), signatures(&data), signatures(&trailer));
        assert_eq!(
            honest.len(),
            4,
            "two data chunks, the empty one, the trailer"
        );
        assert_ne!(honest[1], data[1], "the second chunk's data changed");
        assert_eq!(honest[..3], trailer[..3]);
        assert_ne!(honest[3], trailer[3], "the trailer changed");
    }

    #[test]
    fn a_second_end_adds_nothing() {
        let req = header(5, "x-amz-checksum-crc32");
        let mut reframer = Reframer::new(FrameCheck::new(&req).unwrap(), docs_signer("seed"));
        let wire = client_body(b"hello", 5, "x-amz-checksum-crc32:NhCmhg==");
        let first = reframer.push(&wire, true).unwrap();
        assert!(String::from_utf8_lossy(&first).contains("x-amz-trailer-signature:"));
        assert!(reframer.push(&[], true).unwrap().is_empty());
        assert!(reframer.push(b"x", true).is_err());
    }

    #[test]
    fn lengths_match_for_every_size_and_checksum() {
        let values = [
            ("x-amz-checksum-crc32", "AAAAAA=="),
            ("x-amz-checksum-crc64nvme", "AAAAAAAAAAA="),
            ("x-amz-checksum-sha1", "2jmj7l5rSw0yVb/vlWAYkK/YBwk="),
            (
                "x-amz-checksum-sha256",
                "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpKWZG3hSuFU=",
            ),
        ];
        for size in [0usize, 1, 65535, 65536, 65537, 200_000] {
            for (name, value) in values {
                let req = header(size, name);
                let signer = test_signer("seed");
                let wire = client_body(&vec![1u8; size], 8192, &format!("{name}:{value}"));
                let out = reframe(&req, signer, &wire, 5000);
                let check = FrameCheck::new(&req).unwrap();
                assert_eq!(out.len() as u64, reframed_length(&check).unwrap());
                assert!(String::from_utf8_lossy(&out).contains(&format!("\r\n{name}:{value}\r\n")));
            }
        }
        let huge = header(0, "x-amz-checksum-crc32");
        let mut huge = huge;
        huge.insert_header("x-amz-decoded-content-length", u64::MAX.to_string())
            .unwrap();
        assert!(reframed_length(&FrameCheck::new(&huge).unwrap()).is_err());
    }

    /// A malformed body fails, and the final chunk (what makes the upload complete) is never
    /// among what went out before the failure.
    #[test]
    fn a_malformed_body_fails_before_the_final_chunk() {
        let body = vec![b'b'; 100_000];
        let good = "x-amz-checksum-crc32:AAAAAA==";
        let mut bad_size = client_body(&body, 65536, good);
        let second = 5 + 2 + 65536 + 2; // "10000\r\n" + data + CRLF
        bad_size[second] = b'z';
        let mut truncated = client_body(&body, 65536, good);
        truncated.truncate(truncated.len() - 10);
        let long = format!("x-amz-checksum-crc32:{}", "A".repeat(200));
        let cases = [
            ("bad size", bad_size),
            ("truncated", truncated),
            ("oversized trailer", client_body(&body, 65536, &long)),
            (
                "other trailer",
                client_body(&body, 65536, "x-amz-checksum-crc32c:AAAAAA=="),
            ),
            (
                "trailer signature",
                client_body(
                    &body,
                    65536,
                    &format!("{good}\r\nx-amz-trailer-signature:00"),
                ),
            ),
            ("short", client_body(&body[..99_999], 65536, good)),
        ];
        for (what, wire) in cases {
            let req = header(body.len(), "x-amz-checksum-crc32");
            let signer = test_signer("s");
            let mut reframer = Reframer::new(FrameCheck::new(&req).unwrap(), signer);
            let mut sent = Vec::new();
            let pieces: Vec<&[u8]> = wire.chunks(1000).collect();
            let mut failed = None;
            for (i, p) in pieces.iter().enumerate() {
                match reframer.push(p, i + 1 == pieces.len()) {
                    Ok(out) => sent.extend_from_slice(&out),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            let failed = failed.unwrap_or_else(|| panic!("{what}: accepted"));
            assert!(
                matches!(failed, ProxyError::BadRequest(_)),
                "{what}: {failed}"
            );
            assert!(
                failed.to_string().contains("aws-chunked"),
                "{what}: {failed}"
            );
            let text = String::from_utf8_lossy(&sent);
            assert!(
                !text.contains("\n0;chunk-signature"),
                "{what}: final chunk sent"
            );
        }
    }
}
