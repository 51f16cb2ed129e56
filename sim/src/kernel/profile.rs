//! Which kernel profile the live kernel is: the probes of
//! `mimic_core::bpf::verifier::probes` loaded into it, each log matched to a variant of its
//! behaviour, and the profile with those variants picked (`mimic kernel-probe`, `--kernel auto`).
//!
//! A probe whose log matches no variant is a behaviour no profile describes, and a set of
//! variants no profile has is a build mimic does not know: either way [`ProbeReport::profile`]
//! says which behaviour, which probe shows it, what the kernel printed, and the one place to
//! describe it (`core/src/profile.rs`). Commands that compare with the kernel fail then rather
//! than compare under a profile that is not the kernel's.
//!
//! Probing costs a few map creations and program loads; [`live`] does it once per process.
#![forbid(unsafe_code)]

use super::check::Check;
use super::verdicts::{for_kernel, kernel_load, kernel_maps, kernel_message};
use super::{KernelSys, Unavailable};
use mimic_core::bpf::kernel_types::{KernelTypes, TypesRef};
use mimic_core::bpf::verifier::corpus;
use mimic_core::bpf::verifier::probes::{probes, variant_in_log, Probe};
use mimic_core::profile::{Behaviours, KernelProfile, UnknownProfile, PROFILES};
use mimic_core::uapi::BpfSys;
use std::fmt;
use std::sync::OnceLock;

/// Where a behaviour or a build is described: named in every report of something unknown.
pub const PROFILES_HOME: &str = "core/src/profile.rs";

/// What one probe showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub probe: Probe,
    /// The kernel's message (the line before `processed N insns`), or why there is none.
    pub kernel: String,
    /// The variant of the probe's behaviour the log shows; `None`: no variant matches.
    pub variant: Option<usize>,
}

/// Every probe's finding, in behaviour order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeReport {
    pub findings: Vec<Finding>,
}

impl ProbeReport {
    /// The variants found, when every behaviour matched one.
    pub fn behaviours(&self) -> Option<Behaviours> {
        let mut behaviours = PROFILES[0].behaviours;
        for f in &self.findings {
            behaviours = f.probe.behaviour.with_variant(behaviours, f.variant?)?;
        }
        Some(behaviours)
    }

    /// The profile the kernel showed, or the report of what no profile describes.
    pub fn profile(&self) -> Result<&'static KernelProfile, String> {
        if let Some(f) = self.findings.iter().find(|f| f.variant.is_none()) {
            let b = f.probe.behaviour;
            return Err(format!(
                "kernel behaviour no profile describes: {} ({}): probe {:?} printed {:?}, \
                 known variants: {}; describe it in {PROFILES_HOME} (a variant of {}, and a \
                 profile for this build)",
                b.id(),
                b.about(),
                f.probe.name,
                f.kernel,
                b.variants().join(", "),
                b.id()
            ));
        }
        let behaviours = self.behaviours().expect("every finding has a variant");
        KernelProfile::with_behaviours(&behaviours).ok_or_else(|| {
            let shown: Vec<String> = self
                .findings
                .iter()
                .map(|f| {
                    format!(
                        "{}={}",
                        f.probe.behaviour.id(),
                        f.probe.behaviour.variant_of(&behaviours)
                    )
                })
                .collect();
            format!(
                "no kernel profile has this build's behaviours ({}); add one to {PROFILES_HOME}",
                shown.join(", ")
            )
        })
    }
}

impl fmt::Display for ProbeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for finding in &self.findings {
            let b = finding.probe.behaviour;
            let variant = finding
                .variant
                .map_or("UNKNOWN", |i| b.variants().get(i).copied().unwrap_or("?"));
            writeln!(f, "{:<24} {variant}", b.id())?;
            writeln!(f, "  {}", b.about())?;
            writeln!(f, "  probe: {}", finding.probe.name)?;
            writeln!(f, "  kernel: {}", finding.kernel)?;
        }
        Ok(())
    }
}

/// Loads every probe into `kernel` and matches its log.
pub fn probe_kernel(kernel: &mut KernelSys) -> Result<ProbeReport, String> {
    let table = corpus::maps();
    let (fds, extra) = kernel_maps(kernel, &table)?;
    let mut findings = Vec::new();
    for probe in probes() {
        let insns = for_kernel(kernel, &probe.prog, &fds);
        let (kernel_said, variant) = match kernel_load(kernel, &insns, false) {
            Ok((prog, _)) => {
                let _ = kernel.close(prog);
                ("accepted".to_string(), None)
            }
            Err(failure) => (
                kernel_message(&failure.log),
                variant_in_log(&probe, &failure.log),
            ),
        };
        findings.push(Finding {
            probe,
            kernel: kernel_said,
            variant,
        });
    }
    for fd in fds.values().map(|(fd, _)| *fd).chain(extra) {
        let _ = kernel.close(fd);
    }
    Ok(ProbeReport { findings })
}

/// The first line of `mimic kernel-check`'s table: the live kernel's behaviours against the
/// profile followed (`spec`, as `--kernel` takes it: the probed one under `auto`, else the
/// named one), and that profile. A behaviour no profile describes is a disagreement carrying
/// the report that names it, its probe and where to add it.
pub fn check(kernel: &mut KernelSys, spec: &str) -> Result<(KernelProfile, Check), String> {
    let report = probe_kernel(kernel)?;
    let probed = report.profile();
    let followed = match (spec, &probed) {
        ("auto", Ok(profile)) => **profile,
        ("auto", Err(_)) => *KernelProfile::newest(),
        (name, _) => *KernelProfile::by_name(name).map_err(|e| e.to_string())?,
    };
    let mut check = Check {
        name: "kernel/profile".to_string(),
        compares: format!("kernel behaviours vs {}", followed.name),
        cases: report.findings.len() as u64,
        agreed: 0,
        disagreed: Default::default(),
        known: Default::default(),
        examples: Vec::new(),
        gating: true,
    };
    for f in &report.findings {
        let b = f.probe.behaviour;
        let wanted = b.variant_of(&followed.behaviours);
        match f.variant.map(|i| b.variants()[i]) {
            Some(shown) if shown == wanted => check.agreed += 1,
            Some(shown) => {
                *check
                    .disagreed
                    .entry("differs from the profile".into())
                    .or_insert(0) += 1;
                check.examples.push(format!(
                    "{}: the kernel shows {shown}, profile {} has {wanted} (probe {:?}: {:?})",
                    b.id(),
                    followed.name,
                    f.probe.name,
                    f.kernel
                ));
            }
            None => {
                *check
                    .disagreed
                    .entry("no profile describes it".into())
                    .or_insert(0) += 1;
                if let Err(why) = &probed {
                    check.examples.push(why.clone());
                }
            }
        }
    }
    Ok((followed, check))
}

/// The release profile of the running kernel (`uname -r`'s major.minor, read from
/// `/proc/sys/kernel/osrelease`) against what kernel-check compares: its comparisons run
/// today's semantics, so a release profile that claims to be this kernel must put no old
/// behaviour in force and lack nothing. A kernel whose release has no profile is said, not
/// failed.
pub fn release_check(osrelease: &str) -> Check {
    let mut check = Check {
        name: "kernel/release".to_string(),
        compares: format!(
            "release profile of {} vs today's semantics",
            osrelease.trim()
        ),
        cases: 1,
        agreed: 0,
        disagreed: Default::default(),
        known: Default::default(),
        examples: Vec::new(),
        gating: true,
    };
    let major_minor: String = osrelease
        .trim()
        .split('.')
        .take(2)
        .map(|p| {
            p.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join(".");
    let release = match major_minor.parse::<mimic_core::history::Release>() {
        Ok(release) => release,
        Err(why) => {
            check.gating = false;
            check.cases = 0;
            check.examples.push(format!("skipped: {why}"));
            return check;
        }
    };
    match mimic_core::history::Semantics::of(release, &[]) {
        Ok(s) if s.mutants.is_empty() && s.lacks == mimic_core::history::Lacks::NONE => {
            check.agreed = 1;
        }
        Ok(s) => {
            *check
                .disagreed
                .entry("release profile is not today's semantics".into())
                .or_insert(0) += 1;
            let fixes: Vec<&str> = s.in_force().iter().map(|c| c.fix).collect();
            check.examples.push(format!(
                "release profile {release} has old behaviours in force ({}): kernel-check \
                 compares today's semantics with a kernel that may show them",
                fixes.join(", ")
            ));
        }
        Err(why) => check.examples.push(why),
    }
    check
}

/// How `--kernel` was resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub profile: KernelProfile,
    /// One line: named, probed, or the newest for want of a kernel.
    pub why: String,
}

/// The live kernel's profile, probed once per process: `Ok(None)` when bpf() is unavailable
/// (with why), `Err` when the kernel shows something no profile describes.
pub fn live() -> &'static Result<Result<&'static KernelProfile, Unavailable>, String> {
    static LIVE: OnceLock<Result<Result<&'static KernelProfile, Unavailable>, String>> =
        OnceLock::new();
    LIVE.get_or_init(|| {
        let mut kernel = match KernelSys::new() {
            Ok(kernel) => kernel,
            Err(unavailable) => return Ok(Err(unavailable)),
        };
        let report = probe_kernel(&mut kernel).map_err(|e| format!("probing the kernel: {e}"))?;
        report.profile().map(Ok)
    })
}

/// Where the running kernel's BTF is.
const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// The running kernel's struct layouts (its BTF), read once per process; the recorded build's
/// where the file cannot be read or parsed. Comparisons with the live kernel check reads
/// through map pointers against the layout of the kernel they compare with.
pub fn live_types() -> TypesRef {
    static LIVE: OnceLock<Option<KernelTypes>> = OnceLock::new();
    LIVE.get_or_init(|| {
        let bytes = std::fs::read(VMLINUX_BTF).ok()?;
        KernelTypes::from_vmlinux(&bytes).ok()
    })
    .as_ref()
    .map_or(TypesRef::Recorded, TypesRef::Of)
}

/// `--kernel auto|NAME`: a named profile, or for `auto` the live kernel's (the newest where
/// bpf() is unavailable). `Err`: an unknown name, or a kernel no profile describes.
pub fn resolve(spec: &str) -> Result<Resolved, String> {
    if spec != "auto" {
        let profile = KernelProfile::by_name(spec).map_err(|e: UnknownProfile| e.to_string())?;
        return Ok(Resolved {
            profile: *profile,
            why: "named".to_string(),
        });
    }
    match live() {
        Ok(Ok(profile)) => Ok(Resolved {
            profile: **profile,
            why: "probed on this machine's kernel".to_string(),
        }),
        Ok(Err(unavailable)) => Ok(Resolved {
            profile: *KernelProfile::newest(),
            why: format!("the newest: no kernel to probe ({})", unavailable.0),
        }),
        Err(report) => Err(report.clone()),
    }
}

/// For tests against the live kernel: the profile the kernel shows (panics, with the report,
/// when no profile describes it: such a kernel fails every message comparison).
pub fn probed(kernel: &mut KernelSys) -> KernelProfile {
    let report = probe_kernel(kernel).unwrap_or_else(|e| panic!("probing the kernel: {e}"));
    match report.profile() {
        Ok(profile) => *profile,
        Err(why) => panic!("{why}\n{report}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(variants: &[Option<usize>], kernel: &str) -> ProbeReport {
        ProbeReport {
            findings: probes()
                .into_iter()
                .zip(variants)
                .map(|(probe, &variant)| Finding {
                    probe,
                    kernel: kernel.to_string(),
                    variant,
                })
                .collect(),
        }
    }

    #[test]
    fn each_profile_is_picked_from_its_own_variants() {
        for p in &PROFILES {
            let variants: Vec<Option<usize>> = mimic_core::profile::Behaviour::ALL
                .iter()
                .map(|b| {
                    b.variants()
                        .iter()
                        .position(|v| *v == b.variant_of(&p.behaviours))
                })
                .collect();
            assert_eq!(report(&variants, "x").profile(), Ok(p));
        }
    }

    #[test]
    fn a_behaviour_no_variant_matches_is_reported_with_its_probe_output_and_home() {
        let why = report(
            &[Some(1), None],
            "ctx pointer moved out of range by -4294967295",
        )
        .profile()
        .unwrap_err();
        for needle in [
            "result_offset_message",
            "context pointer minus an unknown u32",
            "ctx pointer moved out of range by -4294967295",
            "value_out_of_bounds, pointer_offset",
            PROFILES_HOME,
        ] {
            assert!(why.contains(needle), "{needle:?} missing from: {why}");
        }
    }

    #[test]
    fn known_variants_in_a_combination_no_profile_has_ask_for_a_profile() {
        // Each variant exists, but no build showed this pair.
        let why = report(&[Some(0), Some(1)], "x").profile().unwrap_err();
        assert!(
            why.contains("outer_lookup_name=map_value_or_null")
                && why.contains("result_offset_message=pointer_offset")
                && why.contains(PROFILES_HOME),
            "{why}"
        );
    }

    #[test]
    fn a_named_profile_resolves_without_a_kernel_and_an_unknown_name_lists_the_known() {
        let named = resolve("6.18").expect("a known profile");
        assert_eq!(named.profile.name, "6.18");
        let err = resolve("6.19-rc1").unwrap_err();
        assert!(err.contains("6.19-rc1") && err.contains("auto"), "{err}");
    }

    #[test]
    fn the_running_release_profile_must_be_todays_semantics() {
        let current = release_check("6.18.44-fc-v1300\n");
        assert!(current.passed() && current.agreed == 1, "{current:?}");
        let old = release_check("6.1.100");
        assert!(!old.passed() && old.gating, "{old:?}");
        assert!(old.examples[0].contains("defer_inner_map_free"), "{old:?}");
        let unknown = release_check("4.19.0");
        assert!(
            !unknown.gating && unknown.examples[0].starts_with("skipped"),
            "{unknown:?}"
        );
    }
}
