//! Simulator scenarios over the example objects: `examples/objects/NAME.toml` runs the
//! clang-built `target/bpf/NAME.bpf.o` (ci/build-objects) loaded by mimic's object loader.
//! Every object has a scenario and runs clean on the correct core, its programs really run,
//! and two fixup mutants are found through the C program `backend_tables.bpf.c`, each failing
//! for the reason it introduces, at a seed that replays to the same trace.

use mimic_core::mutants::{Mutant, Mutants};
use mimic_core::profile::KernelProfile;
use mimic_sim::sim::engine::{run_one, Outcome, RunConfig, Verdict};
use mimic_sim::sim::scenario::Scenario;
use mimic_sim::sim::scheduler::SchedulerKind;
use std::path::{Path, PathBuf};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/objects")
}

/// The example sources (`NAME.bpf.c`), by stem.
fn sources() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(examples())
        .expect("examples/objects")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".bpf.c").map(str::to_string))
        .collect();
    names.sort();
    names
}

/// `examples/objects/NAME.toml`, with its object (a missing object names ci/build-objects).
fn scenario(name: &str) -> Scenario {
    let path = examples().join(format!("{name}.toml"));
    Scenario::load(path.to_str().expect("utf-8 path")).unwrap_or_else(|e| panic!("{e}"))
}

fn config(scenario: &Scenario, mutants: Mutants, scheduler: SchedulerKind) -> RunConfig {
    RunConfig {
        scenario: scenario.clone(),
        mutants,
        scheduler,
        keep_trace: true,
        profile: *KernelProfile::newest(),
        lacks: mimic_core::history::Lacks::NONE,
    }
}

#[test]
fn every_example_object_has_a_scenario_that_runs_clean_on_the_correct_core() {
    let names = sources();
    assert!(names.len() >= 4, "example sources: {names:?}");
    for name in names {
        let scenario = scenario(&name);
        assert!(scenario.loaded.is_some(), "{name}: no object loaded");
        let mut passed = 0;
        for scheduler in [SchedulerKind::Swarm, SchedulerKind::Pct] {
            let config = config(&scenario, Mutants::NONE, scheduler);
            for seed in 0..40 {
                let outcome = run_one(&config, seed);
                match &outcome.verdict {
                    Verdict::Pass => passed += 1,
                    Verdict::Cut => {}
                    Verdict::Fail { kind, detail } => panic!(
                        "{name} seed {seed} ({}): {kind}: {detail}\n{}",
                        scheduler.name(),
                        outcome.trace.join("\n")
                    ),
                }
                // Every program a task names ran on this seed.
                if seed == 0 {
                    for task in &scenario.tasks {
                        if let Some(program) = &task.program {
                            let ran = format!("prog {program} run ");
                            assert!(
                                outcome.trace.iter().any(|l| l.contains(&ran)),
                                "{name}: program {program} never ran"
                            );
                        }
                    }
                }
            }
        }
        assert!(
            passed >= 60,
            "{name}: only {passed} of 80 seeds ran to the end"
        );
    }
}

/// The first seed in `0..budget` on which `mutant` makes the backend_tables scenario fail.
fn first_failure(mutant: Mutant, budget: u64) -> Outcome {
    first_failure_of("backend_tables", mutant, budget)
}

/// The first seed in `0..budget` on which `mutant` makes the example `name` fail.
fn first_failure_of(name: &str, mutant: Mutant, budget: u64) -> Outcome {
    let scenario = scenario(name);
    let config = config(&scenario, Mutants::only(mutant), SchedulerKind::Swarm);
    (0..budget)
        .map(|seed| run_one(&config, seed))
        .find(|o| matches!(o.verdict, Verdict::Fail { .. }))
        .unwrap_or_else(|| panic!("{mutant}: {name} passes {budget} seeds"))
}

/// The failure replays: the same seed gives the same verdict and trace; the correct core
/// passes that seed.
fn replays(mutant: Mutant, found: &Outcome) {
    replays_in("backend_tables", mutant, found)
}

fn replays_in(name: &str, mutant: Mutant, found: &Outcome) {
    let scenario = scenario(name);
    let again = run_one(
        &config(&scenario, Mutants::only(mutant), SchedulerKind::Swarm),
        found.seed,
    );
    assert_eq!(again.verdict, found.verdict);
    assert_eq!(again.trace_hash, found.trace_hash);
    let correct = run_one(
        &config(&scenario, Mutants::NONE, SchedulerKind::Swarm),
        found.seed,
    );
    assert!(
        !matches!(correct.verdict, Verdict::Fail { .. }),
        "the correct core fails seed {} too: {:?}",
        found.seed,
        correct.verdict
    );
}

#[test]
fn inline_dynamic_inner_is_found_through_pick_backend_reading_past_a_smaller_table() {
    let found = first_failure(Mutant::InlineDynamicInner, 64);
    let Verdict::Fail { kind, detail } = &found.verdict else {
        unreachable!()
    };
    assert_eq!(kind, "out_of_bounds", "seed {}: {detail}", found.seed);
    assert!(
        detail.contains("program pick_backend"),
        "seed {}: {detail}",
        found.seed
    );
    replays(Mutant::InlineDynamicInner, &found);
}

#[test]
fn meta_elem_size_zero_is_found_through_bump_adding_to_slot_0() {
    let found = first_failure(Mutant::MetaElemSizeZero, 64);
    let Verdict::Fail { kind, detail } = &found.verdict else {
        unreachable!()
    };
    assert_eq!(kind, "wrong_value", "seed {}: {detail}", found.seed);
    assert!(
        detail.contains("counter_sets"),
        "seed {}: {detail}",
        found.seed
    );
    replays(Mutant::MetaElemSizeZero, &found);
}

#[test]
fn an_object_scenario_names_what_is_wrong() {
    let base = examples();
    let bad = |text: &str| {
        Scenario::parse_at(text, "t.toml", Some(&base))
            .expect_err(text)
            .to_string()
    };
    let missing =
        bad("name = \"x\"\nobject = \"target/bpf/none.bpf.o\"\n[[tasks]]\nkind = \"user\"\n");
    assert!(
        missing.contains("none.bpf.o") && missing.contains("ci/build-objects"),
        "{missing}"
    );
    let not_elf = bad("name = \"x\"\nobject = \"seed004.toml\"\n[[tasks]]\nkind = \"user\"\n");
    assert!(not_elf.contains("seed004.toml"), "{not_elf}");
    let object = "name = \"x\"\nobject = \"target/bpf/seed004.bpf.o\"\n";
    let program = bad(&format!(
        "{object}[[tasks]]\nkind = \"program\"\nprogram = \"nope\"\n"
    ));
    assert!(program.contains("unknown program `nope`"), "{program}");
    let map = bad(&format!(
        "{object}[[tasks]]\nkind = \"user\"\nops = [\"delete outer_arr 0\"]\n"
    ));
    assert!(map.contains("unknown map `outer_arr`"), "{map}");
    let twice = bad(&format!(
        "{object}[[maps]]\nname = \"inner_map1\"\ntype = \"array\"\nmax_entries = 1\n[[tasks]]\nkind = \"user\"\n"
    ));
    assert!(twice.contains("inner_map1"), "{twice}");
}

/// The Maglev XDP example: the load balancer's verdicts on the frames it gets (XDP_TX for a
/// service with a backend, XDP_PASS for other traffic, XDP_DROP for a service without a
/// table), and `inline_dynamic_inner` found as a read past a table smaller than the template.
#[test]
fn maglev_balances_passes_and_drops_and_inline_dynamic_inner_reads_past_a_smaller_table() {
    let scenario = scenario("maglev");
    let config = config(&scenario, Mutants::NONE, SchedulerKind::Swarm);
    let mut verdicts = std::collections::BTreeSet::new();
    for seed in 0..20 {
        let outcome = run_one(&config, seed);
        assert!(
            !matches!(outcome.verdict, Verdict::Fail { .. }),
            "seed {seed}: {:?}",
            outcome.verdict
        );
        for line in &outcome.trace {
            if let Some((_, r0)) = line
                .split_once("prog maglev run ")
                .and_then(|(_, l)| l.rsplit_once(" = "))
            {
                verdicts.insert(r0.to_string());
            }
        }
    }
    for action in ["XDP_DROP", "XDP_PASS", "XDP_TX"] {
        assert!(
            verdicts.contains(action),
            "no {action} in 20 seeds: {verdicts:?}"
        );
    }
    let found = first_failure_of("maglev", Mutant::InlineDynamicInner, 64);
    let Verdict::Fail { kind, detail } = &found.verdict else {
        unreachable!()
    };
    assert_eq!(kind, "out_of_bounds", "seed {}: {detail}", found.seed);
    assert!(
        detail.contains("program maglev"),
        "seed {}: {detail}",
        found.seed
    );
    replays_in("maglev", Mutant::InlineDynamicInner, &found);
}
