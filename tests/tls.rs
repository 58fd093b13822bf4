//! HTTPS listeners (`tls`, `admin_tls`): a client that verifies the certificate against a CA
//! the test makes gets signed responses; one without the CA fails verification; certificates
//! are re-read when their files change (a Kubernetes-style symlink swap) without closing open
//! connections, and a broken rotation keeps the old certificate.

mod common;

use common::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn peers() -> &'static Peers {
    static PEERS: OnceLock<Peers> = OnceLock::new();
    PEERS.get_or_init(Peers::start)
}

/// tests/peers/tls_tool.py: makes certificates, and is the HTTPS client.
struct Tool {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Tool {
    fn start() -> Tool {
        let mut child = Command::new(python())
            .arg(repo_root().join("tests/peers/tls_tool.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start tests/peers/tls_tool.py");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Tool {
            child,
            stdin,
            stdout,
        }
    }

    fn call(&mut self, command: Value) -> Value {
        writeln!(self.stdin, "{command}").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    }

    /// A certificate signed by the test CA (or self-signed), into `dir`/tls.crt and tls.key.
    fn cert(&mut self, dir: &Path, serial: u64, self_signed: bool) -> Value {
        std::fs::create_dir_all(dir).unwrap();
        let r = self.call(json!({
            "op": "cert", "serial": serial, "self_signed": self_signed,
            "cert": dir.join("tls.crt"), "key": dir.join("tls.key"),
        }));
        assert_eq!(r["ok"], true, "{r}");
        r
    }

    fn open(&mut self, id: &str, port: u16, ca: Option<&Path>) -> Value {
        self.call(json!({"op": "open", "id": id, "port": port, "cafile": ca}))
    }

    fn get(&mut self, id: &str, path: &str) -> Value {
        let r = self.call(json!({"op": "request", "id": id, "path": path}));
        assert_eq!(r["ok"], true, "{r}");
        r
    }
}

impl Drop for Tool {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CA in `dir`/ca.pem and a first certificate (serial 100) under `dir`/v1, served through
/// the symlink `dir`/live, as a Kubernetes secret volume does.
fn setup(tool: &mut Tool, dir: &Path) -> (PathBuf, Value) {
    let r = tool.call(json!({"op": "ca", "dir": dir}));
    assert_eq!(r["ok"], true, "{r}");
    let first = tool.cert(&dir.join("v1"), 100, false);
    std::os::unix::fs::symlink("v1", dir.join("live")).unwrap();
    (dir.join("ca.pem"), first)
}

/// Points `dir`/live at `version` in one rename, as the kubelet swaps `..data`.
fn swap(dir: &Path, version: &str) {
    let next = dir.join("live.next");
    let _ = std::fs::remove_file(&next);
    std::os::unix::fs::symlink(version, &next).unwrap();
    std::fs::rename(&next, dir.join("live")).unwrap();
}

/// sigproxy with an HTTPS traffic listener on the certificates under `dir`, `extra` keys, and
/// the Lambda route; ready.
fn https_proxy(dir: &Path, extra: &str) -> Proxy {
    let p = peers();
    let config = format!("{}{extra}{}", tls_yaml("tls", dir), p.lambda_config(""));
    Proxy::start_ready(&config, &p.caller_env())
}

fn tls_yaml(key: &str, dir: &Path) -> String {
    format!(
        "{key}:\n  cert_file: {}\n  key_file: {}\n",
        dir.join("live/tls.crt").display(),
        dir.join("live/tls.key").display()
    )
}

/// Until `ok` holds, for at most 15 s.
fn eventually(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{what}: not within 15 s");
}

#[test]
fn a_client_trusting_the_ca_gets_signed_responses_and_others_fail() {
    let dir = tempfile::tempdir().unwrap();
    let mut tool = Tool::start();
    let (ca, first) = setup(&mut tool, dir.path());
    let proxy = https_proxy(dir.path(), "");
    let port = proxy.addr.port();

    let opened = tool.open("a", port, Some(&ca));
    assert_eq!(opened["ok"], true, "{opened}");
    assert_eq!(opened["serial"], 100);
    assert_eq!(opened["alpn"], "http/1.1");
    let version = opened["version"].as_str().unwrap();
    assert!(matches!(version, "TLSv1.2" | "TLSv1.3"), "{version}");
    let r = tool.get("a", "/fn/over-https");
    assert_eq!(r["status"], 200, "{r}");
    let body: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
    assert!(
        body["access_key_id"].as_str().unwrap().starts_with("ASIA"),
        "signed by sigproxy with STS credentials: {body}"
    );

    // Without the CA (the system's store only), the certificate is not trusted.
    let untrusted = tool.open("b", port, None);
    assert_eq!(untrusted["ok"], false, "{untrusted}");
    assert!(
        untrusted["error"]
            .as_str()
            .unwrap()
            .contains("CERTIFICATE_VERIFY_FAILED"),
        "{untrusted}"
    );
    // The proxy goes on serving after the failed handshake.
    assert_eq!(tool.open("c", port, Some(&ca))["ok"], true);

    // Plain HTTP on the HTTPS port: a plain 400 saying so, not a hang or a TLS alert.
    let plain = try_request(proxy.addr, "GET", "/fn/plain", &[], b"")
        .expect("a plain HTTP answer on the HTTPS port");
    assert_eq!(plain.status, 400);
    assert!(
        String::from_utf8_lossy(&plain.body).contains("https://"),
        "{}",
        String::from_utf8_lossy(&plain.body)
    );

    let expiry = proxy.metric(
        "sigproxy_tls_certificate_expiry_timestamp_seconds",
        &[("listener", "listen")],
    );
    assert_eq!(
        expiry,
        first["not_after"].as_f64(),
        "notAfter of serial 100"
    );
}

#[test]
fn rotated_files_reach_new_connections_while_open_ones_keep_going() {
    let dir = tempfile::tempdir().unwrap();
    let mut tool = Tool::start();
    let (ca, _) = setup(&mut tool, dir.path());
    let proxy = https_proxy(dir.path(), "");
    let port = proxy.addr.port();
    let reloads = |result: &str| {
        proxy
            .metric(
                "sigproxy_tls_certificate_reloads_total",
                &[("listener", "listen"), ("result", result)],
            )
            .unwrap_or(-1.0)
    };
    assert_eq!(reloads("success"), 0.0);

    let opened = tool.open("kept", port, Some(&ca));
    assert_eq!(opened["serial"], 100, "{opened}");
    assert_eq!(tool.get("kept", "/fn/before")["status"], 200);

    // cert-manager renews: a new pair in v2, and the symlink swapped to it.
    let second = tool.cert(&dir.path().join("v2"), 200, false);
    swap(dir.path(), "v2");
    eventually("a new connection gets serial 200", || {
        let r = tool.open("probe", port, Some(&ca));
        tool.call(json!({"op": "close", "id": "probe"}));
        r["serial"] == 200
    });
    assert_eq!(reloads("success"), 1.0);
    let expiry = proxy.metric(
        "sigproxy_tls_certificate_expiry_timestamp_seconds",
        &[("listener", "listen")],
    );
    assert_eq!(expiry, second["not_after"].as_f64());

    // The connection opened before the rotation was not closed: same socket, old certificate.
    let r = tool.get("kept", "/fn/after");
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(r["same_connection"], true, "{r}");
    assert_eq!(r["serial"], 100, "{r}");

    // A broken rotation: v3's key is v1's, not the key of v3's certificate.
    let v3 = dir.path().join("v3");
    tool.cert(&v3, 300, false);
    std::fs::copy(dir.path().join("v1/tls.key"), v3.join("tls.key")).unwrap();
    swap(dir.path(), "v3");
    eventually("the broken pair is counted", || reloads("failure") == 1.0);
    let r = tool.open("after-broken", port, Some(&ca));
    assert_eq!(
        r["serial"], 200,
        "the previous certificate still serves: {r}"
    );
    assert_eq!(tool.get("after-broken", "/fn/still")["status"], 200);
    assert!(
        proxy.log().contains("do not load"),
        "the failure is logged: {}",
        proxy.log()
    );
    // Counted once, not at every poll.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(reloads("failure"), 1.0);

    // Fixed: served again.
    tool.cert(&dir.path().join("v4"), 400, false);
    swap(dir.path(), "v4");
    eventually("a new connection gets serial 400", || {
        let r = tool.open("probe", port, Some(&ca));
        tool.call(json!({"op": "close", "id": "probe"}));
        r["serial"] == 400
    });
}

/// sigproxy with `admin_tls`: the harness's `Proxy` waits on plain HTTP, so this one is
/// started by hand.
struct AdminTlsProxy {
    child: Child,
    admin: u16,
    addr: std::net::SocketAddr,
}

impl Drop for AdminTlsProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_admin_listener_serves_readyz_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let mut tool = Tool::start();
    let (ca, _) = setup(&mut tool, dir.path());
    let p = peers();
    let (addr, admin) = (free_port(), free_port());
    let config = dir.path().join("sigproxy.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{addr}\nadmin_listen: 127.0.0.1:{admin}\nshutdown_grace: 1s\n{}{}",
            tls_yaml("admin_tls", dir.path()),
            p.lambda_config("")
        ),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sigproxy"));
    cmd.arg("-c")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    isolate_aws_env(&mut cmd, dir.path());
    for (k, v) in p.caller_env() {
        cmd.env(k, v);
    }
    let proxy = AdminTlsProxy {
        child: cmd.spawn().unwrap(),
        admin,
        addr: format!("127.0.0.1:{addr}").parse().unwrap(),
    };
    eventually("/readyz answers 200 over TLS", || {
        if tool.open("admin", proxy.admin, Some(&ca))["ok"] != true {
            return false;
        }
        let r = tool.call(json!({"op": "request", "id": "admin", "path": "/readyz"}));
        tool.call(json!({"op": "close", "id": "admin"}));
        r["status"] == 200
    });
    assert_eq!(tool.open("m", proxy.admin, Some(&ca))["ok"], true);
    let metrics = tool.get("m", "/metrics");
    assert!(
        metrics["body"].as_str().unwrap().contains(
            "sigproxy_tls_certificate_expiry_timestamp_seconds{listener=\"admin_listen\"}"
        ),
        "{metrics}"
    );
    // The traffic port stays plain HTTP.
    assert_eq!(
        request(proxy.addr, "GET", "/fn/plain", &[], b"").status,
        200
    );
    // And the admin port refuses plain HTTP.
    let admin_addr = format!("127.0.0.1:{}", proxy.admin).parse().unwrap();
    assert_eq!(request(admin_addr, "GET", "/readyz", &[], b"").status, 400);
}

/// `sigproxy --check -c FILE`: its exit status and stderr.
fn check(config: &str, dir: &Path) -> (bool, String) {
    let path = dir.join("check.yaml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sigproxy"))
        .args(["--check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_names_the_file_the_key_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut tool = Tool::start();
    let (_, _) = setup(&mut tool, dir.path());
    let route = "routes:\n  - upstream: http://127.0.0.1:1\n";
    let pair = |cert: &Path, key: &Path| {
        format!(
            "tls:\n  cert_file: {}\n  key_file: {}\n{route}",
            cert.display(),
            key.display()
        )
    };
    let v1 = dir.path().join("v1");
    let (ok, err) = check(&pair(&v1.join("tls.crt"), &v1.join("tls.key")), dir.path());
    assert!(ok, "a good pair passes: {err}");

    let (ok, err) = check(
        &pair(&v1.join("missing.crt"), &v1.join("tls.key")),
        dir.path(),
    );
    assert!(!ok);
    assert!(
        err.contains("check.yaml: tls.cert_file: cannot read "),
        "{err}"
    );

    let (ok, err) = check(&pair(&v1.join("tls.key"), &v1.join("tls.key")), dir.path());
    assert!(!ok);
    assert!(
        err.contains("tls.cert_file: ") && err.contains("no PEM certificate"),
        "{err}"
    );

    let (ok, err) = check(&pair(&v1.join("tls.crt"), &v1.join("tls.crt")), dir.path());
    assert!(!ok);
    assert!(
        err.contains("tls.key_file: ") && err.contains("no unencrypted PEM private key"),
        "{err}"
    );

    let other = dir.path().join("other");
    tool.cert(&other, 7, false);
    let (ok, err) = check(
        &pair(&v1.join("tls.crt"), &other.join("tls.key")),
        dir.path(),
    );
    assert!(!ok);
    assert!(
        err.contains("tls.key_file: ") && err.contains("is not the private key of the certificate"),
        "{err}"
    );

    let (ok, err) = check(
        &format!(
            "admin_tls:\n  cert_file: {}\n{route}",
            v1.join("tls.crt").display()
        ),
        dir.path(),
    );
    assert!(!ok);
    assert!(err.contains("admin_tls.key_file: is required"), "{err}");
}

#[test]
fn new_tls_paths_need_a_restart_and_the_running_pair_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let mut tool = Tool::start();
    let (ca, _) = setup(&mut tool, dir.path());
    let proxy = https_proxy(dir.path(), "");
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", proxy.pid())).unwrap();
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let at = args.iter().position(|a| *a == b"-c").unwrap();
    let path = PathBuf::from(String::from_utf8(args[at + 1].to_vec()).unwrap());

    let other = dir.path().join("other");
    tool.cert(&other, 7, false);
    let text = std::fs::read_to_string(&path).unwrap().replace(
        &dir.path().join("live").display().to_string(),
        &other.display().to_string(),
    );
    std::fs::write(&path, text).unwrap();
    proxy.signal("HUP");
    eventually("the restart-only change is reported", || {
        proxy.metric("sigproxy_config_restart_required", &[]) == Some(1.0)
    });
    assert!(
        proxy.log().contains("tls needs a restart"),
        "{}",
        proxy.log()
    );
    let r = tool.open("a", proxy.addr.port(), Some(&ca));
    assert_eq!(r["serial"], 100, "the running files still serve: {r}");
}

#[test]
fn a_body_sent_at_a_trickle_over_tls_is_cut_with_408() {
    // Each byte comes well inside the route's read_timeout (2 s); the body's deadline is
    // 1 s + 10 ms a byte.
    let dir = tempfile::tempdir().unwrap();
    let mut tool = Tool::start();
    let (ca, _) = setup(&mut tool, dir.path());
    let limits = "request_body_timeout: 1s\nmin_request_body_rate: 100\n";
    let proxy = https_proxy(dir.path(), limits);
    let opened = tool.open("slow", proxy.addr.port(), Some(&ca));
    assert_eq!(opened["ok"], true, "{opened}");
    let r = tool.call(json!({"op": "trickle", "id": "slow", "path": "/fn/slow", "seconds": 8}));
    assert_eq!(r["ok"], true, "{r}");
    let answer = r["answer"].as_str().unwrap();
    let after = r["after"].as_f64().unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "after {after} s: {answer:?}"
    );
    assert!(answer.contains("\"code\":\"body_too_slow\""), "{answer}");
    assert!((0.8..4.0).contains(&after), "cut after {after} s");
    assert_eq!(
        proxy.metric("sigproxy_request_body_timeouts_total", &[]),
        Some(1.0)
    );
    // A body that keeps coming is taken.
    let fine = tool.open("fine", proxy.addr.port(), Some(&ca));
    assert_eq!(fine["ok"], true, "{fine}");
    let r = tool.call(
        json!({"op": "request", "id": "fine", "method": "PUT", "path": "/fn/ok", "body": "whole"}),
    );
    assert_eq!(r["status"], 200, "{r}");
}

#[test]
fn a_connection_that_never_says_hello_gives_its_place_back_at_its_timeout() {
    // It is closed when its handshake time is up; nothing was answered, so nothing is kept
    // open after (a lingering close held the place 2 s more, and the next client got a plain
    // 503 on the HTTPS port).
    let dir = tempfile::tempdir().unwrap();
    let mut tool = Tool::start();
    let (ca, _) = setup(&mut tool, dir.path());
    let proxy = https_proxy(
        dir.path(),
        "max_connections: 1\nrequest_header_timeout: 1s\n",
    );
    let port = proxy.addr.port();
    for (silent, hello) in [(&[][..], "silent"), (&[0x16, 0x03, 0x01, 0x02][..], "half")] {
        // The harness's own probe of the port may still hold the one place for a moment.
        let mut tries = 0;
        let (idle, n, buf) = loop {
            let mut idle = std::net::TcpStream::connect(proxy.addr).unwrap();
            idle.write_all(silent).unwrap();
            idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 64];
            // Closed at the timeout (EOF, or a reset when its half hello was left unread).
            let n = std::io::Read::read(&mut idle, &mut buf).unwrap_or(0);
            tries += 1;
            if n > 0 && buf.starts_with(b"HTTP/1.1 503") && tries < 20 {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            break (idle, n, buf);
        };
        assert_eq!(n, 0, "{hello}: {:?}", String::from_utf8_lossy(&buf[..n]));
        let opened = tool.open(hello, port, Some(&ca));
        assert_eq!(
            opened["ok"], true,
            "{hello}: the place is still taken: {opened}"
        );
        tool.call(json!({"op": "close", "id": hello}));
        drop(idle);
    }
}

#[test]
fn an_idle_tls_keep_alive_makes_room_at_max_connections() {
    let dir = tempfile::tempdir().unwrap();
    let mut tool = Tool::start();
    let (ca, _) = setup(&mut tool, dir.path());
    let proxy = https_proxy(dir.path(), "max_connections: 1\n");
    let port = proxy.addr.port();
    assert_eq!(tool.open("a", port, Some(&ca))["ok"], true);
    assert_eq!(tool.get("a", "/fn/first")["status"], 200);
    // "a" is idle between requests, inside TLS: the newcomer takes its place.
    let opened = tool.open("b", port, Some(&ca));
    assert_eq!(opened["ok"], true, "{opened}");
    assert_eq!(tool.get("b", "/fn/second")["status"], 200);
}

#[test]
fn check_warns_of_a_private_key_every_user_can_read() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let mut tool = Tool::start();
    setup(&mut tool, dir.path());
    let config = format!(
        "{}{}",
        tls_yaml("tls", dir.path()),
        peers().lambda_config("")
    );
    let key = dir.path().join("v1/tls.key");
    let warning = "the private key file can be read by every user";
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, out) = check(&config, dir.path());
    assert!(ok, "{out}");
    assert!(out.contains(warning), "{out}");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (ok, out) = check(&config, dir.path());
    assert!(ok, "{out}");
    assert!(!out.contains(warning), "{out}");
}

/// A TLS client refused at `max_connections` reads the JSON `503` over TLS (it retries that),
/// not a plain-text answer its TLS layer takes for a protocol error.
#[test]
fn a_tls_client_refused_at_max_connections_reads_the_503() {
    let dir = tempfile::tempdir().unwrap();
    let mut tool = Tool::start();
    let (ca, _) = setup(&mut tool, dir.path());
    let upstream = common::upstream::Upstream::builder()
        .answer_stream(|_, _| common::upstream::Reply::repeat(0, 256 << 20))
        .start();
    let config = format!(
        "{}max_connections: 1\nroutes:\n  - upstream: {}\n",
        tls_yaml("tls", dir.path()),
        upstream.url()
    );
    let proxy = Proxy::start_ready(&config, &[]);
    let port = proxy.addr.port();
    // "a" holds the one place: its answer is under way, and it reads none of it.
    eventually("a first client takes the place", || {
        tool.call(json!({"op": "close", "id": "a"}));
        tool.open("a", port, Some(&ca))["ok"] == true
            && tool.call(json!({"op": "send", "id": "a", "path": "/big"}))["ok"] == true
            && {
                std::thread::sleep(Duration::from_millis(300));
                proxy.metric("sigproxy_connections", &[]) == Some(1.0)
            }
    });
    let opened = tool.open("b", port, Some(&ca));
    assert_eq!(
        opened["ok"], true,
        "the refusal broke the handshake: {opened}"
    );
    let r = tool.call(json!({"op": "request", "id": "b", "path": "/x"}));
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["status"], 503, "{r}");
    assert!(r["body"].as_str().unwrap().contains("\"busy\""), "{r}");
    assert!(proxy.metric("sigproxy_connections_refused_total", &[]) >= Some(1.0));
}

#[test]
fn a_stalled_handshake_cut_to_make_room_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut tool = Tool::start();
    let (ca, _) = setup(&mut tool, dir.path());
    let proxy = https_proxy(dir.path(), "max_connections: 1\n");
    let port = proxy.addr.port();
    // Half a hello, then nothing: past a second, its place may be taken.
    let mut stalled = std::net::TcpStream::connect(proxy.addr).unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01, 0x02]).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let opened = tool.open("newcomer", port, Some(&ca));
    assert_eq!(opened["ok"], true, "no room made: {opened}");
    tool.call(json!({"op": "close", "id": "newcomer"}));
    let evicted = [("reason", "evicted")];
    proxy.wait_for("the cut handshake to be counted", || {
        proxy.metric("sigproxy_request_heads_refused_total", &evicted) == Some(1.0)
    });
    drop(stalled);
}
