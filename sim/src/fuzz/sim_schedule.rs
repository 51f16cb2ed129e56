//! `sim_schedule`: the fuzz bytes drive the simulator's scheduling and fault choices (the
//! simulator's bytes scheduler, `mimic_sim::sim::scheduler::Bytes`) over its built-in scenarios.
//!
//! The first byte picks the scenario (modulo the number of built-ins, so every byte value is a
//! valid choice); the rest feed the scheduler. The oracles are the simulator's own (use after
//! free, leaks, lost keys, ...): a `Fail` verdict is a crash carrying the simulator's kind and
//! detail. A `Cut` (the step budget ran out) is not a failure, as in a campaign.
//!
//! `MIMIC_MUTANTS=id,id` runs the scenarios with those mutants switched on.

use crate::fuzz::mutants_from_env;
use crate::sim::engine::{run_bytes, RunConfig, Verdict};
use crate::sim::scenario::Scenario;
use crate::sim::scheduler::SchedulerKind;
use mimic_core::mutants::Mutants;
use std::sync::OnceLock;

/// The built-in scenarios, parsed once (parsing per input would dominate the run time).
fn scenarios() -> &'static [Scenario] {
    static SCENARIOS: OnceLock<Vec<Scenario>> = OnceLock::new();
    SCENARIOS.get_or_init(Scenario::builtins)
}

/// The scenario the first byte picks, and its name (for messages and the replay command).
pub fn pick(data: &[u8]) -> Option<(&'static Scenario, &[u8])> {
    let (&first, rest) = data.split_first()?;
    let all = scenarios();
    if all.is_empty() {
        return None;
    }
    Some((&all[first as usize % all.len()], rest))
}

/// The run configuration of one input (`keep_trace` for the replay command).
pub fn config(scenario: &Scenario, mutants: Mutants, keep_trace: bool) -> RunConfig {
    RunConfig {
        scenario: scenario.clone(),
        mutants,
        // Ignored by `run_bytes` (the bytes are the scheduler); set for the options line.
        scheduler: SchedulerKind::Random,
        keep_trace,
        profile: *mimic_core::profile::KernelProfile::newest(),
        lacks: mimic_core::history::Lacks::NONE,
    }
}

/// One input: panics with the simulator's message on a failing verdict.
pub fn check(data: &[u8]) {
    check_with(data, mutants_from_env());
}

/// [`check`] with the mutants given (the replay command passes its own).
pub fn check_with(data: &[u8], mutants: Mutants) {
    let Some((scenario, bytes)) = pick(data) else {
        return;
    };
    let outcome = run_bytes(&config(scenario, mutants, false), bytes);
    if let Verdict::Fail { kind, detail } = &outcome.verdict {
        panic!(
            "sim_schedule: scenario {} failed: {kind}: {detail} (options {}, {} steps)",
            scenario.name, outcome.options, outcome.steps
        );
    }
}
