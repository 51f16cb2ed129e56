//! `sim/scenarios/maglev_tc.toml`: the Maglev balancer's tc program (`sched_cls`, reading
//! `struct __sk_buff`) under control planes that swap its services' tables. Clean on the
//! correct core with every results check seeing its frames, tc's verdicts named as tc names
//! them, and `inline_dynamic_inner` found through the tc program at a seed that replays.

use mimic_core::finding::Finding;
use mimic_core::mutants::{Mutant, Mutants};
use mimic_core::profile::KernelProfile;
use mimic_sim::sim::engine::{run_one, Outcome, RunConfig, Verdict};
use mimic_sim::sim::scenario::Scenario;
use mimic_sim::sim::scheduler::SchedulerKind;
use std::collections::BTreeSet;
use std::path::Path;

fn text() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/maglev_tc.toml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn parse(text: &str) -> Scenario {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    Scenario::parse_at(text, "maglev_tc.toml", Some(&base)).unwrap_or_else(|e| panic!("{e}"))
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

/// `program frame verdict` of every packet run in a trace.
fn runs(outcome: &Outcome) -> Vec<String> {
    let mut out = Vec::new();
    for line in &outcome.trace {
        let Some((_, run)) = line.split_once(" prog ") else {
            continue;
        };
        if let (Some((program, _)), Some((_, rest))) =
            (run.split_once(" run "), run.split_once("(frame "))
        {
            if let Some((frame, r0)) = rest.split_once(") = ") {
                out.push(format!("{program} {frame} {r0}"));
            }
        }
    }
    out
}

#[test]
fn maglev_tc_runs_clean_and_every_results_check_sees_its_frames() {
    let scenario = parse(&text());
    let mut seen = BTreeSet::new();
    for scheduler in [
        SchedulerKind::Random,
        SchedulerKind::Pct,
        SchedulerKind::Swarm,
    ] {
        let config = config(&scenario, Mutants::NONE, scheduler);
        for seed in 0..60 {
            let outcome = run_one(&config, seed);
            assert_eq!(
                outcome.verdict,
                Verdict::Pass,
                "seed {seed} ({}):\n{}",
                scheduler.name(),
                outcome.trace.join("\n")
            );
            seen.extend(runs(&outcome));
        }
    }
    for want in [
        "maglev_tc dns TC_ACT_REDIRECT",
        "maglev_tc web TC_ACT_REDIRECT",
        "maglev_tc web TC_ACT_SHOT",
        "maglev_tc no_table TC_ACT_SHOT",
        "maglev_tc other TC_ACT_OK",
        "maglev_tc arp TC_ACT_OK",
    ] {
        assert!(seen.contains(want), "never seen: {want}; seen: {seen:?}");
    }
}

#[test]
fn the_results_oracle_names_a_tc_verdict_by_tc_names() {
    let text = text();
    let changed = text.replacen(
        "frames = [\"no_table\"]\nreturns = [\"TC_ACT_SHOT\"]",
        "frames = [\"no_table\"]\nreturns = [\"TC_ACT_OK\"]",
        1,
    );
    assert_ne!(changed, text);
    let scenario = parse(&changed);
    let config = config(&scenario, Mutants::NONE, SchedulerKind::Swarm);
    let found = (0..20)
        .map(|seed| run_one(&config, seed))
        .find(|o| o.verdict.kind() == Some(Finding::WrongResult.name()))
        .expect("a wrong result in 20 seeds");
    let Verdict::Fail { detail, .. } = &found.verdict else {
        unreachable!("found by its kind")
    };
    assert!(
        detail.contains("on frame no_table: returned TC_ACT_SHOT, where only TC_ACT_OK may be"),
        "{detail}"
    );
    let bad = text.replacen(
        "returns = [\"TC_ACT_OK\"]",
        "returns = [\"TC_ACT_OKAY\"]",
        1,
    );
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let e = Scenario::parse_at(&bad, "maglev_tc.toml", Some(&base))
        .expect_err("an unknown verdict")
        .to_string();
    assert!(e.contains("return `TC_ACT_OKAY` is no XDP action"), "{e}");
}

#[test]
fn inline_dynamic_inner_reads_past_a_three_slot_table_from_tc() {
    let scenario = parse(&text());
    let mutant = Mutant::InlineDynamicInner;
    let config_of = |m| config(&scenario, m, SchedulerKind::Swarm);
    let found = (0..64)
        .map(|seed| run_one(&config_of(Mutants::only(mutant)), seed))
        .find(|o| o.verdict.kind() == Some(Finding::OutOfBounds.name()))
        .expect("an out-of-bounds read in 64 seeds");
    let Verdict::Fail { detail, .. } = &found.verdict else {
        unreachable!("found by its kind")
    };
    assert!(
        detail.contains("program maglev_tc run"),
        "seed {}: {detail}",
        found.seed
    );
    assert!(mutant.detected_by(Finding::OutOfBounds));
    let again = run_one(&config_of(Mutants::only(mutant)), found.seed);
    assert_eq!(
        (again.verdict, again.trace_hash),
        (found.verdict.clone(), found.trace_hash)
    );
    let correct = run_one(&config_of(Mutants::NONE), found.seed);
    assert_eq!(correct.verdict, Verdict::Pass, "seed {}", found.seed);
}
