//! Load and soak: many connections at once, and long steady traffic across credential refreshes.
//!
//!     cargo bench --bench soak        # 1,000 connections for 20 s, then a 120 s soak
//!
//! Starts moto's STS (auth enforced) handing out credentials that live 20 s, the Lambda URL
//! stand-in (which verifies every signature with botocore and refuses expired credentials), a
//! fast local backend, and sigproxy (release build) assuming a role through that STS, then:
//!
//! 1. **connections**: wrk holds 1,000 concurrent keep-alive connections on a signed route to
//!    the fast backend;
//! 2. **soak**: wrk sends steady traffic on a signed route to the verifying stand-in while the
//!    credentials are replaced every ~10 s.
//!
//! Both must end with zero failed requests (no non-2xx answer, no socket error); the command
//! exits 1 otherwise. Everything is on 127.0.0.1 and bounded in time. Under `cargo test` each
//! phase runs a few seconds, with 100 connections and 6-second credentials, as a smoke test.

#[path = "../tests/common/mod.rs"]
mod common;
mod measure;

use common::Peers;
use measure::{benching, cores, fast_backend, knob, need_wrk, start_proxy, wrk};
use std::time::{Duration, Instant};

fn main() {
    let benching = benching();
    let connections = knob("SIGPROXY_SOAK_CONNECTIONS", 1000, 100);
    let burst_seconds = knob("SIGPROXY_SOAK_BURST_SECONDS", 20, 2);
    let soak_seconds = knob("SIGPROXY_SOAK_SECONDS", 120, 8);
    let lifetime = knob("SIGPROXY_SOAK_CREDENTIAL_SECONDS", 20, 6);
    need_wrk("soak");

    let peers = Peers::start_with(&["--short-credentials", &lifetime.to_string()]);
    let backend = fast_backend();
    let config = format!(
        r#"credentials:
{app}routes:
  - name: fast
    match: {{ path_prefix: /fast/ }}
    strip_prefix: true
    upstream: {fast}
    service: lambda
    region: us-east-1
    credentials: app
  - name: verified
    match: {{ path_prefix: /verified/ }}
    strip_prefix: true
    upstream: {verified}
    service: lambda
    region: us-east-1
    credentials: app
"#,
        app = peers.credentials_yaml("app", peers.get("external_id")),
        fast = backend.url(),
        verified = peers.get("lambda_url"),
    );
    let proxy = start_proxy(&config, None, &peers.caller_env());

    // 1. Many connections at once.
    let url = format!("http://{}/fast/x", proxy.addr);
    let sampler = FdSampler::start(proxy.pid(), burst_seconds);
    let (c, d) = (format!("-c{connections}"), format!("-d{burst_seconds}s"));
    let burst = wrk(&["--timeout", "10s", "-t2", &c, &d, &url]);
    let peak_fds = sampler.peak();
    let burst_rss = proxy.memory_mib("VmHWM");

    // 2. Steady traffic across credential refreshes, every request verified.
    let stats_before = peers.stats();
    let url = format!("http://{}/verified/x", proxy.addr);
    let soak = wrk(&[
        "--timeout",
        "10s",
        "-t1",
        "-c8",
        &format!("-d{soak_seconds}s"),
        &url,
    ]);
    let stats = peers.stats();
    let keys = stats["keys_seen"].as_array().map_or(0, Vec::len)
        - stats_before["keys_seen"].as_array().map_or(0, Vec::len);
    let rejected = stats["rejected"].as_u64().unwrap_or(0);

    println!("\nsigproxy load and soak, 127.0.0.1, {} cores", cores());
    println!("| phase | connections | seconds | requests | req/s | p99 ms | failed |");
    println!("|---|---|---|---|---|---|---|");
    for (name, conns, secs, r) in [
        ("signed, fast backend", connections, burst_seconds, &burst),
        ("signed, verifying stand-in", 8, soak_seconds, &soak),
    ] {
        println!(
            "| {name} | {conns} | {secs} | {} | {:.0} | {:.1} | {} |",
            r.requests(),
            r.requests() as f64 / secs as f64,
            r.latency_ms("99%"),
            r.failed()
        );
    }
    println!(
        "\nconnections: sigproxy held up to {peak_fds} open descriptors (client and upstream sockets); peak RSS {burst_rss:.1} MiB"
    );
    println!(
        "soak: credentials lived {lifetime} s; {keys} different access keys signed requests during the soak; the stand-in refused {rejected} requests"
    );

    let mut problems = Vec::new();
    if burst.failed() > 0 || burst.requests() == 0 {
        problems.push(format!("connections phase: {}", burst.text));
    }
    if soak.failed() > 0 || soak.requests() == 0 || rejected > 0 {
        problems.push(format!(
            "soak phase: {} (stand-in refused {rejected})",
            soak.text
        ));
    }
    if peak_fds < connections as usize {
        problems.push(format!(
            "only {peak_fds} descriptors open at the peak: the {connections} connections were not held at once"
        ));
    }
    let expected_keys = (soak_seconds / lifetime).max(1) as usize;
    if keys < expected_keys {
        problems.push(format!(
            "only {keys} access keys in {soak_seconds} s of {lifetime}-second credentials"
        ));
    }
    if problems.is_empty() {
        println!("\nzero failed requests in both phases: PASS");
    } else {
        for p in &problems {
            eprintln!("FAIL: {p}");
        }
        // exit() runs no destructors: stop sigproxy and the peers here.
        drop(proxy);
        drop(peers);
        std::process::exit(1);
    }
    let _ = benching;
}

/// Samples a process's open file descriptors in the background; remembers the peak.
struct FdSampler {
    handle: std::thread::JoinHandle<usize>,
}

impl FdSampler {
    fn start(pid: u32, seconds: u64) -> FdSampler {
        let handle = std::thread::spawn(move || {
            let until = Instant::now() + Duration::from_secs(seconds);
            let mut peak = 0;
            while Instant::now() < until {
                let open = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
                peak = peak.max(open);
                std::thread::sleep(Duration::from_millis(100));
            }
            peak
        });
        FdSampler { handle }
    }

    fn peak(self) -> usize {
        self.handle.join().unwrap()
    }
}
