//! Subcommand glue, one module per command.
pub mod conformance;
pub mod fuzz_replay;
pub mod inspect;
pub mod kernel_check;
pub mod kernel_probe;
pub mod mutants;
pub mod replay;
pub mod run;
pub mod shrink;
pub mod verify;

use clap::Args;
use mimic_core::profile::KernelProfile;

/// `--kernel auto|NAME`: the kernel build whose behaviours (the verifier's messages, where
/// builds differ) a command follows. Shared by every command that verifies or compares.
#[derive(Args, Clone, Debug, PartialEq, Eq)]
pub struct KernelArg {
    /// Kernel profile: `auto` probes this machine's kernel once (the newest profile where
    /// bpf() is unavailable), or a profile's name (`mimic kernel-probe` lists them).
    #[arg(long = "kernel", value_name = "auto|NAME", default_value = "auto")]
    pub kernel: String,
}

impl Default for KernelArg {
    fn default() -> Self {
        KernelArg {
            kernel: "auto".to_string(),
        }
    }
}

impl KernelArg {
    /// The profile to follow. A name no profile has is an error. Under `auto`, a kernel that
    /// shows a behaviour no profile describes is one line on stderr and the newest profile
    /// (only `mimic kernel-check` and `mimic kernel-probe` fail on it: they compare with the
    /// kernel, the others only follow a profile).
    pub fn profile(&self, command: &str) -> Result<KernelProfile, String> {
        match resolve(&self.kernel) {
            Ok(profile) => Ok(profile),
            Err(Unresolved::Name(why)) => Err(format!("{command}: --kernel: {why}")),
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
    /// The live kernel shows something no profile describes (the report).
    Unknown(String),
}

#[cfg(feature = "kernel")]
fn resolve(spec: &str) -> Result<KernelProfile, Unresolved> {
    use mimic_sim::kernel::profile;
    if spec != "auto" {
        return profile::resolve(spec)
            .map(|r| r.profile)
            .map_err(Unresolved::Name);
    }
    profile::resolve(spec)
        .map(|r| r.profile)
        .map_err(Unresolved::Unknown)
}

#[cfg(not(feature = "kernel"))]
fn resolve(spec: &str) -> Result<KernelProfile, Unresolved> {
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
