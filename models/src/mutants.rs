//! Which scenario exposes which mutant (the finding it must fail with is the catalogue's,
//! `Mutant::expected_finding`). A mutant counts as detected only when an engine fails with
//! exactly that finding.

use crate::scenario::Scenario;
use mimic_core::mutants::Mutant;

/// A mutant of the maps/rcu/sys core and how the models catch it.
#[derive(Debug, Clone, Copy)]
pub struct MutantCase {
    pub mutant: Mutant,
    /// The scenario run with the mutant on.
    pub scenario: &'static str,
}

impl MutantCase {
    /// The finding the failure must have: the catalogue's, for every engine.
    pub fn finding(&self) -> &'static str {
        self.mutant
            .expected_finding()
            .unwrap_or_else(|| panic!("{} causes no run-time finding", self.mutant))
            .name()
    }

    pub fn scenario(&self) -> &'static Scenario {
        Scenario::named(self.scenario)
            .unwrap_or_else(|| panic!("mutant table names unknown scenario {}", self.scenario))
    }
}

/// The core mutants, each with the scenario that shows its harm.
pub const CORE_MUTANTS: [MutantCase; 10] = [
    MutantCase {
        mutant: Mutant::FreeInnerWithoutGp,
        scenario: "aom_reader_vs_replace",
    },
    MutantCase {
        mutant: Mutant::IgnoreSleepableGp,
        scenario: "sleepable_reader_vs_replace",
    },
    MutantCase {
        mutant: Mutant::PutWithoutDefer,
        scenario: "aom_reader_vs_delete",
    },
    MutantCase {
        mutant: Mutant::LeakOnReplace,
        scenario: "hom_prealloc_reader_vs_replace",
    },
    MutantCase {
        mutant: Mutant::ReplaceByReinsert,
        scenario: "hom_replace_vs_reader_behind_neighbour_always_finds_key",
    },
    MutantCase {
        mutant: Mutant::NoNullsRestart,
        scenario: "htab_walker_vs_reuse_into_other_bucket",
    },
    MutantCase {
        mutant: Mutant::FreelistAliasesNext,
        scenario: "htab_walker_vs_reuse_into_same_bucket",
    },
    MutantCase {
        mutant: Mutant::NoWaitAfterUpdate,
        scenario: "drain_old_inner_after_swap",
    },
    MutantCase {
        mutant: Mutant::LockSlotUnmasked,
        scenario: "nested_program_update_same_bucket_same_cpu",
    },
    MutantCase {
        mutant: Mutant::PutUnderBucketLock,
        scenario: "hom_prealloc_reader_vs_replace",
    },
];

/// Mutants of the verifier and fixups: detected by the verifier and executor suites and the
/// fuzz targets, not by interleavings (their harm needs no race).
pub const ELSEWHERE: [(Mutant, &str); 4] = [
    (
        Mutant::MetaElemSizeZero,
        "verify_exec fuzz / selftest inner_array_lookup (core/src/sys/scenarios.rs)",
    ),
    (
        Mutant::InlineDynamicInner,
        "verifier fixup tests / verify_exec fuzz",
    ),
    (
        Mutant::MetaIgnoresMaxEntries,
        "map_ops fuzz / sys scenarios diff_size",
    ),
    (Mutant::InnerMapUidAlways, "verifier processed-insns test"),
];
