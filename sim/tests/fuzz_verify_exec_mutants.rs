//! Directed cases of `verify_exec`: each map-in-map mutant of the verifier/fixup family is
//! caught by the target's property for its own reason, and the same case passes on the correct
//! core. These pin the oracle; the campaign's job is to find such cases unaided (BENCHMARKS.md).

mod fuzz_cases;

use fuzz_cases::{inner_read, panic_of};
use mimic_core::mutants::{Mutant, Mutants};
use mimic_sim::fuzz::verify_exec::{check_case, Case};

/// Runs the property; returns the panic message, if any.
fn outcome(case: &Case, mutants: Mutants) -> Option<String> {
    panic_of(|| check_case(case, mutants))
}

fn caught(case: &Case, mutant: Mutant, reason: &str) {
    if let Some(msg) = outcome(case, Mutants::NONE) {
        panic!("the correct core fails the case: {msg}");
    }
    let msg = outcome(case, Mutants::only(mutant))
        .unwrap_or_else(|| panic!("{mutant} is not caught by the case"));
    assert!(
        msg.contains(reason),
        "{mutant} caught for another reason: {msg}"
    );
}

#[test]
fn inline_dynamic_inner_reads_a_smaller_inner_array_out_of_bounds() {
    // BPF_F_INNER_MAP template of 8, inner array of 4, key 6.
    caught(
        &inner_read(true, 0, 6),
        Mutant::InlineDynamicInner,
        "out of bounds",
    );
}

#[test]
fn meta_ignores_max_entries_lets_a_smaller_inner_array_in_and_reads_past_it() {
    // Plain template of 8: the correct meta refuses the inner array of 4.
    caught(
        &inner_read(false, 0, 6),
        Mutant::MetaIgnoresMaxEntries,
        "out of bounds",
    );
}

#[test]
fn meta_elem_size_zero_reads_element_zero_for_every_key() {
    caught(
        &inner_read(false, 1, 3),
        Mutant::MetaElemSizeZero,
        "disagree",
    );
}

#[test]
fn meta_ignores_max_entries_is_a_state_embedding_escape_in_the_plain_run() {
    // The verifier trusts the meta's max_entries (8): key 6 is in bounds, so it elides the
    // null check and types the inner lookup's result map_value. The inner array of 4 the
    // mutant let in returns NULL: the oracle sees a NULL where the state says map_value.
    let msg = outcome(
        &inner_read(false, 0, 6),
        Mutants::only(Mutant::MetaIgnoresMaxEntries),
    )
    .expect("meta_ignores_max_entries is not caught");
    assert!(
        msg.contains("state-embedding escape") && msg.contains("R0 holds Null"),
        "not caught as an escape of R0: {msg}"
    );
    assert!(
        msg.contains("out of bounds"),
        "the fixed-up run's out-of-bounds read is reported too: {msg}"
    );
}

#[test]
fn fixup_only_mutants_are_not_state_embedding_escapes() {
    // inline_dynamic_inner and meta_elem_size_zero break the fixed-up code, not the
    // verifier's claims: the plain run stays inside the verified states.
    for (case, mutant) in [
        (inner_read(true, 0, 6), Mutant::InlineDynamicInner),
        (inner_read(false, 1, 3), Mutant::MetaElemSizeZero),
    ] {
        let msg = outcome(&case, Mutants::only(mutant)).unwrap_or_default();
        assert!(
            !msg.contains("state-embedding escape"),
            "{mutant}: the verifier's states are sound, yet: {msg}"
        );
    }
}
