//! `verify_exec`: structured programs and a map set-up from the fuzz bytes; verify; if accepted,
//! fix up and run on the core's world. The verifier claims the program is safe, so any memory
//! check failure, null dereference, world fault (use after free, out of bounds) or panic is a
//! crash: the verifier (or a fixup) let an unsafe program through.
//!
//! Each accepted program runs twice, in two identically built worlds: as the kernel runs it
//! (fixed up: map pointers resolved, array lookups inlined by `gen_lookup`, direct calls) and as
//! verified (generic helper calls through the world). Both must succeed and agree on `r0`, the
//! context and every map's contents: an inlined lookup that reads the wrong element
//! (`meta_elem_size_zero`) or out of bounds (`inline_dynamic_inner`, `meta_ignores_max_entries`)
//! shows up as a check failure or a difference.
//!
//! Programs are built from [`Piece`]s biased toward what map-in-map bugs need: outer lookups,
//! inner lookups through the returned map pointer, null checks (sometimes left out), constant
//! and context-derived keys and offsets with and without bounds checks, bounded loops, spills,
//! update/delete helpers. The set-up varies the outer type, the template's size and
//! `BPF_F_INNER_MAP`, and inner arrays smaller and larger than the template.
//!
//! `MIMIC_MUTANTS=id,id` switches mutants on in the world (its metas), the verifier and the
//! fixups.

use crate::fuzz::mutants_from_env;
use arbitrary::{Arbitrary, Unstructured};
use mimic_core::bpf::exec::{Config, ExecErrorKind, NoObserver, Program, Vm};
use mimic_core::bpf::fixup::fixup;
use mimic_core::bpf::verifier::{verify, VerifyOpts};
use mimic_core::bpf::world_env::WorldEnv;
use mimic_core::isa::*;
use mimic_core::mutants::Mutants;
use mimic_core::rcu::Flavor;
use mimic_core::sync::Std;
use mimic_core::sys::Process;
use mimic_core::uapi::{BpfSys, Fd, MapAttr, MapType, BPF_ANY, BPF_F_INNER_MAP};
use mimic_core::world::WorldConfig;

/// Bytes of context the program may read (`r1` at entry).
pub const CTX_LEN: usize = 32;
/// Pieces per program at most; with ≤ 8 instructions per piece programs stay near 64 slots.
const MAX_PIECES: usize = 10;
/// Instructions one run may execute: the generator's loops are bounded by 8 iterations.
pub const RUN_BUDGET: u64 = 100_000;
/// Entries of the outer map (keys 0..OUTER_ENTRIES; lookups also try one past the end).
const OUTER_ENTRIES: u32 = 4;

/// An array map's shape.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub struct ArraySpec {
    /// `max_entries` is `1 + entries % 12`.
    pub entries: u8,
    /// `value_size` is `4 * (1 + words % 4)`.
    pub words: u8,
    pub inner_flag: bool,
}

impl ArraySpec {
    pub fn max_entries(self) -> u32 {
        1 + u32::from(self.entries) % 12
    }
    pub fn value_size(self) -> u32 {
        4 * (1 + u32::from(self.words) % 4)
    }
    pub fn flags(self) -> u32 {
        if self.inner_flag {
            BPF_F_INNER_MAP
        } else {
            0
        }
    }
}

/// One inner map stored into the outer map.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub struct InnerSpec {
    /// Relative to the template: `max_entries` is the template's times 0, ½, 1, 2 (at least 1),
    /// or `1 + entries % 12`.
    pub size: u8,
    pub entries: u8,
    /// Same value size as the template (otherwise the meta refuses it).
    pub same_value_size: bool,
    /// Same flags as the template (otherwise the meta refuses it).
    pub same_flags: bool,
    /// Outer key it is stored at.
    pub slot: u8,
}

#[derive(Debug, Clone, Arbitrary)]
pub struct Setup {
    pub outer_hash: bool,
    pub template: ArraySpec,
    pub inners: Vec<InnerSpec>,
    pub array: ArraySpec,
}

/// Where a lookup key comes from.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Key {
    /// A constant (small: `k % 16`).
    Const(u8),
    /// A byte of the context: unknown to the verifier.
    Ctx(u8),
    /// A context byte checked against `bound` first (`if key > bound goto out`).
    CtxBounded(u8, u8),
}

/// The callee-saved registers that hold pointers between pieces.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Slot {
    R8,
    R9,
}

impl Slot {
    fn reg(self) -> u8 {
        match self {
            Slot::R8 => 8,
            Slot::R9 => 9,
        }
    }
}

#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Size {
    B,
    H,
    W,
    DW,
}

impl Size {
    fn bits(self) -> u8 {
        match self {
            Size::B => BPF_B,
            Size::H => BPF_H,
            Size::W => BPF_W,
            Size::DW => BPF_DW,
        }
    }
}

/// Which map a direct lookup uses.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum MapSel {
    Outer,
    Array,
}

/// One building block of a program.
#[derive(Debug, Clone, Arbitrary)]
pub enum Piece {
    /// `dst = lookup(map, key)`, then a null check unless `null_check` is false.
    Lookup {
        map: MapSel,
        key: Key,
        dst: Slot,
        null_check: bool,
    },
    /// `dst = lookup(src, key)`: an inner lookup through a map pointer from an outer lookup.
    InnerLookup {
        src: Slot,
        key: Key,
        dst: Slot,
        null_check: bool,
    },
    /// The map-in-map chain: `r8 = outer[k]`, null check, `r9 = lookup(r8, key)`, null check,
    /// `r7 += *(size *)(r9 + off)`.
    Chain {
        outer_key: u8,
        key: Key,
        off: u8,
        size: Size,
    },
    /// `r7 += *(size *)(ptr + off)`.
    Load { ptr: Slot, off: u8, size: Size },
    /// `*(size *)(ptr + off) = imm`.
    Store {
        ptr: Slot,
        off: u8,
        size: Size,
        imm: i32,
    },
    /// `r7 += *(u8 *)(ptr + ctx[at])`, with `if idx > bound goto skip` when `bound` is set.
    VarLoad {
        ptr: Slot,
        at: u8,
        bound: Option<u8>,
    },
    /// Repeat a load `1 + n % 8` times, advancing the offset by `step` (bounded loop).
    Loop { ptr: Slot, n: u8, step: u8 },
    /// Spill a pointer to the stack and fill it into the other slot.
    Spill { from: Slot },
    /// `bpf_map_update_elem(src, key, &value)` (src: an outer map pointer, a map, ...).
    Update { map: MapSel, key: Key, value: i32 },
    /// `bpf_map_update_elem` through an inner map pointer.
    InnerUpdate { src: Slot, key: Key, value: i32 },
    /// `bpf_map_delete_elem(inner map, key)`.
    InnerDelete { src: Slot, key: Key },
    /// Skip the next piece when a context byte is odd.
    Branch { at: u8 },
    /// `r7 op= imm` on the accumulator.
    Alu { op: u8, imm: i32 },
}

/// A whole case: maps, context and program.
#[derive(Debug, Clone)]
pub struct Case {
    pub setup: Setup,
    pub ctx: [u8; CTX_LEN],
    pub pieces: Vec<Piece>,
}

impl<'a> Arbitrary<'a> for Case {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Case> {
        let setup = Setup::arbitrary(u)?;
        let ctx = <[u8; CTX_LEN]>::arbitrary(u)?;
        let mut pieces = Vec::new();
        while pieces.len() < MAX_PIECES && !u.is_empty() {
            pieces.push(Piece::arbitrary(u)?);
        }
        Ok(Case { setup, ctx, pieces })
    }
}

/// The fds of the maps a program names.
#[derive(Debug, Clone, Copy)]
pub struct Fds {
    pub outer: Fd,
    pub array: Fd,
}

/// Builds the set-up in a fresh world; `None` when creation is refused (a shape the generator
/// cannot express is not a finding).
pub fn build_world(setup: &Setup, mutants: Mutants) -> Option<(Process<Std>, Fds)> {
    let mut sys = Process::<Std>::create(mutants, WorldConfig::default());
    let t = setup.template;
    let template = sys
        .map_create(
            &MapAttr::new(MapType::Array, 4, t.value_size(), t.max_entries()).flags(t.flags()),
        )
        .ok()?;
    let outer_type = if setup.outer_hash {
        MapType::HashOfMaps
    } else {
        MapType::ArrayOfMaps
    };
    let outer = sys
        .map_create(&MapAttr::new(outer_type, 4, 4, OUTER_ENTRIES).inner(template))
        .ok()?;
    for (n, inner) in setup.inners.iter().take(3).enumerate() {
        let max_entries = match inner.size % 5 {
            0 => t.max_entries() / 2,
            1 => t.max_entries(),
            2 => t.max_entries() * 2,
            3 => t.max_entries() + 1,
            _ => 1 + u32::from(inner.entries) % 12,
        }
        .max(1);
        let value_size = if inner.same_value_size {
            t.value_size()
        } else {
            t.value_size() + 4
        };
        let flags = if inner.same_flags {
            t.flags()
        } else {
            t.flags() ^ BPF_F_INNER_MAP
        };
        let attr = MapAttr::new(MapType::Array, 4, value_size, max_entries).flags(flags);
        let Ok(fd) = sys.map_create(&attr) else {
            continue;
        };
        fill(&mut sys, fd, max_entries, value_size, 0x10 * (n as u32 + 1));
        let key = u32::from(inner.slot) % OUTER_ENTRIES;
        // The meta decides: a refused inner map is simply not stored.
        let _ = sys.map_update_elem(outer, &key.to_ne_bytes(), &fd.to_ne_bytes(), BPF_ANY);
        let _ = sys.close(fd);
    }
    let a = setup.array;
    let array = sys
        .map_create(&MapAttr::new(
            MapType::Array,
            4,
            a.value_size(),
            a.max_entries(),
        ))
        .ok()?;
    fill(&mut sys, array, a.max_entries(), a.value_size(), 0x80);
    let _ = sys.close(template);
    Some((sys, Fds { outer, array }))
}

/// Distinct contents per element, so reading the wrong element changes the result.
fn fill(sys: &mut Process<Std>, fd: Fd, entries: u32, value_size: u32, base: u32) {
    for index in 0..entries {
        let value: Vec<u8> = (0..value_size)
            .map(|b| (base + index * 7 + b) as u8)
            .collect();
        let _ = sys.map_update_elem(fd, &index.to_ne_bytes(), &value, BPF_ANY);
    }
}

/// Emits the program of `pieces` (labels resolved to offsets).
pub fn assemble_pieces(pieces: &[Piece], fds: Fds) -> Vec<Insn> {
    let mut blocks: Vec<Vec<Insn>> = Vec::new();
    // r6 = ctx, r7 = accumulator, r8/r9 = pointer slots (start as the stack pointer: safe).
    blocks.push(vec![
        Insn::mov64_reg(6, 1),
        Insn::mov64_imm(7, 0),
        Insn::mov64_reg(8, 10),
        Insn::alu64_imm(BPF_ADD, 8, -64),
        Insn::mov64_reg(9, 8),
    ]);
    let mut skip_next = Vec::new();
    for piece in pieces {
        skip_next.push(matches!(piece, Piece::Branch { .. }));
        blocks.push(emit(piece, fds));
    }
    // Patch each Branch to skip exactly the next block.
    for (i, is_branch) in skip_next.iter().enumerate() {
        if *is_branch {
            let next = blocks.get(i + 2).map_or(0, Vec::len) as i16;
            let block = &mut blocks[i + 1];
            if let Some(last) = block.last_mut() {
                last.off = next;
            }
        }
    }
    let mut out: Vec<Insn> = blocks.into_iter().flatten().collect();
    out.push(Insn::mov64_reg(0, 7));
    out.push(Insn::exit());
    out
}

/// Offset of the key slot on the stack.
const KEY_SLOT: i16 = -4;
/// Offset of the value buffer of updates.
const VALUE_SLOT: i16 = -40;
/// Offset of the spill slot.
const SPILL_SLOT: i16 = -16;

/// `*(u32 *)(r10 - 4) = key; r2 = r10 - 4`; a bounded key may jump over `tail` instructions.
fn key_to_stack(key: Key, tail: usize, out: &mut Vec<Insn>) {
    match key {
        Key::Const(k) => out.push(Insn::st_mem(BPF_W, 10, KEY_SLOT, i32::from(k % 16))),
        Key::Ctx(at) => {
            out.push(Insn::ldx_mem(BPF_B, 3, 6, i16::from(at) % CTX_LEN as i16));
            out.push(Insn::stx_mem(BPF_W, 10, 3, KEY_SLOT));
        }
        Key::CtxBounded(at, bound) => {
            out.push(Insn::ldx_mem(BPF_B, 3, 6, i16::from(at) % CTX_LEN as i16));
            // Skip the store, the r2 set-up and the tail when out of bounds.
            out.push(Insn::jmp_imm(
                BPF_JGT,
                3,
                i32::from(bound % 16),
                (tail + 3) as i16,
            ));
            out.push(Insn::stx_mem(BPF_W, 10, 3, KEY_SLOT));
        }
    }
    out.push(Insn::mov64_reg(2, 10));
    out.push(Insn::alu64_imm(BPF_ADD, 2, i32::from(KEY_SLOT)));
}

fn map_fd(map: MapSel, fds: Fds) -> i32 {
    match map {
        MapSel::Outer => fds.outer,
        MapSel::Array => fds.array,
    }
}

/// `call; [if r0 != 0 goto +2; r0 = r7; exit]; dst = r0`: a null result ends the program, so
/// later pieces only see the pointer.
fn call_and_keep(helper: i32, dst: Slot, null_check: bool, out: &mut Vec<Insn>) {
    out.push(Insn::call_helper(helper));
    if null_check {
        out.push(Insn::jmp_imm(BPF_JNE, 0, 0, 2));
        out.push(Insn::mov64_reg(0, 7));
        out.push(Insn::exit());
    }
    out.push(Insn::mov64_reg(dst.reg(), 0));
}

fn emit(piece: &Piece, fds: Fds) -> Vec<Insn> {
    let mut out = Vec::new();
    match *piece {
        Piece::Lookup {
            map,
            key,
            dst,
            null_check,
        } => {
            // lddw (2) + call + [check (3)] + mov after the key.
            let tail = 4 + 3 * usize::from(null_check);
            key_to_stack(key, tail, &mut out);
            out.extend(Insn::ld_map_fd(1, map_fd(map, fds)));
            call_and_keep(1, dst, null_check, &mut out);
        }
        Piece::InnerLookup {
            src,
            key,
            dst,
            null_check,
        } => {
            let tail = 3 + 3 * usize::from(null_check);
            key_to_stack(key, tail, &mut out);
            out.push(Insn::mov64_reg(1, src.reg()));
            call_and_keep(1, dst, null_check, &mut out);
        }
        Piece::Chain {
            outer_key,
            key,
            off,
            size,
        } => {
            out.push(Insn::st_mem(
                BPF_W,
                10,
                KEY_SLOT,
                (u32::from(outer_key) % OUTER_ENTRIES) as i32,
            ));
            out.push(Insn::mov64_reg(2, 10));
            out.push(Insn::alu64_imm(BPF_ADD, 2, i32::from(KEY_SLOT)));
            out.extend(Insn::ld_map_fd(1, fds.outer));
            call_and_keep(1, Slot::R8, true, &mut out);
            // mov r1 + call + check (3) + mov r9 + load + add.
            key_to_stack(key, 8, &mut out);
            out.push(Insn::mov64_reg(1, 8));
            call_and_keep(1, Slot::R9, true, &mut out);
            out.push(Insn::ldx_mem(size.bits(), 0, 9, i16::from(off % 16)));
            out.push(Insn::alu64_reg(BPF_ADD, 7, 0));
        }
        Piece::Load { ptr, off, size } => {
            out.push(Insn::ldx_mem(
                size.bits(),
                0,
                ptr.reg(),
                i16::from(off % 40),
            ));
            out.push(Insn::alu64_reg(BPF_ADD, 7, 0));
        }
        Piece::Store {
            ptr,
            off,
            size,
            imm,
        } => out.push(Insn::st_mem(
            size.bits(),
            ptr.reg(),
            i16::from(off % 40),
            imm,
        )),
        Piece::VarLoad { ptr, at, bound } => {
            out.push(Insn::ldx_mem(BPF_B, 3, 6, i16::from(at) % CTX_LEN as i16));
            if let Some(bound) = bound {
                out.push(Insn::jmp_imm(BPF_JGT, 3, i32::from(bound % 48), 4));
            }
            out.push(Insn::mov64_reg(4, ptr.reg()));
            out.push(Insn::alu64_reg(BPF_ADD, 4, 3));
            out.push(Insn::ldx_mem(BPF_B, 0, 4, 0));
            out.push(Insn::alu64_reg(BPF_ADD, 7, 0));
        }
        Piece::Loop { ptr, n, step } => {
            out.push(Insn::mov64_imm(5, 1 + i32::from(n % 8)));
            out.push(Insn::mov64_reg(4, ptr.reg()));
            out.push(Insn::ldx_mem(BPF_B, 0, 4, 0));
            out.push(Insn::alu64_reg(BPF_ADD, 7, 0));
            out.push(Insn::alu64_imm(BPF_ADD, 4, i32::from(step % 5)));
            out.push(Insn::alu64_imm(BPF_SUB, 5, 1));
            out.push(Insn::jmp_imm(BPF_JNE, 5, 0, -5));
        }
        Piece::Spill { from } => {
            let to = match from {
                Slot::R8 => 9,
                Slot::R9 => 8,
            };
            out.push(Insn::stx_mem(BPF_DW, 10, from.reg(), SPILL_SLOT));
            out.push(Insn::ldx_mem(BPF_DW, to, 10, SPILL_SLOT));
        }
        Piece::Update { map, key, value } => {
            // value at r10-40 (up to 16 bytes), r3 = &value; call; r7 += r0.
            let tail = 2 + 3 + 2 + 1 + 1;
            key_to_stack(key, tail, &mut out);
            out.extend(Insn::ld_map_fd(1, map_fd(map, fds)));
            update_tail(value, &mut out);
        }
        Piece::InnerUpdate { src, key, value } => {
            let tail = 1 + 3 + 2 + 1 + 1;
            key_to_stack(key, tail, &mut out);
            out.push(Insn::mov64_reg(1, src.reg()));
            update_tail(value, &mut out);
        }
        Piece::InnerDelete { src, key } => {
            let tail = 1 + 1 + 1;
            key_to_stack(key, tail, &mut out);
            out.push(Insn::mov64_reg(1, src.reg()));
            out.push(Insn::call_helper(3));
            out.push(Insn::alu64_reg(BPF_ADD, 7, 0));
        }
        Piece::Branch { at } => {
            out.push(Insn::ldx_mem(BPF_B, 3, 6, i16::from(at) % CTX_LEN as i16));
            out.push(Insn::alu64_imm(BPF_AND, 3, 1));
            // Offset patched to the next block's length.
            out.push(Insn::jmp_imm(BPF_JNE, 3, 0, 0));
        }
        Piece::Alu { op, imm } => {
            const OPS: [u8; 6] = [BPF_ADD, BPF_XOR, BPF_MUL, BPF_OR, BPF_AND, BPF_LSH];
            let op = OPS[usize::from(op) % OPS.len()];
            let imm = if op == BPF_LSH { imm & 63 } else { imm };
            out.push(Insn::alu64_imm(op, 7, imm));
        }
    }
    out
}

/// Value on the stack, `r3 = &value`, `r4 = BPF_ANY`, call update, `r7 += r0`.
fn update_tail(value: i32, out: &mut Vec<Insn>) {
    out.push(Insn::st_mem(BPF_DW, 10, VALUE_SLOT, value));
    out.push(Insn::st_mem(BPF_DW, 10, VALUE_SLOT + 8, value));
    out.push(Insn::mov64_reg(3, 10));
    out.push(Insn::alu64_imm(BPF_ADD, 3, i32::from(VALUE_SLOT)));
    out.push(Insn::mov64_imm(4, 0));
    out.push(Insn::call_helper(2));
    out.push(Insn::alu64_reg(BPF_ADD, 7, 0));
}

/// What a run left behind: r0, the context, and every element of every map reachable by fd.
#[derive(Debug, PartialEq, Eq)]
pub struct RunResult {
    pub r0: u64,
    pub ctx: Vec<u8>,
    pub maps: Vec<(u32, Vec<u8>, Result<Vec<u8>, String>)>,
}

/// Why one run failed.
#[derive(Debug)]
pub enum RunFailure {
    /// The budget ran out: not a finding (a verified loop may be long).
    Budget,
    Error(String),
}

fn run_in(
    sys: &mut Process<Std>,
    insns: &[Insn],
    ctx: &[u8; CTX_LEN],
) -> Result<RunResult, RunFailure> {
    let program =
        Program::new(insns).map_err(|e| RunFailure::Error(format!("program refused: {e}")))?;
    let world = sys.world().clone();
    let mut ctx = *ctx;
    let mut vm = Vm::new(Config { budget: RUN_BUDGET });
    world
        .rcu_read_lock(Flavor::Rcu)
        .map_err(|e| RunFailure::Error(format!("rcu_read_lock: {e}")))?;
    let result = vm.run(
        &program,
        &mut ctx,
        &mut WorldEnv::new(&world),
        &mut NoObserver,
    );
    world
        .rcu_read_unlock(Flavor::Rcu)
        .map_err(|e| RunFailure::Error(format!("rcu_read_unlock: {e}")))?;
    let r0 = match result {
        Ok(r0) => r0,
        Err(e) if matches!(e.kind, ExecErrorKind::Budget(_)) => return Err(RunFailure::Budget),
        Err(e) => return Err(RunFailure::Error(e.to_string())),
    };
    Ok(RunResult {
        r0,
        ctx: ctx.to_vec(),
        maps: snapshot(sys),
    })
}

/// Every element of every open map (and of inner maps, by id) as user space reads it.
fn snapshot(sys: &mut Process<Std>) -> Vec<(u32, Vec<u8>, Result<Vec<u8>, String>)> {
    let mut out = Vec::new();
    let fds = sys.world().open_fds();
    for fd in fds {
        let Ok(info) = sys.map_info(fd) else { continue };
        for key in 0..info.max_entries.min(32) {
            let key = key.to_ne_bytes().to_vec();
            let value = sys.map_lookup_elem(fd, &key).map_err(|e| e.to_string());
            // Follow outer slots into the inner map (ids are the same in both worlds).
            if let (Ok(id), true) = (
                &value,
                MapType::from_u32(info.map_type).is_some_and(MapType::is_map_in_map),
            ) {
                let id = u32::from_ne_bytes([id[0], id[1], id[2], id[3]]);
                if let Ok(inner) = sys.map_get_fd_by_id(id) {
                    if let Ok(inner_info) = sys.map_info(inner) {
                        for k in 0..inner_info.max_entries.min(32) {
                            let k = k.to_ne_bytes().to_vec();
                            let v = sys.map_lookup_elem(inner, &k).map_err(|e| e.to_string());
                            out.push((id, k, v));
                        }
                    }
                    let _ = sys.close(inner);
                }
            }
            out.push((fd as u32, key, value));
        }
    }
    out
}

/// One input: panics when an accepted program fails a check or its two runs disagree.
pub fn check(data: &[u8]) {
    let Ok(case) = Case::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    check_case(&case, mutants_from_env());
}

/// The property on a decoded case (also used by the replay command).
pub fn check_case(case: &Case, mutants: Mutants) {
    let Some((mut fixed_sys, fds)) = build_world(&case.setup, mutants) else {
        return;
    };
    let insns = assemble_pieces(&case.pieces, fds);
    let opts = VerifyOpts {
        ctx_size: CTX_LEN as u32,
        mutants,
        ..VerifyOpts::default()
    };
    let world = fixed_sys.world().clone();
    // Rejection is fine (and must not panic); acceptance is a claim we check.
    let Ok(verified) = verify(&insns, &*world, opts) else {
        return;
    };
    let listing = || {
        format!(
            "set-up: {:?}\nprogram:\n{}",
            case.setup,
            mimic_core::bpf::asm::disassemble(&insns).unwrap_or_default()
        )
    };
    let fixed = fixup(&verified, mutants)
        .unwrap_or_else(|e| panic!("fixup of a verified program failed: {e}\n{}", listing()));
    let fixed_run = run_in(&mut fixed_sys, &fixed.insns, &case.ctx);
    let Some((mut plain_sys, _)) = build_world(&case.setup, mutants) else {
        panic!(
            "the same set-up built once and failed the second time\n{}",
            listing()
        );
    };
    let plain_run = run_in(&mut plain_sys, &insns, &case.ctx);
    let xlated = || fixed.dump_xlated().unwrap_or_default();
    match (fixed_run, plain_run) {
        (Err(RunFailure::Budget), _) | (_, Err(RunFailure::Budget)) => {}
        (Err(RunFailure::Error(e)), _) => panic!(
            "verified program failed a check after fixups: {e}\n{}\nxlated:\n{}",
            listing(),
            xlated()
        ),
        (_, Err(RunFailure::Error(e))) => {
            panic!(
                "verified program failed a check (no fixups): {e}\n{}",
                listing()
            )
        }
        (Ok(a), Ok(b)) => {
            if a != b {
                panic!(
                    "fixed-up and generic runs disagree:\n fixed: r0 {:#x} ctx {:?}\n plain: r0 {:#x} ctx {:?}\n{}\nfirst map difference: {:?}\nxlated:\n{}",
                    a.r0,
                    a.ctx,
                    b.r0,
                    b.ctx,
                    listing(),
                    a.maps.iter().zip(&b.maps).find(|(x, y)| x != y),
                    xlated()
                );
            }
        }
    }
}
