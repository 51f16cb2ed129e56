//! Unit tests of the context rules per program type (`BPF_PROG_TYPE_SYSCALL`'s writable,
//! aligned context and its `max_ctx_offset`), the order of the pointer-arithmetic refusals,
//! and the order of the control-flow checks; each expectation is what Linux 6.18 said for the
//! same program on this project's machine.

use super::check::syscall_ctx_access_ok;
use super::corpus::{maps, FD_ARRAY_5};
use super::{verify, ProgType, Rejection, Verified, VerifyOpts, SYSCALL_CTX_MAX};
use crate::isa::*;

fn syscall() -> VerifyOpts {
    VerifyOpts {
        prog_type: ProgType::Syscall,
        sleepable: true,
        ..VerifyOpts::default()
    }
}

fn accept(prog: &[Insn], opts: VerifyOpts) -> Verified {
    verify(prog, &maps(), opts).unwrap_or_else(|r| panic!("refused: {r}"))
}

fn refuse(prog: &[Insn], opts: VerifyOpts) -> Rejection {
    match verify(prog, &maps(), opts) {
        Ok(_) => panic!("accepted a program the kernel refuses"),
        Err(r) => r,
    }
}

fn ret0(mut body: Vec<Insn>) -> Vec<Insn> {
    body.push(Insn::mov64_imm(0, 0));
    body.push(Insn::exit());
    body
}

#[test]
fn syscall_ctx_is_readable_and_writable_and_records_the_highest_byte() {
    let prog = ret0(vec![
        Insn::ldx_mem(BPF_W, 2, 1, 0),
        Insn::stx_mem(BPF_W, 1, 2, 4),
        Insn::st_mem(BPF_DW, 1, 16, 7),
        // A pointer into the context is allowed when pointer leaks are (privileged).
        Insn::stx_mem(BPF_DW, 1, 10, 8),
    ]);
    let v = accept(&prog, syscall());
    assert_eq!(
        v.max_ctx_offset, 24,
        "the 8-byte store at 16 reaches byte 24"
    );
    let read_only = accept(&ret0(vec![Insn::ldx_mem(BPF_H, 2, 1, 2)]), syscall());
    assert_eq!(
        read_only.max_ctx_offset, 4,
        "a 2-byte read at 2 reaches byte 4"
    );
    let none = accept(&ret0(vec![]), syscall());
    assert_eq!(none.max_ctx_offset, 0, "no context access, any buffer fits");
}

#[test]
fn generic_ctx_stays_read_only_within_ctx_size() {
    let write = ret0(vec![Insn::st_mem(BPF_W, 1, 0, 1)]);
    assert_eq!(
        refuse(&write, VerifyOpts::default()).message,
        "invalid bpf_context access off=0 size=4"
    );
    let v = accept(
        &ret0(vec![Insn::ldx_mem(BPF_W, 2, 1, 4)]),
        VerifyOpts::default(),
    );
    assert_eq!(v.max_ctx_offset, 8);
}

#[test]
fn misaligned_syscall_ctx_access_is_refused() {
    for (insn, message) in [
        (
            Insn::ldx_mem(BPF_W, 2, 1, 2),
            "invalid bpf_context access off=2 size=4",
        ),
        (
            Insn::ldx_mem(BPF_DW, 2, 1, 4),
            "invalid bpf_context access off=4 size=8",
        ),
        (
            Insn::st_mem(BPF_H, 1, 1, 0),
            "invalid bpf_context access off=1 size=2",
        ),
    ] {
        let r = refuse(&ret0(vec![insn]), syscall());
        assert_eq!(r.message, message);
        assert_eq!(r.insn, 0);
    }
    // Byte accesses are aligned anywhere.
    accept(&ret0(vec![Insn::ldx_mem(BPF_B, 2, 1, 32767)]), syscall());
}

#[test]
fn syscall_ctx_offsets_are_below_u16_max_and_never_negative() {
    assert!(syscall_ctx_access_ok(0, 8));
    assert!(syscall_ctx_access_ok(i64::from(SYSCALL_CTX_MAX) - 1, 1));
    assert!(
        !syscall_ctx_access_ok(i64::from(SYSCALL_CTX_MAX), 1),
        "off == U16_MAX is out"
    );
    assert!(!syscall_ctx_access_ok(65_536, 4), "beyond U16_MAX");
    assert!(!syscall_ctx_access_ok(-4, 4), "negative");
    let r = refuse(&ret0(vec![Insn::ldx_mem(BPF_B, 2, 1, -1)]), syscall());
    assert_eq!(r.message, "invalid bpf_context access off=-1 size=1");
}

#[test]
fn a_moved_ctx_pointer_is_refused_in_the_kernels_order() {
    let cases = [
        (
            vec![Insn::alu64_imm(BPF_ADD, 1, -4)],
            "negative offset ctx ptr R1 off=-4 disallowed",
        ),
        (
            vec![Insn::alu64_imm(BPF_ADD, 1, 4)],
            "dereference of modified ctx ptr R1 off=4 disallowed",
        ),
        (
            vec![
                Insn::ldx_mem(BPF_W, 2, 1, 0),
                Insn::alu64_imm(BPF_AND, 2, 4),
                Insn::alu64_reg(BPF_ADD, 1, 2),
            ],
            "variable ctx access var_off=(0x0; 0x4) disallowed",
        ),
    ];
    for (mut prog, message) in cases {
        prog.push(Insn::ldx_mem(BPF_W, 0, 1, 0));
        prog.push(Insn::exit());
        assert_eq!(refuse(&prog, syscall()).message, message);
    }
}

/// `r5 = map; r6 = 1`, then `tail`.
fn with_map_ptr(tail: &[Insn]) -> Vec<Insn> {
    let mut prog = Insn::ld_map_fd(5, FD_ARRAY_5).to_vec();
    prog.push(Insn::mov64_imm(6, 1));
    prog.extend_from_slice(tail);
    ret0(prog)
}

#[test]
fn map_ptr_operand_is_refused_before_scalar_minus_pointer() {
    for (insn, message) in [
        (
            Insn::alu64_reg(BPF_SUB, 6, 5),
            "R6 pointer arithmetic on map_ptr prohibited",
        ),
        (
            Insn::alu64_reg(BPF_ADD, 6, 5),
            "R6 pointer arithmetic on map_ptr prohibited",
        ),
        (
            Insn::alu64_reg(BPF_MUL, 6, 5),
            "R6 pointer arithmetic on map_ptr prohibited",
        ),
        (
            Insn::alu64_reg(BPF_SUB, 5, 6),
            "R5 pointer arithmetic on map_ptr prohibited",
        ),
        (
            Insn::alu64_imm(BPF_SUB, 5, 0),
            "R5 pointer arithmetic on map_ptr prohibited",
        ),
    ] {
        assert_eq!(refuse(&with_map_ptr(&[insn]), syscall()).message, message);
    }
    // A stack pointer is not refused for its type: the scalar-minus-pointer rule speaks.
    let r = refuse(
        &ret0(vec![Insn::mov64_imm(6, 1), Insn::alu64_reg(BPF_SUB, 6, 10)]),
        syscall(),
    );
    assert_eq!(r.message, "R6 tried to subtract pointer from scalar");
}

#[test]
fn pointer_arithmetic_the_kernel_allows_privileged() {
    for tail in [
        // `map_ptr += 0` is the one arithmetic on a map pointer.
        vec![Insn::alu64_imm(BPF_ADD, 5, 0)],
        vec![Insn::mov64_imm(6, 0), Insn::alu64_reg(BPF_ADD, 6, 5)],
        // 32-bit subtraction with a pointer operand gives a scalar when leaks are allowed.
        vec![Insn::alu32_reg(BPF_SUB, 6, 5)],
        vec![Insn::alu32_reg(BPF_SUB, 5, 6)],
        // Two pointers of different types may be subtracted.
        vec![Insn::mov64_reg(6, 10), Insn::alu64_reg(BPF_SUB, 6, 5)],
    ] {
        accept(&with_map_ptr(&tail), syscall());
    }
    let unpriv = VerifyOpts {
        privileged: false,
        ..VerifyOpts::default()
    };
    let r = refuse(&with_map_ptr(&[Insn::alu32_reg(BPF_SUB, 6, 5)]), unpriv);
    assert_eq!(r.message, "R6 32-bit pointer arithmetic prohibited");
    let r = refuse(
        &with_map_ptr(&[Insn::mov64_reg(6, 10), Insn::alu64_reg(BPF_ADD, 6, 5)]),
        syscall(),
    );
    assert_eq!(r.message, "R6 pointer += pointer prohibited");
}

#[test]
fn out_of_range_jumps_come_before_a_jump_into_an_lddw() {
    let l = Insn::ld_imm64(3, 7);
    // pc 1 jumps into the lddw's second slot, pc 4 out of the program.
    let prog = vec![
        Insn::mov64_imm(0, 0),
        Insn::jmp_imm(BPF_JEQ, 0, 0, 1),
        l[0],
        l[1],
        Insn::jmp_imm(BPF_JEQ, 0, 0, 9),
        Insn::exit(),
    ];
    let r = refuse(&prog, syscall());
    assert_eq!(r.message, "jump out of range from insn 4 to 14");
    // With an unreachable instruction after it, the lddw (earlier) is reported first.
    let prog = vec![
        Insn::mov64_imm(0, 0),
        Insn::jmp_imm(BPF_JEQ, 0, 0, 1),
        l[0],
        l[1],
        Insn::exit(),
        Insn::exit(),
    ];
    let r = refuse(&prog, syscall());
    assert_eq!(r.message, "jump into the middle of ldimm64 insn 2");
    // An lddw nobody reaches is unreachable before anything else is said about it.
    let prog = vec![Insn::mov64_imm(0, 0), Insn::ja(1), l[0], l[1], Insn::exit()];
    assert_eq!(refuse(&prog, syscall()).message, "unreachable insn 2");
}

#[test]
fn pointer_arithmetic_keeps_offsets_inside_bpf_max_var_off_with_the_kernels_messages() {
    use super::corpus::pointer_offset_cases;
    for profile in crate::profile::PROFILES {
        let opts = VerifyOpts {
            profile,
            ..syscall()
        };
        let cases = pointer_offset_cases(&profile);
        assert!(cases.len() > 40, "every pointer type has its cases");
        for case in cases {
            let name = format!("{} ({})", case.name, profile.name);
            match (verify(&case.prog, &maps(), opts), &case.refusal) {
                (Ok(_), None) => {}
                (Err(r), Some(message)) => {
                    assert_eq!(&r.message, message, "{name}");
                    let errno = if message.contains("prohibited") {
                        super::EACCES
                    } else {
                        super::EINVAL
                    };
                    assert_eq!(r.errno, errno, "{name}: the kernel's errno");
                }
                (Ok(_), Some(message)) => {
                    panic!("{name}: accepted, the kernel says {message:?}")
                }
                (Err(r), None) => panic!("{name}: refused ({r}), the kernel accepts"),
            }
        }
    }
}

#[test]
fn array_lookups_are_non_null_only_for_keys_the_kernel_sees_as_constant() {
    use super::corpus::constant_key_cases;
    for case in constant_key_cases() {
        let message = verify(&case.prog, &maps(), syscall())
            .err()
            .map(|r| r.message);
        assert_eq!(message, case.refusal, "{}", case.name);
    }
}

#[test]
fn narrow_reads_of_a_spilled_constant_follow_the_kernels_fill() {
    // u64 0x0102 spilled at fp-8: a u16 read at the slot's start is 0x0102, so `r0 == 0x102`
    // is decided and the store through the null r1 below it is never reached; a u16 read at
    // fp-6 is unknown (the kernel keeps only a spilled zero there).
    let prog = |off: i16| {
        vec![
            Insn::st_mem(BPF_DW, 10, -8, 0x0102),
            Insn::ldx_mem(BPF_H, 0, 10, off),
            Insn::jmp_imm(BPF_JEQ, 0, 0x0102, 2),
            Insn::mov64_imm(1, 0),
            Insn::st_mem(BPF_W, 1, 0, 0),
            Insn::mov64_imm(0, 0),
            Insn::exit(),
        ]
    };
    accept(&prog(-8), syscall());
    assert_eq!(
        refuse(&prog(-6), syscall()).message,
        "R1 invalid mem access 'scalar'"
    );
}
