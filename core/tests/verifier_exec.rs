//! Verified and fixed-up programs run on the core's map world: the seed program's result, the
//! soundness oracle in the executor's check mode, and the mutants whose harm only shows at run
//! time (an out-of-bounds read of a smaller inner array, a wrong value).

use mimic_core::bpf::exec::{ExecError, ExecErrorKind, NoObserver, Observer, Program, Vm};
use mimic_core::bpf::fixup::{fixup, Fixed};
use mimic_core::bpf::verifier::oracle::OracleObserver;
use mimic_core::bpf::verifier::{verify, Verified, VerifyOpts};
use mimic_core::bpf::world_env::WorldEnv;
use mimic_core::fault::Fault;
use mimic_core::isa::*;
use mimic_core::mutants::{Mutant, Mutants};
use mimic_core::rcu::Flavor;
use mimic_core::sync::Std;
use mimic_core::sys::Process;
use mimic_core::uapi::{BpfSys, Fd, MapAttr, MapType, BPF_ANY, BPF_F_INNER_MAP};
use mimic_core::world::WorldConfig;

const CTX_SIZE: usize = 64;

fn key(k: u32) -> [u8; 4] {
    k.to_le_bytes()
}

/// `v = outer[0]; if (!v) return -1; p = lookup(v, &k); if (!p) return -2; *p += 1; return *p`.
fn inner_increment(outer: Fd, k: u32, null_check_inner: bool) -> Vec<Insn> {
    let mut p = vec![
        Insn::mov32_imm(1, 0),
        Insn::stx_mem(BPF_W, 10, 1, -4),
        Insn::mov64_reg(2, 10),
        Insn::alu64_imm(BPF_ADD, 2, -4),
    ];
    p.extend(Insn::ld_map_fd(1, outer));
    p.extend([
        Insn::call_helper(1),
        Insn::jmp_imm(BPF_JNE, 0, 0, 2),
        Insn::mov64_imm(0, -1),
        Insn::exit(),
        Insn::st_mem(BPF_W, 10, -8, k as i32),
        Insn::mov64_reg(2, 10),
        Insn::alu64_imm(BPF_ADD, 2, -8),
        Insn::mov64_reg(1, 0),
        Insn::call_helper(1),
    ]);
    if null_check_inner {
        p.extend([
            Insn::jmp_imm(BPF_JNE, 0, 0, 2),
            Insn::mov64_imm(0, -2),
            Insn::exit(),
        ]);
    }
    p.extend([
        Insn::ldx_mem(BPF_W, 1, 0, 0),
        Insn::alu64_imm(BPF_ADD, 1, 1),
        Insn::stx_mem(BPF_W, 0, 1, 0),
        Insn::ldx_mem(BPF_W, 0, 0, 0),
        Insn::exit(),
    ]);
    p
}

fn load(sys: &Process<Std>, insns: &[Insn], mutants: Mutants) -> (Verified, Fixed) {
    let opts = VerifyOpts {
        collect_states: true,
        mutants,
        ..VerifyOpts::default()
    };
    let v =
        verify(insns, &**sys.world(), opts).unwrap_or_else(|r| panic!("refused: {r}\n{}", r.log));
    let fixed = fixup(&v, mutants).expect("fixups");
    (v, fixed)
}

fn run<O: Observer>(
    sys: &Process<Std>,
    insns: &[Insn],
    observer: &mut O,
) -> Result<u64, ExecError> {
    let program = Program::new(insns).expect("decodes");
    let world = sys.world();
    world.rcu_read_lock(Flavor::Rcu).expect("read lock");
    let mut ctx = [0u8; CTX_SIZE];
    let result = Vm::default().run(&program, &mut ctx, &mut WorldEnv::new(world), observer);
    world.rcu_read_unlock(Flavor::Rcu).expect("read unlock");
    result
}

fn array(sys: &mut Process<Std>, max_entries: u32, flags: u32) -> Fd {
    sys.map_create(&MapAttr::new(MapType::Array, 4, 4, max_entries).flags(flags))
        .expect("array")
}

/// Seed 004: outer array-of-maps of 3, `BPF_F_INNER_MAP` template of 1, an inner array of 3.
fn seed_world(mutants: Mutants) -> (Process<Std>, Fd, Fd) {
    let mut sys = Process::<Std>::create(mutants, WorldConfig::default());
    let template = array(&mut sys, 1, BPF_F_INNER_MAP);
    let outer = sys
        .map_create(&MapAttr::new(MapType::ArrayOfMaps, 4, 4, 3).inner(template))
        .expect("outer");
    let inner = array(&mut sys, 3, BPF_F_INNER_MAP);
    sys.map_update_elem(inner, &key(0), &41u32.to_le_bytes(), BPF_ANY)
        .unwrap();
    sys.map_update_elem(outer, &key(0), &inner.to_le_bytes(), BPF_ANY)
        .unwrap();
    (sys, outer, inner)
}

#[test]
fn seed_program_fixed_up_runs_on_the_world_and_stays_inside_the_verified_states() {
    let (mut sys, outer, inner) = seed_world(Mutants::NONE);
    let prog = inner_increment(outer, 0, true);
    let (v, fixed) = load(&sys, &prog, Mutants::NONE);
    assert!(
        fixed
            .dump_xlated()
            .unwrap()
            .contains("call array_map_lookup_elem"),
        "dynamic inner lookup is a direct call"
    );
    let oracle = v.oracle.as_ref().expect("collected");
    let mut obs = OracleObserver::new(oracle, &v.maps);
    obs.pc_map = Some(fixed.orig_pc());
    assert_eq!(run(&sys, &fixed.insns, &mut obs).expect("runs"), 42);
    assert!(
        obs.escapes.is_empty(),
        "fixed run escaped: {:?}",
        obs.escapes
    );
    // The unmodified program too (the executor resolves pseudo map loads itself).
    let mut obs = OracleObserver::new(oracle, &v.maps);
    assert_eq!(run(&sys, &prog, &mut obs).expect("runs"), 43);
    assert!(
        obs.escapes.is_empty(),
        "original run escaped: {:?}",
        obs.escapes
    );
    assert_eq!(
        sys.map_lookup_elem(inner, &key(0)).unwrap(),
        43u32.to_le_bytes()
    );
}

#[test]
fn oracle_reports_a_register_outside_the_verified_state() {
    let (sys, outer, _) = seed_world(Mutants::NONE);
    let prog = inner_increment(outer, 0, true);
    let (mut v, _) = load(&sys, &prog, Mutants::NONE);
    // Pretend the verifier had claimed r1 (the loaded value + 1, at the store) is at most 1.
    let store_pc = prog.len() - 3;
    let oracle = v.oracle.as_mut().expect("collected");
    let frame = oracle.frame_mut(store_pc, 0).expect("store reached");
    frame.regs[1].var.umax = 1;
    let mut obs = OracleObserver::new(v.oracle.as_ref().unwrap(), &v.maps);
    run(&sys, &prog, &mut obs).expect("runs");
    let escape = obs.escapes.first().expect("the value 42 escapes umax 1");
    assert_eq!(
        (escape.pc, escape.location.as_str()),
        (store_pc, "R1"),
        "{escape}"
    );
}

fn out_of_bounds(result: Result<u64, ExecError>) -> bool {
    match result {
        Err(e) => {
            matches!(e.fault(), Some(Fault::OutOfBounds { .. }))
                || matches!(e.kind, ExecErrorKind::OutOfBounds { .. })
        }
        Ok(_) => false,
    }
}

#[test]
fn inline_dynamic_inner_reads_a_smaller_inner_array_out_of_bounds() {
    // Template: BPF_F_INNER_MAP array of 5; the stored inner array has 3 entries; key 4.
    for (mutants, expect_oob) in [
        (Mutants::NONE, false),
        (Mutants::only(Mutant::InlineDynamicInner), true),
    ] {
        let mut sys = Process::<Std>::create(mutants, WorldConfig::default());
        let template = array(&mut sys, 5, BPF_F_INNER_MAP);
        let outer = sys
            .map_create(&MapAttr::new(MapType::ArrayOfMaps, 4, 4, 1).inner(template))
            .unwrap();
        let inner = array(&mut sys, 3, BPF_F_INNER_MAP);
        sys.map_update_elem(outer, &key(0), &inner.to_le_bytes(), BPF_ANY)
            .unwrap();
        let (_, fixed) = load(&sys, &inner_increment(outer, 4, true), mutants);
        let result = run(&sys, &fixed.insns, &mut NoObserver);
        if expect_oob {
            assert!(
                out_of_bounds(result.clone()),
                "mutant: inlined bound 5 lets key 4 read past 3 entries: {result:?}"
            );
        } else {
            assert_eq!(
                result.expect("direct call checks the runtime size") as i64,
                -2,
                "key 4 of 3 entries: NULL"
            );
        }
    }
}

#[test]
fn meta_ignores_max_entries_lets_a_smaller_array_in_and_the_inlined_lookup_overruns_it() {
    for (mutants, expect_oob) in [
        (Mutants::NONE, false),
        (Mutants::only(Mutant::MetaIgnoresMaxEntries), true),
    ] {
        let mut sys = Process::<Std>::create(mutants, WorldConfig::default());
        let template = array(&mut sys, 5, 0);
        let outer = sys
            .map_create(&MapAttr::new(MapType::ArrayOfMaps, 4, 4, 1).inner(template))
            .unwrap();
        let inner = array(&mut sys, 3, 0);
        let stored = sys.map_update_elem(outer, &key(0), &inner.to_le_bytes(), BPF_ANY);
        if !expect_oob {
            assert!(
                stored.is_err(),
                "a 3-entry array must not replace a 5-entry template's slot"
            );
            continue;
        }
        stored.expect("the mutant accepts it");
        // Constant key 4 < the meta's 5: the verifier elides the inner null check, as the kernel.
        let (_, fixed) = load(&sys, &inner_increment(outer, 4, false), mutants);
        let result = run(&sys, &fixed.insns, &mut NoObserver);
        assert!(
            out_of_bounds(result.clone()),
            "inner[4] of a 3-entry array: {result:?}"
        );
    }
}

#[test]
fn meta_elem_size_zero_turns_inner_3_into_inner_0() {
    // inner_array_lookup: HASH_OF_MAPS[2] of ARRAY(5); user sets inner[3] = 1, the program
    // increments inner[3], user reads 2.
    for (mutants, expect_right) in [
        (Mutants::NONE, true),
        (Mutants::only(Mutant::MetaElemSizeZero), false),
    ] {
        let mut sys = Process::<Std>::create(mutants, WorldConfig::default());
        let template = array(&mut sys, 5, 0);
        let outer = sys
            .map_create(&MapAttr::new(MapType::HashOfMaps, 4, 4, 2).inner(template))
            .unwrap();
        let inner = array(&mut sys, 5, 0);
        sys.map_update_elem(inner, &key(3), &1u32.to_le_bytes(), BPF_ANY)
            .unwrap();
        sys.map_update_elem(outer, &key(0), &inner.to_le_bytes(), BPF_ANY)
            .unwrap();
        let (_, fixed) = load(&sys, &inner_increment(outer, 3, false), mutants);
        run(&sys, &fixed.insns, &mut NoObserver).expect("runs");
        let at3 = u32::from_le_bytes(
            sys.map_lookup_elem(inner, &key(3))
                .unwrap()
                .try_into()
                .unwrap(),
        );
        let at0 = u32::from_le_bytes(
            sys.map_lookup_elem(inner, &key(0))
                .unwrap()
                .try_into()
                .unwrap(),
        );
        if expect_right {
            assert_eq!((at3, at0), (2, 0), "inner[3] turned 1 into 2");
        } else {
            assert_eq!(
                (at3, at0),
                (1, 1),
                "the bug incremented inner[0] instead: wrong value"
            );
        }
    }
}

#[test]
fn prog_load_holds_the_outer_map_only_and_unload_releases_it() {
    use mimic_core::bpf::verifier::world::prog_load;
    let (mut sys, outer, inner) = seed_world(Mutants::NONE);
    let world = sys.world().clone();
    let refcnt = |fd: Fd| world.fd_to_map(fd).unwrap().1.refcnt();
    let (outer_before, inner_before) = (refcnt(outer), refcnt(inner));
    let opts = VerifyOpts {
        sleepable: true,
        ..VerifyOpts::default()
    };
    let loaded = prog_load(&world, &inner_increment(outer, 0, true), opts).expect("loads");
    assert_eq!(
        refcnt(outer),
        outer_before + 1,
        "the program holds its used (outer) map"
    );
    assert_eq!(
        refcnt(inner),
        inner_before,
        "never the inner maps reached through it"
    );
    assert_eq!(
        world.fd_to_map(outer).unwrap().1.sleepable_refcnt(),
        1,
        "outer marked sleepable-used"
    );
    assert_eq!(
        run(&sys, &loaded.fixed.insns, &mut NoObserver).expect("runs"),
        42
    );
    loaded.unload(&world).expect("unload");
    // The program (sleepable) is freed after a tasks-trace and an RCU grace period, and its
    // free drops the map reference.
    world.barrier().expect("grace periods");
    assert_eq!(refcnt(outer), outer_before);
    let refused = prog_load(&world, &[Insn::exit()], VerifyOpts::default()).expect_err("R0 unset");
    assert!(refused.to_string().contains("R0 !read_ok"), "{refused}");
    let _ = sys.map_lookup_elem(inner, &key(0));
}

/// `k` into the stack, `r2` pointing at it, `r1` the map `fd`, `call bpf_map_lookup_elem`.
fn lookup_const_key(fd: Fd, k: u32, slot: i16) -> Vec<Insn> {
    let mut p = vec![
        Insn::st_mem(BPF_W, 10, slot, k as i32),
        Insn::mov64_reg(2, 10),
        Insn::alu64_imm(BPF_ADD, 2, i32::from(slot)),
    ];
    p.extend(Insn::ld_map_fd(1, fd));
    p.push(Insn::call_helper(1));
    p
}

/// What a miss returns in the hash programs below.
const MISS: i32 = 0xdead;

/// Runs the fixed-up program under the state-embedding oracle: it returns `want` and every
/// register at every original instruction stays inside the verified state.
fn run_inside_verified(sys: &Process<Std>, v: &Verified, fixed: &Fixed, want: u64, what: &str) {
    let oracle = v.oracle.as_ref().expect("collected");
    let mut obs = OracleObserver::new(oracle, &v.maps);
    obs.pc_map = Some(fixed.orig_pc());
    assert_eq!(
        run(sys, &fixed.insns, &mut obs).expect("runs"),
        want,
        "{what}"
    );
    assert!(obs.escapes.is_empty(), "{what}: {:?}", obs.escapes);
}

/// Each of `lines` appears in the fixed-up program's xlated dump.
fn assert_dump_has(fixed: &Fixed, what: &str, lines: &[&str]) {
    let dump = fixed.dump_xlated().expect("prints");
    for line in lines {
        assert!(dump.contains(line), "{what}: {line:?} in\n{dump}");
    }
}

#[test]
fn htab_lookup_inlined_through_the_element_hits_and_misses_like_the_helper() {
    let mut sys = Process::<Std>::create(Mutants::NONE, WorldConfig::default());
    let hash = sys
        .map_create(&MapAttr::new(MapType::Hash, 4, 8, 4))
        .expect("hash");
    let stored = 0x1122_3344_5566_7788u64;
    sys.map_update_elem(hash, &key(7), &stored.to_le_bytes(), BPF_ANY)
        .unwrap();
    for (k, want) in [(7u32, stored), (8, MISS as u64)] {
        // v = hash[k]; return v ? *(u64 *)v : MISS;
        let mut prog = lookup_const_key(hash, k, -4);
        prog.extend([
            Insn::jmp_imm(BPF_JEQ, 0, 0, 2),
            Insn::ldx_mem(BPF_DW, 0, 0, 0),
            Insn::exit(),
            Insn::mov64_imm(0, MISS),
            Insn::exit(),
        ]);
        let (v, fixed) = load(&sys, &prog, Mutants::NONE);
        assert_dump_has(
            &fixed,
            "htab_map_gen_lookup",
            &[
                "(85) call __htab_map_lookup_elem#",
                "(15) if r0 == 0x0 goto pc+1",
                "(07) r0 += 56",
            ],
        );
        let what = format!("key {k}: the inlined lookup reads the stored value, or misses");
        run_inside_verified(&sys, &v, &fixed, want, &what);
    }
}

#[test]
fn htab_of_maps_inlined_lookup_gives_the_inner_map_a_second_lookup_accepts() {
    let mut sys = Process::<Std>::create(Mutants::NONE, WorldConfig::default());
    let template = array(&mut sys, 4, 0);
    let outer = sys
        .map_create(&MapAttr::new(MapType::HashOfMaps, 4, 4, 8).inner(template))
        .expect("outer");
    // inner = outer[0]; if (!inner) return MISS; v = inner[2] (constant key: never NULL);
    // *v += 1; return *v.
    let mut prog = lookup_const_key(outer, 0, -4);
    prog.extend([
        Insn::jmp_imm(BPF_JNE, 0, 0, 2),
        Insn::mov64_imm(0, MISS),
        Insn::exit(),
        Insn::mov64_reg(1, 0),
        Insn::st_mem(BPF_W, 10, -8, 2),
        Insn::mov64_reg(2, 10),
        Insn::alu64_imm(BPF_ADD, 2, -8),
        Insn::call_helper(1),
        Insn::ldx_mem(BPF_W, 1, 0, 0),
        Insn::alu64_imm(BPF_ADD, 1, 1),
        Insn::stx_mem(BPF_W, 0, 1, 0),
        Insn::ldx_mem(BPF_W, 0, 0, 0),
        Insn::exit(),
    ]);
    let (v, fixed) = load(&sys, &prog, Mutants::NONE);
    assert_dump_has(
        &fixed,
        "htab_of_map_gen_lookup",
        &[
            "(85) call __htab_map_lookup_elem#",
            "(15) if r0 == 0x0 goto pc+2",
            "(07) r0 += 56",
            "(79) r0 = *(u64 *)(r0 +0)",
            "(35) if r0 >= 0x4 goto pc+3",
        ],
    );
    run_inside_verified(
        &sys,
        &v,
        &fixed,
        MISS as u64,
        "no inner map at key 0: the inlined lookup misses",
    );
    let inner = array(&mut sys, 4, 0);
    sys.map_update_elem(inner, &key(2), &41u32.to_le_bytes(), BPF_ANY)
        .unwrap();
    sys.map_update_elem(outer, &key(0), &inner.to_le_bytes(), BPF_ANY)
        .unwrap();
    run_inside_verified(
        &sys,
        &v,
        &fixed,
        42,
        "the loaded inner map pointer serves the inner lookup",
    );
    assert_eq!(
        sys.map_lookup_elem(inner, &key(2)).unwrap(),
        42u32.to_le_bytes(),
        "the store went to the inner map found through the outer hash"
    );
}

#[test]
fn dead_branches_are_removed_and_the_pruned_program_returns_the_same() {
    let sys = Process::<Std>::create(Mutants::NONE, WorldConfig::default());
    // r0 = 1; if r0 == 2 goto +2 (never); r0 = 5; exit; r0 = 9 (dead); exit (dead)
    let prog = vec![
        Insn::mov64_imm(0, 1),
        Insn::jmp_imm(BPF_JEQ, 0, 2, 2),
        Insn::mov64_imm(0, 5),
        Insn::exit(),
        Insn::mov64_imm(0, 9),
        Insn::exit(),
    ];
    let (v, fixed) = load(&sys, &prog, Mutants::NONE);
    assert_eq!(
        fixed.insns,
        vec![Insn::mov64_imm(0, 1), Insn::mov64_imm(0, 5), Insn::exit()],
        "the jump hard-wired to ja +0 and dropped, the dead tail removed"
    );
    assert_eq!(fixed.new_pc, vec![0, 1, 1, 2, 3, 3, 3]);
    run_inside_verified(&sys, &v, &fixed, 5, "the pruned program");
}

/// Before 6.14 (d2102f2f5d75) every array lookup result needed its null check: a release
/// profile lacking the elision refuses what today's verifier accepts, with the kernel's words.
#[test]
fn before_6_14_a_constant_key_array_lookup_needs_its_null_check() {
    use mimic_core::history::{Feature, Semantics};
    let mut sys = Process::<Std>::create(Mutants::NONE, WorldConfig::default());
    let map = array(&mut sys, 4, 0);
    let mut insns = lookup_const_key(map, 1, -8);
    insns.extend([Insn::ldx_mem(BPF_W, 0, 0, 0), Insn::exit()]);
    verify(&insns, &**sys.world(), VerifyOpts::default()).expect("elided: no check needed");
    let lacks = Semantics::of("6.12".parse().unwrap(), &[]).unwrap().lacks;
    assert!(lacks.lacks(Feature::ConstKeyNonNull));
    let opts = VerifyOpts {
        lacks,
        ..VerifyOpts::default()
    };
    let refused = verify(&insns, &**sys.world(), opts).expect_err("6.12 wants the null check");
    assert!(
        refused
            .message
            .contains("invalid mem access 'map_value_or_null'"),
        "{}",
        refused.message
    );
}
