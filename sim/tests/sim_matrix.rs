//! The release matrix pins which releases a shipped scenario fails on and why: each failure's
//! invariant, the fix the matrix puts it down to, and a replay line that reproduces it.

use mimic_core::history::{Release, Semantics, RELEASES};
use mimic_core::profile::KernelProfile;
use mimic_sim::sim::engine::{run_one, RunConfig, Verdict as RunVerdict};
use mimic_sim::sim::matrix::{matrix, Cell, Plan, Verdict};
use mimic_sim::sim::scenario::Scenario;
use mimic_sim::sim::scheduler::SchedulerKind;

fn run_matrix(name: &str, seeds: u64, with: &[&str]) -> Vec<Cell> {
    let scenario = Scenario::load(name).expect("built-in");
    let seeds: Vec<u64> = (0..seeds).collect();
    let plan = Plan {
        scenario: &scenario,
        scenario_arg: name,
        seeds: &seeds,
        schedulers: &SchedulerKind::ALL,
        releases: &RELEASES,
        with,
    };
    matrix(&plan, &mut |_| {}).expect("known releases and fixes")
}

/// Each cell as `release: kind(fix+fix) kind(fix) ...` or `release: pass`.
fn summary(cells: &[Cell]) -> Vec<String> {
    cells
        .iter()
        .map(|c| match &c.verdict {
            Verdict::Pass { .. } => format!("{}: pass", c.release),
            Verdict::Fail { failures } => {
                let parts: Vec<String> = failures
                    .iter()
                    .map(|f| {
                        let fixes: Vec<&str> = f.fixes.iter().map(|b| b.fix.as_str()).collect();
                        format!("{}({})", f.kind, fixes.join("+"))
                    })
                    .collect();
                format!("{}: {}", c.release, parts.join(" "))
            }
        })
        .collect()
}

/// The summary when 5.10 to 6.6 fail with `older` (all before the deferred free of 6.8), 6.12
/// with `on_6_12` and 6.18 passes.
fn expected(older: &str, on_6_12: &str) -> Vec<String> {
    let mut out: Vec<String> = ["5.10", "5.15", "6.1", "6.6"]
        .iter()
        .map(|r| format!("{r}: {older}"))
        .collect();
    out.push(format!("6.12: {on_6_12}"));
    out.push("6.18: pass".to_string());
    out
}

/// The value after `flag` in a replay line.
fn arg<'a>(line: &'a str, flag: &str) -> Option<&'a str> {
    let mut words = line.split_whitespace();
    words.find(|w| *w == flag)?;
    words.next()
}

/// Every failure's replay line, run: the same invariant.
fn assert_replays_reproduce(name: &str, cells: &[Cell]) {
    let scenario = Scenario::load(name).expect("built-in");
    for cell in cells {
        let Verdict::Fail { failures } = &cell.verdict else {
            continue;
        };
        for f in failures {
            let line = &f.replay;
            let release: Release = arg(line, "--kernel").expect("a release").parse().unwrap();
            let with: Vec<&str> =
                arg(line, "--with").map_or(Vec::new(), |w| w.split(',').collect());
            let semantics = Semantics::of(release, &with).expect("known fixes");
            let scheduler = match arg(line, "--scheduler") {
                Some("random") => SchedulerKind::Random,
                Some("pct") => SchedulerKind::Pct,
                _ => SchedulerKind::Swarm,
            };
            let seed: u64 = arg(line, "--seed").expect("a seed").parse().unwrap();
            let config = RunConfig {
                scenario: scenario.clone(),
                mutants: semantics.mutants,
                scheduler,
                keep_trace: false,
                profile: *KernelProfile::mainline(),
                lacks: semantics.lacks,
            };
            match run_one(&config, seed).verdict {
                RunVerdict::Fail { kind, .. } => assert_eq!(kind, f.kind, "{line}"),
                other => panic!("{line} does not reproduce [{}]: {other:?}", f.kind),
            }
        }
    }
}

#[test]
fn maglev_fails_on_every_release_before_6_13_for_the_reasons_history_gives() {
    // 400 seeds: what each seed's schedule is depends on every synchronising step of the
    // run, setup included (loading a program into the world is some), so the budget is the
    // one at which every release's failures show, not a tuned minimum. The first use after
    // free found before 6.8 goes away only with the atomic update of 6.16 as well.
    let cells = run_matrix("maglev", 400, &[]);
    let older = "lock_order(free_htab_elem_after_unlock) \
                 use_after_free(fd_put_need_defer+defer_inner_map_free+hash_of_maps_atomic_update)";
    let on_6_12 = "lock_order(free_htab_elem_after_unlock) lost_key(hash_of_maps_atomic_update)";
    assert_eq!(summary(&cells), expected(older, on_6_12));
    assert_replays_reproduce("maglev", &cells);
}

#[test]
fn seed000_meets_the_bucket_lock_put_first_and_the_deferred_free_after_it() {
    let cells = run_matrix("seed000", 100, &[]);
    let older = "lock_order(free_htab_elem_after_unlock) \
                 use_after_free(fd_put_need_defer+defer_inner_map_free)";
    let on_6_12 = "lock_order(free_htab_elem_after_unlock)";
    assert_eq!(summary(&cells), expected(older, on_6_12));
    assert_replays_reproduce("seed000", &cells);
}

#[test]
fn a_backported_fix_named_with_with_removes_its_failure_from_every_cell() {
    let cells = run_matrix("seed000", 100, &["free_htab_elem_after_unlock"]);
    let s = summary(&cells);
    assert_eq!(s[4], "6.12: pass", "{s:?}");
    assert!(
        s[0].starts_with("5.10: use_after_free(fd_put_need_defer+defer_inner_map_free)"),
        "{s:?}"
    );
    assert!(cells
        .iter()
        .all(|c| c.with == ["free_htab_elem_after_unlock"]));
    assert_replays_reproduce("seed000", &cells);
}

#[test]
fn the_matrix_command_refuses_unknown_releases_and_fixes() {
    for (args, want) in [
        (vec!["--kernels", "5.4"], "5.4"),
        (vec!["--with", "no_such_fix"], "no_such_fix"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mimic"))
            .args(["matrix", "--scenario", "seed000", "--seeds", "0..2"])
            .args(&args)
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
}

#[test]
fn commands_that_cannot_apply_a_release_refuse_it_instead_of_ignoring_it() {
    for args in [
        vec!["mutants", "--kernel", "6.1"],
        vec!["kernel-check", "--kernel", "6.1"],
        vec!["kernel-check", "--with", "defer_inner_map_free"],
        vec![
            "run",
            "--scenario",
            "seed000",
            "--with",
            "defer_inner_map_free",
        ],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mimic"))
            .args(&args)
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("--kernel"), "{args:?}: {stderr}");
    }
}
