//! `map_gen_lookup` for arrays and array-of-maps: the instructions the verifier's fixups put in
//! place of a `bpf_map_lookup_elem` call, computing the element address inline.
//!
//! Calling convention of the replaced call: `r1` the map pointer, `r2` the key pointer, result in
//! `r0` (NULL when the index is out of range, or for array-of-maps when the slot is empty).
//! The emitted code uses the map's constants: `max_entries` for the bounds check, `index_mask`
//! (only for unprivileged programs: spectre v1 hardening), `elem_size` for scaling (a shift when
//! a power of two, else a multiply) and [`ARRAY_VALUE_OFFSET`] (the maps' layout) for where
//! values start.
//! A `BPF_F_INNER_MAP` array refuses (`EOPNOTSUPP`): its size is not a constant, so the
//! fixup calls `array_map_lookup_elem` instead, which checks the runtime map's own size.
//!
//! Hash maps and hash-of-maps (`htab_map_gen_lookup`, `htab_of_map_gen_lookup`) keep the bucket
//! walk in a call of `__htab_map_lookup_elem`, which returns the element (`struct htab_elem *`)
//! or NULL, and inline only the step from element to value: `+ offsetof(htab_elem, key) +
//! round_up(key_size, 8)` (the value follows the key); hash-of-maps then loads the inner map
//! pointer stored in the value. Per-CPU hashes and arrays are not inlined here: on 6.18 their
//! inlined forms end in the per-CPU address move, which the model's ISA does not have (and its
//! per-CPU maps keep values inline), so they keep their direct calls (docs/kernel-disagreements.md).

use super::direct_call::{DirectCall, MapFn, MapImpl};
use super::hashtab::HTAB_ELEM_HEADER_BYTES;
use super::{round_up8, ARRAY_VALUE_OFFSET};
use crate::errno::Errno;
use crate::isa::{Insn, BPF_ADD, BPF_AND, BPF_DW, BPF_JEQ, BPF_JGE, BPF_LSH, BPF_MUL, BPF_W};
use crate::uapi::BPF_F_INNER_MAP;

/// The values base as the `r1 += imm` immediate (312 on Linux 6.18; the seed's dump shows 272).
const VALUE_BASE_IMM: i32 = ARRAY_VALUE_OFFSET as i32;

/// The constants an inlined array lookup compiles in (from the map, or from an outer map's meta
/// for inner lookups).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArrayShape {
    pub max_entries: u32,
    pub index_mask: u32,
    pub elem_size: u32,
    pub map_flags: u32,
}

const MAP_REG: u8 = 1;
const KEY_REG: u8 = 2;
const RET_REG: u8 = 0;

/// Bounds check, optional mask, scale, add the values base: common to both emitters. The
/// returned code leaves `r0` pointing at the element; `skip` is how many instructions after it
/// the out-of-range jump must also skip (the tail the caller appends).
fn index_to_elem(shape: &ArrayShape, privileged: bool, tail: i16) -> Vec<Insn> {
    let mut out = vec![
        Insn::alu64_imm(BPF_ADD, MAP_REG, VALUE_BASE_IMM),
        Insn::ldx_mem(BPF_W, RET_REG, KEY_REG, 0),
    ];
    // Instructions between the bounds check and the NULL result: [mask], scale, add, tail.
    let body: i16 = 2 + i16::from(!privileged) + tail;
    out.push(Insn::jmp_imm(
        BPF_JGE,
        RET_REG,
        shape.max_entries as i32,
        body,
    ));
    if !privileged {
        out.push(Insn::alu32_imm(BPF_AND, RET_REG, shape.index_mask as i32));
    }
    if shape.elem_size.is_power_of_two() {
        out.push(Insn::alu64_imm(
            BPF_LSH,
            RET_REG,
            shape.elem_size.trailing_zeros() as i32,
        ));
    } else {
        // elem_size 0 (the `meta_elem_size_zero` bug) lands here: every index scales to 0.
        out.push(Insn::alu64_imm(BPF_MUL, RET_REG, shape.elem_size as i32));
    }
    out.push(Insn::alu64_reg(BPF_ADD, RET_REG, MAP_REG));
    out
}

/// `array_map_gen_lookup`: `r0 = index < max_entries ? &values[index] : NULL`.
/// `inline_dynamic_inner`: inline even a `BPF_F_INNER_MAP` array (the 2020 bug).
pub fn array_gen_lookup(
    shape: &ArrayShape,
    privileged: bool,
    inline_dynamic_inner: bool,
) -> Result<Vec<Insn>, Errno> {
    if shape.map_flags & BPF_F_INNER_MAP != 0 && !inline_dynamic_inner {
        return Err(Errno::EOPNOTSUPP);
    }
    let mut out = index_to_elem(shape, privileged, 1);
    out.push(Insn::ja(1));
    out.push(Insn::mov64_imm(RET_REG, 0));
    Ok(out)
}

/// `array_of_map_gen_lookup`: as the array's, then load the slot (a map pointer) and turn an
/// empty slot into NULL.
pub fn array_of_maps_gen_lookup(shape: &ArrayShape, privileged: bool) -> Result<Vec<Insn>, Errno> {
    let mut out = index_to_elem(shape, privileged, 3);
    out.push(Insn::ldx_mem(BPF_DW, RET_REG, RET_REG, 0));
    out.push(Insn::jmp_imm(BPF_JEQ, RET_REG, 0, 1));
    out.push(Insn::ja(1));
    out.push(Insn::mov64_imm(RET_REG, 0));
    Ok(out)
}

/// The call both hash emitters start with.
const HTAB_ELEM_LOOKUP: DirectCall = DirectCall {
    map: MapImpl::Htab,
    func: MapFn::LookupElem,
};

/// From a `struct htab_elem *` to its value: `offsetof(struct htab_elem, key)` (48 on x86-64,
/// the model's element header) plus the key rounded up to 8 bytes.
pub fn htab_value_offset(key_size: u32) -> i32 {
    (HTAB_ELEM_HEADER_BYTES + round_up8(key_size)) as i32
}

/// `htab_map_gen_lookup`: `r0 = __htab_map_lookup_elem(r1, r2); if r0 != NULL r0 += value
/// offset`.
pub fn htab_gen_lookup(key_size: u32) -> Vec<Insn> {
    vec![
        Insn::call_helper(HTAB_ELEM_LOOKUP.imm()),
        Insn::jmp_imm(BPF_JEQ, RET_REG, 0, 1),
        Insn::alu64_imm(BPF_ADD, RET_REG, htab_value_offset(key_size)),
    ]
}

/// `htab_of_map_gen_lookup`: as the hash's, then load the inner map pointer the value holds
/// (the NULL check skips both).
pub fn htab_of_maps_gen_lookup(key_size: u32) -> Vec<Insn> {
    vec![
        Insn::call_helper(HTAB_ELEM_LOOKUP.imm()),
        Insn::jmp_imm(BPF_JEQ, RET_REG, 0, 2),
        Insn::alu64_imm(BPF_ADD, RET_REG, htab_value_offset(key_size)),
        Insn::ldx_mem(BPF_DW, RET_REG, RET_REG, 0),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::print::{dump_xlated, DefaultSymbols};

    /// `code` and an `exit`, printed as bpftool's xlated dump without the slot numbers.
    fn listing(mut code: Vec<Insn>) -> Vec<String> {
        code.push(Insn::exit());
        let text = dump_xlated(&code, &DefaultSymbols).expect("valid");
        text.lines()
            .map(|l| l.split_once(": ").map_or(l, |x| x.1).to_string())
            .collect()
    }

    #[test]
    fn array_of_maps_lookup_matches_the_seed_shape() {
        let shape = ArrayShape {
            max_entries: 3,
            index_mask: 3,
            elem_size: 8,
            map_flags: 0,
        };
        let code = array_of_maps_gen_lookup(&shape, true).expect("no flag");
        let lines = listing(code);
        assert_eq!(
            lines,
            [
                "(07) r1 += 312",
                "(61) r0 = *(u32 *)(r2 +0)",
                "(35) if r0 >= 0x3 goto pc+5",
                "(67) r0 <<= 3",
                "(0f) r0 += r1",
                "(79) r0 = *(u64 *)(r0 +0)",
                "(15) if r0 == 0x0 goto pc+1",
                "(05) goto pc+1",
                "(b7) r0 = 0",
                "(95) exit",
            ]
        );
    }

    #[test]
    fn htab_lookups_match_the_kernels_shape() {
        let mut code = htab_of_maps_gen_lookup(4);
        code.extend(htab_gen_lookup(8));
        let lines = listing(code);
        let call = format!(
            "(85) call __htab_map_lookup_elem#{}",
            HTAB_ELEM_LOOKUP.imm()
        );
        assert_eq!(
            lines,
            [
                call.as_str(),
                "(15) if r0 == 0x0 goto pc+2",
                "(07) r0 += 56",
                "(79) r0 = *(u64 *)(r0 +0)",
                call.as_str(),
                "(15) if r0 == 0x0 goto pc+1",
                "(07) r0 += 56",
                "(95) exit",
            ],
            "a 4-byte key rounds up to 8: 48 + 8 (seed 000's kernel dump shows += 56)"
        );
        assert_eq!(htab_value_offset(9), 64, "9 bytes round up to 16");
    }

    #[test]
    fn unprivileged_lookup_masks_and_odd_sizes_multiply() {
        let shape = ArrayShape {
            max_entries: 5,
            index_mask: 7,
            elem_size: 24,
            map_flags: 0,
        };
        let code = array_gen_lookup(&shape, false, false).expect("inlinable");
        assert_eq!(
            code[2],
            Insn::jmp_imm(BPF_JGE, 0, 5, 4),
            "skip mask, mul, add, ja"
        );
        assert_eq!(code[3], Insn::alu32_imm(BPF_AND, 0, 7));
        assert_eq!(code[4], Insn::alu64_imm(BPF_MUL, 0, 24));
        let dynamic = ArrayShape {
            map_flags: BPF_F_INNER_MAP,
            ..shape
        };
        assert_eq!(
            array_gen_lookup(&dynamic, true, false),
            Err(Errno::EOPNOTSUPP)
        );
        assert!(
            array_gen_lookup(&dynamic, true, true).is_ok(),
            "the inline_dynamic_inner bug inlines"
        );
    }
}
