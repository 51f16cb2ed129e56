//! Seed 004 (`examples/seed_004`, "Allow for map-in-map with dynamic inner array map
//! entries") on the real kernel: the program of the seed's dump, and the check that the
//! kernel's xlated program has the seed's shape.
//!
//! The seed's source: `key = 0; inner = lookup(&outer_arr_dyn, &key); if (!inner) return -1;
//! val = lookup(inner, &key); return val ? *val : -1;` where `outer_arr_dyn` is an
//! ARRAY_OF_MAPS of 3 whose template is a `BPF_F_INNER_MAP` ARRAY of 1 (u32 key, u32 value).
//! The program is the shipped example's assembly (`examples/seed_004/prog.s`, what
//! `mimic verify` reads), assembled by the core. After the kernel's fixups the outer lookup is
//! inlined (array-of-maps `map_gen_lookup`) and the inner lookup, whose template carries
//! `BPF_F_INNER_MAP`, is a direct call of the array's own lookup (its `imm` is a kernel address
//! offset, not helper id 1).
#![forbid(unsafe_code)]

use mimic_core::bpf::asm::AsmError;
use mimic_core::bpf::verifier::corpus;
use mimic_core::isa::*;
use mimic_core::uapi::{MapAttr, MapType, BPF_F_INNER_MAP};

/// Helper id of `bpf_map_lookup_elem`.
const BPF_FUNC_MAP_LOOKUP_ELEM: i32 = 1;

/// `outer_arr_dyn`'s slots: the `if r0 >= 0x3` bound of the inlined outer lookup.
pub const OUTER_MAX_ENTRIES: u32 = 3;
/// The template's entries (1); the inner arrays stored may be larger thanks to the flag.
pub const TEMPLATE_MAX_ENTRIES: u32 = 1;
/// u32 keys and values, as in the selftest's `int key; int value`.
pub const KEY_SIZE: u32 = 4;
pub const VALUE_SIZE: u32 = 4;
/// Outer maps hold inner maps (fd in, id out).
pub const OUTER_VALUE_SIZE: u32 = 4;

/// The template: a `BPF_F_INNER_MAP` array of 1.
pub fn template_attr() -> MapAttr {
    MapAttr::new(MapType::Array, KEY_SIZE, VALUE_SIZE, TEMPLATE_MAX_ENTRIES).flags(BPF_F_INNER_MAP)
}

/// An inner array that fits the template (it must carry the flag too; any size).
pub fn inner_attr(max_entries: u32) -> MapAttr {
    MapAttr::new(MapType::Array, KEY_SIZE, VALUE_SIZE, max_entries).flags(BPF_F_INNER_MAP)
}

/// `outer_arr_dyn` with the template behind `template_fd`.
pub fn outer_attr(template_fd: i32) -> MapAttr {
    MapAttr::new(
        MapType::ArrayOfMaps,
        KEY_SIZE,
        OUTER_VALUE_SIZE,
        OUTER_MAX_ENTRIES,
    )
    .inner(template_fd)
}

/// The seed's program before fixups (17 slots), with `outer_fd` in the pseudo map load.
pub fn program(outer_fd: i32) -> Result<Vec<Insn>, AsmError> {
    corpus::seed_004(outer_fd)
}

/// What the check of an xlated dump measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedXlated {
    /// The `r1 += N` after the outer map load: `offsetof(struct bpf_array, value)` of this
    /// kernel (272 in the seed's 2020 kernel). mimic normalises it.
    pub value_offset: i32,
    /// The `imm` of the inner lookup's direct call (an address offset; differs per boot).
    pub inner_call_imm: i32,
}

/// One expected slot: the instruction, and whether its `imm` is compared (`false`:
/// kernel-specific, recorded instead).
#[derive(Clone, Copy)]
struct Expect {
    insn: Insn,
    imm_compared: bool,
}

const fn at(insn: Insn) -> Expect {
    Expect {
        insn,
        imm_compared: true,
    }
}
const fn any_imm(insn: Insn) -> Expect {
    Expect {
        insn,
        imm_compared: false,
    }
}

/// Slot of the `r1 += value offset` in the xlated program.
const VALUE_OFFSET_SLOT: usize = 6;
/// Slot of the inner lookup's direct call.
const INNER_CALL_SLOT: usize = 20;

/// The seed's dump, slot by slot (25 slots).
fn expected(outer_id: u32) -> [Expect; 25] {
    let [map_lo, map_hi] = Insn::ld_map_fd(1, outer_id as i32);
    [
        at(Insn::mov32_imm(1, 0)),                                  // 0: w1 = 0
        at(Insn::stx_mem(BPF_W, 10, 1, -4)),                        // 1: *(u32 *)(r10 -4) = r1
        at(Insn::mov64_reg(2, 10)),                                 // 2: r2 = r10
        at(Insn::alu64_imm(BPF_ADD, 2, -4)),                        // 3: r2 += -4
        at(map_lo),                                                 // 4: r1 = map[id:outer]
        at(map_hi),                                                 // 5: (upper half)
        any_imm(Insn::alu64_imm(BPF_ADD, 1, 0)),                    // 6: r1 += value offset
        at(Insn::ldx_mem(BPF_W, 0, 2, 0)),                          // 7: r0 = *(u32 *)(r2 +0)
        at(Insn::jmp_imm(BPF_JGE, 0, OUTER_MAX_ENTRIES as i32, 5)), // 8: if r0 >= 0x3 goto pc+5
        at(Insn::alu64_imm(BPF_LSH, 0, 3)),                         // 9: r0 <<= 3
        at(Insn::alu64_reg(BPF_ADD, 0, 1)),                         // 10: r0 += r1
        at(Insn::ldx_mem(BPF_DW, 0, 0, 0)),                         // 11: r0 = *(u64 *)(r0 +0)
        at(Insn::jmp_imm(BPF_JEQ, 0, 0, 1)),                        // 12: if r0 == 0x0 goto pc+1
        at(Insn::ja(1)),                                            // 13: goto pc+1
        at(Insn::mov64_imm(0, 0)),                                  // 14: r0 = 0
        at(Insn::mov32_imm(6, -1)),                                 // 15: w6 = -1
        at(Insn::jmp_imm(BPF_JEQ, 0, 0, 6)),                        // 16: if r0 == 0x0 goto pc+6
        at(Insn::mov64_reg(2, 10)),                                 // 17: r2 = r10
        at(Insn::alu64_imm(BPF_ADD, 2, -4)),                        // 18: r2 += -4
        at(Insn::mov64_reg(1, 0)),                                  // 19: r1 = r0
        any_imm(Insn::call_helper(0)), // 20: call array_map_lookup_elem
        at(Insn::jmp_imm(BPF_JEQ, 0, 0, 1)), // 21: if r0 == 0x0 goto pc+1
        at(Insn::ldx_mem(BPF_W, 6, 0, 0)), // 22: r6 = *(u32 *)(r0 +0)
        at(Insn::mov32_reg(0, 6)),     // 23: w0 = w6
        at(Insn::exit()),              // 24: exit
    ]
}

/// Checks `xlated` against the seed's dump, slot by slot. Returns the kernel-specific values,
/// or every mismatch (with the dump) so a failure explains itself.
pub fn check_xlated(xlated: &[Insn], outer_id: u32) -> Result<SeedXlated, String> {
    let expected = expected(outer_id);
    let mut problems = Vec::new();
    if xlated.len() != expected.len() {
        problems.push(format!(
            "{} slots, the seed has {}",
            xlated.len(),
            expected.len()
        ));
    }
    for (slot, (got, want)) in xlated.iter().zip(expected.iter()).enumerate() {
        let w = want.insn;
        let fields_match =
            got.code == w.code && got.dst == w.dst && got.src == w.src && got.off == w.off;
        if !fields_match || (want.imm_compared && got.imm != w.imm) {
            problems.push(format!(
                "slot {slot}: got {got:?}, want code {:#04x} dst {} src {} off {} imm {}",
                w.code,
                w.dst,
                w.src,
                w.off,
                if want.imm_compared {
                    w.imm.to_string()
                } else {
                    "any".to_string()
                }
            ));
        }
    }
    let call = xlated.get(INNER_CALL_SLOT).copied();
    if call.is_some_and(|call| call.imm == BPF_FUNC_MAP_LOOKUP_ELEM) {
        problems.push(format!(
            "slot {INNER_CALL_SLOT}: the inner lookup is still helper #1, not a direct call of the array's lookup"
        ));
    }
    if !problems.is_empty() {
        return Err(format!(
            "xlated program differs from seed 004:\n{}\n{}",
            problems.join("\n"),
            super::dump(xlated)
        ));
    }
    let value_offset = xlated.get(VALUE_OFFSET_SLOT).map_or(0, |insn| insn.imm);
    let inner_call_imm = call.map_or(0, |call| call.imm);
    Ok(SeedXlated {
        value_offset,
        inner_call_imm,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_is_the_seeds_before_fixups() {
        let program = program(7).expect("the shipped example assembles");
        assert_eq!(program.len(), 17, "16 instructions, lddw taking two slots");
        let text = crate::kernel::dump(&program);
        for line in [
            "4: (18) r1 = map[id:7]",
            "6: (85) call bpf_map_lookup_elem#1",
            "8: (15) if r0 == 0x0 goto pc+6",
            "12: (85) call bpf_map_lookup_elem#1",
            "14: (61) r6 = *(u32 *)(r0 +0)",
            "15: (bc) w0 = w6",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }

    /// A dump of the seed's shape built by hand, with the given inner call imm.
    fn synthetic_xlated(outer_id: u32, inner_call_imm: i32) -> Vec<Insn> {
        expected(outer_id)
            .iter()
            .enumerate()
            .map(|(slot, want)| {
                let imm = match slot {
                    VALUE_OFFSET_SLOT => 312,
                    INNER_CALL_SLOT => inner_call_imm,
                    _ => want.insn.imm,
                };
                Insn { imm, ..want.insn }
            })
            .collect()
    }

    #[test]
    fn check_accepts_the_seed_shape_and_reports_the_value_offset() {
        let measured = check_xlated(&synthetic_xlated(9, 4242), 9).expect("the seed's shape");
        assert_eq!(
            measured,
            SeedXlated {
                value_offset: 312,
                inner_call_imm: 4242
            }
        );
    }

    #[test]
    fn check_refuses_an_inner_lookup_left_as_helper_call() {
        let problems = check_xlated(&synthetic_xlated(9, BPF_FUNC_MAP_LOOKUP_ELEM), 9)
            .expect_err("helper #1 is not the direct call");
        assert!(problems.contains("still helper #1"), "{problems}");
    }

    #[test]
    fn check_refuses_another_map_or_a_masked_bound() {
        let xlated = synthetic_xlated(9, 4242);
        assert!(
            check_xlated(&xlated, 10).is_err(),
            "map id 9 is not outer id 10"
        );
        let mut masked = xlated;
        // The unprivileged form jumps 6 (over an extra `&= index_mask`).
        masked[8] = Insn::jmp_imm(BPF_JGE, 0, 3, 6);
        assert!(
            check_xlated(&masked, 9).is_err(),
            "goto pc+6 is not the seed's"
        );
    }
}
