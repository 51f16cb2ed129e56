//! Replays every file under `fuzz/regressions/<target>/` through the target's property
//! (`mimic_sim::fuzz::replay::crash_of`, the same decoding and check as the fuzz binary), without
//! libFuzzer or sanitizers, as part of `cargo test --workspace`.
//!
//! * Every file must pass on the correct core: a crash found by a campaign becomes a regression
//!   test by copying its (minimised) artifact into the target's folder; the test fails until the
//!   bug is fixed.
//! * A file whose name starts with a mutant id and `-` (`inline_dynamic_inner-oob-read`) must
//!   also crash with that mutant on: it pins that the target's oracle still catches that bug.
//!
//! On a failure, `mimic fuzz-replay <target> <file>` (with `--mutants <id>` for the second kind)
//! prints the program, the set-up and the failing access.

use mimic_core::mutants::{Mutant, Mutants};
use mimic_sim::fuzz::replay::{crash_of, TARGETS};
use std::fs;
use std::path::{Path, PathBuf};

fn saved_inputs() -> Vec<(&'static str, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions");
    let mut out = Vec::new();
    for target in TARGETS {
        let Ok(entries) = fs::read_dir(root.join(target)) else {
            continue;
        };
        let mut files: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        out.extend(
            files
                .into_iter()
                .filter(|f| f.is_file() && !matches!(f.extension(), Some(x) if x == "md"))
                .map(|f| (target, f)),
        );
    }
    out
}

/// A crash's message for a test failure: its non-empty lines (at most 12), indented, or a
/// line saying the panic carried no text.
fn reason(why: &str) -> String {
    let lines: Vec<&str> = why
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(12)
        .collect();
    if lines.is_empty() {
        return "    (the target panicked with an empty message)".to_string();
    }
    lines
        .iter()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The mutant a file's name starts with (`<mutant id>-...`), if any.
fn pinned_mutant(file: &Path) -> Option<Mutant> {
    let name = file.file_name()?.to_str()?;
    Mutant::ALL
        .into_iter()
        .find(|m| name.starts_with(&format!("{}-", m.id())))
}

#[test]
fn every_saved_crash_input_passes_its_target_on_the_correct_core() {
    let inputs = saved_inputs();
    let mut failures = Vec::new();
    for (target, file) in &inputs {
        let data = fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        match crash_of(target, &data, Mutants::NONE) {
            Ok(None) => {}
            Ok(Some(why)) => failures.push(format!(
                "fuzz target {target}, input {}: crashes on the correct core:\n{}\n  \
                 (mimic fuzz-replay {target} {})",
                file.display(),
                reason(&why),
                file.display()
            )),
            Err(e) => failures.push(format!(
                "fuzz target {target}, input {}: {e}",
                file.display()
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} saved inputs fail on the correct core:\n{}",
        failures.len(),
        inputs.len(),
        failures.join("\n")
    );
}

#[test]
fn every_mutant_named_input_still_crashes_with_its_mutant() {
    let mut pinned = 0;
    let mut failures = Vec::new();
    for (target, file) in saved_inputs() {
        let Some(mutant) = pinned_mutant(&file) else {
            continue;
        };
        pinned += 1;
        let data = fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        match crash_of(target, &data, Mutants::only(mutant)) {
            Ok(Some(_)) => {}
            Ok(None) => failures.push(format!(
                "fuzz target {target}, input {}: no longer caught with {mutant} on (did the \
                 target's input format change? save a new crash file)\n  (mimic fuzz-replay \
                 {target} {} --mutants {mutant})",
                file.display(),
                file.display()
            )),
            Err(e) => failures.push(format!(
                "fuzz target {target}, input {}: {e}",
                file.display()
            )),
        }
    }
    assert!(
        pinned > 0,
        "no mutant-named input in fuzz/regressions: the detections are not pinned"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
