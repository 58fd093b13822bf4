//! sigproxy: a reverse proxy that signs requests with AWS SigV4 using temporary credentials.
//!
//! A request's path through the crate: [`access`] decides who may ask and for what (with
//! [`actions`] naming requests as IAM actions), [`route`] picks the route and its upstream
//! [`target`], [`credentials`] hold each set's temporary credentials, [`sign`] signs,
//! [`upstream`] connects and [`metrics`] counts. [`proxy`] drives these as pingora phases,
//! [`error`] maps every failure to its HTTP status, [`admin`] serves the health endpoints and
//! [`server`] wires it all together.
//!
//! Imports go one way, from the bottom up (`scripts/module-graph` fails on a circle):
//! - leaves: [`service`] (what differs between AWS services), [`actions`], [`headers`],
//!   [`drain`], [`handover`], [`utc`]; [`signals`] on those two;
//! - [`endpoints`] (service and region from a host name) → [`access`] → [`error`];
//! - what reports its failures as [`error`]s: [`target`], [`upstream`], [`aws_chunked`],
//!   [`metrics`]; [`tls`] (the listeners' certificates) counts in [`metrics`];
//! - [`config`]: the file checked into the types those modules define (`ClientAccess`,
//!   `Upstream`, `Service`, ...) and into its own (`RouteConfig`, `CredentialsConfig`, ...);
//! - the runtime, which reads `config`'s types: [`credentials`] and [`conn`] → [`sign`] →
//!   [`route`] → [`reload`] (the live snapshot of routes, access rules and credential sets,
//!   swapped on SIGHUP and file changes) → [`proxy`], [`admin`] and [`credential_endpoint`] →
//!   [`server`]; [`cli`] and
//!   [`logging`] on top.
#![forbid(unsafe_code)]

pub mod access;
pub mod actions;
pub mod admin;
pub mod aws_chunked;
pub mod cli;
pub mod config;
pub mod conn;
pub mod credential_endpoint;
pub mod credentials;
pub mod drain;
pub mod endpoints;
pub mod error;
pub mod handover;
pub mod headers;
pub mod logging;
pub mod metrics;
pub mod proxy;
pub mod reload;
pub mod route;
pub mod server;
pub mod service;
pub mod sign;
pub mod signals;
pub mod sockets;
pub mod target;
pub mod tls;
pub mod upstream;
pub mod utc;

use std::process::ExitCode;

/// Runs the command line: checks the configuration, and unless `--check`, serves.
pub fn main(cli: cli::Cli) -> ExitCode {
    logging::init(cli.log_format, cli.verbose, &cli.debug_targets());
    let loaded = match (&cli.config, cli.flags.any()) {
        (Some(path), true) => Err(format!(
            "{}: -c and aws-sigv4-proxy's flags (--host, --port, --name, ...) describe the \
             configuration both; use one or the other",
            path.display()
        )),
        (None, true) => config::Config::from_flags(&cli.flags)
            .map(|c| (c, reload::Source::Flags))
            .map_err(|e| e.to_string()),
        (Some(path), false) => reload::load_file(path).map_err(|e| e.to_string()),
        (None, false) => {
            let default = std::path::PathBuf::from(cli::DEFAULT_CONFIG);
            // `-v` or a log flag alone describes no configuration: say where one comes from.
            reload::load_file(&default).map_err(|e| {
                format!(
                    "{e} (with neither -c FILE nor aws-sigv4-proxy's flags such as --host or \
                     --name, sigproxy reads {})",
                    cli::DEFAULT_CONFIG
                )
            })
        }
    };
    let (config, source) = match loaded {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sigproxy: invalid configuration: {e}");
            return ExitCode::FAILURE;
        }
    };
    if cli.check {
        // Written, not println!: a reader that stops early (`| head -1`) is no error of ours.
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "{}: OK ({} routes, {} credential sets)",
            config.path.display(),
            config.routes.len(),
            config.credentials.len()
        );
        for route in &config.routes {
            let _ = writeln!(out, "{}", describe_route(route));
        }
        let sessions = config.client_sessions();
        for client in &config.access.clients {
            let own: Vec<&str> = sessions
                .iter()
                .filter(|s| s.client.as_deref() == Some(client.name.as_str()))
                .map(|s| s.name.as_str())
                .collect();
            let routes: Vec<&str> = client.routes.iter().map(String::as_str).collect();
            let _ = writeln!(
                out,
                "client {}: routes={} own_sessions={}",
                client.name,
                routes.join(","),
                if own.is_empty() {
                    "-".to_string()
                } else {
                    own.join(",")
                }
            );
        }
        return ExitCode::SUCCESS;
    }
    match server::run(config, cli.upgrade, source) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sigproxy: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One `--check` line per route: what it signs with, as resolved (service and region inferred
/// from the host included), so that what will be signed is seen before it is deployed.
fn describe_route(route: &config::RouteConfig) -> String {
    if let Some(from) = &route.from_host {
        return format!("route {}: {}", route.name, from.describe());
    }
    let upstream = route.upstream.url();
    let Some(s) = &route.signing else {
        return format!("route {}: {upstream} unsigned (pass-through)", route.name);
    };
    let payload = match s.payload {
        config::Payload::Signed => "signed",
        config::Payload::Unsigned => "unsigned",
        config::Payload::Streaming => "streaming",
    };
    let scope = match s.algorithm {
        config::Algorithm::SigV4 => "region",
        config::Algorithm::SigV4a => "signing=sigv4a region_set",
    };
    format!(
        "route {}: {upstream} service={} {scope}={} payload={payload} credentials={}",
        route.name, s.service, s.region, s.credentials
    )
}
