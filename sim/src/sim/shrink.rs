//! Shrinking: reduce a failing seed's scenario (its instantiated form, with every mix drawn)
//! to a smaller one that still fails **for the same reason** (the same invariant), by greedy
//! deletion: whole tasks, then chunks of ops, then single ops, then program runs.
//!
//! Removing an op changes the schedule a seed produces, so a candidate is tried on a small
//! window of seeds starting at the original one ([`SHRINK_SEEDS`]); the result names the seed
//! that failed with it.

use super::engine::{run_seeds, RunConfig, Verdict};
use super::scenario::{Scenario, TaskKind};

/// Seeds tried per candidate.
pub const SHRINK_SEEDS: u64 = 32;
/// Candidates tried in all (bounds the shrink's time).
pub const SHRINK_ATTEMPTS_MAX: usize = 2_000;

/// The result of a shrink.
#[derive(Debug, Clone)]
pub struct Shrunk {
    pub scenario: Scenario,
    pub seed: u64,
    pub kind: String,
    pub attempts: usize,
    pub ops_before: usize,
    pub ops_after: usize,
}

pub fn size(s: &Scenario) -> usize {
    s.tasks
        .iter()
        .map(|t| t.ops.len() + t.runs as usize + 1)
        .sum()
}

/// Does `candidate` fail with `kind` on some seed of the window? Returns that seed.
fn fails(config: &RunConfig, candidate: &Scenario, seed: u64, kind: &str) -> Option<u64> {
    if candidate.validate().is_err() {
        return None;
    }
    let config = RunConfig {
        scenario: candidate.clone(),
        keep_trace: false,
        ..config.clone()
    };
    let seeds: Vec<u64> = (seed..seed.saturating_add(SHRINK_SEEDS)).collect();
    let mut found = None;
    // Run seeds one at a time so the search stops at the first hit.
    for s in seeds {
        run_seeds(&config, &[s], &mut |o| {
            if let Verdict::Fail { kind: k, .. } = &o.verdict {
                if k == kind && found.is_none() {
                    found = Some(o.seed);
                }
            }
        });
        if found.is_some() {
            break;
        }
    }
    found
}

/// Shrinks `config.scenario` (instantiated for `seed`), which fails with `kind` on `seed`.
pub fn shrink(config: &RunConfig, seed: u64, kind: &str) -> Shrunk {
    let Ok(mut best) = config.scenario.instantiate(seed) else {
        // Nothing ran: a scenario whose mix cannot be drawn fails at setup, before any seed.
        return Shrunk {
            scenario: config.scenario.clone(),
            seed,
            kind: kind.to_string(),
            attempts: 0,
            ops_before: size(&config.scenario),
            ops_after: size(&config.scenario),
        };
    };
    best.name = format!("{}-shrunk", config.scenario.name);
    let ops_before = size(&best);
    let mut best_seed = seed;
    let mut attempts = 0;
    let mut progress = true;
    while progress && attempts < SHRINK_ATTEMPTS_MAX {
        progress = false;
        for candidate in candidates(&best) {
            if attempts >= SHRINK_ATTEMPTS_MAX {
                break;
            }
            attempts += 1;
            if let Some(s) = fails(config, &candidate, best_seed, kind) {
                best = candidate;
                best_seed = s;
                progress = true;
                break;
            }
        }
    }
    Shrunk {
        ops_after: size(&best),
        scenario: best,
        seed: best_seed,
        kind: kind.to_string(),
        attempts,
        ops_before,
    }
}

/// Smaller variants of `s`, biggest cuts first.
fn candidates(s: &Scenario) -> Vec<Scenario> {
    let mut out = Vec::new();
    // Whole tasks (fixing up irq tasks' CPU references).
    for i in 0..s.tasks.len() {
        if s.tasks.len() == 1 || s.tasks.iter().any(|t| t.on_cpu_of == Some(i)) {
            continue;
        }
        let mut c = s.clone();
        c.tasks.remove(i);
        for t in &mut c.tasks {
            if let Some(j) = t.on_cpu_of {
                if j > i {
                    t.on_cpu_of = Some(j - 1);
                }
            }
        }
        out.push(c);
    }
    for (i, task) in s.tasks.iter().enumerate() {
        let n = task.ops.len();
        // Halves, then quarters... then single ops.
        let mut chunk = n / 2;
        while chunk >= 1 {
            let mut start = 0;
            while start < n {
                let mut c = s.clone();
                c.tasks[i].ops.drain(start..(start + chunk).min(n));
                out.push(c);
                start += chunk;
            }
            chunk /= 2;
        }
        if matches!(task.kind, TaskKind::Program | TaskKind::Irq) && task.runs > 1 {
            let mut c = s.clone();
            c.tasks[i].runs = task.runs / 2;
            out.push(c);
            let mut c = s.clone();
            c.tasks[i].runs = task.runs - 1;
            out.push(c);
        }
    }
    // Initial entries.
    for i in 0..s.entries.len() {
        let mut c = s.clone();
        c.entries.remove(i);
        out.push(c);
    }
    out
}
