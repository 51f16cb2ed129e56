//! The verifier cases of semantics.md §9 (and the map-in-map rules of §5), each with the verdict,
//! message, instruction index and `processed N insns` the Linux 6.18 kernel gives for the same
//! program (recorded by loading each program with bpf(2) on this project's machines), under every
//! kernel profile (the builds word some messages differently).

mod verifier_common;

use mimic_core::bpf::verifier::{verify, Rejection, VerifyOpts};
use mimic_core::isa::*;
use mimic_core::profile::PROFILES;
use verifier_common::*;

fn processed_of(log: &str) -> Option<u64> {
    let line = log.lines().rev().find(|l| l.starts_with("processed "))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn semantics_section_9_cases_get_the_kernels_verdict_message_and_count() {
    let maps = maps();
    let mut failures = Vec::new();
    for (profile, case) in PROFILES
        .iter()
        .flat_map(|p| cases(p).into_iter().map(move |c| (p, c)))
    {
        let opts = VerifyOpts {
            privileged: case.privileged,
            test_state_freq: case.state_freq,
            profile: *profile,
            ..VerifyOpts::default()
        };
        let name = format!("{} ({})", case.name, profile.name);
        let got = verify(&case.prog, &maps, opts);
        match (&case.expect, &got) {
            (Expect::Accept { processed }, Ok(v)) => {
                if v.stats.processed != *processed {
                    failures.push(format!(
                        "{}: accepted, processed {} insns, kernel {processed}",
                        name, v.stats.processed
                    ));
                }
            }
            (
                Expect::Reject {
                    insn,
                    message,
                    processed,
                },
                Err(Rejection {
                    insn: i,
                    message: m,
                    log,
                    ..
                }),
            ) => {
                if i != insn || m != message {
                    failures.push(format!(
                        "{}: refused at {i} with {m:?}, kernel: at {insn} with {message:?}",
                        name
                    ));
                }
                if processed_of(log) != Some(*processed) {
                    failures.push(format!(
                        "{}: log says {:?} processed, kernel {processed}",
                        name,
                        processed_of(log)
                    ));
                }
            }
            (Expect::Accept { .. }, Err(r)) => {
                failures.push(format!("{}: refused: {r}, kernel accepts", name))
            }
            (Expect::Reject { message, .. }, Ok(_)) => failures.push(format!(
                "{}: accepted, kernel refuses with {message:?}",
                name
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "disagreements with the kernel:\n{}",
        failures.join("\n")
    );
}

#[test]
fn unprivileged_programs_may_not_read_map_pointer_fields() {
    let prog = outer_lookup_then(FD_MAP_IN_MAP)
        .i(Insn::jmp_imm(BPF_JEQ, 0, 0, 1))
        .i(Insn::ldx_mem(BPF_DW, 0, 0, 0))
        .i(Insn::mov64_imm(0, 0))
        .i(Insn::exit())
        .0;
    let opts = VerifyOpts {
        privileged: false,
        ..VerifyOpts::default()
    };
    let err = verify(&prog, &maps(), opts).expect_err("unprivileged map pointer read");
    assert_eq!(err.insn, 8);
    assert!(
        err.message
            .contains("access is allowed only to CAP_PERFMON"),
        "{}",
        err.message
    );
}

/// An inner map pointer read at `off` with `size` bytes, then `r0 = 0; exit`.
fn inner_map_read(size: u8, off: i16) -> Vec<Insn> {
    outer_lookup_then(FD_MAP_IN_MAP)
        .i(Insn::jmp_imm(BPF_JEQ, 0, 0, 1))
        .i(Insn::ldx_mem(size, 1, 0, off))
        .i(Insn::mov64_imm(0, 0))
        .i(Insn::exit())
        .0
}

#[test]
fn map_pointer_reads_are_checked_against_the_recorded_builds_struct_layout() {
    let maps = maps();
    // `struct bpf_array` starts with `struct bpf_map`, whose `max_entries` the recorded build
    // keeps at 76: a scalar, and the program is marked as reading kernel memory.
    let v = verify(&inner_map_read(BPF_W, 76), &maps, VerifyOpts::default())
        .expect("max_entries is readable");
    assert!(v.reads_kernel_struct);
    // A program that reads nothing through a map pointer is not marked.
    let plain = outer_lookup_then(FD_MAP_IN_MAP)
        .i(Insn::mov64_imm(0, 0))
        .i(Insn::exit())
        .0;
    assert!(
        !verify(&plain, &maps, VerifyOpts::default())
            .expect("accepted")
            .reads_kernel_struct
    );
    let refusal = |size, off| {
        verify(&inner_map_read(size, off), &maps, VerifyOpts::default())
            .expect_err("refused")
            .message
    };
    // The kernel's words for an overrun of an integer array and for a hole.
    assert_eq!(
        refusal(BPF_DW, 28),
        "access beyond the end of member sha (mend:32) in struct bpf_map with off 28 size 8"
    );
    assert_eq!(
        refusal(BPF_W, 36),
        "struct bpf_map doesn't have field at offset 36"
    );
    assert_eq!(
        refusal(BPF_W, 40),
        "cannot access ptr member ops with moff 40 in struct bpf_map with off 40 size 4"
    );
    // A whole pointer member: the kernel's pointer into its memory, which mimic refuses.
    assert_eq!(
        refusal(BPF_DW, 40),
        "R0 is read at pointer member ops of struct bpf_map: pointers to kernel memory are not modelled"
    );
    // Past `struct bpf_map`, the array's own fields: `elem_size` at 296.
    assert!(verify(&inner_map_read(BPF_W, 296), &maps, VerifyOpts::default()).is_ok());
}

#[test]
fn control_flow_errors_name_the_instruction() {
    let maps = maps();
    let table: Vec<(Vec<Insn>, &str)> = vec![
        (
            vec![Insn::mov64_imm(0, 0)],
            "last insn is not an exit or jmp",
        ),
        (
            vec![Insn::ja(5), Insn::exit()],
            "jump out of range from insn 0 to 6",
        ),
        (
            vec![Insn::mov64_imm(0, 0), Insn::exit(), Insn::exit()],
            "unreachable insn 2",
        ),
        (
            [
                vec![Insn::jmp_imm(BPF_JEQ, 1, 0, 1)],
                Insn::ld_imm64(0, 1).to_vec(),
                vec![Insn::exit()],
            ]
            .concat(),
            "jump into the middle of ldimm64 insn 1",
        ),
        (vec![Insn::exit()], "R0 !read_ok"),
        (
            vec![Insn::st_mem(BPF_DW, 10, -520, 0), Insn::exit()],
            "invalid write to stack R10 off=-520 size=8",
        ),
        (
            vec![Insn::ldx_mem(BPF_DW, 0, 10, 8), Insn::exit()],
            "invalid read from stack R10 off=8 size=8",
        ),
        (
            vec![Insn::st_mem(BPF_W, 1, 0, 1), Insn::exit()],
            "invalid bpf_context access off=0 size=4",
        ),
        (
            vec![
                Insn::mov64_imm(1, 0),
                Insn::ldx_mem(BPF_DW, 0, 1, 0),
                Insn::exit(),
            ],
            "R1 invalid mem access 'scalar'",
        ),
        (
            vec![Insn::stx_mem(BPF_W, 10, 10, -4), Insn::exit()],
            "invalid size of register spill",
        ),
        (
            vec![
                Insn::stx_mem(BPF_DW, 10, 10, -8),
                Insn::ldx_mem(BPF_W, 0, 10, -8),
                Insn::exit(),
            ],
            "invalid size of register fill",
        ),
        (
            vec![
                Insn::mov64_reg(1, 10),
                Insn::alu64_imm(BPF_AND, 1, 1),
                Insn::exit(),
            ],
            "R1 bitwise operator &= on pointer prohibited",
        ),
        (
            vec![
                Insn::mov64_reg(1, 10),
                Insn::alu64_imm(BPF_MUL, 1, 2),
                Insn::exit(),
            ],
            "R1 pointer arithmetic with *= operator prohibited",
        ),
        (
            vec![
                Insn::mov64_reg(1, 10),
                Insn::alu32_imm(BPF_ADD, 1, 2),
                Insn::exit(),
            ],
            "R1 32-bit pointer arithmetic prohibited",
        ),
        (
            vec![
                Insn::mov64_imm(1, 0),
                Insn::alu64_reg(BPF_SUB, 1, 10),
                Insn::exit(),
            ],
            "R1 tried to subtract pointer from scalar",
        ),
        (
            vec![
                Insn::mov64_imm(0, 0),
                Insn::alu64_imm(BPF_LSH, 0, 64),
                Insn::exit(),
            ],
            "invalid shift 64",
        ),
        (
            vec![Insn::ldx_mem(BPF_DW, 0, 1, 4096), Insn::exit()],
            "invalid bpf_context access off=4096 size=8",
        ),
        (
            vec![
                Insn::alu64_imm(BPF_ADD, 1, 4),
                Insn::ldx_mem(BPF_W, 0, 1, 0),
                Insn::exit(),
            ],
            "dereference of modified ctx ptr R1 off=4 disallowed",
        ),
        (
            vec![Insn::mov64_imm(10, 0), Insn::exit()],
            "frame pointer is read only",
        ),
        (
            vec![Insn::call_helper(300), Insn::exit()],
            "invalid func unknown#300",
        ),
        (
            vec![Insn::call_helper(13), Insn::exit()],
            "program of this type cannot use helper bpf_clone_redirect#13",
        ),
    ];
    for (prog, message) in table {
        let err = verify(&prog, &maps, VerifyOpts::default()).expect_err(message);
        assert_eq!(err.message, message);
    }
    // Uninitialised stack: readable when privileged (the kernel's allow_uninit_stack), refused
    // otherwise.
    let uninit = vec![Insn::ldx_mem(BPF_DW, 0, 10, -8), Insn::exit()];
    assert!(
        verify(&uninit, &maps, VerifyOpts::default()).is_ok(),
        "privileged reads uninit stack"
    );
    let unpriv = VerifyOpts {
        privileged: false,
        ..VerifyOpts::default()
    };
    let err = verify(&uninit, &maps, unpriv).expect_err("unprivileged");
    assert_eq!(err.message, "invalid read from stack off -8+0 size 8");
    // A back-edge is a loop: refused unprivileged, explored (and bounded) when privileged.
    let looping = vec![
        Insn::mov64_imm(0, 0),
        Insn::alu64_imm(BPF_ADD, 0, 1),
        Insn::jmp_imm(BPF_JLT, 0, 10, -2),
        Insn::exit(),
    ];
    let unpriv = VerifyOpts {
        privileged: false,
        ..VerifyOpts::default()
    };
    assert_eq!(
        verify(&looping, &maps, unpriv)
            .expect_err("unpriv loop")
            .message,
        "back-edge from insn 2 to 1"
    );
    let v = verify(&looping, &maps, VerifyOpts::default()).expect("bounded loop");
    assert!(
        v.stats.processed > 20,
        "the loop body is walked ten times: {}",
        v.stats.processed
    );
    let forever = vec![Insn::mov64_imm(0, 0), Insn::ja(-1)];
    let err = verify(&forever, &maps, VerifyOpts::default()).expect_err("infinite loop");
    assert!(
        err.message.starts_with("infinite loop detected")
            || err.message.starts_with("BPF program is too large"),
        "{}",
        err.message
    );
}

#[test]
fn a_loop_beyond_the_budget_is_refused_as_too_large() {
    // 0: r0 = 0; 1: r0 += 1; 2: if r0 < 10^6 goto 1; 3: exit — 3 insns per iteration.
    let prog = vec![
        Insn::mov64_imm(0, 0),
        Insn::alu64_imm(BPF_ADD, 0, 1),
        Insn::jmp_imm(BPF_JLT, 0, 1_000_000, -2),
        Insn::exit(),
    ];
    let start = std::time::Instant::now();
    let err = verify(&prog, &maps(), VerifyOpts::default()).expect_err("too large");
    eprintln!("1M processed insns in {:?}", start.elapsed());
    assert_eq!(
        err.message,
        "BPF program is too large. Processed 1000001 insn"
    );
    assert_eq!(err.errno, 7, "E2BIG");
}
