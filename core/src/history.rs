//! Kernel history: how the map-in-map, hash-map and related verifier code behaved in each
//! upstream release, as data. Most entries of the mutant catalogue are not inventions but how
//! mainline behaved until a given commit; [`CHANGES`] names each such commit, the first
//! mainline release that has it, the commit that brought the bug in where that is known, and
//! the old behaviour as the core's switches put it back ([`Mutant`]s in force, or a
//! [`Feature`] the release lacks). A [`Semantics`] is what one release (plus any fixes a stable
//! branch backported, named with `--with`) puts in force: the world, the verifier and the
//! fixups read it through the mutants and the [`Lacks`] set they are given.
//!
//! The alternative, one switch per mutant picked by hand, answers "is this bug found?" but not
//! the question a team running 5.15 and 6.6 brings: "is our control plane safe on each?".
//!
//! A profile is the release **as released**: stable branches backport fixes (the table lists
//! the backports found), and a distribution kernel is a release plus some of them; `--with`
//! adds them by name. Only semantics are versioned: the verifier's messages follow the
//! mainline build profile ([`crate::profile`]) whatever the release.
//!
//! Invariants: [`RELEASES`] is sorted; every catalogue mutant is the old behaviour of exactly
//! one change; the doc page `docs/kernel-history.md` is [`markdown`]'s output (a test checks).

use crate::mutants::{Mutant, Mutants};
use std::fmt;
use std::str::FromStr;

/// A mainline release, `major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Release {
    pub major: u8,
    pub minor: u8,
}

const fn r(major: u8, minor: u8) -> Release {
    Release { major, minor }
}

/// The releases mimic has profiles for: the long-term ones a load balancer runs, and the
/// newest.
pub const RELEASES: [Release; 6] = [r(5, 10), r(5, 15), r(6, 1), r(6, 6), r(6, 12), r(6, 18)];

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl FromStr for Release {
    type Err = String;

    /// One of [`RELEASES`], as `6.1`.
    fn from_str(text: &str) -> Result<Release, String> {
        RELEASES
            .into_iter()
            .find(|r| r.to_string() == text)
            .ok_or_else(|| {
                let known: Vec<String> = RELEASES.iter().map(Release::to_string).collect();
                format!("no release profile {text:?} (known: {})", known.join(", "))
            })
    }
}

/// A capability a release may lack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Feature {
    /// `BPF_MAP_*_BATCH` on array-of-maps and hash-of-maps; without it `-ENOTSUPP`.
    BatchOnMapInMap,
    /// A lookup in a plain or per-CPU array with a constant key below `max_entries` returns
    /// a non-null value pointer; without it every lookup result must be null-checked.
    ConstKeyNonNull,
}

impl Feature {
    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// The features a world or a verifier runs without. `Lacks::NONE`: today's kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Lacks(u8);

impl Lacks {
    pub const NONE: Lacks = Lacks(0);

    pub fn with(self, feature: Feature) -> Lacks {
        Lacks(self.0 | feature.bit())
    }
    pub fn lacks(self, feature: Feature) -> bool {
        self.0 & feature.bit() != 0
    }
    pub fn union(self, other: Lacks) -> Lacks {
        Lacks(self.0 | other.0)
    }
}

/// What a release before a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Before {
    /// These catalogue behaviours were in force.
    Bugs(&'static [Mutant]),
    /// The capability was missing.
    Lacked(Feature),
    /// The catalogue entry describes a wrong variant of this change that no release shipped.
    NeverReleased(&'static [Mutant]),
}

/// One upstream change of the modelled code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// The name `--with` and the matrix use.
    pub fix: &'static str,
    /// The mainline commit (12 hex digits).
    pub commit: &'static str,
    pub subject: &'static str,
    /// The first mainline release that has the commit.
    pub release: Release,
    /// The commit its `Fixes:` tag names and that commit's first release: releases before it
    /// never had the bug. `None`: the bug is as old as the code (or older than 5.10).
    pub introduced: Option<(&'static str, Release)>,
    pub before: Before,
    /// What releases before it did, in a sentence.
    pub earlier: &'static str,
    /// Stable releases found to carry a backport.
    pub stable: &'static [&'static str],
    /// Which facts above are inferred rather than read from a source.
    pub inferred: &'static str,
}

/// Every change, oldest first.
pub const CHANGES: &[Change] = &[
    Change {
        fix: "htab_nulls_restart",
        commit: "4fe8435909fd",
        subject: "bpf: convert htab map to hlist_nulls",
        release: r(4, 11),
        introduced: Some(("6c9059817432", r(4, 6))),
        before: Before::Bugs(&[Mutant::NoNullsRestart]),
        earlier: "a lockless walker that ended on another bucket's list did not restart",
        stable: &["4.9.177"],
        inferred: "first release (sent with 9f691549f76d to the net tree in 2017)",
    },
    Change {
        fix: "htab_elem_layout",
        commit: "9f691549f76d",
        subject: "bpf: fix struct htab_elem layout",
        release: r(4, 11),
        introduced: Some(("6c9059817432", r(4, 6))),
        before: Before::Bugs(&[Mutant::FreelistAliasesNext]),
        earlier: "the freelist link overlaid the hash list's next link",
        stable: &["4.9.177"],
        inferred: "first release (sent with 4fe8435909fd)",
    },
    Change {
        fix: "wait_after_map_in_map_update",
        commit: "1ae80cf31938",
        subject: "bpf: wait for running BPF programs when updating map-in-map",
        release: r(4, 20),
        introduced: None,
        before: Before::Bugs(&[Mutant::NoWaitAfterUpdate]),
        earlier:
            "an update or delete of a map-in-map returned without waiting for running programs",
        stable: &[],
        inferred: "first release (a stable review of November 2018 cites it)",
    },
    Change {
        fix: "hash_of_maps_leak_on_replace",
        commit: "1d4e1eab456e",
        subject: "bpf: Fix map leak in HASH_OF_MAPS map",
        release: r(5, 8),
        introduced: None,
        before: Before::Bugs(&[Mutant::LeakOnReplace]),
        earlier: "replacing a key of a preallocated hash of maps leaked the old inner map",
        stable: &["4.14.192"],
        inferred: "first release (applied to the bpf tree on 30 July 2020, two days before 5.8)",
    },
    Change {
        fix: "dynamic_inner_arrays",
        commit: "4a8f87e60f6d",
        subject: "bpf: Allow for map-in-map with dynamic inner array map entries",
        release: r(5, 10),
        introduced: None,
        before: Before::Bugs(&[Mutant::InlineDynamicInner, Mutant::MetaIgnoresMaxEntries]),
        earlier:
            "no BPF_F_INNER_MAP: every inner array had its template's size, and inner lookups \
                  were inlined with its bound",
        stable: &[],
        inferred: "",
    },
    Change {
        fix: "inner_map_state_pruning",
        commit: "34d11a440c61",
        subject: "bpf: Fix inner map state pruning regression.",
        release: r(5, 16),
        introduced: Some(("3e8ce29850f1", r(5, 15))),
        before: Before::Bugs(&[Mutant::InnerMapUidAlways]),
        earlier: "every inner-map lookup result had its own identity, so states never pruned",
        stable: &["5.15.5"],
        inferred: "",
    },
    Change {
        fix: "map_in_map_batch_ops",
        commit: "9263dddc7b6f",
        subject: "bpf: Extend batch operations for map-in-map bpf-maps",
        release: r(5, 19),
        introduced: None,
        before: Before::Lacked(Feature::BatchOnMapInMap),
        earlier: "batch lookup, update and delete on an outer map failed with -ENOTSUPP",
        stable: &[],
        inferred: "",
    },
    Change {
        fix: "htab_lock_slot_mask",
        commit: "9f907439dc80",
        subject: "bpf: hash map, avoid deadlock with suitable hash mask",
        release: r(6, 2),
        introduced: Some(("20b6cc34ea74", r(5, 10))),
        before: Before::Bugs(&[Mutant::LockSlotUnmasked]),
        earlier: "the re-entrancy slot was hash & 7 even for fewer than 8 buckets",
        stable: &["5.15.107", "6.1.9"],
        inferred: "",
    },
    Change {
        fix: "inner_map_elem_size",
        commit: "cba41bb78d70",
        subject: "bpf: Fix elem_size not being set for inner maps",
        release: r(6, 4),
        introduced: Some(("d937bc3449fa", r(6, 0))),
        before: Before::Bugs(&[Mutant::MetaElemSizeZero]),
        earlier: "the meta of an array template had elem_size 0, so inlined inner lookups read \
                  element 0",
        stable: &["6.1.34"],
        inferred: "",
    },
    Change {
        fix: "fd_put_need_defer",
        commit: "20c20bd11a07",
        subject: "bpf: Add map and need_defer parameters to .map_fd_put_ptr()",
        release: r(6, 8),
        introduced: Some(("bba1dc0b55ac", r(5, 9))),
        before: Before::Bugs(&[Mutant::PutWithoutDefer]),
        earlier: "replace and delete put the old inner map with no way to defer its free",
        stable: &["5.10.210", "5.15.149", "6.6.14"],
        inferred: "",
    },
    Change {
        fix: "defer_inner_map_free",
        commit: "876673364161",
        subject: "bpf: Defer the free of inner map when necessary",
        release: r(6, 8),
        introduced: Some(("bba1dc0b55ac", r(5, 9))),
        before: Before::Bugs(&[Mutant::FreeInnerWithoutGp]),
        earlier: "an inner map whose last reference went on replace or delete was freed at once, \
                  under running programs (CVE-2023-52447)",
        stable: &["5.10.214", "5.15.153", "6.1.75", "6.6.14", "6.7.2"],
        inferred: "",
    },
    Change {
        fix: "inner_map_free_gp_kinds",
        commit: "af66bfd3c853",
        subject: "bpf: Optimize the free of inner map",
        release: r(6, 8),
        introduced: None,
        before: Before::NeverReleased(&[Mutant::IgnoreSleepableGp]),
        earlier: "released kernels before this series waited for no grace period at all \
                  (defer_inner_map_free); waiting for a plain RCU grace period only, with \
                  sleepable readers, is a wrong version of this change",
        stable: &["6.6.35"],
        inferred: "",
    },
    Change {
        fix: "free_htab_elem_after_unlock",
        commit: "81eef03cbf70",
        subject: "bpf: Call free_htab_elem() after htab_unlock_bucket()",
        release: r(6, 13),
        introduced: None,
        before: Before::Bugs(&[Mutant::PutUnderBucketLock]),
        earlier:
            "the old inner map was put, and possibly freed under the id lock, with the bucket \
                  lock held",
        stable: &["6.6.66", "6.12.5"],
        inferred: "that every release before it had the bug (no Fixes: tag was found)",
    },
    Change {
        fix: "const_key_lookup_non_null",
        commit: "d2102f2f5d75",
        subject: "bpf: verifier: Support eliding map lookup nullness",
        release: r(6, 14),
        introduced: None,
        before: Before::Lacked(Feature::ConstKeyNonNull),
        earlier:
            "every array lookup result had to be null-checked, even at a constant in-bounds key",
        stable: &[],
        inferred: "",
    },
    Change {
        fix: "hash_of_maps_atomic_update",
        commit: "2c304172e031",
        subject: "bpf: Support atomic update for htab of maps",
        release: r(6, 16),
        introduced: None,
        before: Before::Bugs(&[Mutant::ReplaceByReinsert]),
        earlier: "an existing key of a hash of maps was updated by inserting a new element and \
                  unlinking the old one, so a concurrent lookup could miss it",
        stable: &[],
        inferred: "",
    },
];

impl Change {
    /// Whether `release` as released shows the behaviour from before this change.
    pub fn old_in(&self, release: Release) -> bool {
        release < self.release && self.introduced.is_none_or(|(_, since)| release >= since)
    }

    /// The change by its `fix` name.
    pub fn by_fix(name: &str) -> Result<&'static Change, String> {
        CHANGES.iter().find(|c| c.fix == name).ok_or_else(|| {
            let known: Vec<&str> = CHANGES.iter().map(|c| c.fix).collect();
            format!("no fix {name:?} (known: {})", known.join(", "))
        })
    }

    /// The change whose old behaviour the mutant is.
    pub fn of_mutant(mutant: Mutant) -> &'static Change {
        CHANGES
            .iter()
            .find(|c| c.mutants().contains(&mutant))
            .expect("every catalogue mutant is a change's old behaviour")
    }

    /// The catalogue mutants this change concerns (in force before it, or never released).
    pub fn mutants(&self) -> &'static [Mutant] {
        match self.before {
            Before::Bugs(bugs) | Before::NeverReleased(bugs) => bugs,
            Before::Lacked(_) => &[],
        }
    }

    /// The first and last of [`RELEASES`] showing the old behaviour, if any.
    pub fn affected(&self) -> Option<(Release, Release)> {
        if matches!(self.before, Before::NeverReleased(_)) {
            return None;
        }
        let mut hit = RELEASES.into_iter().filter(|r| self.old_in(*r));
        let first = hit.next()?;
        Some((first, hit.next_back().unwrap_or(first)))
    }
}

/// What one release (with any named fixes) puts in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Semantics {
    /// `None`: today's kernel (no release named).
    pub release: Option<Release>,
    /// Fixes added to the release by name (a stable branch's backports).
    pub with: Vec<&'static str>,
    pub mutants: Mutants,
    pub lacks: Lacks,
}

impl Semantics {
    /// Today's kernel: no old behaviour in force.
    pub fn current() -> Semantics {
        Semantics {
            release: None,
            with: Vec::new(),
            mutants: Mutants::NONE,
            lacks: Lacks::NONE,
        }
    }

    /// `release` as released, plus the fixes named in `with`.
    pub fn of(release: Release, with: &[&str]) -> Result<Semantics, String> {
        let with: Vec<&'static Change> = with
            .iter()
            .map(|f| Change::by_fix(f))
            .collect::<Result<_, _>>()?;
        let mut out = Semantics {
            release: Some(release),
            with: with.iter().map(|c| c.fix).collect(),
            mutants: Mutants::NONE,
            lacks: Lacks::NONE,
        };
        for change in CHANGES {
            if !change.old_in(release) || with.contains(&change) {
                continue;
            }
            match change.before {
                Before::Bugs(bugs) => {
                    for bug in bugs {
                        out.mutants = out.mutants.with(*bug);
                    }
                }
                Before::Lacked(feature) => out.lacks = out.lacks.with(feature),
                Before::NeverReleased(_) => {}
            }
        }
        Ok(out)
    }

    /// The changes whose old behaviour is in force.
    pub fn in_force(&self) -> Vec<&'static Change> {
        let Some(release) = self.release else {
            return Vec::new();
        };
        CHANGES
            .iter()
            .filter(|c| c.old_in(release) && !self.with.contains(&c.fix))
            .filter(|c| !matches!(c.before, Before::NeverReleased(_)))
            .collect()
    }

    /// The command-line flags that select these semantics (empty for today's kernel).
    pub fn flags(&self) -> String {
        match self.release {
            None => String::new(),
            Some(r) if self.with.is_empty() => format!(" --kernel {r}"),
            Some(r) => format!(" --kernel {r} --with {}", self.with.join(",")),
        }
    }
}

/// The doc page `docs/kernel-history.md`: the table, and each release's behaviours.
pub fn markdown() -> String {
    let mut out = String::new();
    out.push_str("# Kernel history of the modelled behaviours\n\n");
    out.push_str(
        "Generated from `core/src/history.rs` (`mimic history`); a test checks that this page is \
         its output. Each row is a mainline commit that changed the map-in-map, hash-map or \
         related verifier code, the first mainline release that has it, and what releases \
         before it did, as mimic's switches put it back. `--kernel RELEASE` runs the world, \
         the verifier and the fixups as that release was **released**; stable branches \
         backported some fixes (listed), which `--with FIX,...` adds by name. The verifier's \
         messages follow the mainline build profile whatever the release.\n\n",
    );
    out.push_str(
        "| fix | commit | first release | bug since | before it | affected profiles | \
         stable backports |\n|---|---|---|---|---|---|---|\n",
    );
    for c in CHANGES {
        let since = c
            .introduced
            .map_or("-".to_string(), |(commit, r)| format!("{r} ({commit})"));
        let before = match c.before {
            Before::Bugs(bugs) => bugs
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", "),
            Before::Lacked(f) => format!("lacks {f:?}"),
            Before::NeverReleased(bugs) => bugs
                .iter()
                .map(|m| format!("`{m}`: never released"))
                .collect::<Vec<_>>()
                .join(", "),
        };
        let affected = c.affected().map_or("none".to_string(), |(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a} to {b}")
            }
        });
        let stable = if c.stable.is_empty() {
            "-".to_string()
        } else {
            c.stable.join(", ")
        };
        out.push_str(&format!(
            "| `{}` | {} \"{}\" | {} | {since} | {before} | {affected} | {stable} |\n",
            c.fix, c.commit, c.subject, c.release
        ));
    }
    out.push_str("\n## What each change replaced\n\n");
    for c in CHANGES {
        out.push_str(&format!("- `{}`: {}.", c.fix, c.earlier));
        if !c.inferred.is_empty() {
            out.push_str(&format!(
                " Inferred, not read from a source: {}.",
                c.inferred
            ));
        }
        out.push('\n');
    }
    out.push_str(
        "\n## The profiles\n\n| release | old behaviours in force | lacks |\n|---|---|---|\n",
    );
    for release in RELEASES {
        let Ok(s) = Semantics::of(release, &[]) else {
            continue;
        };
        let mutants = if s.mutants.is_empty() {
            "none".to_string()
        } else {
            s.mutants
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let lacks: Vec<String> = [Feature::BatchOnMapInMap, Feature::ConstKeyNonNull]
            .into_iter()
            .filter(|f| s.lacks.lacks(*f))
            .map(|f| format!("{f:?}"))
            .collect();
        let lacks = if lacks.is_empty() {
            "-".to_string()
        } else {
            lacks.join(", ")
        };
        out.push_str(&format!("| {release} | {mutants} | {lacks} |\n"));
    }
    out.push_str(
        "\nNot modelled: `53040a81ae57` \"bpf: Keep dynamic inner array lookups nullable\" \
         (2026, after 6.18; its first release is not established here) stops the 6.14 \
         elision for BPF_F_INNER_MAP arrays, so 6.14 to 6.18 as released elided it there too. \
         mimic's verifier always keeps those lookups nullable, as the 6.18.44 build this \
         project's machines run does (kernel-check's case \"map in map dynamic inner array \
         lookup at an in-range key is nullable\" agrees): the release profiles are stricter \
         than those releases as released on that one point.\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalogue_mutant_is_the_old_behaviour_of_exactly_one_change() {
        for m in Mutant::ALL {
            let n = CHANGES.iter().filter(|c| c.mutants().contains(&m)).count();
            assert_eq!(n, 1, "{m}");
            assert!(Change::of_mutant(m).mutants().contains(&m));
        }
    }

    #[test]
    fn releases_are_sorted_and_parse_back() {
        assert!(RELEASES.windows(2).all(|w| w[0] < w[1]));
        for r in RELEASES {
            assert_eq!(r.to_string().parse(), Ok(r));
        }
        let e = "5.4".parse::<Release>().unwrap_err();
        assert!(e.contains("5.4") && e.contains("6.18"), "{e}");
    }

    #[test]
    fn a_bug_is_in_force_from_its_introduction_until_its_fix() {
        let s = |v: &str| Semantics::of(v.parse().unwrap(), &[]).unwrap();
        // 3e8ce29850f1 (5.15) brought the pruning regression, 34d11a440c61 (5.16) fixed it.
        assert!(s("5.15").mutants.on(Mutant::InnerMapUidAlways));
        assert!(!s("5.10").mutants.on(Mutant::InnerMapUidAlways));
        assert!(!s("6.1").mutants.on(Mutant::InnerMapUidAlways));
        // elem_size: broken in 6.0, fixed in 6.4.
        assert!(s("6.1").mutants.on(Mutant::MetaElemSizeZero));
        assert!(!s("5.15").mutants.on(Mutant::MetaElemSizeZero));
        // The deferred inner-map free arrived in 6.8.
        assert!(s("6.6").mutants.on(Mutant::FreeInnerWithoutGp));
        assert!(!s("6.12").mutants.on(Mutant::FreeInnerWithoutGp));
        assert!(s("5.15").lacks.lacks(Feature::BatchOnMapInMap));
        assert!(!s("6.1").lacks.lacks(Feature::BatchOnMapInMap));
        assert_eq!(s("6.18").mutants, Mutants::NONE);
        assert_eq!(s("6.18").lacks, Lacks::NONE);
        // The catalogue's wrong optimisation was never a release's behaviour.
        assert!(RELEASES.iter().all(|r| !Semantics::of(*r, &[])
            .unwrap()
            .mutants
            .on(Mutant::IgnoreSleepableGp)));
    }

    #[test]
    fn a_backport_named_with_with_removes_that_bug_only() {
        let r: Release = "6.1".parse().unwrap();
        let plain = Semantics::of(r, &[]).unwrap();
        let fixed = Semantics::of(r, &["defer_inner_map_free"]).unwrap();
        assert!(plain.mutants.on(Mutant::FreeInnerWithoutGp));
        assert!(!fixed.mutants.on(Mutant::FreeInnerWithoutGp));
        assert!(fixed.mutants.on(Mutant::PutWithoutDefer));
        assert_eq!(fixed.flags(), " --kernel 6.1 --with defer_inner_map_free");
        let e = Semantics::of(r, &["no_such_fix"]).unwrap_err();
        assert!(
            e.contains("no_such_fix") && e.contains("defer_inner_map_free"),
            "{e}"
        );
    }
}
