//! `mimic history`: the kernel-history table (`mimic_core::history`) as the markdown page
//! `docs/kernel-history.md` holds: each upstream change, its first release, the behaviour
//! before it, the releases it affects and its stable backports, then each release profile.

use std::process::ExitCode;

pub fn run() -> ExitCode {
    print!("{}", mimic_core::history::markdown());
    ExitCode::SUCCESS
}
