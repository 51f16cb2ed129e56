//! `asm_roundtrip`: assembler, disassembler, decoder and encoder round trips. The property lives in
//! `mimic_sim::fuzz::asm_roundtrip` so regression tests can replay crash files without libFuzzer.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mimic_sim::fuzz::asm_roundtrip::check(data));
