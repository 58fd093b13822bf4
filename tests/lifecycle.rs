//! Shutdown: SIGTERM stops new connections, lets in-flight requests finish, exits in time.

mod common;

use common::*;
use std::time::{Duration, Instant};

#[test]
fn sigterm_lets_in_flight_requests_finish_then_exits_within_the_grace() {
    let peers = Peers::start();
    // The harness sets shutdown_grace: 1s; this test wants room for a slow request.
    let config = peers
        .lambda_config("")
        .replace("read_timeout: 2s", "read_timeout: 10s");
    let mut proxy = Proxy::start(
        &config.replace("credentials:\n", "shutdown_grace: 3s\ncredentials:\n"),
        &peers.caller_env(),
    );
    proxy.wait_ready();
    let addr = proxy.addr;
    let slow = std::thread::spawn(move || {
        request(
            addr,
            "POST",
            "/fn/__sleep?ms=1500",
            &[],
            b"in flight during shutdown",
        )
    });
    std::thread::sleep(Duration::from_millis(400));
    let stopped_at = Instant::now();
    proxy.signal("TERM");

    let r = slow.join().unwrap();
    assert_eq!(
        r.status,
        200,
        "in-flight request: {}",
        String::from_utf8_lossy(&r.body)
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        try_request(addr, "GET", "/fn/after", &[], b"").is_none(),
        "a new request was accepted after SIGTERM"
    );
    let status = proxy
        .wait_exit(Duration::from_secs(10))
        .expect("did not exit");
    let took = stopped_at.elapsed();
    assert!(status.success(), "{status:?}");
    // shutdown_grace (3 s) plus pingora's 1 s runtime shutdown, well inside Kubernetes' 30 s.
    assert!(took < Duration::from_secs(6), "exit took {took:?}");
}
