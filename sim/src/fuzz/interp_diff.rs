//! `interp_diff`: mimic's interpreter against rbpf 0.3's on programs built from the fuzz bytes.
//!
//! The programs stay inside the subset rbpf gets right (see core/tests/rbpf_diff.rs): ALU64
//! without `sdiv`/`smod`/`movsx`/`neg`, ALU32 without `add32`/`sub32`/`mul32` (rbpf sign-extends
//! them) and without `mod32` by a register, `neg32`, `le`/`be`, `lddw`, forward jumps of both
//! widths, loads and stores on the input memory and the stack. No calls, no atomics. r1 (the
//! memory) and r10 are never written or read as values, since their numbers differ by design.
//!
//! Both interpreters must run the program to the end; r0 and the final memory must be equal.
//! Any difference, refusal or error panics (a crash for libFuzzer).

use arbitrary::Unstructured;
use mimic_core::bpf::exec::{run, Program};
use mimic_core::isa::*;

/// Bytes of input memory (what r1 points to).
pub const MEM_SIZE: usize = 64;
/// Body units at most; with the prologue and epilogue a program stays under ~100 slots.
const MAX_UNITS: usize = 64;
/// Registers a program may write and read as values: never r1 (the memory) or r10.
const REGS: [u8; 9] = [0, 2, 3, 4, 5, 6, 7, 8, 9];

fn pick<T: Copy>(u: &mut Unstructured<'_>, items: &[T]) -> T {
    items[u.choose_index(items.len()).unwrap_or(0)]
}

fn below(u: &mut Unstructured<'_>, n: u32) -> u32 {
    u.int_in_range(0..=n - 1).unwrap_or(0)
}

fn reg(u: &mut Unstructured<'_>) -> u8 {
    pick(u, &REGS)
}

/// Immediates biased toward edge values.
fn imm(u: &mut Unstructured<'_>) -> i32 {
    match below(u, 4) {
        0 => pick(u, &[0, 1, -1, i32::MIN, i32::MAX, 31, 32, 63, 64]),
        1 => below(u, 64) as i32,
        _ => u.arbitrary().unwrap_or(0),
    }
}

fn nonzero(imm: i32) -> i32 {
    if imm == 0 {
        3
    } else {
        imm
    }
}

enum Unit {
    Insns(Vec<Insn>),
    Jump { insn: Insn, target: usize },
}

fn alu(u: &mut Unstructured<'_>) -> Insn {
    const OPS64: [u8; 11] = [
        BPF_ADD, BPF_SUB, BPF_MUL, BPF_DIV, BPF_OR, BPF_AND, BPF_LSH, BPF_RSH, BPF_MOD, BPF_XOR,
        BPF_ARSH,
    ];
    const OPS32: [u8; 9] = [
        BPF_DIV, BPF_OR, BPF_AND, BPF_LSH, BPF_RSH, BPF_MOD, BPF_XOR, BPF_ARSH, BPF_MOV,
    ];
    let d = reg(u);
    match below(u, 8) {
        0 => Insn::new(BPF_ALU | BPF_NEG, d, 0, 0, 0),
        1 => {
            let code = pick(u, &[BPF_TO_LE, BPF_TO_BE]);
            Insn::new(BPF_ALU | BPF_END | code, d, 0, 0, pick(u, &[16, 32, 64]))
        }
        2 => Insn::mov64_imm(d, imm(u)),
        3 => Insn::mov64_reg(d, reg(u)),
        4 | 5 => {
            let op = pick(u, &OPS64);
            if below(u, 2) == 0 {
                // rbpf's loader refuses a division by the constant 0.
                let k = imm(u);
                let k = if op == BPF_DIV || op == BPF_MOD {
                    nonzero(k)
                } else {
                    k
                };
                Insn::alu64_imm(op, d, k)
            } else {
                Insn::alu64_reg(op, d, reg(u))
            }
        }
        _ => {
            let op = pick(u, &OPS32);
            if below(u, 2) == 0 || op == BPF_MOD {
                let k = imm(u);
                let k = if op == BPF_DIV || op == BPF_MOD {
                    nonzero(k)
                } else {
                    k
                };
                Insn::alu32_imm(op, d, k)
            } else {
                Insn::alu32_reg(op, d, reg(u))
            }
        }
    }
}

fn memory(u: &mut Unstructured<'_>) -> Vec<Insn> {
    let (size, bytes) = pick(u, &[(BPF_B, 1i16), (BPF_H, 2), (BPF_W, 4), (BPF_DW, 8)]);
    let off = below(u, (MEM_SIZE as i16 - bytes + 1) as u32) as i16;
    let slot = -8 * (1 + below(u, 64) as i16);
    match below(u, 5) {
        0 => vec![Insn::ldx_mem(size, reg(u), 1, off)],
        1 => vec![Insn::stx_mem(size, 1, reg(u), off)],
        2 => vec![Insn::st_mem(size, 1, off, imm(u))],
        3 => vec![
            Insn::stx_mem(BPF_DW, 10, reg(u), slot),
            Insn::ldx_mem(size, reg(u), 10, slot),
        ],
        _ => vec![
            Insn::st_mem(BPF_DW, 10, slot, imm(u)),
            Insn::ldx_mem(BPF_DW, reg(u), 10, slot),
        ],
    }
}

fn jump(u: &mut Unstructured<'_>, here: usize, units: usize) -> Unit {
    const CONDS: [u8; 11] = [
        BPF_JEQ, BPF_JGT, BPF_JGE, BPF_JSET, BPF_JNE, BPF_JSGT, BPF_JSGE, BPF_JLT, BPF_JLE,
        BPF_JSLT, BPF_JSLE,
    ];
    let target = here + 1 + below(u, (units - here) as u32) as usize;
    if below(u, 8) == 0 {
        return Unit::Jump {
            insn: Insn::ja(0),
            target,
        };
    }
    let class = pick(u, &[BPF_JMP, BPF_JMP32]);
    let cond = pick(u, &CONDS);
    let insn = if below(u, 2) == 0 {
        Insn::new(class | cond | BPF_K, reg(u), 0, 0, imm(u))
    } else {
        Insn::new(class | cond | BPF_X, reg(u), reg(u), 0, 0)
    };
    Unit::Jump { insn, target }
}

fn program(u: &mut Unstructured<'_>) -> Vec<Insn> {
    let mut insns = Vec::new();
    // rbpf leaves r2 undefined (mimic sets it to the memory length): define every value register.
    for d in REGS {
        insns.extend(Insn::ld_imm64(d, u.arbitrary().unwrap_or(0)));
    }
    let count = 1 + below(u, MAX_UNITS as u32) as usize;
    let mut units = Vec::with_capacity(count);
    for here in 0..count {
        units.push(match below(u, 10) {
            0..=4 => Unit::Insns(vec![alu(u)]),
            5 | 6 => Unit::Insns(memory(u)),
            7 => Unit::Insns(Insn::ld_imm64(reg(u), u.arbitrary().unwrap_or(0)).to_vec()),
            _ => jump(u, here, count),
        });
    }
    let mut starts = Vec::with_capacity(count + 1);
    let mut slot = insns.len();
    for unit in &units {
        starts.push(slot);
        slot += match unit {
            Unit::Insns(body) => body.len(),
            Unit::Jump { .. } => 1,
        };
    }
    starts.push(slot);
    for (index, unit) in units.into_iter().enumerate() {
        match unit {
            Unit::Insns(body) => insns.extend(body),
            Unit::Jump { mut insn, target } => {
                insn.off = (starts[target] - starts[index] - 1) as i16;
                insns.push(insn);
            }
        }
    }
    // Fold every value register into r0 so a difference anywhere shows.
    for r in 2..=9 {
        insns.push(Insn::alu64_reg(BPF_XOR, 0, r));
    }
    insns.push(Insn::exit());
    insns
}

/// The input memory and the program of one input; `None` when the input is too short for the
/// memory (the target ignores it).
pub fn decode(data: &[u8]) -> Option<([u8; MEM_SIZE], Vec<Insn>)> {
    let mut u = Unstructured::new(data);
    let mut mem = [0u8; MEM_SIZE];
    u.fill_buffer(&mut mem).ok()?;
    Some((mem, program(&mut u)))
}

/// One input: panics when the interpreters disagree or either fails.
pub fn check(data: &[u8]) {
    let Some((mem, insns)) = decode(data) else {
        return;
    };
    let listing = || mimic_core::bpf::asm::disassemble(&insns).unwrap_or_default();

    let ours = Program::new(&insns)
        .unwrap_or_else(|e| panic!("mimic refused a generated program: {e}\n{}", listing()));
    let mut our_mem = mem;
    let our_r0 =
        run(&ours, &mut our_mem).unwrap_or_else(|e| panic!("mimic failed: {e}\n{}", listing()));

    let bytes = to_bytes(&insns);
    let vm = rbpf::EbpfVmRaw::new(Some(&bytes))
        .unwrap_or_else(|e| panic!("rbpf refused: {e}\n{}", listing()));
    let mut their_mem = mem;
    let their_r0 = vm
        .execute_program(&mut their_mem)
        .unwrap_or_else(|e| panic!("rbpf failed: {e}\n{}", listing()));

    assert_eq!(our_r0, their_r0, "r0 differs\n{}", listing());
    assert_eq!(our_mem, their_mem, "memory differs\n{}", listing());
}
