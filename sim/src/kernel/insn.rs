//! Raw BPF instructions for the kernel oracle: encode, decode and print 8-byte slots, with no
//! dependency on the core's ISA (the oracle must stay usable to check it).
//!
//! Slot layout (`struct bpf_insn`): byte 0 opcode, byte 1 `dst` in the low nibble and `src` in
//! the high nibble, bytes 2..4 `off` (i16, little-endian), bytes 4..8 `imm` (i32,
//! little-endian). `lddw` takes two slots, the second holding the upper 32 bits in `imm`.
#![forbid(unsafe_code)]

/// One BPF instruction slot as the kernel lays it out (`struct bpf_insn`, 8 bytes).
pub type RawInsn = [u8; 8];

/// Instruction classes (`code & 0x07`).
pub const BPF_LD: u8 = 0x00;
pub const BPF_LDX: u8 = 0x01;
pub const BPF_ST: u8 = 0x02;
pub const BPF_STX: u8 = 0x03;
pub const BPF_ALU: u8 = 0x04;
pub const BPF_JMP: u8 = 0x05;
pub const BPF_JMP32: u8 = 0x06;
pub const BPF_ALU64: u8 = 0x07;
/// `lddw` (`BPF_LD | BPF_IMM | BPF_DW`).
pub const LD_IMM64: u8 = 0x18;
/// `src_reg` of an `lddw` whose `imm` is a map fd (`BPF_PSEUDO_MAP_FD`); in an xlated dump the
/// kernel puts the map's id there instead.
pub const BPF_PSEUDO_MAP_FD: u8 = 1;
/// `call` and `exit` opcodes.
pub const CALL: u8 = 0x85;
pub const EXIT: u8 = 0x95;
/// Helper id of `bpf_map_lookup_elem`.
pub const BPF_FUNC_MAP_LOOKUP_ELEM: i32 = 1;

/// One slot, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

    pub fn encode(self) -> RawInsn {
        let off = self.off.to_le_bytes();
        let imm = self.imm.to_le_bytes();
        [
            self.code,
            (self.src << 4) | (self.dst & 0x0f),
            off[0],
            off[1],
            imm[0],
            imm[1],
            imm[2],
            imm[3],
        ]
    }

    pub fn decode(raw: RawInsn) -> Insn {
        Insn {
            code: raw[0],
            dst: raw[1] & 0x0f,
            src: raw[1] >> 4,
            off: i16::from_le_bytes([raw[2], raw[3]]),
            imm: i32::from_le_bytes([raw[4], raw[5], raw[6], raw[7]]),
        }
    }
}

/// Encodes a program given as decoded slots.
pub fn encode_all(insns: &[Insn]) -> Vec<RawInsn> {
    insns.iter().map(|insn| insn.encode()).collect()
}

/// `lddw dst, map` with a map fd (`BPF_PSEUDO_MAP_FD`): two slots.
pub fn ld_map_fd(dst: u8, fd: i32) -> [Insn; 2] {
    [
        Insn::new(LD_IMM64, dst, BPF_PSEUDO_MAP_FD, 0, fd),
        Insn::new(0, 0, 0, 0, 0),
    ]
}

fn size_name(code: u8) -> &'static str {
    match code & 0x18 {
        0x00 => "u32",
        0x08 => "u16",
        0x10 => "u8",
        _ => "u64",
    }
}

fn alu_op(code: u8) -> Option<&'static str> {
    Some(match code & 0xf0 {
        0x00 => "+=",
        0x10 => "-=",
        0x20 => "*=",
        0x30 => "/=",
        0x40 => "|=",
        0x50 => "&=",
        0x60 => "<<=",
        0x70 => ">>=",
        0x90 => "%=",
        0xa0 => "^=",
        0xb0 => "=",
        0xc0 => "s>>=",
        _ => return None,
    })
}

fn jmp_op(code: u8) -> Option<&'static str> {
    Some(match code & 0xf0 {
        0x10 => "==",
        0x20 => ">",
        0x30 => ">=",
        0x40 => "&",
        0x50 => "!=",
        0x60 => "s>",
        0x70 => "s>=",
        0xa0 => "<",
        0xb0 => "<=",
        0xc0 => "s<",
        0xd0 => "s<=",
        _ => return None,
    })
}

/// Prints a program the way `bpftool prog dump xlated` does (close enough to compare by eye
/// with the seed's dump): `N: (op) text`. `lddw` of a map prints `map[id:N]` when `src` is
/// `BPF_PSEUDO_MAP_FD` (in xlated dumps `imm` is then the map id).
pub fn dump(raw: &[RawInsn]) -> String {
    let mut out = String::new();
    let mut pc = 0;
    while pc < raw.len() {
        let insn = Insn::decode(raw[pc]);
        let text = describe(insn, raw.get(pc + 1).copied().map(Insn::decode));
        out.push_str(&format!("{pc:4}: ({:02x}) {text}\n", insn.code));
        pc += if insn.code == LD_IMM64 { 2 } else { 1 };
    }
    out
}

fn describe(insn: Insn, next: Option<Insn>) -> String {
    let Insn {
        code,
        dst,
        src,
        off,
        imm,
    } = insn;
    let class = code & 0x07;
    let from_reg = code & 0x08 != 0;
    match class {
        BPF_ALU | BPF_ALU64 => {
            let r = if class == BPF_ALU64 { "r" } else { "w" };
            if code & 0xf0 == 0x80 {
                return format!("{r}{dst} = -{r}{dst}");
            }
            match alu_op(code) {
                Some(op) if from_reg => format!("{r}{dst} {op} {r}{src}"),
                Some(op) => format!("{r}{dst} {op} {imm}"),
                None => format!("alu {code:#04x} {r}{dst}, {imm}"),
            }
        }
        BPF_JMP | BPF_JMP32 => {
            let r = if class == BPF_JMP { "r" } else { "w" };
            match code {
                CALL if src == 0 => format!("call #{imm}"),
                CALL => format!("call pc{:+}", imm),
                EXIT => "exit".to_string(),
                0x05 => format!("goto pc{off:+}"),
                _ => match jmp_op(code) {
                    Some(op) if from_reg => format!("if {r}{dst} {op} {r}{src} goto pc{off:+}"),
                    Some(op) => format!("if {r}{dst} {op} {:#x} goto pc{off:+}", imm),
                    None => format!("jmp {code:#04x}"),
                },
            }
        }
        BPF_LDX => format!("r{dst} = *({} *)(r{src} {off:+})", size_name(code)),
        BPF_STX if code & 0xe0 == 0x60 => {
            format!("*({} *)(r{dst} {off:+}) = r{src}", size_name(code))
        }
        BPF_STX => format!("atomic {code:#04x} (r{dst} {off:+}), r{src}, {imm:#x}"),
        BPF_ST => format!("*({} *)(r{dst} {off:+}) = {imm}", size_name(code)),
        BPF_LD if code == LD_IMM64 => {
            let high = next.map_or(0, |next| next.imm as u32);
            if src == BPF_PSEUDO_MAP_FD {
                format!("r{dst} = map[id:{}]", imm as u32)
            } else {
                format!(
                    "r{dst} = {:#x}",
                    (u64::from(high) << 32) | u64::from(imm as u32)
                )
            }
        }
        _ => format!("insn {code:#04x} dst={dst} src={src} off={off} imm={imm}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_layout_is_the_kernels_struct_bpf_insn() {
        // `(07) r2 += -4`: opcode, dst in the low nibble, imm little-endian.
        let raw = Insn::new(0x07, 2, 0, 0, -4).encode();
        assert_eq!(raw, [0x07, 0x02, 0, 0, 0xfc, 0xff, 0xff, 0xff]);
        // `(63) *(u32 *)(r10 -4) = r1`: src in the high nibble, off little-endian.
        let raw = Insn::new(0x63, 10, 1, -4, 0).encode();
        assert_eq!(raw, [0x63, 0x1a, 0xfc, 0xff, 0, 0, 0, 0]);
    }

    #[test]
    fn decode_inverts_encode() {
        let insn = Insn::new(0x35, 0, 0, 5, 3);
        assert_eq!(Insn::decode(insn.encode()), insn);
        let insn = Insn::new(LD_IMM64, 1, BPF_PSEUDO_MAP_FD, 0, 468);
        assert_eq!(Insn::decode(insn.encode()), insn);
    }

    #[test]
    fn dump_prints_like_bpftool() {
        let raw = encode_all(&[
            Insn::new(0x35, 0, 0, 5, 3),
            Insn::new(0x79, 0, 0, 0, 0),
            Insn::new(0xb4, 6, 0, 0, -1),
        ]);
        let text = dump(&raw);
        assert!(text.contains("(35) if r0 >= 0x3 goto pc+5"), "{text}");
        assert!(text.contains("(79) r0 = *(u64 *)(r0 +0)"), "{text}");
        assert!(text.contains("(b4) w6 = -1"), "{text}");
    }
}
