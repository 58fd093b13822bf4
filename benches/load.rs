//! The load benchmark: sigproxy's throughput, latency, CPU and memory against a local backend.
//!
//!     cargo bench --bench load                       # 5 s per cell; checks the goals
//!     SIGPROXY_LOAD_SECONDS=10 cargo bench --bench load
//!     SIGPROXY_LOAD_ROUNDS=3 cargo bench --bench load  # median of 3 rounds instead of 5
//!
//! Starts a keep-alive backend on 127.0.0.1 and sigproxy (release build) with a signed route
//! (`lambda`, SHA-256 of the body, session-token credentials) and an unsigned route to it, then
//! runs wrk (bounded: one thread, 32 connections, fixed seconds) for a small GET, a 1 KiB POST
//! and a 64 KiB POST, straight to the backend and through each route. It prints req/s, p50/p99
//! latency, sigproxy CPU µs per request, new upstream connections per request, sigproxy's peak
//! RSS, and the ratios signed/unsigned and proxy/direct, all from one run. Goals (exit 1 when
//! missed): signed small GET ≥ 0.85× unsigned; ≤ 35 µs sigproxy CPU per signed small GET;
//! upstream connections reused. Under `cargo test` (no `--bench`) each cell runs 1 s, goals
//! unchecked, as a smoke test. `SIGPROXY_LOAD_PROFILE=DIR` records a `perf` profile of sigproxy
//! per cell into DIR.

use std::process::{Child, Command, Stdio};

const CONNECTIONS: u32 = 32;

#[path = "../tests/common/mod.rs"]
mod common;
mod measure;

use common::Proxy;
use measure::static_credentials;
use measure::{benching, cores, cpu_seconds, fast_backend, knob, need_wrk, start_proxy, wrk, Wrk};

fn main() {
    let benching = benching();
    let seconds = knob("SIGPROXY_LOAD_SECONDS", 5, 1);
    need_wrk("load");
    // sigproxy gets core 0 to itself; this process (the backend) and wrk share the other one,
    // so the CPU measured per request is sigproxy's own, not an artefact of contention.
    let cores = cores();
    let pinned = cores >= 2 && pin_self_to_last_core(cores);
    let dir = tempfile::tempdir().unwrap();
    let upstream = fast_backend();
    let backend = upstream.addr;
    let routes = common::signed_and_open(&upstream.url(), "");
    let proxy = start_proxy(&routes, pinned.then_some(0), &static_credentials());
    // Five interleaved rounds: a slow stretch of this shared VM must span three to move a median.
    let rounds = knob("SIGPROXY_LOAD_ROUNDS", 5, 1);

    let scenarios = [
        ("small GET", 0usize),
        ("1 KiB POST", 1024),
        ("64 KiB POST", 65536),
    ];
    let mut rows = Vec::new();
    for (name, size) in scenarios {
        let script = dir.path().join(format!("body-{size}.lua"));
        std::fs::write(&script, lua(size)).unwrap();
        let url = |route: &str| format!("http://{}/{route}/x", proxy.addr);
        // Warm-ups fill the upstream pool, so the connection counts below are steady state.
        run_wrk(&url("open"), &script, 1);
        run_wrk(&url("signed"), &script, 1);
        // Rounds interleave the targets; each cell reports its median round.
        let mut samples: [Vec<Cell>; 3] = Default::default();
        for _ in 0..rounds {
            samples[0].push(Cell::from(
                run_wrk(&format!("http://{backend}/x"), &script, seconds),
                None,
                0,
            ));
            for (i, route) in ["open", "signed"].into_iter().enumerate() {
                let cpu_before = cpu_seconds(proxy.pid());
                let conns_before = upstream.connections() as u64;
                let profiler = profile(&proxy, &format!("{route}-{size}"));
                let result = run_wrk(&url(route), &script, seconds);
                if let Some(mut p) = profiler {
                    let _ = Command::new("kill")
                        .arg("-INT")
                        .arg(p.id().to_string())
                        .status();
                    let _ = p.wait();
                }
                let cpu = cpu_seconds(proxy.pid()) - cpu_before;
                let conns = upstream.connections() as u64 - conns_before;
                samples[i + 1].push(Cell::from(result, Some(cpu), conns));
            }
        }
        rows.push((name, samples.map(Cell::median)));
    }
    let peak_rss = proxy.memory_mib("VmHWM");

    println!(
        "\nsigproxy load benchmark: wrk -t1 -c{CONNECTIONS} -d{seconds}s per cell, median of {rounds}, 127.0.0.1, {} cores{}",
        cores,
        if pinned { ", sigproxy pinned to core 0, backend and wrk to the other" } else { "" }
    );
    println!("| request | target | req/s | p50 ms | p99 ms | sigproxy CPU µs/req | new upstream conns/req |");
    println!("|---|---|---|---|---|---|---|");
    for (name, cells) in &rows {
        for (target, cell) in ["direct", "unsigned route", "signed route"]
            .iter()
            .zip(cells)
        {
            println!(
                "| {name} | {target} | {:.0} | {:.2} | {:.2} | {} | {} |",
                cell.rps,
                cell.p50_ms,
                cell.p99_ms,
                cell.cpu_us.map_or("-".into(), |c| format!("{c:.1}")),
                if *target == "direct" {
                    "-".into()
                } else {
                    format!("{:.4}", cell.new_conns_per_req)
                },
            );
        }
    }
    println!("\n| request | signed / unsigned | unsigned / direct | signed / direct |");
    println!("|---|---|---|---|");
    for (name, cells) in &rows {
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} |",
            cells[2].rps / cells[1].rps,
            cells[1].rps / cells[0].rps,
            cells[2].rps / cells[0].rps
        );
    }
    println!("\nsigproxy peak RSS: {peak_rss:.1} MiB");

    let get = &rows[0].1;
    let goals = [
        (
            format!(
                "signed small GET at {:.2}x the unsigned route (goal >= 0.85)",
                get[2].rps / get[1].rps
            ),
            get[2].rps / get[1].rps >= 0.85,
        ),
        (
            format!(
                "{:.1} us sigproxy CPU per signed small GET (goal <= 35)",
                get[2].cpu_us.unwrap()
            ),
            get[2].cpu_us.unwrap() <= 35.0,
        ),
        (
            format!(
                "{:.4} new upstream connections per signed request (goal: reused, < 0.001)",
                get[2].new_conns_per_req
            ),
            get[2].new_conns_per_req < 0.001,
        ),
    ];
    let mut missed = false;
    for (what, ok) in &goals {
        println!("{} {what}", if *ok { "PASS" } else { "MISS" });
        missed |= !ok;
    }
    println!();
    if benching && missed {
        // exit() runs no destructors: stop sigproxy here, or it outlives the benchmark.
        drop(proxy);
        std::process::exit(1);
    }
}

/// With `SIGPROXY_LOAD_PROFILE=DIR`, records `perf` profiles of sigproxy into DIR, one per cell.
fn profile(proxy: &Proxy, name: &str) -> Option<Child> {
    let dir = std::env::var("SIGPROXY_LOAD_PROFILE").ok()?;
    Command::new("perf")
        .args(["record", "-e", "cpu-clock", "-F", "2000", "-g", "-o"])
        .arg(format!("{dir}/{name}.data"))
        .args(["-p", &proxy.pid().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

/// Moves this process (and the threads it starts later) to the last core, with taskset.
fn pin_self_to_last_core(cores: usize) -> bool {
    let last = (cores - 1).to_string();
    Command::new("taskset")
        .args(["-cp", &last, &std::process::id().to_string()])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn lua(size: usize) -> String {
    if size == 0 {
        return "wrk.method = \"GET\"\n".into();
    }
    format!(
        r#"wrk.method = "POST"
wrk.body = string.rep("a", {size})
wrk.headers["Content-Type"] = "application/octet-stream"
"#
    )
}

struct Cell {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_us: Option<f64>,
    new_conns_per_req: f64,
}

impl Cell {
    /// The round with the median request rate (its CPU and latency figures come with it).
    fn median(mut cells: Vec<Cell>) -> Cell {
        cells.sort_by(|a, b| a.rps.total_cmp(&b.rps));
        let mid = cells.len() / 2;
        cells.swap_remove(mid)
    }

    fn from(r: Wrk, cpu_seconds: Option<f64>, new_conns: u64) -> Cell {
        let requests = r.requests() as f64;
        assert!(requests > 0.0, "wrk output not understood:\n{}", r.text);
        assert_eq!(r.failed(), 0, "wrk reported errors or non-2xx answers");
        Cell {
            rps: r.rps(),
            p50_ms: r.latency_ms("50%"),
            p99_ms: r.latency_ms("99%"),
            cpu_us: cpu_seconds.map(|c| c * 1e6 / requests),
            new_conns_per_req: new_conns as f64 / requests,
        }
    }
}

/// wrk on one thread with the usual connections, for `seconds`, with a Lua `script`.
fn run_wrk(url: &str, script: &std::path::Path, seconds: u64) -> Wrk {
    let (c, d) = (format!("-c{CONNECTIONS}"), format!("-d{seconds}s"));
    wrk(&["-t1", &c, &d, "-s", script.to_str().unwrap(), url])
}
