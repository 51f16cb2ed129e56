//! `mimic fuzz-replay TARGET FILE [--mutants LIST] [--json] [--kernel auto|NAME]`: one fuzz input (a crash file from
//! `fuzz/artifacts/TARGET/`, a corpus entry, a regression file) replayed readably by
//! `mimic_sim::fuzz::replay`: for `verify_exec` the map set-up, the program, the verifier log,
//! the fixed-up program and the failing access; for `map_ops` each op's outcome on the model and
//! the world and the first difference; and the target's own verdict last.
//!
//! Mutants come from `--mutants`, else from `MIMIC_MUTANTS` as the fuzz targets read it (an
//! unknown id is an error here, not a panic). Exit status: 0 no crash, 1 crash reproduced,
//! 2 bad input (unknown target, unreadable file, unknown mutant).

use clap::Args;
use mimic_core::mutants::Mutants;
use mimic_sim::fuzz::{parse_mutants, replay};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct FuzzReplayArgs {
    /// The fuzz target: asm_roundtrip, cli_inputs, interp_diff, map_ops, sim_schedule or
    /// verify_exec.
    pub target: String,
    /// The input file (e.g. fuzz/artifacts/TARGET/crash-...).
    pub file: PathBuf,
    /// Comma-separated mutants to switch on; default: `MIMIC_MUTANTS`, as the fuzz targets.
    #[arg(long)]
    pub mutants: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub kernel: super::KernelArg,
}

pub fn run(args: FuzzReplayArgs) -> ExitCode {
    match replay_cmd(&args) {
        Ok(crashed) => ExitCode::from(u8::from(crashed)),
        Err(e) => {
            eprintln!("mimic fuzz-replay: {e}");
            ExitCode::from(2)
        }
    }
}

fn mutants(args: &FuzzReplayArgs) -> Result<Mutants, String> {
    let (raw, origin) = match &args.mutants {
        Some(list) => (list.clone(), "--mutants"),
        None => (
            std::env::var("MIMIC_MUTANTS").unwrap_or_default(),
            "MIMIC_MUTANTS",
        ),
    };
    parse_mutants(&raw).map_err(|e| format!("{origin}: {e}"))
}

fn replay_cmd(args: &FuzzReplayArgs) -> Result<bool, String> {
    // The target first: a typo there should not be reported as a missing file.
    if !replay::TARGETS.contains(&args.target.as_str()) {
        return Err(format!(
            "unknown fuzz target `{}` (known: {})",
            args.target,
            replay::TARGETS.join(", ")
        ));
    }
    let mutants = mutants(args)?;
    let data = std::fs::read(&args.file).map_err(|e| format!("{}: {e}", args.file.display()))?;
    let profile = args.kernel.build_profile("mimic fuzz-replay")?;
    let report = replay::replay_as(&args.target, &data, mutants, profile)?;
    if args.json {
        let mut json = serde_json::to_value(&report).map_err(|e| e.to_string())?;
        json["file"] = serde_json::json!(args.file.display().to_string());
        json["reason"] = serde_json::json!(report.reason());
        println!(
            "{}",
            serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?
        );
    } else {
        println!("file: {}", args.file.display());
        print!("{}", report.text());
    }
    Ok(report.crash.is_some())
}
