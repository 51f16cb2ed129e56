//! The verifier and fixup checks against the running kernel: they run (skipping cleanly when
//! bpf() is refused) and mimic never accepts a §9 case the kernel refuses.
#![cfg(feature = "kernel")]

use mimic_core::bpf::verifier::corpus::PtrCase;
use mimic_core::profile::KernelProfile;
use mimic_sim::kernel::profile::probed;
use mimic_sim::kernel::{verdicts, KernelSys};

#[test]
fn section_9_cases_get_the_kernels_verdict_and_none_is_accepted_only_by_mimic() {
    let Some(mut kernel) = KernelSys::or_skip("kernel_verdicts") else {
        return;
    };
    let profile = probed(&mut kernel);
    let checks = verdicts::run(&mut kernel, &[verdicts::section_9(&profile)], profile);
    let v = &checks[0];
    assert!(v.cases > 0, "no §9 case was compared: {v:?}");
    assert_eq!(
        v.disagreed.get("mimic more lenient (UNSOUND)"),
        None,
        "mimic accepts a §9 case the kernel refuses: {:#?}",
        v.examples
    );
    assert_eq!(
        v.disagreed.get("mimic stricter (incomplete)"),
        None,
        "mimic refuses a §9 case the kernel accepts: {:#?}",
        v.examples
    );
}

#[test]
fn generated_programs_get_the_kernels_verdict_fix_up_like_it_and_run_to_the_same_r0_ctx_and_maps() {
    /// Seeds: enough for a dozen or more accepted programs, few enough to stay quick.
    const SEEDS: u64 = 200;
    let Some(mut kernel) = KernelSys::or_skip("kernel_verdicts") else {
        return;
    };
    let profile = probed(&mut kernel);
    let checks = verdicts::run(&mut kernel, &[verdicts::generated(SEEDS)], profile);
    let (verdicts, fixups, exec) = (&checks[0], &checks[1], &checks[2]);
    assert!(
        verdicts.gating && exec.gating,
        "verdict and test-run lines gate kernel-check"
    );
    assert!(
        verdicts.passed(),
        "mimic's verdict or first message differs from the kernel's: {:#?}",
        verdicts.examples
    );
    assert!(
        fixups.cases > 0,
        "no generated program was accepted by both"
    );
    assert!(
        fixups.passed(),
        "fixed-up programs differ from the kernel's xlated dump: {:#?}",
        fixups.examples
    );
    assert!(
        exec.passed(),
        "test-run and mimic's executor disagree: {:#?}",
        exec.examples
    );
}

/// The `BPF_PROG_TYPE_SYSCALL` context rules mimic models, side by side with the kernel: each
/// program gets the same verdict (for refusals, the kernel's log holds mimic's message), and an
/// accepted one test-runs with contexts around its `max_ctx_offset` with the same outcome on
/// both (`EINVAL`, or the same r0 and the same context written back).
#[test]
fn syscall_context_rules_and_test_run_match_the_kernel() {
    use mimic_core::bpf::asm::assemble;
    use mimic_core::bpf::verifier::world::{prog_load, TestRunError};
    use mimic_core::bpf::verifier::{ProgType, VerifyOpts};
    use mimic_core::errno::Errno;
    use mimic_core::mutants::Mutants;
    use mimic_core::sync::Std;
    use mimic_core::sys::Process;
    use mimic_core::uapi::BpfSys;
    use mimic_core::world::WorldConfig;
    use mimic_sim::kernel::{KernelError, BPF_F_SLEEPABLE, BPF_PROG_TYPE_SYSCALL};
    let Some(mut kernel) = KernelSys::or_skip("kernel_verdicts") else {
        return;
    };
    let profile = probed(&mut kernel);
    let programs = [
        "ldxw %r0, [%r1+0]\nexit",
        "ldxh %r0, [%r1+2]\nexit",
        "ldxw %r0, [%r1+2]\nexit",
        "ldxdw %r0, [%r1+4]\nexit",
        "ldxb %r0, [%r1-1]\nexit",
        "ldxb %r0, [%r1+32767]\nexit",
        "ldxsw %r0, [%r1+8]\nexit",
        "ldxw %r2, [%r1+0]\nstxw [%r1+4], %r2\nmov %r0, 0\nexit",
        "stw [%r1+4], 7\nstdw [%r1+8], -1\nmov %r0, 1\nexit",
        "sth [%r1+1], 7\nmov %r0, 0\nexit",
        "add %r1, 4\nldxw %r0, [%r1+0]\nexit",
        "add %r1, -4\nldxw %r0, [%r1+0]\nexit",
        "mov %r2, 0\nlock add [%r1+0], %r2\nmov %r0, 0\nexit",
        "mov %r0, 7\nexit",
        "mov %r6, 1\nsub %r6, %r10\nmov %r0, 0\nexit",
        "mov %r6, 1\nsub32 %r6, %r10\nmov %r0, 0\nexit",
        "mov %r6, %r10\nsub %r6, %r1\nmov %r0, 0\nexit",
    ];
    let opts = VerifyOpts {
        prog_type: ProgType::Syscall,
        sleepable: true,
        profile,
        ..VerifyOpts::default()
    };
    let mut problems = Vec::new();
    for source in programs {
        let what = source.replace('\n', "; ");
        let insns = assemble(source).expect("test program assembles");
        let sys = Process::<Std>::create(Mutants::NONE, WorldConfig::default());
        let theirs = kernel.prog_load(BPF_PROG_TYPE_SYSCALL, &insns, 0, BPF_F_SLEEPABLE);
        let ours = prog_load(sys.world(), &insns, opts);
        let (prog, loaded) = match (theirs, ours) {
            (Ok((prog, _)), Ok(loaded)) => (prog, loaded),
            (Err(failure), Err(e)) => {
                let message = match &e {
                    mimic_core::bpf::verifier::world::LoadError::Rejected(r) => r.message.clone(),
                    other => other.to_string(),
                };
                if !failure.log.contains(&message) {
                    problems.push(format!(
                        "{what}: kernel log\n{}\nmimic {message:?}",
                        failure.log
                    ));
                }
                continue;
            }
            (Ok((prog, _)), Err(e)) => {
                let _ = kernel.close(prog);
                problems.push(format!("{what}: kernel accepts, mimic {e}"));
                continue;
            }
            (Err(failure), Ok(_)) => {
                problems.push(format!("{what}: mimic accepts, kernel {}", failure.error));
                continue;
            }
        };
        let max = loaded.verified.max_ctx_offset as usize;
        let mut lengths = vec![max, max + 8, 65_535, 65_536];
        if max > 0 {
            lengths.push(max - 1);
        }
        for len in lengths {
            let ctx: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let k = kernel.test_run(prog, &[], &ctx, 0);
            let mut our_ctx = ctx.clone();
            let m = loaded.test_run(sys.world(), &mut our_ctx);
            match (k, m) {
                (
                    Err(KernelError::Errno(Errno::EINVAL)),
                    Err(TestRunError::Errno(Errno::EINVAL)),
                ) => {}
                (Ok(run), Ok(r0)) if run.retval == r0 as u32 && run.ctx_after == our_ctx => {}
                (k, m) => problems.push(format!(
                    "{what}, ctx of {len} bytes: kernel {:?}, mimic {:?}",
                    k.map(|r| r.retval),
                    m
                )),
            }
        }
        let _ = kernel.close(prog);
        let _ = loaded.unload(sys.world());
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Programs whose fixups the shipped and generated sets do not reach: hash lookups with other
/// key sizes, a hash as the inner map of an array-of-maps (inlined against the meta's key size),
/// and dead code holding a map load and a helper call.
fn hash_and_dead_code_set() -> verdicts::ProgramSet {
    use mimic_core::bpf::verifier::{MapDesc, MapTable};
    use mimic_core::isa::*;
    use mimic_core::uapi::MapType;
    use verdicts::{Item, ProgramSet};
    const HASH_4: i32 = 1;
    const HASH_12: i32 = 2;
    const OUTER_OF_HASH: i32 = 3;
    let maps = MapTable(vec![
        (
            HASH_4,
            MapDesc::new(MapType::Hash, 4, 8, 4, 0).with_id(1, 0x3000_0100_0000_0000),
        ),
        (
            HASH_12,
            MapDesc::new(MapType::Hash, 12, 4, 4, 0).with_id(2, 0x3000_0200_0000_0000),
        ),
        (
            OUTER_OF_HASH,
            MapDesc::new(MapType::ArrayOfMaps, 4, 4, 2, 0)
                .with_meta(MapDesc::new(MapType::Hash, 4, 8, 4, 0))
                .with_id(3, 0x3000_0300_0000_0000),
        ),
    ]);
    // key 0 at r10-4, value 0x55 at r10-16; `r1` must hold the map.
    let key_and_value = [
        Insn::st_mem(BPF_W, 10, -4, 0),
        Insn::st_mem(BPF_DW, 10, -16, 0x55),
    ];
    let update_then_lookup = [
        Insn::mov64_reg(6, 1),
        Insn::mov64_reg(2, 10),
        Insn::alu64_imm(BPF_ADD, 2, -4),
        Insn::mov64_reg(3, 10),
        Insn::alu64_imm(BPF_ADD, 3, -16),
        Insn::mov64_imm(4, 0),
        Insn::call_helper(2),
        Insn::mov64_reg(1, 6),
        Insn::mov64_reg(2, 10),
        Insn::alu64_imm(BPF_ADD, 2, -4),
        Insn::call_helper(1),
        Insn::jmp_imm(BPF_JEQ, 0, 0, 2),
        Insn::ldx_mem(BPF_DW, 0, 0, 0),
        Insn::exit(),
        Insn::mov64_imm(0, 3),
        Insn::exit(),
    ];
    let mut hash_hit = key_and_value.to_vec();
    hash_hit.extend(Insn::ld_map_fd(1, HASH_4));
    hash_hit.extend(update_then_lookup);
    // A 12-byte key (value 16 bytes past the key's start) that is never stored: a miss.
    let mut hash_miss = vec![
        Insn::st_mem(BPF_DW, 10, -16, 0),
        Insn::st_mem(BPF_W, 10, -8, 0),
        Insn::mov64_reg(2, 10),
        Insn::alu64_imm(BPF_ADD, 2, -16),
    ];
    hash_miss.extend(Insn::ld_map_fd(1, HASH_12));
    hash_miss.extend([
        Insn::call_helper(1),
        Insn::jmp_imm(BPF_JNE, 0, 0, 2),
        Insn::mov64_imm(0, 7),
        Insn::exit(),
        Insn::ldx_mem(BPF_W, 0, 0, 0),
        Insn::exit(),
    ]);
    // inner = outer[0]; if (!inner) return 2; then the hash program on the inner map.
    let mut inner_hash = key_and_value.to_vec();
    inner_hash.extend([Insn::mov64_reg(2, 10), Insn::alu64_imm(BPF_ADD, 2, -4)]);
    inner_hash.extend(Insn::ld_map_fd(1, OUTER_OF_HASH));
    inner_hash.extend([
        Insn::call_helper(1),
        Insn::jmp_imm(BPF_JNE, 0, 0, 2),
        Insn::mov64_imm(0, 2),
        Insn::exit(),
        Insn::mov64_reg(1, 0),
    ]);
    inner_hash.extend(update_then_lookup);
    // r6 = 0; if r6 != 0 goto dead (a map load and a lookup); return 5.
    let mut dead = vec![
        Insn::mov64_imm(6, 0),
        Insn::st_mem(BPF_W, 10, -4, 0),
        Insn::jmp_imm(BPF_JNE, 6, 0, 2),
        Insn::mov64_imm(0, 5),
        Insn::exit(),
        Insn::mov64_reg(2, 10),
        Insn::alu64_imm(BPF_ADD, 2, -4),
    ];
    dead.extend(Insn::ld_map_fd(1, HASH_4));
    dead.extend([Insn::call_helper(1), Insn::mov64_imm(0, 0), Insn::exit()]);
    let item = |name: &str, prog: Vec<Insn>| Item {
        name: name.to_string(),
        prog,
        state_freq: false,
    };
    ProgramSet {
        label: "hash-and-dead-code".to_string(),
        maps,
        items: vec![
            item("hash update then inlined lookup hits", hash_hit),
            item("hash with a 12-byte key misses", hash_miss),
            item("inner hash through an array-of-maps meta", inner_hash),
            item("dead branch with a map load and a lookup", dead),
        ],
        skipped: Vec::new(),
    }
}

#[test]
fn hash_lookups_and_dead_code_fix_up_like_the_kernel_and_run_to_the_same_r0_and_maps() {
    let Some(mut kernel) = KernelSys::or_skip("kernel_verdicts") else {
        return;
    };
    let profile = probed(&mut kernel);
    let set = hash_and_dead_code_set();
    let checks = verdicts::run(&mut kernel, std::slice::from_ref(&set), profile);
    for check in &checks {
        println!(
            "{}: {}/{} {:?}",
            check.name, check.agreed, check.cases, check.disagreed
        );
    }
    let (verdict, fixups, exec) = (&checks[0], &checks[1], &checks[2]);
    assert!(
        verdict.passed() && verdict.agreed == set.items.len() as u64,
        "every program is accepted by both: {:#?}",
        verdict.examples
    );
    assert!(
        fixups.passed() && fixups.cases == set.items.len() as u64,
        "fixed-up programs differ from the kernel's xlated dump: {:#?}",
        fixups.examples
    );
    assert!(
        exec.passed() && exec.cases == set.items.len() as u64,
        "test-run and mimic's executor disagree: {:#?}",
        exec.examples
    );
}

/// Cases recorded with the kernel's verdict (`corpus::PtrCase`, as the probed profile's build
/// words them), side by side: every case gets the same verdict from both, the kernel's log
/// holds mimic's message, that message is the one the case records, and the programs both
/// accept fix up and run alike.
fn recorded_cases_match_the_kernel(label: &str, cases: fn(&KernelProfile) -> Vec<PtrCase>) {
    use mimic_core::bpf::verifier::corpus;
    use mimic_core::bpf::verifier::{verify, ProgType, VerifyOpts};
    let Some(mut kernel) = KernelSys::or_skip("kernel_verdicts") else {
        return;
    };
    let profile = probed(&mut kernel);
    let cases = cases(&profile);
    let set = verdicts::ProgramSet {
        label: label.to_string(),
        maps: corpus::maps(),
        items: cases
            .iter()
            .map(|c| verdicts::Item {
                name: c.name.clone(),
                prog: c.prog.clone(),
                state_freq: false,
            })
            .collect(),
        skipped: Vec::new(),
    };
    let checks = verdicts::run(&mut kernel, std::slice::from_ref(&set), profile);
    let (verdict, fixups, exec) = (&checks[0], &checks[1], &checks[2]);
    assert!(
        verdict.passed() && verdict.agreed == cases.len() as u64,
        "{label}: verdicts or messages differ from the kernel's: {:#?}",
        verdict.examples
    );
    let accepted = cases.iter().filter(|c| c.refusal.is_none()).count() as u64;
    assert_eq!(
        fixups.cases, accepted,
        "{label}: the kernel accepts exactly the cases recorded as accepted"
    );
    assert!(fixups.passed(), "{:#?}", fixups.examples);
    assert!(exec.passed(), "{:#?}", exec.examples);
    let opts = VerifyOpts {
        prog_type: ProgType::Syscall,
        sleepable: true,
        profile,
        ..VerifyOpts::default()
    };
    for case in &cases {
        let message = verify(&case.prog, &corpus::maps(), opts)
            .err()
            .map(|r| r.message);
        assert_eq!(
            message, case.refusal,
            "{label}: {}: mimic's message",
            case.name
        );
    }
}

/// Pointer arithmetic at the kernel's sane-offset limit (`BPF_MAX_VAR_OFF`, D12).
#[test]
fn pointer_offsets_beyond_bpf_max_var_off_are_refused_like_the_kernel() {
    recorded_cases_match_the_kernel(
        "pointer-offsets",
        mimic_core::bpf::verifier::corpus::pointer_offset_cases,
    );
}

/// Array lookups with keys the kernel does or does not see as constant (D14).
#[test]
fn array_lookups_are_non_null_for_the_same_constant_keys_as_the_kernel() {
    recorded_cases_match_the_kernel("constant-keys", |_| {
        mimic_core::bpf::verifier::corpus::constant_key_cases()
    });
}

/// A privileged program may return a pointer (generated seeds 7783 and 15141 return the map
/// pointer they loaded into r0): the kernel's r0 is an address, mimic's a pointer in its own
/// encoding, and the test-run line counts that as agreeing; a scalar r0 is still compared.
#[test]
fn a_returned_pointer_is_compared_as_a_pointer_and_a_scalar_by_value() {
    use mimic_core::bpf::verifier::corpus::{self, FD_ARRAY_5};
    use mimic_core::isa::Insn;
    let Some(mut kernel) = KernelSys::or_skip("kernel_verdicts") else {
        return;
    };
    let profile = probed(&mut kernel);
    let mut map_ptr = Insn::ld_map_fd(0, FD_ARRAY_5).to_vec();
    map_ptr.push(Insn::exit());
    let set = verdicts::ProgramSet {
        label: "returned-pointer".to_string(),
        maps: corpus::maps(),
        items: vec![
            verdicts::Item {
                name: "r0 = map; exit".to_string(),
                prog: map_ptr,
                state_freq: false,
            },
            verdicts::Item {
                name: "r0 = fp; exit".to_string(),
                prog: vec![Insn::mov64_reg(0, 10), Insn::exit()],
                state_freq: false,
            },
            verdicts::Item {
                name: "r0 = 7; exit".to_string(),
                prog: vec![Insn::mov64_imm(0, 7), Insn::exit()],
                state_freq: false,
            },
        ],
        skipped: Vec::new(),
    };
    let checks = verdicts::run(&mut kernel, std::slice::from_ref(&set), profile);
    let exec = &checks[2];
    assert!(
        exec.passed() && exec.cases == 3,
        "test runs of programs returning pointers: {exec:#?}"
    );
}
