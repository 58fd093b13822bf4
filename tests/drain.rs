//! SIGTERM under steady traffic: a rolling replacement loses no request.
//!
//! How a Kubernetes rolling update looks from a client, and how it is modelled here:
//! - The old pod (process A) gets SIGTERM and, at the same moment, its endpoint starts being
//!   removed from the Service. The removal takes a while to reach every kube-proxy, ingress
//!   controller and client-side balancer ([`PROPAGATION`]); until then **new connections keep
//!   arriving at A**. The test's [`Service`] is that routing table: new connections go where it
//!   points, and it points at A until the removal has propagated *and* the new pod (process B,
//!   started when A gets SIGTERM) is ready, as endpoints of unready pods get no traffic.
//! - Pods have addresses of their own, so A and B listen on different ports; nothing here
//!   needs both on one port (pingora does not set SO_REUSEPORT, and a pod never shares its
//!   port with its successor anyway).
//! - **Established connections stay with A**: kube-proxy's conntrack entries outlive the
//!   endpoint. A keep-alive client moves only when A closes its connection; a well-behaved one
//!   (like this test's) opens its next connection through the Service when a response says
//!   `Connection: close`.
//!
//! Any refused connection or request without a response counts as a failure: no retries.

mod common;

use common::*;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Endpoint removal reaching the whole cluster: kube-proxy typically takes 1 to 3 s.
const PROPAGATION: Duration = Duration::from_secs(1);
const DELAY: Duration = Duration::from_secs(3);
const GRACE: Duration = Duration::from_secs(6);
/// Upstream time of the request in flight when A stops accepting.
const SLOW_MS: u64 = 3000;

/// Where the Service sends new connections.
struct Service(Mutex<SocketAddr>);

impl Service {
    fn target(&self) -> SocketAddr {
        *self.0.lock().unwrap()
    }
}

#[derive(Debug)]
struct Outcome {
    /// Seconds since A got SIGTERM (-1: before).
    at: f64,
    backend: SocketAddr,
    /// `Ok(status)`, or what went wrong.
    result: Result<u16, &'static str>,
}

/// Sequential requests until `stop`: on one kept-alive connection while the proxy allows it
/// (`keep_alive`), else each on a new connection.
fn client(
    service: Arc<Service>,
    stop: Arc<AtomicBool>,
    term: Arc<Mutex<Option<Instant>>>,
    keep_alive: bool,
) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    let mut conn: Option<(Conn, SocketAddr)> = None;
    // Seconds since A got SIGTERM; -1 before.
    let since_term = || {
        let t = *term.lock().unwrap();
        t.map_or(-1.0, |t| t.elapsed().as_secs_f64())
    };
    while !stop.load(Ordering::SeqCst) {
        if conn.is_none() {
            let backend = service.target();
            match Conn::try_open(backend) {
                Ok(c) => conn = Some((c, backend)),
                Err(_) => {
                    outcomes.push(Outcome {
                        at: since_term(),
                        backend,
                        result: Err("refused"),
                    });
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            }
        }
        let (c, backend) = conn.as_mut().unwrap();
        let backend = *backend;
        let result = match c.try_send("POST", "/fn/steady", b"x") {
            Some(r) => {
                let close = r
                    .header("connection")
                    .is_some_and(|v| v.eq_ignore_ascii_case("close"));
                if close || !keep_alive {
                    conn = None;
                }
                Ok(r.status)
            }
            None => {
                conn = None;
                Err("no response")
            }
        };
        outcomes.push(Outcome {
            at: since_term(),
            backend,
            result,
        });
        std::thread::sleep(Duration::from_millis(20));
    }
    outcomes
}

#[test]
fn a_rolling_replacement_under_steady_traffic_loses_nothing() {
    let peers = Peers::start();
    let config = peers
        .lambda_config("")
        .replace("read_timeout: 2s", "read_timeout: 10s")
        .replace(
            "credentials:\n",
            &format!(
                r#"shutdown_delay: {}s
shutdown_grace: {}s
credentials:
"#,
                DELAY.as_secs(),
                GRACE.as_secs()
            ),
        );
    let mut a = Proxy::start_ready(&config, &peers.caller_env());
    let service = Arc::new(Service(Mutex::new(a.addr)));
    let stop = Arc::new(AtomicBool::new(false));
    let term: Arc<Mutex<Option<Instant>>> = Arc::default();
    let clients: Vec<_> = [true, false]
        .into_iter()
        .map(|keep_alive| {
            let (service, stop, term) = (service.clone(), stop.clone(), term.clone());
            std::thread::spawn(move || client(service, stop, term, keep_alive))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));

    // SIGTERM to A; the Service still routes to it for a while.
    let t0 = Instant::now();
    *term.lock().unwrap() = Some(t0);
    a.signal("TERM");
    // A request arriving while the endpoint removal propagates, still upstream when A stops
    // accepting.
    let a_addr = a.addr;
    let slow = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let r = Conn::try_open(a_addr)
            .ok()
            .and_then(|mut c| c.try_send("POST", &format!("/fn/__sleep?ms={SLOW_MS}"), b"slow"));
        (r.map(|r| r.status), t0.elapsed())
    });

    // The replacement starts now; the Service moves to it once it is ready and the removal
    // has propagated.
    let b = Proxy::start_ready(&config, &peers.caller_env());
    let b_ready = t0.elapsed();
    std::thread::sleep(PROPAGATION.saturating_sub(t0.elapsed()));
    *service.0.lock().unwrap() = b.addr;
    let switched = t0.elapsed();

    // After the delay A no longer accepts, though a request is still in flight.
    std::thread::sleep((DELAY + Duration::from_millis(400)).saturating_sub(t0.elapsed()));
    let refused_after_delay = std::net::TcpStream::connect(a.addr).is_err();

    let exit = a.wait_exit(DELAY + GRACE + Duration::from_secs(5));
    let exited = t0.elapsed();
    let (slow_status, slow_done) = slow.join().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    let outcomes: Vec<Outcome> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    eprintln!(
        "B ready {b_ready:?}, Service switched {switched:?}, slow request done {slow_done:?}, \
         A exited {exited:?} after SIGTERM; {} requests",
        outcomes.len()
    );

    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.result != Ok(200)).collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {failed:?}\nA's log:\n{}",
        failed.len(),
        outcomes.len(),
        a.log()
    );
    let served_by_a_after_term = outcomes
        .iter()
        .filter(|o| o.backend == a.addr && o.at > 0.0)
        .count();
    assert!(
        served_by_a_after_term > 5,
        "A served {served_by_a_after_term} requests while its endpoint was being removed"
    );
    assert!(
        outcomes.iter().filter(|o| o.backend == b.addr).count() > 5,
        "B served the rest"
    );
    assert_eq!(slow_status, Some(200), "the request in flight at the stop");
    assert!(
        refused_after_delay,
        "A still accepted connections after shutdown_delay"
    );
    let status = exit.expect("A did not exit");
    assert!(status.success(), "{status:?}");
    // A exits once its last request is done, not when delay + grace (9 s) is over.
    assert!(
        exited < slow_done + Duration::from_millis(1000),
        "A exited {exited:?} after SIGTERM, its last request ended at {slow_done:?}"
    );
}

/// A load balancer that health-checks `/readyz` (an NLB target group, anything not driven by
/// Kubernetes endpoints) learns of the drain at SIGTERM, while the traffic port still serves
/// for `shutdown_delay` and `/healthz` stays 200.
#[test]
fn readyz_says_draining_from_sigterm_and_healthz_stays_ok() {
    let peers = Peers::start();
    let config = peers.lambda_config("").replace(
        "credentials:\n",
        "shutdown_delay: 3s\nshutdown_grace: 2s\ncredentials:\n",
    );
    let mut proxy = Proxy::start_ready(&config, &peers.caller_env());
    assert_eq!(proxy.admin_get("/readyz").status, 200);

    let t0 = Instant::now();
    proxy.signal("TERM");
    // The signal is handled asynchronously: poll, briefly.
    let mut readyz = proxy.admin_get("/readyz");
    while readyz.status == 200 && t0.elapsed() < Duration::from_millis(1000) {
        std::thread::sleep(Duration::from_millis(20));
        readyz = proxy.admin_get("/readyz");
    }
    let seen_after = t0.elapsed();
    assert_eq!(readyz.status, 503, "/readyz during the drain: {readyz:?}");
    let body = readyz.json();
    assert_eq!(body["ready"], false, "{body}");
    assert_eq!(body["draining"], true, "{body}");
    assert_eq!(readyz.header("content-type"), Some("application/json"));
    assert_eq!(
        proxy.admin_get("/healthz").status,
        200,
        "/healthz while draining"
    );
    // Still within shutdown_delay: the traffic port serves.
    let served = proxy.send("POST", "/fn/during-delay", &[], b"x");
    assert_eq!(served.status, 200, "a request during shutdown_delay");
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "checked within the delay ({:?})",
        t0.elapsed()
    );
    // Late in the delay: still so (the process exits just after it, nothing being in flight).
    std::thread::sleep(Duration::from_millis(2500).saturating_sub(t0.elapsed()));
    assert_eq!(
        proxy.admin_get("/healthz").status,
        200,
        "/healthz late in the delay"
    );
    assert_eq!(
        proxy.admin_get("/readyz").status,
        503,
        "/readyz late in the delay"
    );
    let status = proxy.wait_exit(Duration::from_secs(10)).expect("exit");
    assert!(status.success(), "{status:?}");
    eprintln!("/readyz said draining {seen_after:?} after SIGTERM");
}

/// SIGQUIT (the `-u` hand-over): once pingora has passed the sockets on and stopped accepting
/// (5 s after the signal), the old process exits as soon as its last request is done, not when
/// `shutdown_grace` is over.
#[test]
fn after_a_hand_over_the_old_process_exits_once_its_requests_are_done() {
    const QUIT_GRACE: Duration = Duration::from_secs(10);
    /// Past pingora's 5 s of both processes accepting.
    const SLOW_MS: u64 = 6500;
    let peers = Peers::start();
    let config = format!(
        "shutdown_grace: {}s\n{}",
        QUIT_GRACE.as_secs(),
        peers
            .lambda_config("")
            .replace("read_timeout: 2s", "read_timeout: 10s")
    );
    let mut old = Proxy::builder(&config)
        .env(&peers.caller_env())
        .upgradable()
        .start();
    old.wait_ready();
    let new = old.upgrade(&peers.caller_env());
    // A request in flight at the hand-over, on a connection the old process accepted.
    let mut conn = Conn::open(old.addr);
    let slow = std::thread::spawn(move || {
        let r = conn.try_send("POST", &format!("/fn/__sleep?ms={SLOW_MS}"), b"slow");
        (r.map(|r| r.status), Instant::now())
    });
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    old.signal("QUIT");
    let exit = old.wait_exit(QUIT_GRACE + Duration::from_secs(10));
    let exited = t0.elapsed();
    let (slow_status, slow_done) = slow.join().unwrap();
    let slow_done = slow_done.duration_since(t0);
    eprintln!("slow request done {slow_done:?}, old process exited {exited:?} after SIGQUIT");

    assert_eq!(
        slow_status,
        Some(200),
        "the request in flight at the hand-over"
    );
    let status = exit.expect("the old process did not exit");
    assert!(status.success(), "{status:?}");
    // Before: pingora's 5 s, then the whole grace (10 s), then its runtime shutdown.
    assert!(
        exited < slow_done + Duration::from_millis(1000),
        "the old process exited {exited:?} after SIGQUIT, its last request ended at {slow_done:?}"
    );
    new.wait_ready();
    let r = request(new.addr, "POST", "/fn/after", &[], b"x");
    assert_eq!(r.status, 200, "the new process serves");
}
