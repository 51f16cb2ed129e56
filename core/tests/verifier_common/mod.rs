//! Shared fixtures of the verifier tests: the selftests' maps behind an in-memory resolver, and
//! the selftest programs of semantics.md §9 rebuilt from their descriptions.
#![allow(dead_code)]

use mimic_core::bpf::verifier::{MapDesc, MapTable};
use mimic_core::isa::*;
use mimic_core::uapi::{MapType, BPF_F_INNER_MAP};

pub const FD_MAP_IN_MAP: i32 = 3;
pub const FD_HASH_8B: i32 = 4;
pub const FD_HASH_OF_MAPS: i32 = 5;
pub const FD_MAP_IN_MAP_DYN: i32 = 6;
pub const FD_ARRAY_5: i32 = 7;

/// The selftests' `map_in_map`: ARRAY_OF_MAPS[1] of ARRAY(int, int, 1), and friends.
pub fn maps() -> MapTable {
    let inner = MapDesc::new(MapType::Array, 4, 4, 1, 0);
    let dyn_inner = MapDesc::new(MapType::Array, 4, 4, 1, BPF_F_INNER_MAP);
    MapTable(vec![
        (
            FD_MAP_IN_MAP,
            MapDesc::new(MapType::ArrayOfMaps, 4, 4, 1, 0)
                .with_meta(inner.clone())
                .with_id(11, 0x3000_0b00_0000_0000),
        ),
        (
            FD_HASH_8B,
            MapDesc::new(MapType::Hash, 8, 8, 1, 0).with_id(12, 0x3000_0c00_0000_0000),
        ),
        (
            FD_HASH_OF_MAPS,
            MapDesc::new(MapType::HashOfMaps, 4, 4, 2, 0)
                .with_meta(MapDesc::new(MapType::Array, 4, 4, 5, 0))
                .with_id(13, 0x3000_0d00_0000_0000),
        ),
        (
            FD_MAP_IN_MAP_DYN,
            MapDesc::new(MapType::ArrayOfMaps, 4, 4, 3, 0)
                .with_meta(dyn_inner)
                .with_id(14, 0x3000_0e00_0000_0000),
        ),
        (
            FD_ARRAY_5,
            MapDesc::new(MapType::Array, 4, 4, 5, 0).with_id(15, 0x3000_0f00_0000_0000),
        ),
    ])
}

pub struct Prog(pub Vec<Insn>);

impl Prog {
    pub fn new() -> Prog {
        Prog(Vec::new())
    }
    pub fn i(mut self, insn: Insn) -> Prog {
        self.0.push(insn);
        self
    }
    pub fn map(mut self, dst: u8, fd: i32) -> Prog {
        self.0.extend(Insn::ld_map_fd(dst, fd));
        self
    }
    /// `*(u32 *)(r10 - 4) = 0; r2 = r10 - 4`
    pub fn key0(self) -> Prog {
        self.i(Insn::mov64_imm(1, 0))
            .i(Insn::stx_mem(BPF_W, 10, 1, -4))
            .i(Insn::mov64_reg(2, 10))
            .i(Insn::alu64_imm(BPF_ADD, 2, -4))
    }
    pub fn lookup(self) -> Prog {
        self.i(Insn::call_helper(1))
    }
}

/// "map in map access": outer lookup, null check, inner lookup.
pub fn map_in_map_access() -> Vec<Insn> {
    Prog::new()
        .key0()
        .map(1, FD_MAP_IN_MAP)
        .lookup()
        .i(Insn::jmp_imm(BPF_JEQ, 0, 0, 6))
        .key0()
        .i(Insn::mov64_reg(1, 0))
        .lookup()
        .i(Insn::mov64_imm(0, 0))
        .i(Insn::exit())
        .0
}

/// "map in map state pruning": two lookup chains joining at the last two instructions.
pub fn map_in_map_state_pruning() -> Vec<Insn> {
    Prog::new()
        .i(Insn::mov64_imm(1, 0))
        .i(Insn::stx_mem(BPF_W, 10, 1, -4))
        .i(Insn::mov64_reg(6, 10))
        .i(Insn::alu64_imm(BPF_ADD, 6, -4))
        .i(Insn::mov64_reg(2, 6))
        .map(1, FD_MAP_IN_MAP)
        .lookup()
        .i(Insn::jmp_imm(BPF_JNE, 0, 0, 1))
        .i(Insn::exit())
        .i(Insn::mov64_reg(2, 6))
        .i(Insn::mov64_reg(1, 0))
        .lookup()
        .i(Insn::jmp_imm(BPF_JNE, 0, 0, 11))
        .i(Insn::mov64_reg(2, 6))
        .map(1, FD_MAP_IN_MAP)
        .lookup()
        .i(Insn::jmp_imm(BPF_JNE, 0, 0, 1))
        .i(Insn::exit())
        .i(Insn::mov64_reg(2, 6))
        .i(Insn::mov64_reg(1, 0))
        .lookup()
        .i(Insn::jmp_imm(BPF_JNE, 0, 0, 1))
        .i(Insn::exit())
        .i(Insn::ldx_mem(BPF_W, 0, 0, 0))
        .i(Insn::exit())
        .0
}

/// Two inner-map pointers (r7, r8) from two lookups, then `n` diamonds each spilling one of
/// them (by an unknown branch) to its own stack slot; the slots are all used at the end. The
/// two pointers have the same meta, so pruning at each join keeps this linear. With every
/// inner lookup given its own identity (`inner_map_uid_always`) r7 and r8 differ, no two
/// paths compare equal, and the paths double per diamond.
pub fn inner_lookup_diamonds(n: usize) -> Vec<Insn> {
    assert!(n <= 60, "one stack slot per diamond");
    let n64 = n as i64;
    // Slots: start 5, two lookups 6 each, diamonds 5 each, tail 3 per slot + 2, exit path.
    let exit_path = 17 + 5 * n64 + 3 * n64 + 2;
    let mut p = Prog::new()
        .i(Insn::mov64_reg(9, 1))
        .i(Insn::mov64_imm(1, 0))
        .i(Insn::stx_mem(BPF_W, 10, 1, -4))
        .i(Insn::mov64_reg(6, 10))
        .i(Insn::alu64_imm(BPF_ADD, 6, -4));
    for (reg, jeq_at) in [(7u8, 9i64), (8, 15)] {
        p = p
            .i(Insn::mov64_reg(2, 6))
            .map(1, FD_MAP_IN_MAP)
            .lookup()
            .i(Insn::jmp_imm(
                BPF_JEQ,
                0,
                0,
                (exit_path - jeq_at - 1) as i16,
            ))
            .i(Insn::mov64_reg(reg, 0));
    }
    let slot = |k: i64| (-16 - 8 * k) as i16;
    for k in 0..n64 {
        p = p
            .i(Insn::ldx_mem(BPF_W, 3, 9, 0))
            .i(Insn::jmp_imm(BPF_JSET, 3, 1 << (k % 31), 2))
            .i(Insn::stx_mem(BPF_DW, 10, 7, slot(k)))
            .i(Insn::ja(1))
            .i(Insn::stx_mem(BPF_DW, 10, 8, slot(k)));
    }
    for k in 0..n64 {
        p = p
            .i(Insn::ldx_mem(BPF_DW, 1, 10, slot(k)))
            .i(Insn::mov64_reg(2, 6))
            .lookup();
    }
    p.i(Insn::mov64_imm(0, 0))
        .i(Insn::exit())
        .i(Insn::mov64_imm(0, 0))
        .i(Insn::exit())
        .0
}
