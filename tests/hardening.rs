//! Hardening: bad input gets a clear error and reaches nothing; access control refuses before
//! signing; upstream faults are answered and counted.
//!
//! The upstream here is a recording HTTP server, so every test can assert exactly what reached
//! it. Signed routes use static keys from the environment: no STS is needed to test what
//! happens before signing.

mod common;

use common::upstream::{Reply, Upstream};
use common::{free_port, poll, Conn, Proxy};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECRET: &str = "hardening-secret-key-never-logged";

/// A keep-alive upstream that records every request and answers 200 `ok`. Paths starting
/// `/reset` get a response cut off half-way; `/expired`, Lambda's answer to an expired session
/// token.
fn recorder() -> Upstream {
    Upstream::builder()
        .record()
        .answer(|req| {
            if req.target.starts_with("/reset") {
                // Promise 1000 bytes, send 100, hang up.
                Reply::ok(vec![b'x'; 1000]).cut_off(100)
            } else if req.target.starts_with("/switch") {
                // Switching protocols, unasked, then bytes that look like an answer.
                Reply::new(101, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nno")
            } else if req.target.starts_with("/expired") {
                let body = r#"{"Message":"The security token included in the request is expired"}"#;
                Reply::new(403, body).header("x-amzn-ErrorType", "ExpiredTokenException")
            } else {
                Reply::ok("ok")
            }
        })
        .start()
}

fn env() -> Vec<(String, String)> {
    common::static_keys("AKIDHARDENING", SECRET)
}

/// A signed route under /signed/ and a pass-through route under /open/, both to `upstream`.
fn routes(upstream: SocketAddr, signed_extra: &str) -> String {
    let limits = format!("    max_body_bytes: 1000\n    read_timeout: 1s\n{signed_extra}");
    common::signed_and_open(&format!("http://{upstream}"), &limits)
}

#[test]
fn bad_input_gets_a_clear_error_and_reaches_nothing() {
    let upstream = recorder();
    let proxy = Proxy::start_ready(
        &format!("max_header_bytes: 4096\n{}", routes(upstream.addr, "")),
        &env(),
    );
    let big_header = format!(
        "GET /signed/x HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n",
        "a".repeat(5000)
    );
    // (what, request bytes, status, JSON error code). Heads pingora's parser refuses before any
    // phase runs (a malformed request line, control bytes, framing) get sigproxy's JSON 400 too.
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("malformed request line", b"GARBAGE\r\n\r\n".to_vec(), 400, "bad_request"),
        ("HTTP/1.1 without Host", b"GET /signed/x HTTP/1.1\r\n\r\n".to_vec(), 400, "bad_request"),
        (
            "two Host headers",
            b"GET /signed/x HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n\r\n".to_vec(),
            400,
            "bad_request",
        ),
        (
            "control byte in a header value",
            b"GET /signed/x HTTP/1.1\r\nHost: localhost\r\nX-A: a\x01b\r\n\r\n".to_vec(),
            400,
            "bad_request",
        ),
        (
            "a signed header that is not printable ASCII",
            b"GET /signed/x HTTP/1.1\r\nHost: localhost\r\nX-Amz-Meta-Name: caf\xe9\r\n\r\n".to_vec(),
            400,
            "bad_request",
        ),
        (
            "header section over max_header_bytes",
            big_header.into_bytes(),
            431,
            "headers_too_large",
        ),
        (
            "Content-Length and Transfer-Encoding together",
            b"POST /open/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n".to_vec(),
            400,
            "bad_request",
        ),
        (
            "Transfer-Encoding twice",
            b"POST /open/x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
            400,
            "bad_request",
        ),
        (
            "a transfer coding besides chunked",
            b"POST /open/x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n".to_vec(),
            400,
            "bad_request",
        ),
        (
            "chunked not last",
            b"POST /open/x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked, gzip\r\n\r\n".to_vec(),
            400,
            "bad_request",
        ),
        (
            "two different Content-Lengths",
            b"POST /open/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab".to_vec(),
            400,
            "bad_request",
        ),
        (
            "invalid percent-encoding in the path",
            b"GET /signed/a%zz HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
            400,
            "bad_request",
        ),
        (
            "invalid percent-encoding in the query",
            b"GET /open/a?x=%ff HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
            400,
            "bad_request",
        ),
        (
            "asterisk-form target",
            b"OPTIONS * HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
            400,
            "bad_request",
        ),
        (
            "unknown route",
            b"GET /nowhere HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
            404,
            "no_route",
        ),
        (
            "TRACE would echo the signed headers back",
            b"TRACE /open/x HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
            405,
            "method_not_allowed",
        ),
        (
            "CONNECT",
            b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n".to_vec(),
            405,
            "method_not_allowed",
        ),
        (
            "body over max_body_bytes",
            [
                &b"POST /signed/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1001\r\n\r\n"[..],
                &[b'x'; 1001][..],
            ]
            .concat(),
            413,
            "body_too_large",
        ),
        (
            "chunked body that grows past max_body_bytes",
            [
                &b"POST /signed/x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
                &b"3e8\r\n"[..],
                &[b'x'; 1000][..],
                &b"\r\n1\r\nx\r\n0\r\n\r\n"[..],
            ]
            .concat(),
            413,
            "body_too_large",
        ),
    ];
    for (what, bytes, status, code) in &cases {
        let r = proxy
            .raw(bytes)
            .unwrap_or_else(|| panic!("{what}: no response"));
        assert_eq!(r.status, *status, "{what}");
        assert_eq!(r.header("content-type"), Some("application/json"), "{what}");
        assert_eq!(r.error_code(), *code, "{what}");
        let message = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(message.len() > 10, "{what}: {message}");
        if *status == 405 {
            assert!(r.header("allow").unwrap().contains("GET"), "{what}");
        }
    }
    // The heads the parser refused (request line, control byte, chunked not last, two
    // Content-Lengths, two Hosts) are counted as such.
    let malformed = [("reason", "malformed")];
    proxy.wait_for_metric("sigproxy_request_heads_refused_total", &malformed);
    assert_eq!(
        proxy.metric("sigproxy_request_heads_refused_total", &malformed),
        Some(5.0)
    );
    assert_eq!(
        (upstream.requests().len(), upstream.connections()),
        (0, 0),
        "bad input reached the upstream"
    );
    assert!(!proxy.log().contains("panicked"), "{}", proxy.log());
    // Still serving, and the upstream sees exactly the good requests. A header that is not
    // signed is opaque: UTF-8 in it is forwarded as it came.
    assert_eq!(proxy.get("/signed/fine").status, 200);
    let disposition = "attachment; filename=\"caf\u{e9}.txt\"";
    let r = proxy.send(
        "GET",
        "/open/fine",
        &[("Content-Disposition", disposition)],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(upstream.requests().len(), 2);
    let last = upstream.last_request();
    assert_eq!(last.header("content-disposition"), Some(disposition));
}

#[test]
fn a_client_that_stops_mid_body_is_timed_out_and_released() {
    let upstream = recorder();
    let proxy = Proxy::start_ready(&routes(upstream.addr, ""), &env());
    let mut stalled = Vec::new();
    for _ in 0..20 {
        let mut conn = Conn::open(proxy.addr);
        conn.write(
            b"POST /signed/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 500\r\n\r\nonly this",
        );
        stalled.push(conn);
    }
    let started = Instant::now();
    for conn in &mut stalled {
        let r = conn.read().expect("a 408");
        assert_eq!((r.status, r.error_code().as_str()), (408, "client_timeout"));
    }
    // read_timeout is 1 s.
    assert!(started.elapsed() < Duration::from_secs(5));
    let in_flight = || proxy.metric("sigproxy_requests_in_flight", &[("route", "signed")]);
    poll(Duration::from_secs(1), || in_flight() == Some(0.0));
    assert_eq!(in_flight(), Some(0.0), "resources of stalled requests held");
    assert_eq!(upstream.requests().len(), 0);
}

#[test]
fn a_client_that_leaves_before_a_slow_answer_is_logged_as_gone() {
    let upstream = Upstream::builder()
        .answer(|req| {
            if req.target.contains("slow") {
                std::thread::sleep(Duration::from_millis(700));
            }
            Reply::ok(req.target.clone())
        })
        .start();
    let proxy = Proxy::start_ready(&routes(upstream.addr, ""), &env());
    for route in ["signed", "open"] {
        let mut conn = Conn::open(proxy.addr);
        conn.write(
            format!("GET /{route}/slow-gone HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes(),
        );
        std::thread::sleep(Duration::from_millis(200));
        drop(conn);
        proxy.wait_for(&format!("{route}'s access line"), || {
            proxy.log().lines().any(|l| {
                l.contains(&format!("route=\"{route}\"")) && l.contains("path=\"/slow-gone\"")
            })
        });
        let line = proxy
            .log()
            .lines()
            .find(|l| l.contains(&format!("route=\"{route}\"")) && l.contains("/slow-gone"))
            .unwrap()
            .to_string();
        assert!(
            line.contains("status=499")
                && line.contains("the client went away before the answer came"),
            "{route}: an answer nobody waited for is not logged as delivered: {line}"
        );
        let gone = [("route", route), ("method", "GET"), ("code", "499")];
        assert_eq!(proxy.metric("sigproxy_requests_total", &gone), Some(1.0));
        // The client's doing: the access line says it, no ERROR line calls an operator.
        assert!(!proxy.log().contains("ERROR"), "{}", proxy.log());

        // A client that sends its next request while waiting still gets its answer; the
        // connection, a byte of that request taken, closes after it.
        let mut conn = Conn::open(proxy.addr);
        let first = format!("GET /{route}/slow-first HTTP/1.1\r\nHost: localhost\r\n\r\n");
        conn.write(first.as_bytes());
        std::thread::sleep(Duration::from_millis(200));
        conn.write(b"GET /open/next HTTP/1.1\r\nHost: localhost\r\n\r\n");
        let r = conn.read().expect("the first request's answer");
        assert_eq!(
            (r.status, r.text()),
            (200, "/slow-first".to_string()),
            "{route}"
        );
    }
}

/// An upstream that answers GETs on a kept-alive connection, and a POST after its head only:
/// `early`, then it closes without reading the body (the kernel resets the connection). Counts
/// the POSTs it saw.
fn early_answering_upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let posts = Arc::new(AtomicUsize::new(0));
    let seen = posts.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut out = conn;
                loop {
                    let mut head = String::new();
                    while !head.ends_with("\r\n\r\n") {
                        if reader.read_line(&mut head).unwrap_or(0) == 0 {
                            return;
                        }
                    }
                    if head.starts_with("POST") {
                        seen.fetch_add(1, Ordering::SeqCst);
                        let _ = out.write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nearly",
                        );
                        std::thread::sleep(Duration::from_millis(100));
                        return;
                    }
                    let _ = out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                }
            });
        }
    });
    (addr, posts)
}

#[test]
fn a_post_the_upstream_answered_early_is_not_sent_twice() {
    let (upstream, posts) = early_answering_upstream();
    let limits = "    max_body_bytes: 33554432\n    read_timeout: 5s\n";
    let proxy = Proxy::start_ready(
        &common::signed_and_open(&format!("http://{upstream}"), limits),
        &env(),
    );
    // The signed route's forwarder, which sends a body it has read whole. (Larger pass-through
    // bodies stream on pingora's loop, which answers early while the client still sends.)
    let mut conn = Conn::open(proxy.addr);
    // Pools a connection to the upstream.
    let warm = conn.try_send("GET", "/signed/warm", b"").unwrap();
    assert_eq!(warm.status, 200);
    // More than the socket buffers hold: writing it fails once the upstream has gone.
    let body = vec![b'x'; 24 << 20];
    let r = conn.try_send("POST", "/signed/x", &body);
    assert_eq!(
        posts.load(Ordering::SeqCst),
        1,
        "the upstream may have acted on it; a second copy would act again"
    );
    // Its answer came before it stopped reading: it is the request's.
    let r = r.expect("an answer");
    assert_eq!((r.status, r.text()), (200, "early".to_string()));
}

#[test]
fn an_early_answer_from_an_upstream_that_stops_reading_is_relayed_not_timed_out() {
    // It answers after the head, then neither reads the body nor closes, for longer than the
    // route's read_timeout: the body's write times out, and the answer is the request's.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        if let Some(Ok(conn)) = listener.incoming().next() {
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut head = String::new();
            while !head.ends_with("\r\n\r\n") && reader.read_line(&mut head).unwrap_or(0) > 0 {}
            let mut out = conn;
            let _ = out.write_all(
                b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 5\r\nConnection: close\r\n\r\nearly",
            );
            std::thread::sleep(Duration::from_secs(6));
        }
    });
    let limits = "    max_body_bytes: 33554432\n    read_timeout: 1s\n";
    let proxy = Proxy::start_ready(
        &common::signed_and_open(&format!("http://{upstream}"), limits),
        &env(),
    );
    let mut conn = Conn::open(proxy.addr);
    let r = conn
        .try_send("POST", "/signed/x", &vec![b'x'; 24 << 20])
        .expect("an answer");
    assert_eq!(
        (r.status, r.text()),
        (413, "early".to_string()),
        "{}",
        proxy.log()
    );
}

#[test]
fn a_client_that_stalls_a_streamed_upload_is_timed_out_not_the_upstream() {
    let upstream = recorder();
    let open = format!(
        "routes:\n  - match: {{ path_prefix: /open/ }}\n    strip_prefix: true\n    \
         upstream: http://{}\n    read_timeout: 1s\n",
        upstream.addr
    );
    let proxy = Proxy::start_ready(&open, &env());
    // Over 64 KiB: pingora's loop streams it, waiting for the upstream's answer meanwhile.
    let mut conn = Conn::open(proxy.addr);
    conn.write(b"POST /open/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 300000\r\n\r\n");
    conn.write(&[b'x'; 100_000]);
    let started = Instant::now();
    let r = conn.read().expect("an answer");
    // read_timeout is 1 s; request_body_timeout (20 s) has not run out.
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (408, "client_timeout"),
        "the upstream waited for the body the client did not send: {}",
        r.text()
    );
    let timeouts = [("route", "route0"), ("kind", "timeout")];
    assert_eq!(
        proxy.metric("sigproxy_upstream_errors_total", &timeouts),
        None
    );
}

#[test]
fn a_bearer_token_guards_the_traffic_port_and_never_goes_upstream() {
    let upstream = recorder();
    let dir = tempfile::tempdir().unwrap();
    let token = "tok-0123456789abcdef-XYZ";
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let proxy = Proxy::start_ready(
        &format!(
            r#"access:
  bearer_token_file: {}
{}"#,
            token_file.display(),
            routes(upstream.addr, "")
        ),
        &env(),
    );
    let bearer = format!("Bearer {token}");
    let wrong = format!("Bearer {token}x");
    for (what, headers) in [
        ("no token", vec![]),
        ("wrong token", vec![("Authorization", wrong.as_str())]),
        (
            "another scheme",
            vec![("Authorization", "Basic dXNlcjpwYXNz")],
        ),
    ] {
        for path in ["/signed/x", "/open/x", "/nowhere"] {
            let r = proxy.send("GET", path, &headers, b"");
            assert_eq!(
                (r.status, r.error_code().as_str()),
                (401, "unauthorized"),
                "{what} {path}"
            );
            assert!(
                r.json()["error"].get("route").is_none(),
                "route named to a stranger"
            );
            assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
        }
    }
    assert_eq!(upstream.requests().len(), 0);

    let r = proxy.send("GET", "/signed/x", &[("Authorization", &bearer)], b"");
    assert_eq!(r.status, 200);
    let last = upstream.last_request();
    let auth = last.header("authorization").unwrap();
    assert!(auth.starts_with("AWS4-HMAC-SHA256 "), "{auth}");
    let r = proxy.send("GET", "/open/x", &[("Authorization", &bearer)], b"");
    assert_eq!(r.status, 200);
    assert_eq!(upstream.last_request().header("authorization"), None);

    // Two Authorization headers: neither counts, whichever comes first.
    for pair in [[&bearer, &wrong], [&wrong, &bearer]] {
        let headers = pair.map(|v| ("Authorization", v.as_str()));
        let r = proxy.send("GET", "/open/x", &headers, b"");
        assert_eq!((r.status, r.error_code().as_str()), (400, "bad_request"));
    }
    assert_eq!(upstream.requests().len(), 2);

    assert_eq!(proxy.denied("signed", "bearer_token"), Some(3.0));
    assert!(!proxy.log().contains(token), "the token was logged");
}

#[test]
fn only_allowed_client_addresses_get_through() {
    let upstream = recorder();
    let config = |cidrs: &str| {
        format!(
            r#"access:
  allowed_clients: [{cidrs}]
{}"#,
            routes(upstream.addr, "")
        )
    };
    let elsewhere = Proxy::start_ready(&config("10.0.0.0/8, fd00::/8"), &env());
    let r = elsewhere.get("/signed/x");
    assert_eq!((r.status, r.error_code().as_str()), (403, "forbidden"));
    assert!(
        r.json()["error"].get("route").is_none(),
        "route named to a stranger"
    );
    // Counted when the request is logged, just after the answer went out.
    let labels = [("route", "signed"), ("reason", "client_address")];
    elsewhere.wait_for_metric("sigproxy_denied_requests_total", &labels);
    assert_eq!(elsewhere.denied("signed", "client_address"), Some(1.0));
    assert_eq!(upstream.requests().len(), 0);

    let here = Proxy::start_ready(&config("127.0.0.1/32"), &env());
    assert_eq!(here.get("/signed/x").status, 200);
    assert_eq!(upstream.requests().len(), 1);
}

#[test]
fn a_route_allow_list_refuses_other_methods_and_paths_before_signing() {
    let upstream = recorder();
    let allow = r#"    allow:
      - methods: [GET, HEAD]
        paths: ["/reports/**"]
      - methods: [PUT]
        paths: ["/uploads/*.csv"]
"#;
    let proxy = Proxy::start_ready(&routes(upstream.addr, allow), &env());
    let cases: [(&str, &str, u16); 13] = [
        ("GET", "/signed/reports/2024/a.csv", 200),
        // Escaped dots are dots: this is /reports/x, and that is what the upstream is sent.
        ("GET", "/signed/secret/%2e%2e/reports/x", 200),
        ("HEAD", "/signed/reports/a.csv", 200),
        ("PUT", "/signed/uploads/new.csv", 200),
        ("PUT", "/signed/reports/a.csv", 403),
        ("DELETE", "/signed/reports/a.csv", 403),
        ("GET", "/signed/secret", 403),
        ("GET", "/signed/reports", 403),
        ("PUT", "/signed/uploads/deep/new.csv", 403),
        // Every spelling of a path outside the prefix is refused.
        ("GET", "/signed/reports/../secret", 403),
        ("GET", "/signed/reports/%2e%2e/secret", 403),
        // A '..' behind an escaped '/' is refused whatever the allow list says: an upstream
        // that decodes it would climb out of what was routed and checked.
        ("GET", "/signed/reports/..%2Fsecret", 400),
        // ...and no spelling of a path outside it gets in.
        ("GET", "/signed/secret/..%2Freports/x", 400),
    ];
    for (method, path, status) in cases {
        let r = proxy.send(method, path, &[], if method == "PUT" { b"x" } else { b"" });
        assert_eq!(r.status, status, "{method} {path}");
        if status == 403 {
            assert_eq!(r.error_code(), "forbidden", "{method} {path}");
            assert_eq!(r.json()["error"]["route"], "signed");
        }
    }
    assert_eq!(
        upstream.requests().len(),
        4,
        "only allowed requests reach the upstream"
    );
    let paths: Vec<String> = upstream.requests().into_iter().map(|r| r.target).collect();
    assert_eq!(
        paths,
        [
            "/reports/2024/a.csv",
            "/reports/x",
            "/reports/a.csv",
            "/uploads/new.csv"
        ]
    );
    // PUT is granted on /uploads/, so PUT on /reports/ is refused for its path.
    assert_eq!(proxy.denied("signed", "method"), Some(1.0));
    assert_eq!(proxy.denied("signed", "path"), Some(6.0));
    assert!(proxy.log().contains("forbidden") || proxy.log().contains("allow list"));
    // The pass-through route has no allow list.
    assert_eq!(proxy.send("DELETE", "/open/anything", &[], b"").status, 200);
}

#[test]
fn an_upstream_that_breaks_off_mid_response_closes_the_client_connection_and_is_counted() {
    let upstream = recorder();
    let proxy = Proxy::start_ready(&routes(upstream.addr, ""), &env());
    for route in ["signed", "open"] {
        let mut conn = Conn::open(proxy.addr);
        conn.write(format!("GET /{route}/reset HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes());
        let head = conn.read_until(b"\r\n\r\n");
        assert!(head.starts_with(b"HTTP/1.1 200"), "{route}");
        // 100 bytes come, then the connection closes before the promised 1000.
        let rest = conn.read_to_end();
        assert!(rest.len() < 1000, "{route}: {} bytes", rest.len());
        let resets = proxy.metric(
            "sigproxy_upstream_errors_total",
            &[("route", route), ("kind", "reset")],
        );
        assert_eq!(resets, Some(1.0), "{route}");
    }
    assert_eq!(proxy.get("/signed/fine").status, 200);
}

#[test]
fn a_signed_request_that_asked_for_no_upgrade_is_never_answered_101() {
    let upstream = recorder();
    let proxy = Proxy::start_ready(&routes(upstream.addr, ""), &env());
    let r = proxy.get("/signed/switch");
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.error_code(), "upstream_unreachable");
    // Counted when the request is logged, which may come just after the client has its answer.
    let labels = [("route", "signed"), ("kind", "reset")];
    proxy.wait_for_metric("sigproxy_upstream_errors_total", &labels);
    assert_eq!(
        proxy.metric("sigproxy_upstream_errors_total", &labels),
        Some(1.0)
    );
    assert_eq!(proxy.get("/signed/fine").status, 200);
}

#[test]
fn http_1_0_clients_are_forwarded_as_http_1_1_over_pooled_connections() {
    let upstream = recorder();
    let proxy = Proxy::start_ready(&routes(upstream.addr, ""), &env());
    for i in 0..3 {
        let r = proxy
            .raw(format!(
                "GET /signed/old/{i} HTTP/1.0\r\nHost: localhost\r\n\r\n"
            ))
            .expect("an answer");
        assert_eq!(r.status, 200);
    }
    assert_eq!(upstream.requests().len(), 3);
    // HTTP/1.0 upstream would have closed the connection after each request.
    assert_eq!(upstream.connections(), 1, "one pooled upstream connection");
}

#[test]
fn idle_upstream_connections_are_dropped_after_upstream_idle_timeout() {
    let upstream = recorder();
    let extra = "    upstream_idle_timeout: 1s\n";
    let proxy = Proxy::start_ready(&routes(upstream.addr, extra), &env());
    assert_eq!(proxy.get("/signed/a").status, 200);
    assert_eq!(proxy.get("/signed/b").status, 200);
    assert_eq!(upstream.connections(), 1, "reused while fresh");
    std::thread::sleep(Duration::from_millis(1600));
    assert_eq!(proxy.get("/signed/c").status, 200);
    assert_eq!(
        upstream.connections(),
        2,
        "not reused once idle past the timeout"
    );
}

#[test]
fn an_unreachable_upstream_is_a_json_502_on_both_kinds_of_route() {
    // The upstream is gone: 502 on both kinds of route, JSON, nothing hangs.
    let port = free_port();
    let proxy = Proxy::start_ready(
        &routes(format!("127.0.0.1:{port}").parse().unwrap(), ""),
        &env(),
    );
    for path in ["/signed/x", "/open/x"] {
        let r = proxy.get(path);
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (502, "upstream_unreachable"),
            "{path}"
        );
    }
}

#[test]
fn an_expired_token_answer_that_fresh_keys_cannot_fix_is_relayed_at_once() {
    // Keys from the environment never expire: no refresh can replace them, so AWS's 403 goes
    // back to the client as it came, without waiting for one.
    let upstream = recorder();
    let proxy = Proxy::start_ready(&routes(upstream.addr, ""), &env());
    for _ in 0..2 {
        let started = Instant::now();
        let r = proxy.send("POST", "/signed/expired", &[], b"payload");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(r.status, 403);
        assert_eq!(r.header("x-amzn-errortype"), Some("ExpiredTokenException"));
        assert!(r.text().contains("security token"));
    }
    assert_eq!(upstream.requests().len(), 2, "sent once each, not retried");
    assert_eq!(
        proxy.metric(
            "sigproxy_upstream_retries_total",
            &[("route", "signed"), ("reason", "expired_token")]
        ),
        None
    );
}

/// Raw bytes in one write on a fresh connection; everything read until the proxy closes (at
/// most 5 s).
fn exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn.write_all(bytes).unwrap();
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// Two requests in one write (HTTP/1.1 pipelining), or a second one hidden behind the first's
/// body: the second never skips a check. sigproxy does not pipeline: it answers the first and
/// closes, and the second reaches nothing. Body framing that two parsers could read two ways
/// is refused before anything goes upstream.
#[test]
fn a_pipelined_or_smuggled_second_request_reaches_nothing() {
    let upstream = recorder();
    let dir = tempfile::tempdir().unwrap();
    let token = "tok-0123456789abcdef-XYZ";
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let proxy = Proxy::start_ready(
        &format!(
            "access:\n  bearer_token_file: {}\n{}",
            token_file.display(),
            routes(upstream.addr, "")
        ),
        &env(),
    );
    let auth = format!("Authorization: Bearer {token}\r\n");
    let head = |method: &str, path: &str, extra: &str| {
        format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n{extra}")
    };
    let smuggled = "GET /open/smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let first = head("GET", "/open/first", &format!("{auth}\r\n"));
    let signed = head("GET", "/signed/first", &format!("{auth}\r\n"));
    // (what, bytes, the statuses answered, the requests that reached the upstream)
    let cases: Vec<(&str, String, &[&str], &[&str])> = vec![
        ("no token", format!("{first}{smuggled}"), &["200"], &["GET /first"]),
        (
            "after a signed request",
            format!("{signed}{smuggled}"),
            &["200"],
            &["GET /first"],
        ),
        (
            "another Host",
            format!("{first}{}", head("GET", "/open/smuggled", &format!("Host: evil.example\r\n{auth}\r\n"))),
            &["200"],
            &["GET /first"],
        ),
        (
            "a web page's Origin",
            format!("{first}{}", head("GET", "/open/smuggled", &format!("Origin: https://evil.example\r\n{auth}\r\n"))),
            &["200"],
            &["GET /first"],
        ),
        (
            "TRACE",
            format!("{first}{}", head("TRACE", "/open/smuggled", &format!("{auth}\r\n"))),
            &["200"],
            &["GET /first"],
        ),
        (
            "a path leaving its prefix",
            format!("{first}{}", head("GET", "/open/../signed/smuggled", &format!("{auth}\r\n"))),
            &["200"],
            &["GET /first"],
        ),
        (
            "a request that passes every check",
            format!("{first}{}", head("GET", "/open/smuggled", &format!("{auth}\r\n"))),
            &["200"],
            &["GET /first"],
        ),
        (
            "after a refused one",
            format!("{}{}", head("GET", "/open/refused", "\r\n"), head("GET", "/open/smuggled", &format!("{auth}\r\n"))),
            &["401"],
            &[],
        ),
        (
            "behind an empty body",
            format!("{}{smuggled}", head("POST", "/open/first", &format!("{auth}Content-Length: 0\r\n\r\n"))),
            &["200"],
            &["POST /first"],
        ),
        (
            "behind the last chunk",
            format!("{}0\r\n\r\n{smuggled}", head("POST", "/open/first", &format!("{auth}Transfer-Encoding: chunked\r\n\r\n"))),
            &["200"],
            &["POST /first"],
        ),
        (
            "Content-Length and chunked",
            format!("{}0\r\n\r\n{smuggled}", head("POST", "/open/x", &format!("{auth}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"))),
            &["400"],
            &[],
        ),
        (
            "Content-Length and chunked on the second",
            format!("{first}{}0\r\n\r\n{smuggled}", head("POST", "/open/smuggled", &format!("{auth}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"))),
            &["200"],
            &["GET /first"],
        ),
        (
            "a Content-Length list",
            format!("{}abc", head("POST", "/open/x", &format!("{auth}Content-Length: 3, 3\r\n\r\n"))),
            &["400"],
            &[],
        ),
        (
            "a signed Content-Length",
            format!("{}abc", head("POST", "/open/x", &format!("{auth}Content-Length: +3\r\n\r\n"))),
            &["400"],
            &[],
        ),
        (
            "a folded header hiding Transfer-Encoding",
            format!("{}abc", head("POST", "/open/x", &format!("{auth}X-A: a\r\n Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"))),
            &["400"],
            &[],
        ),
        (
            "a space before the colon",
            format!("{}abc", head("POST", "/open/x", &format!("{auth}Transfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\n"))),
            &["400"],
            &[],
        ),
        (
            "chunked over HTTP/1.0",
            format!("POST /open/x HTTP/1.0\r\nHost: localhost\r\n{auth}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
            &["400"],
            &[],
        ),
        (
            "a bare CR",
            format!("GET /open/x HTTP/1.1\rHost: localhost\r\n{auth}\r\n"),
            &["400"],
            &[],
        ),
    ];
    for (what, bytes, statuses, reached) in cases {
        let before = upstream.requests().len();
        let answer = exchange(proxy.addr, bytes.as_bytes());
        let answered: Vec<&str> = answer
            .lines()
            .filter_map(|l| l.strip_prefix("HTTP/1.1 "))
            .map(|l| &l[..3])
            .collect();
        assert_eq!(answered, statuses, "{what}: {answer}");
        // Whatever went upstream has been received by the time the answer was read.
        let got: Vec<String> = upstream.requests()[before..]
            .iter()
            .map(|r| format!("{} {}", r.method, r.target))
            .collect();
        assert_eq!(got, reached, "{what}");
    }
    assert!(!proxy.log().contains("smuggled"), "{}", proxy.log());
}

/// Rails and Symfony take `_method` from a form or multipart `POST` body as the request's
/// method, Laravel from a JSON one too: a route that grants `POST` by method must not carry a
/// `DELETE` to the application behind it.
#[test]
fn a_post_body_cannot_name_another_method() {
    let upstream = recorder();
    let allow = "    allow:\n      - methods: [POST]\n        paths: [\"/public/**\"]\n";
    let proxy = Proxy::start_ready(&routes(upstream.addr, allow), &env());
    let form = Some("application/x-www-form-urlencoded");
    let json = Some("application/json");
    let multipart = Some("multipart/form-data; boundary=b");
    let cases: [(Option<&str>, &[u8], u16); 11] = [
        (form, b"title=x&payment_method=card", 200),
        (json, br#"{"payment_method":"card"}"#, 200),
        // A value, not a key; a text that names it.
        (json, br#"{"fields":["name","_method"]}"#, 200),
        (
            Some("text/html"),
            b"<input name=\"_method\" value=\"delete\">",
            200,
        ),
        (form, b"title=x&_method=DELETE", 400),
        (form, b"%5Fmethod=delete", 400),
        // Rack reads a POST without a type as a form; PHP reads `.method` as `_method`.
        (None, b"_method=DELETE", 400),
        (form, b".method=DELETE", 400),
        (json, br#"{"_method":"DELETE"}"#, 400),
        (json, br#"{"\u005fmethod":"DELETE"}"#, 400),
        (
            multipart,
            b"--b\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nDELETE\r\n--b--\r\n",
            400,
        ),
    ];
    for (content_type, body, status) in cases {
        let headers: Vec<(&str, &str)> = content_type
            .map(|t| ("content-type", t))
            .into_iter()
            .collect();
        let r = proxy.send("POST", "/signed/public/item", &headers, body);
        assert_eq!(
            r.status,
            status,
            "{content_type:?} {}",
            String::from_utf8_lossy(body)
        );
    }
    // A body in an encoding no check reads goes as before.
    let headers = [
        ("content-type", "application/json"),
        ("content-encoding", "br"),
    ];
    let r = proxy.send(
        "POST",
        "/signed/public/item",
        &headers,
        b"\x0b\x01\x80{}\x03",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        upstream.requests().len(),
        5,
        "a body naming another method reached the upstream"
    );
}
