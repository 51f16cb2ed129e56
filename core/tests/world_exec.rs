//! Programs on the real map world: the executor's map helpers and memory accesses go through
//! `WorldEnv`, so what the world checks (generation, bounds) the executor reports.

use mimic_core::bpf::exec::{NoObserver, Program, Vm};
use mimic_core::bpf::verifier::corpus::seed_004_with_store;
use mimic_core::bpf::world_env::WorldEnv;
use mimic_core::fault::Fault;
use mimic_core::mutants::{Mutant, Mutants};
use mimic_core::rcu::Flavor;
use mimic_core::sync::Std;
use mimic_core::sys::Process;
use mimic_core::uapi::{BpfSys, Fd, MapAttr, MapType, BPF_ANY, BPF_F_INNER_MAP};
use mimic_core::world::WorldConfig;

fn inner_array(sys: &mut Process<Std>, max_entries: u32) -> Fd {
    let attr = MapAttr::new(MapType::Array, 4, 4, max_entries).flags(BPF_F_INNER_MAP);
    sys.map_create(&attr).expect("inner array")
}

fn run(sys: &Process<Std>, program: &Program) -> Result<u64, mimic_core::bpf::exec::ExecError> {
    let world = sys.world();
    world.rcu_read_lock(Flavor::Rcu).expect("read lock");
    let result = Vm::default().run(program, &mut [], &mut WorldEnv::new(world), &mut NoObserver);
    world.rcu_read_unlock(Flavor::Rcu).expect("read unlock");
    result
}

#[test]
fn seed_program_reads_and_writes_the_inner_array_through_the_world() {
    let mut sys = Process::<Std>::create(Mutants::NONE, WorldConfig::default());
    let template = inner_array(&mut sys, 1);
    let outer_attr = MapAttr::new(MapType::ArrayOfMaps, 4, 4, 3).inner(template);
    let outer = sys.map_create(&outer_attr).expect("outer");
    let program = Program::new(&seed_004_with_store(outer)).expect("decodes");

    assert_eq!(
        run(&sys, &program).expect("runs") as u32,
        u32::MAX,
        "empty slot: -1"
    );

    let inner = inner_array(&mut sys, 3);
    sys.map_update_elem(inner, &0u32.to_le_bytes(), &41u32.to_le_bytes(), BPF_ANY)
        .unwrap();
    sys.map_update_elem(outer, &0u32.to_le_bytes(), &inner.to_le_bytes(), BPF_ANY)
        .unwrap();
    assert_eq!(run(&sys, &program).expect("runs"), 42);
    let stored = sys.map_lookup_elem(inner, &0u32.to_le_bytes()).unwrap();
    assert_eq!(
        stored,
        42u32.to_le_bytes(),
        "the program's store is visible to user space"
    );
}

#[test]
fn freed_inner_map_under_a_program_is_a_use_after_free_with_the_mutant() {
    for (mutants, expect_fault) in [
        (Mutants::NONE, false),
        (Mutants::only(Mutant::FreeInnerWithoutGp), true),
    ] {
        let mut sys = Process::<Std>::create(mutants, WorldConfig::default());
        let template = inner_array(&mut sys, 1);
        let outer_attr = MapAttr::new(MapType::ArrayOfMaps, 4, 4, 1).inner(template);
        let outer = sys.map_create(&outer_attr).unwrap();
        let inner = inner_array(&mut sys, 1);
        sys.map_update_elem(outer, &0u32.to_le_bytes(), &inner.to_le_bytes(), BPF_ANY)
            .unwrap();
        sys.close(inner).unwrap();
        let world = sys.world().clone();

        // The program's first half: inside its section, look up outer[0] and keep the pointer.
        world.rcu_read_lock(Flavor::Rcu).unwrap();
        let outer_handle = world.map_handle(outer).unwrap();
        let inner_ptr = world
            .prog_lookup(outer_handle, &0u32.to_le_bytes())
            .unwrap()
            .expect("slot is set");
        // Meanwhile another CPU deletes the slot: the last reference goes. The syscall's own
        // synchronize would wait for this reader, so the deleter's part is the map op alone.
        let slot_owner = world.map(outer_handle).unwrap();
        let deleted = slot_owner
            .ops
            .delete(&world, &slot_owner, &0u32.to_le_bytes());
        assert!(deleted.is_ok(), "{deleted:?}");
        world.poll().unwrap();
        // The program's second half: a lookup in the inner map it still holds.
        let inner_handle = world.resolve_map_ptr(inner_ptr).unwrap();
        let result = world.prog_lookup(inner_handle, &0u32.to_le_bytes());
        world.rcu_read_unlock(Flavor::Rcu).unwrap();
        match (expect_fault, result) {
            (false, Ok(Some(_))) => {}
            (true, Err(error)) => assert!(
                matches!(error.fault(), Some(Fault::UseAfterFree { .. })),
                "want a use after free, got {error}"
            ),
            (expect, other) => panic!("mutants {mutants}: expected fault {expect}, got {other:?}"),
        }
        world.barrier().unwrap();
    }
}

/// A syscall program loaded through the verifier: `ctx[4..8] = ctx[0..4] + 1; ctx[8..16] = 7;
/// return ctx[0..4]`.
fn ctx_program(sys: &Process<Std>) -> mimic_core::bpf::verifier::world::LoadedProg {
    use mimic_core::bpf::verifier::world::prog_load;
    use mimic_core::bpf::verifier::{ProgType, VerifyOpts};
    use mimic_core::isa::{Insn, BPF_ADD, BPF_DW, BPF_W};
    let insns = [
        Insn::ldx_mem(BPF_W, 0, 1, 0),
        Insn::mov64_reg(2, 0),
        Insn::alu64_imm(BPF_ADD, 2, 1),
        Insn::stx_mem(BPF_W, 1, 2, 4),
        Insn::st_mem(BPF_DW, 1, 8, 7),
        Insn::exit(),
    ];
    let opts = VerifyOpts {
        prog_type: ProgType::Syscall,
        sleepable: true,
        ..VerifyOpts::default()
    };
    prog_load(sys.world(), &insns, opts).expect("the kernel accepts this syscall program")
}

#[test]
fn syscall_test_run_refuses_a_ctx_shorter_than_max_ctx_offset_with_einval() {
    use mimic_core::bpf::verifier::world::TestRunError;
    use mimic_core::errno::Errno;
    let sys = Process::<Std>::create(Mutants::NONE, WorldConfig::default());
    let loaded = ctx_program(&sys);
    assert_eq!(loaded.verified.max_ctx_offset, 16, "the 8-byte store at 8");
    for len in [0usize, 4, 15, 65_536] {
        let mut ctx = vec![0xaa; len];
        match loaded.test_run(sys.world(), &mut ctx) {
            Err(TestRunError::Errno(Errno::EINVAL)) => {}
            other => panic!("ctx of {len} bytes: {other:?}, the kernel says EINVAL"),
        }
        assert!(
            ctx.iter().all(|b| *b == 0xaa),
            "a refused run leaves the buffer alone ({len} bytes)"
        );
    }
    let mut ctx = vec![0u8; 65_535];
    loaded
        .test_run(sys.world(), &mut ctx)
        .expect("U16_MAX bytes is the largest context");
    loaded.unload(sys.world()).expect("unload");
}

#[test]
fn syscall_test_run_writes_the_context_back() {
    let sys = Process::<Std>::create(Mutants::NONE, WorldConfig::default());
    let loaded = ctx_program(&sys);
    let mut ctx: Vec<u8> = (1..=20).collect();
    let r0 = loaded.test_run(sys.world(), &mut ctx).expect("runs");
    assert_eq!(r0, u64::from(u32::from_le_bytes([1, 2, 3, 4])));
    assert_eq!(&ctx[0..4], &[1, 2, 3, 4], "untouched bytes stay");
    assert_eq!(
        &ctx[4..8],
        &(u32::from_le_bytes([1, 2, 3, 4]) + 1).to_le_bytes(),
        "the register store is copied back"
    );
    assert_eq!(&ctx[8..16], &7u64.to_le_bytes(), "the immediate store too");
    assert_eq!(
        &ctx[16..],
        &[17, 18, 19, 20],
        "bytes past the accesses stay"
    );
    loaded.unload(sys.world()).expect("unload");
}
