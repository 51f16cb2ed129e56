//! `bpf_map_lookup_percpu_elem` (helper 195) end to end on the world: the verifier lets only
//! per-CPU maps reach it (the kernel's words otherwise), the fixup calls the map's
//! `map_lookup_percpu_elem` directly as the kernel's does, and a run reads the named CPU's
//! copy (of a per-CPU array or hash), with NULL past the machine's CPUs or for a missing key,
//! and the register's upper half unread.

use mimic_core::bpf::helpers::{Callee, DirectCall};
use mimic_core::bpf::verifier::world::{prog_load, LoadError};
use mimic_core::bpf::verifier::VerifyOpts;
use mimic_core::isa::{Insn, BPF_CALL, BPF_DW, BPF_JMP, BPF_JNE, BPF_W};
use mimic_core::mutants::Mutants;
use mimic_core::sync::Std;
use mimic_core::sys::Process;
use mimic_core::uapi::{BpfSys, Fd, MapAttr, MapType, BPF_ANY};
use mimic_core::world::WorldConfig;

const MISSING: i32 = 0x0bad;

/// `r0 = *lookup_percpu(map, &key, cpu)`, or `MISSING` for NULL; `cpu` is a 64-bit constant.
fn program(map: Fd, key: i32, cpu: u64) -> Vec<Insn> {
    let mut p = vec![Insn::st_mem(BPF_W, 10, -4, key)];
    p.extend(Insn::ld_map_fd(1, map));
    p.push(Insn::mov64_reg(2, 10));
    p.push(Insn::alu64_imm(mimic_core::isa::BPF_ADD, 2, -4));
    p.extend(Insn::ld_imm64(3, cpu));
    p.push(Insn::call_helper(195));
    p.push(Insn::jmp_imm(BPF_JNE, 0, 0, 2));
    p.push(Insn::mov64_imm(0, MISSING));
    p.push(Insn::exit());
    p.push(Insn::ldx_mem(BPF_DW, 0, 0, 0));
    p.push(Insn::exit());
    p
}

fn world() -> Process<Std> {
    Process::create(
        Mutants::NONE,
        WorldConfig {
            cpus: 2,
            ..WorldConfig::default()
        },
    )
}

fn opts() -> VerifyOpts {
    VerifyOpts {
        ctx_size: 8,
        ..VerifyOpts::default()
    }
}

#[test]
fn each_cpu_s_copy_is_read_and_a_cpu_past_the_machine_or_a_missing_key_is_null() {
    for map_type in [MapType::PercpuArray, MapType::PercpuHash] {
        let mut sys = world();
        let map = sys.map_create(&MapAttr::new(map_type, 4, 8, 2)).unwrap();
        // CPU 0's copy 100, CPU 1's 201.
        let mut values = 100u64.to_le_bytes().to_vec();
        values.extend(201u64.to_le_bytes());
        sys.map_update_elem(map, &1u32.to_le_bytes(), &values, BPF_ANY)
            .unwrap();
        for (key, cpu, want) in [
            (1, 0, 100),
            (1, 1, 201),
            (1, 2, MISSING as u64),
            (1, u64::from(u32::MAX), MISSING as u64),
            // Only the low 32 bits name the CPU.
            (1, (7 << 32) | 1, 201),
            // Past the array; not in the hash.
            (2, 0, MISSING as u64),
        ] {
            let load = prog_load(sys.world(), &program(map, key, cpu), opts())
                .unwrap_or_else(|e| panic!("{map_type:?} key {key} cpu {cpu:#x}: refused: {e}"));
            let r0 = load.test_run(sys.world(), &mut [0; 8]).unwrap();
            assert_eq!(r0, want, "{map_type:?} key {key}, cpu {cpu:#x}");
        }
    }
}

#[test]
fn the_fixup_calls_the_per_cpu_array_s_map_lookup_percpu_elem_directly() {
    let mut sys = world();
    let map = sys
        .map_create(&MapAttr::new(MapType::PercpuArray, 4, 8, 2))
        .unwrap();
    let load = prog_load(sys.world(), &program(map, 1, 0), opts()).unwrap();
    let names: Vec<String> = load
        .fixed
        .insns
        .iter()
        .filter(|i| i.code == BPF_JMP | BPF_CALL)
        .filter_map(|i| match Callee::from_imm(i.imm)? {
            Callee::Direct(call) => Some(DirectCall::name(call)),
            Callee::Helper(_) => None,
        })
        .collect();
    assert_eq!(names, ["percpu_array_map_lookup_percpu_elem"]);
}

#[test]
fn a_map_that_is_not_per_cpu_is_refused_with_the_kernel_s_words() {
    let mut sys = world();
    for (map_type, number) in [(MapType::Array, 2), (MapType::Hash, 1)] {
        let map = sys.map_create(&MapAttr::new(map_type, 4, 8, 2)).unwrap();
        match prog_load(sys.world(), &program(map, 1, 0), opts()) {
            Err(LoadError::Rejected(r)) => assert!(
                r.message.contains(&format!(
                    "cannot pass map_type {number} into func bpf_map_lookup_percpu_elem#195"
                )),
                "{map_type:?}: {}",
                r.message
            ),
            Err(other) => panic!("{map_type:?}: {other}"),
            Ok(_) => panic!("{map_type:?}: accepted"),
        }
    }
}
