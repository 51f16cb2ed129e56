//! `mimic replay`: one seed again, with its trace (kernel function names, logical stamps) and
//! the trace and schedule hashes.

use clap::Args;
use mimic_core::mutants::Mutant;
use mimic_sim::sim::engine::{run_one, RunConfig, Verdict};
use mimic_sim::sim::scenario::Scenario;
use mimic_sim::sim::scheduler::SchedulerKind;
use std::process::ExitCode;

#[derive(Args, Debug, Clone)]
pub struct ReplayArgs {
    /// A built-in scenario name or a TOML file.
    #[arg(long)]
    pub scenario: String,
    #[arg(long)]
    pub seed: u64,
    #[arg(long = "mutant")]
    pub mutants: Vec<Mutant>,
    #[arg(long, value_enum, default_value = "swarm")]
    pub scheduler: SchedulerKind,
    /// Print the whole trace.
    #[arg(long)]
    pub trace: bool,
    /// Print the outcome as JSON (with the trace when --trace is given).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub kernel: super::KernelArg,
}

pub fn replay(args: ReplayArgs) -> ExitCode {
    let scenario = match Scenario::load(&args.scenario) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let followed = match args.kernel.follow("mimic replay", &args.mutants) {
        Ok(followed) => followed,
        Err(why) => {
            eprintln!("error: {why}");
            return ExitCode::from(2);
        }
    };
    let config = RunConfig {
        scenario,
        mutants: followed.mutants,
        scheduler: args.scheduler,
        keep_trace: true,
        profile: followed.profile,
        lacks: followed.semantics.lacks,
    };
    let outcome = run_one(&config, args.seed);
    if args.json {
        let mut json = serde_json::to_value(&outcome).unwrap_or_default();
        if args.trace {
            json["trace"] = serde_json::json!(outcome.trace);
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&json).unwrap_or_default()
        );
    } else {
        if args.trace {
            for line in &outcome.trace {
                println!("{line}");
            }
        }
        println!("options: {}", outcome.options);
        match &outcome.verdict {
            Verdict::Pass => println!("verdict: pass"),
            Verdict::Cut => println!("verdict: cut by the step budget (not a failure)"),
            Verdict::Fail { kind, detail } => println!("verdict: FAIL [{kind}] {detail}"),
        }
        println!(
            "steps: {}, random draws: {}, trace hash: {:016x}, schedule hash: {:016x}",
            outcome.steps, outcome.draws, outcome.trace_hash, outcome.schedule_hash
        );
    }
    if matches!(outcome.verdict, Verdict::Fail { .. }) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
