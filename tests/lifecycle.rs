//! Shutdown: SIGTERM stops new connections, lets in-flight requests finish, exits once they
//! have; the `-u` hand-over. (The delay before SIGTERM stops accepting: tests/drain.rs.)

mod common;

use common::*;
use std::time::{Duration, Instant};

#[test]
fn sigterm_lets_in_flight_requests_finish_then_exits_once_they_have() {
    let peers = Peers::start();
    // The harness sets shutdown_grace: 1s; this test wants room for a slow request. No
    // shutdown_delay: the listener is to close at SIGTERM.
    let config = peers
        .lambda_config("")
        .replace("read_timeout: 2s", "read_timeout: 10s");
    let mut proxy = Proxy::start_ready(
        &config.replace(
            "credentials:\n",
            r#"shutdown_delay: 0s
shutdown_grace: 3s
credentials:
"#,
        ),
        &peers.caller_env(),
    );
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
    assert_eq!(r.status, 200, "in-flight request: {}", r.text());
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
    // Once the slow request (done 1.1 s after SIGTERM) has finished, not when shutdown_grace
    // (3 s) is over. (Before the drain: grace plus pingora's runtime shutdown, about 4 s.)
    assert!(took < Duration::from_millis(2500), "exit took {took:?}");
}

/// `threads` worker threads, no `shutdown_delay`, one route to nothing.
fn many_threads(threads: usize) -> String {
    format!(
        "threads: {threads}\nshutdown_delay: 0s\nroutes:\n  - name: open\n    upstream: http://127.0.0.1:9\n"
    )
}

/// With several threads, pingora's own shutdown of its runtimes could hang for ever: an admin
/// port accept loop on one thread whose socket belonged to another thread's (shut down)
/// reactor failed every accept at once and never yielded, writing millions of log lines a
/// second (about 1 SIGTERM in 10 at `threads: 2`, 2 in 10 at 8). sigproxy now exits itself once
/// the drain is over, so pingora's runtime shutdown never runs: its log line must not appear.
#[test]
fn sigterm_with_many_threads_exits_without_pingoras_runtime_shutdown() {
    let config = many_threads(8);
    for round in 0..6 {
        let mut proxy = Proxy::start(&config, &[]);
        assert_eq!(proxy.admin_get("/healthz").status, 200);
        proxy.signal("TERM");
        let status = proxy.wait_exit(Duration::from_secs(5));
        let log = proxy.log();
        let status = status.unwrap_or_else(|| {
            proxy.signal("KILL");
            let accept_errors = log.matches("Accept() failed").count();
            panic!("round {round}: still running 5 s after SIGTERM ({accept_errors} accept errors)")
        });
        assert!(status.success(), "round {round}: {status:?}");
        assert!(log.contains("nothing in flight: exiting"), "{log}");
        assert!(!log.contains("Accept() failed"), "round {round}");
        assert!(
            !log.contains("Waiting for runtimes to exit"),
            "round {round}: went through pingora's runtime shutdown"
        );
    }
}

/// pingora starts every service, the admin port's first, before it listens for signals: a
/// SIGTERM sent once `/healthz` answered could come before that, and ended the process at once
/// (exit by signal 15, with nothing drained). Many threads make that window wide.
#[test]
fn sigterm_as_soon_as_the_admin_port_answers_drains_and_exits_cleanly() {
    let config = many_threads(64);
    for round in 0..4 {
        let mut proxy = Proxy::start(&config, &[]);
        proxy.signal("TERM");
        let status = proxy.wait_exit(Duration::from_secs(10));
        let status = status.unwrap_or_else(|| panic!("round {round}: still running"));
        assert!(status.success(), "round {round}: {status:?}");
        assert!(
            proxy.log().contains("nothing in flight: exiting"),
            "round {round}"
        );
    }
}

/// After SIGQUIT pingora waits for no further signal: SIGINT (Ctrl-C) was ignored until the
/// hand-over's own timeouts were over.
#[test]
fn sigint_during_a_hand_over_exits_at_once() {
    let config = "routes:\n  - name: open\n    upstream: http://127.0.0.1:9\n";
    let mut proxy = Proxy::builder(config).upgradable().start();
    let new = proxy.upgrade(&[]);
    proxy.signal("QUIT");
    // pingora has handed the sockets over; both accept for 5 s.
    std::thread::sleep(Duration::from_millis(500));
    let interrupted = Instant::now();
    proxy.signal("INT");
    let status = proxy
        .wait_exit(Duration::from_secs(10))
        .expect("did not exit");
    let took = interrupted.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        took < Duration::from_secs(2),
        "exit took {took:?} after SIGINT"
    );
    assert!(proxy.log().contains("SIGINT during the hand-over"));
    assert_eq!(new.admin_get("/healthz").status, 200);
}

/// A SIGQUIT with no new process waiting for the sockets (sent too early, to the wrong
/// process, or the new one still at its MFA prompt): pingora tried for 5 s to send them, then
/// stopped listening all the same, and nothing was left listening. Now the process goes on
/// serving; a second SIGQUIT sent during that wait is answered by it, not by a second wait
/// that would hand over to a process started later with no SIGQUIT of its own.
#[test]
fn sigquit_with_no_new_process_waiting_keeps_serving() {
    let upstream = common::upstream::Upstream::builder().start();
    let config = format!(
        "routes:\n  - name: open\n    upstream: http://{}\n",
        upstream.addr
    );
    let mut proxy = Proxy::builder(&config).upgradable().start();
    proxy.signal("QUIT");
    std::thread::sleep(Duration::from_secs(1));
    proxy.signal("QUIT");
    proxy.wait_for("the refusal", || {
        proxy.log().contains("no new process waits for the sockets")
    });
    let mut late = proxy.upgrade(&[]);
    // pingora would have stopped listening 5 s after its last try; the late process gives up
    // on the sockets after about 6 s.
    assert!(late.wait_exit(Duration::from_secs(15)).is_some());
    assert!(proxy.wait_exit(Duration::from_millis(100)).is_none());
    let r = request(proxy.addr, "GET", "/open/still", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());

    // A SIGQUIT once a new process waits hands over as usual.
    let new = proxy.upgrade(&[]);
    proxy.signal("QUIT");
    assert!(proxy.wait_exit(Duration::from_secs(15)).is_some());
    let r = request(new.addr, "GET", "/open/after", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn a_new_binary_takes_over_the_sockets_without_dropping_a_request() {
    let peers = Peers::start();
    let mut old = Proxy::builder(&peers.lambda_config(""))
        .env(&peers.caller_env())
        .upgradable()
        .start();
    old.wait_ready();

    // Steady traffic through the whole hand-over, on fresh connections.
    let addr = old.addr;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopping = stop.clone();
    let traffic = std::thread::spawn(move || {
        let mut outcomes = Vec::new();
        while !stopping.load(std::sync::atomic::Ordering::SeqCst) {
            let r = try_request(addr, "POST", "/fn/during-upgrade", &[], b"x");
            outcomes.push(r.map(|r| r.status));
            std::thread::sleep(Duration::from_millis(20));
        }
        outcomes
    });

    std::thread::sleep(Duration::from_millis(300));
    let new = old.upgrade(&peers.caller_env());
    old.signal("QUIT");
    assert!(
        old.wait_exit(Duration::from_secs(10)).is_some(),
        "the old process did not exit"
    );
    new.wait_ready();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let outcomes = traffic.join().unwrap();

    assert!(outcomes.len() > 20, "{}", outcomes.len());
    let failed: Vec<_> = outcomes.iter().filter(|o| **o != Some(200)).collect();
    assert!(
        failed.is_empty(),
        "requests failed during the upgrade: {failed:?} of {}",
        outcomes.len()
    );
    let r = request(new.addr, "GET", "/fn/after-upgrade", &[], b"");
    assert_eq!(r.status, 200, "the new process serves");
    assert!(new.log().contains("sigproxy starting"));
}

/// A `-u` hand-over to a configuration whose `listen` moved to a port someone else holds: the
/// new process cannot take that address over from the old one, so it binds it itself, and must
/// exit saying it cannot listen, not run on with /healthz saying 200 and no traffic listener.
#[test]
fn an_upgrade_that_cannot_listen_on_a_new_address_exits_saying_so() {
    let old = Proxy::builder("routes:\n  - upstream: http://127.0.0.1:1\n")
        .upgradable()
        .start();
    let stranger = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = stranger.local_addr().unwrap();
    let config = std::fs::read_to_string(old.config_path()).unwrap();
    let moved = config.replace(
        &format!("\nlisten: {}\n", old.addr),
        &format!("\nlisten: {taken}\n"),
    );
    let moved = match moved.strip_prefix(&format!("listen: {}\n", old.addr)) {
        Some(rest) => format!("listen: {taken}\n{rest}"),
        None => moved,
    };
    assert_ne!(moved, config, "the test moves listen");
    std::fs::write(old.config_path(), moved).unwrap();

    let mut new = old.upgrade(&[]);
    old.signal("QUIT");
    let status = new.wait_exit(Duration::from_secs(15));
    let log = new.log();
    assert_eq!(status.and_then(|s| s.code()), Some(1), "log:\n{log}");
    assert!(
        log.contains(&format!("cannot listen on {taken} (listen)")),
        "log:\n{log}"
    );
    drop(stranger);
}
