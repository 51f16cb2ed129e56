//! Replay reproduces a mutant's failure exactly; shrink returns a smaller scenario that still
//! fails for the same reason, and that scenario replays from its TOML.

use mimic_core::mutants::{Mutant, Mutants};
use mimic_sim::sim::engine::{run_one, RunConfig, Verdict};
use mimic_sim::sim::hunt::{hunt, Engine};
use mimic_sim::sim::scenario::Scenario;
use mimic_sim::sim::scheduler::SchedulerKind;
use mimic_sim::sim::shrink::{shrink, size};

fn failing(mutant: Mutant) -> (RunConfig, u64, String) {
    let found = hunt(
        mutant,
        Engine::Mimic(SchedulerKind::Swarm),
        0,
        500,
        *mimic_core::profile::KernelProfile::newest(),
    )
    .expect("planned mutant");
    let (scenario, seed) = found.found.expect("detected");
    let config = RunConfig {
        scenario: Scenario::load(&scenario).unwrap(),
        mutants: Mutants::only(mutant),
        scheduler: SchedulerKind::Swarm,
        keep_trace: true,
        profile: *mimic_core::profile::KernelProfile::newest(),
        lacks: mimic_core::history::Lacks::NONE,
    };
    let kind = run_one(&config, seed)
        .verdict
        .kind()
        .expect("fails")
        .to_string();
    (config, seed, kind)
}

#[test]
fn replay_reproduces_a_use_after_free_with_the_same_trace() {
    let (config, seed, kind) = failing(Mutant::FreeInnerWithoutGp);
    assert_eq!(kind, "use_after_free");
    let (a, b) = (run_one(&config, seed), run_one(&config, seed));
    assert_eq!(a.verdict, b.verdict);
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a.trace, b.trace);
    let correct = RunConfig {
        mutants: Mutants::NONE,
        ..config.clone()
    };
    assert_eq!(
        run_one(&correct, seed).verdict,
        Verdict::Pass,
        "the same seed passes on the correct core"
    );
}

#[test]
fn shrink_returns_a_smaller_scenario_failing_for_the_same_reason() {
    let (config, seed, kind) = failing(Mutant::LeakOnReplace);
    let shrunk = shrink(&config, seed, &kind);
    assert!(
        shrunk.ops_after < shrunk.ops_before,
        "no reduction: {} -> {}",
        shrunk.ops_before,
        shrunk.ops_after
    );
    assert_eq!(size(&shrunk.scenario), shrunk.ops_after);
    // The shrunk scenario goes through TOML and still fails the same way at the named seed.
    let reparsed =
        Scenario::parse(&shrunk.scenario.to_toml(), "shrunk").expect("shrunk scenario parses");
    let again = run_one(
        &RunConfig {
            scenario: reparsed,
            ..config
        },
        shrunk.seed,
    );
    assert_eq!(again.verdict.kind(), Some(kind.as_str()));
}
