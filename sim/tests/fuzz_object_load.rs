//! The `object_load` fuzz property on inputs a fuzzer starts from or reaches early: the example
//! objects load, verify and close clean; truncations and byte flips of them, and bytes that are
//! no object, are refused with an error naming what (or load), and nothing panics.

use mimic_sim::fuzz::object_load::load;
use mimic_sim::fuzz::pseudo_random;
use std::path::Path;

fn example_objects() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bpf");
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (run ci/build-objects)", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".bpf.o"))
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read(&p).expect("readable"),
            )
        })
        .collect();
    out.sort();
    assert!(
        out.len() >= 4,
        "{}: example objects not built",
        dir.display()
    );
    out
}

#[test]
fn every_example_object_loads_verifies_and_closes_clean() {
    for (name, bytes) in example_objects() {
        let steps = load(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(steps.contains("accepted"), "{name}: {steps}");
        assert!(!steps.contains("refused"), "{name}: {steps}");
    }
}

#[test]
fn truncated_and_flipped_objects_are_refused_by_name_or_load() {
    let mut refused = 0;
    let mut state = 0x6f62_6a65_6374_u64;
    for (name, bytes) in example_objects() {
        // Every prefix length on a coarse grid, and single-byte flips at pseudo-random places.
        for len in (0..bytes.len()).step_by(97) {
            if let Err(e) = load(&bytes[..len]) {
                assert!(!e.trim().is_empty(), "{name}[..{len}]: empty refusal");
                refused += 1;
            }
        }
        for _ in 0..200 {
            let mut copy = bytes.clone();
            let at = (pseudo_random(&mut state, 4)
                .iter()
                .fold(0usize, |a, &b| a << 8 | b as usize))
                % copy.len();
            copy[at] ^= pseudo_random(&mut state, 1)[0] | 1;
            let _ = load(&copy);
        }
    }
    assert!(refused > 0, "no truncated object was refused");
}

#[test]
fn bytes_that_are_no_object_are_refused() {
    let mut state = 7;
    for len in [0, 1, 16, 64, 1024] {
        let bytes = pseudo_random(&mut state, len);
        let e = load(&bytes).expect_err("random bytes are no ELF object");
        assert!(!e.is_empty());
    }
}
