//! `mimic`: the command-line front of the simulator. Each subcommand's logic lives in the
//! libraries; `cmd/` holds only the glue (argument parsing, output formats, exit codes).
//! With no subcommand, `mimic` runs the default campaign (`mimic run`).
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
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a campaign of seeds over scenarios and schedulers (the default command).
    Run(cmd::run::RunArgs),
    /// Replay one seed and print its trace and hashes.
    Replay(cmd::replay::ReplayArgs),
    /// Reduce a failing seed's scenario to a minimal one failing for the same reason.
    Shrink(cmd::shrink::ShrinkArgs),
    /// Hunt every mutant with every scheduler and plain shuttle random.
    Mutants(cmd::mutants::MutantsArgs),
    /// Run the BPF conformance suite's .data files on the executor.
    Conformance(cmd::conformance::ConformanceArgs),
    /// Speak the conformance suite's plugin protocol (program hex on stdin, r0 hex on stdout).
    ConformancePlugin(cmd::conformance::PluginArgs),
    /// Check mimic against this machine's kernel: errno table, differentials, programs.
    KernelCheck(cmd::kernel_check::KernelCheckArgs),
    /// Probe this machine's kernel: which kernel profile it is, behaviour by behaviour.
    KernelProbe(cmd::kernel_probe::KernelProbeArgs),
    /// Show what mimic's loader reads from a clang-built BPF object: maps, programs, relocations.
    Inspect(cmd::inspect::InspectArgs),
    /// Verify a program (assembly) against map specs; print the verdict, log, xlated dump.
    Verify(cmd::verify::VerifyArgs),
    /// Run a scenario under each kernel release's map-in-map semantics: pass, or the failure,
    /// the fix that closed it and a replay line.
    Matrix(cmd::matrix::MatrixArgs),
    /// Print the kernel-history table: each upstream change, its release, what came before.
    History,
    /// Replay a fuzz input (a crash file) readably: program, map set-up, verifier log, failure.
    FuzzReplay(cmd::fuzz_replay::FuzzReplayArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        None => cmd::run::run(cmd::run::RunArgs::default()),
        Some(Command::Run(args)) => cmd::run::run(args),
        Some(Command::Replay(args)) => cmd::replay::replay(args),
        Some(Command::Shrink(args)) => cmd::shrink::run(args),
        Some(Command::Mutants(args)) => cmd::mutants::run(args),
        Some(Command::Conformance(args)) => cmd::conformance::run(args),
        Some(Command::ConformancePlugin(args)) => cmd::conformance::plugin(args),
        Some(Command::KernelCheck(args)) => cmd::kernel_check::run(args),
        Some(Command::KernelProbe(args)) => cmd::kernel_probe::run(args),
        Some(Command::Verify(args)) => cmd::verify::run(args),
        Some(Command::Matrix(args)) => cmd::matrix::run(args),
        Some(Command::History) => cmd::history::run(),
        Some(Command::Inspect(args)) => cmd::inspect::run(args),
        Some(Command::FuzzReplay(args)) => cmd::fuzz_replay::run(args),
    }
}
