use clap::Parser;

fn main() -> std::process::ExitCode {
    sigproxy::main(sigproxy::cli::Cli::parse())
}
