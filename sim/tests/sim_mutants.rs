//! Each core mutant is detected by a bounded seed search, failing for the reason it introduces
//! (the hunt counts only its expected invariant), including the fixup mutants the verifier's
//! `prog_load` applies; the verifier's state-count mutant says so.

use mimic_core::mutants::{Mutant, Mutants};
use mimic_sim::sim::engine::{run_one, RunConfig, Verdict};
use mimic_sim::sim::hunt::{hunt, plan, Engine};
use mimic_sim::sim::scenario::Scenario;
use mimic_sim::sim::scheduler::SchedulerKind;

/// Seeds a hunt may spend: the slowest mutant (no_nulls_restart under swarm) needs a few
/// hundred; the budget leaves a wide margin.
const BUDGET: u64 = 1500;

#[test]
fn every_core_mutant_is_detected_for_its_reason_within_the_budget() {
    for mutant in Mutant::ALL {
        let Some(plan) = plan(mutant) else { continue };
        // PCT is the fastest on the freelist/nulls races, swarm elsewhere.
        let engines = [
            Engine::Mimic(SchedulerKind::Swarm),
            Engine::Mimic(SchedulerKind::Pct),
        ];
        let (scheduler, hunt) = engines
            .iter()
            .filter_map(|&e| {
                let Engine::Mimic(kind) = e else { return None };
                let hunt = hunt(
                    mutant,
                    e,
                    0,
                    BUDGET,
                    *mimic_core::profile::KernelProfile::newest(),
                )?;
                Some((kind, hunt))
            })
            .find(|(_, h)| h.found.is_some())
            .unwrap_or_else(|| panic!("{mutant}: not detected in {BUDGET} seeds by swarm or pct"));
        // The hunt counts only the expected finding; the seed it names replays to it.
        let (scenario, seed) = hunt.found.clone().expect("found");
        let config = RunConfig {
            scenario: Scenario::load(&scenario).expect("built-in"),
            mutants: Mutants::only(mutant),
            scheduler,
            keep_trace: false,
            profile: *mimic_core::profile::KernelProfile::newest(),
            lacks: mimic_core::history::Lacks::NONE,
        };
        let replayed = run_one(&config, seed).verdict;
        assert_eq!(
            replayed.kind(),
            Some(plan.finding.name()),
            "{mutant}: {scenario} seed {seed} replays as {replayed:?}"
        );
        eprintln!(
            "{mutant}: {} after {} schedules ({:?})",
            hunt.engine, hunt.schedules, hunt.found
        );
    }
}

/// Seeds for the fixup mutants: each fails on most seeds of its scenario (the harm needs one
/// program run, no particular interleaving), so a small budget is a wide margin.
const FIXUP_BUDGET: u64 = 64;

/// Hunts `mutant` under swarm and returns the failure kind of the first detection.
fn detected_kind(mutant: Mutant) -> (String, u64) {
    let hunt = hunt(
        mutant,
        Engine::Mimic(SchedulerKind::Swarm),
        0,
        FIXUP_BUDGET,
        *mimic_core::profile::KernelProfile::newest(),
    )
    .unwrap_or_else(|| panic!("{mutant}: no hunt plan"));
    let (scenario, seed) = hunt
        .found
        .unwrap_or_else(|| panic!("{mutant}: not detected in {FIXUP_BUDGET} seeds"));
    let config = RunConfig {
        scenario: Scenario::load(&scenario).expect("built-in"),
        mutants: Mutants::only(mutant),
        scheduler: SchedulerKind::Swarm,
        keep_trace: false,
        profile: *mimic_core::profile::KernelProfile::newest(),
        lacks: mimic_core::history::Lacks::NONE,
    };
    let outcome = run_one(&config, seed);
    match outcome.verdict {
        Verdict::Fail { kind, .. } => (kind, hunt.schedules),
        other => panic!("{mutant}: {scenario} seed {seed} replays as {other:?}"),
    }
}

#[test]
fn inline_dynamic_inner_reads_past_a_smaller_maglev_table() {
    let (kind, schedules) = detected_kind(Mutant::InlineDynamicInner);
    assert_eq!(
        kind, "out_of_bounds",
        "a lookup inlined against the 8-slot template must read past a 3- or 5-slot table"
    );
    assert!(schedules <= FIXUP_BUDGET);
}

#[test]
fn meta_elem_size_zero_bumps_the_wrong_inner_element() {
    let (kind, schedules) = detected_kind(Mutant::MetaElemSizeZero);
    assert_eq!(
        kind, "wrong_value",
        "inner[3] scaled by elem_size 0 is inner[0], which user space must see changed"
    );
    assert!(schedules <= FIXUP_BUDGET);
}

#[test]
fn fixup_scenarios_pass_on_the_correct_core() {
    for name in ["maglev", "inner_array_lookup"] {
        let config = RunConfig {
            scenario: Scenario::load(name).expect("built-in"),
            mutants: Mutants::NONE,
            scheduler: SchedulerKind::Swarm,
            keep_trace: false,
            profile: *mimic_core::profile::KernelProfile::newest(),
            lacks: mimic_core::history::Lacks::NONE,
        };
        for seed in 0..FIXUP_BUDGET {
            let outcome = run_one(&config, seed);
            assert_eq!(
                outcome.verdict,
                Verdict::Pass,
                "{name} seed {seed} fails without a mutant"
            );
        }
    }
}

#[test]
fn the_state_count_mutant_is_left_to_the_verifier() {
    assert!(
        plan(Mutant::InnerMapUidAlways).is_none(),
        "inner_map_uid_always changes the verifier's state count, not a run"
    );
}
