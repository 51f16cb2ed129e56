//! Mutant switches: historical kernel bugs the core can put back, one named switch each
//! (`../shared/docs/mutants.md`). A [`Mutants`] set is passed when a world (or a map) is created,
//! never read from a global, so two worlds in one process can differ. With a switch off, the code
//! path is exactly the correct one.

use std::fmt;
use std::str::FromStr;

/// One historical bug. The names are the catalogue's identifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mutant {
    FreeInnerWithoutGp,
    IgnoreSleepableGp,
    PutWithoutDefer,
    LeakOnReplace,
    ReplaceByReinsert,
    NoNullsRestart,
    FreelistAliasesNext,
    MetaElemSizeZero,
    InlineDynamicInner,
    MetaIgnoresMaxEntries,
    NoWaitAfterUpdate,
    LockSlotUnmasked,
    PutUnderBucketLock,
    InnerMapUidAlways,
}

impl Mutant {
    pub const ALL: [Mutant; 14] = [
        Mutant::FreeInnerWithoutGp,
        Mutant::IgnoreSleepableGp,
        Mutant::PutWithoutDefer,
        Mutant::LeakOnReplace,
        Mutant::ReplaceByReinsert,
        Mutant::NoNullsRestart,
        Mutant::FreelistAliasesNext,
        Mutant::MetaElemSizeZero,
        Mutant::InlineDynamicInner,
        Mutant::MetaIgnoresMaxEntries,
        Mutant::NoWaitAfterUpdate,
        Mutant::LockSlotUnmasked,
        Mutant::PutUnderBucketLock,
        Mutant::InnerMapUidAlways,
    ];

    /// The catalogue identifier (`free_inner_without_gp`, ...).
    pub const fn id(self) -> &'static str {
        match self {
            Mutant::FreeInnerWithoutGp => "free_inner_without_gp",
            Mutant::IgnoreSleepableGp => "ignore_sleepable_gp",
            Mutant::PutWithoutDefer => "put_without_defer",
            Mutant::LeakOnReplace => "leak_on_replace",
            Mutant::ReplaceByReinsert => "replace_by_reinsert",
            Mutant::NoNullsRestart => "no_nulls_restart",
            Mutant::FreelistAliasesNext => "freelist_aliases_next",
            Mutant::MetaElemSizeZero => "meta_elem_size_zero",
            Mutant::InlineDynamicInner => "inline_dynamic_inner",
            Mutant::MetaIgnoresMaxEntries => "meta_ignores_max_entries",
            Mutant::NoWaitAfterUpdate => "no_wait_after_update",
            Mutant::LockSlotUnmasked => "lock_slot_unmasked",
            Mutant::PutUnderBucketLock => "put_under_bucket_lock",
            Mutant::InnerMapUidAlways => "inner_map_uid_always",
        }
    }

    const fn bit(self) -> u32 {
        1 << self as u32
    }
}

impl fmt::Display for Mutant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// The error for an unknown mutant name; lists the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown mutant `{0}` (known: {known})", known = Mutant::ALL.map(Mutant::id).join(", "))]
pub struct UnknownMutant(pub String);

impl FromStr for Mutant {
    type Err = UnknownMutant;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mutant::ALL
            .into_iter()
            .find(|m| m.id() == s)
            .ok_or_else(|| UnknownMutant(s.to_string()))
    }
}

/// A set of switched-on mutants. `Mutants::NONE` is the correct core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Mutants(u32);

impl Mutants {
    pub const NONE: Mutants = Mutants(0);

    pub fn only(mutant: Mutant) -> Mutants {
        Mutants(mutant.bit())
    }
    pub fn with(self, mutant: Mutant) -> Mutants {
        Mutants(self.0 | mutant.bit())
    }
    /// Is the mutant switched on? Call sites read `if mutants.on(Mutant::X) { old, wrong path }`.
    pub fn on(self, mutant: Mutant) -> bool {
        self.0 & mutant.bit() != 0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn iter(self) -> impl Iterator<Item = Mutant> {
        Mutant::ALL.into_iter().filter(move |m| self.on(*m))
    }
}

impl FromIterator<Mutant> for Mutants {
    fn from_iter<I: IntoIterator<Item = Mutant>>(iter: I) -> Self {
        iter.into_iter().fold(Mutants::NONE, Mutants::with)
    }
}

impl fmt::Display for Mutants {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        let ids: Vec<&str> = self.iter().map(Mutant::id).collect();
        f.write_str(&ids.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_back_and_sets_hold_what_was_put_in() {
        for mutant in Mutant::ALL {
            assert_eq!(mutant.id().parse::<Mutant>(), Ok(mutant));
            let set = Mutants::only(mutant);
            assert!(set.on(mutant));
            assert_eq!(set.iter().count(), 1);
        }
        assert!(Mutant::ALL.iter().all(|m| !Mutants::NONE.on(*m)));
        let err = "no_such_bug".parse::<Mutant>().unwrap_err().to_string();
        assert!(err.contains("no_such_bug") && err.contains("leak_on_replace"), "{err}");
    }
}
