//! `mimic shrink`: reduce a failing seed's scenario to a smaller one failing for the same
//! reason, write it as TOML and print its replay command.

use super::run::replay_command;
use clap::Args;
use mimic_core::mutants::{Mutant, Mutants};
use mimic_sim::sim::engine::{run_one, RunConfig, Verdict};
use mimic_sim::sim::scenario::Scenario;
use mimic_sim::sim::scheduler::SchedulerKind;
use mimic_sim::sim::shrink::shrink;
use std::process::ExitCode;

#[derive(Args, Debug, Clone)]
pub struct ShrinkArgs {
    #[arg(long)]
    pub scenario: String,
    #[arg(long)]
    pub seed: u64,
    #[arg(long = "mutant")]
    pub mutants: Vec<Mutant>,
    #[arg(long, value_enum, default_value = "swarm")]
    pub scheduler: SchedulerKind,
    /// Where to write the reduced scenario (default: shrunk-<scenario>-<seed>.toml).
    #[arg(long)]
    pub out: Option<String>,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub kernel: super::KernelArg,
}

pub fn run(args: ShrinkArgs) -> ExitCode {
    let scenario = match Scenario::load(&args.scenario) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let followed = match args.kernel.follow("mimic shrink", &args.mutants) {
        Ok(followed) => followed,
        Err(why) => {
            eprintln!("error: {why}");
            return ExitCode::from(2);
        }
    };
    let named: Mutants = args.mutants.iter().copied().collect();
    let config = RunConfig {
        scenario: scenario.clone(),
        mutants: followed.mutants,
        scheduler: args.scheduler,
        keep_trace: false,
        profile: followed.profile,
        lacks: followed.semantics.lacks,
    };
    let outcome = run_one(&config, args.seed);
    let Verdict::Fail { kind, .. } = &outcome.verdict else {
        eprintln!(
            "error: {} seed {} does not fail ({:?}); nothing to shrink",
            args.scenario, args.seed, outcome.verdict
        );
        return ExitCode::from(2);
    };
    let shrunk = shrink(&config, args.seed, kind);
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| format!("shrunk-{}-{}.toml", scenario.name, args.seed));
    let text = format!(
        "# Shrunk by `mimic shrink` from {} seed {} ({} -> {} ops+runs, {} attempts); fails with [{}] at seed {}.\n{}",
        args.scenario,
        args.seed,
        shrunk.ops_before,
        shrunk.ops_after,
        shrunk.attempts,
        shrunk.kind,
        shrunk.seed,
        shrunk.scenario.to_toml()
    );
    if let Err(e) = std::fs::write(&out, text) {
        eprintln!("error: writing {out}: {e}");
        return ExitCode::from(2);
    }
    let replay = replay_command(&out, args.scheduler, named, &followed.flags, shrunk.seed);
    if args.json {
        println!(
            "{}",
            serde_json::json!({"file": out, "seed": shrunk.seed, "kind": shrunk.kind, "size_before": shrunk.ops_before, "size_after": shrunk.ops_after, "attempts": shrunk.attempts, "replay": replay})
        );
    } else {
        println!(
            "shrunk {} seed {} [{}]: {} -> {} ops+runs in {} attempts; written to {out}",
            args.scenario,
            args.seed,
            shrunk.kind,
            shrunk.ops_before,
            shrunk.ops_after,
            shrunk.attempts
        );
        println!("replay: {replay}");
    }
    ExitCode::SUCCESS
}
