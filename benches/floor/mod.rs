//! Baselines for the load benchmark: three proxies that do nothing but forward, measured in the
//! same rounds as sigproxy so that its CPU per request can be split into what pingora 0.9
//! costs, what the kernel's loopback TCP work costs, and what is sigproxy's own.
//!
//! - [`bare`]: "bare pingora 0.9", a `ProxyHttp` with a fixed upstream and nothing else, on
//!   the server settings sigproxy uses. What any proxy built on pingora 0.9 pays: the floor for
//!   sigproxy's unsigned (and streamed) requests, which go through pingora's proxy loop.
//! - [`forwarder`]: "pingora 0.9 + own forwarder", the same server whose `request_filter` reads
//!   the body and forwards the request itself on pingora's `Connector`, as sigproxy does with
//!   its signed requests: the floor for those.
//! - [`relay`]: "minimal relay", a hand-written tokio HTTP/1.1 keep-alive forwarder, one upstream
//!   connection per client connection. The floor: loopback TCP plus a minimal user space.
//! - "minimal relay + SigV4": the same relay signing each request with sigproxy's `Signer` as
//!   the signed route does (the body's SHA-256 included): the floor for any proxy that signs.
//!
//! Each runs in its own process, so that its CPU can be read from /proc and the process pinned
//! to a core exactly as sigproxy is: the benchmark re-executes its own binary with
//! `SIGPROXY_FLOOR` naming the baseline, and [`serve_if_asked`] at the top of `main` turns that
//! process into the baseline.

mod bare;
mod forwarder;
mod relay;

use aws_credential_types::Credentials;
use sigproxy::config::{Algorithm, CredentialsConfig, Payload, SigningConfig};
use sigproxy::credentials::CredentialSet;
use sigproxy::sign::Signer;
use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// Which baseline a re-executed bench binary serves (`pingora`, `forwarder`, `relay` or
/// `signing-relay`).
const KIND: &str = "SIGPROXY_FLOOR";
/// Where it listens, and the backend it forwards to.
const LISTEN: &str = "SIGPROXY_FLOOR_LISTEN";
const BACKEND: &str = "SIGPROXY_FLOOR_BACKEND";

/// A baseline proxy.
// Not every benchmark uses every baseline (benches/transfer.rs leaves the forwarder out).
#[allow(dead_code)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Pingora,
    Forwarder,
    Relay,
    SigningRelay,
}

impl Kind {
    #[allow(dead_code)]
    pub const ALL: [Kind; 4] = [
        Kind::Pingora,
        Kind::Forwarder,
        Kind::Relay,
        Kind::SigningRelay,
    ];

    /// The name in the benchmark's tables.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Pingora => "bare pingora 0.9",
            Kind::Forwarder => "pingora 0.9 + own forwarder",
            Kind::Relay => "minimal relay",
            Kind::SigningRelay => "minimal relay + SigV4",
        }
    }

    /// The name `SIGPROXY_FLOOR` gives it (also its cells' `perf` profile names).
    pub fn env_name(self) -> &'static str {
        match self {
            Kind::Pingora => "pingora",
            Kind::Forwarder => "forwarder",
            Kind::Relay => "relay",
            Kind::SigningRelay => "signing-relay",
        }
    }
}

/// In a process started by [`Baseline::start`]: serves that baseline and never returns.
/// Otherwise returns at once.
pub fn serve_if_asked() {
    let Ok(kind) = std::env::var(KIND) else {
        return;
    };
    let addr = |name: &str| -> SocketAddr {
        let value = std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
        value
            .parse()
            .unwrap_or_else(|e| panic!("{name}={value}: {e}"))
    };
    let (listen, backend) = (addr(LISTEN), addr(BACKEND));
    match kind.as_str() {
        "pingora" => bare::serve(listen, backend),
        "forwarder" => forwarder::serve(listen, backend),
        "relay" => relay::serve(listen, backend, None),
        "signing-relay" => relay::serve(listen, backend, Some(signer())),
        other => panic!("{KIND}={other}: expected pingora, forwarder, relay or signing-relay"),
    }
}

/// The signed route's signer, as the load benchmark configures sigproxy: Lambda in us-east-1,
/// the body's SHA-256, the bench's session-token credentials.
fn signer() -> Signer {
    let set = Arc::new(CredentialSet::new(CredentialsConfig::default_chain(
        "bench",
    )));
    let env: HashMap<String, String> = crate::measure::static_credentials().into_iter().collect();
    set.store(Credentials::new(
        &env["AWS_ACCESS_KEY_ID"],
        &env["AWS_SECRET_ACCESS_KEY"],
        Some(env["AWS_SESSION_TOKEN"].clone()),
        None,
        "bench",
    ));
    let config = SigningConfig {
        service: "lambda".into(),
        region: "us-east-1".into(),
        credentials: "bench".into(),
        payload: Payload::Signed,
        algorithm: Algorithm::SigV4,
    };
    Signer::new(&config, set)
}

/// A baseline proxy running in its own process (killed on drop).
pub struct Baseline {
    child: Child,
    pub kind: Kind,
    pub addr: SocketAddr,
}

impl Baseline {
    /// Starts `kind` forwarding to `backend`, pinned to `core` (with taskset) where given, and
    /// waits until it accepts connections.
    pub fn start(kind: Kind, backend: SocketAddr, core: Option<usize>) -> Baseline {
        let addr: SocketAddr = format!("127.0.0.1:{}", crate::common::free_port())
            .parse()
            .unwrap();
        let me = std::env::current_exe().expect("the bench binary's path");
        let mut cmd = match core {
            Some(core) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(core.to_string()).arg(me);
                c
            }
            None => Command::new(me),
        };
        cmd.env(KIND, kind.env_name())
            .env(LISTEN, addr.to_string())
            .env(BACKEND, backend.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let mut baseline = Baseline {
            child: cmd.spawn().expect("start a baseline proxy"),
            kind,
            addr,
        };
        let up = crate::common::poll(Duration::from_secs(20), || {
            TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
        });
        if !up {
            let status = baseline.child.try_wait();
            panic!("{} never listened on {addr} ({status:?})", kind.label());
        }
        baseline
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Baseline {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
