//! `map_ops`: op sequences on the world against the reference model. The property lives in
//! `mimic_sim::fuzz::map_ops` so regression tests can replay crash files without libFuzzer.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mimic_sim::fuzz::map_ops::check(data));
