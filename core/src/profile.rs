//! Kernel profiles: the behaviours in which kernel builds differ, each named, and the builds
//! mimic knows as sets of them.
//!
//! Kernel builds differ even under one version string (a distribution's or a cloud's patches,
//! backports), and the kernel is mimic's reference. Rather than pin mimic to one build's output,
//! each difference it has met is a [`Behaviour`] with one variant per output seen, and a
//! [`KernelProfile`] is the set of variants one build shows. The verifier and the fixups read the
//! profile they are given (`VerifyOpts::profile`); nothing reads a global, so two profiles can
//! be compared in one process.
//!
//! Every behaviour has a probe: a small program whose refusal message differs between the
//! variants (`bpf::verifier::probes`). `mimic kernel-probe` loads the probes into the live
//! kernel and picks the profile whose variants it shows; `--kernel auto` does the same once per
//! command. A kernel whose output matches no variant of some behaviour is a new behaviour: it
//! gets a variant here and, with the new build, a profile.
//!
//! Invariants: [`PROFILES`] holds distinct behaviour sets, oldest first (the last is the newest,
//! the default where no kernel can be asked); every variant of every behaviour is named in
//! [`Behaviour::variants`], which is what the probe report prints.

use std::fmt;

/// The name the verifier gives an outer map's lookup result before its null check.
///
/// Probe: `r0 = bpf_map_lookup_elem(&array_of_maps, &key)`, then `r1 = r0` passed as the map
/// of a second lookup without the null check. The kernel refuses at the second call with
/// `R1 type=map_value_or_null expected=map_ptr` (the result is typed as a map value that may be
/// null, the map pointer appearing only after the check) or
/// `R1 type=map_ptr_or_null expected=map_ptr` (typed as a map pointer that may be null).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OuterLookupName {
    MapValueOrNull,
    MapPtrOrNull,
}

/// How the verifier reports a pointer-arithmetic result whose smallest offset leaves
/// `±BPF_MAX_VAR_OFF` (2^29), when neither operand did.
///
/// Probe: a `BPF_PROG_TYPE_SYSCALL` program that subtracts an unknown u32 read from its
/// context from the context pointer (`r6 = r1; r6 -= r7`): the result's smallest offset is
/// -4294967295. The kernel refuses with `value -4294967295 makes ctx pointer be out of bounds`
/// (the message it gives an operand out of range) or `ctx pointer offset -4294967295 is not
/// allowed` (the message it gives a fixed offset out of range).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResultOffsetMessage {
    ValueOutOfBounds,
    PointerOffset,
}

/// The variants one build shows, one per behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Behaviours {
    pub outer_lookup_name: OuterLookupName,
    pub result_offset: ResultOffsetMessage,
}

/// A behaviour, for enumerating them (probe reports, `mimic kernel-probe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Behaviour {
    OuterLookupName,
    ResultOffsetMessage,
}

impl Behaviour {
    pub const ALL: [Behaviour; 2] = [Behaviour::OuterLookupName, Behaviour::ResultOffsetMessage];

    /// The behaviour's identifier (as reports and docs name it).
    pub fn id(self) -> &'static str {
        match self {
            Behaviour::OuterLookupName => "outer_lookup_name",
            Behaviour::ResultOffsetMessage => "result_offset_message",
        }
    }

    /// One line on what differs.
    pub fn about(self) -> &'static str {
        match self {
            Behaviour::OuterLookupName => {
                "the type name of an outer map's lookup result before its null check"
            }
            Behaviour::ResultOffsetMessage => {
                "the message for a pointer-arithmetic result whose smallest offset is out of range"
            }
        }
    }

    /// The variants' names, in declaration order.
    pub fn variants(self) -> &'static [&'static str] {
        match self {
            Behaviour::OuterLookupName => &["map_value_or_null", "map_ptr_or_null"],
            Behaviour::ResultOffsetMessage => &["value_out_of_bounds", "pointer_offset"],
        }
    }

    /// The name of the variant `behaviours` has.
    pub fn variant_of(self, behaviours: &Behaviours) -> &'static str {
        let index = match self {
            Behaviour::OuterLookupName => behaviours.outer_lookup_name as usize,
            Behaviour::ResultOffsetMessage => behaviours.result_offset as usize,
        };
        self.variants()[index]
    }

    /// `behaviours` with this behaviour's variant number `index` (`None`: no such variant).
    pub fn with_variant(self, behaviours: Behaviours, index: usize) -> Option<Behaviours> {
        let mut out = behaviours;
        match (self, index) {
            (Behaviour::OuterLookupName, 0) => {
                out.outer_lookup_name = OuterLookupName::MapValueOrNull
            }
            (Behaviour::OuterLookupName, 1) => {
                out.outer_lookup_name = OuterLookupName::MapPtrOrNull
            }
            (Behaviour::ResultOffsetMessage, 0) => {
                out.result_offset = ResultOffsetMessage::ValueOutOfBounds
            }
            (Behaviour::ResultOffsetMessage, 1) => {
                out.result_offset = ResultOffsetMessage::PointerOffset
            }
            _ => return None,
        }
        Some(out)
    }
}

/// One kernel build's behaviours, under a name `--kernel NAME` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KernelProfile {
    pub name: &'static str,
    /// Where the build was met and how it differs from the others.
    pub about: &'static str,
    pub behaviours: Behaviours,
}

/// The builds mimic knows, oldest first.
pub static PROFILES: [KernelProfile; 2] = [
    KernelProfile {
        name: "6.18",
        about: "Linux 6.18.44 as this project's machines first ran it: mainline's messages",
        behaviours: Behaviours {
            outer_lookup_name: OuterLookupName::MapValueOrNull,
            result_offset: ResultOffsetMessage::ValueOutOfBounds,
        },
    },
    KernelProfile {
        name: "6.18-v1300",
        about: "Linux 6.18.44-fc-v1300: an outer lookup is a map pointer that may be null; an \
                out-of-range pointer result is reported as a pointer offset",
        behaviours: Behaviours {
            outer_lookup_name: OuterLookupName::MapPtrOrNull,
            result_offset: ResultOffsetMessage::PointerOffset,
        },
    },
];

impl KernelProfile {
    /// The newest profile: the default where no kernel can be asked.
    pub fn newest() -> &'static KernelProfile {
        &PROFILES[PROFILES.len() - 1]
    }

    /// The build that shows mainline's messages (what release profiles follow).
    pub fn mainline() -> &'static KernelProfile {
        &PROFILES[0]
    }

    /// The profile called `name`, or an error listing the names there are.
    pub fn by_name(name: &str) -> Result<&'static KernelProfile, UnknownProfile> {
        PROFILES
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| UnknownProfile(name.to_string()))
    }

    /// The profile showing exactly these behaviours, if mimic knows one.
    pub fn with_behaviours(behaviours: &Behaviours) -> Option<&'static KernelProfile> {
        PROFILES.iter().find(|p| p.behaviours == *behaviours)
    }

    /// The verifier's name for a nullable lookup result of an outer map.
    pub fn outer_lookup_or_null(&self) -> &'static str {
        Behaviour::OuterLookupName.variant_of(&self.behaviours)
    }

    /// The refusal of a pointer-arithmetic result whose smallest offset `smin` is out of range,
    /// for a pointer of type name `ty`.
    pub fn result_offset_refusal(&self, ty: &str, smin: i64) -> String {
        match self.behaviours.result_offset {
            ResultOffsetMessage::ValueOutOfBounds => {
                format!("value {smin} makes {ty} pointer be out of bounds")
            }
            ResultOffsetMessage::PointerOffset => {
                format!("{ty} pointer offset {smin} is not allowed")
            }
        }
    }
}

impl fmt::Display for KernelProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// A `--kernel NAME` that names no profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownProfile(pub String);

impl fmt::Display for UnknownProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = PROFILES.iter().map(|p| p.name).collect();
        write!(
            f,
            "no kernel profile {:?} (known: auto, {})",
            self.0,
            names.join(", ")
        )
    }
}

impl std::error::Error for UnknownProfile {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_are_distinct_and_found_by_name_and_behaviours() {
        for (i, p) in PROFILES.iter().enumerate() {
            assert_eq!(KernelProfile::by_name(p.name), Ok(p));
            assert_eq!(KernelProfile::with_behaviours(&p.behaviours), Some(p));
            for q in &PROFILES[i + 1..] {
                assert_ne!(p.behaviours, q.behaviours, "{} and {}", p.name, q.name);
                assert_ne!(p.name, q.name);
            }
        }
        let err = KernelProfile::by_name("5.4").unwrap_err().to_string();
        assert!(
            err.contains("\"5.4\"") && err.contains("6.18-v1300"),
            "{err}"
        );
    }

    #[test]
    fn every_variant_can_be_set_and_read_back_by_index() {
        let base = PROFILES[0].behaviours;
        for b in Behaviour::ALL {
            for (i, name) in b.variants().iter().enumerate() {
                let set = b.with_variant(base, i).expect("a listed variant");
                assert_eq!(b.variant_of(&set), *name, "{}", b.id());
            }
            assert_eq!(b.with_variant(base, b.variants().len()), None);
        }
    }
}
