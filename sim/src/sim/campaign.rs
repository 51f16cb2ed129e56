//! Campaigns: seed ranges, shards, and what a campaign reports.
//!
//! `--seeds A..B` is the half-open range; `--shard I/N` keeps the seeds `s` with
//! `s % N == I`, so N machines (a CI matrix, an indexed batch job) given the same range and
//! shards `0/N` … `N-1/N` run every seed exactly once between them.

use super::engine::{Outcome, Verdict};
use super::scheduler::SchedulerKind;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// A half-open seed range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SeedRange {
    pub start: u64,
    pub end: u64,
}

/// Campaigns larger than this are refused (use shards or several runs): bounds memory for the
/// seed list.
pub const SEEDS_MAX: u64 = 100_000_000;

impl std::str::FromStr for SeedRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "bad seed range `{s}`: expected A..B with A < B (e.g. 0..1000) or a single seed"
            )
        };
        let (start, end) = match s.split_once("..") {
            Some((a, b)) => (
                a.trim().parse::<u64>().map_err(|_| bad())?,
                b.trim().parse::<u64>().map_err(|_| bad())?,
            ),
            None => {
                let a = s.trim().parse::<u64>().map_err(|_| bad())?;
                (a, a.checked_add(1).ok_or_else(bad)?)
            }
        };
        if start >= end {
            return Err(bad());
        }
        if end - start > SEEDS_MAX {
            return Err(format!(
                "seed range `{s}` has more than {SEEDS_MAX} seeds; split it with --shard"
            ));
        }
        Ok(SeedRange { start, end })
    }
}

/// `I/N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("bad shard `{s}`: expected I/N with I < N (e.g. 0/4)");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) = (
            i.trim().parse::<u64>().map_err(|_| bad())?,
            n.trim().parse::<u64>().map_err(|_| bad())?,
        );
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl SeedRange {
    pub fn seeds(&self, shard: Option<Shard>) -> Vec<u64> {
        (self.start..self.end)
            .filter(|s| shard.is_none_or(|sh| s % sh.count == sh.index))
            .collect()
    }
}

/// The command that replays one seed: `flags` are the mutant and kernel flags it ran under
/// (` --mutant X --kernel 6.1`, empty for the correct core on the default kernel).
pub fn replay_line(scenario: &str, scheduler: SchedulerKind, flags: &str, seed: u64) -> String {
    format!(
        "cargo run --release -p mimic-sim -- replay --scenario {scenario} --scheduler {}{flags} --seed {seed} --trace",
        scheduler.name()
    )
}

/// One failing seed, with its replay command.
#[derive(Debug, Clone, Serialize)]
pub struct FailureReport {
    pub scenario: String,
    pub seed: u64,
    pub kind: String,
    pub detail: String,
    pub options: String,
    pub replay: String,
}

/// What a campaign (or one scenario of it) did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub seeds_run: u64,
    pub passed: u64,
    pub cut: u64,
    pub failed: u64,
    pub steps: u64,
    pub elapsed_s: f64,
    pub schedules_per_s: f64,
    pub steps_per_s: f64,
    pub failures_by_invariant: BTreeMap<String, u64>,
    pub failures: Vec<FailureReport>,
}

/// Failures listed in full (the rest are counted).
pub const FAILURES_LISTED_MAX: usize = 20;

impl Summary {
    pub fn add(&mut self, scenario: &str, replay: impl FnOnce(u64) -> String, outcome: &Outcome) {
        self.seeds_run += 1;
        self.steps += outcome.steps;
        match &outcome.verdict {
            Verdict::Pass => self.passed += 1,
            Verdict::Cut => self.cut += 1,
            Verdict::Fail { kind, detail } => {
                self.failed += 1;
                *self.failures_by_invariant.entry(kind.clone()).or_default() += 1;
                if self.failures.len() < FAILURES_LISTED_MAX {
                    self.failures.push(FailureReport {
                        scenario: scenario.to_string(),
                        seed: outcome.seed,
                        kind: kind.clone(),
                        detail: detail.clone(),
                        options: outcome.options.clone(),
                        replay: replay(outcome.seed),
                    });
                }
            }
        }
    }

    pub fn finish(&mut self, elapsed_s: f64) {
        self.elapsed_s = elapsed_s;
        if elapsed_s > 0.0 {
            self.schedules_per_s = self.seeds_run as f64 / elapsed_s;
            self.steps_per_s = self.steps as f64 / elapsed_s;
        }
    }

    pub fn merge(&mut self, other: &Summary) {
        self.seeds_run += other.seeds_run;
        self.passed += other.passed;
        self.cut += other.cut;
        self.failed += other.failed;
        self.steps += other.steps;
        for (k, v) in &other.failures_by_invariant {
            *self.failures_by_invariant.entry(k.clone()).or_default() += v;
        }
        for f in &other.failures {
            if self.failures.len() < FAILURES_LISTED_MAX {
                self.failures.push(f.clone());
            }
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seeds run: {} (passed {}, failed {}, cut by the step budget {}) in {:.2} s: {:.0} schedules/s, {:.0} steps/s",
            self.seeds_run, self.passed, self.failed, self.cut, self.elapsed_s, self.schedules_per_s, self.steps_per_s
        )?;
        if !self.failures_by_invariant.is_empty() {
            let by: Vec<String> = self
                .failures_by_invariant
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            writeln!(f, "failures by invariant: {}", by.join(", "))?;
        }
        for failure in &self.failures {
            writeln!(
                f,
                "FAIL {} seed {} [{}] {}",
                failure.scenario,
                failure.seed,
                failure.kind,
                first_line(&failure.detail)
            )?;
            writeln!(f, "  options: {}", failure.options)?;
            writeln!(f, "  replay:  {}", failure.replay)?;
        }
        Ok(())
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}
