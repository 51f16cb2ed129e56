//! The probes that tell kernel builds apart: for each [`Behaviour`] of [`crate::profile`], a
//! small program whose refusal message differs between the behaviour's variants.
//!
//! A probe is loaded the way `mimic kernel-check` loads the corpus (its maps from
//! [`corpus::maps`], a privileged sleepable `BPF_PROG_TYPE_SYSCALL` program) and its log is
//! matched against what mimic's verifier says under each variant ([`variant_in_log`]): the
//! variants' messages are written once, in the verifier, and the probe only asks which one the
//! kernel printed. The recorded messages of each profile are pinned by this module's tests, so
//! every profile stays tested on machines without `bpf()`.
//!
//! Invariants: a probe's message depends on its own behaviour's variant only (a test checks it
//! under every other combination), and its variants' messages are pairwise distinct.

use super::{corpus, verify, ProgType, VerifyOpts};
use crate::isa::*;
use crate::profile::{Behaviour, Behaviours, KernelProfile, PROFILES};

/// One probe: the behaviour it reveals and its program (fds as in [`corpus::maps`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub behaviour: Behaviour,
    pub name: &'static str,
    pub prog: Vec<Insn>,
}

/// The options a probe is verified with: what the kernel is asked (privileged, sleepable
/// `BPF_PROG_TYPE_SYSCALL`), under `profile`.
pub fn probe_opts(profile: KernelProfile) -> VerifyOpts {
    VerifyOpts {
        privileged: true,
        sleepable: true,
        prog_type: ProgType::Syscall,
        profile,
        ..VerifyOpts::default()
    }
}

/// One probe per behaviour, in [`Behaviour::ALL`]'s order.
pub fn probes() -> Vec<Probe> {
    Behaviour::ALL
        .iter()
        .map(|&behaviour| match behaviour {
            Behaviour::OuterLookupName => Probe {
                behaviour,
                name: "unchecked outer lookup passed as a map",
                prog: corpus::outer_lookup_then(corpus::FD_MAP_IN_MAP)
                    .key0()
                    .i(Insn::mov64_reg(1, 0))
                    .lookup()
                    .i(Insn::mov64_imm(0, 0))
                    .i(Insn::exit())
                    .0,
            },
            Behaviour::ResultOffsetMessage => Probe {
                behaviour,
                name: "context pointer minus an unknown u32",
                prog: vec![
                    Insn::ldx_mem(BPF_W, 7, 1, 0),
                    Insn::mov64_reg(6, 1),
                    Insn::alu64_reg(BPF_SUB, 6, 7),
                    Insn::mov64_imm(0, 0),
                    Insn::exit(),
                ],
            },
        })
        .collect()
}

/// mimic's refusal message for `probe` under `behaviours` (`None`: accepted, which no probe
/// should be).
pub fn message_under(probe: &Probe, behaviours: Behaviours) -> Option<String> {
    let profile = KernelProfile {
        name: "probe",
        about: "",
        behaviours,
    };
    verify(&probe.prog, &corpus::maps(), probe_opts(profile))
        .err()
        .map(|r| r.message)
}

/// Which variant of the probe's behaviour a kernel log shows: the variant whose message (as
/// mimic's verifier words it) the log contains, or `None` when none does: a behaviour no
/// profile describes.
pub fn variant_in_log(probe: &Probe, log: &str) -> Option<usize> {
    let base = PROFILES[0].behaviours;
    (0..probe.behaviour.variants().len()).find(|&i| {
        probe
            .behaviour
            .with_variant(base, i)
            .and_then(|b| message_under(probe, b))
            .is_some_and(|message| log.contains(&message))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What each profile's build printed for each probe, as measured on it: the recorded
    /// expectation that keeps each profile's behaviour tested without a kernel.
    const RECORDED: [(&str, &str, &str); 4] = [
        (
            "6.18",
            "unchecked outer lookup passed as a map",
            "R1 type=map_value_or_null expected=map_ptr",
        ),
        (
            "6.18",
            "context pointer minus an unknown u32",
            "value -4294967295 makes ctx pointer be out of bounds",
        ),
        (
            "6.18-v1300",
            "unchecked outer lookup passed as a map",
            "R1 type=map_ptr_or_null expected=map_ptr",
        ),
        (
            "6.18-v1300",
            "context pointer minus an unknown u32",
            "ctx pointer offset -4294967295 is not allowed",
        ),
    ];

    #[test]
    fn every_profile_gives_its_recorded_message_for_every_probe() {
        let probes = probes();
        assert_eq!(
            RECORDED.len(),
            PROFILES.len() * probes.len(),
            "one row each"
        );
        for (profile, probe, message) in RECORDED {
            let profile = KernelProfile::by_name(profile).expect("a known profile");
            let probe = probes.iter().find(|p| p.name == probe).expect("a probe");
            assert_eq!(
                message_under(probe, profile.behaviours).as_deref(),
                Some(message),
                "{} under {}",
                probe.name,
                profile.name
            );
        }
    }

    #[test]
    fn a_probe_depends_on_its_own_behaviour_only_and_tells_its_variants_apart() {
        for probe in probes() {
            let variants = probe.behaviour.variants().len();
            let mut seen = Vec::new();
            for i in 0..variants {
                let mut messages = PROFILES.iter().map(|p| {
                    let b = probe.behaviour.with_variant(p.behaviours, i).unwrap();
                    message_under(&probe, b)
                });
                let first = messages.next().unwrap();
                assert!(first.is_some(), "{}: accepted", probe.name);
                assert!(
                    messages.all(|m| m == first),
                    "{}: depends on others",
                    probe.name
                );
                assert!(!seen.contains(&first), "{}: variants alike", probe.name);
                seen.push(first);
            }
        }
    }

    #[test]
    fn a_log_is_matched_to_the_variant_it_prints_or_to_none() {
        let probes = probes();
        let outer = &probes[0];
        let log = "9: (bf) r1 = r0\n10: (85) call bpf_map_lookup_elem#1\nR1 type=map_ptr_or_null expected=map_ptr\nprocessed 10 insns";
        assert_eq!(variant_in_log(outer, log), Some(1));
        assert_eq!(
            variant_in_log(outer, "R1 type=map_value_or_null expected=map_ptr"),
            Some(0)
        );
        assert_eq!(
            variant_in_log(outer, "R1 type=inner_map_or_null expected=map_ptr"),
            None
        );
    }
}
