//! The `cli_inputs` property (`mimic_sim::fuzz::cli_inputs`) under plain `cargo test`: every
//! shipped file the command reads, whole and mutated (truncated, bytes flipped, bytes inserted),
//! and pseudo-random inputs for every reader, from fixed seeds. A panic is a finding; the
//! property also checks that refusals name the file and the place.

use mimic_sim::fuzz::cli_inputs::{check, READERS};
use mimic_sim::fuzz::pseudo_random;
use std::path::Path;

/// The shipped files, each with the reader that reads it.
fn shipped() -> Vec<(usize, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let reader = |name: &str| READERS.iter().position(|r| *r == name).unwrap();
    let mut out = Vec::new();
    for (dir, ext, which) in [
        ("examples/seed_000", "json", "maps-spec"),
        ("examples/seed_004", "json", "maps-spec"),
        ("examples/seed_000", "s", "assembly"),
        ("examples/seed_004", "s", "assembly"),
        ("sim/scenarios", "toml", "scenario"),
    ] {
        let mut files: Vec<_> = std::fs::read_dir(root.join(dir))
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == ext))
            .collect();
        files.sort();
        for f in files {
            let bytes = std::fs::read(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            out.push((reader(which), bytes));
        }
    }
    assert!(
        out.len() >= 15,
        "the shipped files were found: {}",
        out.len()
    );
    out
}

fn input(reader: usize, body: &[u8]) -> Vec<u8> {
    let mut data = vec![reader as u8];
    data.extend_from_slice(body);
    data
}

#[test]
fn shipped_files_read_cleanly_whole_and_mutated() {
    let mut state = 0xc11_u64;
    for (reader, body) in shipped() {
        check(&input(reader, &body));
        for round in 0..40 {
            let r = pseudo_random(&mut state, 4);
            let at = usize::from(u16::from_le_bytes([r[0], r[1]])) % body.len().max(1);
            let mut mutated = body.clone();
            match round % 5 {
                0 => mutated.truncate(at),
                1 => mutated[at.min(body.len().saturating_sub(1))] ^= r[2] | 1,
                2 => mutated.insert(at, r[2]),
                // A number where the file has a digit: past u32, and past 2^31.
                n => {
                    let big: &[u8] = if n == 3 {
                        b"4294967296999"
                    } else {
                        b"3000000000"
                    };
                    if let Some(d) = mutated.iter().skip(at).position(u8::is_ascii_digit) {
                        let at = at + d;
                        mutated.splice(at..at + 1, big.iter().copied());
                    }
                }
            }
            check(&input(reader, &mutated));
        }
    }
}

#[test]
fn pseudo_random_inputs_of_every_reader_never_panic() {
    let mut state = 0x05ee_dc11_u64;
    for reader in 0..READERS.len() {
        for len in [0, 1, 7, 40, 200] {
            for _ in 0..40 {
                check(&input(reader, &pseudo_random(&mut state, len)));
            }
        }
    }
}
