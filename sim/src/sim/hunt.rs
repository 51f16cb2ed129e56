//! Hunting mutants: for each mutant of the catalogue, which scenarios should expose it, and a
//! bounded search over seeds. "Detected" means failing **for the reason the mutant
//! introduces** ([`Mutant::expected_finding`]), so a failure of another kind does not count.

use super::engine::{run_seeds, run_seeds_shuttle_random, RunConfig, Verdict};
use super::scenario::Scenario;
use super::scheduler::SchedulerKind;
use mimic_core::finding::Finding;
use mimic_core::mutants::{Mutant, Mutants};
use mimic_core::profile::KernelProfile;
use serde::Serialize;
use std::time::Instant;

/// Where a mutant is looked for; its failure must be [`Mutant::expected_finding`].
pub struct Plan {
    pub scenarios: &'static [&'static str],
    pub finding: Finding,
}

/// The plan for `mutant`, or `None` for mutants only the verifier's own tests can see (a
/// changed state count, not a run-time harm).
pub fn plan(mutant: Mutant) -> Option<Plan> {
    use Mutant::*;
    let scenarios: &'static [&'static str] = match mutant {
        FreeInnerWithoutGp | PutWithoutDefer => {
            &["reader_replace_array", "reader_replace_hash", "maglev"]
        }
        IgnoreSleepableGp => &["sleepable"],
        LeakOnReplace => &["seed000", "two_updaters"],
        ReplaceByReinsert => &["two_updaters", "nulls_restart"],
        NoNullsRestart | FreelistAliasesNext => &["nulls_restart_prog", "nulls_restart"],
        MetaIgnoresMaxEntries => &["fixed_inner_size"],
        // The verifier's fixups: a dynamic inner array's lookup inlined against the template
        // (8 slots) reads past a smaller table; an inlined inner lookup scaled by an element
        // size of 0 bumps inner[0] instead of inner[3].
        InlineDynamicInner => &["maglev"],
        MetaElemSizeZero => &["inner_array_lookup"],
        NoWaitAfterUpdate => &["drain_after_swap"],
        LockSlotUnmasked => &["nested_update"],
        PutUnderBucketLock => &["seed000", "reader_replace_hash"],
        InnerMapUidAlways => &[],
    };
    Some(Plan {
        scenarios,
        finding: mutant.expected_finding()?,
    })
}

/// Which engine a hunt uses: one of mimic's schedulers, or plain shuttle random.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Engine {
    Mimic(SchedulerKind),
    ShuttleRandom,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::Mimic(k) => k.name(),
            Engine::ShuttleRandom => "shuttle-random",
        }
    }
}

/// The result of one hunt.
#[derive(Debug, Clone, Serialize)]
pub struct Hunt {
    pub mutant: String,
    pub engine: String,
    /// The first seed that failed for the mutant's reason, and its scenario.
    pub found: Option<(String, u64)>,
    /// Schedules (seeds) run up to and including the first failure (or the budget).
    pub schedules: u64,
    pub seconds: f64,
    /// Failures of other kinds met on the way (reported, never counted as detection).
    pub other_failures: Vec<String>,
}

/// Runs seeds `first..first + budget` (seed `s` on scenario `s % n`) until the mutant fails
/// for its reason.
pub fn hunt(
    mutant: Mutant,
    engine: Engine,
    first: u64,
    budget: u64,
    profile: KernelProfile,
) -> Option<Hunt> {
    let plan = plan(mutant)?;
    let scenarios: Vec<Scenario> = plan
        .scenarios
        .iter()
        .map(|n| Scenario::load(n).unwrap_or_else(|e| panic!("built-in: {e}")))
        .collect();
    let started = Instant::now();
    let mut schedules = 0;
    let mut other = Vec::new();
    /// Seeds per batch: within a batch the plan's scenarios take the seeds in turn (a seed goes
    /// to scenario `seed mod count`), so each scenario is tried early and every seed once; each
    /// seed is its own run, so the count of schedules to the first failure is exact.
    const BATCH: u64 = 16;
    let mut next = first;
    while next < first + budget {
        for (i, scenario) in scenarios.iter().enumerate() {
            let seeds: Vec<u64> = (next..(next + BATCH).min(first + budget))
                .filter(|s| (s % scenarios.len() as u64) == i as u64)
                .collect();
            if seeds.is_empty() {
                continue;
            }
            let config = RunConfig {
                scenario: scenario.clone(),
                mutants: Mutants::only(mutant),
                scheduler: match engine {
                    Engine::Mimic(k) => k,
                    Engine::ShuttleRandom => SchedulerKind::Random,
                },
                keep_trace: false,
                profile,
                lacks: mimic_core::history::Lacks::NONE,
            };
            let mut found: Option<u64> = None;
            for &seed in &seeds {
                let mut outcome = None;
                match engine {
                    Engine::Mimic(_) => run_seeds(&config, &[seed], &mut |o| outcome = Some(o)),
                    Engine::ShuttleRandom => {
                        run_seeds_shuttle_random(&config, &[seed], &mut |o| outcome = Some(o))
                    }
                }
                schedules += 1;
                if let Some(Verdict::Fail { kind, .. }) = outcome.map(|o| o.verdict) {
                    if kind == plan.finding.name() {
                        found = Some(seed);
                        break;
                    } else if other.len() < 5 {
                        other.push(format!("{} seed {seed}: {kind}", scenario.name));
                    }
                }
            }
            if let Some(seed) = found {
                return Some(Hunt {
                    mutant: mutant.id().into(),
                    engine: engine.name().into(),
                    found: Some((scenario.name.clone(), seed)),
                    schedules,
                    seconds: started.elapsed().as_secs_f64(),
                    other_failures: other,
                });
            }
        }
        next += BATCH;
    }
    Some(Hunt {
        mutant: mutant.id().into(),
        engine: engine.name().into(),
        found: None,
        schedules,
        seconds: started.elapsed().as_secs_f64(),
        other_failures: other,
    })
}
