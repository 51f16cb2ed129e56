use super::fake::FakeArrays;
use super::*;
use crate::bpf::asm::assemble;
use crate::bpf::helpers::{DirectCall, MapFn, MapImpl};
use crate::isa::Insn;

fn program(source: &str) -> Program {
    Program::new(&assemble(source).expect("test program assembles")).expect("test program decodes")
}

fn run_text(source: &str, ctx: &mut [u8]) -> Result<u64, ExecError> {
    run(&program(source), ctx)
}

#[test]
fn stack_access_below_the_frame_is_out_of_bounds_with_its_pc() {
    let err =
        run_text("mov %r0, 0\nldxdw %r0, [%r10-520]\nexit", &mut []).expect_err("512-byte frame");
    assert_eq!(err.pc, 1, "{err}");
    let err = run_text("stw [%r10+0], 1\nexit", &mut []).expect_err("r10 is the top of the frame");
    assert!(
        matches!(err.kind, ExecErrorKind::OutOfBounds { .. }),
        "{err}"
    );
}

#[test]
fn null_and_scalar_dereferences_are_reported() {
    let err = run_text("mov %r1, 0\nldxw %r0, [%r1+0]\nexit", &mut []).expect_err("null");
    assert_eq!(
        err,
        ExecError {
            pc: 1,
            kind: ExecErrorKind::NullDeref { addr: 0, size: 4 }
        }
    );
    let err = run_text("mov %r1, 4096\nstxb [%r1+0], %r1\nexit", &mut []).expect_err("scalar");
    assert!(
        matches!(
            err.kind,
            ExecErrorKind::NotAPointer {
                addr: 4096,
                size: 1
            }
        ),
        "{err}"
    );
}

#[test]
fn input_memory_is_bounded_by_its_length() {
    let mut mem = [1, 2, 3, 4];
    assert_eq!(
        run_text("ldxw %r0, [%r1+0]\nexit", &mut mem).expect("in bounds"),
        0x0403_0201
    );
    let err = run_text("ldxw %r0, [%r1+1]\nexit", &mut mem).expect_err("one byte past the end");
    assert!(
        matches!(err.kind, ExecErrorKind::OutOfBounds { region_len: 4, .. }),
        "{err}"
    );
    assert_eq!(
        run_text("stb [%r1+3], 9\nmov %r0, %r2\nexit", &mut mem).expect("store"),
        4,
        "r2 is the length"
    );
    assert_eq!(mem[3], 9);
}

#[test]
fn a_callee_frame_is_stale_after_it_returns() {
    let source = "call local f\nldxdw %r0, [%r0+0]\nexit\nf:\nmov %r0, %r10\nadd %r0, -8\nstdw [%r0+0], 1\nexit";
    let err = run_text(source, &mut []).expect_err("pointer into a returned frame");
    assert_eq!(err.pc, 1);
    assert!(
        matches!(err.kind, ExecErrorKind::StaleFrame { depth: 0, .. }),
        "{err}"
    );
}

#[test]
fn callees_get_their_own_frame_and_callers_keep_r6_to_r9() {
    let source = "mov %r6, 6\nstdw [%r10-8], 5\ncall local f\nldxdw %r1, [%r10-8]\nadd %r0, %r1\nadd %r0, %r6\nexit\n\
                  f:\nmov %r6, 100\nstdw [%r10-8], 7\nldxdw %r0, [%r10-8]\nexit";
    assert_eq!(run_text(source, &mut []).expect("runs"), 7 + 5 + 6);
}

#[test]
fn recursion_stops_at_the_frame_limit() {
    let err = run_text("f:\ncall local f\nexit", &mut []).expect_err("unbounded recursion");
    assert_eq!(err.kind, ExecErrorKind::CallDepth);
}

#[test]
fn an_endless_loop_exhausts_the_budget() {
    let mut vm = Vm::new(Config {
        budget: 1000,
        ..Config::default()
    });
    let err = vm
        .run(
            &program("l:\nja l\nexit"),
            &mut [],
            &mut NoMaps,
            &mut NoObserver,
        )
        .expect_err("loops");
    assert_eq!(err.kind, ExecErrorKind::Budget(1000));
    // Checked at the backward jump: at most one straight-line stretch past the budget.
    assert!(
        (1000..=1000 + 2).contains(&vm.executed),
        "executed {}",
        vm.executed
    );
}

#[test]
fn without_maps_map_loads_are_refused() {
    let insns: Vec<Insn> = Insn::ld_map_fd(1, 3)
        .into_iter()
        .chain([Insn::exit()])
        .collect();
    let err = run(&Program::new(&insns).expect("valid"), &mut []).expect_err("no maps");
    assert!(matches!(err.kind, ExecErrorKind::MapAccess(_)), "{err}");
}

fn lookup_program(fd: i32, index: i32, helper: i32) -> Vec<Insn> {
    let mut insns = vec![
        Insn::st_mem(crate::isa::BPF_W, 10, -4, index),
        Insn::mov64_reg(2, 10),
        Insn::alu64_imm(crate::isa::BPF_ADD, 2, -4),
    ];
    insns.extend(Insn::ld_map_fd(1, fd));
    insns.extend([
        Insn::call_helper(helper),
        Insn::jmp_imm(crate::isa::BPF_JEQ, 0, 0, 3),
        Insn::ldx_mem(crate::isa::BPF_DW, 1, 0, 0),
        Insn::alu64_imm(crate::isa::BPF_ADD, 1, 1),
        Insn::stx_mem(crate::isa::BPF_DW, 0, 1, 0),
        Insn::exit(),
    ]);
    insns
}

#[test]
fn map_lookup_returns_a_value_pointer_that_loads_and_stores_go_through() {
    let mut env = FakeArrays::new();
    let fd = env.add_array(8, 4);
    env.value_mut(fd, 2)
        .expect("index 2")
        .copy_from_slice(&41u64.to_le_bytes());
    for helper in [
        1,
        DirectCall {
            map: MapImpl::Array,
            func: MapFn::Lookup,
        }
        .imm(),
    ] {
        let program = Program::new(&lookup_program(fd, 2, helper)).expect("valid");
        let r0 = Vm::default()
            .run(&program, &mut [], &mut env, &mut NoObserver)
            .expect("runs");
        assert_ne!(r0, 0, "lookup of index 2 hits");
    }
    assert_eq!(
        env.value(fd, 2).expect("index 2"),
        &43u64.to_le_bytes(),
        "both runs incremented the value"
    );
    let program = Program::new(&lookup_program(fd, 4, 1)).expect("valid");
    assert_eq!(
        Vm::default()
            .run(&program, &mut [], &mut env, &mut NoObserver)
            .expect("runs"),
        0,
        "index 4 misses"
    );
}

#[test]
fn a_value_pointer_of_a_freed_map_faults_as_use_after_free() {
    /// Frees the map right after the lookup: the next access uses a stale pointer.
    struct FreeAfterLookup(FakeArrays, i32);
    impl MapEnv for FreeAfterLookup {
        fn map_from_fd(&mut self, fd: i32) -> EnvResult<u64> {
            self.0.map_from_fd(fd)
        }
        fn map_value_from_fd(&mut self, fd: i32, off: u32) -> EnvResult<u64> {
            self.0.map_value_from_fd(fd, off)
        }
        fn map_key_size(&mut self, map: Ptr) -> EnvResult<u32> {
            self.0.map_key_size(map)
        }
        fn map_value_size(&mut self, map: Ptr) -> EnvResult<u32> {
            self.0.map_value_size(map)
        }
        fn map_lookup(&mut self, map: Ptr, key: &[u8]) -> EnvResult<u64> {
            let value = self.0.map_lookup(map, key);
            self.0.free(self.1);
            value
        }
        fn map_update(&mut self, map: Ptr, key: &[u8], value: &[u8], flags: u64) -> EnvResult<i64> {
            self.0.map_update(map, key, value, flags)
        }
        fn map_delete(&mut self, map: Ptr, key: &[u8]) -> EnvResult<i64> {
            self.0.map_delete(map, key)
        }
        fn load(&mut self, ptr: Ptr, size: u8) -> EnvResult<u64> {
            self.0.load(ptr, size)
        }
        fn store(&mut self, ptr: Ptr, size: u8, value: u64) -> EnvResult<()> {
            self.0.store(ptr, size, value)
        }
    }
    let mut arrays = FakeArrays::new();
    let fd = arrays.add_array(8, 4);
    let mut env = FreeAfterLookup(arrays, fd);
    let program = Program::new(&lookup_program(fd, 1, 1)).expect("valid");
    let err = Vm::default()
        .run(&program, &mut [], &mut env, &mut NoObserver)
        .expect_err("stale value pointer");
    assert_eq!(err.pc, 7, "the load after the NULL check");
    assert_eq!(
        err.fault().map(|fault| fault.kind()),
        Some("use_after_free"),
        "{err}"
    );
}

#[test]
fn map_value_accesses_past_the_value_area_are_out_of_bounds() {
    let mut env = FakeArrays::new();
    let fd = env.add_array(8, 1);
    let mut insns = lookup_program(fd, 0, 1);
    insns[6] = Insn::ldx_mem(crate::isa::BPF_DW, 1, 0, 4); // straddles the end of the only value
    let err = Vm::default()
        .run(
            &Program::new(&insns).expect("valid"),
            &mut [],
            &mut env,
            &mut NoObserver,
        )
        .expect_err("oob");
    assert_eq!(err.pc, 6);
    assert!(
        matches!(err.kind, ExecErrorKind::OutOfBounds { .. }),
        "{err}"
    );
}

#[test]
fn the_observer_sees_every_executed_instruction_with_registers_and_stack() {
    #[derive(Default)]
    struct Trace(Vec<(usize, u64, u8)>);
    impl Observer for Trace {
        fn before(&mut self, step: &StepView<'_>) {
            let top = step.frame(0).expect("frame 0 is live")[STACK_SIZE - 1];
            self.0.push((step.pc, step.regs[0], top));
        }
    }
    let mut trace = Trace::default();
    let program = program("mov %r0, 7\nstb [%r10-1], 9\nja +1\nmov %r0, 0\nexit");
    let r0 = Vm::default()
        .run(&program, &mut [], &mut NoMaps, &mut trace)
        .expect("runs");
    assert_eq!(r0, 7);
    assert_eq!(
        trace.0,
        vec![(0, 0, 0), (1, 7, 0), (2, 7, 9), (4, 7, 9)],
        "pcs, r0 and the stack byte before each step"
    );
}

#[test]
fn division_and_modulo_by_zero_follow_the_isa() {
    assert_eq!(
        run_text("mov %r0, 7\nmov %r1, 0\ndiv %r0, %r1\nexit", &mut []).expect("runs"),
        0
    );
    assert_eq!(
        run_text("mov %r0, 7\nmov %r1, 0\nmod %r0, %r1\nexit", &mut []).expect("runs"),
        7
    );
    assert_eq!(
        run_text(
            "lddw %r0, 0x100000007\nmov %r1, 0\nmod32 %r0, %r1\nexit",
            &mut []
        )
        .expect("runs"),
        7,
        "32-bit mod truncates"
    );
    assert_eq!(
        run_text("lddw %r0, 0x8000000000000000\nsdiv %r0, -1\nexit", &mut []).expect("runs"),
        1 << 63
    );
    assert_eq!(
        run_text("lddw %r0, 0x8000000000000000\nsmod %r0, -1\nexit", &mut []).expect("runs"),
        0
    );
}

#[test]
fn bound_map_loads_run_without_asking_for_the_fd_and_still_fault_after_free() {
    let mut env = FakeArrays::new();
    let fd = env.add_array(8, 4);
    let mut program = Program::new(&lookup_program(fd, 1, 1)).expect("valid");
    program.bind_maps(&mut env).expect("fd resolves");
    let r0 = Vm::default()
        .run(&program, &mut [], &mut env, &mut NoObserver)
        .expect("runs");
    assert_ne!(r0, 0, "lookup through the bound map pointer hits");
    assert_eq!(env.value(fd, 1).expect("index 1"), &1u64.to_le_bytes());
    env.free(fd);
    let err = Vm::default()
        .run(&program, &mut [], &mut env, &mut NoObserver)
        .expect_err("map freed");
    assert_eq!(err.pc, 5, "the helper call on the stale map pointer");
    assert_eq!(
        err.fault().map(|fault| fault.kind()),
        Some("use_after_free"),
        "{err}"
    );
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    /// Instructions biased toward valid opcodes, small registers and small offsets, so random
    /// programs decode often enough to reach the interpreter.
    fn insn() -> impl Strategy<Value = Insn> {
        let codes = prop::sample::select(vec![
            0x07u8, 0x0f, 0x17, 0x1f, 0x27, 0x37, 0x3f, 0x47, 0x57, 0x67, 0x77, 0x87, 0x97, 0x9f,
            0xa7, 0xb7, 0xbf, 0xc7, 0xd4, 0xdc, 0xd7, 0x04, 0x0c, 0x34, 0x3c, 0x94, 0x9c, 0xb4,
            0xbc, 0x18, 0x61, 0x69, 0x71, 0x79, 0x81, 0x89, 0x91, 0x62, 0x6a, 0x72, 0x7a, 0x63,
            0x6b, 0x73, 0x7b, 0xc3, 0xdb, 0x05, 0x06, 0x15, 0x1d, 0x25, 0x2d, 0x55, 0x5d, 0x65,
            0xa5, 0xad, 0x16, 0x1e, 0x85, 0x8d, 0x95, 0x00, 0xff,
        ]);
        (
            codes,
            0u8..12,
            0u8..12,
            -12i16..12,
            prop_oneof![-600i32..600, any::<i32>()],
        )
            .prop_map(|(code, dst, src, off, imm)| Insn::new(code, dst, src, off, imm))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn random_programs_end_in_a_result_or_an_error_never_a_panic(
            insns in prop::collection::vec(insn(), 1..24),
            mem in prop::collection::vec(any::<u8>(), 0..16),
        ) {
            let mut env = FakeArrays::new();
            env.add_array(8, 2);
            if let Ok(program) = Program::new(&insns) {
                let mut mem = mem;
                let mut vm = Vm::new(Config { budget: 10_000, ..Config::default() });
                let _ = vm.run(&program, &mut mem, &mut env, &mut NoObserver);
                let _ = crate::bpf::print::dump_xlated(&insns, &crate::bpf::print::DefaultSymbols);
                let text = crate::bpf::asm::disassemble(&insns).expect("decoded programs disassemble");
                if !text.contains('#') {
                    prop_assert_eq!(assemble(&text).expect("own output assembles"), insns);
                }
            }
        }

        #[test]
        fn the_assembler_refuses_garbage_without_panicking(text in "[ -~\n]{0,80}") {
            let _ = assemble(&text);
        }

        #[test]
        fn the_assembler_survives_mangled_real_lines(
            line in prop::sample::select(vec!["ldxw %r0, [%r1+4]", "lock fetch add [%r10-8], %r1", "jne %r0, 0x10, +3",
                "lddw %r0, 0x1122334455667788", "call local f", "movsx1632 %r1, %r2", "stb [%r10-1], 7"]),
            cut in 0usize..40,
            junk in "[\\[\\]%r+\\-,:0-9a-z ]{0,6}",
        ) {
            let cut = cut.min(line.len());
            let _ = assemble(&format!("{}{}{}\nexit\nf:\nexit", &line[..cut], junk, &line[cut..]));
        }
    }
}

#[test]
fn fused_loop_control_matches_plain_execution_including_jumps_into_the_pair() {
    /// Observing forces the plain (unfused) code.
    struct Count(u64);
    impl Observer for Count {
        fn before(&mut self, _step: &StepView<'_>) {
            self.0 += 1;
        }
    }
    // `mov; add` and `sub; jne` fuse; the `jlt` of the `add; jlt` pair is also a jump target
    // (`mid`), entered without its `add`.
    let source =
        "mov %r0, 0\nmov %r3, 0\nja mid\nouter:\nmov %r2, 10\nloop:\nmov %r4, %r2\nadd %r4, 0\nadd %r0, %r4\nsub %r2, 1\n\
                  jne %r2, 0, loop\nadd %r3, 1\nmid:\njlt %r3, 3, outer\nexit";
    let program = program(source);
    let mut plain = Vm::default();
    let mut count = Count(0);
    let observed = plain
        .run(&program, &mut [], &mut NoMaps, &mut count)
        .expect("runs");
    let mut fused = Vm::default();
    let unobserved = fused
        .run(&program, &mut [], &mut NoMaps, &mut NoObserver)
        .expect("runs");
    assert_eq!(observed, 3 * 55, "three rounds of 10 + 9 + ... + 1");
    assert_eq!(observed, unobserved, "fusion must not change the result");
    assert_eq!(
        count.0, plain.executed,
        "the observer saw every executed instruction"
    );
    assert_eq!(
        fused.executed, plain.executed,
        "a fused pair counts as two instructions"
    );
}

/// [`FakeArrays`] with the trait's default `map_lookup_at` (key size, key read, lookup as three
/// calls): the reference the one-call lookup must agree with.
struct ThreeCallLookup(FakeArrays);

impl MapEnv for ThreeCallLookup {
    fn map_from_fd(&mut self, fd: i32) -> EnvResult<u64> {
        self.0.map_from_fd(fd)
    }
    fn map_value_from_fd(&mut self, fd: i32, off: u32) -> EnvResult<u64> {
        self.0.map_value_from_fd(fd, off)
    }
    fn map_key_size(&mut self, map: Ptr) -> EnvResult<u32> {
        self.0.map_key_size(map)
    }
    fn map_value_size(&mut self, map: Ptr) -> EnvResult<u32> {
        self.0.map_value_size(map)
    }
    fn map_lookup(&mut self, map: Ptr, key: &[u8]) -> EnvResult<u64> {
        self.0.map_lookup(map, key)
    }
    fn map_update(&mut self, map: Ptr, key: &[u8], value: &[u8], flags: u64) -> EnvResult<i64> {
        self.0.map_update(map, key, value, flags)
    }
    fn map_delete(&mut self, map: Ptr, key: &[u8]) -> EnvResult<i64> {
        self.0.map_delete(map, key)
    }
    fn load(&mut self, ptr: Ptr, size: u8) -> EnvResult<u64> {
        self.0.load(ptr, size)
    }
    fn store(&mut self, ptr: Ptr, size: u8, value: u64) -> EnvResult<()> {
        self.0.store(ptr, size, value)
    }
}

/// `*(u32 *)(r10 - 4) = 3; <set r2>; r1 = map[fd]; r0 = lookup(r1, r2); exit`, then `tail`
/// (subprograms).
fn lookup_with_key(fd: i32, set_r2: &[Insn], helper: i32, tail: &[Insn]) -> Vec<Insn> {
    let mut insns = vec![Insn::st_mem(crate::isa::BPF_W, 10, -4, 3)];
    insns.extend_from_slice(set_r2);
    insns.extend(Insn::ld_map_fd(1, fd));
    insns.extend([Insn::call_helper(helper), Insn::exit()]);
    insns.extend_from_slice(tail);
    insns
}

#[test]
fn the_one_call_lookup_refuses_what_the_three_call_lookup_refuses_with_the_same_error() {
    use crate::arena::Handle;
    use crate::isa::BPF_ADD;
    let lookup = 1;
    let htab_elem = DirectCall {
        map: MapImpl::Htab,
        func: MapFn::LookupElem,
    }
    .imm();
    let r2_stack = |off: i32| [Insn::mov64_reg(2, 10), Insn::alu64_imm(BPF_ADD, 2, off)];
    let r2_ctx = |off: i32| [Insn::mov64_reg(2, 1), Insn::alu64_imm(BPF_ADD, 2, off)];
    let other = Ptr::map(Handle { index: 7, gen: 0 }, 0).encode();
    // The callee (at 7, after the 7 slots of the main program) leaves r0 pointing into its own
    // frame, which is stale after it returns.
    let stale_frame_key = [Insn::call_local(5), Insn::mov64_reg(2, 0)];
    let callee = [
        Insn::mov64_reg(0, 10),
        Insn::alu64_imm(BPF_ADD, 0, -8),
        Insn::exit(),
    ];
    type Case = (&'static str, Vec<Insn>, bool, fn(&ExecErrorKind) -> bool);
    let cases: Vec<Case> = vec![
        (
            "key straddles the top of the stack",
            lookup_with_key(0, &r2_stack(-2), lookup, &[]),
            false,
            |k| {
                matches!(
                    k,
                    ExecErrorKind::OutOfBounds {
                        size: 4,
                        region_len: 512,
                        ..
                    }
                )
            },
        ),
        (
            "key at the frame pointer (past the stack)",
            lookup_with_key(0, &r2_stack(0), lookup, &[]),
            false,
            |k| matches!(k, ExecErrorKind::OutOfBounds { size: 4, .. }),
        ),
        (
            "key below the stack (the borrow leaves the pointer encoding)",
            lookup_with_key(0, &r2_stack(-516), lookup, &[]),
            false,
            |k| matches!(k, ExecErrorKind::NotAPointer { size: 4, .. }),
        ),
        (
            "NULL key",
            lookup_with_key(0, &[Insn::mov64_imm(2, 0)], lookup, &[]),
            false,
            |k| *k == ExecErrorKind::NullDeref { addr: 0, size: 4 },
        ),
        (
            "scalar key",
            lookup_with_key(0, &[Insn::mov64_imm(2, 4096)], lookup, &[]),
            false,
            |k| {
                *k == ExecErrorKind::NotAPointer {
                    addr: 4096,
                    size: 4,
                }
            },
        ),
        (
            "key straddles the end of the input",
            lookup_with_key(0, &r2_ctx(3), lookup, &[]),
            false,
            |k| matches!(k, ExecErrorKind::OutOfBounds { region_len: 6, .. }),
        ),
        (
            "key in a returned callee's frame",
            lookup_with_key(0, &stale_frame_key, lookup, &callee),
            false,
            |k| matches!(k, ExecErrorKind::StaleFrame { depth: 0, .. }),
        ),
        (
            "stale map pointer",
            lookup_with_key(0, &r2_stack(-4), lookup, &[]),
            true,
            |k| matches!(k, ExecErrorKind::Fault(f) if f.kind() == "use_after_free"),
        ),
        (
            "stale map pointer and a bad key: the map is checked first",
            lookup_with_key(0, &[Insn::mov64_imm(2, 0)], lookup, &[]),
            true,
            |k| matches!(k, ExecErrorKind::Fault(f) if f.kind() == "use_after_free"),
        ),
        (
            "pointer to a map that does not exist",
            {
                let mut insns = lookup_with_key(0, &r2_stack(-4), lookup, &[]);
                let [lo, hi] = Insn::ld_imm64(1, other);
                insns[3] = lo;
                insns[4] = hi;
                insns
            },
            false,
            |k| matches!(k, ExecErrorKind::MapAccess(what) if what.contains("no such map")),
        ),
        (
            "r1 is not a map pointer",
            {
                let mut insns = lookup_with_key(0, &r2_stack(-4), lookup, &[]);
                insns[3] = Insn::mov64_reg(1, 10);
                insns[4] = Insn::mov64_imm(0, 0);
                insns
            },
            false,
            |k| matches!(k, ExecErrorKind::BadArgument { arg: 1, .. }),
        ),
        (
            "inlined hash lookup on a world without hash maps",
            lookup_with_key(0, &r2_stack(-4), htab_elem, &[]),
            false,
            |k| matches!(k, ExecErrorKind::MapAccess(what) if what.contains("no hash maps")),
        ),
    ];
    for (name, insns, free_map, expected) in cases {
        let mut one_call = FakeArrays::new();
        let mut three_calls = ThreeCallLookup(FakeArrays::new());
        let fd = one_call.add_array(8, 4);
        assert_eq!(three_calls.0.add_array(8, 4), fd);
        let mut one_program = Program::new(&insns).expect(name);
        let mut three_program = one_program.clone();
        one_program.bind_maps(&mut one_call).expect(name);
        three_program.bind_maps(&mut three_calls).expect(name);
        if free_map {
            one_call.free(fd);
            three_calls.0.free(fd);
        }
        let mut ctx = [0u8; 6];
        let fast = Vm::default()
            .run(&one_program, &mut ctx, &mut one_call, &mut NoObserver)
            .expect_err(name);
        let reference = Vm::default()
            .run(&three_program, &mut ctx, &mut three_calls, &mut NoObserver)
            .expect_err(name);
        assert!(expected(&fast.kind), "{name}: unexpected error {fast}");
        assert_eq!(
            fast, reference,
            "{name}: one-call and three-call lookups differ"
        );
        assert_eq!(
            one_call.lookups, 0,
            "{name}: a refused lookup counts nothing"
        );
    }
}

#[test]
fn the_one_call_lookup_finds_what_the_three_call_lookup_finds() {
    let mut one_call = FakeArrays::new();
    let mut three_calls = ThreeCallLookup(FakeArrays::new());
    let fd = one_call.add_array(8, 4);
    three_calls.0.add_array(8, 4);
    for index in [0, 3, 4, -1] {
        let program = Program::new(&lookup_program(fd, index, 1)).expect("valid");
        let fast = Vm::default().run(&program, &mut [], &mut one_call, &mut NoObserver);
        let reference = Vm::default().run(&program, &mut [], &mut three_calls, &mut NoObserver);
        assert_eq!(fast, reference, "index {index}");
    }
    assert_eq!(one_call.lookups, 4, "every lookup reached the map");
    assert_eq!(one_call.value(fd, 3), three_calls.0.value(fd, 3));
}

#[test]
fn a_key_inside_a_map_value_still_goes_through_the_map_world() {
    // Look up index 2 of the map with the key read from value 1 of the same map (a map-region
    // key, which the one-call path leaves to the general path and `MapEnv::load`).
    let mut env = FakeArrays::new();
    let fd = env.add_array(8, 4);
    env.value_mut(fd, 1)
        .expect("index 1")
        .copy_from_slice(&2u64.to_le_bytes());
    env.value_mut(fd, 2)
        .expect("index 2")
        .copy_from_slice(&77u64.to_le_bytes());
    let mut insns = vec![
        Insn::st_mem(crate::isa::BPF_W, 10, -4, 1),
        Insn::mov64_reg(2, 10),
        Insn::alu64_imm(crate::isa::BPF_ADD, 2, -4),
    ];
    insns.extend(Insn::ld_map_fd(1, fd));
    insns.extend([Insn::call_helper(1), Insn::mov64_reg(2, 0)]);
    insns.extend(Insn::ld_map_fd(1, fd));
    insns.extend([
        Insn::call_helper(1),
        Insn::ldx_mem(crate::isa::BPF_DW, 0, 0, 0),
        Insn::exit(),
    ]);
    let r0 = Vm::default()
        .run(
            &Program::new(&insns).expect("valid"),
            &mut [],
            &mut env,
            &mut NoObserver,
        )
        .expect("runs");
    assert_eq!(r0, 77, "the second lookup used the key stored in value 1");
}

#[test]
fn frame_pointer_accesses_reach_the_running_frame_not_the_first() {
    // The caller keeps 1 at its r10-8 and passes its address; the callee writes 2 at its own
    // r10-8 and returns own * 10 + the caller's; the caller adds its slot back: 21 + 1.
    let source =
        "stdw [%r10-8], 1\nmov %r1, %r10\nadd %r1, -8\ncall local f\nldxdw %r2, [%r10-8]\n\
                  add %r0, %r2\nexit\nf:\nstdw [%r10-8], 2\nldxdw %r0, [%r10-8]\nmul %r0, 10\n\
                  ldxdw %r2, [%r1+0]\nadd %r0, %r2\nexit";
    assert_eq!(run_text(source, &mut []).expect("runs"), 22);
}

#[test]
fn a_program_that_writes_r10_has_its_accesses_through_r10_checked_where_r10_points() {
    // Unverified code may move r10 (the verifier refuses it): here into the input, so the
    // store lands in the input and the load reads it back from there.
    let source = "mov %r10, %r1\nadd %r10, 8\nstb [%r10-1], 5\nldxb %r0, [%r1+7]\nexit";
    let mut mem = [0u8; 8];
    assert_eq!(run_text(source, &mut mem).expect("runs"), 5);
    assert_eq!(mem[7], 5, "the byte went to the input, not the stack");
    let err = run_text("mov %r10, 0\nldxdw %r0, [%r10-8]\nexit", &mut [])
        .expect_err("r10 no longer points anywhere");
    assert!(
        matches!(err.kind, ExecErrorKind::NotAPointer { .. }),
        "{err}"
    );
}
