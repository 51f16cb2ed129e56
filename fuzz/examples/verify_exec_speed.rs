//! Cost of one `verify_exec` input without libFuzzer or coverage instrumentation: builds
//! pseudo-random inputs, runs the property on each, prints the mean time per input, then the
//! same inputs split by phase (decoding the input, building its world, verifying without and
//! with the oracle's state collection, fixing up) and a program-size summary.
//!
//! `cargo run --release --example verify_exec_speed` (from fuzz/); with a directory argument
//! (e.g. `corpus/verify_exec`) the inputs are that corpus's files instead; a second argument
//! repeats each measurement that many times over the same inputs (for profilers).

use libfuzzer_sys::arbitrary::{Arbitrary, Unstructured};
use mimic_core::bpf::fixup::fixup;
use mimic_core::bpf::verifier::{verify, VerifyOpts};
use mimic_core::mutants::Mutants;
use mimic_sim::fuzz::pseudo_random;
use mimic_sim::fuzz::verify_exec::{assemble_pieces, build_world, check, Case, CTX_LEN};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Inputs per measurement and bytes per input (about what the campaigns' corpora hold).
const INPUTS: usize = 2000;
const INPUT_LEN: usize = 160;

fn main() {
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
    let inputs = corpus.unwrap_or_else(generated);
    let repeat: u32 = match std::env::args().nth(2) {
        Some(n) => n
            .parse()
            .unwrap_or_else(|e| panic!("repeat count {n:?} is not a number: {e}")),
        None => 1,
    };
    let per_input = time(&inputs, repeat, |input| check(input));
    println!(
        "verify_exec property: {per_input:?} per input ({:.0}/s) over {} inputs",
        1.0 / per_input.as_secs_f64(),
        inputs.len()
    );
    phases(&inputs, repeat.max(3));
}

/// Pseudo-random inputs (fixed seed).
fn generated() -> Vec<Vec<u8>> {
    let mut state = 0x1234_5678_9abc_def0u64;
    (0..INPUTS)
        .map(|_| pseudo_random(&mut state, INPUT_LEN))
        .collect()
}

/// Mean time of `f` per item over `repeat` passes.
fn time<T>(items: &[T], repeat: u32, mut f: impl FnMut(&T)) -> Duration {
    let start = Instant::now();
    for _ in 0..repeat {
        items.iter().for_each(&mut f);
    }
    start.elapsed() / (items.len().max(1) as u32 * repeat.max(1))
}

/// The property's phases, each timed alone over the inputs that get that far (times are per
/// input of the whole set, so they add up to about the property's).
fn phases(inputs: &[Vec<u8>], repeat: u32) {
    let decode = |data: &Vec<u8>| Case::arbitrary_take_rest(Unstructured::new(data)).ok();
    let cases: Vec<Case> = inputs.iter().filter_map(decode).collect();
    let built: Vec<_> = cases
        .iter()
        .filter_map(|case| {
            let (sys, fds) = build_world(&case.setup, Mutants::NONE)?;
            Some((sys, assemble_pieces(&case.pieces, fds)))
        })
        .collect();
    let share = |d: Duration, n: usize| d * n as u32 / inputs.len().max(1) as u32;
    let t = time(inputs, repeat, |data| {
        black_box(decode(data));
    });
    println!("  decode the input:            {t:?}");
    let t = time(&cases, repeat, |case| {
        black_box(build_world(&case.setup, Mutants::NONE));
    });
    println!("  build the world:             {:?}", share(t, cases.len()));
    let opts = |collect_states| VerifyOpts {
        ctx_size: CTX_LEN as u32,
        collect_states,
        ..VerifyOpts::default()
    };
    for collect in [false, true] {
        let t = time(&built, repeat, |(sys, prog)| {
            black_box(verify(prog, &**sys.world(), opts(collect)).ok());
        });
        println!(
            "  verify (collect_states {collect:5}): {:?}",
            share(t, built.len())
        );
    }
    let accepted: Vec<_> = built
        .iter()
        .filter_map(|(sys, prog)| verify(prog, &**sys.world(), opts(false)).ok())
        .collect();
    let t = time(&accepted, repeat, |v| {
        black_box(fixup(v, Mutants::NONE).ok());
    });
    println!(
        "  fix up:                      {:?}",
        share(t, accepted.len())
    );
    let slots: usize = built.iter().map(|(_, p)| p.len()).sum();
    let processed: u64 = accepted.iter().map(|v| v.stats.processed).sum();
    println!(
        "  {} of {} programs accepted; {:.1} slots per program, {:.1} processed instructions per accepted one",
        accepted.len(),
        built.len(),
        slots as f64 / built.len().max(1) as f64,
        processed as f64 / accepted.len().max(1) as f64
    );
}
