//! Interpreter speed: mimic's checked executor against rbpf on the same program bytes: 0.3's
//! interpreter, and 0.4.1's (the latest release) interpreter and x86-64 JIT, reporting ns per
//! executed instruction and the ratios.
//!
//! Programs:
//! * `alu_loop`: 64-bit arithmetic in a counted loop (registers only), four dependent
//!   instructions per iteration through r0.
//! * `alu_mix`: similar arithmetic spread over four registers (short dependency chains).
//! * `mem_loop`: reads a 4 KiB input buffer 8 bytes at a time, spilling to and reloading from
//!   the stack on every iteration.
//! * `branch_loop`: register compares with two paths per iteration (a Collatz-like step on
//!   odd and even values, then a compare that skips or takes an add).
//! * `map_lookup_loop`: `bpf_map_lookup_elem` on a 16-entry array map with a stack key, a NULL
//!   check and a load from the value, in a loop. mimic runs it against its fake array world
//!   (`FakeArrays`: generation-checked map pointers, bounds-checked value loads). rbpf has no
//!   maps: its helper 1 reads the 4-byte key through the key pointer, bounds-checks it and
//!   returns the address of a static 16-entry `u32` table (registered as allowed memory), i.e.
//!   the same work without the checks mimic does. The `lddw r1, map[fd]` is the same bytes for
//!   both; mimic resolves it once before the runs (`Program::bind_maps`, as the kernel does at
//!   load time) and rbpf treats it as a plain 64-bit constant.
//!
//! Run: `cargo bench -p mimic-core --bench interp`. Besides criterion's per-program timings
//! (throughput in instructions), the bench prints a summary table with ns/insn and the ratio.
//! Benches are not tests: nothing here asserts on speed.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mimic_core::bpf::asm::assemble;
use mimic_core::bpf::exec::fake::FakeArrays;
use mimic_core::bpf::exec::{NoMaps, NoObserver, Program, Vm};
use mimic_core::isa::{to_bytes, Insn};
use std::hint::black_box;
use std::time::Instant;

const ALU_LOOP: &str = "
    mov %r0, 0
    mov %r2, 1000
    mov %r3, 7
loop:
    add %r0, %r2
    xor %r0, 0x5a5a
    mul %r3, 3
    and %r3, 0xffff
    add %r0, %r3
    rsh %r0, 1
    sub %r2, 1
    jne %r2, 0, loop
    exit";

/// The same kind of work spread over four registers: chains of at most two dependent
/// instructions per iteration instead of `alu_loop`'s four through r0.
const ALU_MIX: &str = "
    mov %r2, 1000
    mov %r3, 1
    mov %r4, 2
    mov %r5, 3
    mov %r6, 4
loop:
    add %r3, %r2
    xor %r4, 0x5a5a
    mul %r5, 3
    lsh %r6, 1
    or %r6, 1
    rsh %r4, 1
    add %r3, 7
    sub %r2, 1
    jne %r2, 0, loop
    mov %r0, %r3
    add %r0, %r4
    add %r0, %r5
    add %r0, %r6
    exit";

/// Two paths per iteration, chosen by the data: `jeq` on the low bit, then `jgt` of two
/// registers.
const BRANCH_LOOP: &str = "
    mov %r0, 0
    mov %r2, 1000
    mov %r3, 12345
loop:
    mov %r4, %r3
    and %r4, 1
    jeq %r4, 0, even
    add %r0, %r3
    mul %r3, 3
    add %r3, 1
    ja next
even:
    sub %r0, 7
    rsh %r3, 1
next:
    and %r3, 0xffff
    jgt %r0, %r3, skip
    add %r0, 1
skip:
    sub %r2, 1
    jne %r2, 0, loop
    exit";

/// Input buffer of `mem_loop`: 512 iterations of 8 bytes.
const MEM_SIZE: usize = 4096;

const MEM_LOOP: &str = "
    mov %r0, 0
    mov %r2, 0
    mov %r3, %r1
loop:
    ldxdw %r4, [%r3+0]
    add %r0, %r4
    stxdw [%r10-8], %r0
    ldxdw %r5, [%r10-8]
    xor %r0, %r5
    add %r3, 8
    add %r2, 1
    jlt %r2, 512, loop
    exit";

/// Entries of the array map of `map_lookup_loop`.
const MAP_ENTRIES: u32 = 16;

const MAP_LOOKUP_LOOP: &str = "
    mov %r6, 0
    mov %r7, 0
loop:
    mov %r8, %r7
    and %r8, 15
    stxw [%r10-4], %r8
    lddw %r1, 0          # becomes map[fd] below
    mov %r2, %r10
    add %r2, -4
    call 1
    jeq %r0, 0, miss
    ldxw %r4, [%r0+0]
    add %r6, %r4
miss:
    add %r7, 1
    jlt %r7, 500, loop
    mov %r0, %r6
    exit";

/// `MAP_LOOKUP_LOOP` with its `lddw` turned into the loader's `BPF_PSEUDO_MAP_FD` form.
fn map_lookup_loop(fd: i32) -> Vec<Insn> {
    let mut insns = assemble(MAP_LOOKUP_LOOP).expect("assembles");
    let at = insns
        .iter()
        .position(|insn| insn.is_lddw())
        .expect("has the map load");
    insns[at] = Insn::ld_map_fd(1, fd)[0];
    insns
}

/// rbpf's stand-in for the map: the values of a 16-entry `u32` array.
static RBPF_VALUES: [u32; MAP_ENTRIES as usize] =
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];

/// rbpf helper 1: reads the key, bounds-checks it, returns the value's address or 0.
fn rbpf_lookup(_map: u64, key: u64, _r3: u64, _r4: u64, _r5: u64) -> u64 {
    // SAFETY: rbpf passes r2, which the program set to r10 - 4, inside rbpf's live stack.
    let index = unsafe { (key as *const u32).read_unaligned() };
    match RBPF_VALUES.get(index as usize) {
        Some(value) => value as *const u32 as u64,
        None => 0,
    }
}

struct Case {
    name: &'static str,
    insns: Vec<Insn>,
    mem: Vec<u8>,
    env: FakeArrays,
    fd: Option<i32>,
}

fn cases() -> Vec<Case> {
    let mut env = FakeArrays::new();
    let fd = env.add_array(4, MAP_ENTRIES);
    for index in 0..MAP_ENTRIES {
        env.value_mut(fd, index)
            .expect("value")
            .copy_from_slice(&(index + 1).to_le_bytes());
    }
    let mem: Vec<u8> = (0..MEM_SIZE).map(|i| (i * 7 % 251) as u8).collect();
    vec![
        Case {
            name: "alu_loop",
            insns: assemble(ALU_LOOP).expect("assembles"),
            mem: Vec::new(),
            env: FakeArrays::new(),
            fd: None,
        },
        Case {
            name: "alu_mix",
            insns: assemble(ALU_MIX).expect("assembles"),
            mem: Vec::new(),
            env: FakeArrays::new(),
            fd: None,
        },
        Case {
            name: "branch_loop",
            insns: assemble(BRANCH_LOOP).expect("assembles"),
            mem: Vec::new(),
            env: FakeArrays::new(),
            fd: None,
        },
        Case {
            name: "mem_loop",
            insns: assemble(MEM_LOOP).expect("assembles"),
            mem,
            env: FakeArrays::new(),
            fd: None,
        },
        Case {
            name: "map_lookup_loop",
            insns: map_lookup_loop(fd),
            mem: Vec::new(),
            env,
            fd: Some(fd),
        },
    ]
}

fn run_mimic(vm: &mut Vm, program: &Program, case: &mut Case) -> u64 {
    let result = if case.fd.is_some() {
        vm.run(program, &mut case.mem, &mut case.env, &mut NoObserver)
    } else {
        vm.run(program, &mut case.mem, &mut NoMaps, &mut NoObserver)
    };
    result.expect("mimic runs the bench program")
}

fn rbpf_vm(bytes: &[u8]) -> rbpf::EbpfVmRaw<'_> {
    let mut vm = rbpf::EbpfVmRaw::new(Some(bytes)).expect("rbpf accepts the bench program");
    vm.register_helper(1, rbpf_lookup)
        .expect("helper registers");
    let addrs: Vec<u64> = RBPF_VALUES.iter().map(|v| v as *const u32 as u64).collect();
    vm.register_allowed_memory(&addrs);
    vm
}

/// The same for rbpf 0.4.1 (whose allowed memory is a range).
fn rbpf04_vm(bytes: &[u8]) -> rbpf04::EbpfVmRaw<'_> {
    let mut vm = rbpf04::EbpfVmRaw::new(Some(bytes)).expect("rbpf 0.4.1 accepts the program");
    vm.register_helper(1, rbpf_lookup)
        .expect("helper registers");
    let start = RBPF_VALUES.as_ptr() as u64;
    vm.register_allowed_memory(start..start + std::mem::size_of_val(&RBPF_VALUES) as u64);
    vm
}

/// A run of rbpf 0.4.1's JIT-compiled program.
fn run_jit(vm: &rbpf04::EbpfVmRaw<'_>, mem: &mut [u8]) -> u64 {
    // SAFETY: the machine code was compiled by rbpf from the same bytes both interpreters ran
    // to the same r0 (checked before any timing); it touches the input buffer, its own stack
    // and the helper's static table, all alive for the call.
    unsafe { vm.execute_program_jit(mem) }.expect("rbpf's JIT runs the bench program")
}

/// Rounds of the summary's alternating timing, and program runs per round (a round is a few
/// milliseconds: long enough to time, short enough to often fit between interruptions).
const SUMMARY_ROUNDS: usize = 60;
const RUNS_PER_ROUND: usize = 100;

fn per_insn(start: Instant, executed: u64) -> f64 {
    start.elapsed().as_nanos() as f64 / (RUNS_PER_ROUND as f64 * executed as f64)
}

fn bench(c: &mut Criterion) {
    let mut summary = Vec::new();
    for mut case in cases() {
        let mut program = Program::new(&case.insns).expect("decodes");
        // Map fds resolve once, at load time, as in the kernel (rbpf loads the same constant).
        program.bind_maps(&mut case.env).expect("map fds resolve");
        let bytes = to_bytes(&case.insns);
        let mut vm = Vm::default();
        let ours = run_mimic(&mut vm, &program, &mut case);
        let executed = vm.executed;
        let rbpf = rbpf_vm(&bytes);
        let mut rbpf_mem = case.mem.clone();
        let theirs = rbpf
            .execute_program(&mut rbpf_mem)
            .expect("rbpf runs the bench program");
        assert_eq!(
            ours, theirs,
            "{}: both interpreters must compute the same r0",
            case.name
        );
        let rbpf04 = rbpf04_vm(&bytes);
        let mut rbpf04_mem = case.mem.clone();
        let latest = rbpf04
            .execute_program(&mut rbpf04_mem)
            .expect("rbpf 0.4.1 runs the bench program");
        assert_eq!(
            ours, latest,
            "{}: rbpf 0.4.1 computes the same r0",
            case.name
        );
        let mut jit = rbpf04_vm(&bytes);
        jit.jit_compile()
            .expect("rbpf 0.4.1 compiles the bench program");
        let mut jit_mem = case.mem.clone();
        assert_eq!(
            ours,
            run_jit(&jit, &mut jit_mem),
            "{}: rbpf 0.4.1's JIT computes the same r0",
            case.name
        );
        if case.fd.is_some() {
            assert!(case.env.lookups > 0, "the map loop calls the helper");
        }

        let mut group = c.benchmark_group(case.name);
        group.throughput(Throughput::Elements(executed));
        group.bench_function("mimic", |b| {
            b.iter(|| black_box(run_mimic(&mut vm, &program, &mut case)))
        });
        group.bench_function("rbpf", |b| {
            b.iter(|| {
                black_box(
                    rbpf.execute_program(black_box(&mut rbpf_mem))
                        .expect("runs"),
                )
            })
        });
        group.bench_function("rbpf 0.4.1", |b| {
            b.iter(|| {
                black_box(
                    rbpf04
                        .execute_program(black_box(&mut rbpf04_mem))
                        .expect("runs"),
                )
            })
        });
        group.bench_function("rbpf 0.4.1 jit", |b| {
            b.iter(|| black_box(run_jit(&jit, black_box(&mut jit_mem))))
        });
        group.finish();

        // The summary: the two engines alternate in rounds and each keeps its fastest round,
        // which is robust against other processes on a shared machine (criterion's means are
        // not).
        let (mut mimic_ns, mut rbpf_ns) = (f64::MAX, f64::MAX);
        let (mut latest_ns, mut jit_ns) = (f64::MAX, f64::MAX);
        for _ in 0..SUMMARY_ROUNDS {
            let start = Instant::now();
            for _ in 0..RUNS_PER_ROUND {
                black_box(run_mimic(&mut vm, &program, &mut case));
            }
            mimic_ns = mimic_ns.min(per_insn(start, executed));
            let start = Instant::now();
            for _ in 0..RUNS_PER_ROUND {
                black_box(rbpf.execute_program(&mut rbpf_mem).expect("runs"));
            }
            rbpf_ns = rbpf_ns.min(per_insn(start, executed));
            let start = Instant::now();
            for _ in 0..RUNS_PER_ROUND {
                black_box(rbpf04.execute_program(&mut rbpf04_mem).expect("runs"));
            }
            latest_ns = latest_ns.min(per_insn(start, executed));
            let start = Instant::now();
            for _ in 0..RUNS_PER_ROUND {
                black_box(run_jit(&jit, &mut jit_mem));
            }
            jit_ns = jit_ns.min(per_insn(start, executed));
        }
        summary.push((case.name, executed, mimic_ns, rbpf_ns, latest_ns, jit_ns));
    }
    println!("\nfastest of {SUMMARY_ROUNDS} alternating rounds of {RUNS_PER_ROUND} runs each:");
    println!(
        "{:<16} {:>8} {:>7} {:>9} {:>11} {:>9} {:>10} {:>10} {:>9}",
        "program",
        "insns",
        "mimic",
        "rbpf 0.3",
        "rbpf 0.4.1",
        "0.4.1 jit",
        "vs 0.3",
        "vs 0.4.1",
        "jit gap"
    );
    for (name, executed, mimic_ns, rbpf_ns, latest_ns, jit_ns) in summary {
        println!(
            "{name:<16} {executed:>8} {mimic_ns:>7.2} {rbpf_ns:>9.2} {latest_ns:>11.2} {jit_ns:>9.2} \
             {:>9.1}x {:>9.1}x {:>8.1}x",
            rbpf_ns / mimic_ns,
            latest_ns / mimic_ns,
            mimic_ns / jit_ns
        );
    }
    println!(
        "(ns per instruction; vs: how many times faster mimic is; jit gap: how many times \
              slower mimic is than rbpf 0.4.1's JIT)"
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
