//! Subcommand glue, one module per command.
pub mod conformance;
pub mod fuzz_replay;
pub mod history;
pub mod inspect;
pub mod kernel_check;
pub mod kernel_probe;
pub mod matrix;
pub mod mutants;
pub mod replay;
pub mod run;
pub mod shrink;
pub mod verify;

use clap::Args;
use mimic_core::history::{Release, Semantics, RELEASES};
use mimic_core::mutants::{Mutant, Mutants};
use mimic_core::profile::KernelProfile;

/// `--kernel auto|BUILD|RELEASE [--with FIX,...]`: the kernel a command follows. A build
/// profile fixes the verifier's messages where builds differ; a release profile
/// (`mimic_core::history`) also puts that release's map-in-map semantics in force (its old
/// behaviours as mutants, the features it lacks), with the verifier's mainline messages.
/// Shared by every command that verifies, runs or compares.
#[derive(Args, Clone, Debug, PartialEq, Eq)]
pub struct KernelArg {
    /// Kernel profile: `auto` probes this machine's kernel once (the newest profile where
    /// bpf() is unavailable), a build profile's name (`mimic kernel-probe` lists them), or a
    /// mainline release (5.10, 5.15, 6.1, 6.6, 6.12, 6.18: its semantics as released,
    /// `mimic history` shows them).
    #[arg(
        long = "kernel",
        value_name = "auto|BUILD|RELEASE",
        default_value = "auto"
    )]
    pub kernel: String,
    /// With a release: fixes its stable branch backported, by name (`mimic history`).
    #[arg(long = "with", value_name = "FIX,...", value_delimiter = ',')]
    pub with: Vec<String>,
}

impl Default for KernelArg {
    fn default() -> Self {
        KernelArg {
            kernel: "auto".to_string(),
            with: Vec::new(),
        }
    }
}

/// What `--kernel`, `--with` and `--mutant` put in force for a command.
pub struct Followed {
    pub profile: KernelProfile,
    pub semantics: Semantics,
    /// The mutants named on the command line, and the release's old behaviours.
    pub mutants: Mutants,
    /// The flags a replay line needs besides the named mutants (`--kernel 6.1 --with ...`).
    pub flags: String,
}

impl KernelArg {
    /// The profile, the semantics and the mutants a command that runs the world follows.
    pub fn follow(&self, command: &str, named: &[Mutant]) -> Result<Followed, String> {
        let profile = self.profile(command)?;
        let semantics = self.semantics(command)?;
        let mutants = named.iter().copied().fold(semantics.mutants, Mutants::with);
        let flags = semantics.flags();
        Ok(Followed {
            profile,
            semantics,
            mutants,
            flags,
        })
    }

    /// The build profile of a command that runs today's semantics only (`mutants`,
    /// `fuzz-replay`): a release or `--with` is refused rather than ignored.
    pub fn build_profile(&self, command: &str) -> Result<KernelProfile, String> {
        self.refuse_release(command)?;
        self.profile(command)
    }

    /// `Err` when a release or `--with` is given to a command that cannot apply them.
    pub fn refuse_release(&self, command: &str) -> Result<(), String> {
        let release =
            self.kernel.parse::<Release>().is_ok() && KernelProfile::by_name(&self.kernel).is_err();
        if release || !self.with.is_empty() {
            return Err(format!(
                "{command}: --kernel takes auto or a build profile here (a release's semantics \
                 apply to run, replay, shrink, verify and matrix)"
            ));
        }
        Ok(())
    }

    /// The semantics in force: a release's (with its named fixes), or today's for a build
    /// profile or `auto`. `--with` without a release is an error.
    pub fn semantics(&self, command: &str) -> Result<Semantics, String> {
        let with: Vec<&str> = self.with.iter().map(String::as_str).collect();
        match self.kernel.parse::<Release>() {
            Ok(release) => Semantics::of(release, &with),
            Err(_) if with.is_empty() => Ok(Semantics::current()),
            Err(_) => Err(format!(
                "--with names fixes of a release: give --kernel RELEASE ({})",
                RELEASES.map(|r| r.to_string()).join(", ")
            )),
        }
        .map_err(|e| format!("{command}: {e}"))
    }

    /// The profile to follow. A name no profile has is an error. Under `auto`, a kernel that
    /// shows a behaviour no profile describes is one line on stderr and the newest profile
    /// (only `mimic kernel-check` and `mimic kernel-probe` fail on it: they compare with the
    /// kernel, the others only follow a profile).
    pub fn profile(&self, command: &str) -> Result<KernelProfile, String> {
        match resolve(&self.kernel) {
            Ok(profile) => Ok(profile),
            Err(Unresolved::Name(why)) => Err(format!("{command}: --kernel: {why}")),
            #[cfg(feature = "kernel")]
            Err(Unresolved::Unknown(report)) => {
                let newest = KernelProfile::newest();
                eprintln!("{command}: following the newest kernel profile ({newest}): {report}");
                Ok(*newest)
            }
        }
    }
}

/// Why `--kernel` did not resolve.
enum Unresolved {
    Name(String),
    /// The live kernel shows something no profile describes (the report). Only a build that
    /// can probe the kernel meets one.
    #[cfg(feature = "kernel")]
    Unknown(String),
}

#[cfg(feature = "kernel")]
fn resolve(spec: &str) -> Result<KernelProfile, Unresolved> {
    use mimic_sim::kernel::profile;
    if let Some(mainline) = release_messages(spec) {
        return Ok(mainline);
    }
    if spec != "auto" {
        return profile::resolve(spec)
            .map(|r| r.profile)
            .map_err(Unresolved::Name);
    }
    profile::resolve(spec)
        .map(|r| r.profile)
        .map_err(Unresolved::Unknown)
}

/// A release that is not also a build's name follows mainline's messages.
fn release_messages(spec: &str) -> Option<KernelProfile> {
    let release = spec.parse::<Release>().is_ok();
    (release && KernelProfile::by_name(spec).is_err()).then(|| *KernelProfile::mainline())
}

#[cfg(not(feature = "kernel"))]
fn resolve(spec: &str) -> Result<KernelProfile, Unresolved> {
    if let Some(mainline) = release_messages(spec) {
        return Ok(mainline);
    }
    if spec == "auto" {
        return Ok(*KernelProfile::newest());
    }
    KernelProfile::by_name(spec)
        .copied()
        .map_err(|e| Unresolved::Name(e.to_string()))
}

/// What a kernel command does where bpf() is unavailable: one line saying so, and success,
/// unless `MIMIC_REQUIRE_KERNEL=1` asks for the kernel (then exit 1).
#[cfg(feature = "kernel")]
pub fn kernel_unavailable(
    command: &str,
    unavailable: &mimic_sim::kernel::Unavailable,
) -> std::process::ExitCode {
    use mimic_sim::kernel::{kernel_required, REQUIRE_KERNEL};
    if kernel_required() {
        eprintln!("{command}: {unavailable}, and {REQUIRE_KERNEL}=1 requires the kernel");
        std::process::ExitCode::from(1)
    } else {
        println!("{unavailable} ({command})");
        std::process::ExitCode::SUCCESS
    }
}
