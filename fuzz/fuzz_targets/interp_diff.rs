//! `interp_diff`: mimic's interpreter against rbpf. The property lives in
//! `mimic_sim::fuzz::interp_diff` so regression tests can replay crash files without libFuzzer.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mimic_sim::fuzz::interp_diff::check(data));
