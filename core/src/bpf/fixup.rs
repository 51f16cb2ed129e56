//! Fixups after verification (the kernel's `do_misc_fixups` and map-pointer resolution): the
//! program the executor runs is the one the kernel would run.
//!
//! * `lddw rX, map[fd]` becomes a plain 64-bit load of the map pointer ([`MapDesc::ptr`]);
//!   `map[fd][0]+off` the address of the value.
//! * First, as the kernel before `do_misc_fixups`, the dead-code passes
//!   ([`crate::bpf::dead_code`]): privileged programs lose what the verifier never reached
//!   (branches hard-wired, dead instructions and `ja +0` removed), unprivileged ones get traps.
//! * `bpf_map_lookup_elem` on an `ARRAY` or `ARRAY_OF_MAPS` (or on an inner array through an
//!   outer map's meta) is inlined by [`crate::maps::gen_lookup`] against the map's constants; a
//!   `BPF_F_INNER_MAP` array refuses and the call goes straight to `array_map_lookup_elem`
//!   (mutant `inline_dynamic_inner`: inlined anyway, against the template's size). On a
//!   `HASH` or `HASH_OF_MAPS` (or an inner hash) it becomes a call of `__htab_map_lookup_elem`
//!   and the step from element to value (plus, for hash-of-maps, the load of the inner map
//!   pointer).
//! * Other map helpers become direct calls of the map type's own function
//!   ([`crate::bpf::helpers::DirectCall`]). A call site that saw different maps on different
//!   paths (poisoned) keeps the generic helper.
//! * An unsigned division or modulo by a register is guarded against a zero divisor, as the
//!   kernel guards it.
//! * A packet program's context accesses become loads and stores of the context the executor
//!   runs it on ([`crate::bpf::xdp::convert_ctx_access`], [`crate::bpf::skb::convert_ctx_access`],
//!   the kernel's `convert_ctx_accesses`); a tc program that writes its packet starts with the
//!   kernel's prologue ([`crate::bpf::skb::unclone_prologue`]).
//! * Jump offsets (and bpf-to-bpf call offsets) are recomputed across the patches, in one
//!   relocation ([`crate::bpf::reloc`], which the dead-code passes use too).

use crate::bpf::dead_code;
use crate::bpf::helpers::{Callee, DirectCall, HelperId, MapFn, MapImpl};
use crate::bpf::print::{dump_xlated, Symbols};
use crate::bpf::reloc::{self, Piece, Relocated};
use crate::bpf::skb;
use crate::bpf::verifier::{AuxMap, MapDesc, ProgType, Verified};
use crate::errno::Errno;
use crate::isa::{
    decode, AluOp, CallTarget, DecodeError, Insn, Ld64, Op, Operand, Size, Width, BPF_JEQ, BPF_JNE,
    BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE, BPF_XOR,
};
use crate::maps::gen_lookup::{self, ArrayShape};
use crate::maps::ARRAY_VALUE_OFFSET;
use crate::mutants::{Mutant, Mutants};
use crate::uapi::MapType;
use std::fmt;

/// An `lddw` the fixups turned into a pointer: where it is, which map, and for a value
/// pointer (`BPF_PSEUDO_MAP_VALUE`) the offset into the value. The kernel's xlated dump shows
/// these as the map's id (and offset) again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapLoad {
    pub pc: usize,
    pub id: u32,
    /// `None`: the map pointer; `Some(off)`: a pointer `off` bytes into its (first) value.
    pub value_off: Option<u32>,
}

/// The rewritten program.
#[derive(Debug, Clone, PartialEq)]
pub struct Fixed {
    pub insns: Vec<Insn>,
    /// Each `lddw` that loads a map or value pointer, for printing `map[id:N]`.
    pub map_loads: Vec<MapLoad>,
    /// For each original instruction, where it starts in `insns` (an instruction the
    /// dead-code passes removed: where the next kept one starts); one more entry for the end.
    pub new_pc: Vec<usize>,
    /// For each instruction of `insns`, the original instruction it starts (`None` inside
    /// patched code and for an `lddw`'s second slot).
    pub origin: Vec<Option<usize>>,
    /// Slots whose offset (or, for a bit field's mask or a jump's constant, immediate) is
    /// mimic's own context layout where the kernel's code has its build's `struct sk_buff`
    /// ([`crate::bpf::skb`]).
    pub layout_slots: Vec<usize>,
    /// A tc context access reaches a field mimic keeps plain ([`crate::bpf::skb::kept_plain`]):
    /// the program's code differs from the kernel's there.
    pub plain_fields: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixupError(pub String);

impl fmt::Display for FixupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FixupError {}

fn shape(desc: &MapDesc) -> ArrayShape {
    ArrayShape {
        max_entries: desc.max_entries,
        index_mask: desc.index_mask,
        elem_size: desc.elem_size,
        map_flags: desc.map_flags,
    }
}

fn map_impl(desc: &MapDesc) -> Option<MapImpl> {
    crate::maps::kind::kind(desc.kind()?).direct
}

/// The replacement of a helper call on `desc`.
fn patch_call(
    desc: &MapDesc,
    id: HelperId,
    privileged: bool,
    mutants: Mutants,
) -> Result<Vec<Insn>, FixupError> {
    if id == HelperId::MapLookupElem {
        let inlined = match desc.kind() {
            Some(MapType::Array) => Some(gen_lookup::array_gen_lookup(
                &shape(desc),
                privileged,
                mutants.on(Mutant::InlineDynamicInner),
            )),
            Some(MapType::ArrayOfMaps) => Some(gen_lookup::array_of_maps_gen_lookup(
                &shape(desc),
                privileged,
            )),
            // Also an inner hash through an outer map's meta: the meta's key size is the
            // inner maps' (meta_equal).
            Some(MapType::Hash) => Some(Ok(gen_lookup::htab_gen_lookup(desc.key_size))),
            Some(MapType::HashOfMaps) => {
                Some(Ok(gen_lookup::htab_of_maps_gen_lookup(desc.key_size)))
            }
            _ => None,
        };
        match inlined {
            Some(Ok(code)) => return Ok(code),
            Some(Err(Errno::EOPNOTSUPP)) | None => {}
            Some(Err(e)) => {
                return Err(FixupError(format!(
                    "bpf verifier is misconfigured: gen_lookup {e:?}"
                )))
            }
        }
    }
    let func = match id {
        HelperId::MapLookupElem => MapFn::Lookup,
        HelperId::MapUpdateElem => MapFn::Update,
        HelperId::MapDeleteElem => MapFn::Delete,
        HelperId::MapLookupPercpuElem => MapFn::LookupPercpu,
        // A tail call keeps its call too: the kernel turns it into `BPF_TAIL_CALL` (with a
        // bounds check and an index mask first only for a map created without
        // `CAP_PERFMON`, which mimic does not model), and its dump shows `call
        // bpf_tail_call#12` again; mimic's executor runs that call as the tail call.
        HelperId::TailCall => return Ok(vec![Insn::call_helper(id as i32)]),
        // Helpers that take no map keep their call.
        HelperId::KtimeGetNs
        | HelperId::TracePrintk
        | HelperId::GetPrandomU32
        | HelperId::GetSmpProcessorId
        | HelperId::Redirect
        | HelperId::SkbStoreBytes
        | HelperId::SkbLoadBytes
        | HelperId::L3CsumReplace
        | HelperId::L4CsumReplace
        | HelperId::SkbPullData
        | HelperId::CsumDiff
        | HelperId::XdpAdjustHead => return Ok(vec![Insn::call_helper(id as i32)]),
    };
    Ok(match map_impl(desc) {
        Some(map) => vec![Insn::call_helper(
            Callee::Direct(DirectCall { map, func }).imm(),
        )],
        None => vec![Insn::call_helper(id as i32)],
    })
}

/// A sign-extending context load is the field's load, then `movsx` of the program's size (the
/// kernel's `convert_ctx_accesses` appends it to the converted code).
fn sign_extend(code: &mut Vec<Insn>, signed: bool, dst: u8, size: Size) {
    if signed {
        code.push(Insn::movsx64(dst, dst, (size.bytes() * 8) as i16));
    }
}

/// What a tc program's context rewrites leave for [`Fixed`]: the pieces whose code carries
/// mimic's context layout (and which of their slots), and whether a field kept plain was met.
#[derive(Default)]
struct TcCtx {
    layout: Vec<(usize, Vec<usize>)>,
    plain_fields: bool,
}

impl TcCtx {
    /// The rewrite of the context access at `pc`, which becomes piece `piece`.
    fn convert(
        &mut self,
        piece: usize,
        pc: usize,
        off: i16,
        size: Size,
        access: skb::Access,
    ) -> Result<Vec<Insn>, FixupError> {
        let off = i64::from(off);
        let (code, slots) = skb::convert_ctx_access(off, i64::from(size.bytes()), access)
            .ok_or_else(|| FixupError(format!("insn {pc}: no context field at offset {off}")))?;
        self.layout.push((piece, slots));
        self.plain_fields |= skb::kept_plain(off);
        Ok(code)
    }
}

/// An unsigned division or modulo by a register, guarded as the kernel guards it
/// (`do_misc_fixups`): `x / 0` is 0 and `x % 0` is `x` (the 32-bit forms zero-extended) without
/// the division ever running. The executor gives those results anyway; the guard is there so
/// the program is the kernel's, slot for slot. (Signed division and modulo get a longer guard
/// through the kernel's hidden register `AX`, which mimic's decoder does not have: they are
/// left as they are.)
fn guard_division(insn: Insn, width: Width, div: bool, dst: u8, divisor: u8) -> Vec<Insn> {
    let jmp = |op: u8, off: i16| match width {
        Width::W64 => Insn::jmp_imm(op, divisor, 0, off),
        Width::W32 => Insn::jmp32_imm(op, divisor, 0, off),
    };
    match (div, width) {
        (true, _) => vec![
            jmp(BPF_JNE, 2),
            Insn::alu32_reg(BPF_XOR, dst, dst),
            Insn::ja(1),
            insn,
        ],
        (false, Width::W64) => vec![jmp(BPF_JEQ, 1), insn],
        (false, Width::W32) => vec![
            jmp(BPF_JEQ, 2),
            insn,
            Insn::ja(1),
            Insn::mov32_reg(dst, dst),
        ],
    }
}

/// Rewrites a verified program: the dead-code passes first ([`crate::bpf::dead_code`], as the
/// kernel runs them before `do_misc_fixups`), then map loads, lookups and calls. `mutants`
/// selects historical fixup bugs.
pub fn fixup(v: &Verified, mutants: Mutants) -> Result<Fixed, FixupError> {
    let pruned = dead_code::after_verify(&v.insns, &v.aux, v.privileged).map_err(FixupError)?;
    let insns = &pruned.insns;
    let derr = |e: DecodeError| FixupError(e.to_string());
    // Pass 1: the replacement of each instruction (and the map id of a map-pointer load, for
    // printing).
    let mut pieces: Vec<Piece> = Vec::new();
    let mut map_ids: Vec<Option<(u32, Option<u32>)>> = Vec::new();
    let mut tc = TcCtx::default();
    let ctx_access = |pc: usize| pruned.aux.get(pc).and_then(|a| a.ctx_access) == Some(true);
    let mut pc = 0;
    while pc < insns.len() {
        let (op, len) = decode(insns, pc).map_err(derr)?;
        let aux_map = match pruned.aux.get(pc).map(|a| a.map) {
            Some(AuxMap::One(m)) => v.maps.get(m as usize),
            _ => None,
        };
        let (code, map_id) = match op {
            Op::Ld64 {
                dst,
                value: Ld64::MapFd(_),
            } => {
                let desc = aux_map
                    .ok_or_else(|| FixupError(format!("insn {pc}: map load never verified")))?;
                (
                    Insn::ld_imm64(dst, desc.ptr).to_vec(),
                    Some((desc.id, None)),
                )
            }
            Op::Ld64 {
                dst,
                value: Ld64::MapValue { off, .. },
            } => {
                let desc = aux_map.ok_or_else(|| {
                    FixupError(format!("insn {pc}: map value load never verified"))
                })?;
                let addr = desc
                    .ptr
                    .wrapping_add(ARRAY_VALUE_OFFSET as u64)
                    .wrapping_add(u64::from(off));
                (
                    Insn::ld_imm64(dst, addr).to_vec(),
                    Some((desc.id, Some(off))),
                )
            }
            Op::Load {
                dst,
                src,
                off,
                size,
                signed,
            } if ctx_access(pc) && v.prog_type == ProgType::Xdp => {
                let mut code = crate::bpf::xdp::convert_ctx_access(i64::from(off), dst, src)
                    .ok_or_else(|| {
                        FixupError(format!("insn {pc}: no context field at offset {off}"))
                    })?;
                sign_extend(&mut code, signed, dst, size);
                (code, None)
            }
            Op::Load {
                dst,
                src,
                off,
                size,
                signed,
            } if ctx_access(pc) && v.prog_type == ProgType::SchedCls => {
                let at = pieces.len();
                let mut code = tc.convert(at, pc, off, size, skb::Access::Load { dst, src })?;
                sign_extend(&mut code, signed, dst, size);
                (code, None)
            }
            Op::Store {
                dst,
                off,
                size,
                src,
            } if ctx_access(pc) && v.prog_type == ProgType::SchedCls => {
                let access = match src {
                    Operand::Reg(src) => skb::Access::StoreReg { dst, src },
                    Operand::Imm(imm) => skb::Access::StoreImm { dst, imm },
                };
                (tc.convert(pieces.len(), pc, off, size, access)?, None)
            }
            Op::Alu {
                width,
                op: op @ (AluOp::Div | AluOp::Mod),
                dst,
                src: Operand::Reg(divisor),
            } => (
                guard_division(insns[pc], width, op == AluOp::Div, dst, divisor),
                None,
            ),
            Op::Call(CallTarget::Helper(imm)) => match (Callee::from_imm(imm), aux_map) {
                (Some(Callee::Helper(id)), Some(desc)) => {
                    (patch_call(desc, id, v.privileged, mutants)?, None)
                }
                _ => (insns[pc..pc + len].to_vec(), None),
            },
            _ => (insns[pc..pc + len].to_vec(), None),
        };
        pieces.push(Piece::replace(pc, len, code));
        map_ids.push(map_id);
        pc += len;
    }
    // A tc program that writes the packet starts with the kernel's unclone prologue.
    if v.prog_type == ProgType::SchedCls && v.direct_write {
        if let Some(first) = pieces.first_mut() {
            let (mut code, slots) = skb::unclone_prologue();
            let shift = code.len();
            code.append(&mut first.code);
            first.code = code;
            for (piece, slots) in &mut tc.layout {
                if *piece == 0 {
                    slots.iter_mut().for_each(|s| *s += shift);
                }
            }
            tc.layout.push((0, slots));
        }
    }
    // Pass 2: lay the pieces out and move the jumps across them.
    let starts: Vec<usize> = pieces.iter().map(|p| p.pc).collect();
    let Relocated { insns: out, new_pc } =
        reloc::relocate(insns, pieces).map_err(|e| FixupError(format!("{e} after fixups")))?;
    let at = out.len();
    let mut map_loads = Vec::new();
    let mut origin = vec![None; at];
    for (&pc, map_id) in starts.iter().zip(map_ids) {
        let here = new_pc[pc];
        if let Some(slot) = origin.get_mut(here) {
            *slot = pruned.origin.get(pc).copied();
        }
        if let Some((id, value_off)) = map_id {
            map_loads.push(MapLoad {
                pc: here,
                id,
                value_off,
            });
        }
    }
    // Original instruction → position: removed ones take the position of the next kept one.
    let mut orig_new_pc = vec![at; v.insns.len() + 1];
    for orig in (0..v.insns.len()).rev() {
        orig_new_pc[orig] = match pruned.at[orig] {
            Some(p) => new_pc[p],
            None => orig_new_pc[orig + 1],
        };
    }
    let mut layout_slots: Vec<usize> = tc
        .layout
        .iter()
        .flat_map(|(piece, slots)| slots.iter().map(|s| new_pc[starts[*piece]] + s))
        .collect();
    layout_slots.sort_unstable();
    Ok(Fixed {
        insns: out,
        map_loads,
        new_pc: orig_new_pc,
        origin,
        layout_slots,
        plain_fields: tc.plain_fields,
    })
}

/// Prints `map[id:N]` and `map[id:N][0]+off` for the marked loads, as bpftool does.
struct XlatedSymbols;

impl Symbols for XlatedSymbols {
    fn ld_imm64(&self, src: u8, imm_lo: i32, imm_hi: i32) -> Option<String> {
        match src {
            BPF_PSEUDO_MAP_FD => Some(format!("map[id:{imm_lo}]")),
            BPF_PSEUDO_MAP_VALUE => Some(format!("map[id:{imm_lo}][0]+{}", imm_hi as u32)),
            _ => None,
        }
    }
}

impl Fixed {
    /// For each instruction of the fixed program, the original instruction it starts (`None`
    /// inside patched code): the oracle checks states at original instructions only. A patched
    /// call's first new instruction still sees the state before the call.
    pub fn orig_pc(&self) -> Vec<Option<usize>> {
        self.origin.clone()
    }

    /// The program as the kernel's xlated dump has it: map and value pointers as the map's id
    /// (and offset) again.
    pub fn as_dumped(&self) -> Vec<Insn> {
        let mut shown = self.insns.clone();
        for load in &self.map_loads {
            let (src, hi) = match load.value_off {
                None => (BPF_PSEUDO_MAP_FD, 0),
                Some(off) => (BPF_PSEUDO_MAP_VALUE, off as i32),
            };
            let [a, b] = Insn::ld_imm64_raw(shown[load.pc].dst, src, load.id as i32, hi);
            shown[load.pc] = a;
            shown[load.pc + 1] = b;
        }
        shown
    }

    /// The program as `bpftool prog dump xlated` prints it (map loads as `map[id:N]`).
    pub fn dump_xlated(&self) -> Result<String, DecodeError> {
        dump_xlated(&self.as_dumped(), &XlatedSymbols)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::exec::run;
    use crate::bpf::exec::Program;
    use crate::bpf::verifier::{verify, MapTable, VerifyOpts};
    use crate::isa::{BPF_DIV, BPF_MOD};

    /// `r0 = 100; r1 = ctx[0]; r0 OP= r1` in the given width, fixed up and run with `r1` = 0
    /// and 7: the guard is the kernel's (as this machine's 6.18 dumps it) and changes no result.
    #[test]
    fn division_by_a_register_is_guarded_as_the_kernel_guards_it() {
        let cases: [(u8, bool, &[&str]); 4] = [
            (BPF_DIV, true, &["jne", "xor32", "ja", "div"]),
            (BPF_MOD, true, &["jeq", "mod"]),
            (BPF_DIV, false, &["jne32", "xor32", "ja", "div32"]),
            (BPF_MOD, false, &["jeq32", "mod32", "ja", "mov32"]),
        ];
        for (op, wide, shape) in cases {
            let div = if wide {
                Insn::alu64_reg(op, 0, 1)
            } else {
                Insn::alu32_reg(op, 0, 1)
            };
            let insns = [
                Insn::mov64_imm(0, 100),
                Insn::ldx_mem(crate::isa::BPF_B, 1, 1, 0),
                div,
                Insn::exit(),
            ];
            let opts = VerifyOpts {
                privileged: true,
                ctx_size: 1,
                ..VerifyOpts::default()
            };
            let v = verify(&insns, &MapTable(vec![]), opts).expect("verifies");
            let fixed = fixup(&v, Mutants::NONE).expect("fixes up");
            let listing = crate::bpf::asm::disassemble(&fixed.insns).expect("decodes");
            let ops: Vec<&str> = listing
                .lines()
                .skip(2)
                .take(shape.len())
                .map(|l| l.split_whitespace().next().unwrap_or(""))
                .collect();
            assert_eq!(ops, shape, "{listing}");
            for divisor in [0u8, 7] {
                let plain = run(&Program::new(&insns).expect("decodes"), &mut [divisor]);
                let guarded = run(
                    &Program::new(&fixed.insns).expect("decodes"),
                    &mut [divisor],
                );
                assert_eq!(plain, guarded, "divisor {divisor}:\n{listing}");
            }
        }
    }
}
