//! `asm_roundtrip`: the assembler, disassembler, decoder, encoder and printers on arbitrary input.
//!
//! Properties (any violation panics, which libFuzzer reports as a crash):
//! * No parser panics: `assemble` on any text, `decode`/`decode_program` on any bytes, the
//!   printers on anything that decodes.
//! * decode → encode is the identity on every instruction the strict decoder accepts.
//! * assemble → disassemble → assemble is stable: the disassembly of an assembled program
//!   assembles back to the same instructions, and disassembling that gives the same text.
//!
//! The input is used twice: as text (lossy UTF-8) for the assembler, and as raw instruction bytes
//! (the first `len / 8 * 8` bytes). A program that assembles is also fed to the byte properties,
//! so the text seeds from the conformance suite drive the decoder with well-formed programs.

use mimic_core::bpf::asm::{assemble, disassemble};
use mimic_core::bpf::print::{dump_log, dump_xlated, DefaultSymbols};
use mimic_core::isa::{self, decode, decode_program, CallTarget, Insn, Ld64, Op};

/// One input: panics on any property violation.
pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(insns) = assemble(&text) {
        check_program(&insns);
    }
    let whole = data.len() / isa::INSN_SIZE * isa::INSN_SIZE;
    if let Ok(insns) = isa::from_bytes(&data[..whole]) {
        check_program(&insns);
    }
}

/// Instructions the text syntax has no form for (the disassembler prints a comment).
fn has_text_form(op: &Op) -> bool {
    !matches!(
        op,
        Op::Ld64 {
            value: Ld64::MapFd(_) | Ld64::MapValue { .. } | Ld64::Pseudo { .. },
            ..
        } | Op::Call(CallTarget::Kfunc(_))
    )
}

fn check_program(insns: &[Insn]) {
    // Wire bytes round trip (registers are nibbles, so only in-range ones survive exactly).
    let bytes = isa::to_bytes(insns);
    let back = isa::from_bytes(&bytes).expect("whole instructions");
    assert_eq!(isa::to_bytes(&back), bytes, "wire bytes do not round trip");

    // decode -> encode is the identity, slot by slot, on whatever the strict decoder accepts.
    let mut pc = 0;
    while pc < insns.len() {
        match decode(insns, pc) {
            Ok((op, len)) => {
                assert_eq!(len, op.slots(), "slot count of {op:?} at {pc}");
                let mut out = Vec::new();
                op.encode(&mut out);
                assert_eq!(
                    out.as_slice(),
                    &insns[pc..pc + len],
                    "decode -> encode is not the identity at {pc}: {op:?}"
                );
                pc += len;
            }
            Err(_) => pc += 1,
        }
    }

    let Ok(ops) = decode_program(insns) else {
        return;
    };
    // The printers must accept whatever decodes.
    let _ = dump_xlated(insns, &DefaultSymbols).expect("decoded program prints (xlated)");
    let _ = dump_log(insns, &DefaultSymbols).expect("decoded program prints (log)");
    let text = disassemble(insns).expect("decoded program disassembles");
    if !ops.iter().all(|(_, op)| has_text_form(op)) {
        return;
    }
    let again = match assemble(&text) {
        Ok(again) => again,
        Err(e) => panic!("disassembly does not assemble: {e}\n{text}"),
    };
    assert_eq!(again, insns, "assemble(disassemble(p)) != p\n{text}");
    let text2 = disassemble(&again).expect("reassembled program disassembles");
    assert_eq!(text2, text, "disassembly is not stable");
}
