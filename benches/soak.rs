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
use measure::{benching, fast_backend, knob, start_proxy};
use std::process::Command;
use std::time::{Duration, Instant};

fn main() {
    let benching = benching();
    let connections = knob("SIGPROXY_SOAK_CONNECTIONS", 1000, 100);
    let burst_seconds = knob("SIGPROXY_SOAK_BURST_SECONDS", 20, 2);
    let soak_seconds = knob("SIGPROXY_SOAK_SECONDS", 120, 8);
    let lifetime = knob("SIGPROXY_SOAK_CREDENTIAL_SECONDS", 20, 6);
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("the soak benchmark needs wrk: apt-get install wrk (scripts/bootstrap does)");
        std::process::exit(1);
    }

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
    let burst = wrk(&url, 2, connections, burst_seconds);
    let peak_fds = sampler.peak();
    let burst_rss = proxy.memory_mib("VmHWM");

    // 2. Steady traffic across credential refreshes, every request verified.
    let stats_before = peers.stats();
    let url = format!("http://{}/verified/x", proxy.addr);
    let soak = wrk(&url, 1, 8, soak_seconds);
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
            r.requests,
            r.requests as f64 / secs as f64,
            r.p99_ms,
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
    if burst.failed() > 0 || burst.requests == 0 {
        problems.push(format!("connections phase: {}", burst.summary));
    }
    if soak.failed() > 0 || soak.requests == 0 || rejected > 0 {
        problems.push(format!(
            "soak phase: {} (stand-in refused {rejected})",
            soak.summary
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
        std::process::exit(1);
    }
    let _ = benching;
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// What wrk measured.
struct WrkResult {
    requests: u64,
    non_2xx: u64,
    socket_errors: u64,
    p99_ms: f64,
    summary: String,
}

impl WrkResult {
    fn failed(&self) -> u64 {
        self.non_2xx + self.socket_errors
    }
}

fn wrk(url: &str, threads: u64, connections: u64, seconds: u64) -> WrkResult {
    let out = Command::new("wrk")
        .args([
            "--latency",
            "--timeout",
            "10s",
            &format!("-t{threads}"),
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            url,
        ])
        .output()
        .expect("run wrk");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let number_after = |marker: &str| -> u64 {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(marker))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.trim_end_matches(',').parse().ok())
            .unwrap_or(0)
    };
    let requests = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let socket_errors = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Socket errors:"))
        .map_or(0, |rest| {
            rest.split(',')
                .filter_map(|part| part.split_whitespace().last())
                .filter_map(|n| n.parse::<u64>().ok())
                .sum()
        });
    let p99_ms = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map_or(0.0, |v| parse_latency(v.trim()));
    WrkResult {
        requests,
        non_2xx: number_after("Non-2xx or 3xx responses:"),
        socket_errors,
        p99_ms,
        summary: text,
    }
}

/// wrk's latency figures: `850.00us`, `1.20ms`, `2.01s`.
fn parse_latency(v: &str) -> f64 {
    let split = v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len());
    let n: f64 = v[..split].parse().unwrap_or(0.0);
    match &v[split..] {
        "us" => n / 1000.0,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => n,
    }
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
