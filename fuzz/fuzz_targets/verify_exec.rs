//! `verify_exec`: structured programs and map set-ups through the verifier, the fixups and the
//! executor on the core's world. The property lives in `mimic_sim::fuzz::verify_exec`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mimic_sim::fuzz::verify_exec::check(data));
