use super::*;

/// One instance of every instruction form ISA v4 has, in its wire encoding.
fn every_form() -> Vec<Insn> {
    let mut insns = Vec::new();
    for class in [BPF_ALU, BPF_ALU64] {
        for op in [
            BPF_ADD, BPF_SUB, BPF_MUL, BPF_DIV, BPF_OR, BPF_AND, BPF_LSH, BPF_RSH, BPF_MOD,
            BPF_XOR, BPF_MOV, BPF_ARSH,
        ] {
            insns.push(Insn::new(class | op | BPF_K, 1, 0, 0, -7));
            insns.push(Insn::new(class | op | BPF_X, 1, 2, 0, 0));
        }
        for op in [BPF_DIV, BPF_MOD] {
            insns.push(Insn::new(class | op | BPF_K, 3, 0, OFF_SIGNED, 5));
            insns.push(Insn::new(class | op | BPF_X, 3, 4, OFF_SIGNED, 0));
        }
        insns.push(Insn::new(class | BPF_MOV | BPF_X, 5, 6, 8, 0));
        insns.push(Insn::new(class | BPF_MOV | BPF_X, 5, 6, 16, 0));
        insns.push(Insn::new(class | BPF_NEG, 7, 0, 0, 0));
    }
    insns.push(Insn::movsx64(5, 6, 32));
    for bits in [16, 32, 64] {
        insns.push(Insn::new(BPF_ALU | BPF_END | BPF_TO_LE, 1, 0, 0, bits));
        insns.push(Insn::new(BPF_ALU | BPF_END | BPF_TO_BE, 1, 0, 0, bits));
        insns.push(Insn::new(BPF_ALU64 | BPF_END, 1, 0, 0, bits));
    }
    insns.extend(Insn::ld_imm64(3, 0x1122_3344_5566_7788));
    insns.extend(Insn::ld_map_fd(1, 7));
    insns.extend(Insn::ld_map_value(1, 7, 16));
    for size in [BPF_B, BPF_H, BPF_W, BPF_DW] {
        insns.push(Insn::ldx_mem(size, 0, 1, -4));
        insns.push(Insn::stx_mem(size, 10, 1, -8));
        insns.push(Insn::st_mem(size, 10, -8, -1));
    }
    for size in [BPF_B, BPF_H, BPF_W] {
        insns.push(Insn::ldx_memsx(size, 0, 1, 2));
    }
    for size in [BPF_W, BPF_DW] {
        for op in [BPF_ADD, BPF_AND, BPF_OR, BPF_XOR] {
            insns.push(Insn::atomic(size, 10, 1, -8, op as i32));
            insns.push(Insn::atomic(size, 10, 1, -8, op as i32 | BPF_FETCH));
        }
        insns.push(Insn::atomic(size, 10, 1, -8, BPF_XCHG));
        insns.push(Insn::atomic(size, 10, 1, -8, BPF_CMPXCHG));
    }
    for op in [
        BPF_JEQ, BPF_JGT, BPF_JGE, BPF_JSET, BPF_JNE, BPF_JSGT, BPF_JSGE, BPF_JLT, BPF_JLE,
        BPF_JSLT, BPF_JSLE,
    ] {
        insns.push(Insn::jmp_imm(op, 1, 3, 0));
        insns.push(Insn::jmp_reg(op, 1, 2, 0));
        insns.push(Insn::jmp32_imm(op, 1, 3, 0));
        insns.push(Insn::jmp32_reg(op, 1, 2, 0));
    }
    insns.push(Insn::ja(0));
    insns.push(Insn::ja32(0));
    insns.push(Insn::call_helper(1));
    insns.push(Insn::call_local(0));
    insns.push(Insn::callx(2));
    insns.push(Insn::exit());
    insns
}

#[test]
fn every_v4_form_decodes_and_reencodes_to_the_same_slots() {
    let insns = every_form();
    let ops = decode_program(&insns).expect("every form is valid");
    let mut again = Vec::new();
    for (_, op) in &ops {
        op.encode(&mut again);
    }
    assert_eq!(again, insns, "decode then encode must be the identity");
    let bytes = to_bytes(&insns);
    assert_eq!(
        from_bytes(&bytes).expect("whole slots"),
        insns,
        "wire bytes round trip"
    );
}

#[test]
fn wire_layout_is_little_endian_with_dst_in_the_low_nibble() {
    // `r0 = *(u32 *)(r10 -4)` with imm 1: the suite's unused-ldxw-imm bytes.
    let insn = Insn::from_bytes([0x61, 0xa0, 0xfc, 0xff, 0x01, 0, 0, 0]);
    assert_eq!(insn, Insn::new(0x61, 0, 10, -4, 1));
    assert_eq!(insn.to_u64(), 0x0000_0001_fffc_a061);
    assert_eq!(
        Insn::from_u64(0x5566778800000018),
        Insn::new(0x18, 0, 0, 0, 0x55667788)
    );
}

#[test]
fn reserved_fields_are_refused() {
    let bad = [
        Insn::new(BPF_ALU64 | BPF_ADD | BPF_K, 0, 0, 1, 1), // add imm with off
        Insn::new(BPF_ALU64 | BPF_ADD | BPF_K, 0, 1, 0, 1), // add imm with src
        Insn::new(BPF_ALU64 | BPF_ADD | BPF_X, 0, 1, 0, 1), // add reg with imm
        Insn::new(BPF_JMP | BPF_CALL, 1, 0, 0, 1),          // call with dst
        Insn::new(BPF_JMP | BPF_EXIT, 0, 0, 0, 1),          // exit with imm
        Insn::new(BPF_JMP | BPF_JA, 0, 0, 0, 1),            // ja with imm
        Insn::new(BPF_LDX | BPF_MEM | BPF_W, 0, 10, -4, 1), // ldx with imm
        Insn::new(BPF_ST | BPF_MEM | BPF_W, 10, 1, -4, 1),  // st with src
        Insn::new(BPF_ALU | BPF_END, 1, 0, 0, 8),           // le8 does not exist
        Insn::new(BPF_ALU | BPF_MOV | BPF_X, 1, 2, 32, 0),  // movsx32 only in ALU64
        Insn::new(BPF_STX | BPF_ATOMIC | BPF_B, 10, 1, 0, 0), // 8-bit atomics do not exist
        Insn::new(BPF_STX | BPF_ATOMIC | BPF_W, 10, 1, 0, 0x10), // atomic sub does not exist
        Insn::new(BPF_ALU64 | BPF_MOV | BPF_K, 11, 0, 0, 0), // r11
        Insn::new(0xff, 0, 0, 0, 0),
    ];
    for insn in bad {
        assert!(
            decode(&[insn, Insn::exit()], 0).is_err(),
            "{insn:?} must be refused"
        );
    }
}

#[test]
fn jumps_must_land_on_an_instruction_start() {
    let into_lddw = [
        Insn::ja(1),
        Insn::ld_imm64(0, 1)[0],
        Insn::ld_imm64(0, 1)[1],
        Insn::exit(),
    ];
    assert!(
        decode_program(&into_lddw).is_err(),
        "jump into the second slot of lddw"
    );
    let past_end = [Insn::ja(1), Insn::exit()];
    assert!(decode_program(&past_end).is_err(), "jump past the end");
    let truncated = [Insn::ld_imm64(0, 1)[0]];
    assert!(
        decode_program(&truncated).is_err(),
        "lddw without its second slot"
    );
    assert!(decode_program(&[]).is_err(), "empty program");
}
