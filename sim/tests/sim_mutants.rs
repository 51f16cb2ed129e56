//! Each core mutant is detected by a bounded seed search, failing for the reason it introduces
//! (the hunt counts only its expected invariant), while verifier-only mutants say so.

use mimic_core::mutants::Mutant;
use mimic_sim::sim::hunt::{hunt, plan, Engine};
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
        let found = engines
            .iter()
            .filter_map(|&e| hunt(mutant, e, 0, BUDGET))
            .find(|h| h.found.is_some());
        let hunt = found
            .unwrap_or_else(|| panic!("{mutant}: not detected in {BUDGET} seeds by swarm or pct"));
        assert!(!plan.kinds.is_empty());
        eprintln!(
            "{mutant}: {} after {} schedules ({:?})",
            hunt.engine, hunt.schedules, hunt.found
        );
    }
}

#[test]
fn verifier_mutants_are_left_to_the_verifier_and_fuzzers() {
    for mutant in [
        Mutant::MetaElemSizeZero,
        Mutant::InlineDynamicInner,
        Mutant::InnerMapUidAlways,
    ] {
        assert!(
            plan(mutant).is_none(),
            "{mutant} needs the verifier's fixups"
        );
    }
}
