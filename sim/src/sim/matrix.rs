//! The release matrix: one scenario run under each release profile (`mimic_core::history`),
//! answering "is this control plane safe on 5.15, 6.1, ...?". Each cell is the seeds and
//! schedulers run until the first failure, and a failing cell names the change that closed it:
//! the failing seed is run again with each of the release's old behaviours fixed in turn, and
//! the changes whose fix makes that failure go away are the cause (several when only fixing
//! them together does). A cell goes on past its first failure with the blamed fixes added, so
//! it lists every old behaviour the scenario meets on that release.
//!
//! The alternative, running each catalogue mutant alone, says which bug a scenario can see, not
//! which kernels it fails on: releases carry several old behaviours at once, and one can hide
//! or reveal another.
//!
//! Main types: [`Cell`] (one release's result) and [`Verdict`]. Invariant: every failing cell's
//! replay line reproduces its failure (same seed, scheduler and `--kernel`), which the tests
//! check.

use super::campaign::replay_line;
use super::engine::{run_one, RunConfig, Verdict as RunVerdict};
use super::scenario::Scenario;
use super::scheduler::SchedulerKind;
use mimic_core::history::{Before, Change, Release, Semantics};
use mimic_core::profile::KernelProfile;
use serde::Serialize;

/// One release's result.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub release: String,
    /// The fixes the release was given on top (`--with`).
    pub with: Vec<String>,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "verdict", rename_all = "lowercase")]
pub enum Verdict {
    /// Every seed under every scheduler passed.
    Pass { runs: u64 },
    /// The first failure, then each failure found once the fixes blamed so far are added (the
    /// next old behaviour the scenario meets), until it passes.
    Fail { failures: Vec<Failure> },
}

/// One failure of a cell.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// The failure's invariant (`use_after_free`, ...).
    pub kind: String,
    pub detail: String,
    pub seed: u64,
    pub scheduler: String,
    /// Runs up to and including the failing one (since the previous failure).
    pub runs: u64,
    /// The fixes (`Change::fix`) whose absence the failure needs.
    pub fixes: Vec<Blame>,
    /// Reproduces it: the release, with the fixes blamed for earlier failures added.
    pub replay: String,
}

/// A change a failure is put down to.
#[derive(Debug, Clone, Serialize)]
pub struct Blame {
    pub fix: String,
    pub commit: String,
    pub release: String,
    /// The old behaviour the fix removed: catalogue mutants, or the feature that was missing.
    pub was: String,
}

impl From<&Change> for Blame {
    fn from(c: &Change) -> Blame {
        let was = match c.before {
            Before::Lacked(feature) => format!("lacked {feature:?}"),
            Before::Bugs(bugs) | Before::NeverReleased(bugs) => {
                bugs.iter().map(|m| m.id()).collect::<Vec<_>>().join(", ")
            }
        };
        Blame {
            fix: c.fix.to_string(),
            commit: c.commit.to_string(),
            release: c.release.to_string(),
            was,
        }
    }
}

/// What a matrix runs.
pub struct Plan<'a> {
    pub scenario: &'a Scenario,
    /// How a replay line names the scenario (a built-in's name or the file given).
    pub scenario_arg: &'a str,
    pub seeds: &'a [u64],
    pub schedulers: &'a [SchedulerKind],
    pub releases: &'a [Release],
    pub with: &'a [&'a str],
}

/// Runs the scenario under each release; `progress` is called after each cell.
pub fn matrix(plan: &Plan, progress: &mut dyn FnMut(&Cell)) -> Result<Vec<Cell>, String> {
    let mut cells = Vec::new();
    for &release in plan.releases {
        let semantics = Semantics::of(release, plan.with)?;
        let cell = Cell {
            release: release.to_string(),
            with: semantics.with.iter().map(|f| f.to_string()).collect(),
            verdict: run_cell(plan, &semantics),
        };
        progress(&cell);
        cells.push(cell);
    }
    Ok(cells)
}

fn config(plan: &Plan, semantics: &Semantics, scheduler: SchedulerKind) -> RunConfig {
    RunConfig {
        scenario: plan.scenario.clone(),
        mutants: semantics.mutants,
        scheduler,
        keep_trace: false,
        profile: *KernelProfile::mainline(),
        lacks: semantics.lacks,
    }
}

fn run_cell(plan: &Plan, semantics: &Semantics) -> Verdict {
    let Some(release) = semantics.release else {
        return Verdict::Pass { runs: 0 };
    };
    let mut failures = Vec::new();
    let mut with: Vec<&str> = semantics.with.clone();
    let mut total = 0;
    // Each round fixes at least one more change, so there are at most as many rounds.
    for _ in 0..=semantics.in_force().len() {
        let Ok(now) = Semantics::of(release, &with) else {
            break;
        };
        let (runs, failure) = first_failure(plan, &now);
        total += runs;
        let Some(failure) = failure else {
            break;
        };
        let new: Vec<&'static str> = failure
            .fixes
            .iter()
            .filter_map(|b| Change::by_fix(&b.fix).ok().map(|c| c.fix))
            .filter(|f| !with.contains(f))
            .collect();
        failures.push(failure);
        if new.is_empty() {
            break;
        }
        with.extend(new);
    }
    if failures.is_empty() {
        Verdict::Pass { runs: total }
    } else {
        Verdict::Fail { failures }
    }
}

/// The seeds under each scheduler until the first failure: runs made, and the failure.
fn first_failure(plan: &Plan, semantics: &Semantics) -> (u64, Option<Failure>) {
    let mut runs = 0;
    for &scheduler in plan.schedulers {
        let config = config(plan, semantics, scheduler);
        for &seed in plan.seeds {
            runs += 1;
            let outcome = run_one(&config, seed);
            if let RunVerdict::Fail { kind, detail } = outcome.verdict {
                let fixes = blame(plan, semantics, scheduler, seed, &kind);
                let failure = Failure {
                    replay: replay_line(plan.scenario_arg, scheduler, &semantics.flags(), seed),
                    kind,
                    detail,
                    seed,
                    scheduler: scheduler.name().to_string(),
                    runs,
                    fixes,
                };
                return (runs, Some(failure));
            }
        }
    }
    (runs, None)
}

/// The changes a failure (`kind` at `seed`) is put down to: those whose fix alone makes it go
/// away; else the in-force changes whose old behaviour has that finding, when fixing them
/// together does (two paths to one bug, like the deferred free and its put); else every change
/// in force, when only fixing them all does; else none (today's semantics fail it too).
fn blame(
    plan: &Plan,
    semantics: &Semantics,
    scheduler: SchedulerKind,
    seed: u64,
    kind: &str,
) -> Vec<Blame> {
    let Some(release) = semantics.release else {
        return Vec::new();
    };
    let cures = |fixes: &[&Change]| {
        let mut with: Vec<&str> = semantics.with.clone();
        with.extend(fixes.iter().map(|c| c.fix));
        let Ok(fixed) = Semantics::of(release, &with) else {
            return false;
        };
        let outcome = run_one(&config(plan, &fixed, scheduler), seed);
        !matches!(&outcome.verdict, RunVerdict::Fail { kind: k, .. } if k == kind)
    };
    let in_force = semantics.in_force();
    let alone: Vec<&Change> = in_force.iter().copied().filter(|c| cures(&[c])).collect();
    let same_finding: Vec<&Change> = in_force
        .iter()
        .copied()
        .filter(|c| {
            c.mutants()
                .iter()
                .any(|m| m.expected_finding().is_some_and(|f| f.name() == kind))
        })
        .collect();
    let chosen = if !alone.is_empty() {
        alone
    } else if !same_finding.is_empty() && cures(&same_finding) {
        same_finding
    } else if cures(&in_force) {
        in_force
    } else {
        Vec::new()
    };
    chosen.into_iter().map(Blame::from).collect()
}

/// The matrix as text: a row per release (its failures, each with the fix that closed it and
/// a replay line), then which fix closed what where.
pub fn render(scenario: &str, cells: &[Cell]) -> String {
    let mut out = format!("matrix of {scenario}\n");
    for cell in cells {
        let name = if cell.with.is_empty() {
            cell.release.clone()
        } else {
            format!("{} + {}", cell.release, cell.with.join(","))
        };
        match &cell.verdict {
            Verdict::Pass { runs } => out.push_str(&format!("  {name:<6} pass ({runs} runs)\n")),
            Verdict::Fail { failures } => {
                for (i, f) in failures.iter().enumerate() {
                    let fixed_by: Vec<String> = f
                        .fixes
                        .iter()
                        .map(|b| format!("{} ({}, {}; was {})", b.fix, b.commit, b.release, b.was))
                        .collect();
                    let fixed_by = if fixed_by.is_empty() {
                        vec![
                            "none of the release's old behaviours (today's kernel fails too)"
                                .into(),
                        ]
                    } else {
                        fixed_by
                    };
                    let head = if i == 0 {
                        format!("{name:<6} FAIL")
                    } else {
                        format!("{:<6} then", "")
                    };
                    out.push_str(&format!(
                        "  {head} [{}] after {} runs (seed {}, {}): fixed by {}\n         \
                         {}\n         replay: {}\n",
                        f.kind,
                        f.runs,
                        f.seed,
                        f.scheduler,
                        fixed_by.join(" + "),
                        f.detail,
                        f.replay
                    ));
                }
            }
        }
    }
    let mut by_fix: Vec<(String, Vec<String>)> = Vec::new();
    for cell in cells {
        let Verdict::Fail { failures } = &cell.verdict else {
            continue;
        };
        for b in failures.iter().flat_map(|f| &f.fixes) {
            let label = format!("{} ({}, first in {})", b.fix, b.commit, b.release);
            match by_fix.iter_mut().find(|(l, _)| *l == label) {
                Some((_, releases)) => {
                    if !releases.contains(&cell.release) {
                        releases.push(cell.release.clone());
                    }
                }
                None => by_fix.push((label, vec![cell.release.clone()])),
            }
        }
    }
    if by_fix.is_empty() {
        out.push_str("affected: none\n");
    } else {
        out.push_str("affected (fix: releases whose run it would have saved):\n");
        for (label, releases) in by_fix {
            out.push_str(&format!("  {label}: {}\n", releases.join(", ")));
        }
    }
    out
}
