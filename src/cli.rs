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
}
