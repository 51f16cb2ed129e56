//! Which scenario exposes which mutant, and the finding it must fail with (mutants.md). A
//! mutant counts as detected only when an engine fails with exactly that finding kind.

use crate::scenario::Scenario;
use mimic_core::mutants::Mutant;

/// A mutant of the maps/rcu/sys core and how the models catch it.
#[derive(Debug, Clone, Copy)]
pub struct MutantCase {
    pub mutant: Mutant,
    /// The scenario run with the mutant on.
    pub scenario: &'static str,
    /// The finding kind the failure must have.
    pub kind: &'static str,
}

impl MutantCase {
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
        kind: "use_after_free",
    },
    MutantCase {
        mutant: Mutant::IgnoreSleepableGp,
        scenario: "sleepable_reader_vs_replace",
        kind: "use_after_free",
    },
    MutantCase {
        mutant: Mutant::PutWithoutDefer,
        scenario: "aom_reader_vs_delete",
        kind: "use_after_free",
    },
    MutantCase {
        mutant: Mutant::LeakOnReplace,
        scenario: "hom_prealloc_reader_vs_replace",
        kind: "leak",
    },
    MutantCase {
        mutant: Mutant::ReplaceByReinsert,
        scenario: "hom_replace_vs_reader_behind_neighbour_always_finds_key",
        kind: "missing_key",
    },
    MutantCase {
        mutant: Mutant::NoNullsRestart,
        scenario: "htab_walker_vs_reuse_into_other_bucket",
        kind: "missing_key",
    },
    MutantCase {
        mutant: Mutant::FreelistAliasesNext,
        scenario: "htab_walker_vs_reuse_into_same_bucket",
        kind: "missing_key",
    },
    MutantCase {
        mutant: Mutant::NoWaitAfterUpdate,
        scenario: "drain_old_inner_after_swap",
        kind: "lost_update",
    },
    MutantCase {
        mutant: Mutant::LockSlotUnmasked,
        scenario: "nested_program_update_same_bucket_same_cpu",
        kind: "deadlock",
    },
    MutantCase {
        mutant: Mutant::PutUnderBucketLock,
        scenario: "hom_prealloc_reader_vs_replace",
        kind: "lock_order",
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
