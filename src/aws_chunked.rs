//! aws-chunked encoding with a SigV4 signature per chunk (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`),
//! computed as the body flows, so an upload of any size is signed end to end in constant memory.
//!
//! Each chunk is `hex(size);chunk-signature=<sig>\r\n<data>\r\n`, the body ends with a zero-size
//! chunk, and each signature chains on the previous one, starting from the header's ("seed")
//! signature. The signatures come from aws-sigv4's `sign::v4::sign_chunk`.
//!
//! A body the client framed itself with a checksum trailer ([`client`]) goes upstream as sent,
//! or on a `streaming` route re-framed with signed chunks and a signed trailer ([`trailer`]).

mod client;
mod trailer;

pub use client::{client_form, ClientForm, FrameCheck, UNSIGNED_TRAILER};
pub use trailer::{reframed_length, set_reframed_headers, Reframer, SIGNED_TRAILER};

use crate::error::ProxyError;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::{Bytes, BytesMut};
use pingora::http::RequestHeader;
use std::time::SystemTime;

/// Bytes of payload per chunk. S3 wants at least 8 KiB in every chunk but the last.
pub const CHUNK_SIZE: usize = 64 * 1024;
/// The header value announcing this encoding.
pub const STREAMING_PAYLOAD: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
/// `;chunk-signature=` plus 64 hex digits plus two CRLFs.
const CHUNK_OVERHEAD: u64 = 17 + 64 + 2 + 2;

/// The largest payload framed as aws-chunked: S3's largest object (5 TiB). Far below what
/// would overflow [`encoded_length`].
const MAX_DECODED: u64 = 5 << 40;

/// Refuses a payload over [`MAX_DECODED`]; `declared_by` names the header that says its size.
fn within_s3s_largest(decoded: u64, declared_by: &str) -> Result<(), ProxyError> {
    match decoded <= MAX_DECODED {
        true => Ok(()),
        false => Err(ProxyError::BadRequest(format!(
            "{declared_by} is over S3's largest object ({MAX_DECODED} bytes)"
        ))),
    }
}

/// Size on the wire of an aws-chunked body carrying `decoded` payload bytes (at most
/// [`MAX_DECODED`]).
pub fn encoded_length(decoded: u64) -> u64 {
    let chunk = CHUNK_SIZE as u64;
    let full = decoded / chunk;
    let rest = decoded % chunk;
    let frame = |size: u64| hex_len(size) + CHUNK_OVERHEAD + size;
    full * frame(chunk) + if rest > 0 { frame(rest) } else { 0 } + frame(0)
}

const fn hex_len(n: u64) -> u64 {
    if n == 0 {
        1
    } else {
        (64 - n.leading_zeros() as u64).div_ceil(4)
    }
}

/// What chunk signatures are computed from: the same identity, time and scope as the seed.
pub struct ChunkSigner {
    identity: Identity,
    region: String,
    service: String,
    time: SystemTime,
    previous: String,
}

impl ChunkSigner {
    pub fn new(
        identity: Identity,
        region: &str,
        service: &str,
        time: SystemTime,
        seed_signature: String,
    ) -> Self {
        ChunkSigner {
            identity,
            region: region.to_string(),
            service: service.to_string(),
            time,
            previous: seed_signature,
        }
    }

    /// The parameters every chunk and the trailer are signed with: the seed's.
    fn params(&self) -> aws_sigv4::sign::v4::SigningParams<'_, ()> {
        aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name(&self.service)
            .time(self.time)
            .settings(())
            .build()
            .expect("every parameter is set")
    }

    fn sign(&mut self, chunk: &Bytes) -> &str {
        let params = self.params();
        let (_, signature) = aws_sigv4::sign::v4::sign_chunk(chunk, &self.previous, &params)
            .expect("chunk signing cannot fail with credentials")
            .into_parts();
        self.previous = signature;
        &self.previous
    }
}

/// Room kept in front of each chunk's data for its size line; a full chunk's is the longest.
const LINE_ROOM: usize = hex_len(CHUNK_SIZE as u64) as usize + 17 + 64 + 2;
/// The final, empty chunk: `0;chunk-signature=<sig>\r\n\r\n`.
const FINAL_FRAME: usize = 1 + 17 + 64 + 2 + 2;
/// What one frame's buffer holds at most: size line, data, CRLF, and the final chunk.
const FRAME_CAPACITY: usize = LINE_ROOM + CHUNK_SIZE + 2 + FINAL_FRAME;

/// Turns a body, pushed piece by piece, into signed aws-chunked frames.
///
/// Each payload byte is copied once, into the buffer its frame goes out in: the data lands
/// behind room for the size line, which is written in front of it once the chunk is signed.
pub struct Encoder {
    signer: ChunkSigner,
    /// The frame being filled: [`LINE_ROOM`] bytes, then the chunk's data so far.
    frame: BytesMut,
    finished: bool,
}

impl Encoder {
    pub fn new(signer: ChunkSigner) -> Self {
        Encoder {
            signer,
            frame: BytesMut::new(),
            finished: false,
        }
    }

    /// Takes the next piece of the body and returns the frames that are complete; with `end`,
    /// also the last partial chunk and the final zero-size chunk. Holds at most one chunk.
    pub fn push(&mut self, data: &[u8], end: bool) -> Bytes {
        let mut out = Frames::default();
        let mut data = data;
        while !data.is_empty() {
            if self.frame.is_empty() {
                self.frame.reserve(FRAME_CAPACITY);
                self.frame.resize(LINE_ROOM, 0);
            }
            let room = LINE_ROOM + CHUNK_SIZE - self.frame.len();
            let take = room.min(data.len());
            self.frame.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.frame.len() == LINE_ROOM + CHUNK_SIZE {
                // The body's last byte fills this chunk: the final chunk goes in the same buffer.
                let last = end && data.is_empty();
                out.add(self.seal(last));
            }
        }
        if end && !self.finished {
            out.add(self.seal(true));
        }
        out.into_bytes()
    }

    /// Frames the chunk held, if any, and with `last` the final empty chunk after it.
    fn seal(&mut self, last: bool) -> Bytes {
        let held = std::mem::take(&mut self.frame);
        let size = held.len().saturating_sub(LINE_ROOM);
        let (mut frame, start) = if size == 0 {
            (BytesMut::with_capacity(FINAL_FRAME), 0)
        } else {
            let held = held.freeze();
            let signature = self.signer.sign(&held.slice(LINE_ROOM..));
            let line = format!("{size:x};chunk-signature={signature}\r\n");
            // The slice signed is gone: the buffer is this frame's alone again.
            let mut frame = held
                .try_into_mut()
                .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
            let start = LINE_ROOM - line.len();
            frame[start..LINE_ROOM].copy_from_slice(line.as_bytes());
            frame.extend_from_slice(b"\r\n");
            (frame, start)
        };
        if last {
            let signature = self.signer.sign(&Bytes::new());
            frame.extend_from_slice(b"0;chunk-signature=");
            frame.extend_from_slice(signature.as_bytes());
            frame.extend_from_slice(b"\r\n\r\n");
            self.finished = true;
        }
        frame.freeze().slice(start..)
    }
}

/// The frames one push completes: nearly always one, passed on without a copy.
#[derive(Default)]
struct Frames {
    first: Option<Bytes>,
    more: Option<BytesMut>,
}

impl Frames {
    fn add(&mut self, frame: Bytes) {
        match (&self.first, &mut self.more) {
            (None, _) => self.first = Some(frame),
            (Some(first), None) => {
                let mut joined = BytesMut::with_capacity(first.len() + frame.len());
                joined.extend_from_slice(first);
                joined.extend_from_slice(&frame);
                self.more = Some(joined);
            }
            (Some(_), Some(joined)) => joined.extend_from_slice(&frame),
        }
    }

    fn into_bytes(self) -> Bytes {
        match (self.first, self.more) {
            (_, Some(joined)) => joined.freeze(),
            (first, None) => first.unwrap_or_default(),
        }
    }
}

/// Rewrites the header for an aws-chunked body of `decoded` bytes (the client's
/// `Content-Length`).
pub fn set_headers(req: &mut RequestHeader, decoded: u64) -> Result<(), ProxyError> {
    within_s3s_largest(decoded, "Content-Length")?;
    let encoding = match req
        .headers
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
    {
        Some(existing) if !existing.is_empty() => format!("aws-chunked,{existing}"),
        _ => "aws-chunked".to_string(),
    };
    let encoded = encoded_length(decoded);
    let set = |req: &mut RequestHeader, name: &'static str, value: String| {
        req.insert_header(name, value)
            .map_err(|e| ProxyError::Internal(e.to_string()))
    };
    set(req, "content-encoding", encoding)?;
    set(req, "x-amz-decoded-content-length", decoded.to_string())?;
    set(req, "content-length", encoded.to_string())?;
    req.remove_header("transfer-encoding");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::Credentials;
    use std::time::{Duration, UNIX_EPOCH};

    /// The signer of the S3 documentation's examples (AKIAIOSFODNN7EXAMPLE, us-east-1,
    /// 20130524T000000Z), chained from `seed`.
    pub(super) fn docs_signer(seed: &str) -> ChunkSigner {
        let creds = Credentials::new(
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            None,
            None,
            "docs",
        );
        let time = UNIX_EPOCH + Duration::from_secs(1_369_353_600);
        ChunkSigner::new(creds.into(), "us-east-1", "s3", time, seed.into())
    }

    /// A signer with made-up keys at the epoch, for tests that compare sigproxy's output with
    /// itself (lengths, splits), chained from `seed`.
    pub(super) fn test_signer(seed: &str) -> ChunkSigner {
        let creds = Credentials::new("AKID", "SECRET", None, None, "t");
        ChunkSigner::new(creds.into(), "us-east-1", "s3", UNIX_EPOCH, seed.into())
    }

    /// The worked example from the S3 documentation ("Signature Calculations for the
    /// Authorization Header: Transferring Payload in Multiple Chunks"): 66560 bytes of 'a',
    /// seed signature 4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9.
    #[test]
    fn matches_the_s3_documentation_example() {
        let signer =
            docs_signer("4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9");
        let mut encoder = Encoder::new(signer);
        let body = vec![b'a'; 66560];
        let mut out = encoder.push(&body[..1000], false).to_vec();
        out.extend_from_slice(&encoder.push(&body[1000..], true));
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with(
            "10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n"
        ));
        assert!(text.contains(
            "\r\n400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n"
        ));
        assert!(text.ends_with(
            "\r\n0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n"
        ));
        assert_eq!(out.len() as u64, encoded_length(66560));
    }

    /// However the body arrives (pieces that fill a chunk exactly, straddle two, hold several,
    /// or end it on a chunk boundary), the frames are the same.
    #[test]
    fn frames_do_not_depend_on_how_the_body_is_split() {
        let encode = |body: &[u8], piece: usize| {
            let signer = test_signer("seed");
            let mut encoder = Encoder::new(signer);
            let mut out = Vec::new();
            let mut pieces = body.chunks(piece.max(1)).peekable();
            while let Some(p) = pieces.next() {
                out.extend_from_slice(&encoder.push(p, pieces.peek().is_none()));
            }
            if body.is_empty() {
                out.extend_from_slice(&encoder.push(&[], true));
            }
            assert_eq!(
                encoder.push(&[], true),
                Bytes::new(),
                "nothing after the end"
            );
            out
        };
        for size in [0usize, 5, CHUNK_SIZE, 2 * CHUNK_SIZE, 2 * CHUNK_SIZE + 3] {
            let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let whole = encode(&body, size);
            assert_eq!(whole.len() as u64, encoded_length(size as u64), "{size}");
            for piece in [
                1000,
                CHUNK_SIZE - 1,
                CHUNK_SIZE,
                CHUNK_SIZE + 1,
                3 * CHUNK_SIZE,
            ] {
                assert_eq!(encode(&body, piece), whole, "{size} in pieces of {piece}");
            }
            // The data between the size lines is the body, in order.
            let text = whole.clone();
            let mut decoded = Vec::new();
            let mut rest = &text[..];
            loop {
                let line_end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
                let line = std::str::from_utf8(&rest[..line_end]).unwrap();
                let n = usize::from_str_radix(line.split(';').next().unwrap(), 16).unwrap();
                assert!(line.contains(";chunk-signature="), "{line}");
                decoded.extend_from_slice(&rest[line_end + 2..line_end + 2 + n]);
                assert_eq!(&rest[line_end + 2 + n..line_end + 4 + n], b"\r\n");
                rest = &rest[line_end + 4 + n..];
                if n == 0 {
                    break;
                }
            }
            assert!(rest.is_empty());
            assert_eq!(decoded, body, "{size}");
        }
    }

    #[test]
    fn encoded_length_matches_the_encoder_for_any_size() {
        for size in [0usize, 1, 15, 16, 65535, 65536, 65537, 3 * 65536, 200_000] {
            let signer = test_signer("seed");
            let mut encoder = Encoder::new(signer);
            let body = vec![7u8; size];
            let mut total = 0;
            for piece in body.chunks(10_000) {
                total += encoder.push(piece, false).len();
            }
            total += encoder.push(&[], true).len();
            assert_eq!(total as u64, encoded_length(size as u64), "{size}");
        }
    }
}
