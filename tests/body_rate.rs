//! The request body's deadline (`request_body_timeout`, `min_request_body_rate`): a client
//! sending its body at a trickle, each byte inside the route's `read_timeout`, is cut with a
//! `408` instead of holding its connection (and its place among `max_connections`) for ever;
//! an upstream slow to answer a complete body, or a fast large upload, is not.

mod common;

use common::upstream::{Reply, Upstream};
use common::{Conn, Proxy};
use std::io::{BufRead, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The grace and rate every test here runs with: a body must be in by 1 s + 10 ms a byte.
const LIMITS: &str = "request_body_timeout: 1s\nmin_request_body_rate: 100\n";

/// How long a trickling client keeps sending before it gives up (the test then fails).
const TRICKLE_FOR: Duration = Duration::from_secs(8);

/// An upstream that reads each body whole, remembers it, and answers `200`, 3 s later for a
/// path holding `slow`.
fn upstream() -> Upstream {
    Upstream::builder()
        .record()
        .answer(|req| {
            if req.target.contains("slow") {
                std::thread::sleep(Duration::from_secs(3));
            }
            Reply::ok(format!("got {} bytes", req.body.len()))
        })
        .start()
}

/// `limits` (top-level keys), a signed Lambda route under /signed/ (forwarded by sigproxy, read
/// timeout 10 s), a pass-through route under /open/ (pingora's loop, its default read
/// timeout), an S3 route under /s3/ whose uploads stream unsigned (pingora's loop) and one
/// under /s3s/ whose uploads stream as signed aws-chunks (pingora's loop, body filter), all to
/// `upstream`.
fn start(upstream: &Upstream, limits: &str) -> Proxy {
    start_to(&upstream.url(), limits)
}

fn start_to(upstream: &str, limits: &str) -> Proxy {
    let routes = common::signed_and_open(upstream, "    read_timeout: 10s\n");
    let s3 = format!(
        "  - name: s3\n    match: {{ path_prefix: /s3/ }}\n    strip_prefix: true\n    upstream: {}\n    service: s3\n    region: us-east-1\n    credentials: app\n    payload: unsigned\n    read_timeout: 10s\n",
        upstream
    );
    let s3s = s3
        .replace("name: s3\n", "name: s3s\n")
        .replace("/s3/", "/s3s/")
        .replace("payload: unsigned", "payload: streaming");
    let env = common::static_keys("AKIDBODYRATE", "body-rate-secret");
    Proxy::start_ready(&format!("{limits}{routes}{s3}{s3s}"), &env)
}

/// What a trickling client got: the answer (as text) and how long after its head it came.
struct Cut {
    answer: String,
    after: Duration,
}

/// Sends `head`, then `body` one byte every 300 ms (within any read_timeout), until the proxy
/// answers or closes, or [`TRICKLE_FOR`] is over; then reads what came back (for at most 5 s).
fn trickle(proxy: &Proxy, head: &str, body: &[u8]) -> Cut {
    let mut conn = TcpStream::connect(proxy.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    conn.write_all(head.as_bytes()).unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let mut bytes = body.iter().cycle();
    let mut after = None;
    while started.elapsed() < TRICKLE_FOR {
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                after.get_or_insert(started.elapsed());
                answer.extend_from_slice(&buf[..n]);
                break;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if conn.write_all(&[*bytes.next().unwrap()]).is_err() {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    let after = after.unwrap_or_else(|| started.elapsed());
    // The rest of the answer, until the proxy closes.
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    while let Ok(n) = conn.read(&mut buf) {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    Cut {
        answer: String::from_utf8_lossy(&answer).into_owned(),
        after,
    }
}

fn assert_cut(cut: &Cut, what: &str) {
    assert!(
        cut.answer.starts_with("HTTP/1.1 408"),
        "{what}: after {:?}: {:?}",
        cut.after,
        cut.answer
    );
    assert!(
        cut.answer.contains("\"code\":\"body_too_slow\""),
        "{what}: {}",
        cut.answer
    );
    assert!(
        cut.answer
            .to_ascii_lowercase()
            .contains("connection: close"),
        "{what}: {}",
        cut.answer
    );
    // 1 s of grace and ~30 ms for the bytes sent meanwhile: cut well before any read_timeout.
    assert!(
        cut.after > Duration::from_millis(800) && cut.after < Duration::from_secs(4),
        "{what}: cut after {:?}",
        cut.after
    );
}

fn cut_count(proxy: &Proxy) -> f64 {
    proxy
        .metric("sigproxy_request_body_timeouts_total", &[])
        .unwrap_or(0.0)
}

#[test]
fn a_body_sent_at_a_trickle_is_cut_with_408_on_every_path() {
    let up = upstream();
    let proxy = start(&up, LIMITS);
    let declared = 1_000_000;
    for (n, path) in [
        "/open/put",
        "/signed/invoke",
        "/s3/bucket/key",
        "/s3s/bucket/key",
    ]
    .into_iter()
    .enumerate()
    {
        let head =
            format!("PUT {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {declared}\r\n\r\n");
        let cut = trickle(&proxy, &head, b"x");
        assert_cut(&cut, path);
        assert_eq!(cut_count(&proxy), (n + 1) as f64, "{path}");
    }
    // Asking for `100 Continue` and sending anyway, without waiting for it, buys nothing.
    for path in ["/open/expect", "/s3/bucket/expect"] {
        let head = format!(
            "PUT {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {declared}\r\nExpect: 100-continue\r\n\r\n"
        );
        assert_cut(&trickle(&proxy, &head, b"x"), path);
    }
    assert_eq!(cut_count(&proxy), 6.0);
    // Each access line says why.
    let why = "error=\"the request body arrived slower than min_request_body_rate (100 bytes/s) after request_body_timeout (1s)\"";
    for route in ["open", "signed", "s3", "s3s"] {
        proxy.wait_for(&format!("{route}'s access line"), || {
            proxy.log().lines().any(|l| {
                l.contains(&format!("route=\"{route}\""))
                    && l.contains("status=408")
                    && l.contains(why)
            })
        });
    }
    // Nothing whole reached the upstream: the bodies it saw were cut short.
    for req in up.requests() {
        assert!(req.body.len() < declared, "{} got a whole body", req.target);
    }
    // Others are served meanwhile, and after.
    assert_eq!(
        Conn::open(proxy.addr).send("POST", "/open/a", b"hi").status,
        200
    );
}

/// An upstream that reads whatever comes and never answers: one waiting for the end of a
/// chunked body (the stand-in above reads Content-Length bodies only). Its URL.
fn sink() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(20)));
                let mut buf = [0u8; 4096];
                while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    url
}

#[test]
fn a_chunked_body_sent_at_a_trickle_is_cut_too() {
    let proxy = start_to(&sink(), LIMITS);
    // A chunk of ten bytes that never ends, then more.
    let body = b"a\r\n0123456789\r\n";
    for path in ["/open/chunked", "/signed/chunked"] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        assert_cut(&trickle(&proxy, &head, body), path);
    }
    assert_eq!(cut_count(&proxy), 2.0);
}

#[test]
fn an_upstream_slow_to_answer_a_complete_body_is_not_cut() {
    let up = upstream();
    let proxy = start(&up, LIMITS);
    for path in ["/open/slow", "/signed/slow", "/s3/bucket/slow"] {
        let started = Instant::now();
        let mut conn = Conn::open(proxy.addr);
        let r = conn
            .try_send("PUT", path, b"a complete body")
            .unwrap_or_else(|| panic!("{path}: no answer"));
        let took = started.elapsed();
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.text(), "got 15 bytes", "{path}");
        assert!(
            took >= Duration::from_secs(3),
            "{path}: the upstream took {took:?}"
        );
        // The connection is kept, and serves the next request.
        assert_eq!(conn.send("GET", "/open/next", b"").status, 200, "{path}");
    }
    // Signed aws-chunks, from a plain body and re-framed from the SDKs' own framing.
    let started = Instant::now();
    let r = Conn::open(proxy.addr).try_send("PUT", "/s3s/bucket/slow", b"a complete body");
    let r = r.expect("/s3s/: no answer");
    assert_eq!(r.status, 200, "/s3s/: {}", r.text());
    assert!(started.elapsed() >= Duration::from_secs(3));
    let body = b"a complete framed body";
    let trailer = format!(
        "x-amz-checksum-crc32:{}",
        common::chunked::crc32_base64(body)
    );
    let framed = common::chunked::framed(body, &trailer);
    let headers = common::chunked::upload_headers(body.len(), "x-amz-checksum-crc32", None);
    let started = Instant::now();
    let (status, text) = common::chunked::put_streamed(
        proxy.addr,
        "/s3s/bucket/slow-framed",
        &headers,
        framed.len() as u64,
        std::iter::once(framed),
    );
    assert_eq!(status, 200, "re-framed: {text}");
    assert!(started.elapsed() >= Duration::from_secs(3));
    assert_eq!(cut_count(&proxy), 0.0);
}

#[test]
fn a_fast_large_upload_passes_a_tight_deadline() {
    let up = upstream();
    // 4 MiB must come within 1 s + 4 s.
    let proxy = start(
        &up,
        "request_body_timeout: 1s\nmin_request_body_rate: 1000000\n",
    );
    let body = vec![b'z'; 4 << 20];
    for path in ["/open/big", "/signed/big", "/s3/bucket/big"] {
        let mut conn = Conn::open(proxy.addr);
        let r = conn
            .try_send("PUT", path, &body)
            .unwrap_or_else(|| panic!("{path}: no answer"));
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.text(), format!("got {} bytes", 4 << 20), "{path}");
    }
    assert_eq!(cut_count(&proxy), 0.0);
}

#[test]
fn a_rate_of_zero_turns_the_deadline_off() {
    let up = upstream();
    let proxy = start(&up, "request_body_timeout: 1s\nmin_request_body_rate: 0\n");
    let mut conn = TcpStream::connect(proxy.addr).unwrap();
    conn.write_all(b"PUT /signed/off HTTP/1.1\r\nHost: localhost\r\nContent-Length: 8\r\n\r\n")
        .unwrap();
    // 2.4 s for 8 bytes: over the grace, yet taken.
    for byte in b"abcdefgh" {
        std::thread::sleep(Duration::from_millis(300));
        conn.write_all(&[*byte]).unwrap();
    }
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = [0u8; 512];
    let n = conn.read(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(cut_count(&proxy), 0.0);
}

#[test]
fn trickling_clients_cannot_hold_every_place() {
    let up = upstream();
    let proxy = Arc::new(start(&up, &format!("{LIMITS}max_connections: 3\n")));
    // Mid-body, none of them is idle or dribbling a head: nothing else could make room.
    let trickling: Vec<_> = (0..3)
        .map(|i| {
            let proxy = proxy.clone();
            std::thread::spawn(move || {
                let head = format!(
                    "PUT /open/hold{i} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000000\r\n\r\n"
                );
                trickle(&proxy, &head, b"x")
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(2500));
    let r = Conn::open(proxy.addr).try_send("POST", "/open/newcomer", b"hi");
    let r = r.expect("the newcomer got no answer");
    assert_eq!(r.status, 200, "{}", r.text());
    for t in trickling {
        assert_cut(&t.join().unwrap(), "holder");
    }
    assert_eq!(cut_count(&proxy), 3.0);
}

/// A hand-written upstream (`common::upstream` reads a whole body before it answers anything,
/// so it can neither stall a body nor be late with a `100`): it takes a request's head, waits
/// `delay`, sends `100 Continue` first when `send_continue`, then reads the body as fast as it
/// comes and answers `200` `got N bytes`, closing. Its URL.
fn delaying_upstream(delay: Duration, send_continue: bool) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
                let mut reader = std::io::BufReader::new(conn.try_clone().unwrap());
                let mut declared = 0usize;
                loop {
                    let mut line = String::new();
                    if !matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
                        return;
                    }
                    let line = line.trim_end().to_ascii_lowercase();
                    if line.is_empty() {
                        break;
                    }
                    if let Some(v) = line.strip_prefix("content-length:") {
                        declared = v.trim().parse().unwrap_or(0);
                    }
                }
                std::thread::sleep(delay);
                if send_continue {
                    let _ = conn.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
                }
                let mut body = vec![0u8; declared];
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                let text = format!("got {declared} bytes");
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                );
                let _ = conn.write_all(answer.as_bytes());
            });
        }
    });
    url
}

#[test]
fn an_upstream_slow_to_take_a_body_does_not_cut_a_fast_client() {
    // The upstream reads nothing for 4 s: the socket buffers fill up, sigproxy stops reading
    // the client, and the client (far faster than the rate) waits on sigproxy, not the other
    // way round. None of that time is the client's.
    let proxy = start_to(
        &delaying_upstream(Duration::from_secs(4), false),
        "request_body_timeout: 1s\nmin_request_body_rate: 10000000\n",
    );
    let declared = 24 << 20;
    let piece = vec![b'w'; 1 << 20];
    for path in ["/open/big", "/s3/bucket/big"] {
        let mut conn = TcpStream::connect(proxy.addr).unwrap();
        let head = format!(
            "PUT {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {declared}\r\nConnection: close\r\n\r\n"
        );
        conn.write_all(head.as_bytes()).unwrap();
        // 1 MiB, then 10 ms of nothing: at most ~100 MB/s, ten times the rate asked for.
        for _ in 0..declared / piece.len() {
            if conn.write_all(&piece).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        conn.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut answer = Vec::new();
        let _ = conn.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 200"), "{path}: {answer}");
        assert!(
            answer.ends_with(&format!("got {declared} bytes")),
            "{path}: {answer}"
        );
    }
    assert_eq!(cut_count(&proxy), 0.0);
}

#[test]
fn waiting_for_the_upstreams_100_continue_is_not_the_clients_time() {
    // The client waits for `100 Continue` before it sends a byte; the upstream takes 2 s to
    // send it (past the 1 s grace). Then the body comes at once.
    let proxy = start_to(&delaying_upstream(Duration::from_secs(2), true), LIMITS);
    for path in ["/open/expect", "/s3/bucket/expect"] {
        let mut conn = TcpStream::connect(proxy.addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let head = format!(
            "PUT {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
        );
        conn.write_all(head.as_bytes()).unwrap();
        let mut first = [0u8; 512];
        let n = conn.read(&mut first).unwrap();
        let first = String::from_utf8_lossy(&first[..n]).into_owned();
        assert!(first.starts_with("HTTP/1.1 100"), "{path}: {first}");
        conn.write_all(b"hello").unwrap();
        let mut rest = Vec::new();
        let _ = conn.read_to_end(&mut rest);
        let answer = format!("{first}{}", String::from_utf8_lossy(&rest));
        assert!(answer.contains("HTTP/1.1 200"), "{path}: {answer}");
        assert!(answer.ends_with("got 5 bytes"), "{path}: {answer}");
    }
    assert_eq!(cut_count(&proxy), 0.0);
}
