//! A `-u` process before its first credentials: it holds the sockets the running process handed
//! over, and accepts traffic and credential endpoint connections only once every credential set
//! has had its first fetch. Credentials from a `credential_process` that is slow from the
//! second process on make that window.

mod common;

use common::*;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const TOKEN: &str = "upgrade-endpoint-token-7c41";

/// A `credential_process` (in an AWS config file, through the default chain) that answers at
/// once until [`SlowCredentials::slow_down`], then after `delay`, with the keys `(id, secret)`.
struct SlowCredentials {
    dir: tempfile::TempDir,
    delay: &'static str,
}

impl SlowCredentials {
    fn new(delay: &'static str) -> SlowCredentials {
        SlowCredentials::with_keys(delay, ("AKIDSLOW", "slow"))
    }

    fn with_keys(delay: &'static str, (id, secret): (&str, &str)) -> SlowCredentials {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("credentials");
        let slow = dir.path().join("slow");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nif [ -e {} ]; then sleep {delay}; fi\n\
                 echo '{{\"Version\": 1, \"AccessKeyId\": \"{id}\", \"SecretAccessKey\": \"{secret}\"}}'\n",
                slow.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let config = format!("[default]\ncredential_process = {}\n", script.display());
        std::fs::write(dir.path().join("aws-config"), config).unwrap();
        SlowCredentials { dir, delay }
    }

    fn env(&self) -> Vec<(String, String)> {
        let file = self.dir.path().join("aws-config");
        vec![("AWS_CONFIG_FILE".into(), file.display().to_string())]
    }

    fn slow_down(&self) {
        std::fs::write(self.dir.path().join("slow"), self.delay).unwrap();
    }

    fn speed_up(&self) {
        std::fs::remove_file(self.dir.path().join("slow")).unwrap();
    }

    fn token_file(&self) -> PathBuf {
        let file = self.dir.path().join("token");
        std::fs::write(&file, TOKEN).unwrap();
        file
    }
}

/// A running process (fast credentials) and an upgraded one that has its sockets and waits for
/// slow credentials; the first is told to hand over and has exited.
fn upgraded(creds: &SlowCredentials, config: &str) -> Proxy {
    let mut first = Proxy::builder(config)
        .env(&creds.env())
        .upgradable()
        .start();
    first.wait_ready();
    creds.slow_down();
    let second = first.upgrade(&creds.env());
    first.signal("QUIT");
    assert!(first.wait_exit(Duration::from_secs(15)).is_some());
    assert!(!second.log().contains("accepting\n"), "{}", second.log());
    second
}

fn open_route(upstream: &common::upstream::Upstream) -> String {
    format!(
        "credentials:\n  app: {{}}\nroutes:\n  - name: open\n    upstream: http://{}\n",
        upstream.addr
    )
}

/// pingora hands over its table of listening sockets as it is at SIGQUIT. A `-u` process whose
/// `listen` moved binds the new address itself; the socket must be in the table before the
/// process accepts on it. It was not: a SIGQUIT meanwhile handed over everything but the
/// traffic socket, and the next process, unable to bind an address still held, exited; made to
/// wait for the socket instead, the hand-over outlasted the next process's wait for the
/// sockets (about 6 s).
#[test]
fn a_hand_over_while_an_upgraded_process_waits_for_credentials_sends_every_socket() {
    let creds = SlowCredentials::new("7");
    let upstream = common::upstream::Upstream::builder().start();
    let first = Proxy::builder(&open_route(&upstream))
        .env(&creds.env())
        .upgradable()
        .start();
    first.wait_ready();
    creds.slow_down();

    let moved_to: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let file = std::fs::read_to_string(first.config_path()).unwrap();
    let moved = file.replace(
        &format!("listen: {}\n", first.addr),
        &format!("listen: {moved_to}\n"),
    );
    assert_ne!(moved, file, "the test moves listen");
    std::fs::write(first.config_path(), moved).unwrap();
    let mut second = first.upgrade(&creds.env());
    first.signal("QUIT");
    // The second process waits 7 s for credentials before accepting: hand over again now.
    second.wait_for("its start", || second.log().contains("sigproxy starting"));
    let mut third = second.upgrade(&creds.env());
    second.signal("QUIT");
    assert!(
        second.wait_exit(Duration::from_secs(15)).is_some(),
        "the second process did not exit"
    );
    let log = third.log();
    assert!(third.wait_exit(Duration::from_secs(1)).is_none(), "{log}");
    third.wait_ready();
    let r = request(moved_to, "GET", "/open/after", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!third.log().contains("cannot listen"), "{}", third.log());
}

/// The credential endpoint answered at once, 503 to every SDK, until the upgraded process had
/// credentials (the process it replaced would have served them); now it waits like traffic.
#[test]
fn an_upgraded_process_serves_the_credential_endpoint_once_it_has_credentials() {
    // The endpoint hands out a role's session: moto's STS, with the caller's keys slow to come.
    let peers = Peers::start();
    let keys = (peers.get("access_key_id"), peers.get("secret_access_key"));
    let creds = SlowCredentials::with_keys("7", keys);
    let endpoint: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = format!(
        "credential_endpoint:\n  listen: {endpoint}\n  credentials: app\n  authorization_token_file: {}\n{}",
        creds.token_file().display(),
        peers.lambda_config("")
    );
    let second = upgraded(&creds, &config);
    let asked = Instant::now();
    let r = request(
        endpoint,
        "GET",
        "/credentials",
        &[("authorization", TOKEN)],
        b"",
    );
    assert_eq!(r.status, 200, "after {:?}: {}", asked.elapsed(), r.text());
    assert!(r.text().contains("\"Token\""), "{}", r.text());
    assert!(second
        .log()
        .contains("sigproxy credential endpoint: accepting"));
}

/// SIGTERM to an upgraded process still waiting for credentials: what waits in the listen
/// queue is served during `shutdown_delay`, not reset when the process exits.
#[test]
fn sigterm_before_the_first_credentials_serves_what_is_queued() {
    // Longer than the wait for first fetches (10 s): only SIGTERM starts the accepting.
    let creds = SlowCredentials::new("14");
    let upstream = common::upstream::Upstream::builder().start();
    let config = format!("shutdown_delay: 1s\n{}", open_route(&upstream));
    let mut second = upgraded(&creds, &config);
    let addr = second.addr;
    let queued = std::thread::spawn(move || try_request(addr, "GET", "/open/queued", &[], b""));
    std::thread::sleep(Duration::from_millis(300));
    second.signal("TERM");
    let r = queued.join().unwrap().expect("the queued request was cut");
    assert_eq!(r.status, 200, "{}", r.text());
    let status = second.wait_exit(Duration::from_secs(10)).expect("exits");
    assert!(status.success(), "{status:?}");
    let log = second.log();
    assert!(
        log.contains("sigproxy: SIGTERM: accepting for the drain"),
        "{log}"
    );
}

/// A process that handed its sockets over before its first credentials came must not start
/// accepting when its wait for them ends (10 s): it shared the socket with the next process
/// until pingora's stop, 5 s after the hand-over, and answered 503 where that one served.
#[test]
fn a_process_that_handed_over_before_its_credentials_never_accepts() {
    // Longer than the wait for first fetches (10 s).
    let creds = SlowCredentials::new("14");
    let upstream = common::upstream::Upstream::builder().start();
    // Signed: without credentials the second process would answer 503.
    let config = format!(
        "credentials:\n  app: {{}}\nroutes:\n  - name: open\n    upstream: http://{}\n    service: lambda\n    region: us-east-1\n    credentials: app\n",
        upstream.addr
    );
    let second = upgraded(&creds, &config);
    creds.speed_up();
    // Hand over late in the wait, so that it ends while the two share the socket.
    std::thread::sleep(Duration::from_millis(3500));
    let mut third = second.upgrade(&creds.env());
    second.signal("QUIT");
    third.wait_ready();
    second.wait_for("the end of the wait", || {
        second
            .log()
            .contains("first credential fetches still going on")
    });
    // Until pingora stops it (5 s after the hand-over, about 2.5 s from here) the second
    // process would take its share of these.
    for i in 0..20 {
        let r = request(second.addr, "GET", &format!("/open/{i}"), &[], b"");
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = second.log();
    assert!(
        log.contains("sigproxy: handed over before it accepted: not accepting"),
        "{log}"
    );
    assert!(third.wait_exit(Duration::from_millis(100)).is_none());
}
