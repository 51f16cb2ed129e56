//! Prints the mutant × engine detection table (and, with `--clean`, the correct core's clean
//! runs): for each core mutant and each engine, whether the engine failed with the mutant's
//! finding kind, after how many executions, and the wall time.
//!
//! `cargo run -p mimic-models --release --bin mutant-report [-- --clean] [-- --only NAME]`
//!
//! Replay a failing shuttle schedule file (written under `target/shuttle-schedules/`):
//! `cargo run -p mimic-models --release --bin mutant-report -- --replay FILE --scenario NAME
//! [--mutant ID]`; it prints the failure the schedule reproduces.
//! Budgets: `LOOM_MAX_PREEMPTIONS`, `MIMIC_SHUTTLE_ITERATIONS` (correct core),
//! `MIMIC_MUTANT_ITERATIONS` (schedules allowed before a mutant counts as missed, default 10,000).
//! `MIMIC_KERNEL=RELEASE` (and `MIMIC_KERNEL_WITH=FIX,...`) runs every engine as that release
//! (`mimic history`): `--clean` then shows which scenarios the release fails.

use mimic_core::mutants::{Mutant, Mutants};
use mimic_models::engine::{explore, shuttle_iterations, Engine, Outcome};
use mimic_models::mutants::{CORE_MUTANTS, ELSEWHERE};
use mimic_models::scenario::{Scenario, SCENARIOS};

/// Schedules a shuttle engine gets to find a mutant before it counts as missed.
const MUTANT_ITERATIONS_DEFAULT: usize = 10_000;

fn cell(outcome: &Outcome, want: Option<&str>) -> String {
    let secs = outcome.wall.as_secs_f64();
    match (outcome.kind(), want) {
        (None, _) if outcome.failure.is_some() => format!(
            "ERROR @ {} ({secs:.2} s): {}",
            outcome.executions,
            outcome.failure.as_deref().unwrap_or("")
        ),
        (None, None) => format!("pass, {} execs, {secs:.2} s", outcome.executions),
        (Some(kind), Some(want)) if kind == want => {
            format!("**yes** ({kind}) @ {} , {secs:.2} s", outcome.executions)
        }
        (None, Some(_)) => format!("no ({} execs, {secs:.2} s)", outcome.executions),
        (Some(kind), None) => format!(
            "FAIL: {kind} @ {} ({secs:.2} s): {}",
            outcome.executions,
            outcome.failure.as_deref().unwrap_or("")
        ),
        (Some(kind), Some(_)) => format!(
            "WRONG: {kind} @ {} ({secs:.2} s): {}",
            outcome.executions,
            outcome.failure.as_deref().unwrap_or("")
        ),
    }
}

fn main() {
    // The driver's findings are the expected outcome here: keep the panic hook quiet.
    std::panic::set_hook(Box::new(|_| {}));
    let args: Vec<String> = std::env::args().collect();
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1).cloned());
    let mutant_iterations = std::env::var("MIMIC_MUTANT_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(MUTANT_ITERATIONS_DEFAULT);
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1).cloned())
    };
    if let Some(file) = value("--replay") {
        replay(&file, value("--scenario"), value("--mutant"));
        return;
    }
    if args.iter().any(|a| a == "--clean") {
        println!(
            "| scenario (correct core) | loom (bound {}) | shuttle random ({}) | shuttle PCT ({}, depth 3) |",
            mimic_models::engine::loom_preemptions(),
            shuttle_iterations(),
            shuttle_iterations()
        );
        println!("|---|---|---|---|");
        for scenario in SCENARIOS {
            if only.as_deref().is_some_and(|o| o != scenario.name) {
                continue;
            }
            let cells: Vec<String> = Engine::ALL
                .iter()
                .map(|&e| {
                    cell(
                        &explore(e, scenario, Mutants::NONE, shuttle_iterations()),
                        None,
                    )
                })
                .collect();
            println!("| {} | {} |", scenario.name, cells.join(" | "));
        }
        return;
    }
    println!(
        "| mutant | scenario | loom (bound {}) | shuttle random (≤ {mutant_iterations}) | shuttle PCT (≤ {mutant_iterations}, depth 3) |",
        mimic_models::engine::loom_preemptions()
    );
    println!("|---|---|---|---|---|");
    for case in CORE_MUTANTS {
        if only.as_deref().is_some_and(|o| o != case.mutant.id()) {
            continue;
        }
        let cells: Vec<String> = Engine::ALL
            .iter()
            .map(|&e| {
                let outcome = explore(
                    e,
                    case.scenario(),
                    Mutants::only(case.mutant),
                    mutant_iterations,
                );
                cell(&outcome, Some(case.finding()))
            })
            .collect();
        println!(
            "| {} | {} | {} |",
            case.mutant.id(),
            case.scenario,
            cells.join(" | ")
        );
    }
    for (mutant, where_) in ELSEWHERE {
        println!(
            "| {} | (verifier) | covered elsewhere: {where_} | | |",
            mutant.id()
        );
    }
}

/// Replays a shuttle schedule file against a scenario (and mutant) and prints what it finds.
fn replay(file: &str, scenario: Option<String>, mutant: Option<String>) {
    let Some(scenario) = scenario.as_deref().and_then(Scenario::named) else {
        eprintln!("--replay needs --scenario NAME (one of the SCENARIOS table)");
        std::process::exit(2);
    };
    let mutants = match mutant.map(|m| m.parse::<Mutant>()) {
        None => Mutants::NONE,
        Some(Ok(mutant)) => Mutants::only(mutant),
        Some(Err(e)) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let outcome = mimic_models::engine::replay_shuttle(scenario, mutants, file.as_ref());
    match outcome.failure {
        Some(failure) => println!("replayed {file}: {failure}"),
        None => println!("replayed {file}: no failure"),
    }
}
