//! The assertions the test modules share: a scenario passes on the correct core, a mutant makes
//! an engine fail with the mutant's own finding kind.

use crate::engine::{explore, shuttle_iterations, Engine};
use crate::mutants::CORE_MUTANTS;
use crate::scenario::Scenario;
use mimic_core::mutants::{Mutant, Mutants};

/// Schedules a shuttle engine may run before a mutant counts as missed; a mutant test fails
/// then. Detection usually comes within the first few hundred (see BENCHMARKS.md).
pub const MUTANT_ITERATIONS_DEFAULT: usize = 10_000;

pub fn mutant_iterations() -> usize {
    std::env::var("MIMIC_MUTANT_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(MUTANT_ITERATIONS_DEFAULT)
}

/// The correct core passes `scenario` under `engine`.
pub fn assert_clean(engine: Engine, scenario: &str) {
    let scenario =
        Scenario::named(scenario).unwrap_or_else(|| panic!("no scenario named {scenario}"));
    let outcome = explore(engine, scenario, Mutants::NONE, shuttle_iterations());
    if let Some(failure) = &outcome.failure {
        panic!(
            "{} fails {} on the correct core after {} executions: {failure}",
            engine.name(),
            scenario.name,
            outcome.executions
        );
    }
    assert!(outcome.executions > 0, "{}: nothing ran", scenario.name);
}

/// With `mutant` on, `engine` fails its scenario with the mutant's finding kind.
pub fn assert_detects(engine: Engine, mutant: Mutant) {
    let case = CORE_MUTANTS
        .iter()
        .find(|c| c.mutant == mutant)
        .unwrap_or_else(|| panic!("{mutant} has no scenario in CORE_MUTANTS"));
    let outcome = explore(
        engine,
        case.scenario(),
        Mutants::only(mutant),
        mutant_iterations(),
    );
    match (&outcome.failure, outcome.kind()) {
        (Some(_), Some(kind)) if kind == case.finding() => {}
        (Some(failure), _) => panic!(
            "{}: {mutant} made {} fail for another reason than {}: {failure}",
            engine.name(),
            case.scenario,
            case.finding()
        ),
        (None, _) => panic!(
            "{}: {mutant} not detected in {} after {} executions",
            engine.name(),
            case.scenario,
            outcome.executions
        ),
    }
}
