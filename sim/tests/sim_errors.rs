//! Bad input is an error naming what and where, never a panic: unknown scenarios, malformed
//! TOML, dangling names, bad assembly, programs the verifier refuses, bad seed ranges and
//! shards.

use mimic_core::mutants::Mutants;
use mimic_sim::sim::campaign::{SeedRange, Shard};
use mimic_sim::sim::engine::{run_one, RunConfig, Verdict};
use mimic_sim::sim::scenario::Scenario;
use mimic_sim::sim::scheduler::SchedulerKind;
use std::process::Command;

fn parse_err(text: &str) -> String {
    Scenario::parse(text, "bad.toml")
        .expect_err("must be refused")
        .to_string()
}

#[test]
fn malformed_scenarios_are_refused_with_the_place_named() {
    let e = parse_err("name = \"x\"\n[[tasks]\nkind = \"user\"\n");
    assert!(e.contains("bad.toml") && e.contains("line"), "{e}");
    let e = parse_err("name = \"x\"\n[[tasks]]\nkind = \"user\"\nops = [\"update nomap 1 2\"]\n");
    assert!(e.contains("tasks[0]") && e.contains("nomap"), "{e}");
    let e = parse_err("name = \"x\"\n[[maps]]\nname = \"m\"\ntype = \"tree\"\nmax_entries = 1\n[[tasks]]\nkind = \"user\"\n");
    assert!(e.contains("map `m`") && e.contains("tree"), "{e}");
    let e = parse_err(
        "name = \"x\"\n[[maps]]\nname = \"m\"\ntype = \"array\"\nmax_entries = 1\n[[programs]]\nname = \"p\"\nsource = \"mov %r0, 1\\nbogus %r1\\nexit\"\n[[tasks]]\nkind = \"program\"\nprogram = \"p\"\n",
    );
    assert!(
        e.contains("program `p`") && e.contains("2:"),
        "assembly errors name the line: {e}"
    );
    let e = parse_err("name = \"x\"\n[[tasks]]\nkind = \"irq\"\nprogram = \"p\"\n");
    assert!(e.contains("tasks[0]"), "{e}");
    let e = Scenario::load("no_such_scenario").unwrap_err().to_string();
    assert!(
        e.contains("no_such_scenario") && e.contains("maglev"),
        "{e}"
    );
}

#[test]
fn an_op_that_cannot_run_is_a_load_error_at_its_line() {
    let text = "name = \"x\"\n[[maps]]\nname = \"m\"\ntype = \"array\"\nmax_entries = 2\n[[tasks]]\nkind = \"user\"\nops = [\"lookup m 0\",\n  \"lookup m one\"]\n";
    let e = parse_err(text);
    assert!(
        e.contains("line 8") && e.contains("op `lookup m one`") && e.contains("key `one`"),
        "{e}"
    );
    // Every op a mix can draw is checked, not only the first key's and shape's.
    let mix = "name = \"x\"\n[shapes]\ninner = { type = \"array\", max_entries = 1 }\n[[maps]]\nname = \"outer\"\ntype = \"array_of_maps\"\nmax_entries = 2\ninner = \"inner\"\n[[tasks]]\nkind = \"user\"\nmix = [\"update outer 0 new:{shape}\"]\ncount = 4\nshapes = [\"inner\", \"missing\"]\n";
    let e = parse_err(mix);
    assert!(
        e.contains("tasks[0]")
            && e.contains("new:missing")
            && e.contains("unknown shape `missing`"),
        "{e}"
    );
    let ok = mix.replace("\"missing\"", "\"inner\"");
    let scenario = Scenario::parse(&ok, "ok.toml").expect("both choices exist");
    let drawn = scenario
        .instantiate(7)
        .expect("a validated mix instantiates");
    assert_eq!(drawn.tasks[0].ops.len(), 4);
    assert_eq!(
        drawn.tasks[0].ops[0].to_string(),
        "update outer 0 new:inner"
    );
}

#[test]
fn bad_seed_ranges_and_shards_are_refused() {
    for bad in ["", "5..5", "9..3", "a..b", "1..", "0..200000000"] {
        assert!(bad.parse::<SeedRange>().is_err(), "{bad:?} accepted");
    }
    assert_eq!(
        "3".parse::<SeedRange>().unwrap(),
        SeedRange { start: 3, end: 4 }
    );
    for bad in ["1/1", "2/1", "0/0", "x/2", "1"] {
        assert!(bad.parse::<Shard>().is_err(), "{bad:?} accepted");
    }
    let range: SeedRange = "0..10".parse().unwrap();
    let a = range.seeds(Some("0/3".parse().unwrap()));
    let b = range.seeds(Some("1/3".parse().unwrap()));
    let c = range.seeds(Some("2/3".parse().unwrap()));
    let mut all: Vec<u64> = a.iter().chain(&b).chain(&c).copied().collect();
    all.sort();
    assert_eq!(
        all,
        (0..10).collect::<Vec<_>>(),
        "shards partition the range"
    );
}

#[test]
fn the_command_reports_bad_input_with_exit_code_2_and_no_panic() {
    let dir = std::env::temp_dir().join(format!("mimic-sim-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "name = 3\n").unwrap();
    for args in [
        vec!["run", "--scenario", "nope"],
        vec!["run", "--scenario", bad.to_str().unwrap()],
        vec!["replay", "--scenario", "nope", "--seed", "1"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_mimic"))
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.starts_with("error:") && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
    let out = Command::new(env!("CARGO_BIN_EXE_mimic"))
        .args(["run", "--seeds", "9..3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "clap refuses a bad range");
    assert!(String::from_utf8_lossy(&out.stderr).contains("9..3"));
}

fn run_setup(text: &str) -> Verdict {
    let config = RunConfig {
        scenario: Scenario::parse(text, "refused.toml").expect("parses"),
        mutants: Mutants::NONE,
        scheduler: SchedulerKind::Random,
        keep_trace: false,
        profile: *mimic_core::profile::KernelProfile::newest(),
        lacks: mimic_core::history::Lacks::NONE,
    };
    run_one(&config, 0).verdict
}

const UNSAFE_PROGRAM: &str = r#"name = "refused"
[[maps]]
name = "m"
type = "hash"
max_entries = 2
[[programs]]
name = "no_null_check"
source = """
    stw [%r10-4], 0
    lddw %r1, map(m)
    mov %r2, %r10
    add %r2, -4
    call 1
    ldxw %r0, [%r0+0]
    exit
"""
[[tasks]]
kind = "program"
program = "no_null_check"
"#;

/// A program the verifier refuses (a lookup result dereferenced without a NULL check) is a
/// setup failure naming the scenario and the program, with the verifier's log: never a panic.
#[test]
fn a_program_the_verifier_refuses_is_a_setup_error_with_its_log() {
    match run_setup(UNSAFE_PROGRAM) {
        Verdict::Fail { kind, detail } => {
            assert_eq!(kind, "setup", "{detail}");
            assert!(
                detail.contains("scenario `refused`")
                    && detail.contains("program `no_null_check`")
                    && detail.contains("refused by the verifier")
                    && detail.contains("verifier log"),
                "{detail}"
            );
        }
        other => panic!("an unsafe program was loaded: {other:?}"),
    }
    // The same program with the check loads and runs.
    let safe = UNSAFE_PROGRAM.replace(
        "    ldxw %r0, [%r0+0]\n",
        "    jeq %r0, 0, out\n    ldxw %r0, [%r0+0]\nout:\n",
    );
    assert_eq!(run_setup(&safe), Verdict::Pass, "the NULL-checked program");
}

/// `unprivileged = true` loads without CAP_BPF: leaking a map pointer in r0 is refused then,
/// accepted for a privileged load.
#[test]
fn unprivileged_programs_get_the_unprivileged_rules() {
    let leak = |unpriv: bool| {
        format!(
            "name = \"leak\"\n[[maps]]\nname = \"m\"\ntype = \"array\"\nmax_entries = 1\n[[programs]]\nname = \"p\"\nunprivileged = {unpriv}\nsource = \"\"\"\n    lddw %r0, map(m)\n    exit\n\"\"\"\n[[tasks]]\nkind = \"program\"\nprogram = \"p\"\n"
        )
    };
    assert_eq!(run_setup(&leak(false)), Verdict::Pass, "privileged load");
    match run_setup(&leak(true)) {
        Verdict::Fail { kind, detail } => {
            assert_eq!(kind, "setup", "{detail}");
            assert!(detail.contains("program `p`"), "{detail}");
        }
        other => panic!("an unprivileged pointer leak was loaded: {other:?}"),
    }
}
