//! Uploads in the form current AWS SDKs and CLIs send them: `Content-Encoding: aws-chunked`,
//! unsigned chunks and a checksum trailer (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`). On `unsigned`
//! routes sigproxy forwards them as sent, signing the header; on `streaming` routes it re-frames
//! them with signed chunks and a signed trailer (tests/reframe.rs has s3s check those
//! signatures). Either way the service checks the client's checksum.
//!
//! boto3 and the AWS CLI (which use the trailer only over HTTPS) go through sigproxy's HTTPS
//! listener to moto S3 (auth enforced) on both kinds of route. moto checks the header's
//! signature and reads both framings, but checks neither chunk signatures nor the checksum, so a
//! wrong checksum is sent to s3s-fs, which does.

mod common;

use common::chunked::{crc32_base64, framed};
use common::s3s::S3s;
use common::*;
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A CA and a server certificate for 127.0.0.1 under `dir`, made by tests/peers/tls_tool.py.
fn make_certs(dir: &Path) {
    tls_tool(&[
        json!({"op": "ca", "dir": dir}),
        json!({"op": "cert", "serial": 7, "self_signed": false,
               "cert": dir.join("tls.crt"), "key": dir.join("tls.key")}),
    ]);
}

/// The `tls:` block for the certificates [`make_certs`] made under `dir`.
fn tls_config(dir: &Path) -> String {
    format!(
        "tls:\n  cert_file: {}\n  key_file: {}\n",
        dir.join("tls.crt").display(),
        dir.join("tls.key").display()
    )
}

/// Runs tests/peers/trailer_client.py (boto3, and the AWS CLI with `cli_mib` MiB) against
/// `proxy`'s HTTPS listener, asserting that every check passed and that sigproxy's memory grew
/// less than 32 MiB over the CLI's upload. `extra`: more arguments for the client.
fn run_trailer_client(proxy: &Proxy, certs: &Path, bucket: &str, cli_mib: u32, extra: &[&str]) {
    let work = tempfile::tempdir().unwrap();
    let mut child = Command::new(python())
        .arg(repo_root().join("tests/peers/trailer_client.py"))
        .args([
            "--endpoint",
            &format!("https://127.0.0.1:{}", proxy.addr.port()),
        ])
        .args(["--ca", &certs.join("ca.pem").display().to_string()])
        .args(["--bucket", bucket])
        .args(["--dir", &work.path().display().to_string()])
        .args(["--cli-mib", &cli_mib.to_string()])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tests/peers/trailer_client.py");
    let mut out = String::new();
    let mut before = None;
    let mut peak = 0.0f64;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if line == "cli-start" {
            before = Some(proxy.memory_mib("VmRSS"));
        }
        if line == "cli-done" {
            peak = proxy.memory_mib("VmHWM");
        }
        out.push_str(&line);
        out.push('\n');
    }
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        status.success() && out.contains("all trailer checks passed"),
        "{bucket}: client failed\n--- stdout\n{out}\n--- stderr\n{stderr}\n--- proxy log\n{}",
        proxy.log()
    );
    if let Some(before) = before {
        println!(
            "{bucket}: RSS before the {cli_mib} MiB upload {before:.1} MiB, peak {peak:.1} MiB"
        );
        assert!(
            peak - before < 32.0,
            "RSS grew from {before:.1} to a peak of {peak:.1} MiB over a {cli_mib} MiB upload"
        );
    }
}

/// The log level that shows the signing process: which content hash each request was signed
/// with.
const SIGNING_LOG: (&str, &str) = ("RUST_LOG", "info,sigproxy::signing=debug");

/// Every upload (a PUT with an aws-chunked body) `proxy` signed was signed as `signed`.
fn assert_uploads_signed_as(proxy: &Proxy, signed: &str) {
    let log = proxy.log();
    let hashes: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("sigproxy::signing") && l.contains("PUT"))
        .filter_map(|l| l.split("STREAMING-").nth(1))
        .map(|rest| {
            let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'));
            &rest[..end.unwrap_or(rest.len())]
        })
        .collect();
    assert!(hashes.len() >= 2, "no signed uploads in the log\n{log}");
    for hash in hashes {
        assert_eq!(format!("STREAMING-{hash}"), signed);
    }
}

#[test]
fn boto3_and_the_aws_cli_upload_with_checksum_trailers_through_https() {
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let peers = Peers::start();
    // The streaming route's CLI upload is smaller (debug builds hash slowly); tests/reframe.rs
    // watches memory over 256 MiB re-framed.
    for (payload, cli_mib, signed) in [
        ("unsigned", 64, "STREAMING-UNSIGNED-PAYLOAD-TRAILER"),
        (
            "streaming",
            24,
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        ),
    ] {
        let routes = route(
            "s3",
            peers.get("sts_endpoint"),
            "s3",
            &format!("    payload: {payload}\n"),
        );
        let mut env = peers.caller_env();
        env.push((SIGNING_LOG.0.into(), SIGNING_LOG.1.into()));
        let config = format!("{}{}", tls_config(dir.path()), peers.config(&routes));
        let proxy = Proxy::start_ready(&config, &env);
        run_trailer_client(
            &proxy,
            dir.path(),
            &format!("trailer-{payload}"),
            cli_mib,
            &[],
        );
        // The uploads went to moto as this route sends them.
        assert_uploads_signed_as(&proxy, signed);
    }
}

/// The same clients through a streaming route to s3s-fs, which checks every chunk signature and
/// the trailer signature of what sigproxy re-framed from their uploads.
#[test]
fn boto3_and_the_aws_cli_through_a_streaming_route_pass_s3s_signature_checks() {
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let root = tempfile::tempdir().unwrap();
    let s3s = S3s::start(root.path(), ACCESS_KEY, SECRET_KEY);
    let config = format!(
        "{}credentials:\n  static:\n    source: default\nroutes:\n  - upstream: http://{}\n    \
         service: s3\n    region: us-east-1\n    credentials: static\n    payload: streaming\n",
        tls_config(dir.path()),
        s3s.addr
    );
    let mut env = static_keys(ACCESS_KEY, SECRET_KEY);
    env.push((SIGNING_LOG.0.into(), SIGNING_LOG.1.into()));
    let proxy = Proxy::start_ready(&config, &env);
    // s3s checks every part's chunk and trailer signatures, but s3s-fs checks the checksum of
    // whole-object PUTs only (boto3's put_object here) and keeps none for a multipart upload.
    let no_multipart = ["--no-multipart-checksum"];
    run_trailer_client(&proxy, dir.path(), "reframed", 24, &no_multipart);
    assert_uploads_signed_as(&proxy, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER");
}

const ACCESS_KEY: &str = "AKIDSIGPROXYTRAILER";
const SECRET_KEY: &str = "sigproxy-s3s-trailer-secret";

fn put(proxy: &Proxy, key: &str, decoded: usize, wire: &[u8], sha: Option<&str>) -> Response {
    let decoded = decoded.to_string();
    let mut headers = vec![
        ("content-encoding", "aws-chunked"),
        ("x-amz-trailer", "x-amz-checksum-crc32"),
        ("x-amz-decoded-content-length", decoded.as_str()),
    ];
    if let Some(sha) = sha {
        headers.push(("x-amz-content-sha256", sha));
    }
    request(proxy.addr, "PUT", &format!("/bucket/{key}"), &headers, wire)
}

#[test]
fn a_wrong_trailer_checksum_is_refused_by_s3_and_malformed_framing_by_sigproxy() {
    assert_eq!(crc32_base64(b"hello world"), "DUoRhQ==");
    assert_eq!(common::chunked::base64(b"hello"), "aGVsbG8=");
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("bucket")).unwrap();
    let s3s = S3s::start(root.path(), ACCESS_KEY, SECRET_KEY);
    let addr = s3s.addr;
    let config = format!(
        "credentials:\n  static:\n    source: default\nroutes:\n  - upstream: http://{addr}\n    \
         service: s3\n    region: us-east-1\n    credentials: static\n    payload: unsigned\n"
    );
    let proxy = Proxy::start_ready(&config, &static_keys(ACCESS_KEY, SECRET_KEY));
    let body: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let good = format!("x-amz-checksum-crc32:{}", crc32_base64(&body));

    // As boto3 sends it with credentials, and without (no content hash): both stored.
    for (key, sha) in [
        ("signed-hash", Some("STREAMING-UNSIGNED-PAYLOAD-TRAILER")),
        ("no-hash", None),
    ] {
        let r = put(&proxy, key, body.len(), &framed(&body, &good), sha);
        assert_eq!(r.status, 200, "{key}: {}\n{}", r.text(), proxy.log());
        assert_eq!(
            std::fs::read(root.path().join("bucket").join(key)).unwrap(),
            body
        );
    }

    // A wrong checksum: s3s-fs refuses it (BadDigest; it checks after writing the file, so
    // whether the file stays is its own affair).
    let wrong = format!("x-amz-checksum-crc32:{}", crc32_base64(b"something else"));
    let r = put(&proxy, "tampered", body.len(), &framed(&body, &wrong), None);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("BadDigest"), "{}", r.text());

    // Framing that does not add up never reaches S3 whole: sigproxy stops it.
    let mut garbage = framed(&body, &good);
    garbage[0] = b'z';
    let short = framed(
        &body[..1000],
        &format!("x-amz-checksum-crc32:{}", crc32_base64(&body[..1000])),
    );
    for (what, wire, decoded) in [
        ("bad size line", garbage, body.len()),
        ("short body", short, 2000),
    ] {
        let started = Instant::now();
        let r = put(&proxy, "garbage", decoded, &wire, None);
        assert_eq!(r.status, 400, "{what}: {}", r.text());
        assert!(r.text().contains("aws-chunked"), "{what}: {}", r.text());
        assert!(started.elapsed() < Duration::from_secs(20));
    }
    assert!(!root.path().join("bucket/garbage").exists());

    // Bytes after a well-formed upload, arriving later: the upload is refused, and S3, whose
    // HTTP body (the client's Content-Length) never ended, stores nothing.
    let wire = framed(&body, &good);
    let junk = b"junk".to_vec();
    let length = (wire.len() + junk.len()) as u64;
    let pieces = [wire, junk].into_iter().enumerate().map(|(i, piece)| {
        if i == 1 {
            std::thread::sleep(Duration::from_millis(300));
        }
        piece
    });
    let headers = common::chunked::upload_headers(body.len(), "x-amz-checksum-crc32", None);
    let (status, text) =
        common::chunked::put_streamed(proxy.addr, "/bucket/late-junk", &headers, length, pieces);
    assert_eq!(status, 400, "{text}");
    assert!(
        !root.path().join("bucket/late-junk").exists(),
        "S3 stored an upload sigproxy refused"
    );

    // Chunks signed with the client's own keys cannot be re-signed: refused as before.
    let r = put(
        &proxy,
        "client-signed",
        body.len(),
        &framed(&body, &good),
        Some("STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("signed by the client"), "{}", r.text());

    // A route that signs the body's SHA-256 cannot take it either.
    let signed = Proxy::start_ready(
        &config.replace("payload: unsigned", "payload: signed"),
        &static_keys(ACCESS_KEY, SECRET_KEY),
    );
    let r = put(
        &signed,
        "on-signed",
        body.len(),
        &framed(&body, &good),
        None,
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("payload: signed"), "{}", r.text());
}

/// An upstream that takes one connection, reads one chunked request from it and answers `200`,
/// then sends back (on the channel) whatever else arrived on that connection within 500 ms.
fn one_chunked_request_upstream() -> (std::net::SocketAddr, std::sync::mpsc::Receiver<Vec<u8>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let mut out = conn.try_clone().unwrap();
        let mut reader = BufReader::new(conn);
        let mut line = String::new();
        // The head, then chunks to the zero-size one and the empty line after its trailers.
        while reader.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
            line.clear();
        }
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            let size = usize::from_str_radix(line.trim_end(), 16).unwrap();
            if size == 0 {
                while reader.read_line(&mut line).unwrap() > 0 && !line.ends_with("\r\n\r\n") {}
                break;
            }
            let mut data = vec![0; size + 2];
            std::io::Read::read_exact(&mut reader, &mut data).unwrap();
        }
        out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
        reader
            .get_ref()
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut rest = Vec::new();
        let _ = std::io::Read::read_to_end(&mut reader, &mut rest);
        let _ = tx.send(rest);
    });
    (addr, rx)
}

#[test]
fn a_chunked_upload_on_an_unsigned_route_reaches_the_upstream_as_one_request() {
    let (upstream, rest) = one_chunked_request_upstream();
    let config = format!(
        "credentials:\n  static:\n    source: default\nroutes:\n  - upstream: http://{upstream}\n    \
         service: s3\n    region: us-east-1\n    credentials: static\n    payload: unsigned\n"
    );
    let proxy = Proxy::start_ready(&config, &static_keys(ACCESS_KEY, SECRET_KEY));
    let body = b"hello world";
    let wire = framed(
        body,
        &format!("x-amz-checksum-crc32:{}", crc32_base64(body)),
    );
    let mut raw = format!(
        "PUT /bucket/chunked HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\
         content-encoding: aws-chunked\r\nx-amz-trailer: x-amz-checksum-crc32\r\n\
         x-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER\r\n\
         x-amz-decoded-content-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    // The client's own HTTP chunks: two, then the end.
    for piece in wire.chunks(wire.len() / 2 + 1) {
        raw.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        raw.extend_from_slice(piece);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let mut conn = Conn::open(proxy.addr);
    conn.write(&raw);
    let r = conn.read().expect("an answer");
    assert_eq!(r.status, 200, "{}", r.text());
    let rest = rest.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(
        rest.is_empty(),
        "bytes after the request's end reach the upstream as another request: {:?}",
        String::from_utf8_lossy(&rest)
    );
}
