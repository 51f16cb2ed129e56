//! The verifier-side mutants, each detected for its own reason.
//!
//! * `inner_map_uid_always`: every inner-map lookup result gets its own identity, so states
//!   reached through different lookups never compare equal: pruning stops working and the
//!   processed-instruction count explodes (exponential in the number of diamonds).
//! * `meta_elem_size_zero`: the meta of an array template has `elem_size = 0`; the inlined inner
//!   lookup then scales every index to 0, so `inner[3]` reads `inner[0]` (the selftest
//!   `inner_array_lookup`). Checked by evaluating the inlined lookup code on a concrete key.
//! * `inline_dynamic_inner`: the fixup inlines a `BPF_F_INNER_MAP` inner lookup with the
//!   template's bound, so a smaller inner array is read out of bounds.

mod verifier_common;

use mimic_core::bpf::fixup::fixup;
use mimic_core::bpf::verifier::{verify, MapDesc, MapTable, VerifyOpts};
use mimic_core::isa::*;
use mimic_core::maps::ARRAY_VALUE_OFFSET;
use mimic_core::mutants::{Mutant, Mutants};
use mimic_core::uapi::{MapType, BPF_F_INNER_MAP};
use verifier_common::*;

/// Kernel 6.18's counts for `inner_lookup_diamonds(n)` with `BPF_F_TEST_STATE_FREQ`.
const KERNEL_DIAMONDS_10: u64 = 110;

fn processed(prog: &[Insn], mutants: Mutants) -> u64 {
    let opts = VerifyOpts {
        test_state_freq: true,
        mutants,
        ..VerifyOpts::default()
    };
    verify(prog, &maps(), opts)
        .expect("diamonds are valid")
        .stats
        .processed
}

#[test]
fn inner_map_uid_always_defeats_pruning_of_inner_lookups() {
    assert_eq!(
        processed(&inner_lookup_diamonds(10), Mutants::NONE),
        KERNEL_DIAMONDS_10,
        "pruning matches the kernel's count"
    );
    let uid = Mutants::only(Mutant::InnerMapUidAlways);
    let (c7, b7) = (
        processed(&inner_lookup_diamonds(7), Mutants::NONE),
        processed(&inner_lookup_diamonds(7), uid),
    );
    let (c8, b8) = (
        processed(&inner_lookup_diamonds(8), Mutants::NONE),
        processed(&inner_lookup_diamonds(8), uid),
    );
    assert!(b7 > 20 * c7, "state explosion expected: {b7} vs {c7}");
    assert!(
        c8 - c7 < 20,
        "correct grows by a constant per diamond: {c7} -> {c8}"
    );
    assert!(
        b8 > b7 * 3 / 2,
        "buggy roughly doubles per diamond: {b7} -> {b8}"
    );
    // The selftest's program itself has a dead second chain in 6.18 (constant-key elision),
    // so its count stays the kernel's 15 either way.
    let selftest = map_in_map_state_pruning();
    assert_eq!(processed(&selftest, Mutants::NONE), 15);
}

/// Evaluates the straight-line code an inlined lookup became (only the instructions
/// `gen_lookup` emits), from the call's `r1 = map`, `r2 = &key`; returns `r0` as an offset into
/// the map object (`None`: NULL), reading slots through `slot`.
fn eval_inlined(code: &[Insn], map_base: u64, key: u32, slot: impl Fn(u64) -> u64) -> Option<u64> {
    let mut r = [0u64; 11];
    r[1] = map_base;
    let mut pc = 0;
    while pc < code.len() {
        let i = code[pc];
        let (k, x) = (i.imm as i64 as u64, r[i.src as usize]);
        match i.code {
            0x07 => r[i.dst as usize] = r[i.dst as usize].wrapping_add(k),
            0x0f => r[i.dst as usize] = r[i.dst as usize].wrapping_add(x),
            0x61 => r[i.dst as usize] = u64::from(key),
            0x79 => r[i.dst as usize] = slot(x),
            0x35 if r[i.dst as usize] >= k => pc = (pc as i64 + i64::from(i.off)) as usize,
            0x15 if r[i.dst as usize] == k => pc = (pc as i64 + i64::from(i.off)) as usize,
            0x35 | 0x15 => {}
            0x05 => pc = (pc as i64 + i64::from(i.off)) as usize,
            0x54 => r[i.dst as usize] = u64::from(r[i.dst as usize] as u32 & i.imm as u32),
            0x67 => r[i.dst as usize] <<= i.imm,
            0x27 => r[i.dst as usize] = r[i.dst as usize].wrapping_mul(k),
            0xb7 => r[i.dst as usize] = k,
            other => panic!("not lookup code: {other:#x}"),
        }
        pc += 1;
    }
    (r[0] != 0).then(|| r[0] - map_base)
}

/// `inner_array_lookup`: HASH_OF_MAPS[2] of ARRAY(5); the program reads `inner[3]`.
fn inner_array_lookup(meta: MapDesc) -> (Vec<Insn>, MapTable) {
    let maps = MapTable(vec![(
        FD_HASH_OF_MAPS,
        MapDesc::new(MapType::HashOfMaps, 4, 4, 2, 0)
            .with_meta(meta)
            .with_id(13, 0x3000_0d00_0000_0000),
    )]);
    let prog = Prog::new()
        .key0()
        .map(1, FD_HASH_OF_MAPS)
        .lookup()
        .i(Insn::jmp_imm(BPF_JEQ, 0, 0, 7))
        .i(Insn::st_mem(BPF_W, 10, -8, 3))
        .i(Insn::mov64_reg(2, 10))
        .i(Insn::alu64_imm(BPF_ADD, 2, -8))
        .i(Insn::mov64_reg(1, 0))
        .lookup()
        .i(Insn::jmp_imm(BPF_JEQ, 0, 0, 1))
        .i(Insn::st_mem(BPF_W, 0, 0, 2))
        .i(Insn::mov64_imm(0, 0))
        .i(Insn::exit())
        .0;
    (prog, maps)
}

/// The inlined inner lookup (the code that replaced the second call) of a fixed-up program.
fn inner_lookup_code(prog: &[Insn], maps: &MapTable, mutants: Mutants) -> Vec<Insn> {
    let v = verify(prog, maps, VerifyOpts::default()).expect("valid");
    let fixed = fixup(&v, mutants).expect("fixups");
    // The inner call was at 12; the code between its new position and the next original insn.
    fixed.insns[fixed.new_pc[12]..fixed.new_pc[13]].to_vec()
}

#[test]
fn meta_elem_size_zero_makes_inlined_inner_lookups_read_element_zero() {
    let good = MapDesc::new(MapType::Array, 4, 4, 5, 0);
    let mut buggy = good.clone();
    buggy.elem_size = 0; // what the bug's meta records (modelled where the meta is built)
    let value_addr = |meta: MapDesc| {
        let (prog, maps) = inner_array_lookup(meta);
        let code = inner_lookup_code(&prog, &maps, Mutants::NONE);
        eval_inlined(&code, 0x1000, 3, |_| 0)
    };
    let elem = |i: u64| Some(u64::from(ARRAY_VALUE_OFFSET) + 8 * i);
    assert_eq!(value_addr(good), elem(3), "inner[3] is element 3");
    assert_eq!(
        value_addr(buggy),
        elem(0),
        "the bug reads inner[0] for inner[3]: wrong value"
    );
}

#[test]
fn inline_dynamic_inner_bounds_inner_lookups_by_the_template_not_the_map() {
    // Template: BPF_F_INNER_MAP array of 5; a stored inner array has only 3 entries.
    let template = MapDesc::new(MapType::Array, 4, 4, 5, BPF_F_INNER_MAP);
    let (prog, maps) = inner_array_lookup(template);
    let correct = inner_lookup_code(&prog, &maps, Mutants::NONE);
    assert_eq!(
        correct.len(),
        1,
        "a direct call of array_map_lookup_elem: {correct:?}"
    );
    let buggy = inner_lookup_code(&prog, &maps, Mutants::only(Mutant::InlineDynamicInner));
    let runtime_max_entries = 3u64;
    let got =
        eval_inlined(&buggy, 0x1000, 4, |_| 0).expect("the template's bound lets key 4 through");
    let end_of_values = u64::from(ARRAY_VALUE_OFFSET) + 8 * runtime_max_entries;
    assert!(
        got >= end_of_values,
        "inner[4] of a 3-entry array is out of bounds: offset {got}"
    );
}

#[test]
#[ignore = "prints the processed counts recorded in BENCHMARKS.md"]
fn print_processed_counts() {
    for n in [1usize, 5, 8, 10] {
        let prog = inner_lookup_diamonds(n);
        let plain = VerifyOpts::default();
        println!(
            "diamonds {n}: state_freq correct {} buggy {}; default heuristic correct {}",
            processed(&prog, Mutants::NONE),
            processed(&prog, Mutants::only(Mutant::InnerMapUidAlways)),
            verify(&prog, &maps(), plain)
                .expect("valid")
                .stats
                .processed,
        );
    }
}
