//! Pass-through routes: a request with no body or a small one is sent by sigproxy's own
//! forwarder, a larger one by pingora's proxy loop. Which one took it must not show: the same
//! request reaches the upstream byte for byte, and the client gets the same answer, whatever
//! the upstream answers (hop-by-hop headers, `1xx`, a body ended by closing, `204`, a stray
//! `101`) or fails to (refused, silent, hung up).
//!
//! Each case is sent twice, with a body of [`SMALL`] bytes (the forwarder) and one of [`LARGE`]
//! (pingora's loop), and the two are compared.

mod common;

use common::Proxy;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Sent by the forwarder.
const SMALL: usize = 100;
/// Just over what the forwarder takes: pingora's loop.
const LARGE: usize = 64 * 1024 + 1;

/// A hand-written upstream that records each request as it came (head and body, bytes) and
/// answers by the marker its path holds.
struct RawUpstream {
    url: String,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
    connections: Arc<Mutex<usize>>,
}

impl RawUpstream {
    fn start() -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(Mutex::new(0));
        let (s, c) = (seen.clone(), connections.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                *c.lock().unwrap() += 1;
                let seen = s.clone();
                std::thread::spawn(move || serve(conn, &seen));
            }
        });
        RawUpstream {
            url,
            seen,
            connections,
        }
    }

    fn last(&self) -> String {
        let seen = self.seen.lock().unwrap();
        String::from_utf8_lossy(seen.last().expect("a request came")).into_owned()
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

/// Serves one connection's requests until it closes (or an answer closes it).
fn serve(conn: TcpStream, seen: &Mutex<Vec<Vec<u8>>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(20)));
    let mut out = conn.try_clone().unwrap();
    let mut reader = BufReader::new(conn);
    loop {
        let mut raw = Vec::new();
        let mut length = 0;
        loop {
            let mut line = Vec::new();
            if reader.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
                return;
            }
            let text = String::from_utf8_lossy(&line).to_ascii_lowercase();
            if let Some(v) = text.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            raw.extend_from_slice(&line);
            if line == b"\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let target = String::from_utf8_lossy(&raw)
            .split(' ')
            .nth(1)
            .unwrap_or_default()
            .to_string();
        let head_only = raw.starts_with(b"HEAD ");
        raw.extend_from_slice(&body);
        seen.lock().unwrap().push(raw);
        if target.contains("continued101") {
            // A `100 Continue`, then a switch nobody asked for, then raw bytes; held open.
            let _ = out.write_all(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 Switching Protocols\r\nUpgrade: foo\r\nConnection: upgrade\r\n\r\nraw");
            std::thread::sleep(Duration::from_secs(4));
            return;
        }
        if target.contains("hold101") {
            // Switches protocols, sends a little, and keeps the connection open.
            let _ = out.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\nraw");
            std::thread::sleep(Duration::from_secs(4));
            return;
        }
        let answer: &[u8] = match target.as_str() {
            t if t.contains("early") => b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            t if t.contains("close") => b"HTTP/1.1 200 OK\r\nX-Up: 1\r\n\r\nuntil the connection closes",
            t if t.contains("chunked") => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            t if t.contains("nobody") => b"HTTP/1.1 204 No Content\r\nX-Up: 1\r\n\r\n",
            t if t.contains("switch") => b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
            t if t.contains("silent") => {
                std::thread::sleep(Duration::from_secs(4));
                return;
            }
            t if t.contains("hangup") => return,
            t if t.contains("garbage") => b"HTTP/1.1 2x0 OK\r\n\r\n",
            _ => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nKeep-Alive: timeout=5\r\nConnection: keep-alive, X-Private\r\nX-Private: p\r\nProxy-Authenticate: Basic\r\nX-Up: 1\r\n\r\nok",
        };
        let answer = match answer.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(end) if head_only => &answer[..end + 4],
            _ => answer,
        };
        if out.write_all(answer).is_err() || target.contains("close") || target.contains("switch") {
            let _ = out.shutdown(Shutdown::Both);
            return;
        }
    }
}

/// A pass-through route under /open/ to `upstream` (with a base path), with header edits,
/// a listed origin, and a body budget far smaller than the bodies sent.
fn start(upstream: &str) -> Proxy {
    let config = format!(
        r#"max_buffered_body_bytes: 1024
access:
  allowed_origins: [https://app.example.com]
routes:
  - name: open
    match: {{ path_prefix: /open/ }}
    strip_prefix: true
    upstream: {upstream}/base
    read_timeout: 2s
    headers:
      duplicate: [proxy-authorization, x-mixed, keep-alive]
      remove: [x-drop]
      add: {{ x-added: route }}
"#
    );
    Proxy::start_ready(&config, &[])
}

/// Sends `POST path` with a body of `size` bytes and the headers a pass-through request may
/// carry (hop-by-hop ones, a client's own credentials, mixed case), on a connection of its
/// own; returns all the proxy sent back, without its `Date`.
fn post(proxy: &Proxy, path: &str, size: usize) -> String {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nX-MiXeD: One\r\nKeep-Alive: timeout=9\r\n\
         Proxy-Authorization: Basic eA==\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\n\
         HTTP2-Settings: AAMAAABkAAQAAP__\r\nX-Forwarded-For: 192.0.2.1\r\n\
         Authorization: Bearer client\r\nX-Drop: gone\r\nX-Added: client\r\n\
         Origin: https://app.example.com\r\nConnection: close\r\nContent-Length: {size}\r\n\r\n"
    );
    let mut conn = TcpStream::connect(proxy.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    conn.write_all(head.as_bytes()).unwrap();
    let _ = conn.write_all(&vec![b'a'; size]);
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    answer
        .split_inclusive("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("date:"))
        .collect()
}

/// The request head as the upstream got it, its length aside.
fn head_of(raw: &str) -> String {
    let head = &raw[..raw.find("\r\n\r\n").expect("a whole head") + 4];
    head.split_inclusive("\r\n")
        .map(
            |l| match l.to_ascii_lowercase().starts_with("content-length:") {
                true => "Content-Length: <n>\r\n",
                false => l,
            },
        )
        .collect()
}

#[test]
fn small_and_large_bodies_reach_the_upstream_alike_and_come_back_alike() {
    let up = RawUpstream::start();
    let proxy = start(&up.url);
    for case in ["echo", "early", "close", "nobody", "switch"] {
        let path = format!("/open/{case}?b=%2F+c&a=1");
        let small = post(&proxy, &path, SMALL);
        let small_raw = up.last();
        let large = post(&proxy, &path, LARGE);
        let large_raw = up.last();
        assert_eq!(
            head_of(&small_raw),
            head_of(&large_raw),
            "{case}: upstream heads"
        );
        assert!(
            small_raw.ends_with(&"a".repeat(SMALL)),
            "{case}: small body"
        );
        assert!(
            large_raw.ends_with(&"a".repeat(LARGE)),
            "{case}: large body"
        );
        assert_eq!(small, large, "{case}: answers");
        println!("{case}:\n{}\n{small}", head_of(&small_raw));
    }

    // What the compared heads and answers hold (pingora's loop's way, kept).
    let path = "/open/echo?b=%2F+c&a=1";
    post(&proxy, path, SMALL);
    let head = head_of(&up.last());
    assert!(
        head.starts_with("POST /base/echo?b=%2F+c&a=1 HTTP/1.1\r\n"),
        "{head}"
    );
    let host = format!("host: {}\r\n", up.url.trim_start_matches("http://"));
    assert!(head.to_ascii_lowercase().contains(&host), "{head}");
    for kept in [
        "X-MiXeD: One\r\n",
        "X-Forwarded-For: 192.0.2.1\r\n",
        "Authorization: Bearer client\r\n",
        "x-original-x-mixed: One\r\n",
        "x-added: route\r\n",
    ] {
        assert!(head.contains(kept), "{kept:?} missing: {head}");
    }
    let lower = head.to_ascii_lowercase();
    for gone in [
        "keep-alive",
        "proxy-authorization",
        "x-original-proxy-authorization",
        "proxy-connection",
        "te:",
        "http2-settings",
        "connection:",
        "x-drop",
        "x-added: client",
        "x-amz-",
    ] {
        assert!(
            !lower.contains(gone),
            "{gone:?} reached the upstream: {head}"
        );
    }
    let echo = post(&proxy, path, SMALL);
    assert!(echo.starts_with("HTTP/1.1 200 OK\r\n"), "{echo}");
    for kept in [
        "Keep-Alive: timeout=5\r\n",
        "X-Private: p\r\n",
        "Proxy-Authenticate: Basic\r\n",
    ] {
        assert!(echo.contains(kept), "{kept:?} missing: {echo}");
    }
    let lower = echo.to_ascii_lowercase();
    assert!(lower.contains("connection: close\r\n"), "{echo}");
    assert!(
        lower.contains("access-control-allow-origin: https://app.example.com\r\n"),
        "{echo}"
    );
    let early = post(&proxy, "/open/early", SMALL);
    assert!(early.starts_with("HTTP/1.1 103 Early Hints\r\n"), "{early}");
    assert!(early.contains("\r\n\r\nHTTP/1.1 200 OK\r\n"), "{early}");
    let close = post(&proxy, "/open/close", SMALL);
    assert!(
        close
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked\r\n"),
        "{close}"
    );
    assert!(close.contains("until the connection closes"), "{close}");
    // A `101` nobody asked for is no answer to pass on (RFC 9110 §15.2.2): a `502`.
    let switch = post(&proxy, "/open/switch", SMALL);
    assert!(switch.starts_with("HTTP/1.1 502 "), "{switch}");

    // Neither way counts in the body budget (1 KiB here): nothing was refused.
    assert_eq!(
        proxy.metric("sigproxy_body_budget_refusals_total", &[]),
        Some(0.0)
    );
    assert_eq!(proxy.metric("sigproxy_buffered_body_bytes", &[]), Some(0.0));
    // Each access line has the bytes and the upstream's status, both ways.
    for size in [SMALL, LARGE] {
        let line = format!("bytes_in={size} bytes_out=2 upstream_status=200");
        proxy.wait_for(&line, || {
            proxy.log().lines().any(|l| {
                l.contains("route=\"open\"") && l.contains("status=200") && l.contains(&line)
            })
        });
    }
}

/// The last access line's `status=` and `error=` fields, once it is written.
fn last_outcome(proxy: &Proxy, lines_before: usize) -> String {
    let access = || {
        proxy
            .log()
            .lines()
            .filter(|l| l.contains("route=\"open\"") && l.contains(" status="))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    proxy.wait_for("the access line", || access().len() > lines_before);
    let line = access().pop().unwrap();
    let field = |name: &str| {
        line.split(&format!(" {name}="))
            .nth(1)
            .map(|rest| match rest.strip_prefix('"') {
                Some(quoted) => quoted.split('"').next().unwrap_or_default().to_string(),
                None => rest.split(' ').next().unwrap_or_default().to_string(),
            })
            .unwrap_or_default()
    };
    format!("status={} error={}", field("status"), field("error"))
}

/// Sends `path` with a small body and a large one; both answers, and both access lines.
fn both_ways(proxy: &Proxy, path: &str) -> [(String, String); 2] {
    [SMALL, LARGE].map(|size| {
        let before = proxy
            .log()
            .lines()
            .filter(|l| l.contains("route=\"open\"") && l.contains(" status="))
            .count();
        let answer = post(proxy, path, size);
        (answer, last_outcome(proxy, before))
    })
}

#[test]
fn an_upstream_that_refuses_stays_silent_or_hangs_up_gets_the_same_error_both_ways() {
    let up = RawUpstream::start();
    let proxy = start(&up.url);
    let [small, large] = both_ways(&proxy, "/open/silent");
    assert!(small.0.starts_with("HTTP/1.1 504"), "{small:?}");
    assert!(
        small.0.contains("\"code\":\"upstream_timeout\""),
        "{small:?}"
    );
    assert!(
        small.1.starts_with("status=504 error=") && small.1.len() > 30,
        "{small:?}"
    );
    assert_eq!(small, large);
    let [small, large] = both_ways(&proxy, "/open/hangup");
    assert!(small.0.starts_with("HTTP/1.1 502"), "{small:?}");
    assert!(small.0.contains("(reset)"), "{small:?}");
    assert!(
        small.1.starts_with("status=502 error=") && small.1.len() > 30,
        "{small:?}"
    );
    assert_eq!(small, large);
    assert_eq!(up.count(), 4);

    let port = common::free_port();
    let refusing = start(&format!("http://127.0.0.1:{port}"));
    let [small, large] = both_ways(&refusing, "/open/x");
    assert!(small.0.starts_with("HTTP/1.1 502"), "{small:?}");
    assert!(small.0.contains("(connect)"), "{small:?}");
    println!("{}", small.1);
    assert_eq!(small, large);
}

#[test]
fn small_requests_keep_both_connections_open() {
    let up = RawUpstream::start();
    let proxy = start(&up.url);
    let mut conn = common::Conn::open(proxy.addr);
    for (method, body) in [
        ("GET", &b""[..]),
        ("POST", b"small"),
        ("PUT", b""),
        ("GET", b""),
    ] {
        let r = conn.send(method, "/open/echo", body);
        assert_eq!(r.status, 200, "{method}");
        assert_eq!(r.text(), "ok");
    }
    assert_eq!(up.count(), 4);
    assert_eq!(
        *up.connections.lock().unwrap(),
        1,
        "the upstream connection is reused"
    );
    // HEAD has no body, whatever length its answer names.
    let r = common::request(proxy.addr, "HEAD", "/open/echo", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("2"));
    assert_eq!(r.header("x-up"), Some("1"));
    assert_eq!(up.count(), 5);
    // The kept-alive connection still serves.
    assert_eq!(conn.send("GET", "/open/echo", b"").text(), "ok");
}

/// Sends the head of `POST path` announcing `size` bytes, then 10 of them, and stops; returns
/// what the proxy answered, without its `Date`.
fn stall(proxy: &Proxy, path: &str, size: usize) -> String {
    let mut conn = TcpStream::connect(proxy.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let head = format!("POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {size}\r\n\r\n");
    conn.write_all(head.as_bytes()).unwrap();
    conn.write_all(&[b'a'; 10]).unwrap();
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer)
        .split_inclusive("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("date:"))
        .collect()
}

/// A client that stops sending its body for the route's `read_timeout` (here before
/// `request_body_timeout` cuts it) is told so with `408` on both paths: when its body was to be
/// read whole, nothing reached the upstream; on pingora's loop the upstream got the head and the
/// start of the body and waited for the rest, and its silence is the client's doing too (it
/// was a `504`, an upstream timeout, until the body clock was asked whose wait it was).
#[test]
fn a_client_that_stops_sending_a_small_body_is_told_it_timed_out() {
    let up = RawUpstream::start();
    let proxy = start(&up.url);
    let small = stall(&proxy, "/open/echo", SMALL);
    assert!(small.starts_with("HTTP/1.1 408"), "{small}");
    assert!(small.contains("\"code\":\"client_timeout\""), "{small}");
    assert_eq!(up.count(), 0, "nothing went upstream");
    let large = stall(&proxy, "/open/echo", LARGE);
    assert!(large.starts_with("HTTP/1.1 408"), "{large}");
    assert!(large.contains("\"code\":\"client_timeout\""), "{large}");
}

/// On a pooled upstream connection, an idempotent request sent whole goes again on a new
/// connection only when the pooled one turns out closed (no answer, end of stream): never after
/// a timeout or a malformed answer, when the upstream may have acted on it and a second copy
/// would act again (a Lambda invoked twice) and double the wait.
#[test]
fn an_idempotent_request_is_sent_again_only_when_its_pooled_connection_was_closed() {
    let up = RawUpstream::start();
    let proxy = start(&up.url);
    let copies = |marker: &str| {
        let seen = up.seen.lock().unwrap();
        seen.iter()
            .filter(|r| String::from_utf8_lossy(r).contains(marker))
            .count()
    };
    let warm = || {
        assert_eq!(
            common::request(proxy.addr, "GET", "/open/ok", &[], b"").status,
            200
        )
    };

    warm();
    let started = std::time::Instant::now();
    let r = common::request(proxy.addr, "PUT", "/open/silent", &[], b"abc");
    assert_eq!(r.status, 504);
    assert_eq!(copies("silent"), 1, "a timed-out PUT was sent again");
    assert!(
        started.elapsed() < Duration::from_millis(3500),
        "{:?}",
        started.elapsed()
    );

    warm();
    let r = common::request(proxy.addr, "DELETE", "/open/garbage", &[], b"");
    assert_eq!(r.status, 502);
    assert_eq!(
        copies("garbage"),
        1,
        "a DELETE answered with garbage was sent again"
    );

    // A pooled connection the upstream closes instead of answering: sent again, and counted.
    warm();
    let r = common::request(proxy.addr, "GET", "/open/hangup", &[], b"");
    assert_eq!(r.status, 502);
    assert_eq!(
        copies("hangup"),
        2,
        "a GET on a closed pooled connection was not retried"
    );
    let retries = (
        "sigproxy_upstream_retries_total",
        [("route", "open"), ("reason", "stale_connection")],
    );
    proxy.wait_for_metric(retries.0, &retries.1);
    assert_eq!(proxy.metric(retries.0, &retries.1), Some(1.0));
}

/// An upstream's `101` to a request that asked for no upgrade (RFC 9110 §15.2.2) is never
/// passed on, whichever way the request went: passed on, the client would be left reading
/// the upstream's raw bytes, or waiting for an answer until the route's `read_timeout`. It
/// gets a `502` at once, and the access line says so.
#[test]
fn an_unasked_101_is_refused_with_a_502_both_ways() {
    let up = RawUpstream::start();
    let proxy = start(&up.url);
    for (answer, outcome) in both_ways(&proxy, "/open/hold101") {
        assert!(answer.starts_with("HTTP/1.1 502 "), "{answer}");
        assert!(!answer.contains("101"), "{answer}");
        assert!(!answer.contains("raw"), "{answer}");
        assert!(outcome.starts_with("status=502 error="), "{outcome}");
    }
    // After a `100 Continue` just the same: the 100 is passed on, the switch is not.
    for (answer, outcome) in both_ways(&proxy, "/open/continued101") {
        let after = match answer.starts_with("HTTP/1.1 100 Continue\r\n") {
            true => answer.split_once("\r\n\r\n").map_or("", |(_, rest)| rest),
            false => &answer,
        };
        assert!(after.starts_with("HTTP/1.1 502 "), "{answer}");
        assert!(
            !answer.contains("101") && !answer.contains("raw"),
            "{answer}"
        );
        assert!(outcome.starts_with("status=502 error="), "{outcome}");
    }
}

/// An HTTP/1.0 client reads neither chunked framing (RFC 9112 §6.1) nor a `1xx` (RFC 9110
/// §15.2): however the upstream frames its answer, and whichever path takes the request (the
/// forwarder signing it, the forwarder passing it on, pingora's loop), the client gets the
/// final answer's bytes as they are, ended by the connection's close.
#[test]
fn an_http_1_0_client_gets_answers_it_can_read() {
    let up = RawUpstream::start();
    let config = common::signed_and_open(&up.url, "");
    let proxy = Proxy::start_ready(&config, &common::static_keys("AKIDHTTP10", "secret"));
    let cases = [
        ("close", "until the connection closes"),
        ("chunked", "hello world"),
        ("early", "ok"),
    ];
    for route in ["signed", "open"] {
        for size in [SMALL, LARGE] {
            for (case, body) in cases {
                let what = format!("{case} on {route} with {size} bytes");
                let mut conn = TcpStream::connect(proxy.addr).unwrap();
                conn.set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                let head = format!(
                    "POST /{route}/{case} HTTP/1.0\r\nHost: localhost\r\nContent-Length: {size}\r\n\r\n"
                );
                conn.write_all(head.as_bytes()).unwrap();
                conn.write_all(&vec![b'b'; size]).unwrap();
                let mut got = Vec::new();
                if let Err(e) = conn.read_to_end(&mut got) {
                    panic!("{what}: the connection was left open ({e}): {got:?}");
                }
                let got = String::from_utf8_lossy(&got).into_owned();
                let (head, answer) = got.split_once("\r\n\r\n").expect("a head");
                assert!(head.starts_with("HTTP/1.1 200 "), "{what}: {got}");
                let head = head.to_ascii_lowercase();
                assert!(!head.contains("transfer-encoding"), "{what}: {got}");
                assert!(head.contains("connection: close"), "{what}: {got}");
                assert_eq!(answer, body, "{what}: {got}");
            }
        }
    }
}
