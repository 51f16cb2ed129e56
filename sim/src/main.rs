//! `mimic`: the command-line front of the simulator. Each subcommand's logic lives in the core;
//! `cmd/` holds only the glue (argument parsing, output formats, exit codes).
use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod cmd;

#[derive(Parser)]
#[command(
    name = "mimic",
    version,
    about = "Deterministic simulation and model checking of BPF map-in-map"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the BPF conformance suite's .data files on the executor.
    Conformance(cmd::conformance::ConformanceArgs),
    /// Speak the conformance suite's plugin protocol (program hex on stdin, r0 hex on stdout).
    ConformancePlugin(cmd::conformance::PluginArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Conformance(args) => cmd::conformance::run(args),
        Command::ConformancePlugin(args) => cmd::conformance::plugin(args),
    }
}
