//! `cli_inputs`: every kind of file the `mimic` command reads (map specs, scenarios, assembly,
//! fuzz crash files) through the command's own readers. The property lives in
//! `mimic_sim::fuzz::cli_inputs` so regression tests can replay crash files without libFuzzer.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mimic_sim::fuzz::cli_inputs::check(data));
