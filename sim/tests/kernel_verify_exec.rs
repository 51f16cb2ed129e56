//! The kernel mode of the `verify_exec` fuzz target on fixed inputs: hand-built map-in-map reads
//! and seeded pseudo-random inputs run on the kernel and on mimic with agreeing verdicts and
//! test runs, and a long loop of inputs leaves no fd behind in the process. Skips with one line
//! when bpf() is refused.
#![cfg(feature = "kernel")]

mod fuzz_cases;

use arbitrary::{Arbitrary, Unstructured};
use fuzz_cases::{inner_read, pseudo_random};
use mimic_core::mutants::Mutants;
use mimic_sim::fuzz::verify_exec::kernel::{against_kernel, Outcome};
use mimic_sim::fuzz::verify_exec::Case;
use std::sync::{Mutex, MutexGuard};

/// The fd count is process-wide and the test harness runs tests on threads: the tests of this
/// file take turns so one's kernel fds never show up in the other's count.
static SERIAL: Mutex<()> = Mutex::new(());

/// This test's turn (a test that failed while holding it does not block the other).
fn take_turn() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Seeded inputs per run: enough to reach accepted and refused programs of every piece kind.
const SEEDED: usize = 300;
/// Bytes per seeded input (a set-up, the context and several pieces).
const INPUT_LEN: usize = 160;

fn bpf_usable(what: &str) -> bool {
    mimic_sim::kernel::require_or_skip(what, mimic_sim::kernel::probe()).is_some()
}

/// `SEEDED` inputs, or `MIMIC_VERIFY_EXEC_SWEEP` of them (BENCHMARKS.md's long kernel-mode run).
fn seeded() -> impl Iterator<Item = Case> {
    let inputs = std::env::var("MIMIC_VERIFY_EXEC_SWEEP")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(SEEDED);
    let mut state = 0x5eed_u64;
    (0..inputs).filter_map(move |_| {
        let data = pseudo_random(&mut state, INPUT_LEN);
        Case::arbitrary_take_rest(Unstructured::new(&data)).ok()
    })
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

#[test]
fn map_in_map_reads_get_the_kernels_verdict_and_run_to_the_same_r0_ctx_and_maps() {
    let _turn = take_turn();
    if !bpf_usable("kernel_verify_exec") {
        return;
    }
    // In bounds of an inner map of the template's size: both accept and run; key 9 is past
    // the template's 8 entries: both refuse nothing (the lookup returns NULL) and run too.
    for (flag, size, key) in [(false, 1, 3), (true, 1, 3), (false, 1, 9), (true, 0, 2)] {
        let case = inner_read(flag, size, key);
        let outcome = against_kernel(&case, Mutants::NONE);
        assert_eq!(
            outcome,
            Outcome::BothRun,
            "inner_read({flag}, {size}, {key}) was not run on both"
        );
    }
}

#[test]
fn seeded_inputs_agree_with_the_kernel_and_leak_no_fd() {
    let _turn = take_turn();
    if !bpf_usable("kernel_verify_exec") {
        return;
    }
    let mut inputs = 0;
    let before = open_fds();
    let mut counts = [0usize; 4];
    for case in seeded() {
        inputs += 1;
        // A disagreement panics with the case's listing.
        match against_kernel(&case, Mutants::NONE) {
            Outcome::NoSetup => counts[0] += 1,
            Outcome::BothRefuse => counts[1] += 1,
            Outcome::BothRun => counts[2] += 1,
            Outcome::BothAcceptKernelStruct => counts[3] += 1,
        }
    }
    let after = open_fds();
    println!(
        "{} seeded inputs: no set-up {}, both refuse {}, both run {}, both accept a read of a \
         kernel struct (runs not compared) {}",
        inputs, counts[0], counts[1], counts[2], counts[3]
    );
    assert!(counts[2] > 0, "no seeded input ran on both: {counts:?}");
    assert!(
        counts[1] > 0,
        "no seeded input was refused by both: {counts:?}"
    );
    assert_eq!(
        after, before,
        "open fds grew from {before} to {after} over {inputs} inputs"
    );
}

/// `verify_exec`'s packet programs on the kernel: seeded inputs (the mode byte's cases), each
/// loaded as XDP or tc (alternately) there and verified by mimic for the live kernel's profile; verdicts agree,
/// and programs both accept run to the same r0 and packet on the case's packets (G4, a refusal
/// whose message differs only in a register's id, is the one difference allowed).
#[test]
fn seeded_packet_programs_get_the_kernels_verdict_and_test_runs() {
    use mimic_sim::fuzz::verify_exec::packet::{compare_packet_on_kernel, decode, Hook};
    let _turn = take_turn();
    if !bpf_usable("kernel_verify_exec packet programs") {
        return;
    }
    // MIMIC_PACKET_SWEEP=N runs N inputs instead (BENCHMARKS.md's sweep).
    let inputs = std::env::var("MIMIC_PACKET_SWEEP")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(SEEDED);
    let mut state = 0x7061_636b_u64;
    let before = open_fds();
    let (mut ran, mut refused) = (0, 0);
    for n in 0..inputs {
        let data = pseudo_random(&mut state, 4 + n % 60);
        let Some(case) = decode(&data) else {
            continue;
        };
        // Every other input as a tc program.
        let hook = if n % 2 == 0 { Hook::Xdp } else { Hook::Tc };
        match compare_packet_on_kernel(&case, hook, Mutants::NONE) {
            Ok(true) => ran += 1,
            Ok(false) => refused += 1,
            Err(finding) => panic!("packet input {n} ({}): {finding}", hook.name()),
        }
    }
    println!("{ran} packet programs ran on both, {refused} refused by both");
    assert!(
        ran > SEEDED / 10 && refused > SEEDED / 20,
        "ran {ran}, refused {refused}"
    );
    assert_eq!(
        open_fds(),
        before,
        "kernel fds left open by packet programs"
    );
}
