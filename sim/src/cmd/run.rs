//! `mimic run`: a campaign over seeds, scenarios and schedulers, with a progress bar, a
//! summary and one replay command per failure. Exit code 1 on any failure.

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mimic_core::mutants::{Mutant, Mutants};
use mimic_sim::sim::campaign::{SeedRange, Shard, Summary};
use mimic_sim::sim::engine::{run_seeds, Outcome, RunConfig};
use mimic_sim::sim::footprint::TablesPeak;
use mimic_sim::sim::scenario::{Scenario, BUILTINS};
use mimic_sim::sim::scheduler::SchedulerKind;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Instant;

/// Seeds per scenario and scheduler of the default campaign: 13 built-ins × 3 schedulers ×
/// this many seeds finish in well under a minute on one core (see BENCHMARKS.md).
pub const DEFAULT_SEEDS: u64 = 400;

#[derive(Args, Debug, Clone, Default)]
pub struct RunArgs {
    /// A built-in scenario name or a TOML file (repeatable; default: every built-in).
    #[arg(long)]
    pub scenario: Vec<String>,
    /// Seeds to run: A..B (half-open) or a single seed.
    #[arg(long)]
    pub seeds: Option<SeedRange>,
    /// Switch on a mutant of the core (repeatable).
    #[arg(long = "mutant")]
    pub mutants: Vec<Mutant>,
    /// Scheduler (default: all three).
    #[arg(long, value_enum)]
    pub scheduler: Option<SchedulerKind>,
    /// Run only the seeds `s` with `s % N == I`.
    #[arg(long)]
    pub shard: Option<Shard>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Run each seed twice and fail on any difference of verdict, trace hash or schedule.
    #[arg(long)]
    pub check_determinism: bool,
    /// Also run the same scenarios and seeds under plain shuttle random (shuttle's
    /// `RandomScheduler`, what `shuttle::check_random` uses) and print a throughput table.
    #[arg(long)]
    pub baseline: bool,
    /// Report memory: with `--scenario`, each outer map's tables at their largest over the
    /// campaign against fixed-size tables; alone, a synthetic 64-service Maglev balancer's
    /// bytes with dynamic versus fixed-size inner arrays.
    #[arg(long)]
    pub footprint: bool,
    #[command(flatten)]
    pub kernel: super::KernelArg,
}

pub fn mutant_flags(mutants: Mutants) -> String {
    mutants.iter().map(|m| format!(" --mutant {m}")).collect()
}

/// The command that replays one seed; `kernel` is the `--kernel`/`--with` flags it ran under
/// (empty for the default kernel).
pub fn replay_command(
    scenario: &str,
    scheduler: SchedulerKind,
    mutants: Mutants,
    kernel: &str,
    seed: u64,
) -> String {
    let flags = format!("{}{kernel}", mutant_flags(mutants));
    mimic_sim::sim::campaign::replay_line(scenario, scheduler, &flags, seed)
}

pub fn run(args: RunArgs) -> ExitCode {
    if args.footprint && args.scenario.is_empty() {
        return match mimic_sim::sim::footprint::measure() {
            Ok(f) => {
                if args.json {
                    println!("{}", serde_json::to_string_pretty(&f).unwrap_or_default());
                } else {
                    println!(
                        "maglev footprint, {} services: fixed-size inner arrays {} bytes, dynamic (BPF_F_INNER_MAP) {} bytes ({:.1}x smaller)",
                        f.services,
                        f.fixed_bytes,
                        f.dynamic_bytes,
                        f.fixed_bytes as f64 / f.dynamic_bytes.max(1) as f64
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: footprint: {e}");
                ExitCode::from(2)
            }
        };
    }
    let followed = match args.kernel.follow("mimic run", &args.mutants) {
        Ok(followed) => followed,
        Err(why) => {
            eprintln!("error: {why}");
            return ExitCode::from(2);
        }
    };
    let profile = followed.profile;
    let names: Vec<String> = if args.scenario.is_empty() {
        BUILTINS.iter().map(|(n, _)| n.to_string()).collect()
    } else {
        args.scenario.clone()
    };
    let mut scenarios = Vec::new();
    for name in &names {
        match Scenario::load(name) {
            Ok(s) => scenarios.push((name.clone(), s)),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let range = args.seeds.unwrap_or(SeedRange {
        start: 0,
        end: DEFAULT_SEEDS,
    });
    let seeds = range.seeds(args.shard);
    let schedulers: Vec<SchedulerKind> = match args.scheduler {
        Some(s) => vec![s],
        None => SchedulerKind::ALL.to_vec(),
    };
    let named: Mutants = args.mutants.iter().copied().collect();
    let mutants = followed.mutants;
    let total = (seeds.len() * scenarios.len() * schedulers.len()) as u64
        * if args.check_determinism { 2 } else { 1 };
    let bar = ProgressBar::new(total);
    if args.json || !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let mut summary = Summary::default();
    let mut nondeterministic = Vec::new();
    let mut per_engine: Vec<(String, Summary)> = Vec::new();
    let mut tables: Vec<(String, TablesPeak)> = Vec::new();
    for (name, scenario) in &scenarios {
        for &scheduler in &schedulers {
            bar.set_message(format!("{name} / {}", scheduler.name()));
            let config = RunConfig {
                scenario: scenario.clone(),
                mutants,
                scheduler,
                keep_trace: false,
                profile,
                lacks: followed.semantics.lacks,
            };
            let mut first: Vec<Outcome> = Vec::new();
            let mut this = Summary::default();
            let t0 = Instant::now();
            run_seeds(&config, &seeds, &mut |outcome| {
                bar.inc(1);
                summary.add(
                    name,
                    |seed| replay_command(name, scheduler, named, &followed.flags, seed),
                    &outcome,
                );
                this.add(name, |_| String::new(), &outcome);
                if args.footprint {
                    merge_tables(&mut tables, &scenario.name, &outcome.tables);
                }
                if args.check_determinism {
                    first.push(outcome);
                }
            });
            this.finish(t0.elapsed().as_secs_f64());
            add_engine(&mut per_engine, scheduler.name(), &this);
            if args.baseline && scheduler == schedulers[schedulers.len() - 1] {
                let mut base = Summary::default();
                let t0 = Instant::now();
                mimic_sim::sim::engine::run_seeds_shuttle_random(&config, &seeds, &mut |outcome| {
                    base.add(name, |_| String::new(), &outcome);
                });
                base.finish(t0.elapsed().as_secs_f64());
                add_engine(&mut per_engine, "shuttle-random", &base);
            }
            if args.check_determinism {
                let mut i = 0;
                run_seeds(&config, &seeds, &mut |again| {
                    bar.inc(1);
                    let before = &first[i];
                    i += 1;
                    if before.verdict != again.verdict
                        || before.trace_hash != again.trace_hash
                        || before.schedule_hash != again.schedule_hash
                        || before.steps != again.steps
                    {
                        nondeterministic.push(format!(
                            "{name} / {} seed {}: first run {:?} trace {:016x} schedule {:016x} steps {}, second {:?} trace {:016x} schedule {:016x} steps {}",
                            scheduler.name(), again.seed, before.verdict.kind(), before.trace_hash, before.schedule_hash, before.steps,
                            again.verdict.kind(), again.trace_hash, again.schedule_hash, again.steps
                        ));
                    }
                });
            }
        }
    }
    bar.finish_and_clear();
    summary.finish(started.elapsed().as_secs_f64());
    let failed = summary.failed > 0 || !nondeterministic.is_empty();
    if args.json {
        let footprint: Vec<_> = tables
            .iter()
            .map(|(scenario, t)| serde_json::json!({"scenario": scenario, "tables": t}))
            .collect();
        let engines: Vec<_> = per_engine.iter().map(|(n, s)| serde_json::json!({"engine": n, "seeds": s.seeds_run, "seconds": s.elapsed_s, "schedules_per_s": rate(s.seeds_run, s.elapsed_s), "steps_per_s": rate(s.steps, s.elapsed_s), "failed": s.failed})).collect();
        let json = serde_json::json!({
            "summary": summary,
            "determinism_checked": args.check_determinism,
            "nondeterministic": nondeterministic,
            "engines": engines,
            "footprint": footprint,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&json).unwrap_or_default()
        );
    } else {
        println!(
            "mimic run: {} scenario(s) × {} scheduler(s) × {} seed(s) [{}..{}{}], mutants: {}",
            scenarios.len(),
            schedulers.len(),
            seeds.len(),
            range.start,
            range.end,
            args.shard.map_or(String::new(), |s| format!(
                ", shard {}/{}",
                s.index, s.count
            )),
            mutants
        );
        print!("{summary}");
        if args.footprint {
            print_tables(&tables);
        }
        if args.check_determinism {
            if nondeterministic.is_empty() {
                println!("determinism: every seed ran twice with identical verdict, trace hash and schedule");
            } else {
                for line in &nondeterministic {
                    println!("NONDETERMINISTIC {line}");
                }
            }
        }
    }
    if !args.json && (args.baseline || schedulers.len() > 1) {
        println!(
            "{:<16} {:>8} {:>9} {:>12} {:>12} {:>7}",
            "engine", "seeds", "seconds", "schedules/s", "steps/s", "failed"
        );
        for (n, s) in &per_engine {
            println!(
                "{:<16} {:>8} {:>9.2} {:>12.0} {:>12.0} {:>7}",
                n,
                s.seeds_run,
                s.elapsed_s,
                rate(s.seeds_run, s.elapsed_s),
                rate(s.steps, s.elapsed_s),
                s.failed
            );
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Folds one run's footprint report into the campaign's: each outer map at its largest.
fn merge_tables(all: &mut Vec<(String, TablesPeak)>, scenario: &str, run: &[TablesPeak]) {
    for t in run {
        match all
            .iter_mut()
            .find(|(s, held)| s == scenario && held.outer == t.outer)
        {
            Some((_, held)) => held.merge(t),
            None => all.push((scenario.to_string(), t.clone())),
        }
    }
}

fn print_tables(tables: &[(String, TablesPeak)]) {
    println!("footprint: bytes of each outer map and the tables it holds, at their largest at once and at the end of a run (most over the seeds), against as many tables of the largest size it held (fixed-size tables)");
    println!(
        "{:<14} {:<16} {:<16} {:>6} {:>7} {:>10} {:>10} {:>10} {:>10} {:>5}",
        "scenario",
        "outer",
        "template",
        "tables",
        "largest",
        "peak",
        "fixed",
        "end",
        "fixed",
        "ratio"
    );
    for (scenario, t) in tables {
        let template = if t.dynamic {
            "BPF_F_INNER_MAP"
        } else {
            "fixed size"
        };
        println!(
            "{:<14} {:<16} {:<16} {:>6} {:>7} {:>10} {:>10} {:>10} {:>10} {:>5.2}",
            scenario,
            t.outer,
            template,
            t.most_tables,
            t.largest_entries,
            t.peak_bytes,
            t.fixed_bytes,
            t.end_bytes,
            t.end_fixed_bytes,
            t.end_fixed_bytes as f64 / t.end_bytes.max(1) as f64
        );
    }
}

fn rate(n: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        n as f64 / seconds
    } else {
        0.0
    }
}

/// Accumulates a scenario's summary into its engine's row (elapsed times add up).
fn add_engine(rows: &mut Vec<(String, Summary)>, engine: &str, s: &Summary) {
    let elapsed = s.elapsed_s;
    match rows.iter_mut().find(|(n, _)| n == engine) {
        Some((_, row)) => {
            row.merge(s);
            row.elapsed_s += elapsed;
        }
        None => rows.push((engine.to_string(), s.clone())),
    }
}
