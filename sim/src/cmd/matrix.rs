//! `mimic matrix --scenario NAME|FILE [--seeds A..B] [--kernels LIST] [--scheduler S]
//! [--with FIX,...] [--json]`: the scenario under each release's semantics, a row per release
//! (pass, or the first failure's invariant, the runs to it, the fix that closed it and a replay
//! line), then which releases each fix would have saved. Exit code 1 when a cell fails.

use clap::Args;
use mimic_core::history::{Release, RELEASES};
use mimic_sim::sim::campaign::SeedRange;
use mimic_sim::sim::matrix::{matrix, render, Plan, Verdict};
use mimic_sim::sim::scenario::Scenario;
use mimic_sim::sim::scheduler::SchedulerKind;
use std::process::ExitCode;

/// Seeds per scheduler and release by default.
pub const DEFAULT_SEEDS: u64 = 200;

#[derive(Args, Debug, Clone)]
pub struct MatrixArgs {
    /// A built-in scenario name or a TOML file.
    #[arg(long)]
    pub scenario: String,
    /// Seeds to run under each scheduler: A..B (half-open) or a single seed.
    #[arg(long)]
    pub seeds: Option<SeedRange>,
    /// Releases, comma-separated (default: all six).
    #[arg(long, value_delimiter = ',')]
    pub kernels: Vec<String>,
    /// Scheduler (default: all three, one after the other).
    #[arg(long, value_enum)]
    pub scheduler: Option<SchedulerKind>,
    /// Fixes every release gets on top (a stable branch's backports), by name.
    #[arg(long = "with", value_delimiter = ',')]
    pub with: Vec<String>,
    /// Print the cells as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: MatrixArgs) -> ExitCode {
    match matrix_cmd(&args) {
        Ok(all_pass) => ExitCode::from(if all_pass { 0 } else { 1 }),
        Err(e) => {
            eprintln!("mimic matrix: {e}");
            ExitCode::from(2)
        }
    }
}

fn matrix_cmd(args: &MatrixArgs) -> Result<bool, String> {
    let scenario = Scenario::load(&args.scenario).map_err(|e| e.to_string())?;
    let releases: Vec<Release> = if args.kernels.is_empty() {
        RELEASES.to_vec()
    } else {
        args.kernels
            .iter()
            .map(|k| k.parse::<Release>())
            .collect::<Result<_, _>>()?
    };
    let range = args.seeds.unwrap_or(SeedRange {
        start: 0,
        end: DEFAULT_SEEDS,
    });
    let seeds = range.seeds(None);
    let schedulers: Vec<SchedulerKind> = match args.scheduler {
        Some(s) => vec![s],
        None => SchedulerKind::ALL.to_vec(),
    };
    let with: Vec<&str> = args.with.iter().map(String::as_str).collect();
    let plan = Plan {
        scenario: &scenario,
        scenario_arg: &args.scenario,
        seeds: &seeds,
        schedulers: &schedulers,
        releases: &releases,
        with: &with,
    };
    let json = args.json;
    let cells = matrix(&plan, &mut |cell| {
        if !json {
            eprintln!(
                "{}: {}",
                cell.release,
                match cell.verdict {
                    Verdict::Pass { .. } => "pass",
                    Verdict::Fail { .. } => "FAIL",
                }
            );
        }
    })?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&cells).map_err(|e| e.to_string())?
        );
    } else {
        print!("{}", render(&args.scenario, &cells));
    }
    Ok(cells
        .iter()
        .all(|c| matches!(c.verdict, Verdict::Pass { .. })))
}
