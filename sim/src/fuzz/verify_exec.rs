//! `verify_exec`: structured programs and a map set-up from the fuzz bytes; verify; if accepted,
//! fix up and run on the core's world. The verifier claims the program is safe, so any memory
//! check failure, null dereference, world fault (use after free, out of bounds), state-embedding
//! escape or panic is a crash: the verifier (or a fixup) let an unsafe program through.
//!
//! Each accepted program runs twice on one world: as the kernel runs it (fixed up: map pointers
//! resolved, array lookups inlined by `gen_lookup`, direct calls), then, after the maps' values
//! are restored to their state before the first run, as verified (generic helper calls through
//! the world) under the soundness oracle ([`OracleObserver`] with the world's pointer
//! classifier): before every instruction each live register and known stack byte must lie
//! inside the state the verifier accepted there. Both runs must succeed and agree on `r0`, the
//! context and every map's values and slots: an inlined lookup that reads the wrong element
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
//! fixups. `MIMIC_FUZZ_KERNEL=1` (built with `--features kernel`) also compares each input with
//! the running kernel ([`kernel`]).
//!
//! Speed (a campaign wants ≥ 20,000 exec/s for programs of up to 64 instructions, so that an
//! hour explores tens of millions of programs): programs stop
//! at [`MAX_INSNS`] slots; one world per input, restored between the runs from an image of its
//! array values; snapshots read value memory directly; messages are formatted only on failure.
//! Campaigns build this target without comparison tracing (`--no-trace-compares`), which is
//! what brings it past 20,000 (BENCHMARKS.md, "Fuzzing").

use crate::fuzz::mutants_from_env;
use arbitrary::{Arbitrary, Unstructured};
use mimic_core::arena::Handle;
use mimic_core::bpf::exec::{Config, ExecErrorKind, NoObserver, Observer, Program, Vm};
use mimic_core::bpf::fixup::fixup;
use mimic_core::bpf::verifier::oracle::OracleObserver;
use mimic_core::bpf::verifier::world::classify_map_ptr;
use mimic_core::bpf::verifier::{
    check_loose_pruning, verify, MapResolver, Rejection, Verified, VerifyOpts,
};
use mimic_core::bpf::world_env::WorldEnv;
use mimic_core::isa::*;
use mimic_core::maps::{array::elem_size, ARRAY_VALUE_OFFSET};
use mimic_core::mutants::Mutants;
use mimic_core::rcu::Flavor;
use mimic_core::sync::Std;
use mimic_core::sys::Process;
use mimic_core::uapi::{BpfSys, Fd, MapAttr, MapType, BPF_ANY, BPF_F_INNER_MAP};
use mimic_core::world::{World, WorldConfig};

/// Bytes of context the program may read (`r1` at entry).
pub const CTX_LEN: usize = 32;
/// Pieces per program at most.
const MAX_PIECES: usize = 10;
/// Instruction slots per program at most (the prologue and the closing `r0 = r7; exit`
/// included): the workload is programs of up to 64 instructions, and a longer program
/// costs about three times as much per input (more paths, more states) without reaching a
/// map-in-map shape a shorter one cannot. A piece that would not fit ends the program.
pub const MAX_INSNS: usize = 64;
/// Slots of the prologue and the closing instructions [`assemble_pieces`] adds.
const FRAME_INSNS: usize = 7;
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
        let mut len = FRAME_INSNS;
        // The pieces' lengths do not depend on the fds; one buffer serves every piece.
        let fds = Fds { outer: 0, array: 0 };
        let mut code = Vec::new();
        while pieces.len() < MAX_PIECES && !u.is_empty() {
            let piece = Piece::arbitrary(u)?;
            code.clear();
            emit(&piece, fds, &mut code);
            len += code.len();
            if len > MAX_INSNS {
                break;
            }
            pieces.push(piece);
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

/// The set-up built in one world: the process, the fds programs name, and the maps a program
/// can reach (for snapshots and restores).
struct Built {
    sys: Process<Std>,
    fds: Fds,
    /// The plain array and every inner array an outer map holds.
    arrays: Vec<Handle>,
    outer: Handle,
}

/// Builds the set-up in a fresh world; `None` when creation is refused (a shape the generator
/// cannot express is not a finding).
pub fn build_world(setup: &Setup, mutants: Mutants) -> Option<(Process<Std>, Fds)> {
    build(setup, mutants).map(|b| (b.sys, b.fds))
}

fn build(setup: &Setup, mutants: Mutants) -> Option<Built> {
    let mut sys = Process::<Std>::create(mutants, WorldConfig::default());
    let fds = build_on(&mut sys, setup, &mut fill)?;
    let Fds { outer, array } = fds;
    let world = sys.world();
    let outer_handle = world.map_handle(outer).ok()?;
    // The inner arrays the outer map holds now (a later store to a slot replaced an earlier
    // inner map, which is gone).
    let mut arrays = Vec::new();
    for key in 0..OUTER_ENTRIES {
        if let Ok(Some(ptr)) = world.prog_lookup(outer_handle, &key.to_ne_bytes()) {
            let inner = world.resolve_map_ptr(ptr).ok()?;
            if !arrays.contains(&inner) {
                arrays.push(inner);
            }
        }
    }
    arrays.push(world.map_handle(array).ok()?);
    Some(Built {
        sys,
        fds: Fds { outer, array },
        arrays,
        outer: outer_handle,
    })
}

/// The set-up's syscalls on any backend (the world, the kernel): template, outer map, up to
/// three inner arrays filled by `fill` and stored (the meta decides), the plain array; the
/// template's and inner maps' fds are closed again. `None` when a creation the property needs
/// is refused.
pub fn build_on<S: BpfSys>(sys: &mut S, setup: &Setup, fill: &mut Fill<S>) -> Option<Fds> {
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
        fill(sys, fd, max_entries, value_size, 0x10 * (n as u32 + 1));
        let key = u32::from(inner.slot) % OUTER_ENTRIES;
        // The meta decides: a refused inner map is simply not stored (and freed at the close).
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
    fill(sys, array, a.max_entries(), a.value_size(), 0x80);
    let _ = sys.close(template);
    Some(Fds { outer, array })
}

/// Writes an array's initial contents: `fill(sys, fd, entries, value_size, base)`.
pub type Fill<S> = dyn FnMut(&mut S, Fd, u32, u32, u32);

/// [`fill`] through `BPF_MAP_UPDATE_ELEM`, for backends whose memory is not at hand (the
/// kernel): the same bytes, one update per element.
pub fn fill_by_update<S: BpfSys>(sys: &mut S, fd: Fd, entries: u32, value_size: u32, base: u32) {
    for index in 0..entries {
        let value: Vec<u8> = (0..value_size)
            .map(|b| (base + index * 7 + b) as u8)
            .collect();
        let _ = sys.map_update_elem(fd, &index.to_ne_bytes(), &value, BPF_ANY);
    }
}

/// Distinct contents per element, so reading the wrong element changes the result. Written
/// straight into the array's value memory in one copy (what `entries` updates through the
/// syscall would leave there; the padding after each value stays zero).
fn fill(sys: &mut Process<Std>, fd: Fd, entries: u32, value_size: u32, base: u32) {
    let Ok((_, map)) = sys.world().fd_to_map(fd) else {
        return;
    };
    let elem = elem_size(&map.def) as usize;
    let mut bytes = vec![0u8; elem * entries as usize];
    for (index, value) in bytes.chunks_mut(elem).enumerate() {
        for (b, byte) in value.iter_mut().take(value_size as usize).enumerate() {
            *byte = (base + index as u32 * 7 + b as u32) as u8;
        }
    }
    let _ = map.write_bytes(ARRAY_VALUE_OFFSET, &bytes);
}

/// Emits the program of `pieces` (labels resolved to offsets).
pub fn assemble_pieces(pieces: &[Piece], fds: Fds) -> Vec<Insn> {
    // r6 = ctx, r7 = accumulator, r8/r9 = pointer slots (start as the stack pointer: safe).
    let mut out = vec![
        Insn::mov64_reg(6, 1),
        Insn::mov64_imm(7, 0),
        Insn::mov64_reg(8, 10),
        Insn::alu64_imm(BPF_ADD, 8, -64),
        Insn::mov64_reg(9, 8),
    ];
    // Each piece's block, as a range of `out`, and whether it is a Branch.
    let mut blocks: Vec<(std::ops::Range<usize>, bool)> = Vec::with_capacity(pieces.len());
    for piece in pieces {
        let start = out.len();
        emit(piece, fds, &mut out);
        blocks.push((start..out.len(), matches!(piece, Piece::Branch { .. })));
    }
    // Patch each Branch (its block's last instruction) to skip exactly the next block.
    for (i, (block, is_branch)) in blocks.iter().enumerate() {
        if !is_branch || block.is_empty() {
            continue;
        }
        let next = blocks.get(i + 1).map_or(0, |(b, _)| b.len()) as i16;
        out[block.end - 1].off = next;
    }
    out.push(Insn::mov64_reg(0, 7));
    out.push(Insn::exit());
    out
}

/// Offset of the key slot on the stack: the start of an 8-byte slot, because only a store
/// there is tracked as a spilled constant (a constant `stw` at `r10 - 4` leaves unknown bytes),
/// and a constant key is what lets the verifier drop an array lookup's null check.
const KEY_SLOT: i16 = -8;
/// Offset of the value buffer of updates.
const VALUE_SLOT: i16 = -40;
/// Offset of the spill slot.
const SPILL_SLOT: i16 = -16;

/// `*(u32 *)(r10 - 8) = key; r2 = r10 - 8`; a bounded key may jump over `tail` instructions.
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

/// Appends the instructions of `piece` to `out`.
fn emit(piece: &Piece, fds: Fds, out: &mut Vec<Insn>) {
    match *piece {
        Piece::Lookup {
            map,
            key,
            dst,
            null_check,
        } => {
            // lddw (2) + call + [check (3)] + mov after the key.
            let tail = 4 + 3 * usize::from(null_check);
            key_to_stack(key, tail, out);
            out.extend(Insn::ld_map_fd(1, map_fd(map, fds)));
            call_and_keep(1, dst, null_check, out);
        }
        Piece::InnerLookup {
            src,
            key,
            dst,
            null_check,
        } => {
            let tail = 3 + 3 * usize::from(null_check);
            key_to_stack(key, tail, out);
            out.push(Insn::mov64_reg(1, src.reg()));
            call_and_keep(1, dst, null_check, out);
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
            call_and_keep(1, Slot::R8, true, out);
            // mov r1 + call + check (3) + mov r9 + load + add.
            key_to_stack(key, 8, out);
            out.push(Insn::mov64_reg(1, 8));
            call_and_keep(1, Slot::R9, true, out);
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
            key_to_stack(key, tail, out);
            out.extend(Insn::ld_map_fd(1, map_fd(map, fds)));
            update_tail(value, out);
        }
        Piece::InnerUpdate { src, key, value } => {
            let tail = 1 + 3 + 2 + 1 + 1;
            key_to_stack(key, tail, out);
            out.push(Insn::mov64_reg(1, src.reg()));
            update_tail(value, out);
        }
        Piece::InnerDelete { src, key } => {
            let tail = 1 + 1 + 1;
            key_to_stack(key, tail, out);
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

/// The maps as a program can change them: each reachable array's value memory (padding
/// included) and the outer map's slots (the encoded inner map pointers, `None` for empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapsImage {
    pub arrays: Vec<(Handle, Vec<u8>)>,
    pub slots: Vec<Option<u64>>,
}

impl MapsImage {
    fn take(world: &World<Std>, built: &Built) -> Result<MapsImage, String> {
        let mut arrays = Vec::with_capacity(built.arrays.len());
        for &h in &built.arrays {
            let map = world.map(h).map_err(|e| format!("map {h}: {e}"))?;
            let len = elem_size(&map.def) * map.def.max_entries;
            let bytes = map
                .read_bytes(ARRAY_VALUE_OFFSET, len)
                .map_err(|e| format!("map {h}: {e}"))?;
            arrays.push((h, bytes));
        }
        let slots = (0..OUTER_ENTRIES)
            .map(|k| world.prog_lookup(built.outer, &k.to_ne_bytes()))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("outer slots: {e}"))?;
        Ok(MapsImage { arrays, slots })
    }

    /// Writes the arrays' values back (the slots are never written by a verified program).
    fn restore(&self, world: &World<Std>) -> Result<(), String> {
        for (h, bytes) in &self.arrays {
            world
                .map(*h)
                .and_then(|map| map.write_bytes(ARRAY_VALUE_OFFSET, bytes))
                .map_err(|e| format!("restoring map {h}: {e}"))?;
        }
        Ok(())
    }

    /// The first difference, readably.
    fn first_difference(&self, other: &MapsImage) -> String {
        for ((h, a), (_, b)) in self.arrays.iter().zip(&other.arrays) {
            if let Some(at) = a.iter().zip(b).position(|(x, y)| x != y) {
                return format!(
                    "map {h}, value memory byte {at}: {:#x} vs {:#x}",
                    a[at], b[at]
                );
            }
        }
        if self.slots != other.slots {
            return format!("outer slots: {:x?} vs {:x?}", self.slots, other.slots);
        }
        "none (the maps agree)".to_string()
    }
}

/// What a run left behind: r0, the context, and the maps' values and slots.
#[derive(Debug, PartialEq, Eq)]
pub struct RunResult {
    pub r0: u64,
    pub ctx: [u8; CTX_LEN],
    pub maps: MapsImage,
}

/// Why one run failed.
#[derive(Debug)]
pub enum RunFailure {
    /// The budget ran out: not a finding (a verified loop may be long).
    Budget,
    Error(String),
}

fn run_in<O: Observer>(
    built: &Built,
    insns: &[Insn],
    ctx: &[u8; CTX_LEN],
    observer: &mut O,
) -> Result<RunResult, RunFailure> {
    let program =
        Program::new(insns).map_err(|e| RunFailure::Error(format!("program refused: {e}")))?;
    let world = built.sys.world();
    let mut ctx = *ctx;
    let mut vm = Vm::new(Config {
        budget: RUN_BUDGET,
        ..Config::default()
    });
    world
        .rcu_read_lock(Flavor::Rcu)
        .map_err(|e| RunFailure::Error(format!("rcu_read_lock: {e}")))?;
    let result = vm.run(&program, &mut ctx, &mut WorldEnv::new(world), observer);
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
        ctx,
        maps: MapsImage::take(world, built).map_err(RunFailure::Error)?,
    })
}

pub mod packet;

/// One input: panics when an accepted program fails a check or its two runs disagree.
pub fn check(data: &[u8]) {
    check_with(data, mutants_from_env());
}

/// [`check`] with the mutants given: a packet program when the input starts with
/// [`packet::MODE`] (XDP) or [`packet::MODE_TC`] (tc), otherwise a map-in-map program and its
/// set-up.
pub fn check_with(data: &[u8], mutants: Mutants) {
    if let Some((&mode, rest)) = data.split_first() {
        if let Some(hook) = packet::Hook::from_mode(mode) {
            if let Some(case) = packet::decode(rest) {
                packet::check_packet(&case, hook, mutants);
            }
            return;
        }
    }
    let Ok(case) = Case::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    check_case(&case, mutants);
}

/// The property on a decoded case (also used by the replay command).
pub fn check_case(case: &Case, mutants: Mutants) {
    #[cfg(feature = "kernel")]
    if kernel::enabled() {
        kernel::against_kernel(case, mutants);
    }
    let Some(built) = build(&case.setup, mutants) else {
        return;
    };
    let insns = assemble_pieces(&case.pieces, built.fds);
    let opts = VerifyOpts {
        ctx_size: CTX_LEN as u32,
        mutants,
        collect_states: true,
        ..VerifyOpts::default()
    };
    let world: &World<Std> = built.sys.world();
    // Rejection is fine (and must not panic); acceptance is a claim we check.
    let exact = verify(&insns, world, opts);
    loose_pruning_agrees(&insns, world, opts, &exact, || {
        format!("set-up: {:?}", case.setup)
    });
    let Ok(verified) = exact else {
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
    let before = MapsImage::take(world, &built)
        .unwrap_or_else(|e| panic!("reading the maps before the runs: {e}\n{}", listing()));
    let fixed_run = run_in(&built, &fixed.insns, &case.ctx, &mut NoObserver);
    before
        .restore(world)
        .unwrap_or_else(|e| panic!("{e}\n{}", listing()));
    let Some(oracle) = verified.oracle.as_ref() else {
        panic!(
            "the verifier kept no states although asked to\n{}",
            listing()
        );
    };
    let classify = |p| classify_map_ptr(world, p);
    let mut observer = OracleObserver::new(oracle, &verified.maps);
    observer.classify_map = &classify;
    let plain_run = run_in(&built, &insns, &case.ctx, &mut observer);
    let xlated = || fixed.dump_xlated().unwrap_or_default();
    if let Some(escape) = observer.escapes.first() {
        // The root cause; what the fixed-up run did is context.
        let fixed_outcome = match &fixed_run {
            Ok(r) => format!("returned {:#x}", r.r0),
            Err(RunFailure::Budget) => "ran out of budget".to_string(),
            Err(RunFailure::Error(e)) => format!("failed a check: {e}"),
        };
        panic!(
            "state-embedding escape (the verifier is unsound): {escape}\nthe fixed-up run {fixed_outcome}\n{}\nxlated:\n{}",
            listing(),
            xlated()
        );
    }
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
                    "fixed-up and generic runs disagree:\n fixed: r0 {:#x} ctx {:?}\n plain: r0 {:#x} ctx {:?}\n{}\nfirst map difference: {}\nxlated:\n{}",
                    a.r0,
                    a.ctx,
                    b.r0,
                    b.ctx,
                    listing(),
                    a.maps.first_difference(&b.maps),
                    xlated()
                );
            }
        }
    }
}

/// [`check_loose_pruning`] as the target's property: a differing verdict is a finding.
pub(crate) fn loose_pruning_agrees(
    insns: &[Insn],
    maps: &dyn MapResolver,
    exact_opts: VerifyOpts,
    exact: &Result<Verified, Rejection>,
    context: impl Fn() -> String,
) {
    if let Err(finding) = check_loose_pruning(insns, maps, exact_opts, exact) {
        panic!(
            "{finding}\n{}\nprogram:\n{}",
            context(),
            mimic_core::bpf::asm::disassemble(insns).unwrap_or_default()
        );
    }
}

/// The kernel mode (`MIMIC_FUZZ_KERNEL=1`, built with `--features kernel`): the same set-up
/// on the kernel, the same program (with the kernel's fds) loaded there as kernel-check loads
/// its corpus (privileged, sleepable `BPF_PROG_TYPE_SYSCALL`) and verified by mimic as
/// `ProgType::Syscall`; the verdicts compared by kernel-check's classifier, and programs both
/// accept test-run on both with the case's context (r0, the context written back, every
/// reachable array's contents compared by kernel-check's comparison). Every kernel fd is
/// closed at the end of the input (the backend is dropped, which closes what it owns).
#[cfg(feature = "kernel")]
pub mod kernel {
    use super::*;
    use crate::kernel::verdicts::{self, Contents, STRICTER, UNSOUND};
    use crate::kernel::KernelSys;
    use mimic_core::profile::KernelProfile;

    /// Lines of the kernel's verifier log shown with an unsound verdict.
    const LOG_TAIL: usize = 6;

    /// The kernel mode is on for this process ([`crate::fuzz::kernel_mode`]).
    pub fn enabled() -> bool {
        crate::fuzz::kernel_mode("verify_exec")
    }

    /// What one input did on the kernel (for tests and counts).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Outcome {
        /// A set-up creation was refused on both sides: nothing compared.
        NoSetup,
        /// Both refused, with the same message.
        BothRefuse,
        /// Both accepted and the test runs agree.
        BothRun,
        /// Both accepted a program that reads a kernel struct through a map pointer: the bytes
        /// are the kernel's own (ids, counts, hashes), so the runs are not compared.
        BothAcceptKernelStruct,
    }

    /// A rule on (kernel message, mimic message).
    type Rule = fn(&str, &str) -> bool;

    /// Known, classified verdict differences (docs/kernel-disagreements.md, "Generated
    /// programs"): a stricter verdict or a different first message is allowed when a rule
    /// matches (kernel message, mimic message); anything else is a finding. An unsound verdict
    /// is never allowed.
    const KNOWN: &[(&str, Rule)] = &[
        (
            // mimic refuses every variable-offset stack access; the privileged kernel checks
            // the range instead (and may accept, or refuse later for another reason).
            "G1 variable-offset stack access",
            |_, ours| ours.contains("variable stack access prohibited"),
        ),
        (
            // mimic drops the null of an array lookup whose key bytes it knows; the kernel only
            // for STACK_ZERO bytes or a spilled constant of exactly the key's size, so its
            // register is still `map_value_or_null` where mimic's is `map_value`.
            "G2 null elided for a constant key the kernel does not track",
            |theirs, ours| theirs.contains("map_value_or_null") && !ours.contains("or_null"),
        ),
        (
            // A read of a pointer member through a map pointer gives the kernel a pointer into
            // its own memory (`ptr_to_btf_id`), which mimic does not model: mimic refuses it
            // (D24), and the kernel accepts or refuses later for another reason.
            "G3 pointer member of a map's struct read",
            |_, ours| ours.contains(mimic_core::bpf::verifier::btf_walk::UNMODELLED_POINTER),
        ),
    ];

    /// The rule that classifies a difference, if any.
    fn known(theirs: &str, ours: &str) -> Option<&'static str> {
        KNOWN
            .iter()
            .find(|(_, rule)| rule(theirs, ours))
            .map(|(name, _)| *name)
    }

    /// Bytes of stack below `r10` the pieces address through `r8`/`r9` (they start at
    /// `r10 - 64`), zeroed first on both sides.
    const STACK_USED: i16 = 64;

    /// The program after `*(u64 *)(r10 - k) = 0` for the stack the pieces use. A privileged
    /// program may read uninitialised stack, and the kernel's bytes there are whatever ran
    /// before (mimic's are zero): with the stack zeroed both runs read the same bytes, so r0
    /// and the maps can be compared.
    fn with_zeroed_stack(prog: Vec<Insn>) -> Vec<Insn> {
        let mut out: Vec<Insn> = (1..=STACK_USED / 8)
            .map(|k| Insn::st_mem(BPF_DW, 10, -8 * k, 0))
            .collect();
        out.extend(prog);
        out
    }

    fn tail(log: &str) -> String {
        let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n")
    }

    /// Every array a program can reach, read back through the syscalls: the inner arrays of
    /// the outer slots (by id; an empty slot is its error) and the plain array, every index.
    fn contents<S: BpfSys>(sys: &mut S, fds: Fds) -> Contents {
        let mut out = Vec::new();
        let read = |sys: &mut S, fd: Fd| -> Vec<Result<Vec<u8>, String>> {
            let entries = sys.map_info(fd).map_or(0, |i| i.max_entries);
            (0..entries)
                .map(|k| {
                    sys.map_lookup_elem(fd, &k.to_ne_bytes())
                        .map_err(|e| e.to_string())
                })
                .collect()
        };
        for key in 0..OUTER_ENTRIES {
            match sys.map_lookup_elem(fds.outer, &key.to_ne_bytes()) {
                Ok(id) if id.len() == 4 => {
                    let id = u32::from_ne_bytes([id[0], id[1], id[2], id[3]]);
                    match sys.map_get_fd_by_id(id) {
                        Ok(fd) => {
                            out.push(read(sys, fd));
                            let _ = sys.close(fd);
                        }
                        Err(e) => out.push(vec![Err(format!("slot {key}: {e}"))]),
                    }
                }
                Ok(v) => out.push(vec![Err(format!("slot {key}: {} bytes", v.len()))]),
                Err(e) => out.push(vec![Err(format!("slot {key}: {e}"))]),
            }
        }
        out.push(read(sys, fds.array));
        out
    }

    /// The live kernel's profile (probed once per process), for mimic's side of the messages.
    fn live_profile() -> Result<KernelProfile, String> {
        match crate::kernel::profile::live() {
            Ok(Ok(profile)) => Ok(**profile),
            Ok(Err(unavailable)) => Err(format!("no kernel to compare with: {}", unavailable.0)),
            Err(report) => Err(report.clone()),
        }
    }

    /// One case on the kernel and on mimic: panics on a disagreement.
    pub fn against_kernel(case: &Case, mutants: Mutants) -> Outcome {
        compare_case(case, mutants).unwrap_or_else(|finding| panic!("{finding}"))
    }

    /// One case on the kernel and on mimic: `Err` is the finding (its first line names the
    /// kind, then the case's listing).
    pub fn compare_case(case: &Case, mutants: Mutants) -> Result<Outcome, String> {
        let mut kernel = KernelSys::default();
        let kfds = build_on(&mut kernel, &case.setup, &mut fill_by_update::<KernelSys>);
        let built = build(&case.setup, mutants);
        let (kfds, built) = match (kfds, built) {
            (Some(k), Some(b)) => (k, b),
            (None, None) => return Ok(Outcome::NoSetup),
            (k, _) => {
                return Err(format!(
                    "set-up built on {} only: {:?}",
                    if k.is_some() {
                        "the kernel"
                    } else {
                        "mimic's world"
                    },
                    case.setup
                ))
            }
        };
        let kinsns = with_zeroed_stack(assemble_pieces(&case.pieces, kfds));
        let winsns = with_zeroed_stack(assemble_pieces(&case.pieces, built.fds));
        let listing = || {
            format!(
                "set-up: {:?}\nctx: {:?}\nprogram:\n{}",
                case.setup,
                case.ctx,
                mimic_core::bpf::asm::disassemble(&winsns).unwrap_or_default()
            )
        };
        let theirs = verdicts::kernel_load(&mut kernel, &kinsns, false);
        let opts = VerifyOpts {
            ctx_size: CTX_LEN as u32,
            mutants,
            ..verdicts::syscall_opts(false, live_profile()?)
        };
        let world: &World<Std> = built.sys.world();
        let ours = verify(&winsns, world, opts);
        if let Err(d) = verdicts::compare_verdicts(&theirs, &ours) {
            match (&theirs, d.kind) {
                (Err(failure), UNSOUND) => {
                    return Err(format!(
                        "UNSOUND: mimic accepts, the kernel refuses: {}\n{}",
                        tail(&failure.log),
                        listing()
                    ))
                }
                (_, kind) => {
                    let kmsg = match &theirs {
                        Err(failure) => verdicts::kernel_message(&failure.log),
                        Ok(_) => String::new(),
                    };
                    let omsg = ours.as_ref().err().map_or("", |r| r.message.as_str());
                    if known(&kmsg, omsg).is_none() {
                        let what = if kind == STRICTER {
                            "mimic stricter than the kernel"
                        } else {
                            kind
                        };
                        return Err(format!("{what}: {}\n{}", d.text, listing()));
                    }
                }
            }
            return Ok(Outcome::BothRefuse);
        }
        let Ok((prog, _)) = theirs else {
            return Ok(Outcome::BothRefuse);
        };
        if ours.as_ref().is_ok_and(|v| v.reads_kernel_struct) {
            return Ok(Outcome::BothAcceptKernelStruct);
        }
        // Syscall programs run once: the kernel refuses a repeat count for them.
        let krun = kernel
            .test_run(prog, &[], &case.ctx, 0)
            .map_err(|e| e.to_string());
        let kc = contents(&mut kernel, kfds);
        let mut our_ctx = case.ctx.to_vec();
        let wrun = verdicts::mimic_test_run(world, &winsns, opts, &mut our_ctx);
        let mut sys = built.sys;
        let wc = contents(&mut sys, built.fds);
        if let Err((kind, text)) =
            verdicts::compare_runs("verify_exec case", krun, wrun, &our_ctx, &kc, &wc)
        {
            return Err(format!(
                "kernel and mimic test runs disagree ({kind}): {text}\n{}",
                listing()
            ));
        }
        drop(kernel);
        Ok(Outcome::BothRun)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_programs_stay_within_max_insns() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut longest = 0;
        for _ in 0..2000 {
            let data = crate::fuzz::pseudo_random(&mut state, 400);
            let Ok(case) = Case::arbitrary_take_rest(Unstructured::new(&data)) else {
                continue;
            };
            let insns = assemble_pieces(&case.pieces, Fds { outer: 3, array: 4 });
            assert!(
                insns.len() <= MAX_INSNS,
                "{} slots: {:?}",
                insns.len(),
                case.pieces
            );
            longest = longest.max(insns.len());
        }
        // The cap binds: long inputs fill programs close to it.
        assert!(longest > MAX_INSNS - 10, "longest program {longest} slots");
        assert_eq!(
            assemble_pieces(&[], Fds { outer: 3, array: 4 }).len(),
            FRAME_INSNS
        );
    }

    #[test]
    fn fill_leaves_what_the_syscall_updates_would() {
        let setup = Setup {
            outer_hash: true,
            template: ArraySpec {
                entries: 2,
                words: 2,
                inner_flag: false,
            },
            inners: vec![],
            array: ArraySpec {
                entries: 4,
                words: 2,
                inner_flag: false,
            },
        };
        let (mut sys, fds) = build_world(&setup, Mutants::NONE).expect("builds");
        // 5 entries of 12 bytes (elem_size 16), base 0x80.
        for index in 0..5u32 {
            let want: Vec<u8> = (0..12).map(|b| (0x80 + index * 7 + b) as u8).collect();
            let got = sys
                .map_lookup_elem(fds.array, &index.to_ne_bytes())
                .expect("present");
            assert_eq!(got, want, "element {index}");
        }
    }
}
