//! `sim_schedule`: fuzz bytes drive the simulator's schedules over its built-in scenarios. The
//! property lives in `mimic_sim::fuzz::sim_schedule` so crash files replay without libFuzzer.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mimic_sim::fuzz::sim_schedule::check(data));
