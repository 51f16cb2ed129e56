//! The kernel's pseudo-C rendering of instructions, as the verifier log and
//! `bpftool prog dump xlated` print them: `(61) r0 = *(u32 *)(r2 +0)`,
//! `(35) if r0 >= 0x3 goto pc+5`, `(85) call bpf_map_lookup_elem#1`, `(18) r1 = map[id:468]`.
//!
//! The text is the kernel's format (opcode in hex, ALU immediates in decimal, jump immediates in
//! hex, offsets with an explicit sign); names of call targets and of `lddw` constants come from a
//! [`Symbols`] callback, because a dump of translated code names kernel-internal functions
//! (`call array_map_lookup_elem#149280`) and maps (`map[id:468]`) the program alone cannot know.

use super::helpers::Callee;
use crate::isa::{
    decode, decode_program, AluOp, AtomicOp, CallTarget, Cond, DecodeError, Endian, Insn, Ld64, Op,
    Operand, Size, Width,
};

/// Names for what the instructions alone do not say.
pub trait Symbols {
    /// The name printed before `#imm` for `call imm` (helper form). `None`: the default
    /// (the helper table's or the direct-call target's name, else `unknown`).
    fn call_name(&self, _imm: i32) -> Option<String> {
        None
    }
    /// The right-hand side of an `lddw` with pseudo `src` (`map[id:468]`). `None`: the default
    /// (`map[fd:N]`, `map[fd:N][0]+off`, or the raw value).
    fn ld_imm64(&self, _src: u8, _imm_lo: i32, _imm_hi: i32) -> Option<String> {
        None
    }
}

/// The defaults only.
pub struct DefaultSymbols;

impl Symbols for DefaultSymbols {}

fn reg_char(width: Width) -> char {
    if width == Width::W32 {
        'w'
    } else {
        'r'
    }
}

fn alu_op_str(op: AluOp) -> &'static str {
    match op {
        AluOp::Add => "+=",
        AluOp::Sub => "-=",
        AluOp::Mul => "*=",
        AluOp::Div => "/=",
        AluOp::SDiv => "s/=",
        AluOp::Or => "|=",
        AluOp::And => "&=",
        AluOp::Lsh => "<<=",
        AluOp::Rsh => ">>=",
        AluOp::Mod => "%=",
        AluOp::SMod => "s%=",
        AluOp::Xor => "^=",
        AluOp::Mov | AluOp::MovSx(_) => "=",
        AluOp::Arsh => "s>>=",
    }
}

fn cond_str(cond: Cond) -> &'static str {
    match cond {
        Cond::Eq => "==",
        Cond::Gt => ">",
        Cond::Ge => ">=",
        Cond::Set => "&",
        Cond::Ne => "!=",
        Cond::Sgt => "s>",
        Cond::Sge => "s>=",
        Cond::Lt => "<",
        Cond::Le => "<=",
        Cond::Slt => "s<",
        Cond::Sle => "s<=",
    }
}

fn load_type(size: Size, signed: bool) -> &'static str {
    match (size, signed) {
        (Size::B, true) => "s8",
        (Size::H, true) => "s16",
        (Size::W, true) => "s32",
        _ => size.c_type(),
    }
}

/// `(r1 +4)`: the kernel prints offsets with an explicit sign after a space.
fn mem(reg: u8, off: i16) -> String {
    format!("(r{reg} {off:+})")
}

/// The body of one instruction (without the `(code) ` prefix).
pub fn op_body(op: &Op, symbols: &dyn Symbols) -> String {
    match *op {
        Op::Alu {
            width,
            op: AluOp::MovSx(bits),
            dst,
            src: Operand::Reg(src),
        } => {
            let c = reg_char(width);
            format!("{c}{dst} = (s{bits}){c}{src}")
        }
        Op::Alu {
            width,
            op,
            dst,
            src,
        } => {
            let c = reg_char(width);
            match src {
                Operand::Reg(src) => format!("{c}{dst} {} {c}{src}", alu_op_str(op)),
                Operand::Imm(imm) => format!("{c}{dst} {} {imm}", alu_op_str(op)),
            }
        }
        Op::Neg { width, dst } => {
            let c = reg_char(width);
            format!("{c}{dst} = -{c}{dst}")
        }
        Op::End { kind, bits, dst } => {
            let name = match kind {
                Endian::Le => "le",
                Endian::Be => "be",
                Endian::Swap => "bswap",
            };
            format!("r{dst} = {name}{bits} r{dst}")
        }
        Op::Ld64 { dst, value } => {
            let text = match value {
                Ld64::Imm(imm) => format!("{imm:#x}"),
                Ld64::MapFd(fd) => symbols
                    .ld_imm64(crate::isa::BPF_PSEUDO_MAP_FD, fd, 0)
                    .unwrap_or_else(|| format!("map[fd:{fd}]")),
                Ld64::MapValue { fd, off } => symbols
                    .ld_imm64(crate::isa::BPF_PSEUDO_MAP_VALUE, fd, off as i32)
                    .unwrap_or_else(|| format!("map[fd:{fd}][0]+{off}")),
                Ld64::Pseudo {
                    src,
                    imm_lo,
                    imm_hi,
                } => symbols.ld_imm64(src, imm_lo, imm_hi).unwrap_or_else(|| {
                    format!(
                        "{:#x}",
                        u64::from(imm_lo as u32) | u64::from(imm_hi as u32) << 32
                    )
                }),
            };
            format!("r{dst} = {text}")
        }
        Op::LdAbs { size, imm } => format!("r0 = *({} *)skb[{imm}]", size.c_type()),
        Op::LdInd { size, src, imm } => format!("r0 = *({} *)skb[r{src} + {imm}]", size.c_type()),
        Op::Load {
            size,
            signed,
            dst,
            src,
            off,
        } => {
            format!("r{dst} = *({} *){}", load_type(size, signed), mem(src, off))
        }
        Op::Store {
            size,
            dst,
            off,
            src: Operand::Reg(src),
        } => {
            format!("*({} *){} = r{src}", size.c_type(), mem(dst, off))
        }
        Op::Store {
            size,
            dst,
            off,
            src: Operand::Imm(imm),
        } => {
            format!("*({} *){} = {imm}", size.c_type(), mem(dst, off))
        }
        Op::Atomic {
            size,
            op,
            dst,
            src,
            off,
        } => {
            let ty = size.c_type();
            let bits = if size == Size::DW { "64" } else { "" };
            let at = mem(dst, off);
            let (name, fetch, assign) = match op {
                AtomicOp::Add { fetch } => ("add", fetch, "+="),
                AtomicOp::And { fetch } => ("and", fetch, "&="),
                AtomicOp::Or { fetch } => ("or", fetch, "|="),
                AtomicOp::Xor { fetch } => ("xor", fetch, "^="),
                AtomicOp::Xchg => {
                    return format!("r{src} = atomic{bits}_xchg(({ty} *){at}, r{src})")
                }
                AtomicOp::Cmpxchg => {
                    return format!("r0 = atomic{bits}_cmpxchg(({ty} *){at}, r0, r{src})")
                }
            };
            if fetch {
                format!("r{src} = atomic{bits}_fetch_{name}(({ty} *){at}, r{src})")
            } else {
                format!("lock *({ty} *){at} {assign} r{src}")
            }
        }
        Op::Ja { off, long: false } => format!("goto pc{off:+}"),
        Op::Ja { off, long: true } => format!("gotol pc{off:+}"),
        Op::Jmp {
            width,
            cond,
            dst,
            src,
            off,
        } => {
            let c = reg_char(width);
            let rhs = match src {
                Operand::Reg(src) => format!("{c}{src}"),
                Operand::Imm(imm) => format!("{:#x}", imm as u32),
            };
            format!("if {c}{dst} {} {rhs} goto pc{off:+}", cond_str(cond))
        }
        Op::Call(CallTarget::Helper(imm)) => {
            let name = symbols
                .call_name(imm)
                .unwrap_or_else(|| match Callee::from_imm(imm) {
                    Some(Callee::Helper(id)) => id.proto().name.to_string(),
                    Some(Callee::Direct(call)) => call.name(),
                    None => "unknown".to_string(),
                });
            format!("call {name}#{imm}")
        }
        Op::Call(CallTarget::Local(imm)) => format!("call pc{imm:+}"),
        Op::Call(CallTarget::Kfunc(_)) => "call kernel-function".to_string(),
        Op::Callx { reg } => format!("callx r{reg}"),
        Op::Exit => "exit".to_string(),
    }
}

/// One instruction with its opcode prefix: `(61) r0 = *(u32 *)(r2 +0)`.
pub fn insn_text(insns: &[Insn], pc: usize, symbols: &dyn Symbols) -> Result<String, DecodeError> {
    let (op, _) = decode(insns, pc)?;
    Ok(format!(
        "({:02x}) {}",
        insns[pc].code,
        op_body(&op, symbols)
    ))
}

/// A whole program as `bpftool prog dump xlated` prints it: `%4d: (code) text` per instruction,
/// the second slot of `lddw` skipped.
pub fn dump_xlated(insns: &[Insn], symbols: &dyn Symbols) -> Result<String, DecodeError> {
    let mut out = String::new();
    for (pc, op) in decode_program(insns)? {
        out.push_str(&format!(
            "{pc:4}: ({:02x}) {}\n",
            insns[pc].code,
            op_body(&op, symbols)
        ));
    }
    Ok(out)
}

/// Like [`dump_xlated`] with the verifier log's `pc: ` prefix (no padding).
pub fn dump_log(insns: &[Insn], symbols: &dyn Symbols) -> Result<String, DecodeError> {
    let mut out = String::new();
    for (pc, op) in decode_program(insns)? {
        out.push_str(&format!(
            "{pc}: ({:02x}) {}\n",
            insns[pc].code,
            op_body(&op, symbols)
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isa::*;

    /// Names as bpftool resolved them for the seed dump.
    struct SeedSymbols;

    impl Symbols for SeedSymbols {
        fn call_name(&self, imm: i32) -> Option<String> {
            (imm == 149280).then(|| "array_map_lookup_elem".to_string())
        }
        fn ld_imm64(&self, src: u8, imm_lo: i32, _imm_hi: i32) -> Option<String> {
            // The dump shows the map by id; the test's program carries the id as the fd.
            (src == BPF_PSEUDO_MAP_FD).then(|| format!("map[id:{imm_lo}]"))
        }
    }

    /// The translated program of the seed commit (map-in-map with a dynamic inner array).
    fn seed_program() -> Vec<Insn> {
        let mut p = vec![
            Insn::mov32_imm(1, 0),
            Insn::stx_mem(BPF_W, 10, 1, -4),
            Insn::mov64_reg(2, 10),
            Insn::alu64_imm(BPF_ADD, 2, -4),
        ];
        p.extend(Insn::ld_map_fd(1, 468));
        p.extend([
            Insn::alu64_imm(BPF_ADD, 1, 272),
            Insn::ldx_mem(BPF_W, 0, 2, 0),
            Insn::jmp_imm(BPF_JGE, 0, 3, 5),
            Insn::alu64_imm(BPF_LSH, 0, 3),
            Insn::alu64_reg(BPF_ADD, 0, 1),
            Insn::ldx_mem(BPF_DW, 0, 0, 0),
            Insn::jmp_imm(BPF_JEQ, 0, 0, 1),
            Insn::ja(1),
            Insn::mov64_imm(0, 0),
            Insn::mov32_imm(6, -1),
            Insn::jmp_imm(BPF_JEQ, 0, 0, 6),
            Insn::mov64_reg(2, 10),
            Insn::alu64_imm(BPF_ADD, 2, -4),
            Insn::mov64_reg(1, 0),
            Insn::call_helper(149280),
            Insn::jmp_imm(BPF_JEQ, 0, 0, 1),
            Insn::ldx_mem(BPF_W, 6, 0, 0),
            Insn::mov32_reg(0, 6),
            Insn::exit(),
        ]);
        p
    }

    #[test]
    fn reproduces_the_seed_commits_xlated_dump() {
        let printed = dump_xlated(&seed_program(), &SeedSymbols).expect("valid program");
        let printed: Vec<&str> = printed.lines().collect();
        let expected = crate::bpf::verifier::corpus::seed_004_dump();
        assert_eq!(expected.len(), 24, "the seed dump has 24 instruction lines");
        assert_eq!(
            printed, expected,
            "printer must match bpftool's dump line for line"
        );
        assert_eq!(printed[6], "   7: (61) r0 = *(u32 *)(r2 +0)");
        assert_eq!(printed[19], "  20: (85) call array_map_lookup_elem#149280");
    }

    #[test]
    fn prints_every_form_in_the_kernels_words() {
        let cases: Vec<(Vec<Insn>, &str)> = vec![
            (
                vec![Insn::call_helper(1)],
                "(85) call bpf_map_lookup_elem#1",
            ),
            (
                vec![Insn::jmp_imm(BPF_JGE, 0, 3, 5)],
                "(35) if r0 >= 0x3 goto pc+5",
            ),
            (
                vec![Insn::jmp32_imm(BPF_JSLT, 1, -1, -2)],
                "(c6) if w1 s< 0xffffffff goto pc-2",
            ),
            (
                vec![Insn::jmp_reg(BPF_JSET, 1, 2, 0)],
                "(4d) if r1 & r2 goto pc+0",
            ),
            (vec![Insn::alu64_imm(BPF_ADD, 2, -4)], "(07) r2 += -4"),
            (vec![Insn::mov32_reg(0, 6)], "(bc) w0 = w6"),
            (vec![Insn::movsx64(1, 2, 8)], "(bf) r1 = (s8)r2"),
            (
                vec![Insn::new(BPF_ALU64 | BPF_DIV | BPF_X, 1, 2, 1, 0)],
                "(3f) r1 s/= r2",
            ),
            (
                vec![Insn::new(BPF_ALU64 | BPF_NEG, 3, 0, 0, 0)],
                "(87) r3 = -r3",
            ),
            (
                vec![Insn::new(BPF_ALU | BPF_END | BPF_TO_BE, 1, 0, 0, 16)],
                "(dc) r1 = be16 r1",
            ),
            (
                vec![Insn::new(BPF_ALU64 | BPF_END, 1, 0, 0, 32)],
                "(d7) r1 = bswap32 r1",
            ),
            (
                vec![Insn::ldx_memsx(BPF_H, 1, 2, -6)],
                "(89) r1 = *(s16 *)(r2 -6)",
            ),
            (
                vec![Insn::st_mem(BPF_DW, 10, -8, 7)],
                "(7a) *(u64 *)(r10 -8) = 7",
            ),
            (
                vec![Insn::atomic(BPF_DW, 10, 1, -8, BPF_ADD as i32)],
                "(db) lock *(u64 *)(r10 -8) += r1",
            ),
            (
                vec![Insn::atomic(BPF_W, 10, 1, -8, BPF_OR as i32 | BPF_FETCH)],
                "(c3) r1 = atomic_fetch_or((u32 *)(r10 -8), r1)",
            ),
            (
                vec![Insn::atomic(BPF_DW, 10, 1, -8, BPF_XCHG)],
                "(db) r1 = atomic64_xchg((u64 *)(r10 -8), r1)",
            ),
            (
                vec![Insn::atomic(BPF_DW, 10, 1, -8, BPF_CMPXCHG)],
                "(db) r0 = atomic64_cmpxchg((u64 *)(r10 -8), r0, r1)",
            ),
            (
                Insn::ld_imm64(0, 0x1122_3344_5566_7788).to_vec(),
                "(18) r0 = 0x1122334455667788",
            ),
            (vec![Insn::ja32(-3)], "(06) gotol pc-3"),
            (vec![Insn::call_local(4)], "(85) call pc+4"),
            (vec![Insn::callx(3)], "(8d) callx r3"),
            (vec![Insn::exit()], "(95) exit"),
        ];
        for (insns, expected) in cases {
            assert_eq!(
                insn_text(&insns, 0, &DefaultSymbols).expect("valid"),
                expected
            );
        }
    }
}
