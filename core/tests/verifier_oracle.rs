//! The soundness oracle as a property: random programs the verifier accepts are run on the map
//! world in the executor's check mode; every concrete register and stack byte must lie inside
//! the verifier's joined state, and no run may fault (a verified program is memory safe).

use mimic_core::bpf::exec::{Config, ExecErrorKind, Program, Vm};
use mimic_core::bpf::print::{dump_log, DefaultSymbols};
use mimic_core::bpf::verifier::oracle::OracleObserver;
use mimic_core::bpf::verifier::{check_loose_pruning, verify, VerifyOpts};
use mimic_core::bpf::world_env::WorldEnv;
use mimic_core::isa::Insn;
use mimic_core::mutants::Mutants;
use mimic_core::rcu::Flavor;
use mimic_core::sync::Std;
use mimic_core::sys::Process;
use mimic_core::uapi::{BpfSys, Fd, MapAttr, MapType, BPF_ANY};
use mimic_core::world::WorldConfig;
use proptest::prelude::*;

/// A world with an array of 4, a hash, and an array-of-maps holding one inner array.
fn world() -> (Process<Std>, Vec<Fd>) {
    let mut sys = Process::<Std>::create(Mutants::NONE, WorldConfig::default());
    let array = sys
        .map_create(&MapAttr::new(MapType::Array, 4, 8, 4))
        .unwrap();
    let hash = sys
        .map_create(&MapAttr::new(MapType::Hash, 4, 8, 4))
        .unwrap();
    let template = sys
        .map_create(&MapAttr::new(MapType::Array, 4, 8, 2))
        .unwrap();
    let outer = sys
        .map_create(&MapAttr::new(MapType::ArrayOfMaps, 4, 4, 2).inner(template))
        .unwrap();
    let inner = sys
        .map_create(&MapAttr::new(MapType::Array, 4, 8, 2))
        .unwrap();
    sys.map_update_elem(outer, &0u32.to_le_bytes(), &inner.to_le_bytes(), BPF_ANY)
        .unwrap();
    sys.map_update_elem(array, &1u32.to_le_bytes(), &7u64.to_le_bytes(), BPF_ANY)
        .unwrap();
    sys.map_update_elem(hash, &0u32.to_le_bytes(), &9u64.to_le_bytes(), BPF_ANY)
        .unwrap();
    (sys, vec![array, hash, outer])
}

/// Instruction shapes a map-in-map program is made of, with small operands so the verifier
/// accepts a fair share of them.
fn insn(fds: Vec<Fd>) -> impl Strategy<Value = Vec<Insn>> {
    let reg = 0u8..10;
    let small = prop::sample::select(vec![0i32, 1, 2, 3, 4, 7, 8, -1, -4, -8, 255]);
    let stack_off = prop::sample::select(vec![-8i16, -16, -4, -12, -24]);
    prop_oneof![
        (reg.clone(), small.clone()).prop_map(|(d, k)| vec![Insn::mov64_imm(d, k)]),
        (reg.clone(), reg.clone()).prop_map(|(d, s)| vec![Insn::mov64_reg(d, s)]),
        (
            prop::sample::select(vec![
                0x07u8, 0x17, 0x27, 0x57, 0x47, 0x67, 0x77, 0xa7, 0x04, 0x54, 0x24
            ]),
            reg.clone(),
            small.clone()
        )
            .prop_map(|(c, d, k)| vec![Insn::new(c, d, 0, 0, k)]),
        (
            prop::sample::select(vec![0x0fu8, 0x1f, 0x5f, 0x4f, 0xaf, 0x0c]),
            reg.clone(),
            reg.clone()
        )
            .prop_map(|(c, d, s)| vec![Insn::new(c, d, s, 0, 0)]),
        (reg.clone(), stack_off.clone()).prop_map(|(s, o)| vec![Insn::stx_mem(0x18, 10, s, o)]),
        (reg.clone(), stack_off.clone()).prop_map(|(s, o)| vec![Insn::stx_mem(0x00, 10, s, o)]),
        (stack_off.clone(), small.clone()).prop_map(|(o, k)| vec![Insn::st_mem(0x00, 10, o, k)]),
        (reg.clone(), stack_off.clone()).prop_map(|(d, o)| vec![Insn::ldx_mem(0x18, d, 10, o)]),
        (
            reg.clone(),
            reg.clone(),
            prop::sample::select(vec![0i16, 4])
        )
            .prop_map(|(d, s, o)| vec![Insn::ldx_mem(0x00, d, s, o)]),
        (reg.clone(), small.clone()).prop_map(|(d, k)| vec![Insn::st_mem(0x00, d, 0, k)]),
        (reg.clone(), prop::sample::select(fds))
            .prop_map(|(d, fd)| Insn::ld_map_fd(d, fd).to_vec()),
        stack_off.prop_map(|o| vec![
            Insn::mov64_reg(2, 10),
            Insn::alu64_imm(0x00, 2, i32::from(o))
        ]),
        Just(vec![Insn::call_helper(1)]),
        (
            prop::sample::select(vec![
                0x15u8, 0x55, 0x25, 0xa5, 0x35, 0xb5, 0x65, 0xc5, 0x45, 0x16, 0x56
            ]),
            reg.clone(),
            small.clone(),
            -4i16..5
        )
            .prop_map(|(c, d, k, o)| vec![Insn::new(c, d, 0, o, k)]),
        (reg.clone(), prop::sample::select(vec![-8i16, -16, 0]))
            .prop_map(|(s, o)| vec![Insn::atomic(0x18, 10, s, o, 0x01)]),
        (reg.clone(), reg, 0i16..3).prop_map(|(d, s, o)| vec![Insn::jmp_reg(0x10, d, s, o)]),
    ]
}

/// Instructions of [`program`]'s prologue.
const PROLOGUE: usize = 14;

fn program(fds: Vec<Fd>) -> impl Strategy<Value = Vec<Insn>> {
    prop::collection::vec(insn(fds), 1..24).prop_map(|parts| {
        // A prologue that initialises every register and three stack slots, so the random body
        // mostly meets initialised state: unknown scalars from the context, constants, pointers.
        let mut p = vec![
            Insn::ldx_mem(0x00, 6, 1, 0),
            Insn::ldx_mem(0x10, 7, 1, 8),
            Insn::st_mem(0x18, 10, -8, 0),
            Insn::st_mem(0x18, 10, -16, 1),
            Insn::stx_mem(0x18, 10, 6, -24),
            Insn::mov64_reg(9, 1),
            Insn::mov64_reg(8, 10),
            Insn::mov64_imm(0, 0),
            Insn::mov64_imm(1, 1),
            Insn::mov64_reg(2, 10),
            Insn::alu64_imm(0x00, 2, -8),
            Insn::mov64_imm(3, 3),
            Insn::mov64_imm(4, 0),
            Insn::mov64_imm(5, 0),
        ];
        p.extend(parts.concat());
        p.push(Insn::mov64_imm(0, 0));
        p.push(Insn::exit());
        p
    })
}

proptest! {
    // MIMIC_ORACLE_CASES raises the count for longer hunts.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("MIMIC_ORACLE_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(3000)
    ))]

    #[test]
    fn accepted_programs_run_inside_their_verified_states(
        prog in program(world().1),
        ctx in prop::collection::vec(any::<u8>(), 64),
        unpriv in prop::bool::weighted(0.2),
    ) {
        let (sys, _) = world();
        let opts = VerifyOpts { collect_states: true, privileged: !unpriv, ..VerifyOpts::default() };
        let Ok(v) = verify(&prog, &**sys.world(), opts) else { return Ok(()) };
        let text = dump_log(&prog, &DefaultSymbols).unwrap_or_default();
        let program = Program::new(&prog).expect("verified programs decode");
        let oracle = v.oracle.as_ref().expect("collected");
        let mut obs = OracleObserver::new(oracle, &v.maps);
        let world = sys.world();
        world.rcu_read_lock(Flavor::Rcu).unwrap();
        let mut ctx = ctx;
        let result = Vm::new(Config { budget: 100_000, ..Config::default() }).run(&program, &mut ctx, &mut WorldEnv::new(world), &mut obs);
        world.rcu_read_unlock(Flavor::Rcu).unwrap();
        prop_assert!(obs.escapes.is_empty(), "unsound: {}\n{text}", obs.escapes[0]);
        if let Err(e) = result {
            prop_assert!(matches!(e.kind, ExecErrorKind::Budget(_)), "a verified program failed: {e}\n{text}");
        }
    }
}

#[test]
fn a_fair_share_of_random_programs_is_accepted() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let (sys, fds) = world();
    let mut runner = TestRunner::deterministic();
    let strategy = program(fds);
    let (mut accepted, mut with_maps, mut messages) =
        (0, 0, std::collections::BTreeMap::<String, u32>::new());
    const N: u32 = 2000;
    for _ in 0..N {
        let prog = strategy.new_tree(&mut runner).expect("tree").current();
        match verify(&prog, &**sys.world(), VerifyOpts::default()) {
            Ok(v) => {
                accepted += 1;
                with_maps += u32::from(!v.used_maps.is_empty());
            }
            Err(r) => {
                let key: String = r
                    .message
                    .split(|c: char| c.is_ascii_digit())
                    .next()
                    .unwrap_or("")
                    .to_string();
                *messages.entry(key).or_default() += 1;
            }
        }
    }
    eprintln!("accepted {accepted}/{N}, {with_maps} using maps; refusals: {messages:#?}");
    assert!(
        accepted > N / 20,
        "the oracle property needs accepted programs: {accepted}/{N}"
    );
    assert!(with_maps > 0, "and some that use maps");
}

/// Two paths that give `r7` different constants (and write other scalars and stack slots
/// differently), joined, then a use whose safety depends on `r7`'s value: the shape where a
/// checkpoint at the join prunes the second path unless `r7` was marked precise.
fn diamond(fds: Vec<Fd>) -> impl Strategy<Value = Vec<Insn>> {
    let array = fds[0];
    let value = prop::sample::select(vec![-520i32, -16, -8, -4, 0, 1, 3, 8]);
    let filler = prop::collection::vec(insn(fds.clone()), 0..3);
    let side = prop::collection::vec(
        prop_oneof![
            (0u8..10, value.clone()).prop_map(|(d, k)| Insn::mov64_imm(d, k)),
            (prop::sample::select(vec![-40i16, -48]), value.clone())
                .prop_map(|(o, k)| Insn::st_mem(0x18, 10, o, k)),
            prop::sample::select(vec![-40i16, -48]).prop_map(|o| Insn::stx_mem(0x18, 10, 7, o)),
        ],
        0..3,
    );
    let uses = prop_oneof![
        // The value as a stack offset.
        Just(vec![
            Insn::mov64_reg(2, 10),
            Insn::alu64_reg(0x00, 2, 7),
            Insn::st_mem(0x00, 2, 0, 1),
        ]),
        // A branch it decides, one edge of which is refused.
        Just(vec![
            Insn::new(0x25, 7, 0, 1, 2),
            Insn::ldx_mem(0x18, 0, 10, 8),
        ]),
        // Through a spill and a fill, then a stack offset.
        Just(vec![
            Insn::stx_mem(0x18, 10, 7, -24),
            Insn::ldx_mem(0x18, 8, 10, -24),
            Insn::mov64_reg(2, 10),
            Insn::alu64_reg(0x00, 2, 8),
            Insn::st_mem(0x00, 2, 0, 1),
        ]),
        // The copy each path spilled before the join, filled, then a branch.
        Just(vec![
            Insn::ldx_mem(0x18, 8, 10, -32),
            Insn::new(0x25, 8, 0, 1, 2),
            Insn::ldx_mem(0x18, 0, 10, 8),
        ]),
        // The same spilled copy as an array key (its upper half, at r10-28): a constant key in
        // range needs no null check.
        Just(
            [Insn::mov64_reg(2, 10), Insn::alu64_imm(0x00, 2, -28)]
                .into_iter()
                .chain(Insn::ld_map_fd(1, array))
                .chain([Insn::call_helper(1), Insn::ldx_mem(0x00, 0, 0, 0)])
                .collect::<Vec<_>>()
        ),
        // Through a narrow store (known bytes on the stack) and a load, then a branch.
        Just(vec![
            Insn::stx_mem(0x10, 10, 7, -40),
            Insn::ldx_mem(0x10, 8, 10, -40),
            Insn::new(0x25, 8, 0, 1, 2),
            Insn::ldx_mem(0x18, 0, 10, 8),
        ]),
        // A constant array key: in range the value needs no null check.
        Just(
            [
                vec![Insn::stx_mem(0x00, 10, 7, -4)],
                vec![Insn::stx_mem(0x18, 10, 7, -8)],
            ]
            .into_iter()
            .flatten()
            .take(1)
            .chain([Insn::mov64_reg(2, 10), Insn::alu64_imm(0x00, 2, -4)])
            .chain(Insn::ld_map_fd(1, array))
            .chain([Insn::call_helper(1), Insn::ldx_mem(0x00, 0, 0, 0)])
            .collect::<Vec<_>>()
        ),
        Just(
            [
                Insn::stx_mem(0x18, 10, 7, -8),
                Insn::mov64_reg(2, 10),
                Insn::alu64_imm(0x00, 2, -8)
            ]
            .into_iter()
            .chain(Insn::ld_map_fd(1, array))
            .chain([Insn::call_helper(1), Insn::ldx_mem(0x00, 0, 0, 0)])
            .collect::<Vec<_>>()
        ),
    ];
    (
        program(fds.clone()),
        filler,
        value.clone(),
        side.clone(),
        value,
        side,
        uses,
    )
        .prop_map(|(base, filler, a, side_a, b, side_b, uses)| {
            // `program`'s prologue (which loads r6 from the context), the diamond and its use,
            // then `program`'s random body and its `r0 = 0; exit`.
            let mut p = base[..PROLOGUE].to_vec();
            // Each path spills its r7 at r10-32 (then writes what else it drew).
            let spill = Insn::stx_mem(0x18, 10, 7, -32);
            let mut first = vec![Insn::mov64_imm(7, a), spill];
            first.extend(side_a);
            let mut second = vec![Insn::mov64_imm(7, b), spill];
            second.extend(side_b);
            // An unknown scalar (the context's first word, in r6) chooses the path.
            p.push(Insn::new(0x25, 6, 0, first.len() as i16 + 1, 7));
            p.extend(first);
            p.push(Insn::new(0x05, 0, 0, second.len() as i16, 0));
            p.extend(second);
            p.extend(uses);
            p.extend(filler.concat());
            p.extend_from_slice(&base[PROLOGUE..]);
            p
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("MIMIC_ORACLE_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(3000)
    ))]

    /// Pruning as a privileged kernel prunes (scalars compared only where a verified path relied
    /// on them, dead stack slots skipped) must reach the verdict of comparing everything: a
    /// dependency the precision walk or the stack liveness missed lets a path be cut whose
    /// future differs, and shows here as an acceptance the exact comparison refuses. Both run
    /// with a checkpoint at every prune point, so every cut that could happen is tried.
    #[test]
    fn pruning_on_precise_scalars_and_live_slots_reaches_the_exact_verdict(
        prog in prop_oneof![program(world().1), diamond(world().1)],
    ) {
        let (sys, _) = world();
        let exact_opts = VerifyOpts {
            test_state_freq: true,
            collect_states: true,
            ..VerifyOpts::default()
        };
        let text = || dump_log(&prog, &DefaultSymbols).unwrap_or_default();
        let exact = verify(&prog, &**sys.world(), exact_opts);
        match check_loose_pruning(&prog, &**sys.world(), exact_opts, &exact) {
            Err(finding) => prop_assert!(false, "{}\n{}", finding, text()),
            Ok(Some((loose_n, exact_n))) => prop_assert!(
                loose_n <= exact_n,
                "pruning more cannot process more: {} > {}\n{}",
                loose_n,
                exact_n,
                text()
            ),
            Ok(None) => {}
        }
    }
}
