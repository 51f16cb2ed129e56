//! The eBPF instruction set (ISA v4, RFC 9669): raw 8-byte instructions, the opcode constants,
//! and a classified view ([`Op`]) that every other layer (assembler, printer, verifier, fixups,
//! executor) matches on instead of re-deriving opcode bits.
//!
//! This module is a leaf: it depends on nothing but `std`, so the verifier's fixups and the maps'
//! `gen_lookup` can emit instructions without pulling in the executor.
//!
//! * [`Insn`] is the wire form: `code:8 | dst:4 src:4 | off:16 | imm:32`, little endian, exactly
//!   what `bpf(BPF_PROG_LOAD)` takes. `lddw` occupies two `Insn` slots.
//! * [`Op`] is the decoded form. [`decode`] is strict: reserved fields must be zero and
//!   registers must exist, as the kernel's verifier and RFC 9669 demand, so a program that
//!   decodes is well formed instruction by instruction (jump targets are checked by [`decode_program`]).

mod decode;

pub use decode::{
    decode, decode_program, AluOp, AtomicOp, CallTarget, Cond, DecodeError, Endian, Ld64, Op,
    Operand, Size, Width,
};

/// Size in bytes of one encoded instruction.
pub const INSN_SIZE: usize = 8;
/// Number of registers: r0..r9 general purpose, r10 the read-only frame pointer.
pub const MAX_REG: u8 = 10;
/// The frame pointer register.
pub const FP: u8 = 10;

// Instruction classes (the low 3 bits of `code`).
pub const BPF_LD: u8 = 0x00;
pub const BPF_LDX: u8 = 0x01;
pub const BPF_ST: u8 = 0x02;
pub const BPF_STX: u8 = 0x03;
pub const BPF_ALU: u8 = 0x04;
pub const BPF_JMP: u8 = 0x05;
pub const BPF_JMP32: u8 = 0x06;
pub const BPF_ALU64: u8 = 0x07;

// Sizes (bits 3-4 of load/store codes).
pub const BPF_W: u8 = 0x00;
pub const BPF_H: u8 = 0x08;
pub const BPF_B: u8 = 0x10;
pub const BPF_DW: u8 = 0x18;

// Modes (bits 5-7 of load/store codes).
pub const BPF_IMM: u8 = 0x00;
pub const BPF_ABS: u8 = 0x20;
pub const BPF_IND: u8 = 0x40;
pub const BPF_MEM: u8 = 0x60;
/// Sign-extending load (ISA v4, `ldxs*`).
pub const BPF_MEMSX: u8 = 0x80;
pub const BPF_ATOMIC: u8 = 0xc0;

// Source (bit 3 of ALU/JMP codes).
pub const BPF_K: u8 = 0x00;
pub const BPF_X: u8 = 0x08;
/// For `BPF_END`: convert to little endian (same bit as `BPF_K`).
pub const BPF_TO_LE: u8 = 0x00;
/// For `BPF_END`: convert to big endian (same bit as `BPF_X`).
pub const BPF_TO_BE: u8 = 0x08;

// ALU operations (bits 4-7).
pub const BPF_ADD: u8 = 0x00;
pub const BPF_SUB: u8 = 0x10;
pub const BPF_MUL: u8 = 0x20;
pub const BPF_DIV: u8 = 0x30;
pub const BPF_OR: u8 = 0x40;
pub const BPF_AND: u8 = 0x50;
pub const BPF_LSH: u8 = 0x60;
pub const BPF_RSH: u8 = 0x70;
pub const BPF_NEG: u8 = 0x80;
pub const BPF_MOD: u8 = 0x90;
pub const BPF_XOR: u8 = 0xa0;
pub const BPF_MOV: u8 = 0xb0;
pub const BPF_ARSH: u8 = 0xc0;
pub const BPF_END: u8 = 0xd0;

// Jump operations (bits 4-7).
pub const BPF_JA: u8 = 0x00;
pub const BPF_JEQ: u8 = 0x10;
pub const BPF_JGT: u8 = 0x20;
pub const BPF_JGE: u8 = 0x30;
pub const BPF_JSET: u8 = 0x40;
pub const BPF_JNE: u8 = 0x50;
pub const BPF_JSGT: u8 = 0x60;
pub const BPF_JSGE: u8 = 0x70;
pub const BPF_CALL: u8 = 0x80;
pub const BPF_EXIT: u8 = 0x90;
pub const BPF_JLT: u8 = 0xa0;
pub const BPF_JLE: u8 = 0xb0;
pub const BPF_JSLT: u8 = 0xc0;
pub const BPF_JSLE: u8 = 0xd0;

// Atomic operations (in `imm` of `BPF_STX | BPF_ATOMIC`).
/// Or-ed into an atomic op: also load the old value into `src`.
pub const BPF_FETCH: i32 = 0x01;
pub const BPF_XCHG: i32 = 0xe0 | BPF_FETCH;
pub const BPF_CMPXCHG: i32 = 0xf0 | BPF_FETCH;

// `src` values of `lddw` (the loader's pseudo forms).
/// `imm` is a map fd; the register gets the map pointer.
pub const BPF_PSEUDO_MAP_FD: u8 = 1;
/// `imm` is a map fd, the second `imm` an offset into its (single) value.
pub const BPF_PSEUDO_MAP_VALUE: u8 = 2;
pub const BPF_PSEUDO_BTF_ID: u8 = 3;
pub const BPF_PSEUDO_FUNC: u8 = 4;
pub const BPF_PSEUDO_MAP_IDX: u8 = 5;
pub const BPF_PSEUDO_MAP_IDX_VALUE: u8 = 6;

// `src` values of `call`.
/// `imm` is a pc-relative offset to a BPF function (bpf-to-bpf call).
pub const BPF_PSEUDO_CALL: u8 = 1;
/// `imm` is a kernel function's BTF id.
pub const BPF_PSEUDO_KFUNC_CALL: u8 = 2;

/// `off` of `BPF_DIV`/`BPF_MOD` that makes them signed (ISA v4).
pub const OFF_SIGNED: i16 = 1;

/// The class bits of an opcode.
pub const fn class(code: u8) -> u8 {
    code & 0x07
}
/// The operation bits of an ALU/JMP opcode.
pub const fn op(code: u8) -> u8 {
    code & 0xf0
}
/// The source bit of an ALU/JMP opcode.
pub const fn source(code: u8) -> u8 {
    code & 0x08
}
/// The size bits of a load/store opcode.
pub const fn size(code: u8) -> u8 {
    code & 0x18
}
/// The mode bits of a load/store opcode.
pub const fn mode(code: u8) -> u8 {
    code & 0xe0
}
/// Bytes accessed by a load/store of size bits `size`.
pub const fn size_bytes(size: u8) -> u8 {
    match size & 0x18 {
        BPF_W => 4,
        BPF_H => 2,
        BPF_B => 1,
        _ => 8,
    }
}

/// One raw instruction, exactly as the kernel's `struct bpf_insn` (registers are 4-bit fields, so
/// `dst`/`src` above 15 cannot be encoded; [`Insn::to_bytes`] keeps only the low nibble).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    pub const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            dst,
            src,
            off,
            imm,
        }
    }

    /// Little-endian wire bytes.
    pub fn to_bytes(self) -> [u8; INSN_SIZE] {
        let off = self.off.to_le_bytes();
        let imm = self.imm.to_le_bytes();
        [
            self.code,
            (self.dst & 0x0f) | (self.src & 0x0f) << 4,
            off[0],
            off[1],
            imm[0],
            imm[1],
            imm[2],
            imm[3],
        ]
    }

    pub fn from_bytes(bytes: [u8; INSN_SIZE]) -> Insn {
        Insn {
            code: bytes[0],
            dst: bytes[1] & 0x0f,
            src: bytes[1] >> 4,
            off: i16::from_le_bytes([bytes[2], bytes[3]]),
            imm: i32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
        }
    }

    /// The instruction as one 64-bit number (the suite's `-- raw` lines: byte 0 is the low byte).
    pub fn to_u64(self) -> u64 {
        u64::from_le_bytes(self.to_bytes())
    }
    pub fn from_u64(value: u64) -> Insn {
        Insn::from_bytes(value.to_le_bytes())
    }

    pub fn class(self) -> u8 {
        class(self.code)
    }
    /// Is this the first slot of a two-slot `lddw`?
    pub fn is_lddw(self) -> bool {
        self.code == BPF_LD | BPF_IMM | BPF_DW
    }

    // ---- constructors (the verifier's fixups and the maps' gen_lookup emit these) ----

    pub const fn alu64_imm(op: u8, dst: u8, imm: i32) -> Insn {
        Insn::new(BPF_ALU64 | op | BPF_K, dst, 0, 0, imm)
    }
    pub const fn alu64_reg(op: u8, dst: u8, src: u8) -> Insn {
        Insn::new(BPF_ALU64 | op | BPF_X, dst, src, 0, 0)
    }
    pub const fn alu32_imm(op: u8, dst: u8, imm: i32) -> Insn {
        Insn::new(BPF_ALU | op | BPF_K, dst, 0, 0, imm)
    }
    pub const fn alu32_reg(op: u8, dst: u8, src: u8) -> Insn {
        Insn::new(BPF_ALU | op | BPF_X, dst, src, 0, 0)
    }
    pub const fn mov64_imm(dst: u8, imm: i32) -> Insn {
        Insn::alu64_imm(BPF_MOV, dst, imm)
    }
    pub const fn mov64_reg(dst: u8, src: u8) -> Insn {
        Insn::alu64_reg(BPF_MOV, dst, src)
    }
    pub const fn mov32_imm(dst: u8, imm: i32) -> Insn {
        Insn::alu32_imm(BPF_MOV, dst, imm)
    }
    pub const fn mov32_reg(dst: u8, src: u8) -> Insn {
        Insn::alu32_reg(BPF_MOV, dst, src)
    }
    /// `movsx`: sign-extend the low `bits` (8, 16, or for 64-bit also 32) of `src` into `dst`.
    pub const fn movsx64(dst: u8, src: u8, bits: i16) -> Insn {
        Insn::new(BPF_ALU64 | BPF_MOV | BPF_X, dst, src, bits, 0)
    }
    pub const fn movsx32(dst: u8, src: u8, bits: i16) -> Insn {
        Insn::new(BPF_ALU | BPF_MOV | BPF_X, dst, src, bits, 0)
    }
    /// `lddw dst, imm64` (first slot and second slot).
    pub const fn ld_imm64(dst: u8, imm: u64) -> [Insn; 2] {
        Insn::ld_imm64_raw(dst, 0, imm as u32 as i32, (imm >> 32) as u32 as i32)
    }
    /// `lddw` with an explicit pseudo `src` and the two immediates.
    pub const fn ld_imm64_raw(dst: u8, src: u8, imm_lo: i32, imm_hi: i32) -> [Insn; 2] {
        [
            Insn::new(BPF_LD | BPF_IMM | BPF_DW, dst, src, 0, imm_lo),
            Insn::new(0, 0, 0, 0, imm_hi),
        ]
    }
    /// `r = map[fd]` as the loader emits it (`BPF_PSEUDO_MAP_FD`).
    pub const fn ld_map_fd(dst: u8, fd: i32) -> [Insn; 2] {
        Insn::ld_imm64_raw(dst, BPF_PSEUDO_MAP_FD, fd, 0)
    }
    /// `r = &map[fd].value + off` (`BPF_PSEUDO_MAP_VALUE`).
    pub const fn ld_map_value(dst: u8, fd: i32, off: i32) -> [Insn; 2] {
        Insn::ld_imm64_raw(dst, BPF_PSEUDO_MAP_VALUE, fd, off)
    }
    /// `dst = *(size *)(src + off)`.
    pub const fn ldx_mem(size: u8, dst: u8, src: u8, off: i16) -> Insn {
        Insn::new(BPF_LDX | BPF_MEM | size, dst, src, off, 0)
    }
    /// `dst = *(s<size> *)(src + off)` (ISA v4 sign-extending load).
    pub const fn ldx_memsx(size: u8, dst: u8, src: u8, off: i16) -> Insn {
        Insn::new(BPF_LDX | BPF_MEMSX | size, dst, src, off, 0)
    }
    /// `*(size *)(dst + off) = src`.
    pub const fn stx_mem(size: u8, dst: u8, src: u8, off: i16) -> Insn {
        Insn::new(BPF_STX | BPF_MEM | size, dst, src, off, 0)
    }
    /// `*(size *)(dst + off) = imm`.
    pub const fn st_mem(size: u8, dst: u8, off: i16, imm: i32) -> Insn {
        Insn::new(BPF_ST | BPF_MEM | size, dst, 0, off, imm)
    }
    /// An atomic read-modify-write; `op` is `BPF_ADD`.. (optionally `| BPF_FETCH`), `BPF_XCHG`
    /// or `BPF_CMPXCHG`; `size` is `BPF_W` or `BPF_DW`.
    pub const fn atomic(size: u8, dst: u8, src: u8, off: i16, op: i32) -> Insn {
        Insn::new(BPF_STX | BPF_ATOMIC | size, dst, src, off, op)
    }
    pub const fn jmp_imm(op: u8, dst: u8, imm: i32, off: i16) -> Insn {
        Insn::new(BPF_JMP | op | BPF_K, dst, 0, off, imm)
    }
    pub const fn jmp_reg(op: u8, dst: u8, src: u8, off: i16) -> Insn {
        Insn::new(BPF_JMP | op | BPF_X, dst, src, off, 0)
    }
    pub const fn jmp32_imm(op: u8, dst: u8, imm: i32, off: i16) -> Insn {
        Insn::new(BPF_JMP32 | op | BPF_K, dst, 0, off, imm)
    }
    pub const fn jmp32_reg(op: u8, dst: u8, src: u8, off: i16) -> Insn {
        Insn::new(BPF_JMP32 | op | BPF_X, dst, src, off, 0)
    }
    /// `goto pc+off`.
    pub const fn ja(off: i16) -> Insn {
        Insn::new(BPF_JMP | BPF_JA, 0, 0, off, 0)
    }
    /// `gotol pc+imm` (ISA v4 `ja32`).
    pub const fn ja32(imm: i32) -> Insn {
        Insn::new(BPF_JMP32 | BPF_JA, 0, 0, 0, imm)
    }
    /// `call` helper `id`.
    pub const fn call_helper(id: i32) -> Insn {
        Insn::new(BPF_JMP | BPF_CALL, 0, 0, 0, id)
    }
    /// bpf-to-bpf call to `pc + 1 + imm`.
    pub const fn call_local(imm: i32) -> Insn {
        Insn::new(BPF_JMP | BPF_CALL, 0, BPF_PSEUDO_CALL, 0, imm)
    }
    /// `callx reg` (the target register in `dst`, as LLVM and the conformance suite encode it).
    pub const fn callx(reg: u8) -> Insn {
        Insn::new(BPF_JMP | BPF_CALL | BPF_X, reg, 0, 0, 0)
    }
    pub const fn exit() -> Insn {
        Insn::new(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)
    }
}

/// Parses a program from wire bytes; the length must be a multiple of [`INSN_SIZE`].
pub fn from_bytes(bytes: &[u8]) -> Result<Vec<Insn>, DecodeError> {
    if !bytes.chunks_exact(INSN_SIZE).remainder().is_empty() {
        return Err(DecodeError::new(
            bytes.len() / INSN_SIZE,
            format!(
                "program length {} is not a multiple of {INSN_SIZE}",
                bytes.len()
            ),
        ));
    }
    Ok(bytes
        .chunks_exact(INSN_SIZE)
        .map(|chunk| {
            let mut raw = [0u8; INSN_SIZE];
            raw.copy_from_slice(chunk);
            Insn::from_bytes(raw)
        })
        .collect())
}

/// Wire bytes of a program.
pub fn to_bytes(insns: &[Insn]) -> Vec<u8> {
    insns.iter().flat_map(|insn| insn.to_bytes()).collect()
}

#[cfg(test)]
mod tests;
