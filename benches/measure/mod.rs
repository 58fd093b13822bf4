//! What the benchmarks add to the test harness (tests/common): knobs, sigproxy started the way
//! benchmarks measure it, and its CPU time.
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
    vec![
        ("AWS_ACCESS_KEY_ID".into(), "ASIABENCHEXAMPLE0001".into()),
        (
            "AWS_SECRET_ACCESS_KEY".into(),
            "bench-secret-key-0001".into(),
        ),
        (
            "AWS_SESSION_TOKEN".into(),
            "IQoJb3JpZ2luX2VjEXAMPLE".repeat(30),
        ),
    ]
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

/// User plus system CPU time of a process so far.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // After the command name (which ends with ')'), utime and stime are fields 12 and 13.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / clock_ticks()
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}
