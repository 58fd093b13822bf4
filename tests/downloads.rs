//! Large response bodies on the requests sigproxy sends itself (signed routes, and bodiless or
//! small requests on pass-through routes), relayed by src/proxy/relay.rs piece by piece from
//! pingora's read buffer: every byte arrives in order; the connection goes back to the pool
//! only clean; an upstream that breaks off, stalls or sends more than it declared closes the
//! client's connection or loses its own, and never leaks into the next answer.

mod common;

use common::upstream::{Reply, Upstream};
use common::{Conn, Proxy};
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener};
use std::time::Duration;

/// Over a MiB, and not a multiple of any read size.
const SIZE: usize = (1 << 20) + 12_345;

/// `n` bytes that show any byte out of place.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// The two kinds of route; a GET on either is sent by sigproxy's forwarder.
const ROUTES: [&str; 2] = ["signed", "open"];

/// Under either route's prefix (stripped): `/big` a large body; `/cut` the same promised,
/// cut off after 600,000 bytes; `/stall` paused for 3 s after 300,000 bytes; `/extra` the
/// large body followed by a second, unasked-for response; anything else `fine`.
fn upstream() -> Upstream {
    Upstream::builder()
        .answer(|req| {
            let body = || Reply::ok(pattern(SIZE));
            match req.target.as_str() {
                "/big" => body(),
                "/cut" => body().cut_off(600_000),
                "/stall" => body().pause(300_000, Duration::from_secs(3)),
                "/extra" => {
                    body().trailing(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED")
                }
                _ => Reply::ok("fine"),
            }
        })
        .start()
}

/// A signed route under /signed/ and a pass-through one under /open/, both to `upstream`, both
/// giving up on a read that waits over a second.
fn proxy(upstream: &Upstream) -> Proxy {
    proxy_to(&format!("http://{}", upstream.addr))
}

fn proxy_to(url: &str) -> Proxy {
    // The pass-through route comes last: the second `read_timeout` is its own.
    let routes = common::signed_and_open(url, "    read_timeout: 1s\n") + "    read_timeout: 1s\n";
    Proxy::start_ready(
        &routes,
        &common::static_keys("AKIDDOWNLOADS", "downloads-secret"),
    )
}

fn get(conn: &mut Conn, path: &str) -> common::Response {
    conn.send("GET", path, b"")
}

/// `GET path` on a connection of its own, answered `200`: the body bytes that came before the
/// connection closed.
fn body_until_closed(proxy: &Proxy, path: &str) -> Vec<u8> {
    let mut conn = Conn::open(proxy.addr);
    conn.write(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes());
    let head = conn.read_until(b"\r\n\r\n");
    assert!(head.starts_with(b"HTTP/1.1 200"), "{path}");
    conn.read_to_end()
}

#[test]
fn large_bodies_arrive_whole_and_in_order_over_one_pooled_connection() {
    let upstream = upstream();
    let proxy = proxy(&upstream);
    let mut conn = Conn::open(proxy.addr);
    for route in ROUTES.iter().chain(&ROUTES) {
        let r = get(&mut conn, &format!("/{route}/big"));
        assert_eq!(r.status, 200, "{route}");
        assert_eq!(r.body.len(), SIZE, "{route}");
        assert!(r.body == pattern(SIZE), "{route}: the body arrived altered");
    }
    assert_eq!(get(&mut conn, "/open/after").text(), "fine");
    // One per route: routes do not share pooled connections.
    assert_eq!(
        upstream.connections(),
        ROUTES.len(),
        "the connection went back to the pool after each large body"
    );
}

#[test]
fn a_large_body_cut_off_midway_closes_the_client_connection_and_is_counted() {
    let upstream = upstream();
    let proxy = proxy(&upstream);
    for route in ROUTES {
        let rest = body_until_closed(&proxy, &format!("/{route}/cut"));
        assert_eq!(
            rest.len(),
            600_000,
            "{route}: what was sent, then the connection closed"
        );
        let labels = [("route", route), ("kind", "reset")];
        assert_eq!(
            proxy.metric("sigproxy_upstream_errors_total", &labels),
            Some(1.0)
        );
    }
    let r = proxy.get("/signed/big");
    assert!(r.status == 200 && r.body == pattern(SIZE));
    assert_eq!(upstream.connections(), 3, "no broken connection was pooled");
}

#[test]
fn a_large_body_that_stalls_past_read_timeout_closes_the_client_connection() {
    let upstream = upstream();
    let proxy = proxy(&upstream);
    for route in ROUTES {
        // Without the 1 s read timeout, the whole body would come after the 3 s pause.
        let rest = body_until_closed(&proxy, &format!("/{route}/stall"));
        assert_eq!(rest.len(), 300_000, "{route}: what came before the stall");
        let labels = [("route", route), ("kind", "timeout")];
        assert_eq!(
            proxy.metric("sigproxy_upstream_errors_total", &labels),
            Some(1.0)
        );
    }
}

#[test]
fn bytes_past_a_large_bodys_length_never_reach_the_next_request() {
    for route in ROUTES {
        let upstream = upstream();
        let proxy = proxy(&upstream);
        let mut conn = Conn::open(proxy.addr);
        let r = get(&mut conn, &format!("/{route}/extra"));
        assert!(r.status == 200 && r.body == pattern(SIZE), "{route}");
        // The next request on the same client connection, which may reuse the upstream one.
        let next = get(&mut conn, &format!("/{route}/after"));
        assert_eq!(
            next.text(),
            "fine",
            "{route}: the unasked-for response is no answer"
        );
        assert_eq!(
            upstream.connections(),
            2,
            "{route}: the connection holding unasked-for bytes was not pooled"
        );
    }
}

#[test]
fn a_client_that_leaves_mid_download_is_logged_as_gone_not_as_a_body_read() {
    let upstream = Upstream::builder()
        .answer(|_| Reply::repeat(b'x', 64 << 20))
        .start();
    let proxy = proxy(&upstream);
    for route in ROUTES {
        let mut conn = Conn::open(proxy.addr);
        conn.write(format!("GET /{route}/huge HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes());
        conn.read_until(b"\r\n\r\n");
        // Leaves with most of the body unread: the kernel resets the connection.
        drop(conn);
        proxy.wait_for(&format!("{route}'s access line"), || {
            proxy.log().lines().any(|l| {
                l.contains(&format!("route=\"{route}\""))
                    && l.contains("error=\"the client went away during the response")
            })
        });
    }
    assert!(!proxy.log().contains("could not read the request body"));
}

/// An upstream that answers every request with a chunked body it breaks off after one chunk.
fn cut_chunked_upstream() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            // The request's head (a GET: no body).
            let mut head = String::new();
            while !head.ends_with("\r\n\r\n") {
                if reader.read_line(&mut head).unwrap_or(0) == 0 {
                    break;
                }
            }
            let mut out = conn;
            let _ = out
                .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
            let _ = out.shutdown(Shutdown::Both);
        }
    });
    url
}

#[test]
fn a_broken_off_chunked_body_never_looks_whole_nor_is_its_query_logged() {
    let proxy = proxy_to(&cut_chunked_upstream());
    for route in ROUTES {
        let rest = body_until_closed(&proxy, &format!("/{route}/x?token=hunter2"));
        let rest = String::from_utf8_lossy(&rest).into_owned();
        assert!(rest.contains("hello"), "{route}: {rest:?}");
        // The last chunk (`0`) would tell the client the body was whole.
        assert!(
            !rest.contains("0\r\n\r\n"),
            "{route}: ended as if whole: {rest:?}"
        );
        proxy.wait_for(&format!("{route}'s access line"), || {
            proxy.log().lines().any(|l| {
                l.contains(&format!("route=\"{route}\""))
                    && l.contains("upstream_status=200")
                    && l.contains("error=")
            })
        });
    }
    // No log line (the access line, pingora's error line) names the query.
    assert!(!proxy.log().contains("hunter2"), "{}", proxy.log());
}
