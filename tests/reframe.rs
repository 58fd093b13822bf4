//! On a `streaming` S3 route, an upload the client framed as `STREAMING-UNSIGNED-PAYLOAD-TRAILER`
//! (what AWS SDKs send) goes upstream re-framed as `STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`.
//!
//! s3s-fs, an independent S3 implementation, checks it: the seed signature, every chunk
//! signature and, in this mode, the trailer's `x-amz-trailer-signature` (s3s 0.14's
//! `AwsChunkedStream` refuses a wrong one, and a missing one when chunks are signed), then the
//! checksum. A relay that flips one bit in transit shows each signature is checked.

mod common;

use common::chunked::{base64, crc32_base64, framed, put_streamed, upload_headers, Crc32};
use common::s3s::S3s;
use common::upstream::Upstream;
use common::*;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::path::Path;

const ACCESS_KEY: &str = "AKIDSIGPROXYREFRAME";
const SECRET_KEY: &str = "sigproxy-s3s-reframe-secret";
/// Extra request headers.
type Headers<'a> = &'a [(&'a str, &'a str)];

const SIGNED_TRAILER: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";

fn config(upstream: SocketAddr, payload: &str) -> String {
    format!(
        "credentials:\n  static:\n    source: default\nroutes:\n  - upstream: http://{upstream}\n    \
         service: s3\n    region: us-east-1\n    credentials: static\n    payload: {payload}\n"
    )
}

/// The keys s3s takes, and the signing process in the log (which content hash was signed).
fn env() -> Vec<(String, String)> {
    let mut env = static_keys(ACCESS_KEY, SECRET_KEY);
    env.push(("RUST_LOG".into(), "info,sigproxy::signing=debug".into()));
    env
}

/// s3s-fs serving `root`, with a bucket `bucket`.
fn s3s(root: &Path) -> S3s {
    std::fs::create_dir(root.join("bucket")).unwrap();
    S3s::start(root, ACCESS_KEY, SECRET_KEY)
}

/// PUT /bucket/`key` framed as an SDK frames it, with a `trailer` checksum.
fn put(
    proxy: &Proxy,
    key: &str,
    decoded: usize,
    trailer: &str,
    wire: &[u8],
    extra: &[(&str, &str)],
) -> Response {
    let owned = upload_headers(decoded, trailer, None);
    let mut headers: Vec<(&str, &str)> = owned
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    headers.extend_from_slice(extra);
    request(proxy.addr, "PUT", &format!("/bucket/{key}"), &headers, wire)
}

#[test]
fn reframed_uploads_of_every_size_pass_s3s_chunk_and_trailer_signature_checks() {
    let root = tempfile::tempdir().unwrap();
    let s3s = s3s(root.path());
    let proxy = Proxy::start_ready(&config(s3s.addr, "streaming"), &env());
    let sha = [("x-amz-content-sha256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER")];
    let expect = [("expect", "100-continue")];
    let chunked = [("transfer-encoding", "chunked")];
    for size in [
        0usize,
        1,
        65_535,
        65_536,
        65_537,
        200_000,
        3 * 1024 * 1024 + 5,
    ] {
        let body = bytes(size);
        let crc32 = format!("x-amz-checksum-crc32:{}", crc32_base64(&body));
        let sha256 = format!("x-amz-checksum-sha256:{}", base64(&Sha256::digest(&body)));
        let cases: [(&str, &str, Headers); 5] = [
            ("crc32", &crc32, &[]),
            ("sha256", &sha256, &[]),
            ("hash", &crc32, &sha),
            ("continue", &crc32, &expect),
            ("chunked", &crc32, &chunked),
        ];
        for (what, trailer, extra) in cases {
            let key = format!("{size}-{what}");
            let name = trailer.split(':').next().unwrap();
            let r = put(&proxy, &key, size, name, &framed(&body, trailer), extra);
            assert_eq!(r.status, 200, "{key}: {}\n{}", r.text(), proxy.log());
            let stored = std::fs::read(root.path().join("bucket").join(&key)).unwrap();
            assert!(stored == body, "{key}: stored bytes differ");
        }
    }
    // What s3s checked was the signed-trailer form: that is the content hash sigproxy signed.
    let log = proxy.log();
    assert!(log.contains(SIGNED_TRAILER), "{log}");
    assert!(!log.contains("STREAMING-UNSIGNED-PAYLOAD-TRAILER"), "{log}");

    // A wrong checksum reaches s3s intact, and s3s refuses it (BadDigest; it checks after
    // writing the file, so whether the file stays is its own affair).
    let body = bytes(200_000);
    let wrong = format!("x-amz-checksum-crc32:{}", crc32_base64(b"other"));
    let r = put(
        &proxy,
        "wrong",
        body.len(),
        "x-amz-checksum-crc32",
        &framed(&body, &wrong),
        &[],
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("BadDigest"), "{}", r.text());
}

/// 1000 bytes re-framed: `3e8;chunk-signature=<64>\r\n` (86), the data (86..1086), CRLF,
/// `0;chunk-signature=<64>\r\n` (1088..1172), `x-amz-checksum-crc32:` then the value
/// (1193..1201), CRLF, `x-amz-trailer-signature:` then the signature (1227..1291), CRLFs.
const IN_DATA: usize = 300;
const IN_FINAL_SIGNATURE: usize = 1088 + 18;
const IN_CHECKSUM: usize = 1193;
const IN_TRAILER_SIGNATURE: usize = 1227;

#[test]
fn a_bit_flipped_in_a_chunk_the_final_chunk_or_the_trailer_is_refused_by_s3s() {
    let root = tempfile::tempdir().unwrap();
    let s3s = s3s(root.path());
    let body = bytes(1000);
    let trailer = format!("x-amz-checksum-crc32:{}", crc32_base64(&body));
    let wire = framed(&body, &trailer);
    let send =
        |proxy: &Proxy, key: &str| put(proxy, key, body.len(), "x-amz-checksum-crc32", &wire, &[]);
    for (what, offset) in [
        ("data", IN_DATA),
        ("final chunk signature", IN_FINAL_SIGNATURE),
        ("checksum", IN_CHECKSUM),
        ("trailer signature", IN_TRAILER_SIGNATURE),
    ] {
        let relay = Upstream::builder()
            .relay_to(s3s.addr)
            .flip_body_byte(offset)
            .start();
        let proxy = Proxy::start_ready(&config(relay.addr, "streaming"), &env());
        let r = send(&proxy, "flipped");
        assert!(r.status >= 400, "{what}: accepted: {}", r.text());
        // A signature caught it, not the checksum (which would say BadDigest).
        assert!(!r.text().contains("BadDigest"), "{what}: {}", r.text());
        assert!(
            !root.path().join("bucket/flipped").exists(),
            "{what}: a tampered object was stored"
        );
    }

    // Forwarded as sent (an `unsigned` route), the same flip in the data is caught only by the
    // checksum: the chunk signatures are what caught it above.
    let relay = Upstream::builder()
        .relay_to(s3s.addr)
        .flip_body_byte(IN_DATA - 86 + 5)
        .start();
    let unsigned = Proxy::start_ready(&config(relay.addr, "unsigned"), &env());
    let r = send(&unsigned, "unsigned");
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("BadDigest"), "{}", r.text());

    // Untouched, the same upload is stored.
    let honest = Proxy::start_ready(&config(s3s.addr, "streaming"), &env());
    assert_eq!(send(&honest, "flipped").status, 200);
    assert_eq!(
        std::fs::read(root.path().join("bucket/flipped")).unwrap(),
        body
    );
}

#[test]
fn malformed_client_framing_is_a_400_from_sigproxy_and_nothing_is_stored() {
    let root = tempfile::tempdir().unwrap();
    let s3s = s3s(root.path());
    let proxy = Proxy::start_ready(&config(s3s.addr, "streaming"), &env());
    let body = bytes(200_000);
    let good = format!("x-amz-checksum-crc32:{}", crc32_base64(&body));
    let mut bad_size = framed(&body, &good);
    bad_size[0] = b'z';
    let mut truncated = framed(&body, &good);
    truncated.truncate(truncated.len() - good.len() - 4);
    let long = format!("x-amz-checksum-crc32:{}", "A".repeat(300));
    let other = format!("x-amz-checksum-crc32c:{}", crc32_base64(&body));
    let not_base64 = "x-amz-checksum-crc32:not-a-checksum".to_string();
    let cases = [
        ("bad chunk size", bad_size, body.len()),
        ("truncated", truncated, body.len()),
        ("oversized trailer", framed(&body, &long), body.len()),
        (
            "trailer not the one x-amz-trailer names",
            framed(&body, &other),
            body.len(),
        ),
        (
            "trailer not a checksum",
            framed(&body, &not_base64),
            body.len(),
        ),
        (
            "more than the decoded length",
            framed(&body, &good),
            body.len() - 1,
        ),
        (
            "less than the decoded length",
            framed(&body, &good),
            body.len() + 1,
        ),
    ];
    for (what, wire, decoded) in cases {
        let r = put(
            &proxy,
            "garbage",
            decoded,
            "x-amz-checksum-crc32",
            &wire,
            &[],
        );
        assert_eq!(r.status, 400, "{what}: {}", r.text());
        assert_eq!(r.error_code(), "bad_request", "{what}: {}", r.text());
        assert!(r.text().contains("aws-chunked"), "{what}: {}", r.text());
        assert!(
            !root.path().join("bucket/garbage").exists(),
            "{what}: stored"
        );
    }
}

/// 256 MiB re-framed while it streams: sigproxy's memory stays flat.
#[test]
fn a_256_mib_reframed_upload_runs_in_constant_memory() {
    const CHUNK: usize = 64 * 1024;
    const CHUNKS: usize = 256 * 16;
    let root = tempfile::tempdir().unwrap();
    let s3s = s3s(root.path());
    let proxy = Proxy::start_ready(&config(s3s.addr, "streaming"), &env());
    let trailer = "x-amz-checksum-crc32:AAAAAA==";
    let length = (CHUNKS * (7 + CHUNK + 2) + 3 + trailer.len() + 4) as u64;
    let mut crc = Crc32::default();
    let mut block = bytes(CHUNK);
    let pieces = (0..=CHUNKS).map(move |i| {
        if i == CHUNKS {
            return format!("0\r\nx-amz-checksum-crc32:{}\r\n\r\n", crc.base64()).into_bytes();
        }
        block[..8].copy_from_slice(&(i as u64).to_be_bytes());
        crc.update(&block);
        let mut piece = b"10000\r\n".to_vec();
        piece.extend_from_slice(&block);
        piece.extend_from_slice(b"\r\n");
        piece
    });
    let headers = upload_headers(CHUNKS * CHUNK, "x-amz-checksum-crc32", None);
    let before = proxy.memory_mib("VmRSS");
    let (status, text) = put_streamed(proxy.addr, "/bucket/big", &headers, length, pieces);
    let peak = proxy.memory_mib("VmHWM");
    assert_eq!(status, 200, "{text}\n{}", proxy.log());
    let stored = std::fs::metadata(root.path().join("bucket/big")).unwrap();
    assert_eq!(stored.len(), (CHUNKS * CHUNK) as u64);
    println!("RSS before the 256 MiB upload {before:.1} MiB, peak {peak:.1} MiB");
    assert!(
        peak - before < 32.0,
        "RSS grew from {before:.1} to a peak of {peak:.1} MiB over a 256 MiB upload"
    );
}

/// The headers the framing check reads, each stated twice: the check would follow one value
/// while S3 may read the other (or, for a second `Content-Encoding`, the check would not run).
/// Refused by sigproxy before anything goes upstream, on `unsigned` and `streaming` routes.
#[test]
fn repeated_framing_headers_are_a_400_and_nothing_goes_upstream() {
    let up = Upstream::builder().record().start();
    let body = bytes(1000);
    let good = format!("x-amz-checksum-crc32:{}", crc32_base64(&body));
    let wire = framed(&body, &good);
    let length = body.len().to_string();
    let mut malformed = wire.clone();
    malformed[0] = b'z';
    let cases: [(&str, Headers, &[u8]); 3] = [
        (
            "two decoded lengths",
            &[
                ("content-encoding", "aws-chunked"),
                ("x-amz-trailer", "x-amz-checksum-crc32"),
                ("x-amz-decoded-content-length", &length),
                ("x-amz-decoded-content-length", "5"),
            ],
            &wire,
        ),
        (
            "two trailers named",
            &[
                ("content-encoding", "aws-chunked"),
                ("x-amz-trailer", "x-amz-checksum-crc32"),
                ("x-amz-trailer", "x-amz-checksum-sha256"),
                ("x-amz-decoded-content-length", &length),
            ],
            &wire,
        ),
        (
            "aws-chunked in a second Content-Encoding",
            &[
                ("content-encoding", "gzip"),
                ("content-encoding", "aws-chunked"),
                ("x-amz-trailer", "x-amz-checksum-crc32"),
                ("x-amz-decoded-content-length", &length),
            ],
            &malformed,
        ),
    ];
    for payload in ["unsigned", "streaming"] {
        let proxy = Proxy::start_ready(&config(up.addr, payload), &env());
        for (what, headers, wire) in cases {
            let r = request(proxy.addr, "PUT", "/bucket/twice", headers, wire);
            assert_eq!(r.status, 400, "{payload}, {what}: {}", r.text());
            assert_eq!(r.error_code(), "bad_request", "{payload}, {what}");
            assert!(
                up.requests().is_empty(),
                "{payload}, {what}: reached the upstream"
            );
        }
    }
}

/// A body the client framed as aws-chunked with its own chunk signatures is refused, and the
/// refusal names only a form the route takes: `STREAMING-UNSIGNED-PAYLOAD-TRAILER` on S3 routes
/// that stream, "send it plain" where the body is hashed whole or the service is not S3.
#[test]
fn refusals_of_client_signed_chunks_suggest_only_what_the_route_takes() {
    let up = Upstream::builder().record().start();
    let body = bytes(1000);
    let wire = framed(
        &body,
        &format!("x-amz-checksum-crc32:{}", crc32_base64(&body)),
    );
    let length = body.len().to_string();
    let route = |service: &str, payload: &str| {
        config(up.addr, payload).replace("service: s3", &format!("service: {service}"))
    };
    for (service, payload, suggests_trailer) in [
        ("s3", "streaming", true),
        ("s3", "unsigned", true),
        ("s3", "signed", false),
        ("lambda", "signed", false),
    ] {
        let proxy = Proxy::start_ready(&route(service, payload), &env());
        for sha in [
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        ] {
            let headers = [
                ("content-encoding", "aws-chunked"),
                ("x-amz-trailer", "x-amz-checksum-crc32"),
                ("x-amz-decoded-content-length", length.as_str()),
                ("x-amz-content-sha256", sha),
            ];
            let r = request(proxy.addr, "PUT", "/bucket/own", &headers, &wire);
            let what = format!("{service} {payload} {sha}");
            assert_eq!(r.status, 400, "{what}: {}", r.text());
            assert_eq!(
                r.text().contains("STREAMING-UNSIGNED-PAYLOAD-TRAILER"),
                suggests_trailer,
                "{what}: {}",
                r.text()
            );
            assert!(r.text().contains("plain"), "{what}: {}", r.text());
        }
    }
    assert!(
        up.requests().is_empty(),
        "a refused body reached the upstream"
    );
}
