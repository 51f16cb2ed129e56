//! The seed program (commit 4a8f87e60f6d, `004_da3b74a65ea3445b`): an outer array-of-maps of 3
//! whose template is a `BPF_F_INNER_MAP` array; lookup `outer[0]`, then `inner[0]`. Verified and
//! fixed up, its xlated dump must have the seed dump's shape line for line: the outer lookup
//! inlined, the inner lookup a direct call of `array_map_lookup_elem`.

mod verifier_common;

use mimic_core::bpf::fixup::fixup;
use mimic_core::bpf::verifier::{corpus, verify, MapDesc, MapTable, VerifyOpts};
use mimic_core::isa::*;
use mimic_core::mutants::Mutants;
use mimic_core::uapi::MapType;

const OUTER_FD: i32 = 3;

fn seed_maps() -> MapTable {
    corpus::seed_004_maps(OUTER_FD)
}

/// `handle__sys_enter` as the loader hands it to the kernel (the shipped `prog.s`).
fn seed_program() -> Vec<Insn> {
    corpus::seed_004(OUTER_FD).expect("examples/seed_004/prog.s assembles")
}

fn normalise(line: &str) -> String {
    let mut out = String::new();
    for word in line.split(' ') {
        let w = if word.starts_with("map[id:") {
            "map[id:N]".to_string()
        } else if let Some((name, _)) = word.split_once('#') {
            format!("{name}#ADDR")
        } else if word == "272" || word == "312" {
            "VALUE_OFF".to_string()
        } else {
            word.to_string()
        };
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&w);
    }
    out
}

#[test]
fn seed_program_is_accepted_and_its_xlated_dump_has_the_seed_shape() {
    let v = verify(&seed_program(), &seed_maps(), VerifyOpts::default())
        .expect("the seed program is valid");
    let fixed = fixup(&v, Mutants::NONE).expect("fixups apply");
    let dump = fixed.dump_xlated().expect("printable");
    let ours: Vec<String> = dump.lines().map(|l| normalise(l.trim())).collect();
    // The shape the issue names, independent of the seed file.
    assert!(
        ours.iter().any(|l| l.ends_with("if r0 >= 0x3 goto pc+5")),
        "{dump}"
    );
    assert!(ours.iter().any(|l| l.ends_with("r0 <<= 3")), "{dump}");
    assert!(
        ours.iter()
            .any(|l| l.ends_with("(85) call array_map_lookup_elem#ADDR")),
        "{dump}"
    );
    let seed: Vec<String> = corpus::seed_004_dump()
        .iter()
        .map(|l| normalise(l.trim()))
        .collect();
    assert_eq!(seed.len(), 24, "the seed dump has 24 instruction lines");
    for (i, (a, b)) in ours.iter().zip(&seed).enumerate() {
        assert_eq!(a, b, "line {i} differs\nours:\n{dump}");
    }
    assert_eq!(ours.len(), seed.len(), "ours:\n{dump}");
}

#[test]
fn without_the_inner_map_flag_the_inner_lookup_is_inlined_against_the_meta() {
    let template = MapDesc::new(MapType::Array, 4, 4, 1, 0);
    let maps = MapTable(vec![(
        OUTER_FD,
        MapDesc::new(MapType::ArrayOfMaps, 4, 4, 3, 0)
            .with_meta(template)
            .with_id(corpus::SEED_004_MAP_ID, 0x3000_01d4_0000_0000),
    )]);
    let v = verify(&seed_program(), &maps, VerifyOpts::default()).expect("valid");
    let dump = fixup(&v, Mutants::NONE)
        .expect("fixups")
        .dump_xlated()
        .expect("printable");
    assert!(
        !dump.contains("array_map_lookup_elem"),
        "inner lookup inlined:\n{dump}"
    );
    assert!(
        dump.contains("if r0 >= 0x1 goto pc+3"),
        "bound is the meta's max_entries:\n{dump}"
    );
}

#[test]
fn unprivileged_inlined_lookups_mask_the_index() {
    let opts = VerifyOpts {
        privileged: false,
        ..VerifyOpts::default()
    };
    let v = verify(&seed_program(), &seed_maps(), opts).expect("valid unprivileged too");
    let dump = fixup(&v, Mutants::NONE)
        .expect("fixups")
        .dump_xlated()
        .expect("printable");
    assert!(dump.contains("if r0 >= 0x3 goto pc+6"), "{dump}");
    assert!(
        dump.contains("w0 &= 3"),
        "index_mask of 3 entries is 3:\n{dump}"
    );
}
