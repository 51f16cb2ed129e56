//! The kernel's own execution time (`BPF_PROG_TEST_RUN` with `repeat`, JIT as the machine has it)
//! next to mimic's interpreter, on the same programs: the ratio is the speed limit to aim at.
//! Run with `cargo bench -p mimic-sim --bench kernel_vs_interp`; prints one line per program and
//! skips with one line when bpf() is refused.
use mimic_core::bpf::exec::{run, Program};
use mimic_core::isa::{self, Insn};
use mimic_sim::kernel::{KernelSys, BPF_PROG_TYPE_SOCKET_FILTER};
use std::time::Instant;

/// Runs the kernel times per measurement (it reports the mean).
const KERNEL_REPEAT: u32 = 100_000;
/// Runs of mimic's interpreter per measurement.
const INTERP_RUNS: u32 = 20_000;
/// The test-run packet: a socket filter needs at least an Ethernet header.
const PACKET: [u8; 64] = [0; 64];

/// `r0 = 0; for r1 in n..0 { r0 += r1; r0 ^= 0x55; r0 *= 3 }`: an ALU loop of `4n + 3` insns run.
fn alu_loop(n: i32) -> Vec<Insn> {
    vec![
        Insn::mov64_imm(0, 0),
        Insn::mov64_imm(1, n),
        Insn::alu64_reg(isa::BPF_ADD, 0, 1),
        Insn::alu64_imm(isa::BPF_XOR, 0, 0x55),
        Insn::alu64_imm(isa::BPF_MUL, 0, 3),
        Insn::alu64_imm(isa::BPF_SUB, 1, 1),
        Insn::jmp_imm(isa::BPF_JNE, 1, 0, -5),
        Insn::exit(),
    ]
}

fn main() {
    let Some(mut kernel) = KernelSys::or_skip("kernel vs interpreter bench") else {
        return;
    };
    println!(
        "{:<16} {:>10} {:>12} {:>12} {:>8}",
        "program", "insns run", "kernel ns", "mimic ns", "ratio"
    );
    for (name, n) in [
        ("alu_loop_10", 10),
        ("alu_loop_100", 100),
        ("alu_loop_1000", 1000),
    ] {
        let insns = alu_loop(n);
        let prog = match kernel.prog_load(BPF_PROG_TYPE_SOCKET_FILTER, &insns, 0, 0) {
            Ok((prog, _)) => prog,
            Err(failure) => {
                println!("{name}: the kernel refused it: {}", failure.error);
                continue;
            }
        };
        let kernel_ns = kernel.ns_per_run(prog, &PACKET, &[], KERNEL_REPEAT);
        let kernel_r0 = kernel.test_run(prog, &PACKET, &[], 1).map(|r| r.retval);
        let _ = mimic_core::uapi::BpfSys::close(&mut kernel, prog);
        let program = match Program::new(&insns) {
            Ok(p) => p,
            Err(e) => {
                println!("{name}: mimic cannot decode it: {e}");
                continue;
            }
        };
        let mut r0 = 0;
        let start = Instant::now();
        for _ in 0..INTERP_RUNS {
            r0 = run(&program, &mut []).unwrap_or(u64::MAX);
        }
        let mimic_ns = start.elapsed().as_nanos() as f64 / INTERP_RUNS as f64;
        match (kernel_ns, kernel_r0) {
            (Ok(k), Ok(kr0)) => {
                if kr0 != r0 as u32 {
                    println!("{name}: r0 differs: kernel {kr0:#x}, mimic {r0:#x}");
                }
                println!(
                    "{name:<16} {:>10} {:>12} {:>12.0} {:>8.1}",
                    4 * n + 3,
                    k,
                    mimic_ns,
                    mimic_ns / (k.max(1) as f64)
                );
            }
            (Err(e), _) | (_, Err(e)) => println!("{name}: test run failed: {e}"),
        }
    }
}
