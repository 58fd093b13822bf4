//! SigV4A (`signing: sigv4a`, and S3 Multi-Region Access Points by themselves), checked by an
//! independent verifier: tests/peers/sigv4a_verifier.py derives the ECDSA P-256 key from the
//! secret as the SigV4A specification says, rebuilds the canonical request from what it
//! received and checks the signature with Python's `cryptography`. It answers 200 only when the
//! signature verifies, 403 otherwise.

mod common;

use common::upstream::Upstream;
use common::{python, repo_root, request, Proxy, Response};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};

const ACCESS_KEY: &str = "AKIDSIGV4ATEST";
const SECRET: &str = "sigv4a/Secret+Key=for-tests";
const MRAP: &str = "mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com";

/// The verifying stand-in, in the region `region`, knowing `secret` for [`ACCESS_KEY`].
struct Verifier {
    child: Child,
    _stdin: ChildStdin,
    url: String,
}

impl Verifier {
    fn start(region: &str, secret: &str) -> Verifier {
        let mut child = Command::new(python())
            .arg(repo_root().join("tests/peers/sigv4a_verifier.py"))
            .args([
                "--region",
                region,
                "--key",
                &format!("{ACCESS_KEY}:{secret}"),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tests/peers/sigv4a_verifier.py");
        let stdin = child.stdin.take().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("read the verifier's address");
        let info: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("verifier did not start ({e}): {line:?}"));
        Verifier {
            child,
            _stdin: stdin,
            url: info["url"].as_str().unwrap().to_string(),
        }
    }

    fn addr(&self) -> SocketAddr {
        self.url.trim_start_matches("http://").parse().unwrap()
    }
}

impl Drop for Verifier {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A relay to `target` that changes `from` into `to` (same length) in each connection's first
/// request head: a hop after sigproxy touching a signed header.
struct HeadTamper {
    addr: SocketAddr,
}

impl HeadTamper {
    fn start(target: SocketAddr, from: &'static str, to: &'static str) -> HeadTamper {
        assert_eq!(from.len(), to.len());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                std::thread::spawn(move || relay(client, target, from, to));
            }
        });
        HeadTamper { addr }
    }
}

fn relay(mut client: TcpStream, target: SocketAddr, from: &str, to: &str) {
    let Ok(mut upstream) = TcpStream::connect(target) else {
        return;
    };
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 64 * 1024 {
        if client.read(&mut byte).unwrap_or(0) == 0 {
            return;
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).replacen(from, to, 1);
    if upstream.write_all(text.as_bytes()).is_err() {
        return;
    }
    let (mut c2, mut u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut c2, &mut u2);
    });
    let _ = std::io::copy(&mut upstream, &mut client);
}

/// sigproxy with `config`, once its credentials are loaded.
fn start(config: &str) -> Proxy {
    let proxy = Proxy::start(config, &env());
    proxy.wait_ready();
    proxy
}

fn env() -> Vec<(String, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID".into(), ACCESS_KEY.into()),
        ("AWS_SECRET_ACCESS_KEY".into(), SECRET.into()),
    ]
}

/// A route under `/<name>/` to `upstream` with `keys` (YAML, indented four spaces).
fn route(name: &str, upstream: &str, keys: &str) -> String {
    format!(
        "  - name: {name}\n    match: {{ path_prefix: /{name}/ }}\n    strip_prefix: true\n    \
         upstream: {upstream}\n    credentials: app\n{keys}"
    )
}

fn config(routes: &[String]) -> String {
    format!(
        "credentials:\n  app:\n    source: default\nroutes:\n{}",
        routes.concat()
    )
}

const V4A: &str = "    signing: sigv4a\n    service: s3\n    region_set: [us-east-1, us-west-2]\n";

fn put(proxy: &Proxy, path: &str, body: &[u8]) -> Response {
    request(
        proxy.addr,
        "PUT",
        path,
        &[
            ("x-amz-meta-color", "blue-sky"),
            ("content-type", "text/plain"),
        ],
        body,
    )
}

fn verified(r: &Response) -> Value {
    assert_eq!(
        r.status,
        200,
        "not verified: {}",
        String::from_utf8_lossy(&r.body)
    );
    let echo = r.json();
    assert_eq!(echo["verified"], true, "{echo}");
    assert_eq!(echo["algorithm"], "AWS4-ECDSA-P256-SHA256", "{echo}");
    assert_eq!(echo["access_key"], ACCESS_KEY, "{echo}");
    echo
}

fn refused(r: &Response, why: &str) {
    let body = String::from_utf8_lossy(&r.body);
    assert_eq!(r.status, 403, "{body}");
    assert!(body.contains(why), "want {why:?} in {body}");
}

#[test]
fn sigv4a_routes_verify_with_an_independent_implementation() {
    let verifier = Verifier::start("us-west-2", SECRET);
    let url = &verifier.url;
    let proxy = start(&config(&[
        route("signed", url, V4A),
        route("unsigned", url, &format!("{V4A}    payload: unsigned\n")),
    ]));
    let body = b"hello multi-region world".repeat(100);
    let echo = verified(&put(&proxy, "/signed/bucket/key%20one?b=2&a=1", &body));
    assert_eq!(echo["region_set"], "us-east-1,us-west-2");
    assert_eq!(echo["service"], "s3");
    let path = echo["path"].as_str().unwrap();
    assert!(path.starts_with("/bucket/key%20one?"), "{path}");
    assert_eq!(echo["payload_hash"], echo["body_sha256"]);
    assert_eq!(echo["body_len"], body.len());
    for name in [
        "host",
        "x-amz-region-set",
        "x-amz-meta-color",
        "content-type",
    ] {
        assert!(
            echo["signed_headers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|h| h == name),
            "{name} not signed: {echo}"
        );
    }
    let get = request(proxy.addr, "GET", "/signed/bucket/?list-type=2", &[], b"");
    verified(&get);

    let echo = verified(&put(&proxy, "/unsigned/bucket/big", &body));
    assert_eq!(echo["payload_hash"], "UNSIGNED-PAYLOAD");
    assert_eq!(echo["body_len"], body.len());
}

#[test]
fn mrap_hosts_are_signed_with_sigv4a_by_themselves() {
    let verifier = Verifier::start("eu-central-1", SECRET);
    // Connected to the stand-in, signed for the Multi-Region Access Point's name; no service,
    // region or signing named: all of it comes from the host.
    let keys = format!("    sign_host: {MRAP}\n");
    let proxy = start(&config(&[route("mrap", &verifier.url, &keys)]));
    let echo = verified(&put(&proxy, "/mrap/photos/cat.jpg", b"meow"));
    assert_eq!(echo["host"], MRAP);
    assert_eq!(echo["region_set"], "*");
    assert_eq!(echo["service"], "s3");
    assert_eq!(echo["payload_hash"], echo["body_sha256"]);
}

#[test]
fn tampering_after_signing_is_refused() {
    let verifier = Verifier::start("us-west-2", SECRET);
    let header = HeadTamper::start(verifier.addr(), "blue-sky", "blue-skz");
    let body_relay = Upstream::builder()
        .relay_to(verifier.addr())
        .flip_body_byte(10)
        .start();
    let untouched = HeadTamper::start(verifier.addr(), "not-present", "not-presenT");
    let proxy = start(&config(&[
        route("header", &format!("http://{}", header.addr), V4A),
        route("body", &body_relay.url(), V4A),
        route("relayed", &format!("http://{}", untouched.addr), V4A),
    ]));
    let body = b"a body of some length, to be flipped".to_vec();
    // The same relay, touching nothing: verified (so the refusals below are the tampering's).
    verified(&put(&proxy, "/relayed/bucket/key", &body));
    refused(
        &put(&proxy, "/header/bucket/key", &body),
        "signature does not verify",
    );
    refused(
        &put(&proxy, "/body/bucket/key", &body),
        "the body does not match x-amz-content-sha256",
    );
}

/// The verifier can say no: a SigV4 (HMAC) signature, a region outside the set, a key derived
/// from another secret.
#[test]
fn the_verifier_refuses_what_is_not_a_valid_sigv4a_signature() {
    let verifier = Verifier::start("us-west-2", SECRET);
    let other_secret = Verifier::start("us-west-2", "another-secret");
    let url = &verifier.url;
    let proxy = start(&config(&[
        route("v4", url, "    service: s3\n    region: us-west-2\n"),
        route(
            "elsewhere",
            url,
            "    signing: sigv4a\n    service: s3\n    region_set: [eu-west-1]\n",
        ),
        route("other", &other_secret.url, V4A),
        route("good", url, V4A),
    ]));
    refused(
        &put(&proxy, "/v4/bucket/key", b"x"),
        "algorithm 'AWS4-HMAC-SHA256' is not AWS4-ECDSA-P256-SHA256",
    );
    refused(
        &put(&proxy, "/elsewhere/bucket/key", b"x"),
        "does not include us-west-2",
    );
    refused(
        &put(&proxy, "/other/bucket/key", b"x"),
        "signature does not verify",
    );
    verified(&put(&proxy, "/good/bucket/key", b"x"));
}

#[test]
fn sigv4a_config_mistakes_are_refused_with_file_key_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let check = |name: &str, routes: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!("credentials:\n  app:\n    source: default\nroutes:\n{routes}"),
        )
        .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_sigproxy"))
            .args(["--check", "-c", path.to_str().unwrap()])
            .output()
            .expect("run sigproxy --check");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), path.display().to_string(), text)
    };
    let streaming = route(
        "s",
        "http://127.0.0.1:9",
        &format!("{V4A}    payload: streaming\n"),
    );
    let (ok, path, text) = check("streaming.yaml", &streaming);
    assert!(!ok, "{text}");
    assert!(
        text.contains(&format!(
            "{path}: routes[0].payload: 'streaming' cannot be signed with SigV4A"
        )),
        "{text}"
    );
    let mrap_v4 = route("m", &format!("https://{MRAP}"), "    signing: sigv4\n");
    let (ok, path, text) = check("mrap.yaml", &mrap_v4);
    assert!(!ok, "{text}");
    assert!(
        text.contains(&format!("{path}: routes[0].signing: '{MRAP}' is an S3 Multi-Region Access Point, which accepts SigV4A only")),
        "{text}"
    );
    // And `--check` says how a good one signs.
    let (ok, _, text) = check("good.yaml", &route("m", &format!("https://{MRAP}"), ""));
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!(
            "route m: https://{MRAP} service=s3 signing=sigv4a region_set=* payload=unsigned"
        )),
        "{text}"
    );
}
