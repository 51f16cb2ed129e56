//! Cost of one `verify_exec` input without libFuzzer or coverage instrumentation: builds
//! pseudo-random inputs, runs the property on each, prints the mean time per input and the time
//! to build one world. `cargo run --release --example verify_exec_speed` (from fuzz/); with a
//! directory argument (e.g. `corpus/verify_exec`) the inputs are that corpus's files instead;
//! a second argument repeats the measurement that many times over the same inputs (for
//! profilers).

use mimic_core::mutants::Mutants;
use mimic_sim::fuzz::verify_exec::{build_world, check, ArraySpec, InnerSpec, Setup};
use std::time::Instant;

/// Inputs per measurement and bytes per input (about what the campaigns' corpora hold).
const INPUTS: usize = 2000;
const INPUT_LEN: usize = 160;

fn main() {
    let mut state = 0x1234_5678_9abc_def0u64;
    let corpus: Option<Vec<Vec<u8>>> = std::env::args().nth(1).map(|dir| {
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot read corpus directory {dir}: {e}"))
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .collect();
        files.sort();
        files
            .iter()
            .filter_map(|path| std::fs::read(path).ok())
            .collect()
    });
    let generated = || -> Vec<Vec<u8>> {
        (0..INPUTS)
            .map(|_| {
                (0..INPUT_LEN)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        state as u8
                    })
                    .collect()
            })
            .collect()
    };
    let inputs = corpus.unwrap_or_else(generated);
    let repeat: u32 = match std::env::args().nth(2) {
        Some(n) => n
            .parse()
            .unwrap_or_else(|e| panic!("repeat count {n:?} is not a number: {e}")),
        None => 1,
    };
    let start = Instant::now();
    for _ in 0..repeat {
        for input in &inputs {
            check(input);
        }
    }
    let per_input = start.elapsed() / (inputs.len().max(1) as u32 * repeat.max(1));
    println!(
        "verify_exec property: {per_input:?} per input ({:.0}/s)",
        1.0 / per_input.as_secs_f64()
    );
    let setup = Setup {
        outer_hash: false,
        template: ArraySpec {
            entries: 7,
            words: 0,
            inner_flag: false,
        },
        inners: vec![InnerSpec {
            size: 1,
            entries: 0,
            same_value_size: true,
            same_flags: true,
            slot: 0,
        }],
        array: ArraySpec {
            entries: 3,
            words: 1,
            inner_flag: false,
        },
    };
    let start = Instant::now();
    for _ in 0..INPUTS {
        let _ = build_world(&setup, Mutants::NONE);
    }
    println!("build_world: {:?}", start.elapsed() / INPUTS as u32);
}
