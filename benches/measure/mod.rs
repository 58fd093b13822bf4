//! What the benchmarks add to the test harness (tests/common): knobs, sigproxy started the way
//! benchmarks measure it, and the CPU time of processes and threads.
#![allow(dead_code)]

use crate::common::upstream::{Reply, Upstream};
use crate::common::Proxy;
use std::process::Command;

/// `cargo bench` passes `--bench`; `cargo test` runs the same binary without it (smoke mode).
pub fn benching() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// A numeric knob from the environment, else the default for this mode.
pub fn knob(name: &str, bench: u64, smoke: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching() { bench } else { smoke })
}

/// Static credentials from the environment, a session token included (as STS ones have).
pub fn static_credentials() -> Vec<(String, String)> {
    let mut env = crate::common::static_keys("ASIABENCHEXAMPLE0001", "bench-secret-key-0001");
    env.push((
        "AWS_SESSION_TOKEN".into(),
        "IQoJb3JpZ2luX2VjEXAMPLE".repeat(30),
    ));
    env
}

/// sigproxy with one worker thread, `core` pinning it with taskset, the log level from
/// `SIGPROXY_BENCH_LOG` (default `info`, access log on) into /dev/null; waits until ready.
pub fn start_proxy(body: &str, core: Option<usize>, env: &[(String, String)]) -> Proxy {
    let level = std::env::var("SIGPROXY_BENCH_LOG").unwrap_or_else(|_| "info".into());
    let proxy = Proxy::builder(&format!("threads: 1\n{body}"))
        .env(env)
        .env(&[("RUST_LOG".into(), level)])
        .pin_to_core(core)
        .discard_log()
        .start();
    proxy.wait_ready();
    proxy
}

/// A keep-alive backend answering `200 ok` (it counts the connections it accepts).
pub fn fast_backend() -> Upstream {
    Upstream::builder()
        .answer(|_| Reply::ok("ok").header("Content-Type", "text/plain"))
        .start()
}

/// User plus system CPU time of a process so far (all its threads, ended ones included).
pub fn cpu_seconds(pid: u32) -> f64 {
    stat_cpu_seconds(&format!("/proc/{pid}/stat"))
}

/// User plus system CPU time of this process so far (all its threads, ended ones included).
pub fn own_cpu_seconds() -> f64 {
    stat_cpu_seconds("/proc/self/stat")
}

/// User plus system CPU time of the calling thread so far.
pub fn thread_cpu_seconds() -> f64 {
    stat_cpu_seconds("/proc/thread-self/stat")
}

/// utime + stime from a `stat` file of /proc, in seconds (the kernel counts in clock ticks).
fn stat_cpu_seconds(path: &str) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap();
    // After the command name (which ends with ')'), utime and stime are fields 12 and 13.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / clock_ticks()
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Exits (status 1) saying how to install wrk when it is missing.
pub fn need_wrk(bench: &str) {
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("the {bench} benchmark needs wrk: apt-get install wrk (scripts/bootstrap does)");
        std::process::exit(1);
    }
}

/// Runs `wrk --latency` with `args` (the URL among them); what it reported.
pub fn wrk(args: &[&str]) -> Wrk {
    let out = Command::new("wrk")
        .arg("--latency")
        .args(args)
        .output()
        .expect("run wrk");
    Wrk {
        text: String::from_utf8_lossy(&out.stdout).into_owned(),
    }
}

/// wrk's report, read on demand.
pub struct Wrk {
    pub text: String,
}

impl Wrk {
    /// The first word after `marker` at the start of a line.
    fn after(&self, marker: &str) -> Option<&str> {
        self.text
            .lines()
            .find_map(|l| l.trim().strip_prefix(marker))
            .and_then(|rest| rest.split_whitespace().next())
    }

    /// Requests completed; 0 when the report does not say.
    pub fn requests(&self) -> u64 {
        self.text
            .lines()
            .find(|l| l.contains("requests in"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    pub fn rps(&self) -> f64 {
        self.after("Requests/sec:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    /// A latency percentile (`"50%"`, `"99%"`) in ms, from `850.00us`, `1.20ms`, `2.01s`.
    pub fn latency_ms(&self, percentile: &str) -> f64 {
        let v = self.after(percentile).unwrap_or("0");
        let split = v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len());
        let n: f64 = v[..split].parse().unwrap_or(0.0);
        match &v[split..] {
            "us" => n / 1000.0,
            "s" => n * 1000.0,
            "m" => n * 60_000.0,
            _ => n,
        }
    }

    /// Non-2xx (or 3xx) answers plus socket errors (connect, read, write, timeout).
    pub fn failed(&self) -> u64 {
        let non_2xx: u64 = self
            .after("Non-2xx or 3xx responses:")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let socket_errors: u64 = self
            .text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Socket errors:"))
            .map_or(0, |rest| {
                rest.split(',')
                    .filter_map(|part| part.split_whitespace().last())
                    .filter_map(|n| n.parse::<u64>().ok())
                    .sum()
            });
        non_2xx + socket_errors
    }
}
