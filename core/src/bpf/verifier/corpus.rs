//! The verifier corpus shared by the verifier tests and `mimic kernel-check`: the selftests'
//! maps as a [`MapTable`], the selftest programs of semantics.md §9 rebuilt from their
//! descriptions, each §9 case with the verdict the Linux 6.18 kernel gives ([`cases`]), and a
//! small seeded generator of map-in-map programs ([`generated`]). Map fds in the programs are
//! the `FD_*` constants: a backend that loads them for real substitutes its own fds.

use crate::bpf::verifier::{MapDesc, MapTable};
use crate::isa::*;
use crate::profile::KernelProfile;
use crate::uapi::{MapType, BPF_F_INNER_MAP};

pub const FD_MAP_IN_MAP: i32 = 3;
pub const FD_HASH_8B: i32 = 4;
pub const FD_HASH_OF_MAPS: i32 = 5;
pub const FD_MAP_IN_MAP_DYN: i32 = 6;
pub const FD_ARRAY_5: i32 = 7;
/// A hash of maps over a `BPF_F_INNER_MAP` array template of 4 entries.
pub const FD_HASH_OF_MAPS_DYN: i32 = 8;

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
        (
            FD_HASH_OF_MAPS_DYN,
            MapDesc::new(MapType::HashOfMaps, 4, 4, 2, 0)
                .with_meta(MapDesc::new(MapType::Array, 4, 4, 4, BPF_F_INNER_MAP))
                .with_id(16, 0x3000_1000_0000_0000),
        ),
    ])
}

#[derive(Debug, Clone, Default)]
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

/// The verdict the kernel gives for a case.
pub enum Expect {
    Accept {
        processed: u64,
    },
    Reject {
        insn: usize,
        message: String,
        processed: u64,
    },
}

pub struct Case {
    pub name: &'static str,
    pub prog: Vec<Insn>,
    pub privileged: bool,
    pub state_freq: bool,
    pub expect: Expect,
}

pub fn outer_lookup_then(fd: i32) -> Prog {
    Prog::new().key0().map(1, fd).lookup()
}

/// The §9 cases with the verdicts and messages of `profile`'s build.
pub fn cases(profile: &KernelProfile) -> Vec<Case> {
    let outer_or_null = profile.outer_lookup_or_null();
    let priv_case = |name, prog, expect| Case {
        name,
        prog,
        privileged: true,
        state_freq: false,
        expect,
    };
    vec![
        priv_case(
            "map in map access: outer lookup, null check, inner lookup",
            map_in_map_access(),
            Expect::Accept { processed: 16 },
        ),
        Case {
            name: "map in map state pruning",
            prog: map_in_map_state_pruning(),
            privileged: true,
            state_freq: true,
            expect: Expect::Accept { processed: 15 },
        },
        priv_case(
            "invalid inner map pointer: r1 += 8 on the inner map pointer",
            outer_lookup_then(FD_MAP_IN_MAP)
                .i(Insn::jmp_imm(BPF_JEQ, 0, 0, 7))
                .key0()
                .i(Insn::mov64_reg(1, 0))
                .i(Insn::alu64_imm(BPF_ADD, 1, 8))
                .lookup()
                .i(Insn::mov64_imm(0, 0))
                .i(Insn::exit())
                .0,
            Expect::Reject {
                insn: 13,
                message: "R1 pointer arithmetic on map_ptr prohibited".to_string(),
                processed: 13,
            },
        ),
        priv_case(
            "forgot null checking on the inner map pointer",
            outer_lookup_then(FD_MAP_IN_MAP)
                .key0()
                .i(Insn::mov64_reg(1, 0))
                .lookup()
                .i(Insn::mov64_imm(0, 0))
                .i(Insn::exit())
                .0,
            Expect::Reject {
                insn: 12,
                message: format!("R1 type={outer_or_null} expected=map_ptr"),
                processed: 12,
            },
        ),
        priv_case(
            "calls: two calls returning different map pointers for lookup (hash, map in map)",
            Prog::new()
                .i(Insn::jmp_imm(BPF_JEQ, 1, 0, 2))
                .i(Insn::call_local(11))
                .i(Insn::ja(1))
                .i(Insn::call_local(12))
                .i(Insn::mov64_reg(1, 0))
                .i(Insn::st_mem(BPF_DW, 10, -8, 0))
                .i(Insn::mov64_reg(2, 10))
                .i(Insn::alu64_imm(BPF_ADD, 2, -8))
                .lookup()
                .i(Insn::jmp_imm(BPF_JEQ, 0, 0, 2))
                .i(Insn::st_mem(BPF_DW, 0, 0, 0))
                .i(Insn::mov64_imm(0, 1))
                .i(Insn::exit())
                .map(0, FD_HASH_8B)
                .i(Insn::exit())
                .map(0, FD_MAP_IN_MAP)
                .i(Insn::exit())
                .0,
            Expect::Reject {
                insn: 10,
                message: "only read from bpf_array is supported".to_string(),
                processed: 25,
            },
        ),
        priv_case(
            "update on an array-of-maps from a program",
            update_on(FD_MAP_IN_MAP),
            Expect::Reject {
                insn: 9,
                message: "cannot pass map_type 12 into func bpf_map_update_elem#2".to_string(),
                processed: 9,
            },
        ),
        priv_case(
            "update on a hash-of-maps from a program",
            update_on(FD_HASH_OF_MAPS),
            Expect::Reject {
                insn: 9,
                message: "cannot pass map_type 13 into func bpf_map_update_elem#2".to_string(),
                processed: 9,
            },
        ),
        priv_case(
            "outer lookup result dereferenced without a null check",
            outer_lookup_then(FD_MAP_IN_MAP)
                .i(Insn::ldx_mem(BPF_W, 0, 0, 0))
                .i(Insn::exit())
                .0,
            Expect::Reject {
                insn: 7,
                message: format!("R0 invalid mem access '{outer_or_null}'"),
                processed: 7,
            },
        ),
        priv_case(
            "write through the inner map pointer",
            outer_lookup_then(FD_MAP_IN_MAP)
                .i(Insn::jmp_imm(BPF_JEQ, 0, 0, 1))
                .i(Insn::st_mem(BPF_DW, 0, 0, 0))
                .i(Insn::mov64_imm(0, 0))
                .i(Insn::exit())
                .0,
            Expect::Reject {
                insn: 8,
                message: "only read from bpf_array is supported".to_string(),
                processed: 8,
            },
        ),
        priv_case(
            "privileged read of an inner map pointer field",
            outer_lookup_then(FD_MAP_IN_MAP)
                .i(Insn::jmp_imm(BPF_JEQ, 0, 0, 1))
                .i(Insn::ldx_mem(BPF_DW, 0, 0, 0))
                .i(Insn::mov64_imm(0, 0))
                .i(Insn::exit())
                .0,
            Expect::Accept { processed: 11 },
        ),
        priv_case(
            "map in map dynamic inner array lookup is nullable",
            dyn_inner_lookup_unchecked(4),
            dyn_inner_nullable(),
        ),
        priv_case(
            // Key 0 is inside the template's one entry: only the BPF_F_INNER_MAP flag keeps the
            // result nullable (a smaller inner array may be swapped in), not the bound.
            "map in map dynamic inner array lookup at an in-range key is nullable",
            dyn_inner_lookup_unchecked(0),
            dyn_inner_nullable(),
        ),
        priv_case(
            "inner lookup with a constant in-bounds key needs no null check",
            outer_lookup_then(FD_MAP_IN_MAP)
                .i(Insn::jmp_imm(BPF_JEQ, 0, 0, 8))
                .key0()
                .i(Insn::mov64_reg(1, 0))
                .lookup()
                .i(Insn::ldx_mem(BPF_W, 0, 0, 0))
                .i(Insn::exit())
                .i(Insn::mov64_imm(0, 0))
                .i(Insn::exit())
                .0,
            Expect::Accept { processed: 17 },
        ),
    ]
}

/// `FD_MAP_IN_MAP_DYN[0]`, then its inner array at constant `key`, read without a null check.
fn dyn_inner_lookup_unchecked(key: i32) -> Vec<Insn> {
    outer_lookup_then(FD_MAP_IN_MAP_DYN)
        .i(Insn::jmp_imm(BPF_JEQ, 0, 0, 5))
        .i(Insn::st_mem(BPF_W, 10, -8, key))
        .i(Insn::mov64_reg(2, 10))
        .i(Insn::alu64_imm(BPF_ADD, 2, -8))
        .i(Insn::mov64_reg(1, 0))
        .lookup()
        .i(Insn::ldx_mem(BPF_DW, 0, 0, 0))
        .i(Insn::exit())
        .0
}

/// What the verifier says of [`dyn_inner_lookup_unchecked`] at any key: the result may be null.
fn dyn_inner_nullable() -> Expect {
    Expect::Reject {
        insn: 13,
        message: "R0 invalid mem access 'map_value_or_null'".to_string(),
        processed: 13,
    }
}

pub fn update_on(fd: i32) -> Vec<Insn> {
    Prog::new()
        .key0()
        .i(Insn::mov64_reg(3, 10))
        .i(Insn::alu64_imm(BPF_ADD, 3, -4))
        .map(1, fd)
        .i(Insn::mov64_imm(4, 0))
        .i(Insn::call_helper(2))
        .i(Insn::mov64_imm(0, 0))
        .i(Insn::exit())
        .0
}

/// Seed 004's program as shipped (`examples/seed_004/prog.s`, what `mimic verify` reads): look
/// up `outer_arr_dyn[0]`, then `inner[0]`. `outer` is the outer map's fd on whichever side
/// runs it. The text is compiled in, so every user assembles the one copy.
pub fn seed_004(outer: i32) -> Result<Vec<Insn>, crate::bpf::asm::AsmError> {
    /// The shipped source; `map:outer_arr_dyn` names the outer map.
    const PROG_S: &str = include_str!("../../../../examples/seed_004/prog.s");
    super::asm_maps::assemble_with_maps(PROG_S, &|name| (name == "outer_arr_dyn").then_some(outer))
}

/// The instruction lines of the xlated dump in seed 004's commit message
/// (`examples/seed_004/seed_xlated.txt`), without source lines and annotations:
/// `   4: (18) r1 = map[id:468]` and so on, as bpftool prints them.
pub fn seed_004_dump() -> Vec<String> {
    const DUMP: &str = include_str!("../../../../examples/seed_004/seed_xlated.txt");
    DUMP.lines()
        .filter(|line| {
            line.trim_start()
                .split(':')
                .next()
                .is_some_and(|n| n.trim().parse::<u32>().is_ok())
        })
        .map(|line| {
            let line = line.split('|').next().unwrap_or(line).trim_end();
            line.strip_prefix("  ").unwrap_or(line).to_string()
        })
        .collect()
}

/// The id bpftool showed for `outer_arr_dyn` in seed 004's dump.
pub const SEED_004_MAP_ID: u32 = 468;

/// Seed 004's maps as the seed's dump shows them: `outer_arr_dyn` (fd `outer`, id
/// [`SEED_004_MAP_ID`]), an ARRAY_OF_MAPS of 3 whose template is a `BPF_F_INNER_MAP` array of
/// one u32.
pub fn seed_004_maps(outer: i32) -> MapTable {
    MapTable(vec![(
        outer,
        MapDesc::new(MapType::ArrayOfMaps, 4, 4, 3, 0)
            .with_meta(MapDesc::new(MapType::Array, 4, 4, 1, BPF_F_INNER_MAP))
            .with_id(SEED_004_MAP_ID, 0x3000_01d4_0000_0000),
    )])
}

/// Seed 004's program (before fixups) with a store: `inner = outer[0]; if !inner return -1;
/// inner[0] += 1; return inner[0]`. The kernel inlines the outer lookup and calls the
/// `BPF_F_INNER_MAP` array's own lookup for the inner one; the store shows a program's write
/// landing in the inner map. `outer` is the outer map's fd on whichever side runs it.
pub fn seed_004_with_store(outer: i32) -> Vec<Insn> {
    let mut insns = vec![
        Insn::mov32_imm(1, 0),
        Insn::stx_mem(BPF_W, 10, 1, -4),
        Insn::mov64_reg(2, 10),
        Insn::alu64_imm(BPF_ADD, 2, -4),
    ];
    insns.extend(Insn::ld_map_fd(1, outer));
    insns.extend([
        Insn::call_helper(1),
        Insn::mov32_imm(6, -1),
        Insn::jmp_imm(BPF_JEQ, 0, 0, 8),
        Insn::mov64_reg(2, 10),
        Insn::alu64_imm(BPF_ADD, 2, -4),
        Insn::mov64_reg(1, 0),
        Insn::call_helper(1),
        Insn::jmp_imm(BPF_JEQ, 0, 0, 3),
        Insn::ldx_mem(BPF_W, 6, 0, 0),
        Insn::alu64_imm(BPF_ADD, 6, 1),
        Insn::stx_mem(BPF_W, 0, 6, 0),
        Insn::mov32_reg(0, 6),
        Insn::exit(),
    ]);
    insns
}

/// A tiny deterministic generator state (xorshift64*): the corpus must not depend on a crate
/// the kernel check does not otherwise need, and a seed must give the same program forever.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len() as u64) as usize]
    }
}

/// Longest random body, in pieces: long enough for a lookup chain and a few branches, short
/// enough that the kernel's log of a rejection stays small.
const GEN_MAX_PIECES: u64 = 24;

/// A seeded map-in-map program over the maps of [`maps`]: a prologue that initialises every
/// register and three stack slots (unknown scalars from the context's first two u32 fields
/// of a syscall program), then random pieces (ALU, stack spills and fills, loads through any
/// register, stores of constants through any register, pseudo map loads, lookups, branches),
/// then `r0 = 0; exit`. A fair share verify; the rest are refused for many different reasons.
pub fn generated(seed: u64) -> Vec<Insn> {
    // Seed 0 would stay 0 under xorshift.
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let small = [0i32, 1, 2, 3, 4, 7, 8, -1, -4, -8, 255];
    let stack = [-8i16, -16, -4, -12, -24];
    // Both outer kinds over fixed and BPF_F_INNER_MAP templates (1, 4 and 5 entries), so the
    // constants above fall inside and outside each size.
    let fds = [
        FD_MAP_IN_MAP,
        FD_HASH_8B,
        FD_HASH_OF_MAPS,
        FD_ARRAY_5,
        FD_MAP_IN_MAP_DYN,
        FD_HASH_OF_MAPS_DYN,
    ];
    let mut p = vec![
        Insn::ldx_mem(BPF_W, 6, 1, 0),
        Insn::ldx_mem(BPF_W, 7, 1, 4),
        Insn::st_mem(BPF_DW, 10, -8, 0),
        Insn::st_mem(BPF_DW, 10, -16, 1),
        Insn::stx_mem(BPF_DW, 10, 6, -24),
        Insn::mov64_reg(9, 1),
        Insn::mov64_reg(8, 10),
        Insn::mov64_imm(0, 0),
        Insn::mov64_imm(1, 1),
        Insn::mov64_reg(2, 10),
        Insn::alu64_imm(BPF_ADD, 2, -8),
        Insn::mov64_imm(3, 3),
        Insn::mov64_imm(4, 0),
        Insn::mov64_imm(5, 0),
    ];
    let pieces = 1 + rng.below(GEN_MAX_PIECES);
    for _ in 0..pieces {
        let reg = |rng: &mut Rng| rng.below(10) as u8;
        match rng.below(16) {
            0 => p.push(Insn::mov64_imm(reg(&mut rng), rng.pick(&small))),
            1 => p.push(Insn::mov64_reg(reg(&mut rng), reg(&mut rng))),
            2 => {
                let code =
                    rng.pick(&[0x07u8, 0x17, 0x27, 0x57, 0x47, 0x67, 0x77, 0xa7, 0x04, 0x54]);
                p.push(Insn::new(code, reg(&mut rng), 0, 0, rng.pick(&small)));
            }
            3 => {
                let code = rng.pick(&[0x0fu8, 0x1f, 0x5f, 0x4f, 0xaf, 0x0c]);
                p.push(Insn::new(code, reg(&mut rng), reg(&mut rng), 0, 0));
            }
            4 => p.push(Insn::stx_mem(BPF_DW, 10, reg(&mut rng), rng.pick(&stack))),
            5 => p.push(Insn::stx_mem(BPF_W, 10, reg(&mut rng), rng.pick(&stack))),
            6 => p.push(Insn::st_mem(BPF_W, 10, rng.pick(&stack), rng.pick(&small))),
            7 => p.push(Insn::ldx_mem(BPF_DW, reg(&mut rng), 10, rng.pick(&stack))),
            8 => p.push(Insn::ldx_mem(
                BPF_W,
                reg(&mut rng),
                reg(&mut rng),
                rng.pick(&[0i16, 4]),
            )),
            9 => p.push(Insn::st_mem(BPF_W, reg(&mut rng), 0, rng.pick(&small))),
            10 => p.extend(Insn::ld_map_fd(reg(&mut rng), rng.pick(&fds))),
            11 => {
                p.push(Insn::mov64_reg(2, 10));
                p.push(Insn::alu64_imm(BPF_ADD, 2, i32::from(rng.pick(&stack))));
            }
            12 | 13 => p.push(Insn::call_helper(1)),
            14 => {
                let code = rng.pick(&[0x15u8, 0x55, 0x25, 0xa5, 0x35, 0xb5, 0x65, 0xc5, 0x45]);
                let off = rng.below(9) as i16 - 4;
                p.push(Insn::new(code, reg(&mut rng), 0, off, rng.pick(&small)));
            }
            _ => {
                let off = rng.below(3) as i16;
                p.push(Insn::jmp_reg(0x10, reg(&mut rng), reg(&mut rng), off));
            }
        }
    }
    p.push(Insn::mov64_imm(0, 0));
    p.push(Insn::exit());
    p
}

/// One program of [`pointer_offset_cases`]: what it does, and the kernel's first message for
/// it (`None`: accepted).
#[derive(Debug, Clone)]
pub struct PtrCase {
    pub name: String,
    pub prog: Vec<Insn>,
    pub refusal: Option<String>,
}

/// Pointer arithmetic against the kernel's sane-offset limit (`BPF_MAX_VAR_OFF`, 2^29) on a
/// context, a stack and a map-value pointer (in `r6`; `r7` an unknown u32 and `r8` an unknown
/// u64 read from a syscall program's context), each with the message `profile`'s build gives.
/// Shared by the verifier's unit tests and the side-by-side kernel test.
pub fn pointer_offset_cases(profile: &KernelProfile) -> Vec<PtrCase> {
    /// `BPF_MAX_VAR_OFF`.
    const LIMIT: i32 = 1 << 29;
    let ptrs: [(&str, Vec<Insn>); 3] = [
        ("ctx", vec![Insn::mov64_reg(6, 1)]),
        ("fp", vec![Insn::mov64_reg(6, 10)]),
        ("map_value", {
            let mut p = vec![
                Insn::st_mem(BPF_W, 10, -4, 0),
                Insn::mov64_reg(2, 10),
                Insn::alu64_imm(BPF_ADD, 2, -4),
            ];
            p.extend(Insn::ld_map_fd(1, FD_ARRAY_5));
            p.extend([
                Insn::call_helper(1),
                Insn::jmp_imm(BPF_JNE, 0, 0, 2),
                Insn::mov64_imm(0, 0),
                Insn::exit(),
                Insn::mov64_reg(6, 0),
            ]);
            p
        }),
    ];
    let add = |k: i32| Insn::alu64_imm(BPF_ADD, 6, k);
    let mut out = Vec::new();
    for (ty, setup) in ptrs {
        let math = |v: i64| Some(format!("math between {ty} pointer and {v} is not allowed"));
        // An operand out of range, and a result out of range (which builds word differently).
        let value = |v: i64| Some(format!("value {v} makes {ty} pointer be out of bounds"));
        let result = |v: i64| Some(profile.result_offset_refusal(ty, v));
        let fixed = |v: i64| Some(format!("{ty} pointer offset {v} is not allowed"));
        let below = 2 * i64::from(LIMIT - 1);
        let mut lddw = Insn::ld_imm64(2, 0xffff_ffff_0000_0001).to_vec();
        lddw.push(Insn::alu64_reg(BPF_ADD, 6, 2));
        let tails: Vec<(&str, Vec<Insn>, Option<String>)> = vec![
            ("ptr += 2^29-1", vec![add(LIMIT - 1)], None),
            ("ptr += -(2^29-1)", vec![add(-(LIMIT - 1))], None),
            ("ptr += 2^29", vec![add(LIMIT)], math(LIMIT.into())),
            ("ptr += -2^29", vec![add(-LIMIT)], math((-LIMIT).into())),
            // The operand is checked before the operator (subtraction from fp, `*=`).
            (
                "ptr -= 2^29",
                vec![Insn::alu64_imm(BPF_SUB, 6, LIMIT)],
                math(LIMIT.into()),
            ),
            (
                "ptr *= 2^29",
                vec![Insn::alu64_imm(BPF_MUL, 6, LIMIT)],
                math(LIMIT.into()),
            ),
            (
                "scalar 2^29 -= ptr",
                vec![Insn::mov64_imm(2, LIMIT), Insn::alu64_reg(BPF_SUB, 2, 6)],
                math(LIMIT.into()),
            ),
            ("ptr += 0xffffffff00000001", lddw, math(-4_294_967_295)),
            // The result's fixed offset.
            (
                "ptr += 2^29-1 twice",
                vec![add(LIMIT - 1), add(LIMIT - 1)],
                fixed(below),
            ),
            (
                "ptr += -(2^29-1) twice",
                vec![add(-(LIMIT - 1)), add(-(LIMIT - 1))],
                fixed(-below),
            ),
            (
                "ptr += u32 & 255, then 2^29-1 twice",
                vec![
                    Insn::alu64_imm(BPF_AND, 7, 255),
                    Insn::alu64_reg(BPF_ADD, 6, 7),
                    add(LIMIT - 1),
                    add(LIMIT - 1),
                ],
                fixed(below),
            ),
            // Unknown operands: only the smallest value counts.
            ("ptr += u32", vec![Insn::alu64_reg(BPF_ADD, 6, 7)], None),
            (
                "ptr += u64",
                vec![Insn::alu64_reg(BPF_ADD, 6, 8)],
                Some(format!(
                    "math between {ty} pointer and register with unbounded min value is not allowed"
                )),
            ),
            (
                "ptr += u32 - 2^29",
                vec![
                    Insn::alu64_imm(BPF_SUB, 7, LIMIT),
                    Insn::alu64_reg(BPF_ADD, 6, 7),
                ],
                value((-LIMIT).into()),
            ),
            (
                "ptr += (u32 & 1) + 2^29",
                vec![
                    Insn::alu64_imm(BPF_AND, 7, 1),
                    Insn::alu64_imm(BPF_ADD, 7, LIMIT),
                    Insn::alu64_reg(BPF_ADD, 6, 7),
                ],
                value(LIMIT.into()),
            ),
            // The result's smallest value (a subtraction from fp is refused before it).
            (
                "ptr -= u32",
                vec![Insn::alu64_reg(BPF_SUB, 6, 7)],
                if ty == "fp" {
                    Some("R6 subtraction from stack pointer prohibited".to_string())
                } else {
                    result(-4_294_967_295)
                },
            ),
            (
                "ptr += (u32 & 1) - (2^29-1), twice",
                vec![
                    Insn::alu64_imm(BPF_AND, 7, 1),
                    Insn::alu64_imm(BPF_SUB, 7, LIMIT - 1),
                    Insn::alu64_reg(BPF_ADD, 6, 7),
                    Insn::alu64_reg(BPF_ADD, 6, 7),
                ],
                result(-below),
            ),
            // 32-bit arithmetic is refused first.
            (
                "w6 += 2^29",
                vec![Insn::alu32_imm(BPF_ADD, 6, LIMIT)],
                Some("R6 32-bit pointer arithmetic prohibited".to_string()),
            ),
        ];
        for (what, tail, refusal) in tails {
            let mut prog = vec![
                Insn::ldx_mem(BPF_W, 7, 1, 0),
                Insn::ldx_mem(BPF_DW, 8, 1, 8),
            ];
            prog.extend(setup.iter().copied());
            prog.extend(tail);
            prog.extend([Insn::mov64_imm(0, 0), Insn::exit()]);
            out.push(PtrCase {
                name: format!("{ty}: {what}"),
                prog,
                refusal,
            });
        }
    }
    // The null check and the map pointer come before the operand checks (an unknown key, so
    // the array lookup may fail).
    let mut null = vec![
        Insn::ldx_mem(BPF_W, 7, 1, 0),
        Insn::stx_mem(BPF_W, 10, 7, -4),
        Insn::mov64_reg(2, 10),
        Insn::alu64_imm(BPF_ADD, 2, -4),
    ];
    null.extend(Insn::ld_map_fd(1, FD_ARRAY_5));
    null.extend([
        Insn::call_helper(1),
        Insn::alu64_imm(BPF_ADD, 0, LIMIT),
        Insn::mov64_imm(0, 0),
        Insn::exit(),
    ]);
    out.push(PtrCase {
        name: "map_value_or_null += 2^29".to_string(),
        prog: null,
        refusal: Some(
            "R0 pointer arithmetic on map_value_or_null prohibited, null-check it first"
                .to_string(),
        ),
    });
    let mut map_ptr = Insn::ld_map_fd(6, FD_ARRAY_5).to_vec();
    map_ptr.extend([add(LIMIT), Insn::mov64_imm(0, 0), Insn::exit()]);
    out.push(PtrCase {
        name: "map_ptr += 2^29".to_string(),
        prog: map_ptr,
        refusal: Some("R6 pointer arithmetic on map_ptr prohibited".to_string()),
    });
    out
}

/// Array lookups whose key the stores before them make a constant (a non-null result, read at
/// once) or not (`R0 invalid mem access 'map_value_or_null'`), as Linux 6.18 decides
/// (`get_constant_map_key`): zero bytes under the key, or a spilled constant whose spilled
/// bytes from the key's start are exactly the key. Shared by the unit and kernel tests.
pub fn constant_key_cases() -> Vec<PtrCase> {
    let maybe_null = || Some("R0 invalid mem access 'map_value_or_null'".to_string());
    let st = |size: u8, off: i16, imm: i32| Insn::st_mem(size, 10, off, imm);
    let cases: Vec<(&str, Vec<Insn>, i32, Option<String>)> = vec![
        ("u32 0 at fp-8", vec![st(BPF_W, -8, 0)], -8, None),
        ("u32 1 at fp-16", vec![st(BPF_W, -16, 1)], -16, None),
        ("u32 0 at fp-12", vec![st(BPF_W, -12, 0)], -12, None),
        (
            "u64 0 at fp-8, key at fp-4",
            vec![st(BPF_DW, -8, 0)],
            -4,
            None,
        ),
        (
            "u64 1 at fp-8, key at fp-4",
            vec![st(BPF_DW, -8, 1)],
            -4,
            None,
        ),
        (
            "r3 = 1 stored as u32 at fp-8",
            vec![Insn::mov64_imm(3, 1), Insn::stx_mem(BPF_W, 10, 3, -8)],
            -8,
            None,
        ),
        // An 8-byte spill under a 4-byte key at its start.
        ("u64 0 at fp-8", vec![st(BPF_DW, -8, 0)], -8, maybe_null()),
        (
            "u64 1 at fp-16",
            vec![st(BPF_DW, -16, 1)],
            -16,
            maybe_null(),
        ),
        (
            "r3 = 0 stored as u64 at fp-8",
            vec![Insn::mov64_imm(3, 0), Insn::stx_mem(BPF_DW, 10, 3, -8)],
            -8,
            maybe_null(),
        ),
        // A store off a slot's start leaves unknown bytes; one into a spill scrubs it.
        ("u32 1 at fp-12", vec![st(BPF_W, -12, 1)], -12, maybe_null()),
        (
            "r3 = 1 stored as u32 at fp-4",
            vec![Insn::mov64_imm(3, 1), Insn::stx_mem(BPF_W, 10, 3, -4)],
            -4,
            maybe_null(),
        ),
        (
            "u64 1 at fp-16, then u32 2 at fp-12",
            vec![st(BPF_DW, -16, 1), st(BPF_W, -12, 2)],
            -16,
            maybe_null(),
        ),
        (
            "u64 0 at fp-8, then u32 1 at fp-4",
            vec![st(BPF_DW, -8, 0), st(BPF_W, -4, 1)],
            -8,
            maybe_null(),
        ),
    ];
    cases
        .into_iter()
        .map(|(name, stores, key, refusal)| {
            let mut prog = stores;
            prog.extend([Insn::mov64_reg(2, 10), Insn::alu64_imm(BPF_ADD, 2, key)]);
            prog.extend(Insn::ld_map_fd(1, FD_ARRAY_5));
            prog.extend([
                Insn::call_helper(1),
                Insn::ldx_mem(BPF_W, 0, 0, 0),
                Insn::exit(),
            ]);
            PtrCase {
                name: name.to_string(),
                prog,
                refusal,
            }
        })
        .collect()
}
