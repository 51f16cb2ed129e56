//! Findings: the one vocabulary for "which rule a failing run broke", shared by every engine
//! (the simulator's oracles, the loom and shuttle models, the fuzz targets) and by the mutant
//! catalogue, which names the finding each mutant must cause ([`Mutant::expected_finding`]).
//! A mutant counts as detected only when a run fails with that finding.
//!
//! The alternative, each harness naming its own failures, let one rule carry two names (a
//! present key reported missing was `missing_key` in one engine and `lost_key` in another) and
//! the mutant-to-finding table be written twice.
//!
//! Main type: [`Finding`], whose [`Finding::name`] is the word traces, reports and replay lines
//! print. The world's own faults map onto it one to one ([`crate::fault::Fault::finding`]).

use crate::mutants::Mutant;
use std::fmt;

/// What a failing run broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Finding {
    // The world's faults (crate::fault::Fault).
    UseAfterFree,
    DoubleFree,
    DoublePut,
    Deadlock,
    LockOrder,
    OutOfBounds,
    Publication,
    Leak,
    Conservation,
    Liveness,
    Unmodelled,
    // The oracles'.
    /// A key that is always present was reported missing (semantics.md §7).
    LostKey,
    /// A history of an outer map has no sequential explanation (§7).
    Linearizability,
    /// A program's write landed in an inner map after user space drained it.
    LostUpdate,
    /// User space read a value the scenario pins as something else (a program wrote to the
    /// wrong element).
    WrongValue,
    /// A syscall or helper returned an errno the scenario does not allow.
    UnexpectedErrno,
    /// A program's run returned, or left in its packet, what the scenario's results check does
    /// not allow (a packet to a configured service dropped, a backend from no table of its
    /// service).
    WrongResult,
    /// A batch returned a key that was never stored, or an id twice.
    BadBatch,
    /// The executor refused a program it had been given as verified.
    Exec,
    /// The scenario itself is wrong: a set-up step failed, a name did not resolve.
    Setup,
}

impl Finding {
    pub const ALL: [Finding; 20] = [
        Finding::UseAfterFree,
        Finding::DoubleFree,
        Finding::DoublePut,
        Finding::Deadlock,
        Finding::LockOrder,
        Finding::OutOfBounds,
        Finding::Publication,
        Finding::Leak,
        Finding::Conservation,
        Finding::Liveness,
        Finding::Unmodelled,
        Finding::LostKey,
        Finding::Linearizability,
        Finding::LostUpdate,
        Finding::WrongValue,
        Finding::UnexpectedErrno,
        Finding::WrongResult,
        Finding::BadBatch,
        Finding::Exec,
        Finding::Setup,
    ];

    /// The word for it in traces, reports and tables.
    pub const fn name(self) -> &'static str {
        match self {
            Finding::UseAfterFree => "use_after_free",
            Finding::DoubleFree => "double_free",
            Finding::DoublePut => "double_put",
            Finding::Deadlock => "deadlock",
            Finding::LockOrder => "lock_order",
            Finding::OutOfBounds => "out_of_bounds",
            Finding::Publication => "publication",
            Finding::Leak => "leak",
            Finding::Conservation => "conservation",
            Finding::Liveness => "liveness",
            Finding::Unmodelled => "unmodelled",
            Finding::LostKey => "lost_key",
            Finding::Linearizability => "linearizability",
            Finding::LostUpdate => "lost_update",
            Finding::WrongValue => "wrong_value",
            Finding::UnexpectedErrno => "unexpected_errno",
            Finding::WrongResult => "wrong_result",
            Finding::BadBatch => "bad_batch",
            Finding::Exec => "exec",
            Finding::Setup => "setup",
        }
    }

    /// The finding a name stands for.
    pub fn from_name(name: &str) -> Option<Finding> {
        Finding::ALL.into_iter().find(|f| f.name() == name)
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Mutant {
    /// The finding a run must fail with for this mutant to count as detected (mutants.md:
    /// the harm the bug does), or `None` for a mutant whose harm is not a run's failure (a
    /// changed verifier state count, seen by the verifier's own tests).
    pub const fn expected_finding(self) -> Option<Finding> {
        Some(match self {
            Mutant::FreeInnerWithoutGp | Mutant::IgnoreSleepableGp | Mutant::PutWithoutDefer => {
                Finding::UseAfterFree
            }
            Mutant::LeakOnReplace => Finding::Leak,
            Mutant::ReplaceByReinsert | Mutant::NoNullsRestart | Mutant::FreelistAliasesNext => {
                Finding::LostKey
            }
            Mutant::MetaElemSizeZero => Finding::WrongValue,
            Mutant::InlineDynamicInner => Finding::OutOfBounds,
            // A smaller inner array stored under a fixed-size template: a program's inlined
            // lookup and user space's view of the outer map stop agreeing.
            Mutant::MetaIgnoresMaxEntries => Finding::Linearizability,
            Mutant::NoWaitAfterUpdate => Finding::LostUpdate,
            Mutant::LockSlotUnmasked => Finding::Deadlock,
            Mutant::PutUnderBucketLock => Finding::LockOrder,
            Mutant::InnerMapUidAlways => return None,
        })
    }
}

impl Mutant {
    /// Whether a run failing with `finding` detects this mutant: its expected finding, or
    /// another harm the catalogue names for it (a smaller array let in under a fixed-size
    /// template is read past its end by a lookup inlined against the template, mutants.md).
    pub fn detected_by(self, finding: Finding) -> bool {
        self.expected_finding() == Some(finding)
            || matches!(
                (self, finding),
                (Mutant::MetaIgnoresMaxEntries, Finding::OutOfBounds)
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_read_back() {
        for f in Finding::ALL {
            assert_eq!(Finding::from_name(f.name()), Some(f));
        }
        let names: std::collections::BTreeSet<_> = Finding::ALL.iter().map(|f| f.name()).collect();
        assert_eq!(names.len(), Finding::ALL.len());
    }
}
