//! Pooled upstream connections against an upstream that breaks RFC 9112 §9.3: it answers some
//! requests without reading their bodies and keeps the connection, so it reads a body as the
//! next request (Python's `http.server` does, and so does any handler that ignores a GET's
//! body). A client can then put a request of its own in a body; the next request sent on that
//! connection becomes that request's body, and gets its answer. It must never be another
//! route's or another client's request (a signed one, its session token included), and after
//! an early refusal of a body, no request at all. Also: how long a connection is kept, when the
//! upstream says how long it keeps it.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The naive upstream: `refuse` in a path gets a `403`, `ignore` a `200`, both without the body
/// being read; anything else is read whole and answered with its target and connection number.
struct NaiveUpstream {
    url: String,
    /// `(connection, target)` of every request it read, smuggled ones included.
    seen: Arc<Mutex<Vec<(usize, String)>>>,
}

impl NaiveUpstream {
    fn start() -> NaiveUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        std::thread::spawn(move || {
            for (id, conn) in listener.incoming().flatten().enumerate() {
                let seen = s.clone();
                std::thread::spawn(move || serve(id, conn, &seen));
            }
        });
        NaiveUpstream { url, seen }
    }

    fn targets(&self) -> Vec<(usize, String)> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(id: usize, conn: TcpStream, seen: &Mutex<Vec<(usize, String)>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(20)));
    let mut out = conn.try_clone().unwrap();
    let mut reader = BufReader::new(conn);
    loop {
        let (mut target, mut length) = (String::new(), 0);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if target.is_empty() {
                target = line.split(' ').nth(1).unwrap_or_default().to_string();
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            if line == "\r\n" {
                break;
            }
        }
        seen.lock().unwrap().push((id, target.clone()));
        if target.contains("flood") {
            let hints = "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n";
            let _ = out.write_all(hints.repeat(50).as_bytes());
        }
        let body = if target.contains("refuse") {
            None
        } else if target.contains("ignore") {
            Some("ignored".to_string())
        } else {
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            Some(format!("{target} on {id}"))
        };
        let answer = match body {
            None => "HTTP/1.1 403 Forbidden\r\nContent-Length: 7\r\n\r\nrefused".to_string(),
            // An upstream that closes idle connections after a second (and says so).
            Some(b) if target.contains("keeps1") => format!(
                "HTTP/1.1 200 OK\r\nKeep-Alive: timeout=1\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            ),
            Some(b) => format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{b}", b.len()),
        };
        if out.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// A request whose body is the start of another: a head waiting for 64 bytes of body, which
/// the next request on the connection would be.
const SMUGGLED: &str = "POST /smuggled HTTP/1.1\r\nHost: u\r\nContent-Length: 64\r\n\r\n";

fn smuggle(proxy: &Proxy, method: &str, path: &str) -> Response {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
        SMUGGLED.len()
    );
    proxy.raw(format!("{head}{SMUGGLED}")).expect("an answer")
}

#[test]
fn a_body_the_upstream_left_unread_never_becomes_another_request() {
    let upstream = NaiveUpstream::start();
    let config = signed_and_open(&upstream.url, "");
    let proxy = Proxy::start_ready(&config, &static_keys("AKIDREUSE", "reuse-secret"));
    for (method, attack, victim) in [
        // Refused early, then the same route: the connection is not pooled after a refusal.
        ("POST", "/open/refuse", "/open/next"),
        ("POST", "/signed/refuse", "/signed/next"),
        // Answered 200 without the body read, then another route (signed): not its connection.
        ("GET", "/open/ignore", "/signed/next"),
        // A GET's body ignored, then the same route: never pooled after a GET with a body.
        ("GET", "/signed/ignore", "/signed/next"),
    ] {
        let r = smuggle(&proxy, method, attack);
        assert!(r.status == 403 || r.status == 200, "{attack}: {}", r.status);
        let r = proxy.get(victim);
        assert_eq!(r.status, 200, "{attack} then {victim}: {}", r.text());
        let got = r.text();
        assert!(
            got.starts_with("/next on "),
            "{attack} then {victim}: got the smuggled request's answer: {got}"
        );
        let victim_conn: usize = got.rsplit(' ').next().unwrap().parse().unwrap();
        let smuggled_on: Vec<usize> = upstream
            .targets()
            .iter()
            .filter(|(_, t)| t == "/smuggled")
            .map(|(id, _)| *id)
            .collect();
        assert!(
            !smuggled_on.contains(&victim_conn),
            "{attack} then {victim}: the victim went on the poisoned connection"
        );
    }
}

/// An upstream that keeps answering `103 Early Hints` held a request (its body budget, its
/// connection) past any timeout: each hint came within the read timeout. After ten, it is a
/// bad gateway.
#[test]
fn endless_informational_answers_are_a_bad_gateway() {
    let upstream = NaiveUpstream::start();
    let config = signed_and_open(&upstream.url, "");
    let proxy = Proxy::start_ready(&config, &static_keys("AKIDREUSE", "reuse-secret"));
    // A body over 64 KiB takes pingora's own proxy loop on the pass-through route.
    let large = vec![b'x'; 70_000];
    for (path, body) in [
        ("/signed/flood", &b"{}"[..]),
        ("/open/flood", &b"{}"[..]),
        ("/open/flood", &large[..]),
    ] {
        let r = proxy.send("POST", path, &[], body);
        assert_eq!(r.status, 502, "{path} {}: {}", body.len(), r.text());
        assert_eq!(r.error_code(), "upstream_unreachable", "{path}");
    }
}

/// Bodies over 64 KiB take pingora's own proxy loop, which pools a connection again after any
/// whole answer: there, a body to an upstream that is not AWS's gets a connection of its own.
#[test]
fn pingoras_loop_leaves_no_body_it_streamed_to_another_request() {
    let upstream = NaiveUpstream::start();
    let config = signed_and_open(&upstream.url, "");
    let proxy = Proxy::start_ready(&config, &static_keys("AKIDREUSE", "reuse-secret"));
    // A smuggled request whose body is the rest of this one and the next request's first bytes.
    let padding = 70_000;
    let head = format!(
        "POST /smuggled HTTP/1.1\r\nHost: u\r\nContent-Length: {}\r\n\r\n",
        padding + 64
    );
    let body = format!("{head}{}", "x".repeat(padding));
    let attack = format!(
        "GET /open/ignore HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let r = proxy.raw(attack).expect("an answer");
    assert_eq!(r.status, 200, "{}", r.text());
    let victim = vec![b'v'; 70_000];
    let r = proxy.send("POST", "/open/next", &[], &victim);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text().starts_with("/next on "),
        "the next request answered the smuggled one: {}",
        r.text()
    );
}

/// An upstream that says `Keep-Alive: timeout=1` closes an idle connection after a second: a
/// `POST` sent on it just then would meet the close, and may not be sent again. So such a
/// connection is kept for half a second only (N - 1 s, at least N / 2), whatever
/// `upstream_idle_timeout` says; one that says nothing is kept for that.
#[test]
fn a_connection_is_not_kept_past_what_the_upstream_says_it_keeps_it() {
    let upstream = NaiveUpstream::start();
    let config = signed_and_open(&upstream.url, "");
    let proxy = Proxy::start_ready(&config, &static_keys("AKIDREUSE", "reuse-secret"));
    let connection = |path: &str| -> usize {
        let r = proxy.send("POST", path, &[], b"{}");
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        r.text().rsplit(' ').next().unwrap().parse().unwrap()
    };
    for route in ["/open", "/signed"] {
        let says = format!("{route}/keeps1");
        let first = connection(&says);
        assert_eq!(connection(&says), first, "{says}: reused at once");
        std::thread::sleep(Duration::from_millis(700));
        assert_ne!(
            connection(&says),
            first,
            "{says}: kept past half its second"
        );

        let silent = format!("{route}/quiet");
        let first = connection(&silent);
        std::thread::sleep(Duration::from_millis(700));
        assert_eq!(connection(&silent), first, "{silent}: kept as configured");
    }
}
