//! Lambda Function URL signing, end to end: client → sigproxy → a stand-in that verifies every
//! signature with botocore against credentials issued by moto's STS (auth enforced).

mod common;

use common::upstream::Upstream;
use common::*;
use std::sync::OnceLock;
use std::time::Duration;

/// One set of peers for this file's tests (they end when this process does).
fn peers() -> &'static Peers {
    static PEERS: OnceLock<Peers> = OnceLock::new();
    PEERS.get_or_init(Peers::start)
}

fn proxy(extra_routes: &str) -> Proxy {
    let p = peers();
    Proxy::start_ready(&p.lambda_config(extra_routes), &p.caller_env())
}

fn assert_verified(r: &Response, context: &str) -> serde_json::Value {
    assert_eq!(r.status, 200, "{context}: {}", r.text());
    let v = r.json();
    assert!(
        v["access_key_id"].as_str().unwrap().starts_with("ASIA"),
        "{context}: signed with STS session credentials"
    );
    v
}

#[test]
fn bodies_of_every_size_and_framing_are_hashed_signed_and_forwarded() {
    let proxy = proxy("");
    let sizes = [
        0,
        1024,
        64 * 1024,
        64 * 1024 + 1,
        1024 * 1024,
        6 * 1024 * 1024,
    ];
    for size in sizes {
        let body = bytes(size);
        let framings: [(&str, Vec<(&str, &str)>); 4] = [
            ("content-length", vec![]),
            ("chunked", vec![("Transfer-Encoding", "chunked")]),
            ("expect-100", vec![("Expect", "100-continue")]),
            (
                "chunked+expect-100",
                vec![("Transfer-Encoding", "chunked"), ("Expect", "100-continue")],
            ),
        ];
        for (framing, headers) in framings {
            let context = format!("{size} bytes, {framing}");
            let r = proxy.send("POST", "/fn/upload", &headers, &body);
            let v = assert_verified(&r, &context);
            assert_eq!(v["body_length"], size, "{context}");
            assert_eq!(v["body_sha256"], sha256_hex(&body), "{context}");
            assert_eq!(
                v["headers"]["x-amz-content-sha256"],
                sha256_hex(&body),
                "{context}"
            );
            assert_eq!(v["path"], "/upload", "{context}");
            assert!(
                v["headers"].get("expect").is_none(),
                "{context}: Expect went upstream"
            );
            if framing.contains("expect") && size > 0 {
                assert_eq!(r.interim, vec![100], "{context}: 100 Continue sent once");
            }
        }
    }
}

#[test]
fn bodyless_methods_are_signed_with_the_empty_hash() {
    let proxy = proxy("");
    for method in ["GET", "DELETE", "OPTIONS"] {
        let r = proxy.send(method, "/fn/items/1", &[], b"");
        let v = assert_verified(&r, method);
        assert_eq!(v["method"], method);
        assert_eq!(v["body_length"], 0);
    }
    let r = proxy.send("HEAD", "/fn/items/1", &[], b"");
    assert_eq!(r.status, 200, "HEAD");
    assert!(r.body.is_empty());
    // PUT with an explicit empty body goes the same way.
    let r = proxy.send("PUT", "/fn/items/1", &[("Content-Length", "0")], b"");
    assert_eq!(assert_verified(&r, "empty PUT")["method"], "PUT");
}

#[test]
fn odd_paths_and_queries_reach_the_upstream_exactly_as_signed() {
    let proxy = proxy("");
    // (client target, upstream path, upstream query)
    let cases = [
        ("/fn/a%20b/c", "/a%20b/c", ""),
        ("/fn/plus+sign", "/plus+sign", ""),
        ("/fn/slash%2Fencoded", "/slash%2Fencoded", ""),
        ("/fn/caf%C3%A9/%E2%9C%93", "/caf%C3%A9/%E2%9C%93", ""),
        ("/fn/x//y/./z/../w", "/x/y/w", ""),
        ("/fn/trailing/", "/trailing/", ""),
        ("/fn/sub-delims!$&'()*,;=:@", "/sub-delims!$&'()*,;=:@", ""),
        // AWS reads `+` in a query as a space, and so does sigproxy on a signed route.
        (
            "/fn/q?space=a%20b&plus=a+b&lit=%2B",
            "/q",
            "space=a%20b&plus=a%20b&lit=%2B",
        ),
        ("/fn/q?slash=%2F%2f/&k", "/q", "slash=%2F%2F%2F&k"),
        ("/fn/q?u=%C3%A9&u=%E2%9C%93", "/q", "u=%C3%A9&u=%E2%9C%93"),
        ("/fn/q?b=2&a=1&a=0", "/q", "b=2&a=1&a=0"),
        ("/fn/q?empty=&also=&=v", "/q", "empty=&also=&=v"),
        ("/fn/q?star=*&tilde=~&eq==", "/q", "star=%2A&tilde=~&eq=%3D"),
    ];
    for (target, path, query) in cases {
        let r = proxy.get(target);
        let v = assert_verified(&r, target);
        assert_eq!(v["path"], path, "{target}");
        assert_eq!(v["query"], query, "{target}");
    }
}

#[test]
fn client_signing_and_hop_by_hop_headers_never_reach_the_upstream() {
    let proxy = proxy("");
    let r = proxy.send(
        "POST",
        "/fn/h",
        &[
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=CLIENT/x, Signature=bad",
            ),
            ("X-Amz-Security-Token", "client-token"),
            ("X-Amz-Date", "19990101T000000Z"),
            ("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD"),
            ("Connection", "close, X-Private-Hop"),
            ("X-Private-Hop", "secret-hop"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Authorization", "Basic eDp5"),
            ("X-Forwarded-For", "10.1.2.3"),
            ("User-Agent", "legacy-app/1.0"),
            (
                "Traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
            ("X-Amz-Meta-Owner", "team-a"),
            ("Content-Type", "application/json"),
            ("X-App-Header", "kept"),
        ],
        b"{}",
    );
    let v = assert_verified(&r, "hygiene");
    let h = &v["headers"];
    let auth = h["authorization"].as_str().unwrap();
    assert!(
        !auth.contains("CLIENT"),
        "client Authorization forwarded: {auth}"
    );
    assert_ne!(h["x-amz-security-token"], "client-token");
    assert_ne!(h["x-amz-date"], "19990101T000000Z");
    assert_eq!(h["x-amz-content-sha256"], sha256_hex(b"{}"));
    for gone in ["x-private-hop", "keep-alive", "proxy-authorization"] {
        assert!(h.get(gone).is_none(), "{gone} reached the upstream");
    }
    for kept in [
        "x-forwarded-for",
        "user-agent",
        "traceparent",
        "x-app-header",
    ] {
        assert!(h.get(kept).is_some(), "{kept} was not forwarded");
    }
    let signed = auth.split("SignedHeaders=").nth(1).unwrap();
    let signed: Vec<&str> = signed.split(',').next().unwrap().split(';').collect();
    assert_eq!(
        signed,
        [
            "content-type",
            "host",
            "x-amz-content-sha256",
            "x-amz-date",
            "x-amz-meta-owner",
            "x-amz-security-token"
        ]
    );
}

#[test]
fn bodies_over_the_limit_get_413_and_reach_nothing() {
    let silent = Upstream::builder().silent().start();
    let small = r#"    match: { path_prefix: /small/ }
    max_body_bytes: 1000
"#;
    let proxy = proxy(&route("small", &silent.url(), "lambda", small));
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, usize);
    let cases: [Case; 4] = [
        ("content-length", vec![], 1001),
        (
            "chunked, grows past the limit",
            vec![("Transfer-Encoding", "chunked")],
            20_000,
        ),
        ("expect-100", vec![("Expect", "100-continue")], 1001),
        ("6 MiB + 1", vec![], 6 * 1024 * 1024 + 1),
    ];
    for (what, headers, size) in cases {
        let r = proxy.send("POST", "/small/x", &headers, &bytes(size));
        assert_eq!(r.status, 413, "{what}");
        assert_eq!(r.error_code(), "body_too_large", "{what}");
        assert_eq!(r.json()["error"]["route"], "small");
        if what == "expect-100" {
            assert!(
                r.interim.is_empty(),
                "100 Continue sent for a body that will be refused"
            );
        }
    }
    // The default limit is Lambda's 6 MiB: one byte more is refused before reaching the stand-in.
    let r = proxy.send("POST", "/fn/x", &[], &bytes(6 * 1024 * 1024 + 1));
    assert_eq!(r.status, 413);
    assert_eq!(silent.connections(), 0, "the upstream was contacted");
}

#[test]
fn failures_are_json_errors_with_the_right_status() {
    let closed = free_port();
    let down = format!("http://127.0.0.1:{closed}");
    let prefix = "    match: { path_prefix: /down/ }\n";
    let proxy = proxy(&route("down", &down, "lambda", prefix));
    let r = proxy.get("/nothing-here");
    assert_eq!((r.status, r.error_code().as_str()), (404, "no_route"));
    assert_eq!(r.header("content-type"), Some("application/json"));

    for (method, body) in [("GET", &b""[..]), ("POST", &b"payload"[..])] {
        let r = proxy.send(method, "/down/x", &[], body);
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (502, "upstream_unreachable"),
            "{method}"
        );
        // The slow stand-in answers after 3 s; the route's read_timeout is 2 s.
        let r = proxy.send(method, "/fn/__sleep?ms=3000", &[], body);
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (504, "upstream_timeout"),
            "{method}"
        );
    }

    let r = proxy.get("/fn/bad%zzescape");
    assert_eq!((r.status, r.error_code().as_str()), (400, "bad_request"));
    let r = proxy.get("/fn/q?x=%ff");
    assert_eq!((r.status, r.error_code().as_str()), (400, "bad_request"));
}

#[test]
fn a_route_without_credentials_passes_requests_through_unsigned() {
    let p = peers();
    let proxy = proxy(&format!(
        r#"  - name: open
    match: {{ path_prefix: /open/ }}
    upstream: {}
"#,
        p.get("lambda_url")
    ));
    let r = proxy.send(
        "POST",
        "/open/x",
        &[("Authorization", "Bearer app-token")],
        b"data",
    );
    // The stand-in refuses it: the proxy did not sign, and forwarded the client's header as is.
    assert_eq!(r.status, 403);
    let message = r.json()["Message"].as_str().unwrap().to_string();
    assert!(message.contains("Authorization"), "{message}");
}

#[test]
fn large_responses_stream_back_intact() {
    let proxy = proxy("");
    for (method, body) in [("GET", &b""[..]), ("POST", &b"x"[..])] {
        let n = 5 * 1024 * 1024 + 3;
        let r = proxy.send(method, &format!("/fn/__bytes?n={n}"), &[], body);
        assert_eq!(r.status, 200, "{method}");
        assert_eq!(r.body.len(), n, "{method}");
        assert!(
            r.header("x-amzn-requestid").is_some(),
            "{method}: upstream headers kept"
        );
    }
}

#[test]
fn client_connections_are_kept_alive_across_both_upstream_paths() {
    let proxy = proxy("");
    let mut conn = Conn::open(proxy.addr);
    for i in 0..6 {
        let (method, body) = if i % 2 == 0 {
            ("POST", bytes(100 + i))
        } else {
            ("GET", Vec::new())
        };
        let r = conn.send(method, &format!("/fn/keepalive/{i}"), &body);
        let v = assert_verified(&r, &format!("request {i} ({method})"));
        assert_eq!(v["path"], format!("/keepalive/{i}"));
        assert_eq!(v["body_length"], body.len());
    }
}

#[test]
fn a_client_that_stops_sending_its_body_gets_408() {
    let proxy = proxy("");
    let mut conn = Conn::open(proxy.addr);
    conn.write(
        b"POST /fn/stall HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n0123456789",
    );
    // The route's read_timeout is 2 s.
    let started = std::time::Instant::now();
    let r = conn.read().expect("an error response");
    assert_eq!((r.status, r.error_code().as_str()), (408, "client_timeout"));
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn slow_responses_stream_to_the_client_as_they_arrive() {
    let proxy = proxy("");
    for (method, body) in [("GET", &b""[..]), ("POST", &b"x"[..])] {
        let mut conn = Conn::open(proxy.addr);
        let started = std::time::Instant::now();
        conn.write(
            format!(
                "{method} /fn/__drip?chunks=4&ms=400 HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        conn.write(body);
        let first = conn.read_until(b"piece 0");
        let first_at = started.elapsed();
        let rest = conn.read_until(b"piece 3");
        let last_at = started.elapsed();
        assert!(first.starts_with(b"HTTP/1.1 200"), "{method}");
        assert!(rest.ends_with(b"piece 3"), "{method}");
        assert!(
            first_at + Duration::from_millis(900) < last_at,
            "{method}: first piece at {first_at:?}, last at {last_at:?}: buffered, not streamed"
        );
    }
}
