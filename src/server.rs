//! Assembles the pingora server: traffic proxy, admin listener, credential refresher.

use crate::admin::AdminApp;
use crate::config::Config;
use crate::conn::Guarded;
use crate::credential_endpoint::CredentialEndpoint;
use crate::credentials::CredentialStore;
use crate::drain::Drain;
use crate::proxy::{SigningProxy, Traffic};
use crate::reload::{Reloader, Snapshot, Source};
use crate::signals::Signals;
use crate::sockets::{self, OnSockets};
use crate::tls::watch::Watch;
use crate::tls::Certificate;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{RunArgs, Server};
use pingora::services::background::background_service;
use pingora::services::listening::Service;
use std::path::Path;
use std::sync::Arc;

/// The upgrade socket hands the listening sockets to whoever answers on it first: its directory
/// must be one no other user can write to. A missing directory is created with mode 0700.
fn private_socket_dir(socket: &Path) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let dir = socket
        .parent()
        .ok_or_else(|| format!("upgrade_socket {}: has no directory", socket.display()))?;
    let fail = |why: String| Err(format!("upgrade_socket {}: {why}", socket.display()));
    if !dir.exists() {
        if let Err(e) = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
        {
            return fail(format!("cannot create {}: {e}", dir.display()));
        }
    }
    let me = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) => return fail(format!("cannot read {}: {e}", dir.display())),
    };
    if !meta.is_dir() {
        return fail(format!("{} is not a directory", dir.display()));
    }
    if meta.uid() != 0 && Some(meta.uid()) != me {
        return fail(format!(
            "{} belongs to another user (uid {}), who could take over the listening sockets",
            dir.display(),
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return fail(format!(
            "{} can be written by other users (mode {:o}), who could take over the listening \
             sockets; use a private directory",
            dir.display(),
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

/// The forward-proxy variables Go's HTTP client (aws-sigv4-proxy's) follows. sigproxy connects
/// to its upstreams directly; one of these set usually means the network needs a proxy, which
/// would otherwise show only as `502 upstream_unreachable`. Their values (which may hold a
/// password) are not logged.
fn forward_proxy_unused() {
    const VARS: [&str; 6] = [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ];
    for var in VARS {
        if std::env::var_os(var).is_some_and(|v| !v.is_empty()) {
            tracing::warn!(
                "{var} is set, but sigproxy does not go through a forward proxy: it connects to \
                 its upstreams directly"
            );
        }
    }
}

/// Runs the proxy until it is told to stop. Returns only on start-up errors.
///
/// With `upgrade`, the listening sockets come from the running process (sent SIGQUIT) through
/// `upgrade_socket` instead of being bound here. `source` is what SIGHUP and file changes
/// reload from (see `reload`).
pub fn run(config: Config, upgrade: bool, source: Source) -> Result<(), String> {
    // First: SIGHUP means reload, from the very start (a `-u` bootstrap waits seconds).
    crate::reload::hold_sighup()?;
    forward_proxy_unused();
    private_socket_dir(&config.upgrade_socket)?;
    // A busy port is told before any MFA prompt; the ports are bound after it (below).
    if !upgrade {
        let endpoint = config.credential_endpoint.as_ref().map(|e| e.listen);
        sockets::check(config.key("listen"), config.listen)?;
        if let Some(admin) = config.admin_listen {
            sockets::check(config.key("admin_listen"), admin)?;
        }
        endpoint.map_or(Ok(()), |addr| {
            sockets::check("credential_endpoint.listen", addr)
        })?;
    }

    let conf = ServerConf {
        threads: config.threads,
        // Only the SIGQUIT hand-over goes through pingora's grace period (an uninterruptible
        // sleep, which `drain` cuts short once nothing is in flight); SIGTERM is `drain`'s,
        // which exits once nothing is in flight.
        grace_period_seconds: Some(config.shutdown_grace.as_secs_f64().ceil() as u64),
        graceful_shutdown_timeout_seconds: Some(1),
        // One current-thread runtime per worker: fewer cross-thread wake-ups than tokio's
        // work-stealing scheduler (about 5 us of CPU per request in the load benchmark).
        work_stealing: false,
        upgrade_sock: config.upgrade_socket.display().to_string(),
        ..ServerConf::default()
    };
    let opt = Opt {
        upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);

    let sets: Vec<&str> = config.credentials.keys().map(String::as_str).collect();
    crate::metrics::metrics().declare_credential_sets(&sets);
    crate::metrics::metrics()
        .declare_clients(config.access.clients.iter().map(|c| c.name.as_str()));
    // Routes, access rules and credential sets: what a reload swaps.
    let store = CredentialStore::new(&config);
    // Before anything runs in the background, and before a `-u` process takes the running
    // one's sockets (which stops accepting 5 s after handing them over, whatever this one is
    // doing): sets with MFA and no token_command ask here.
    store.prompt_for_mfa_codes();
    // On an upgrade, the running process's sockets come here (pingora waits about 6 s).
    server.bootstrap();
    let drain = Drain::new(config.shutdown_delay, config.shutdown_grace);
    // From here on SIGTERM drains, SIGINT exits and SIGQUIT hands over, also while the
    // services start (see `Signals`): a `-u` process holds the sockets now, and ending it at
    // once would leave nothing listening.
    let signals = Signals::install(drain.clone(), config.upgrade_socket.clone())?;
    // Every port is bound here, once, before any service starts, and pingora listens on these
    // sockets (see `sockets`). On an upgrade, those the running process handed over are kept.
    let bind = |what: &str, addr| sockets::bind_unless_held(what, addr, upgrade);
    let traffic_socket = bind(config.key("listen"), config.listen)?;
    let admin_socket = match config.admin_listen {
        Some(admin) => bind(config.key("admin_listen"), admin)?,
        None => None,
    };
    let endpoint_socket = match &config.credential_endpoint {
        Some(endpoint) => bind("credential_endpoint.listen", endpoint.listen)?,
        None => None,
    };
    let live = Snapshot::new(&config, store).live();

    let proxy = SigningProxy::new(live.clone(), &config, &server.configuration);
    // sigproxy's phases, on its own request loop or pingora's (see `proxy::traffic`), behind
    // sigproxy's own connection limits (timeouts, max_connections, head size, lingering
    // close): see `conn`.
    let pingora_loop = pingora::proxy::http_proxy(&server.configuration, proxy.clone());
    let proxy = Traffic::new(proxy, pingora_loop);
    // HTTPS listeners serve the pair `--check` read; the watch re-reads it when it changes.
    let certificates: Vec<Arc<Certificate>> =
        [("listen", &config.tls), ("admin_listen", &config.admin_tls)]
            .into_iter()
            .filter_map(|(listener, pair)| Some(Certificate::new(listener, pair.as_ref()?)))
            .collect();
    let acceptor = |listener: &str| {
        certificates
            .iter()
            .find(|c| c.listener == listener)
            .map(Certificate::acceptor)
    };
    let guarded = Guarded::new(proxy, config.limits, config.max_header_bytes, &drain)
        .with_tls(acceptor("listen"));
    let mut traffic = Service::new("sigproxy".to_string(), guarded);
    // Plain HTTP reads straight from the socket: the head into sigproxy's own buffer (see
    // `conn::head`), a body into pingora's 64 KiB body buffer. pingora's default 64 KiB read
    // buffer in front of them only added a copy of every body byte. TLS keeps it: rustls reads
    // in small pieces, which the buffer gathers into few system calls.
    let mut listener = ListenerConfig::tcp(config.listen.to_string());
    if config.tls.is_none() {
        listener = listener.l4_buffer(L4BufferSettings::default().read(0));
    }
    traffic.add_listener(listener);
    // The listener closes when the drain says, not at SIGTERM (see `drain`).
    let traffic = OnSockets::new(traffic, traffic_socket, &drain, true);

    let admin = config.admin_listen.map(|addr| {
        let admin_app = AdminApp::new(live.clone(), drain.clone());
        // The same head and time limits as traffic, and a small connection cap: see `admin`.
        let admin_app = Guarded::admin(
            admin_app,
            crate::admin::limits(&config.limits),
            crate::admin::MAX_HEADER_BYTES,
        )
        .with_tls(acceptor("admin_listen"));
        let mut admin = Service::new("sigproxy admin".to_string(), admin_app);
        admin.add_tcp(&addr.to_string());
        OnSockets::new(admin, admin_socket, &drain, false)
    });

    // The admin port's limits: a client holding connections open cannot take it away.
    let endpoint = config.credential_endpoint.as_ref().map(|e| {
        let app = Guarded::admin(
            CredentialEndpoint::new(live.clone()),
            crate::admin::limits(&config.limits),
            crate::admin::MAX_HEADER_BYTES,
        );
        let mut service = Service::new("sigproxy credential endpoint".to_string(), app);
        service.add_tcp(&e.listen.to_string());
        let service = OnSockets::new(service, endpoint_socket, &drain, false);
        (service, e.listen)
    });

    let (listen, admin_listen, routes) = (config.listen, config.admin_listen, config.routes.len());
    let scheme = |tls: bool| if tls { "https" } else { "http" };
    let (traffic_scheme, admin_scheme) = (
        scheme(config.tls.is_some()),
        scheme(config.admin_tls.is_some()),
    );
    let path = config.path.clone();
    let reloader = Reloader::new(config, live, source);
    // On an upgrade, the new process starts accepting traffic and credential endpoint
    // connections only once every credential set has had its first fetch: they wait in the
    // inherited listen queue meanwhile instead of meeting a 503 the old process would not have
    // given. A fresh start listens at once and answers 503 until credentials are in (/readyz
    // says so). The admin port always answers at once (its probes say what is missing).
    let first_fetches = upgrade.then(|| reloader.first_fetches());
    let what = "every credential set has had its first fetch";
    let traffic = traffic.after(first_fetches.clone(), what);
    server.add_service(background_service(
        "credential refresh and reload",
        reloader,
    ));
    server.add_service(traffic);
    if let Some(admin) = admin {
        server.add_service(admin);
    }
    let endpoint = endpoint.map(|(service, listen)| {
        server.add_service(service.after(first_fetches, what));
        format!("http://{listen}/credentials")
    });
    if !certificates.is_empty() {
        server.add_service(background_service(
            "TLS certificate watch",
            Watch { certificates },
        ));
    }
    tracing::info!(
        config = %path.display(),
        listen = %format_args!("{traffic_scheme}://{listen}"),
        admin = %match admin_listen {
            Some(addr) => format!("{admin_scheme}://{addr}"),
            None => "none (no --admin-listen)".into(),
        },
        routes,
        credential_endpoint = endpoint.as_deref(),
        "sigproxy starting"
    );
    server.run(RunArgs {
        shutdown_signal: Box::new(signals),
    });
    std::process::exit(0)
}
