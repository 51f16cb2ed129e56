//! The properties of the fuzz targets, one module per target, each with `check(data)` that
//! panics on a finding, and their shared helpers (the mutant switch read from the environment).
//! `fuzz/fuzz_targets/<name>.rs` wraps `check` for libFuzzer; [`replay`] runs a target by name
//! with explicit mutants (`mimic fuzz-replay`, and `sim/tests/fuzz_regressions.rs`, which replays
//! the files of `fuzz/regressions/<name>/` under plain `cargo test`).

pub mod asm_roundtrip;
pub mod cli_inputs;
pub mod interp_diff;
pub mod map_ops;
pub mod object_load;
pub mod replay;
pub mod sim_schedule;
pub mod verify_exec;

use mimic_core::mutants::{Mutant, Mutants};
use std::sync::OnceLock;

/// The mutants switched on by `MIMIC_MUTANTS=id,id` (empty or unset: the correct core). An
/// unknown id aborts the run at the first input with the list of known ids, so a typo cannot
/// silently fuzz the correct code.
pub fn mutants_from_env() -> Mutants {
    static MUTANTS: OnceLock<Mutants> = OnceLock::new();
    *MUTANTS.get_or_init(|| {
        let raw = std::env::var("MIMIC_MUTANTS").unwrap_or_default();
        let mutants = parse_mutants(&raw).unwrap_or_else(|e| panic!("MIMIC_MUTANTS: {e}"));
        if !mutants.is_empty() {
            eprintln!("mimic-fuzz: mutants on: {mutants}");
        }
        mutants
    })
}

/// `len` pseudo-random bytes from a xorshift `state`: stand-ins for fuzz inputs in tests and
/// examples (fixed seeds, so the same inputs on every machine).
pub fn pseudo_random(state: &mut u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| {
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            *state as u8
        })
        .collect()
}

/// Parses `id,id,...` (whitespace and empty items ignored).
pub fn parse_mutants(raw: &str) -> Result<Mutants, mimic_core::mutants::UnknownMutant> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse::<Mutant>)
        .collect()
}

/// Is the boolean environment switch `name` on (`1`, `true`, `yes`)?
pub fn env_flag(name: &str) -> bool {
    matches!(
        std::env::var(name).as_deref(),
        Ok("1" | "true" | "yes" | "on")
    )
}

/// The kernel mode of the targets that have one (`map_ops`, `verify_exec`): on when
/// `MIMIC_FUZZ_KERNEL` is set and bpf() works, probed once per process; one line on stderr says
/// which (`target` names the first target that asked, the one a fuzz binary runs).
#[cfg(feature = "kernel")]
pub fn kernel_mode(target: &str) -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| {
        if !env_flag("MIMIC_FUZZ_KERNEL") {
            return false;
        }
        match crate::kernel::probe() {
            Ok(()) => {
                eprintln!("mimic-fuzz: {target} also runs on the kernel");
                true
            }
            Err(why) => {
                eprintln!("mimic-fuzz: kernel mode skipped: {why}");
                false
            }
        }
    })
}
