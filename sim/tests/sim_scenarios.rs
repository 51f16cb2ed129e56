//! Every built-in scenario passes on the correct core, under every scheduler (swarm with its
//! faults included): no §8 invariant fails, audits are clean, histories are linearizable.

use mimic_core::mutants::Mutants;
use mimic_sim::sim::engine::{run_seeds, RunConfig, Verdict};
use mimic_sim::sim::scenario::{Scenario, BUILTINS};
use mimic_sim::sim::scheduler::SchedulerKind;

/// Seeds per scenario and scheduler: 13+ scenarios × (swarm 200 + random 50 + pct 50) keeps
/// the test at a few seconds in a debug build.
fn seeds(scheduler: SchedulerKind) -> std::ops::Range<u64> {
    match scheduler {
        SchedulerKind::Swarm => 0..200,
        _ => 0..50,
    }
}

#[test]
fn every_builtin_passes_a_few_hundred_seeds_on_the_correct_core() {
    for (name, _) in BUILTINS {
        let scenario = Scenario::load(name).expect("built-in parses");
        for scheduler in SchedulerKind::ALL {
            let config = RunConfig {
                scenario: scenario.clone(),
                mutants: Mutants::NONE,
                scheduler,
                keep_trace: false,
                profile: *mimic_core::profile::KernelProfile::newest(),
                lacks: mimic_core::history::Lacks::NONE,
            };
            let seeds: Vec<u64> = seeds(scheduler).collect();
            let mut cut = 0;
            run_seeds(&config, &seeds, &mut |o| match &o.verdict {
                Verdict::Pass => {}
                Verdict::Cut => cut += 1,
                Verdict::Fail { kind, detail } => panic!(
                    "{name} / {} seed {} fails on the correct core [{kind}]: {detail}",
                    scheduler.name(),
                    o.seed
                ),
            });
            assert_eq!(
                cut,
                0,
                "{name} / {}: runs cut by the step budget",
                scheduler.name()
            );
        }
    }
}

#[test]
fn builtins_round_trip_through_toml() {
    for scenario in Scenario::builtins() {
        let text = scenario.to_toml();
        let back = Scenario::parse(&text, "round trip").expect("serialised scenario parses");
        assert_eq!(back, scenario, "{} changes through TOML", scenario.name);
    }
}
