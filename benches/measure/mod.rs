//! What the benchmarks share: knobs, and the sigproxy release binary as a measured process.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

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

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The sigproxy binary, started with a configuration and static credentials from the
/// environment (a session token included, as STS credentials have one).
pub struct Sigproxy {
    child: Child,
    pub addr: SocketAddr,
}

impl Sigproxy {
    /// `routes_yaml` is everything after the listen addresses; `core` pins it with taskset.
    pub fn start(dir: &Path, routes_yaml: &str, core: Option<usize>) -> Sigproxy {
        let env = [
            ("AWS_ACCESS_KEY_ID", "ASIABENCHEXAMPLE0001".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "bench-secret-key-0001".to_string()),
            ("AWS_SESSION_TOKEN", "IQoJb3JpZ2luX2VjEXAMPLE".repeat(30)),
        ];
        Self::start_with_env(dir, routes_yaml, core, &env)
    }

    /// As [`Sigproxy::start`], with the credential environment given (`env`) instead.
    pub fn start_with_env(
        dir: &Path,
        routes_yaml: &str,
        core: Option<usize>,
        env: &[(&str, String)],
    ) -> Sigproxy {
        let (addr, admin) = (free_addr(), free_addr());
        let config = dir.join("sigproxy.yaml");
        std::fs::write(
            &config,
            format!("listen: {addr}\nadmin_listen: {admin}\nthreads: 1\n{routes_yaml}"),
        )
        .unwrap();
        let binary = env!("CARGO_BIN_EXE_sigproxy");
        let mut command = match core {
            Some(core) => {
                let mut c = Command::new("taskset");
                c.args(["-c", &core.to_string(), binary]);
                c
            }
            None => Command::new(binary),
        };
        command.envs(env.iter().map(|(k, v)| (k, v)));
        let child = command
            .arg("-c")
            .arg(&config)
            .env("AWS_CONFIG_FILE", dir.join("none"))
            .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("none"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            // The default level, access log on (into /dev/null); SIGPROXY_BENCH_LOG overrides.
            .env(
                "RUST_LOG",
                std::env::var("SIGPROXY_BENCH_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ready(admin) {
            assert!(Instant::now() < deadline, "sigproxy did not get ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        Sigproxy { child, addr }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// User plus system CPU time of the process so far.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        // After the command name (which ends with ')'), utime and stime are fields 12 and 13.
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
            .split_whitespace()
            .collect();
        let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
        ticks / clock_ticks()
    }

    /// A memory figure from /proc/PID/status in MiB: `VmRSS` now, `VmHWM` at peak.
    pub fn memory_mib(&self, field: &str) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap()
            / 1024.0
    }
}

impl Drop for Sigproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `/readyz` answers 200: the credentials are loaded.
fn ready(admin: SocketAddr) -> bool {
    let Ok(mut conn) = TcpStream::connect(admin) else {
        return false;
    };
    let _ = write!(
        conn,
        "GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    );
    let mut answer = String::new();
    let _ = conn.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
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

/// A keep-alive HTTP/1.1 backend answering `200 ok`; counts the connections it accepts.
pub fn start_backend() -> (SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicU64::new(0));
    let counter = accepted.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    continue;
                };
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(conn));
            }
        });
    });
    (addr, accepted)
}

async fn serve(conn: tokio::net::TcpStream) {
    let _ = conn.set_nodelay(true);
    let (read, mut write) = conn.into_split();
    let mut reader = BufReader::with_capacity(128 * 1024, read);
    let mut line = String::new();
    let mut body = Vec::new();
    loop {
        let mut length = 0usize;
        loop {
            line.clear();
            match reader.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        body.resize(length, 0);
        if reader.read_exact(&mut body).await.is_err() {
            return;
        }
        let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok";
        if write.write_all(reply).await.is_err() {
            return;
        }
    }
}
