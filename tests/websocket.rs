//! WebSocket through sigproxy, with a real client (Python `websockets`) and a stand-in for an
//! API Gateway WebSocket API with IAM authorization (tests/peers/ws_peer.py): it verifies each
//! upgrade's SigV4 signature for `execute-api` with botocore, answers `101` and echoes frames,
//! and refuses a bad signature with `403`.

mod common;

use common::{
    bearer_token_file, python, repo_root, request, rotate_token_file, static_keys, Proxy,
};
use serde_json::Value;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

const ACCESS_KEY: &str = "AKIDWEBSOCKETTEST";
const SECRET: &str = "websocket/Secret+Key=for-tests";
const LISTED_ORIGIN: &str = "https://app.example.com";

/// The verifying, echoing stand-in.
struct Peer {
    child: Child,
    _stdin: ChildStdin,
    url: String,
}

impl Peer {
    fn start() -> Peer {
        let mut child = Command::new(python())
            .arg(repo_root().join("tests/peers/ws_peer.py"))
            .args(["--key", &format!("{ACCESS_KEY}:{SECRET}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tests/peers/ws_peer.py");
        let stdin = child.stdin.take().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("read the stand-in's address");
        let info: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("stand-in did not start ({e}): {line:?}"));
        Peer {
            child,
            _stdin: stdin,
            url: info["url"].as_str().unwrap().to_string(),
        }
    }

    fn addr(&self) -> SocketAddr {
        self.url.trim_start_matches("http://").parse().unwrap()
    }

    /// How many upgrade signatures verified and failed, asked of the stand-in directly.
    fn stats(&self) -> Value {
        request(self.addr(), "GET", "/__stats", &[], b"").json()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// sigproxy in front of `peer`: `/ws/` signed for execute-api with `secret`, `/quiet/` with a
/// 1 s idle limit, `/short/` with a 2 s lifetime; pages from [`LISTED_ORIGIN`] allowed.
fn proxy(peer: &Peer, secret: &str) -> Proxy {
    proxy_with(peer, secret, "")
}

/// [`proxy`], with `top` (top-level YAML keys) added to its configuration.
fn proxy_with(peer: &Peer, secret: &str, top: &str) -> Proxy {
    let route = |name: &str, extra: &str| {
        format!(
            "  - name: {name}\n    match: {{ path_prefix: /{name}/ }}\n    strip_prefix: true\n    upstream: {}\n    service: execute-api\n    region: us-east-1\n    credentials: app\n{extra}",
            peer.url
        )
    };
    let config = format!(
        "{top}access:\n  allowed_origins: [\"{LISTED_ORIGIN}\"]\ncredentials:\n  app:\n    source: default\nroutes:\n{}{}{}",
        route("ws", ""),
        route("quiet", "    websocket: { idle_timeout: 1s }\n"),
        route(
            "short",
            "    websocket: { idle_timeout: 1s, max_lifetime: 2s }\n"
        ),
    );
    let proxy = Proxy::start(&config, &static_keys(ACCESS_KEY, secret));
    proxy.wait_ready();
    proxy
}

/// Runs the real client against sigproxy's `path` in `mode` (see tests/peers/ws_client.py).
fn client(proxy: &Proxy, path: &str, mode: &str, origin: Option<&str>) -> Value {
    let out = client_command(proxy, path, mode, origin)
        .output()
        .expect("run ws_client.py");
    parse_client(proxy, &out.stdout)
}

fn client_command(proxy: &Proxy, path: &str, mode: &str, origin: Option<&str>) -> Command {
    let mut cmd = Command::new(python());
    cmd.arg(repo_root().join("tests/peers/ws_client.py"))
        .arg(format!("ws://{}{path}", proxy.addr))
        .arg(mode);
    if let Some(origin) = origin {
        cmd.args(["--origin", origin]);
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
    cmd
}

fn parse_client(proxy: &Proxy, stdout: &[u8]) -> Value {
    let text = String::from_utf8_lossy(stdout);
    serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("ws_client.py said {text:?} ({e}); log:\n{}", proxy.log()))
}

fn access_lines(proxy: &Proxy) -> Vec<String> {
    proxy
        .log()
        .lines()
        .filter(|l| l.contains(" access: "))
        .map(str::to_string)
        .collect()
}

#[test]
fn frames_echo_both_ways_over_a_verified_signed_upgrade_and_are_counted() {
    let peer = Peer::start();
    let proxy = proxy(&peer, SECRET);
    let echoed = client(&proxy, "/ws/chat?room=1", "echo", None);
    assert_eq!(echoed["text"], "hello, upstream", "{echoed}");
    assert_eq!(echoed["binary"], "0001feff");
    assert_eq!(echoed["large_intact"], true);
    assert_eq!(echoed["text_after"], "again");
    // Sec-WebSocket-Protocol and -Extensions went up and the stand-in's choices came back.
    assert_eq!(echoed["subprotocol"], "chat.v1");
    let extensions = echoed["extensions"].as_str().unwrap_or_default();
    assert!(extensions.contains("permessage-deflate"), "{echoed}");

    let stats = peer.stats();
    assert_eq!(stats["verified"], 1, "{stats}");
    assert_eq!(stats["rejected"], 0, "{stats}");
    let signed = stats["signed_headers"].as_array().unwrap();
    assert!(signed.contains(&"host".into()), "{stats}");

    let upgraded = [("route", "ws"), ("result", "upgraded")];
    proxy.wait_for_metric("sigproxy_websocket_upgrades_total", &upgraded);
    let metric = |name: &str, labels: &[(&str, &str)]| proxy.metric(name, labels).unwrap_or(-1.0);
    assert_eq!(metric("sigproxy_websocket_upgrades_total", &upgraded), 1.0);
    // 256 KiB that does not compress, and three small frames, each way (plus frame headers
    // and deflate's few bytes of framing).
    let payload = (256 * 1024) as f64;
    let up = metric(
        "sigproxy_websocket_bytes_total",
        &[("route", "ws"), ("direction", "to_upstream")],
    );
    let down = metric(
        "sigproxy_websocket_bytes_total",
        &[("route", "ws"), ("direction", "to_client")],
    );
    assert!(up > payload && up < payload + 1000.0, "to_upstream {up}");
    assert!(
        down > payload && down < payload + 1000.0,
        "to_client {down}"
    );
    proxy.wait_for("the connection's close to be counted", || {
        metric(
            "sigproxy_websocket_duration_seconds_count",
            &[("route", "ws")],
        ) == 1.0
    });
    assert_eq!(
        metric("sigproxy_websocket_connections", &[("route", "ws")]),
        0.0
    );
    // The request's own series count the handshake, not the connection's bytes.
    assert_eq!(
        metric(
            "sigproxy_requests_total",
            &[("route", "ws"), ("code", "101")]
        ),
        1.0
    );

    let lines = access_lines(&proxy);
    let line = lines
        .iter()
        .find(|l| l.contains("status=101"))
        .unwrap_or_else(|| panic!("no access line for the upgrade: {lines:?}"));
    assert!(line.contains("upgrade=\"websocket\""), "{line}");
    assert!(line.contains("path=\"/chat\""), "{line}");
    assert!(line.contains(&format!("bytes_in={}", up as u64)), "{line}");
    assert!(
        line.contains(&format!("bytes_out={}", down as u64)),
        "{line}"
    );
    assert!(line.contains("close="), "{line}");
}

#[test]
fn a_bad_signature_is_refused_by_the_stand_in_and_relayed() {
    let peer = Peer::start();
    let proxy = proxy(&peer, "not-the-secret");
    let refused = client(&proxy, "/ws/chat", "echo", None);
    assert_eq!(refused["refused"], 403, "{refused}");
    assert!(
        refused["body"]
            .as_str()
            .unwrap()
            .contains("signature does not match"),
        "{refused}"
    );
    let stats = peer.stats();
    assert_eq!(
        (stats["verified"].as_u64(), stats["rejected"].as_u64()),
        (Some(0), Some(1))
    );
    let declined = [("route", "ws"), ("result", "declined")];
    proxy.wait_for_metric("sigproxy_websocket_upgrades_total", &declined);
}

#[test]
fn an_upstream_that_does_not_switch_is_answered_as_a_normal_response() {
    let peer = Peer::start();
    let proxy = proxy(&peer, SECRET);
    let refused = client(&proxy, "/ws/plain", "echo", None);
    assert_eq!(refused["refused"], 200, "{refused}");
    assert_eq!(refused["body"], "a plain answer, no switch\n");
    // The same over a raw connection: the answer is whole, and the connection serves on.
    let mut conn = TcpStream::connect(proxy.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let upgrade = "GET /ws/plain HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    conn.write_all(upgrade.as_bytes()).unwrap();
    let mut buf = vec![0; 4096];
    let n = conn.read(&mut buf).unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("x-peer: plain"), "{head}");
    assert_eq!(peer.stats()["verified"], 2);
    let declined = [("route", "ws"), ("result", "declined")];
    proxy.wait_for_metric("sigproxy_websocket_upgrades_total", &declined);
}

#[test]
fn an_idle_connection_is_closed_after_idle_timeout() {
    let peer = Peer::start();
    let proxy = proxy(&peer, SECRET);
    let idle = client(&proxy, "/quiet/x", "idle", None);
    let after = idle["closed_after"].as_f64().expect("closed");
    assert!((0.9..5.0).contains(&after), "closed after {after} s");
    let reason = [("route", "quiet"), ("reason", "idle_timeout")];
    proxy.wait_for("the idle close to be counted", || {
        proxy.metric("sigproxy_websocket_closed_total", &reason) == Some(1.0)
    });
}

#[test]
fn a_busy_connection_is_closed_at_max_lifetime() {
    let peer = Peer::start();
    let proxy = proxy(&peer, SECRET);
    // A frame every 200 ms: never idle for the route's 1 s, closed by its 2 s lifetime.
    let busy = client(&proxy, "/short/x", "busy", None);
    let after = busy["closed_after"].as_f64().expect("closed");
    assert!((1.9..6.0).contains(&after), "closed after {after} s");
    let reason = [("route", "short"), ("reason", "max_lifetime")];
    proxy.wait_for("the lifetime close to be counted", || {
        proxy.metric("sigproxy_websocket_closed_total", &reason) == Some(1.0)
    });
}

#[test]
fn a_web_page_from_another_origin_cannot_open_a_websocket() {
    let peer = Peer::start();
    let proxy = proxy(&peer, SECRET);
    // Browsers open WebSockets cross-origin without CORS: only the Origin tells.
    let refused = client(&proxy, "/ws/chat", "echo", Some("https://evil.example"));
    assert_eq!(refused["refused"], 403, "{refused}");
    assert!(
        refused["body"].as_str().unwrap().contains("web pages"),
        "{refused}"
    );
    assert_eq!(proxy.denied("ws", "origin"), Some(1.0));
    // Nothing reached the upstream.
    assert_eq!(peer.stats()["verified"], 0);
    // A listed origin's page may.
    let listed = client(&proxy, "/ws/chat", "echo", Some(LISTED_ORIGIN));
    assert_eq!(listed["text"], "hello, upstream", "{listed}");
}

#[test]
fn upgrades_to_anything_but_websocket_are_refused() {
    let peer = Peer::start();
    let proxy = proxy(&peer, SECRET);
    for (headers, why) in [
        (
            "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n",
            "'websocket' only",
        ),
        ("Connection: Upgrade\r\nUpgrade: TLS/1.2\r\n", "'websocket' only"),
        ("Connection: keep-alive\r\nUpgrade: websocket\r\n", "Connection: Upgrade"),
    ] {
        let head = format!("GET /ws/chat HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n");
        let answer = proxy.raw(head).expect("an answer");
        assert_eq!(answer.status, 400, "{headers}");
        assert!(answer.text().contains(why), "{headers}: {}", answer.text());
    }
    assert_eq!(peer.stats()["verified"], 0);
}

/// Starts an idle client on `/ws/` and waits until sigproxy counts its connection as open.
fn open_idle_websocket(proxy: &Proxy) -> Child {
    let child = client_command(proxy, "/ws/held", "idle", None)
        .spawn()
        .expect("start ws_client.py");
    let open = [("route", "ws")];
    proxy.wait_for("the WebSocket to be open", || {
        proxy.metric("sigproxy_websocket_connections", &open) == Some(1.0)
    });
    child
}

#[test]
fn an_upgraded_connection_holds_its_place_in_max_connections() {
    let peer = Peer::start();
    let proxy = proxy_with(&peer, SECRET, "max_connections: 1\n");
    let mut ws = open_idle_websocket(&proxy);
    // Busy, not idle: it is not evicted to make room.
    let refused = proxy.get("/ws/other");
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.error_code(), "busy");
    let open = [("route", "ws")];
    assert_eq!(
        proxy.metric("sigproxy_websocket_connections", &open),
        Some(1.0)
    );
    let _ = ws.kill();
    let _ = ws.wait();
}

/// Upgrades the stand-in has seen, verified or not.
fn upgrades_seen(peer: &Peer) -> u64 {
    let stats = peer.stats();
    stats["verified"].as_u64().unwrap() + stats["rejected"].as_u64().unwrap()
}

#[test]
fn websockets_cannot_take_every_connection() {
    let peer = Peer::start();
    let top = "max_connections: 8\nmax_websocket_connections: 2\n";
    let proxy = proxy_with(&peer, SECRET, top);
    let open = [("route", "ws")];
    let mut held = Vec::new();
    for n in 1..=2 {
        held.push(
            client_command(&proxy, "/ws/held", "idle", None)
                .spawn()
                .expect("start ws_client.py"),
        );
        proxy.wait_for("the WebSockets to be open", || {
            proxy.metric("sigproxy_websocket_connections", &open) == Some(f64::from(n))
        });
    }
    assert_eq!(upgrades_seen(&peer), 2);

    // A third is refused before anything is signed or sent: JSON 503 with Retry-After.
    let refused = client(&proxy, "/ws/third", "echo", None);
    assert_eq!(refused["refused"], 503, "{refused}");
    let body: Value = serde_json::from_str(refused["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "busy", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("too many WebSocket connections"),
        "{message}"
    );
    let mut raw = TcpStream::connect(proxy.addr).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = upgrade_head("/ws/raw").replace("Host: localhost", &format!("Host: {}", proxy.addr));
    raw.write_all(head.as_bytes()).unwrap();
    let answer = String::from_utf8_lossy(&read_head(&mut raw)).to_lowercase();
    assert!(answer.starts_with("http/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1\r\n"), "{answer}");
    drop(raw);
    assert_eq!(
        upgrades_seen(&peer),
        2,
        "the refused upgrades reached the upstream"
    );
    let refused_count = [("route", "ws"), ("result", "refused")];
    assert_eq!(
        proxy.metric("sigproxy_websocket_upgrades_total", &refused_count),
        Some(2.0)
    );

    // Ordinary requests still have their places.
    let plain = proxy.get("/ws/__stats");
    assert_eq!(plain.status, 200, "{}", plain.text());

    // A closed WebSocket gives its place back.
    let mut first = held.remove(0);
    let _ = first.kill();
    let _ = first.wait();
    proxy.wait_for("the closed WebSocket's access line", || {
        access_lines(&proxy)
            .iter()
            .any(|l| l.contains("status=101"))
    });
    let echoed = client(&proxy, "/ws/again", "echo", None);
    assert_eq!(echoed["text"], "hello, upstream", "{echoed}");
    assert_eq!(upgrades_seen(&peer), 3);
    for mut ws in held {
        let _ = ws.kill();
        let _ = ws.wait();
    }
}

#[test]
fn on_sigterm_an_upgraded_connection_is_closed_when_shutdown_grace_ends() {
    let peer = Peer::start();
    let top = "shutdown_delay: 0s\nshutdown_grace: 2s\n";
    let mut proxy = proxy_with(&peer, SECRET, top);
    let ws = open_idle_websocket(&proxy);
    let signalled = std::time::Instant::now();
    proxy.signal("TERM");
    let out = ws.wait_with_output().expect("the client ends");
    let after = signalled.elapsed();
    let closed = parse_client(&proxy, &out.stdout);
    assert!(closed["closed_after"].as_f64().is_some(), "{closed}");
    // Served through the grace, then closed with the process.
    assert!(
        after >= Duration::from_millis(1500) && after < Duration::from_secs(10),
        "closed {after:?} after SIGTERM"
    );
    assert!(
        proxy.wait_exit(Duration::from_secs(5)).is_some(),
        "sigproxy exits"
    );
}

/// The `101` a raw stand-in answers an upgrade with.
const SWITCHED: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

/// An upgrade request for `path`, as a client sends it.
fn upgrade_head(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
}

/// Reads a request head off `conn` (and whatever came with it).
fn read_head(conn: &mut TcpStream) -> Vec<u8> {
    let mut head = Vec::new();
    let mut buf = [0; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf).expect("a request head");
        assert!(n > 0, "closed before the head ended");
        head.extend_from_slice(&buf[..n]);
    }
    head
}

/// sigproxy with one signed route, `/raw/`, to `upstream` (a raw stand-in in the test).
fn proxy_to_raw(upstream: SocketAddr, websocket: &str) -> Proxy {
    let config = format!(
        "credentials:\n  app:\n    source: default\nroutes:\n  - name: raw\n    match: {{ path_prefix: /raw/ }}\n    strip_prefix: true\n    upstream: http://{upstream}\n    service: execute-api\n    region: us-east-1\n    credentials: app\n    websocket: {websocket}\n"
    );
    let proxy = Proxy::start(&config, &static_keys(ACCESS_KEY, SECRET));
    proxy.wait_ready();
    proxy
}

#[test]
fn a_client_reading_slowly_cannot_hold_a_websocket_past_max_lifetime() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream_addr = listener.local_addr().unwrap();
    // Switches, then sends as fast as it can; tells when sigproxy dropped its connection.
    let upstream = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        read_head(&mut conn);
        conn.write_all(SWITCHED).unwrap();
        conn.set_write_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let started = Instant::now();
        let chunk = vec![0x82u8; 64 * 1024];
        while started.elapsed() < Duration::from_secs(20) {
            match conn.write(&chunk) {
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return Some(started.elapsed()),
            }
        }
        None
    });
    let proxy = proxy_to_raw(upstream_addr, "{ idle_timeout: 1s, max_lifetime: 2s }");
    let mut client = TcpStream::connect(proxy.addr).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client
        .write_all(upgrade_head("/raw/feed").as_bytes())
        .unwrap();
    // Reads a little, often: every write to it makes progress (no client_write_timeout),
    // and bytes move all the time (never idle).
    let reading = Instant::now();
    let mut buf = [0; 8 * 1024];
    while reading.elapsed() < Duration::from_secs(8) && !upstream.is_finished() {
        match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    drop(client);
    let dropped = upstream.join().unwrap();
    let dropped = dropped.unwrap_or_else(|| panic!("never closed; log:\n{}", proxy.log()));
    assert!(
        dropped < Duration::from_secs(5),
        "closed {dropped:?} after the switch, past its 2 s lifetime"
    );
    let reason = [("route", "raw"), ("reason", "max_lifetime")];
    proxy.wait_for("the lifetime close to be counted", || {
        proxy.metric("sigproxy_websocket_closed_total", &reason) == Some(1.0)
    });
}

/// A raw stand-in that answers one upgrade with `answer`, then returns all it reads after the
/// request head (until the connection closes, or 3 s).
fn answering_once(answer: &'static [u8]) -> (SocketAddr, std::thread::JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let thread = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let head = read_head(&mut conn);
        let end = head.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let mut after = head[end..].to_vec();
        conn.write_all(answer).unwrap();
        conn.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let started = Instant::now();
        let mut buf = [0; 4096];
        while started.elapsed() < Duration::from_secs(3) {
            match conn.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => after.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => break,
            }
        }
        after
    });
    (addr, thread)
}

#[test]
fn a_101_that_is_no_websocket_handshake_opens_no_tunnel() {
    for answer in [
        // What an endpoint that answers with any status it is asked for sends.
        &b"HTTP/1.1 101 Switching Protocols\r\n\r\n"[..],
        // A switch, but not to WebSocket.
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
        // Not an answer to this request's Sec-WebSocket-Key.
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: bm90IHRoZSBhbnN3ZXI=\r\n\r\n",
    ] {
        let (addr, upstream) = answering_once(answer);
        let proxy = proxy_to_raw(addr, "{ idle_timeout: 5s }");
        let mut client = TcpStream::connect(proxy.addr).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        client.write_all(upgrade_head("/raw/x").as_bytes()).unwrap();
        let mut buf = [0; 4096];
        let n = client.read(&mut buf).unwrap_or(0);
        let head = String::from_utf8_lossy(&buf[..n]).to_string();
        // Were the connections joined, this would reach the upstream unsigned and unchecked.
        let _ = client.write_all(b"GET /admin HTTP/1.1\r\nHost: internal\r\n\r\n");
        let reached = upstream.join().unwrap();
        let answer = String::from_utf8_lossy(answer);
        assert!(
            !String::from_utf8_lossy(&reached).contains("/admin"),
            "{answer:?}: the client's bytes reached the upstream"
        );
        assert!(head.starts_with("HTTP/1.1 502"), "{answer:?}: {head}");
        assert!(head.contains("upstream"), "{answer:?}: {head}");
    }
}

#[test]
fn a_declined_upgrade_gives_its_place_back_before_its_answer_is_relayed() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = listener.local_addr().unwrap();
    // Declines /raw/declined with an answer that takes 3 s to send; switches anything else.
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten().take(2) {
            std::thread::spawn(move || {
                let mut conn = conn;
                let head = read_head(&mut conn);
                if head.starts_with(b"GET /declined") {
                    // Chunked: each piece goes on at once (a Content-Length body's small
                    // pieces wait in pingora's write buffer).
                    let head =
                        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n12345\r\n";
                    let _ = conn.write_all(head.as_bytes());
                    std::thread::sleep(Duration::from_secs(3));
                    let _ = conn.write_all(b"0\r\n\r\n");
                } else {
                    let _ = conn.write_all(SWITCHED);
                }
                std::thread::sleep(Duration::from_secs(3));
            });
        }
    });
    let config = format!(
        "max_websocket_connections: 1\ncredentials:\n  app:\n    source: default\nroutes:\n  - name: raw\n    match: {{ path_prefix: /raw/ }}\n    strip_prefix: true\n    upstream: http://{upstream}\n    service: execute-api\n    region: us-east-1\n    credentials: app\n"
    );
    let proxy = Proxy::start(&config, &static_keys(ACCESS_KEY, SECRET));
    proxy.wait_ready();
    let mut declined = TcpStream::connect(proxy.addr).unwrap();
    declined
        .write_all(upgrade_head("/raw/declined").as_bytes())
        .unwrap();
    declined
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut buf = [0; 256];
    let n = declined.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
    // Its answer is still on its way: the one place is free all the same.
    let mut upgrade = TcpStream::connect(proxy.addr).unwrap();
    upgrade
        .write_all(upgrade_head("/raw/ok").as_bytes())
        .unwrap();
    let head = read_head(&mut upgrade);
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
}

#[test]
fn a_reload_that_revokes_the_token_closes_its_websocket() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = listener.local_addr().unwrap();
    // Switches, then holds the connection until sigproxy closes it.
    std::thread::spawn(move || {
        if let Some(Ok(mut conn)) = listener.incoming().next() {
            read_head(&mut conn);
            let _ = conn.write_all(SWITCHED);
            let mut buf = [0; 1024];
            while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = ("websocket-token-old-0123456", "websocket-token-new-7654321");
    let (token_file, access) = bearer_token_file(dir.path(), old);
    let config = format!(
        "{access}credentials:\n  app:\n    source: default\nroutes:\n  - name: raw\n    match: {{ path_prefix: /raw/ }}\n    strip_prefix: true\n    upstream: http://{upstream}\n    service: execute-api\n    region: us-east-1\n    credentials: app\n"
    );
    let proxy = Proxy::start(&config, &static_keys(ACCESS_KEY, SECRET));
    proxy.wait_ready();
    let mut client = TcpStream::connect(proxy.addr).unwrap();
    let head = upgrade_head("/raw/feed").replace(
        "\r\n\r\n",
        &format!("\r\nAuthorization: Bearer {old}\r\n\r\n"),
    );
    client.write_all(head.as_bytes()).unwrap();
    let switched = read_head(&mut client);
    assert!(switched.starts_with(b"HTTP/1.1 101"), "{switched:?}");
    // While the token holds, the connection stays, a reload that keeps it included.
    client
        .set_read_timeout(Some(Duration::from_millis(2500)))
        .unwrap();
    let mut buf = [0; 64];
    let quiet = client.read(&mut buf);
    assert!(
        matches!(&quiet, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "closed with a valid token: {quiet:?}"
    );
    proxy.signal("HUP");
    let quiet = client.read(&mut buf);
    assert!(
        matches!(&quiet, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "closed by a reload that kept the token: {quiet:?}"
    );
    // The token is rotated: the connection it opened is closed within a few seconds.
    rotate_token_file(&token_file, new);
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let read = client.read(&mut buf);
    assert!(
        matches!(read, Ok(0) | Err(_)) && started.elapsed() < Duration::from_secs(8),
        "still open after {:?}: {read:?}",
        started.elapsed()
    );
    let revoked = [("route", "raw"), ("reason", "revoked")];
    proxy.wait_for("the revoked close to be counted", || {
        proxy.metric("sigproxy_websocket_closed_total", &revoked) == Some(1.0)
    });
}

#[test]
fn a_reload_that_removes_its_route_or_narrows_its_allow_list_closes_its_websocket() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = listener.local_addr().unwrap();
    // Switches every upgrade, then holds each connection until sigproxy closes it.
    std::thread::spawn(move || {
        for mut conn in listener.incoming().take(3).flatten() {
            std::thread::spawn(move || {
                read_head(&mut conn);
                let _ = conn.write_all(SWITCHED);
                let mut buf = [0; 1024];
                while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    let route = |name: &str, allow: &str| {
        format!("  - name: {name}\n    match: {{ path_prefix: /{name}/ }}\n    upstream: http://{upstream}\n    service: execute-api\n    region: us-east-1\n    credentials: app\n{allow}")
    };
    let config = |routes: &[String]| {
        format!(
            "credentials:\n  app:\n    source: default\nroutes:\n{}",
            routes.concat()
        )
    };
    let narrowed = "    allow: [{ methods: [GET], paths: [/kept/other] }]\n";
    let granted = "    allow: [{ methods: [GET], paths: [/kept/feed] }]\n";
    let before = config(&[
        route("gone", ""),
        route("kept", granted),
        route("stays", ""),
    ]);
    let proxy = Proxy::start(&before, &static_keys(ACCESS_KEY, SECRET));
    proxy.wait_ready();
    let open = |path: &str| {
        let mut client = TcpStream::connect(proxy.addr).unwrap();
        client.write_all(upgrade_head(path).as_bytes()).unwrap();
        let switched = read_head(&mut client);
        assert!(switched.starts_with(b"HTTP/1.1 101"), "{switched:?}");
        client
            .set_read_timeout(Some(Duration::from_millis(2500)))
            .unwrap();
        client
    };
    let still_open = |client: &mut TcpStream| {
        let read = client.read(&mut [0; 64]);
        matches!(&read, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut))
    };
    let (mut gone, mut kept, mut stays) =
        (open("/gone/feed"), open("/kept/feed"), open("/stays/feed"));
    // A reload that changes nothing closes nothing.
    proxy.signal("HUP");
    assert!(still_open(&mut gone) && still_open(&mut kept) && still_open(&mut stays));

    // The route `gone` is removed, `kept`'s allow list no longer grants the path.
    let written = std::fs::read_to_string(proxy.config_path()).unwrap();
    let after = written
        .replace(&route("gone", ""), "")
        .replace(granted, narrowed);
    assert!(
        !after.contains("gone") && after.contains(narrowed),
        "{after}"
    );
    std::fs::write(proxy.config_path(), after).unwrap();
    proxy.signal("HUP");
    for (what, client) in [("gone", &mut gone), ("kept", &mut kept)] {
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let started = Instant::now();
        let read = client.read(&mut [0; 64]);
        assert!(
            matches!(read, Ok(0) | Err(_)) && started.elapsed() < Duration::from_secs(8),
            "{what}: still open after {:?}: {read:?}",
            started.elapsed()
        );
    }
    assert!(still_open(&mut stays), "a route the reload left as it was");
    // Counted for the route still there (the removed one's series went with it), and logged
    // for both.
    let revoked = [("route", "kept"), ("reason", "revoked")];
    proxy.wait_for("the revoked close to be counted", || {
        proxy.metric("sigproxy_websocket_closed_total", &revoked) == Some(1.0)
    });
    for route in ["gone", "kept"] {
        let line = format!("route=\"{route}\"");
        proxy.wait_for("the revoked close to be logged", || {
            let log = proxy.log();
            log.lines()
                .any(|l| l.contains(&line) && l.contains("close=\"revoked\""))
        });
    }
}
