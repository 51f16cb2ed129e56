//! Replays every file under `fuzz/regressions/<target>/` through the target's property
//! (`mimic_sim::fuzz`), without libFuzzer or sanitizers: `cargo test --manifest-path
//! fuzz/Cargo.toml`. A crash found by a campaign becomes a regression test by copying its
//! (minimised) artifact into the target's folder; the test fails until the bug is fixed.

use std::fs;
use std::path::Path;

#[test]
fn every_saved_crash_input_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions");
    let mut replayed = 0;
    let mut failures = Vec::new();
    for (target, check) in mimic_sim::fuzz::ALL {
        let dir = root.join(target);
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for file in files {
            if file.extension().is_some_and(|x| x == "md") {
                continue;
            }
            let data = fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            replayed += 1;
            if let Err(panic) = std::panic::catch_unwind(|| check(&data)) {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{target}: {}: {why}", file.display()));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {replayed} saved inputs fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
