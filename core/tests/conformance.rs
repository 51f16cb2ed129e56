//! Runs the BPF conformance suite on the executor: every `tests/*.data` must pass, and every
//! `negative/*.data` must be refused (assembler and decoder errors with their position) or fail.
//!
//! The suite is data read at test time, found by `mimic_core::bpf::suite_dir` (the submodule,
//! `MIMIC_CONFORMANCE_DIR`, or `../shared` beside the workspace). Without it these tests fail
//! with the one line saying how to get it: a skipped conformance run would hide a regression.

use mimic_core::bpf::conformance::{data_files, parse, run_case, run_dir, Outcome, Parsed};
use mimic_core::bpf::suite_dir;
use std::path::{Path, PathBuf};

fn suite() -> PathBuf {
    suite_dir::find(None, Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_conformance_program_gives_the_expected_r0() {
    let dir = suite();
    let summary = run_dir(&dir.join("tests")).expect("suite directory readable");
    let total = summary.passed + summary.failed + summary.skipped;
    println!(
        "conformance: {}/{} passed ({} failed, {} skipped)",
        summary.passed, total, summary.failed, summary.skipped
    );
    for (file, message) in &summary.failures {
        println!("FAIL {file}: {message}");
    }
    for (file, reason) in &summary.skips {
        println!("SKIP {file}: {reason}");
    }
    assert!(
        total >= 313,
        "expected the suite's 313 files, found {total}"
    );
    assert_eq!(
        summary.failed, 0,
        "conformance failures: {:?}",
        summary.failures
    );
    assert_eq!(summary.skipped, 0, "conformance skips: {:?}", summary.skips);
}

#[test]
fn negative_cases_are_refused_never_passed() {
    let dir = suite();
    let files = data_files(&dir.join("negative")).expect("negative directory readable");
    assert!(!files.is_empty(), "no negative cases found");
    let mut refused = 0;
    for path in &files {
        let name = path
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(path).expect("readable");
        let outcome = match parse(&text) {
            Ok(Parsed::Case(case)) => {
                // Assembler errors carry the file's line and the token's column.
                if let (Some(_), None) = (&case.asm, &case.raw) {
                    if let Err(message) = mimic_core::bpf::conformance::program(&case) {
                        let position = message
                            .trim_start_matches("asm ")
                            .split(':')
                            .take(2)
                            .collect::<Vec<_>>();
                        assert!(
                            position.len() == 2
                                && position.iter().all(|n| n.parse::<usize>().is_ok()),
                            "{name}: assembler error without line:column: {message}"
                        );
                        refused += 1;
                    }
                }
                run_case(&case)
            }
            Ok(Parsed::Skip(reason)) => Outcome::Skip(reason),
            Err(message) => Outcome::Fail(message),
        };
        println!("{name}: {outcome:?}");
        if name == "error.data" {
            // `or %r0, %r10` is valid and runs; the case expects an error, so it must fail.
            assert!(matches!(outcome, Outcome::Fail(_)), "{name}: {outcome:?}");
            continue;
        }
        assert!(
            !matches!(outcome, Outcome::Pass) || text.contains("-- error"),
            "{name} passed: {outcome:?}"
        );
        if name.starts_with("unused-") {
            assert_eq!(
                outcome,
                Outcome::Pass,
                "{name}: a non-zero reserved field must be refused by the decoder"
            );
        }
    }
    println!(
        "negative: {} files, {refused} refused by the assembler",
        files.len()
    );
}

#[test]
fn every_conformance_program_prints_and_round_trips_through_the_disassembler() {
    use mimic_core::bpf::{asm, print};
    let dir = suite();
    let mut programs = 0;
    for path in data_files(&dir.join("tests")).expect("suite directory readable") {
        let name = path
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(&path).expect("readable");
        let Ok(Parsed::Case(case)) = parse(&text) else {
            continue;
        };
        let insns =
            mimic_core::bpf::conformance::program(&case).unwrap_or_else(|e| panic!("{name}: {e}"));
        let dump = print::dump_xlated(&insns, &print::DefaultSymbols)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            dump.lines().all(|line| line.contains(": (")),
            "{name}: every line has its opcode prefix\n{dump}"
        );
        let listing = asm::disassemble(&insns).unwrap_or_else(|e| panic!("{name}: {e}"));
        let again = asm::assemble(&listing)
            .unwrap_or_else(|e| panic!("{name}: own listing refused: {e}\n{listing}"));
        assert_eq!(
            again, insns,
            "{name}: disassembly must reassemble to the same instructions"
        );
        programs += 1;
    }
    assert!(programs >= 313, "only {programs} programs checked");
}
