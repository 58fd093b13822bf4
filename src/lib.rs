//! sigproxy: a reverse proxy that signs requests with AWS SigV4 using temporary credentials.
//!
//! A request's path through the crate, one module each:
//! [`config`] → [`route`] → [`credentials`] → [`sign`] → [`upstream`], driven by the pingora
//! phases in [`proxy`]; [`error`] maps every failure to its HTTP status, [`admin`] serves the
//! health endpoints, [`server`] wires it all together.
#![forbid(unsafe_code)]

pub mod access;
pub mod admin;
pub mod aws_chunked;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod error;
pub mod headers;
pub mod metrics;
pub mod proxy;
pub mod route;
pub mod server;
pub mod sign;
pub mod target;
pub mod upstream;

use std::process::ExitCode;

/// Runs the command line: checks the configuration, and unless `--check`, serves.
pub fn main(cli: cli::Cli) -> ExitCode {
    init_logging(cli.log_format);
    let config = match config::Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sigproxy: invalid configuration: {e}");
            return ExitCode::FAILURE;
        }
    };
    if cli.check {
        println!(
            "{}: OK ({} routes, {} credential sets)",
            config.path.display(),
            config.routes.len(),
            config.credentials.len()
        );
        return ExitCode::SUCCESS;
    }
    match server::run(config, cli.upgrade) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sigproxy: {e}");
            ExitCode::FAILURE
        }
    }
}

/// pingora targets that print raw request headers (and so session tokens) at debug or trace level
/// (found by `tests/credentials.rs`, which runs at trace and looks for secrets in the log).
/// They are held at `info` whatever `RUST_LOG` says: no log level may leak a secret.
const HEADER_DUMPING_TARGETS: &[&str] = &["pingora_proxy=info", "pingora_core::protocols=info"];

fn init_logging(format: cli::LogFormat) {
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    for directive in HEADER_DUMPING_TARGETS {
        filter = filter.add_directive(directive.parse().expect("static directive"));
    }
    // Colours only for a person at a terminal, never into log files.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        cli::LogFormat::Plain => builder.try_init(),
        cli::LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
