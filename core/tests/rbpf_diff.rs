//! Differential test against the `rbpf` crate's interpreter on seeded random programs.
//!
//! The programs use the subset rbpf 0.3 implements correctly: ALU64 (no `sdiv`/`smod`/`movsx`,
//! which it lacks), ALU32 except `add32`/`sub32`/`mul32` (rbpf sign-extends their result
//! instead of zero-extending) and `mod32` by a register (rbpf does not truncate `dst` when the
//! divisor is zero), `neg` only in 32 bits (rbpf's 64-bit `neg` overflows, a panic in debug
//! builds, on `INT64_MIN`), byte swaps, `lddw`, forward conditional jumps of both widths, and loads and
//! stores on the input buffer and the stack. No calls. Each program ends by folding r2..r9 into
//! r0; r0 and the final input buffer must be identical.

use mimic_core::bpf::exec::{run, Program};
use mimic_core::isa::*;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// Programs per run and body length: enough to hit every form many times, fast in debug builds.
const PROGRAMS: u64 = 3000;
const BODY_UNITS: usize = 40;
/// Bytes of input memory the programs read and write.
const MEM_SIZE: usize = 64;

/// Registers a program may write: never r1 (the memory pointer) or r10.
const DSTS: [u8; 9] = [0, 2, 3, 4, 5, 6, 7, 8, 9];

struct Gen(ChaCha8Rng);

impl Gen {
    fn below(&mut self, n: u32) -> u32 {
        self.0.next_u32() % n
    }
    fn dst(&mut self) -> u8 {
        DSTS[self.below(DSTS.len() as u32) as usize]
    }
    fn src(&mut self) -> u8 {
        DSTS[self.below(DSTS.len() as u32) as usize]
    }
    /// Immediates biased toward edge values.
    fn imm(&mut self) -> i32 {
        match self.below(6) {
            0 => [0, 1, -1, i32::MIN, i32::MAX, 31, 32, 63, 64][self.below(9) as usize],
            1 => self.below(64) as i32,
            _ => self.0.next_u32() as i32,
        }
    }
    fn size(&mut self) -> (u8, i16) {
        [(BPF_B, 1), (BPF_H, 2), (BPF_W, 4), (BPF_DW, 8)][self.below(4) as usize]
    }
}

/// One unit of the body: instructions, or a jump to a later unit.
enum Unit {
    Insns(Vec<Insn>),
    Jump { insn: Insn, target: usize },
}

fn alu(g: &mut Gen) -> Insn {
    const OPS64: [u8; 11] = [
        BPF_ADD, BPF_SUB, BPF_MUL, BPF_DIV, BPF_OR, BPF_AND, BPF_LSH, BPF_RSH, BPF_MOD, BPF_XOR,
        BPF_ARSH,
    ];
    const OPS32: [u8; 8] = [
        BPF_DIV, BPF_OR, BPF_AND, BPF_LSH, BPF_RSH, BPF_MOD, BPF_XOR, BPF_ARSH,
    ];
    let d = g.dst();
    match g.below(8) {
        0 => Insn::new(BPF_ALU | BPF_NEG, d, 0, 0, 0),
        1 => {
            let code = if g.below(2) == 0 {
                BPF_TO_LE
            } else {
                BPF_TO_BE
            };
            Insn::new(
                BPF_ALU | BPF_END | code,
                d,
                0,
                0,
                [16, 32, 64][g.below(3) as usize],
            )
        }
        2 => Insn::mov64_imm(d, g.imm()),
        3 => Insn::mov32_reg(d, g.src()),
        4 | 5 => {
            let op = OPS64[g.below(OPS64.len() as u32) as usize];
            if g.below(2) == 0 {
                let mut imm = g.imm();
                if (op == BPF_DIV || op == BPF_MOD) && imm == 0 {
                    imm = 3;
                }
                Insn::alu64_imm(op, d, imm)
            } else {
                Insn::alu64_reg(op, d, g.src())
            }
        }
        _ => {
            let op = OPS32[g.below(OPS32.len() as u32) as usize];
            if g.below(2) == 0 || op == BPF_MOD {
                let mut imm = g.imm();
                if (op == BPF_DIV || op == BPF_MOD) && imm == 0 {
                    imm = 5;
                }
                Insn::alu32_imm(op, d, imm)
            } else {
                Insn::alu32_reg(op, d, g.src())
            }
        }
    }
}

fn memory(g: &mut Gen) -> Vec<Insn> {
    let (size, bytes) = g.size();
    let off = g.below((MEM_SIZE as i16 - bytes + 1) as u32) as i16;
    let slot = -8 * (1 + g.below(8) as i16);
    match g.below(5) {
        0 => vec![Insn::ldx_mem(size, g.dst(), 1, off)],
        1 => vec![Insn::stx_mem(size, 1, g.src(), off)],
        2 => vec![Insn::st_mem(size, 1, off, g.imm())],
        3 => vec![
            Insn::stx_mem(BPF_DW, 10, g.src(), slot),
            Insn::ldx_mem(size, g.dst(), 10, slot),
        ],
        _ => vec![
            Insn::st_mem(BPF_DW, 10, slot, g.imm()),
            Insn::ldx_mem(BPF_DW, g.dst(), 10, slot),
        ],
    }
}

fn jump(g: &mut Gen, here: usize, units: usize) -> Unit {
    const CONDS: [u8; 11] = [
        BPF_JEQ, BPF_JGT, BPF_JGE, BPF_JSET, BPF_JNE, BPF_JSGT, BPF_JSGE, BPF_JLT, BPF_JLE,
        BPF_JSLT, BPF_JSLE,
    ];
    let cond = CONDS[g.below(CONDS.len() as u32) as usize];
    let class = if g.below(2) == 0 { BPF_JMP } else { BPF_JMP32 };
    let insn = if g.below(2) == 0 {
        Insn::new(class | cond | BPF_K, g.dst(), 0, 0, g.imm())
    } else {
        Insn::new(class | cond | BPF_X, g.dst(), g.src(), 0, 0)
    };
    // Forward only: to a later unit or the epilogue.
    let target = here + 1 + g.below((units - here) as u32) as usize;
    Unit::Jump { insn, target }
}

fn program(seed: u64) -> Vec<Insn> {
    let mut g = Gen(ChaCha8Rng::seed_from_u64(seed));
    let mut prologue = Vec::new();
    for d in DSTS {
        let value = u64::from(g.0.next_u32()) << 32 | u64::from(g.0.next_u32());
        prologue.extend(Insn::ld_imm64(d, value));
    }
    let mut units = Vec::new();
    for here in 0..BODY_UNITS {
        units.push(match g.below(10) {
            0..=4 => Unit::Insns(vec![alu(&mut g)]),
            5 | 6 => Unit::Insns(memory(&mut g)),
            7 => Unit::Insns(Insn::ld_imm64(g.dst(), u64::from(g.0.next_u32()) << 17).to_vec()),
            _ => jump(&mut g, here, BODY_UNITS),
        });
    }
    // Slot where each unit starts; the epilogue starts at index BODY_UNITS.
    let mut starts = Vec::with_capacity(BODY_UNITS + 1);
    let mut slot = prologue.len();
    for unit in &units {
        starts.push(slot);
        slot += match unit {
            Unit::Insns(insns) => insns.len(),
            Unit::Jump { .. } => 1,
        };
    }
    starts.push(slot);
    let mut insns = prologue;
    for (index, unit) in units.into_iter().enumerate() {
        match unit {
            Unit::Insns(body) => insns.extend(body),
            Unit::Jump { mut insn, target } => {
                insn.off = (starts[target] - starts[index] - 1) as i16;
                insns.push(insn);
            }
        }
    }
    for r in 2..=9 {
        insns.push(Insn::alu64_reg(BPF_XOR, 0, r));
    }
    insns.push(Insn::exit());
    insns
}

fn memory_image(seed: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6d65_6d6f_7279);
    let mut mem = vec![0u8; MEM_SIZE];
    rng.fill_bytes(&mut mem);
    mem
}

#[test]
fn random_programs_agree_with_rbpf() {
    for seed in 0..PROGRAMS {
        let insns = program(seed);
        let bytes = to_bytes(&insns);
        let ours = Program::new(&insns)
            .unwrap_or_else(|e| panic!("seed {seed}: generated an invalid program: {e}"));
        let mut our_mem = memory_image(seed);
        let our_r0 =
            run(&ours, &mut our_mem).unwrap_or_else(|e| panic!("seed {seed}: mimic failed: {e}"));

        let mut their_mem = memory_image(seed);
        let vm = rbpf::EbpfVmRaw::new(Some(&bytes))
            .unwrap_or_else(|e| panic!("seed {seed}: rbpf refused: {e}"));
        let their_r0 = vm
            .execute_program(&mut their_mem)
            .unwrap_or_else(|e| panic!("seed {seed}: rbpf failed: {e}"));

        let listing = || mimic_core::bpf::asm::disassemble(&insns).unwrap_or_default();
        assert_eq!(our_r0, their_r0, "seed {seed}: r0 differs\n{}", listing());
        assert_eq!(
            our_mem,
            their_mem,
            "seed {seed}: memory differs\n{}",
            listing()
        );
    }
}
