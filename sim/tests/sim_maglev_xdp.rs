//! `sim/scenarios/maglev_xdp.toml`: the clang-built Maglev balancer (dynamic and fixed-size
//! tables) under control planes that grow and shrink its services' tables, judged by the
//! results oracle (`[[checks.results]]`) besides the others. Clean on the correct core; the
//! oracle fails runs for what they returned or carried; the two fixup mutants of dynamic inner
//! arrays are found through it for their reasons, at seeds that replay. The footprint report
//! follows each outer map's tables, and the object's outer maps are checked for
//! linearizability like a scenario's. `maglev_tc.toml` runs the balancer's tc program (reading
//! `struct __sk_buff`) the same way.

use mimic_core::finding::Finding;
use mimic_core::mutants::{Mutant, Mutants};
use mimic_core::profile::KernelProfile;
use mimic_core::sync::Std;
use mimic_core::uapi::{MapAttr, MapType, BPF_F_INNER_MAP};
use mimic_core::world::{World, WorldConfig};
use mimic_sim::sim::engine::{run_one, Outcome, RunConfig, Verdict};
use mimic_sim::sim::scenario::Scenario;
use mimic_sim::sim::scheduler::SchedulerKind;
use std::collections::BTreeSet;
use std::path::Path;

/// A scenario file of `sim/scenarios/`.
fn read(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The scenario from `text` as file `file`, found where the file is (its object under
/// `target/bpf/`).
fn parse_as(text: &str, file: &str) -> Scenario {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    Scenario::parse_at(text, file, Some(&base)).unwrap_or_else(|e| panic!("{e}"))
}

fn text() -> String {
    read("maglev_xdp.toml")
}

fn parse(text: &str) -> Scenario {
    parse_as(text, "maglev_xdp.toml")
}

/// Seeds 0..60 under each scheduler pass on the correct core; returns `program frame verdict`
/// of every packet run they made.
fn clean_runs(scenario: &Scenario) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for scheduler in [
        SchedulerKind::Random,
        SchedulerKind::Pct,
        SchedulerKind::Swarm,
    ] {
        let config = config(scenario, Mutants::NONE, scheduler);
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
    seen
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

fn fail(outcome: &Outcome) -> (&str, &str) {
    match &outcome.verdict {
        Verdict::Fail { kind, detail } => (kind, detail),
        other => panic!("seed {} did not fail: {other:?}", outcome.seed),
    }
}

/// The first seed in `0..budget` where `scenario` under `mutants` fails with `finding`.
fn first(scenario: &Scenario, mutants: Mutants, finding: Finding, budget: u64) -> Outcome {
    let config = config(scenario, mutants, SchedulerKind::Swarm);
    (0..budget)
        .map(|seed| run_one(&config, seed))
        .find(|o| o.verdict.kind() == Some(finding.name()))
        .unwrap_or_else(|| panic!("no {finding} failure in {budget} seeds"))
}

/// The seed replays (same verdict, same trace hash) and the correct core passes it.
fn replays(scenario: &Scenario, mutant: Mutant, found: &Outcome) {
    let config_of = |m| config(scenario, m, SchedulerKind::Swarm);
    let again = run_one(&config_of(Mutants::only(mutant)), found.seed);
    assert_eq!(again.verdict, found.verdict);
    assert_eq!(again.trace_hash, found.trace_hash);
    let correct = run_one(&config_of(Mutants::NONE), found.seed);
    assert!(
        !matches!(correct.verdict, Verdict::Fail { .. }),
        "the correct core fails seed {} too: {:?}",
        found.seed,
        correct.verdict
    );
}

#[test]
fn maglev_xdp_runs_clean_and_every_results_check_sees_its_frames() {
    let scenario = parse(&text());
    let seen = clean_runs(&scenario);
    // What the checks promise, each seen at least once: services with tables balance,
    // service 1's 3-slot table misses, a service without a table drops, the rest passes; the
    // fixed-table balancer always balances web frames.
    for want in [
        "maglev dns XDP_TX",
        "maglev web XDP_TX",
        "maglev web XDP_DROP",
        "maglev no_table XDP_DROP",
        "maglev other XDP_PASS",
        "maglev truncated XDP_PASS",
        "maglev ethernet_only XDP_PASS",
        "maglev_fixed web XDP_TX",
        "maglev_fixed dns XDP_DROP",
    ] {
        assert!(seen.contains(want), "never seen: {want}; seen: {seen:?}");
    }
}

#[test]
fn the_results_oracle_fails_a_run_for_what_it_returned_and_for_the_backend_it_carried() {
    let text = text();
    // Service 2's frames are said to drop: every run that sends one out is wrong.
    let dropped = text.replacen(
        "frames = [\"dns\"]\nreturns = [\"XDP_TX\"]",
        "frames = [\"dns\"]\nreturns = [\"XDP_DROP\"]",
        1,
    );
    assert_ne!(dropped, text);
    let scenario = parse(&dropped);
    let found = first(&scenario, Mutants::NONE, Finding::WrongResult, 20);
    let (_, detail) = fail(&found);
    assert!(
        detail.contains("on frame dns: returned XDP_TX, where only XDP_DROP may be returned"),
        "{detail}"
    );
    // Service 2's backends checked against service 1's tables: none of them is there.
    let other = text.replacen("from = \"services:2\"", "from = \"services:1\"", 1);
    assert_ne!(other, text);
    let scenario = parse(&other);
    let found = first(&scenario, Mutants::NONE, Finding::WrongResult, 20);
    let (_, detail) = fail(&found);
    assert!(
        detail.contains("on frame dns: packet bytes 33..34 hold 2")
            && detail.contains("written into no map services[1] held"),
        "{detail}"
    );
}

#[test]
fn inline_dynamic_inner_reads_past_service_1s_three_slot_table() {
    let scenario = parse(&text());
    let mutant = Mutant::InlineDynamicInner;
    let found = first(&scenario, Mutants::only(mutant), Finding::OutOfBounds, 64);
    let (_, detail) = fail(&found);
    assert!(
        detail.contains("program maglev run"),
        "seed {}: {detail}",
        found.seed
    );
    assert!(mutant.detected_by(Finding::OutOfBounds));
    replays(&scenario, mutant, &found);
}

#[test]
fn meta_ignores_max_entries_lets_a_five_slot_table_under_the_fixed_template_and_maglev_fixed_reads_past_it(
) {
    let scenario = parse(&text());
    let mutant = Mutant::MetaIgnoresMaxEntries;
    let found = first(&scenario, Mutants::only(mutant), Finding::OutOfBounds, 400);
    let (_, detail) = fail(&found);
    assert!(
        detail.contains("program maglev_fixed run"),
        "seed {}: {detail}",
        found.seed
    );
    assert!(mutant.detected_by(Finding::OutOfBounds));
    // The update the kernel refuses went through.
    assert!(
        found
            .trace
            .iter()
            .any(|l| l.contains("map_update_elem(services_fixed, 1,")
                && l.ends_with("= 0")
                && found.trace.iter().any(|c| c.contains("max_entries 5"))),
        "seed {}: no accepted 5-slot table in the trace",
        found.seed
    );
    replays(&scenario, mutant, &found);
    // On the correct core that update is -EINVAL.
    let correct = run_one(
        &config(&scenario, Mutants::NONE, SchedulerKind::Swarm),
        found.seed,
    );
    assert!(
        correct
            .trace
            .iter()
            .any(|l| l.contains("map_update_elem(services_fixed, 1,") && l.contains("EINVAL")),
        "seed {}: the correct core did not refuse the 5-slot table",
        found.seed
    );
}

#[test]
fn a_bad_results_check_or_frame_is_named_at_load() {
    let text = text();
    let bad = |from: &str, to: &str, want: &str| {
        let changed = text.replacen(from, to, 1);
        assert_ne!(changed, text, "{from}");
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let e = Scenario::parse_at(&changed, "maglev_xdp.toml", Some(&base))
            .expect_err(to)
            .to_string();
        assert!(e.contains(want), "{to}: {e}");
    };
    bad(
        "returns = [\"XDP_PASS\"]",
        "returns = [\"XDP_PAS\"]",
        "return `XDP_PAS` is no XDP action",
    );
    bad(
        "returns = [\"XDP_PASS\"]",
        "returns = []",
        "checks.results[3]: `returns` is empty",
    );
    bad(
        "frames = [\"no_table\"]",
        "frames = [\"no_tabel\"]",
        "unknown frame `no_tabel`",
    );
    bad(
        "from = \"services:2\"",
        "from = \"servics:2\"",
        "unknown map `servics`",
    );
    bad(
        "from = \"services:2\"",
        "from = \"services\"",
        "is not MAP:KEY",
    );
    bad(
        "offset = 33, size = 1",
        "offset = 33, size = 9",
        "size 9 (1 to 8)",
    );
    bad(
        "frames = [\"web\", \"dns\", \"web_options\"]",
        "frames = [\"web\", \"dnss\", \"web_options\"]",
        "tasks[1]: unknown frame `dnss`",
    );
    bad(
        "[[tasks]]",
        "[frames]\nodd = \"abc\"\n\n[[tasks]]",
        "a frame in hex: odd number of hex digits in 'abc'",
    );
    bad(
        "[[tasks]]",
        "[frames]\nx = \"zz\"\n\n[[tasks]]",
        "a frame in hex: bad hex byte 'zz'",
    );
}

#[test]
fn a_listed_frame_is_given_to_runs_as_written() {
    // A frame listed in hex: an ARP header (passes), the only frame one task gets.
    let text = text().replacen(
        "[[tasks]]",
        "[frames]\nlisted = \"ffffffffffff 020000000002 0806 0001\"\n\n[[tasks]]",
        1,
    );
    let text = text.replacen(
        "frames = [\"web\", \"dns\", \"web_options\"]",
        "frames = [\"listed\"]",
        1,
    );
    let scenario = parse(&text);
    let outcome = run_one(&config(&scenario, Mutants::NONE, SchedulerKind::Random), 1);
    assert_eq!(outcome.verdict, Verdict::Pass);
    assert!(
        outcome
            .trace
            .iter()
            .any(|l| l.contains("(frame listed) = XDP_PASS")),
        "{}",
        outcome.trace.join("\n")
    );
}

/// The bytes the core charges for one map, created on a world of its own.
fn charged(attr: &MapAttr) -> u64 {
    let w = World::<Std>::new(Mutants::NONE, WorldConfig::default());
    let mut attr = *attr;
    if MapType::from_u32(attr.map_type).is_some_and(MapType::is_map_in_map) {
        let template = w
            .map_create(&MapAttr::new(MapType::Array, 4, 4, 1))
            .unwrap();
        attr = attr.inner(template);
    }
    let fd = w.map_create(&attr).unwrap();
    w.footprint(w.map_handle(fd).unwrap()).unwrap()
}

#[test]
fn the_footprint_report_follows_each_outer_maps_tables_to_the_end_of_the_run() {
    let scenario = parse(&text());
    let object = &scenario
        .loaded
        .as_ref()
        .expect("the scenario's object")
        .object;
    let spec = |name: &str| {
        let i = object
            .map_index(name)
            .unwrap_or_else(|| panic!("no map {name}"));
        object.maps[i].attr()
    };
    let table =
        |entries| charged(&MapAttr::new(MapType::Array, 4, 4, entries).flags(BPF_F_INNER_MAP));
    let fixed8 = charged(&MapAttr::new(MapType::Array, 4, 4, 8));
    let outcome = run_one(&config(&scenario, Mutants::NONE, SchedulerKind::Random), 0);
    assert_eq!(outcome.verdict, Verdict::Pass);
    let report = |outer: &str| {
        outcome
            .tables
            .iter()
            .find(|t| t.outer == outer)
            .unwrap_or_else(|| panic!("no {outer} in {:?}", outcome.tables))
            .clone()
    };
    // The dynamic balancer ends with service 1's 5-slot and service 2's 3-slot table; fixed-size
    // tables would be two of the largest it held (8 slots).
    let services = report("services");
    let outer = charged(&spec("services"));
    assert!(services.dynamic);
    assert_eq!((services.most_tables, services.largest_entries), (2, 8));
    assert_eq!(services.end_bytes, outer + table(5) + table(3));
    assert_eq!(services.end_fixed_bytes, outer + 2 * table(8));
    assert!(
        services.peak_bytes >= services.end_bytes && services.peak_bytes <= services.fixed_bytes
    );
    // The fixed balancer's one table is always 8 slots (the 5-slot one is refused).
    let fixed = report("services_fixed");
    let outer = charged(&spec("services_fixed"));
    assert!(!fixed.dynamic);
    assert_eq!((fixed.most_tables, fixed.largest_entries), (1, 8));
    assert_eq!(fixed.end_bytes, outer + fixed8);
    assert_eq!(
        (fixed.peak_bytes, fixed.end_fixed_bytes),
        (fixed.end_bytes, fixed.end_bytes)
    );
}

#[test]
fn the_object_s_outer_maps_are_checked_for_linearizability_without_always_present() {
    // Without `always_present`, only the history of `services` (an object's map, its initial
    // state from the loader) can say a key went missing during a replace.
    let text: String = text()
        .lines()
        .filter(|l| !l.starts_with("always_present"))
        .map(|l| format!("{l}\n"))
        .collect();
    let scenario = parse(&text);
    let found = first(
        &scenario,
        Mutants::only(Mutant::ReplaceByReinsert),
        Finding::LostKey,
        600,
    );
    let (_, detail) = fail(&found);
    assert!(
        detail.contains("no order of these operations is allowed by the sequential model")
            && detail.contains("a read reported the key missing while it was present"),
        "{detail}"
    );
    replays(&scenario, Mutant::ReplaceByReinsert, &found);
}

// The same balancer as a tc program (`sim/scenarios/maglev_tc.toml`): clean, tc's verdicts
// named as tc names them, and `inline_dynamic_inner` found through it.

#[test]
fn maglev_tc_runs_clean_and_every_results_check_sees_its_frames() {
    let scenario = parse_as(&read("maglev_tc.toml"), "maglev_tc.toml");
    let seen = clean_runs(&scenario);
    for want in [
        "maglev_tc dns TC_ACT_REDIRECT",
        "maglev_tc web TC_ACT_REDIRECT",
        "maglev_tc web TC_ACT_SHOT",
        "maglev_tc no_table TC_ACT_SHOT",
        "maglev_tc other TC_ACT_OK",
        "maglev_tc arp TC_ACT_OK",
        "maglev_tc_nat dns TC_ACT_REDIRECT",
        "maglev_tc_nat no_table TC_ACT_SHOT",
        "maglev_tc_nat other TC_ACT_OK",
    ] {
        assert!(seen.contains(want), "never seen: {want}; seen: {seen:?}");
    }
}

#[test]
fn the_results_oracle_names_a_tc_verdict_by_tc_names() {
    let text = read("maglev_tc.toml");
    let changed = text.replacen(
        "frames = [\"no_table\"]\nreturns = [\"TC_ACT_SHOT\"]",
        "frames = [\"no_table\"]\nreturns = [\"TC_ACT_OK\"]",
        1,
    );
    assert_ne!(changed, text);
    let scenario = parse_as(&changed, "maglev_tc.toml");
    let found = first(&scenario, Mutants::NONE, Finding::WrongResult, 20);
    let (_, detail) = fail(&found);
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
    let scenario = parse_as(&read("maglev_tc.toml"), "maglev_tc.toml");
    let mutant = Mutant::InlineDynamicInner;
    let found = first(&scenario, Mutants::only(mutant), Finding::OutOfBounds, 64);
    let (_, detail) = fail(&found);
    // Either tc program reads the slot past the table (maglev_tc or maglev_tc_nat); which
    // one a seed catches first depends on the schedule.
    assert!(
        detail.contains("program maglev_tc run") || detail.contains("program maglev_tc_nat run"),
        "seed {}: {detail}",
        found.seed
    );
    assert!(mutant.detected_by(Finding::OutOfBounds));
    replays(&scenario, mutant, &found);
}
