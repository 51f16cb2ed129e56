//! Seed 004 (`shared/seeds/004_*.txt`, "Allow for map-in-map with dynamic inner array map
//! entries") on the real kernel: the program of the seed's dump, hand-encoded, and the check
//! that the kernel's xlated program has the seed's shape.
//!
//! The seed's source: `key = 0; inner = lookup(&outer_arr_dyn, &key); if (!inner) return -1;
//! val = lookup(inner, &key); return val ? *val : -1;` where `outer_arr_dyn` is an
//! ARRAY_OF_MAPS of 3 whose template is a `BPF_F_INNER_MAP` ARRAY of 1 (u32 key, u32 value).
//! After the kernel's fixups the outer lookup is inlined (array-of-maps `map_gen_lookup`) and
//! the inner lookup, whose template carries `BPF_F_INNER_MAP`, is a direct call of the array's
//! own lookup (its `imm` is a kernel address offset, not helper id 1).
#![forbid(unsafe_code)]

use super::insn::{
    self, Insn, RawInsn, BPF_FUNC_MAP_LOOKUP_ELEM, BPF_PSEUDO_MAP_FD, CALL, EXIT, LD_IMM64,
};
use mimic_core::uapi::{MapAttr, MapType, BPF_F_INNER_MAP};

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
pub fn program(outer_fd: i32) -> Vec<RawInsn> {
    let [ld_lo, ld_hi] = insn::ld_map_fd(1, outer_fd);
    insn::encode_all(&[
        Insn::new(0xb4, 1, 0, 0, 0),                        // w1 = 0
        Insn::new(0x63, 10, 1, -4, 0),                      // *(u32 *)(r10 -4) = r1
        Insn::new(0xbf, 2, 10, 0, 0),                       // r2 = r10
        Insn::new(0x07, 2, 0, 0, -4),                       // r2 += -4
        ld_lo,                                              // r1 = map[outer_arr_dyn]
        ld_hi,                                              //
        Insn::new(CALL, 0, 0, 0, BPF_FUNC_MAP_LOOKUP_ELEM), // call map_lookup_elem
        Insn::new(0xb4, 6, 0, 0, -1),                       // w6 = -1
        Insn::new(0x15, 0, 0, 6, 0),                        // if r0 == 0x0 goto pc+6
        Insn::new(0xbf, 2, 10, 0, 0),                       // r2 = r10
        Insn::new(0x07, 2, 0, 0, -4),                       // r2 += -4
        Insn::new(0xbf, 1, 0, 0, 0),                        // r1 = r0
        Insn::new(CALL, 0, 0, 0, BPF_FUNC_MAP_LOOKUP_ELEM), // call map_lookup_elem
        Insn::new(0x15, 0, 0, 1, 0),                        // if r0 == 0x0 goto pc+1
        Insn::new(0x61, 6, 0, 0, 0),                        // r6 = *(u32 *)(r0 +0)
        Insn::new(0xbc, 0, 6, 0, 0),                        // w0 = w6
        Insn::new(EXIT, 0, 0, 0, 0),                        // exit
    ])
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

/// One expected slot: `None` fields are kernel-specific and recorded instead of compared.
struct Expect {
    code: u8,
    dst: u8,
    src: u8,
    off: i16,
    imm: Option<i32>,
}

const fn at(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Expect {
    Expect {
        code,
        dst,
        src,
        off,
        imm: Some(imm),
    }
}
const fn any_imm(code: u8, dst: u8, src: u8, off: i16) -> Expect {
    Expect {
        code,
        dst,
        src,
        off,
        imm: None,
    }
}

/// Slot of the `r1 += value offset` in the xlated program.
const VALUE_OFFSET_SLOT: usize = 6;
/// Slot of the inner lookup's direct call.
const INNER_CALL_SLOT: usize = 20;

/// The seed's dump, slot by slot (25 slots).
fn expected(outer_id: u32) -> [Expect; 25] {
    [
        at(0xb4, 1, 0, 0, 0),                                   // 0: w1 = 0
        at(0x63, 10, 1, -4, 0),                                 // 1: *(u32 *)(r10 -4) = r1
        at(0xbf, 2, 10, 0, 0),                                  // 2: r2 = r10
        at(0x07, 2, 0, 0, -4),                                  // 3: r2 += -4
        at(LD_IMM64, 1, BPF_PSEUDO_MAP_FD, 0, outer_id as i32), // 4: r1 = map[id:outer]
        at(0, 0, 0, 0, 0),                                      // 5: (upper half)
        any_imm(0x07, 1, 0, 0),                                 // 6: r1 += value offset
        at(0x61, 0, 2, 0, 0),                                   // 7: r0 = *(u32 *)(r2 +0)
        at(0x35, 0, 0, 5, OUTER_MAX_ENTRIES as i32),            // 8: if r0 >= 0x3 goto pc+5
        at(0x67, 0, 0, 0, 3),                                   // 9: r0 <<= 3
        at(0x0f, 0, 1, 0, 0),                                   // 10: r0 += r1
        at(0x79, 0, 0, 0, 0),                                   // 11: r0 = *(u64 *)(r0 +0)
        at(0x15, 0, 0, 1, 0),                                   // 12: if r0 == 0x0 goto pc+1
        at(0x05, 0, 0, 1, 0),                                   // 13: goto pc+1
        at(0xb7, 0, 0, 0, 0),                                   // 14: r0 = 0
        at(0xb4, 6, 0, 0, -1),                                  // 15: w6 = -1
        at(0x15, 0, 0, 6, 0),                                   // 16: if r0 == 0x0 goto pc+6
        at(0xbf, 2, 10, 0, 0),                                  // 17: r2 = r10
        at(0x07, 2, 0, 0, -4),                                  // 18: r2 += -4
        at(0xbf, 1, 0, 0, 0),                                   // 19: r1 = r0
        any_imm(CALL, 0, 0, 0),                                 // 20: call array_map_lookup_elem
        at(0x15, 0, 0, 1, 0),                                   // 21: if r0 == 0x0 goto pc+1
        at(0x61, 6, 0, 0, 0),                                   // 22: r6 = *(u32 *)(r0 +0)
        at(0xbc, 0, 6, 0, 0),                                   // 23: w0 = w6
        at(EXIT, 0, 0, 0, 0),                                   // 24: exit
    ]
}

/// Checks `xlated` against the seed's dump, slot by slot. Returns the kernel-specific values,
/// or every mismatch (with the dump) so a failure explains itself.
pub fn check_xlated(xlated: &[RawInsn], outer_id: u32) -> Result<SeedXlated, String> {
    let expected = expected(outer_id);
    let mut problems = Vec::new();
    if xlated.len() != expected.len() {
        problems.push(format!(
            "{} slots, the seed has {}",
            xlated.len(),
            expected.len()
        ));
    }
    for (slot, (raw, want)) in xlated.iter().zip(expected.iter()).enumerate() {
        let got = Insn::decode(*raw);
        let fields_match = got.code == want.code
            && got.dst == want.dst
            && got.src == want.src
            && got.off == want.off;
        if !fields_match || want.imm.is_some_and(|imm| imm != got.imm) {
            problems.push(format!(
                "slot {slot}: got {got:?}, want code {:#04x} dst {} src {} off {} imm {:?}",
                want.code, want.dst, want.src, want.off, want.imm
            ));
        }
    }
    let call = xlated.get(INNER_CALL_SLOT).copied().map(Insn::decode);
    if call.is_some_and(|call| call.imm == BPF_FUNC_MAP_LOOKUP_ELEM) {
        problems.push(format!(
            "slot {INNER_CALL_SLOT}: the inner lookup is still helper #1, not a direct call of the array's lookup"
        ));
    }
    if !problems.is_empty() {
        return Err(format!(
            "xlated program differs from seed 004:\n{}\n{}",
            problems.join("\n"),
            insn::dump(xlated)
        ));
    }
    let value_offset = xlated
        .get(VALUE_OFFSET_SLOT)
        .map_or(0, |raw| Insn::decode(*raw).imm);
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
        let program = program(7);
        assert_eq!(program.len(), 17, "16 instructions, lddw taking two slots");
        let text = insn::dump(&program);
        for line in [
            "4: (18) r1 = map[id:7]",
            "6: (85) call #1",
            "8: (15) if r0 == 0x0 goto pc+6",
            "12: (85) call #1",
            "14: (61) r6 = *(u32 *)(r0 +0)",
            "15: (bc) w0 = w6",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }

    /// A dump of the seed's shape built by hand, with the given inner call imm.
    fn synthetic_xlated(outer_id: u32, inner_call_imm: i32) -> Vec<RawInsn> {
        expected(outer_id)
            .iter()
            .enumerate()
            .map(|(slot, want)| {
                let imm = match slot {
                    VALUE_OFFSET_SLOT => 312,
                    INNER_CALL_SLOT => inner_call_imm,
                    _ => want.imm.unwrap_or(0),
                };
                Insn::new(want.code, want.dst, want.src, want.off, imm).encode()
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
        masked[8] = Insn::new(0x35, 0, 0, 6, 3).encode();
        assert!(
            check_xlated(&masked, 9).is_err(),
            "goto pc+6 is not the seed's"
        );
    }
}
