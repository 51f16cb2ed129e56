//! `object_load`: any bytes as a BPF object through the object loader and the verifier. The
//! property lives in `mimic_sim::fuzz::object_load` so regression tests can replay crash files
//! without libFuzzer.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mimic_sim::fuzz::object_load::check(data));
