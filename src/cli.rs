//! Command line: `sigproxy -c FILE [--check]`.

use clap::Parser;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "sigproxy",
    version,
    about = "A SigV4-signing reverse proxy for AWS HTTP APIs"
)]
pub struct Cli {
    /// Configuration file (YAML).
    #[arg(short = 'c', long = "config", default_value = "config/sigproxy.yaml")]
    pub config: PathBuf,

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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Plain,
    Json,
}
