//! aws-chunked streaming uploads verified by s3s, an independent S3 implementation that checks
//! the seed signature and every chunk signature. Also a tampered upload that must fail.

mod common;

use common::s3s::S3s;
use common::upstream::Upstream;
use common::*;
use std::net::SocketAddr;

const ACCESS_KEY: &str = "AKIDSIGPROXYTEST";
const SECRET_KEY: &str = "sigproxy-s3s-test-secret-key";

/// s3s-fs under `root`, accepting this file's keys.
fn start_s3s(root: &std::path::Path) -> S3s {
    S3s::start(root, ACCESS_KEY, SECRET_KEY)
}

fn env() -> Vec<(String, String)> {
    common::static_keys(ACCESS_KEY, SECRET_KEY)
}

fn config(upstream: SocketAddr, payload: &str) -> String {
    format!(
        r#"credentials:
  static:
    source: default
routes:
  - upstream: http://{upstream}
    service: s3
    region: us-east-1
    credentials: static
    payload: {payload}
"#
    )
}

#[test]
fn streaming_uploads_of_every_size_pass_s3s_chunk_signature_checks() {
    let root = tempfile::tempdir().unwrap();
    let s3s = start_s3s(root.path());
    for payload in ["streaming", "unsigned"] {
        let proxy = Proxy::start_ready(&config(s3s.addr, payload), &env());
        let bucket = format!("bucket-{payload}");
        let r = proxy.send("PUT", &format!("/{bucket}"), &[], b"");
        assert_eq!(r.status, 200, "create bucket: {}", r.text());

        let sizes = [1, 8191, 65_536, 65_537, 200_000, 3 * 1024 * 1024 + 5];
        for size in sizes {
            let body = bytes(size);
            let key = format!("/{bucket}/object-{size}");
            for headers in [vec![], vec![("Expect", "100-continue")]] {
                let r = proxy.send("PUT", &key, &headers, &body);
                assert_eq!(
                    r.status,
                    200,
                    "{payload} PUT {size} {headers:?}: {}",
                    r.text()
                );
            }
            let r = proxy.get(&key);
            assert_eq!(r.status, 200, "{payload} GET {size}");
            assert_eq!(sha256_hex(&r.body), sha256_hex(&body), "{payload} {size}");
            let on_disk = std::fs::read(root.path().join(&bucket).join(format!("object-{size}")));
            assert_eq!(on_disk.unwrap(), body, "{payload} {size}: stored bytes");
        }

        // Without Content-Length the body is buffered (up to max_body_bytes) and signed.
        let body = bytes(300_000);
        let chunked = [("Transfer-Encoding", "chunked")];
        let r = proxy.send("PUT", &format!("/{bucket}/chunked"), &chunked, &body);
        assert_eq!(r.status, 200, "{payload} chunked PUT: {}", r.text());
        assert_eq!(proxy.get(&format!("/{bucket}/chunked")).body, body);
        let r = proxy.send(
            "PUT",
            &format!("/{bucket}/too-big"),
            &chunked,
            &bytes(7 * 1024 * 1024),
        );
        assert_eq!((r.status, r.error_code().as_str()), (413, "body_too_large"));

        // Keys whose encoding S3 canonicalises: s3s decodes the path and re-encodes it.
        for key in [
            "a%20b",
            "plus+sign",
            "caf%C3%A9",
            "amp%26eq%3Dx",
            "tilde~star*",
        ] {
            let r = proxy.send("PUT", &format!("/{bucket}/{key}"), &[], key.as_bytes());
            assert_eq!(r.status, 200, "{payload} odd key {key}: {}", r.text());
            let r = proxy.get(&format!("/{bucket}/{key}"));
            assert_eq!(r.body, key.as_bytes(), "{payload} odd key {key}");
        }
    }
}

#[test]
fn a_tampered_chunk_is_rejected_by_s3s() {
    let root = tempfile::tempdir().unwrap();
    let s3s = start_s3s(root.path());
    // Create the bucket directly through an honest proxy first.
    let honest = Proxy::start_ready(&config(s3s.addr, "streaming"), &env());
    assert_eq!(honest.send("PUT", "/tamper", &[], b"").status, 200);

    // 300 bytes into the body is inside the first chunk's data.
    let relay = Upstream::builder()
        .relay_to(s3s.addr)
        .flip_body_byte(300)
        .start();
    let proxy = Proxy::start_ready(&config(relay.addr, "streaming"), &env());
    let body = bytes(100_000);
    let r = proxy.send("PUT", "/tamper/object", &[], &body);
    // s3s fails the body stream on the bad chunk signature; s3s-fs reports it as a 500.
    assert!(r.status >= 400, "tampered upload accepted: {}", r.text());
    assert!(r.text().contains("<Error>"));
    assert!(
        !root.path().join("tamper/object").exists(),
        "a tampered object was stored"
    );

    // Without chunk signatures (UNSIGNED-PAYLOAD over plain HTTP) the same tampering goes
    // unnoticed: the chunk signatures are what caught it.
    let unsigned = Proxy::start_ready(&config(relay.addr, "unsigned"), &env());
    let r = unsigned.send("PUT", "/tamper/unsigned", &[], &body);
    assert_eq!(r.status, 200);
    let stored = std::fs::read(root.path().join("tamper/unsigned")).unwrap();
    assert_eq!(stored.len(), body.len());
    assert_ne!(stored, body, "the relay did not tamper");

    // The same upload through the honest proxy is accepted: the relay made the difference.
    assert_eq!(honest.send("PUT", "/tamper/object", &[], &body).status, 200);
}

#[test]
fn an_upload_over_s3s_largest_object_is_refused_before_anything_is_signed_or_sent() {
    let upstream = Upstream::builder().record().start();
    let proxy = Proxy::start_ready(&config(upstream.addr, "streaming"), &env());
    // 5 TiB + 1, and a length whose aws-chunked size overflows 64 bits.
    for length in [(5u64 << 40) + 1, 18_421_446_067_330_482_176] {
        let mut conn = Conn::open(proxy.addr);
        conn.write(
            format!("PUT /bucket/huge HTTP/1.1\r\nHost: localhost\r\nContent-Length: {length}\r\n\r\nsome")
                .as_bytes(),
        );
        let r = conn.read().expect("an answer");
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (400, "bad_request"),
            "{length}: {}",
            r.text()
        );
        assert!(
            r.text().contains("over S3's largest object"),
            "{}",
            r.text()
        );
    }
    assert_eq!(upstream.requests().len(), 0, "nothing goes upstream");
}
