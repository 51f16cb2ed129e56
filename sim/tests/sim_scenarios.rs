//! Every built-in scenario passes on the correct core, under every scheduler (swarm with its
//! faults included): no §8 invariant fails, audits are clean, histories are linearizable.

use mimic_core::mutants::Mutants;
use mimic_sim::sim::engine::{run_seeds, RunConfig, Verdict};
use mimic_sim::sim::scenario::{Scenario, BUILTINS};
use mimic_sim::sim::scheduler::SchedulerKind;

/// Seeds per scenario and scheduler: 13+ scenarios × (swarm 200 + random 50 + pct 50) keeps
/// the test at a few seconds in a debug build.
fn seeds(scheduler: SchedulerKind) -> std::ops::Range<u64> {
    match scheduler {
        SchedulerKind::Swarm => 0..200,
        _ => 0..50,
    }
}

#[test]
fn every_builtin_passes_a_few_hundred_seeds_on_the_correct_core() {
    for (name, _) in BUILTINS {
        let scenario = Scenario::load(name).expect("built-in parses");
        for scheduler in SchedulerKind::ALL {
            let config = RunConfig {
                scenario: scenario.clone(),
                mutants: Mutants::NONE,
                scheduler,
                keep_trace: false,
                profile: *mimic_core::profile::KernelProfile::newest(),
                lacks: mimic_core::history::Lacks::NONE,
            };
            let seeds: Vec<u64> = seeds(scheduler).collect();
            let mut cut = 0;
            run_seeds(&config, &seeds, &mut |o| match &o.verdict {
                Verdict::Pass => {}
                Verdict::Cut => cut += 1,
                Verdict::Fail { kind, detail } => panic!(
                    "{name} / {} seed {} fails on the correct core [{kind}]: {detail}",
                    scheduler.name(),
                    o.seed
                ),
            });
            assert_eq!(
                cut,
                0,
                "{name} / {}: runs cut by the step budget",
                scheduler.name()
            );
        }
    }
}

#[test]
fn builtins_round_trip_through_toml() {
    for scenario in Scenario::builtins() {
        let text = scenario.to_toml();
        let back = Scenario::parse(&text, "round trip").expect("serialised scenario parses");
        assert_eq!(back, scenario, "{} changes through TOML", scenario.name);
    }
}

/// `bpf_trace_printk` from a scenario's program: each line lands in the trace, formatted as the
/// kernel formats it, and `bpf_ktime_get_ns` reads the run's logical time, which only grows.
#[test]
fn trace_printk_lines_and_the_simulated_clock_land_in_the_trace() {
    let text = r#"
name = "printk"
[[programs]]
name = "say"
source = """
    mov %r6, %r1
    lddw %r1, 0x742075253d79656b
    stxdw [%r10-16], %r1
    lddw %r1, 0xa756c6c253d
    stxdw [%r10-8], %r1
    call 5                     # bpf_ktime_get_ns: the run's logical time
    mov %r4, %r0
    ldxw %r3, [%r6+0]          # the key
    mov %r1, %r10
    add %r1, -16
    mov %r2, 15
    mov %r5, 0
    call 6                     # bpf_trace_printk
    exit
"""
[[tasks]]
kind = "program"
program = "say"
runs = 3
keys = [7]
"#;
    let scenario = Scenario::parse(text, "printk").unwrap_or_else(|e| panic!("{e}"));
    let config = RunConfig {
        scenario,
        mutants: Mutants::NONE,
        scheduler: SchedulerKind::Random,
        keep_trace: true,
        profile: *mimic_core::profile::KernelProfile::newest(),
        lacks: mimic_core::history::Lacks::NONE,
    };
    let outcome = mimic_sim::sim::engine::run_one(&config, 3);
    assert_eq!(outcome.verdict, Verdict::Pass);
    let times: Vec<u64> = outcome
        .trace
        .iter()
        .filter_map(|l| {
            l.split_once("prog say: bpf_trace_printk: key=7 t=")?
                .1
                .strip_suffix("\\n")?
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(times.len(), 3, "{}", outcome.trace.join("\n"));
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
    // Each run prints the line's length back: 14 characters and the time's digits.
    assert!(outcome
        .trace
        .iter()
        .any(|l| l.contains("prog say run 0 (key 7) = ")));
}
