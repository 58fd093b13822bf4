//! The load benchmark: sigproxy's throughput, latency, CPU and memory against a local backend,
//! next to baseline proxies that show what of its CPU is pingora's, the kernel's and signing's.
//!
//!     cargo bench --bench load                       # 5 s per cell; checks the goals
//!     SIGPROXY_LOAD_SECONDS=10 cargo bench --bench load
//!     SIGPROXY_LOAD_ROUNDS=3 cargo bench --bench load  # median of 3 rounds instead of 5
//!
//! Starts a keep-alive backend on 127.0.0.1 and sigproxy (release build) with a signed route
//! (`lambda`, SHA-256 of the body, session-token credentials) and an unsigned route to it, and
//! four baselines in front of the same backend (see `floor`): "bare pingora 0.9" (a pingora
//! `ProxyHttp` that only picks the upstream, on sigproxy's server settings: what any pingora 0.9
//! proxy pays, the floor for the unsigned route), "pingora 0.9 + own forwarder" (the same server
//! forwarding from `request_filter` on pingora's `Connector`, as sigproxy does with signed
//! requests: the floor for the signed route), "minimal relay" (a hand-written tokio
//! keep-alive forwarder: the kernel's loopback work plus a minimal user space) and "minimal
//! relay + SigV4" (the same relay signing each request with sigproxy's `Signer`, body hash
//! included: the floor for any proxy that signs). It runs wrk (bounded: one thread, 32 connections,
//! fixed seconds) for a small GET, a 1 KiB POST and a 64 KiB POST, straight to the backend,
//! through each route and through each baseline, in interleaved rounds; every proxy is pinned
//! to the same core and its CPU read from /proc the same way. It prints req/s, p50/p99 latency,
//! the proxy's CPU µs per request, new upstream connections per request, sigproxy's peak RSS,
//! the ratios signed/unsigned and proxy/direct, and issue 16's CPU goals next to what the
//! baselines cost, all from one run. Goals (exit 1 when missed; the baselines have none):
//! signing adds ≤ 8 µs of CPU to a small GET (a ratio signed/unsigned would fall as the
//! common path gets cheaper); sigproxy CPU per signed small GET ≤ 1.6× the
//! "pingora 0.9 + own forwarder" baseline's; upstream connections reused. Under `cargo test`
//! (no `--bench`) each cell runs 1 s, goals unchecked, as a smoke test.
//! `SIGPROXY_LOAD_PROFILE=DIR` records a `perf` profile of the proxy under test per cell into
//! DIR.

use std::process::{Child, Command, Stdio};

const CONNECTIONS: u32 = 32;
/// The most CPU signing may add to a small GET (µs): SHA-256 and HMAC of a ~1 KB canonical
/// request, the signed headers and the kernel's copy of them measure 3–6 µs on 2 cores.
const SIGNING_US: f64 = 8.0;

/// The goal for sigproxy's CPU per signed small GET, as a multiple of the "pingora 0.9 + own
/// forwarder" baseline's in the same rounds. A signed request takes the same path as that
/// baseline (read in `request_filter`, sent on pingora's `Connector`, answered by hand), so the
/// multiple is what sigproxy adds on top (routes, checks, signing, head and body deadlines,
/// metrics, the access line). Set from a quiet run on 2026-11-26 that measured 1.52x (36.1 µs
/// against 23.7 µs), so it fails on a regression of about 5 % of that path or more. Relative, so
/// it holds on a faster or slower day of the VM, unlike the earlier absolute goal (35 µs, met at
/// 31.7 µs on a fast day, missed at 35.6 µs on a slow one).
const CPU_OVER_FORWARDER: f64 = 1.6;

/// sigproxy's allocator (src/main.rs), here for the baselines this binary becomes (`floor`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../tests/common/mod.rs"]
mod common;
mod floor;
mod measure;

use floor::{Baseline, Kind};
use measure::static_credentials;
use measure::{benching, cores, cpu_seconds, fast_backend, knob, need_wrk, start_proxy, wrk, Wrk};

/// The columns of a round, in the order they run: what wrk is pointed at.
struct Target {
    label: &'static str,
    /// Names the cell's `perf` profile.
    slug: &'static str,
    url: String,
    /// The proxy process whose CPU is measured; `None` for the backend itself.
    pid: Option<u32>,
}

const DIRECT: usize = 0;
const UNSIGNED: usize = 1;
const SIGNED: usize = 2;
const BARE_PINGORA: usize = 3;
const FORWARDER: usize = 4;
const RELAY: usize = 5;
const SIGNING_RELAY: usize = 6;

/// Rows of the tables: the scenarios, in the order they run.
const SCENARIOS: [(&str, usize); 3] = [
    ("small GET", 0),
    ("1 KiB POST", 1024),
    ("64 KiB POST", 65536),
];
const SMALL_GET: usize = 0;
const POST_64K: usize = 2;

/// issue 16's CPU goals: (scenario, target, µs per request).
const CPU_GOALS: [(usize, usize, f64); 3] = [
    (SMALL_GET, SIGNED, 20.0),
    (POST_64K, UNSIGNED, 45.0),
    (POST_64K, SIGNED, 75.0),
];

fn main() {
    // This binary, re-executed by `Baseline::start`, is a baseline proxy instead.
    floor::serve_if_asked();
    let benching = benching();
    let seconds = knob("SIGPROXY_LOAD_SECONDS", 5, 1);
    need_wrk("load");
    // The proxies get core 0 to themselves (one measured at a time); this process (the backend)
    // and wrk share the other one, so the CPU measured per request is the proxy's own, not an
    // artefact of contention.
    let cores = cores();
    let pinned = cores >= 2 && pin_self_to_last_core(cores);
    let dir = tempfile::tempdir().unwrap();
    let upstream = fast_backend();
    let backend = upstream.addr;
    let routes = common::signed_and_open(&upstream.url(), "");
    let proxy = start_proxy(&routes, pinned.then_some(0), &static_credentials());
    let baselines = Kind::ALL.map(|kind| Baseline::start(kind, backend, pinned.then_some(0)));
    // Five interleaved rounds: a slow stretch of this shared VM must span three to move a median.
    let rounds = knob("SIGPROXY_LOAD_ROUNDS", 5, 1);

    let route = |route: &str| format!("http://{}/{route}/x", proxy.addr);
    let mut targets = vec![
        Target {
            label: "direct",
            slug: "direct",
            url: format!("http://{backend}/x"),
            pid: None,
        },
        Target {
            label: "unsigned route",
            slug: "open",
            url: route("open"),
            pid: Some(proxy.pid()),
        },
        Target {
            label: "signed route",
            slug: "signed",
            url: route("signed"),
            pid: Some(proxy.pid()),
        },
    ];
    for baseline in &baselines {
        targets.push(Target {
            label: baseline.kind.label(),
            slug: baseline.kind.env_name(),
            url: format!("http://{}/x", baseline.addr),
            pid: Some(baseline.pid()),
        });
    }

    let mut rows = Vec::new();
    for (name, size) in SCENARIOS {
        let script = dir.path().join(format!("body-{size}.lua"));
        std::fs::write(&script, lua(size)).unwrap();
        // Warm-ups fill the upstream pools, so the connection counts below are steady state
        // (the baselines' only when benching, to keep the smoke test short).
        for (i, target) in targets.iter().enumerate().skip(UNSIGNED) {
            if i < BARE_PINGORA || benching {
                run_wrk(&target.url, &script, 1);
            }
        }
        // Rounds interleave the targets; each cell reports its median round.
        let mut samples: Vec<Vec<Cell>> = targets.iter().map(|_| Vec::new()).collect();
        for _ in 0..rounds {
            for (target, samples) in targets.iter().zip(&mut samples) {
                samples.push(measure_cell(target, &upstream, &script, size, seconds));
            }
        }
        rows.push((
            name,
            samples.into_iter().map(Cell::median).collect::<Vec<_>>(),
        ));
    }
    let peak_rss = proxy.memory_mib("VmHWM");

    println!(
        "\nsigproxy load benchmark: wrk -t1 -c{CONNECTIONS} -d{seconds}s per cell, median of {rounds}, 127.0.0.1, {} cores{}",
        cores,
        if pinned { ", each proxy pinned to core 0, backend and wrk to the other" } else { "" }
    );
    println!("| request | target | req/s | p50 ms | p99 ms | proxy CPU µs/req | new upstream conns/req |");
    println!("|---|---|---|---|---|---|---|");
    for (name, cells) in &rows {
        for (target, cell) in targets.iter().zip(cells) {
            println!(
                "| {name} | {} | {:.0} | {:.2} | {:.2} | {} | {} |",
                target.label,
                cell.rps,
                cell.p50_ms,
                cell.p99_ms,
                cell.cpu_us.map_or("-".into(), |c| format!("{c:.1}")),
                match target.pid {
                    None => "-".into(),
                    Some(_) => format!("{:.4}", cell.new_conns_per_req),
                },
            );
        }
    }
    println!("\n| request | signed / unsigned | unsigned / direct | signed / direct |");
    println!("|---|---|---|---|");
    for (name, cells) in &rows {
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} |",
            cells[SIGNED].rps / cells[UNSIGNED].rps,
            cells[UNSIGNED].rps / cells[DIRECT].rps,
            cells[SIGNED].rps / cells[DIRECT].rps
        );
    }
    print_floors(&rows, &targets);
    println!("\nsigproxy peak RSS: {peak_rss:.1} MiB");

    let get = &rows[SMALL_GET].1;
    let goals = [
        (
            format!(
                "signing adds {:.1} us of sigproxy CPU per small GET, {:.2}x the unsigned route's \
                 rate (goal <= {SIGNING_US} us)",
                get[SIGNED].cpu_us.unwrap() - get[UNSIGNED].cpu_us.unwrap(),
                get[SIGNED].rps / get[UNSIGNED].rps
            ),
            get[SIGNED].cpu_us.unwrap() - get[UNSIGNED].cpu_us.unwrap() <= SIGNING_US,
        ),
        (
            format!(
                "{:.1} us sigproxy CPU per signed small GET, {:.2}x the pingora 0.9 + own forwarder baseline's {:.1} us (goal <= {CPU_OVER_FORWARDER}x)",
                get[SIGNED].cpu_us.unwrap(),
                get[SIGNED].cpu_us.unwrap() / get[FORWARDER].cpu_us.unwrap(),
                get[FORWARDER].cpu_us.unwrap(),
            ),
            get[SIGNED].cpu_us.unwrap() <= CPU_OVER_FORWARDER * get[FORWARDER].cpu_us.unwrap(),
        ),
        (
            format!(
                "{:.4} new upstream connections per signed request (goal: reused, < 0.001)",
                get[SIGNED].new_conns_per_req
            ),
            get[SIGNED].new_conns_per_req < 0.001,
        ),
    ];
    let mut missed = false;
    for (what, ok) in &goals {
        println!("{} {what}", if *ok { "PASS" } else { "MISS" });
        missed |= !ok;
    }
    println!();
    if benching && missed {
        // exit() runs no destructors: stop sigproxy and the baselines here, or they outlive
        // the benchmark.
        drop(proxy);
        drop(baselines);
        std::process::exit(1);
    }
}

/// One wrk run against `target`, with the CPU its proxy spent and the backend connections it
/// opened meanwhile.
fn measure_cell(
    target: &Target,
    upstream: &common::upstream::Upstream,
    script: &std::path::Path,
    size: usize,
    seconds: u64,
) -> Cell {
    let Some(pid) = target.pid else {
        return Cell::from(run_wrk(&target.url, script, seconds), None, 0);
    };
    let cpu_before = cpu_seconds(pid);
    let conns_before = upstream.connections() as u64;
    let profiler = profile(pid, &format!("{}-{size}", target.slug));
    let result = run_wrk(&target.url, script, seconds);
    if let Some(mut p) = profiler {
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(p.id().to_string())
            .status();
        let _ = p.wait();
    }
    let cpu = cpu_seconds(pid) - cpu_before;
    let conns = upstream.connections() as u64 - conns_before;
    Cell::from(result, Some(cpu), conns)
}

/// issue 16's CPU goals next to what the baselines cost in the same run: how much of
/// sigproxy's CPU any pingora 0.9 proxy pays, a pingora 0.9 proxy forwarding by hand as the
/// signed route does, a minimal relay, and the same relay signing as sigproxy does.
fn print_floors(rows: &[(&str, Vec<Cell>)], targets: &[Target]) {
    const BASELINES: [usize; 4] = [BARE_PINGORA, FORWARDER, RELAY, SIGNING_RELAY];
    let cpu = |cell: &Cell| cell.cpu_us.unwrap_or(f64::NAN);
    let costs: String = BASELINES
        .map(|b| format!(" {} µs |", targets[b].label))
        .concat();
    let share: String = BASELINES
        .map(|b| format!(" {} / sigproxy |", targets[b].label))
        .concat();
    println!("\n| CPU goal (issue 16) | sigproxy µs |{costs}{share}");
    println!("|---|---|{}", "---|".repeat(2 * BASELINES.len()));
    for (request, target, goal) in CPU_GOALS {
        let (name, cells) = &rows[request];
        let sigproxy = cpu(&cells[target]);
        let floors = BASELINES.map(|b| cpu(&cells[b]));
        let costs: String = floors.map(|f| format!(" {f:.1} |")).concat();
        let share: String = floors
            .map(|f| format!(" {:.0} % |", 100.0 * f / sigproxy))
            .concat();
        let route = if target == SIGNED {
            "signed"
        } else {
            "unsigned"
        };
        println!("| {route} {name} ≤ {goal:.0} µs | {sigproxy:.1} |{costs}{share}");
    }
}

/// With `SIGPROXY_LOAD_PROFILE=DIR`, records `perf` profiles of process `pid` into DIR, one per
/// cell.
fn profile(pid: u32, name: &str) -> Option<Child> {
    let dir = std::env::var("SIGPROXY_LOAD_PROFILE").ok()?;
    Command::new("perf")
        .args(["record", "-e", "cpu-clock", "-F", "2000", "-g", "-o"])
        .arg(format!("{dir}/{name}.data"))
        .args(["-p", &pid.to_string()])
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
        assert_eq!(
            r.failed(),
            0,
            "wrk reported errors or non-2xx answers:\n{}",
            r.text
        );
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
