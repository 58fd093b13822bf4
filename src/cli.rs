//! Command line: `sigproxy -c FILE [--check] [-u] [--log-…]`, or aws-sigv4-proxy's flags
//! instead of a file ([`crate::config::Flags`]).

use crate::config::Flags;
use clap::Parser;
use std::path::PathBuf;

/// The file read when neither `-c` nor aws-sigv4-proxy's flags are given.
pub const DEFAULT_CONFIG: &str = "config/sigproxy.yaml";

#[derive(Debug, Parser)]
#[command(
    name = "sigproxy",
    version,
    about = "A SigV4-signing reverse proxy for AWS HTTP APIs"
)]
pub struct Cli {
    /// Configuration file (YAML). Default: config/sigproxy.yaml, unless aws-sigv4-proxy's
    /// flags describe the configuration instead.
    #[arg(short = 'c', long = "config")]
    pub config: Option<PathBuf>,

    /// Validate the configuration and exit: 0 if valid, 1 with the error otherwise.
    #[arg(long)]
    pub check: bool,

    /// Zero-downtime upgrade: take over the listening sockets of the running sigproxy that uses
    /// the same configuration, once it is sent SIGQUIT.
    #[arg(short = 'u', long)]
    pub upgrade: bool,

    /// Log line format on stderr. The level comes from RUST_LOG (default: info).
    #[arg(long, value_enum, default_value_t = LogFormat::Plain)]
    pub log_format: LogFormat,

    /// Debug logging for sigproxy itself (as RUST_LOG=info,sigproxy=debug; RUST_LOG wins), and
    /// both log options below, as aws-sigv4-proxy's `-v` implies them.
    #[arg(short = 'v', long)]
    pub verbose: bool,

    /// Log each request's canonical request and string to sign (session token redacted), to
    /// compare with AWS's answer to a SignatureDoesNotMatch. Same as adding
    /// `sigproxy::signing=debug` to RUST_LOG.
    #[arg(long)]
    pub log_signing_process: bool,

    /// Log every 4xx/5xx upstream answer with its status and AWS error code. Same as adding
    /// `sigproxy::failed_requests=debug` to RUST_LOG.
    #[arg(long)]
    pub log_failed_requests: bool,

    /// aws-sigv4-proxy's flags: one route and one credential set, no file.
    #[command(flatten, next_help_heading = "aws-sigv4-proxy flags (instead of -c)")]
    pub flags: Flags,
}

impl Cli {
    /// The tracing targets the command line turns on at debug level, whatever RUST_LOG says.
    pub fn debug_targets(&self) -> Vec<&'static str> {
        let mut targets = Vec::new();
        if self.log_signing_process || self.verbose {
            targets.push(crate::sign::debug::TARGET);
        }
        if self.log_failed_requests || self.verbose {
            targets.push(crate::proxy::FAILED_REQUESTS_TARGET);
        }
        targets
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Plain,
    Json,
}
