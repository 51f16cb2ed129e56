//! `mimic mutants`: every mutant × scheduler (and plain shuttle random as the baseline) →
//! detected?, schedules to the first failure (median over trials), median time.

use clap::Args;
use mimic_core::mutants::Mutant;
use mimic_sim::sim::hunt::{hunt, plan, Engine, Hunt};
use mimic_sim::sim::scheduler::SchedulerKind;
use serde::Serialize;
use std::process::ExitCode;

#[derive(Args, Debug, Clone)]
pub struct MutantsArgs {
    /// Seeds each trial may spend before the mutant counts as not detected.
    #[arg(long, default_value_t = 2000)]
    pub budget: u64,
    /// Independent trials (disjoint seed ranges) per mutant and engine; medians are over them.
    #[arg(long, default_value_t = 5)]
    pub trials: u64,
    /// Only these mutants (repeatable; default: all).
    #[arg(long = "mutant")]
    pub mutants: Vec<Mutant>,
    /// Skip the plain shuttle random baseline.
    #[arg(long)]
    pub no_baseline: bool,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub kernel: super::KernelArg,
}

#[derive(Debug, Serialize)]
struct Row {
    mutant: String,
    engine: String,
    detected: String,
    trials_detected: u64,
    trials: u64,
    median_schedules: Option<u64>,
    median_seconds: Option<f64>,
    example: Option<String>,
}

fn median<T: Copy + PartialOrd>(mut v: Vec<T>) -> Option<T> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    Some(v[v.len() / 2])
}

pub fn run(args: MutantsArgs) -> ExitCode {
    let profile = match args.kernel.build_profile("mimic mutants") {
        Ok(profile) => profile,
        Err(why) => {
            eprintln!("error: {why}");
            return ExitCode::from(2);
        }
    };
    let mutants: Vec<Mutant> = if args.mutants.is_empty() {
        Mutant::ALL.to_vec()
    } else {
        args.mutants.clone()
    };
    let mut engines: Vec<Engine> = SchedulerKind::ALL
        .iter()
        .map(|&k| Engine::Mimic(k))
        .collect();
    if !args.no_baseline {
        engines.push(Engine::ShuttleRandom);
    }
    let mut rows = Vec::new();
    let mut missed = false;
    for mutant in mutants {
        if plan(mutant).is_none() {
            rows.push(Row {
                mutant: mutant.id().into(),
                engine: "-".into(),
                detected: "see verifier".into(),
                trials_detected: 0,
                trials: 0,
                median_schedules: None,
                median_seconds: None,
                example: None,
            });
            continue;
        }
        for &engine in &engines {
            let hunts: Vec<Hunt> = (0..args.trials)
                .filter_map(|t| hunt(mutant, engine, t * args.budget, args.budget, profile))
                .collect();
            let found: Vec<&Hunt> = hunts.iter().filter(|h| h.found.is_some()).collect();
            let example = found.first().and_then(|h| h.found.clone()).map(|(s, seed)| {
                let scheduler = match engine {
                    Engine::Mimic(k) => k.name(),
                    Engine::ShuttleRandom => "random",
                };
                if matches!(engine, Engine::ShuttleRandom) {
                    format!("{s} seed {seed} (shuttle RandomScheduler)")
                } else {
                    format!("replay --scenario {s} --scheduler {scheduler} --mutant {} --seed {seed}", mutant.id())
                }
            });
            if found.is_empty() && matches!(engine, Engine::Mimic(_)) {
                missed = true;
            }
            rows.push(Row {
                mutant: mutant.id().into(),
                engine: engine.name().into(),
                detected: if found.is_empty() {
                    "no".into()
                } else {
                    "yes".into()
                },
                trials_detected: found.len() as u64,
                trials: hunts.len() as u64,
                // A trial that found nothing counts as "more than the budget".
                median_schedules: median(
                    hunts
                        .iter()
                        .map(|h| {
                            if h.found.is_some() {
                                h.schedules
                            } else {
                                u64::MAX
                            }
                        })
                        .collect(),
                )
                .filter(|&m| m != u64::MAX),
                median_seconds: median(hunts.iter().map(|h| h.seconds).collect()),
                example,
            });
        }
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        );
    } else {
        println!(
            "{:<26} {:<15} {:<18} {:>7} {:>10} {:>9}  example",
            "mutant", "engine", "detected", "trials", "schedules", "median s"
        );
        for r in &rows {
            println!(
                "{:<26} {:<15} {:<18} {:>7} {:>10} {:>9}  {}",
                r.mutant,
                r.engine,
                r.detected,
                format!("{}/{}", r.trials_detected, r.trials),
                r.median_schedules.map_or(
                    if r.trials > 0 {
                        format!(">{}", args.budget)
                    } else {
                        "-".into()
                    },
                    |m| m.to_string()
                ),
                r.median_seconds.map_or("-".into(), |s| format!("{s:.3}")),
                r.example.clone().unwrap_or_default()
            );
        }
    }
    if missed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
