//! The properties of the fuzz targets, one module per target, each with `check(data)` that
//! panics on a finding. `fuzz_targets/<name>.rs` wraps it for libFuzzer; `tests/regressions.rs`
//! replays the files of `regressions/<name>/` through it under plain `cargo test`.

pub mod asm_roundtrip;
pub mod interp_diff;
pub mod map_ops;
pub mod sim_schedule;
#[cfg(feature = "verifier")]
pub mod verify_exec;

/// Every target by name, for replay tools.
pub const ALL: &[(&str, fn(&[u8]))] = &[
    ("asm_roundtrip", asm_roundtrip::check),
    ("interp_diff", interp_diff::check),
    ("map_ops", map_ops::check),
    ("sim_schedule", sim_schedule::check),
    #[cfg(feature = "verifier")]
    ("verify_exec", verify_exec::check),
];
