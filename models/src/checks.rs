//! The assertions the test modules share: a scenario passes on the correct core, a mutant makes
//! an engine fail with the mutant's own finding kind.

use crate::engine::{explore, kernel, shuttle_iterations, Engine};
use crate::mutants::CORE_MUTANTS;
use crate::scenario::Scenario;
use mimic_core::history::{Before, Feature};
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

/// The correct core passes `scenario` under `engine`. Under a release (`MIMIC_KERNEL`), a
/// failure whose finding is that of one of the release's old behaviours is what the release
/// did: it is reported on stderr with the fix that closed it, and the check passes.
pub fn assert_clean(engine: Engine, scenario: &str) {
    let scenario =
        Scenario::named(scenario).unwrap_or_else(|| panic!("no scenario named {scenario}"));
    let outcome = explore(engine, scenario, Mutants::NONE, shuttle_iterations());
    if let (Some(failure), Some(kind)) = (&outcome.failure, outcome.kind()) {
        if release_explains(engine, scenario.name, kind, failure) {
            return;
        }
    }
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

/// Under a release (`MIMIC_KERNEL`), whether a failure with finding `kind` is one of the
/// release's old behaviours; if so, says so on stderr with the fix that closed it.
pub fn release_explains(engine: Engine, scenario: &str, kind: &str, failure: &str) -> bool {
    let Ok(kernel) = kernel() else {
        return false;
    };
    let Some(release) = kernel.release else {
        return false;
    };
    let explained: Vec<&str> = kernel
        .in_force()
        .into_iter()
        .filter(|c| match c.before {
            Before::Lacked(feature) => lacked_shows(feature, kind, failure),
            _ => c
                .mutants()
                .iter()
                .any(|m| m.expected_finding().is_some_and(|f| f.name() == kind)),
        })
        .map(|c| c.fix)
        .collect();
    if explained.is_empty() {
        return false;
    }
    eprintln!(
        "{} on {release}: {scenario} fails with {kind}, as the release did before {}: {failure}",
        engine.name(),
        explained.join(" or ")
    );
    true
}

/// Whether a failure is what running without `feature` looks like in a scenario written for
/// today's kernel.
fn lacked_shows(feature: Feature, kind: &str, failure: &str) -> bool {
    match feature {
        Feature::BatchOnMapInMap => {
            kind == "unexpected_errno" && failure.contains("batch") && failure.contains("ENOTSUPP")
        }
        // The models' programs always check their lookups.
        Feature::ConstKeyNonNull => false,
    }
}

/// With `mutant` on, `engine` fails its scenario with the mutant's finding kind. Under a
/// release, an old behaviour of the release may be met first: that failure is said and
/// accepted.
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
        (Some(failure), Some(kind)) if release_explains(engine, case.scenario, kind, failure) => {}
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
