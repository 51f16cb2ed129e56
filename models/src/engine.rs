//! The three engines, one entry point: [`explore`] runs a scenario under loom, shuttle's random
//! scheduler or shuttle's PCT scheduler, counts executions, times the run and hands back the
//! first failure (its panic message, whose [`crate::driver::finding_kind`] says why).
//!
//! Budgets come from the environment so CI (2 cores, a total budget) and a full local run use
//! the same tests:
//! * `LOOM_MAX_PREEMPTIONS` (default [`LOOM_PREEMPTIONS_DEFAULT`]): loom's preemption bound;
//! * `MIMIC_SHUTTLE_ITERATIONS` (default [`SHUTTLE_ITERATIONS_DEFAULT`]): schedules per shuttle
//!   checker and scenario on the correct core;
//! * `MIMIC_SHUTTLE_SEED` (default [`SHUTTLE_SEED_DEFAULT`]): the schedulers' seed (fixed, so a
//!   CI failure reproduces);
//! * `MIMIC_SCHEDULE_DIR` (default `target/shuttle-schedules`): where shuttle writes a failing
//!   schedule (`scheduleNNN.txt`, replayed with `shuttle::replay_from_file`; see README).

use crate::driver;
use crate::scenario::Scenario;
use mimic_core::history::{Lacks, Release, Semantics};
use mimic_core::mutants::Mutants;
use mimic_core::sync::{Loom, Shuttle};
use shuttle::scheduler::{PctScheduler, RandomScheduler, Scheduler};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Two preemptions: enough for "preempt the reader between its lookup and its access, let the
/// writer run, preempt again at the free", the shape of every race in the catalogue.
pub const LOOM_PREEMPTIONS_DEFAULT: usize = 2;
/// Per checker and scenario: the acceptance figure (10,000 random and 10,000 PCT schedules). The
/// scenarios are small enough that the whole `cargo test --release` of this crate takes about a
/// minute on 2 cores with it (BENCHMARKS.md); CI may lower it with `MIMIC_SHUTTLE_ITERATIONS`.
pub const SHUTTLE_ITERATIONS_DEFAULT: usize = 10_000;
/// PCT's bug depth: the number of priority change points (the issue asks for depth 3).
pub const PCT_DEPTH: usize = 3;
/// loom's cap on scheduling decisions in one execution (its default is 1,000). A syscall on the
/// modelled world is dozens of atomic accesses (refcounts, the event clock, lockdep words, the
/// RCU snapshot of every reader slot), and a grace-period wait yields until the reader leaves,
/// so three racing syscalls exceed 1,000 without any livelock; 20,000 still stops a real one.
pub const LOOM_MAX_BRANCHES: usize = 20_000;
pub const SHUTTLE_SEED_DEFAULT: u64 = 0x6d69_6d69_6300_0004;

/// A model checker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Loom,
    ShuttleRandom,
    ShuttlePct,
}

impl Engine {
    pub const ALL: [Engine; 3] = [Engine::Loom, Engine::ShuttleRandom, Engine::ShuttlePct];
    pub fn name(self) -> &'static str {
        match self {
            Engine::Loom => "loom",
            Engine::ShuttleRandom => "shuttle random",
            Engine::ShuttlePct => "shuttle PCT",
        }
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn loom_preemptions() -> usize {
    env_usize("LOOM_MAX_PREEMPTIONS", LOOM_PREEMPTIONS_DEFAULT)
}
/// The loom bound for `scenario`: `LOOM_MAX_PREEMPTIONS`, lowered to the scenario's cap.
pub fn loom_bound(scenario: &Scenario) -> usize {
    let bound = loom_preemptions();
    scenario.loom_bound_cap.map_or(bound, |cap| bound.min(cap))
}

pub fn shuttle_iterations() -> usize {
    env_usize("MIMIC_SHUTTLE_ITERATIONS", SHUTTLE_ITERATIONS_DEFAULT)
}
pub fn shuttle_seed() -> u64 {
    std::env::var("MIMIC_SHUTTLE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(SHUTTLE_SEED_DEFAULT)
}
pub fn schedule_dir() -> PathBuf {
    std::env::var_os("MIMIC_SCHEDULE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/shuttle-schedules")
        })
}

/// What one exploration found.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub engine: Engine,
    /// Executions run (up to and including the failing one).
    pub executions: usize,
    /// The first failure's panic message.
    pub failure: Option<String>,
    pub wall: Duration,
}

impl Outcome {
    /// The failure's finding kind (`use_after_free`, `lost_key`, ...).
    pub fn kind(&self) -> Option<&str> {
        self.failure.as_deref().and_then(driver::finding_kind)
    }
}

/// The message of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else {
        "a panic without a message".to_string()
    }
}

/// The shuttle configuration every run uses: failing schedules go to files.
pub fn shuttle_config() -> shuttle::Config {
    let dir = schedule_dir();
    // If the directory cannot be made, shuttle falls back to printing the schedule.
    let _ = std::fs::create_dir_all(&dir);
    let mut config = shuttle::Config::new();
    config.failure_persistence = shuttle::FailurePersistence::File(Some(dir));
    config
}

/// The kernel release the models run as: `MIMIC_KERNEL=RELEASE` (with
/// `MIMIC_KERNEL_WITH=FIX,...` for backported fixes) puts that release's old behaviours and
/// missing features in force on top of the mutants a run names; unset, today's kernel.
/// Read once per process.
pub fn kernel() -> &'static Result<Semantics, String> {
    static KERNEL: OnceLock<Result<Semantics, String>> = OnceLock::new();
    KERNEL.get_or_init(|| {
        let Ok(release) = std::env::var("MIMIC_KERNEL") else {
            return Ok(Semantics::current());
        };
        let release: Release = release.parse().map_err(|e| format!("MIMIC_KERNEL: {e}"))?;
        let with = std::env::var("MIMIC_KERNEL_WITH").unwrap_or_default();
        let with: Vec<&str> = with.split(',').filter(|f| !f.is_empty()).collect();
        Semantics::of(release, &with).map_err(|e| format!("MIMIC_KERNEL_WITH: {e}"))
    })
}

/// `mutants` on top of [`kernel`]'s, and the features it lacks.
fn under_kernel(mutants: Mutants) -> (Mutants, Lacks) {
    match kernel() {
        Ok(k) => (k.mutants.iter().fold(mutants, Mutants::with), k.lacks),
        Err(e) => panic!("{e}"),
    }
}

/// Explores `scenario` with `mutants` under `engine`: loom exhaustively up to the preemption
/// bound, shuttle for `iterations` schedules. Stops at the first failure. Under a release
/// ([`kernel`]), its old behaviours are on too.
pub fn explore(
    engine: Engine,
    scenario: &'static Scenario,
    mutants: Mutants,
    iterations: usize,
) -> Outcome {
    let (mutants, lacks) = under_kernel(mutants);
    let executions = Arc::new(AtomicUsize::new(0));
    let counter = executions.clone();
    let start = Instant::now();
    let result = catch_unwind(AssertUnwindSafe(|| match engine {
        Engine::Loom => {
            let mut builder = loom::model::Builder::new();
            builder.preemption_bound = Some(loom_bound(scenario));
            builder.max_branches = LOOM_MAX_BRANCHES;
            builder.check(move || {
                counter.fetch_add(1, Ordering::Relaxed);
                Loom::restart_choices();
                driver::run::<Loom>(scenario, mutants, lacks);
            });
        }
        Engine::ShuttleRandom => run_shuttle(
            RandomScheduler::new_from_seed(shuttle_seed(), iterations),
            scenario,
            (mutants, lacks),
            counter,
        ),
        Engine::ShuttlePct => run_shuttle(
            PctScheduler::new_from_seed(shuttle_seed(), PCT_DEPTH, iterations),
            scenario,
            (mutants, lacks),
            counter,
        ),
    }));
    Outcome {
        engine,
        executions: executions.load(Ordering::Relaxed),
        failure: result.err().map(|payload| panic_message(&*payload)),
        wall: start.elapsed(),
    }
}

fn run_shuttle<S: Scheduler + 'static>(
    scheduler: S,
    scenario: &'static Scenario,
    (mutants, lacks): (Mutants, Lacks),
    counter: Arc<AtomicUsize>,
) {
    let runner = shuttle::Runner::new(scheduler, shuttle_config());
    runner.run(move || {
        counter.fetch_add(1, Ordering::Relaxed);
        driver::run::<Shuttle>(scenario, mutants, lacks);
    });
}

/// Replays a schedule file written by a failing shuttle run of `scenario` with `mutants`.
pub fn replay_shuttle(
    scenario: &'static Scenario,
    mutants: Mutants,
    path: &std::path::Path,
) -> Outcome {
    let (mutants, lacks) = under_kernel(mutants);
    let start = Instant::now();
    let path = path.to_path_buf();
    let result = catch_unwind(AssertUnwindSafe(|| {
        shuttle::replay_from_file(
            move || driver::run::<Shuttle>(scenario, mutants, lacks),
            &path,
        )
    }));
    Outcome {
        engine: Engine::ShuttleRandom,
        executions: 1,
        failure: result.err().map(|payload| panic_message(&*payload)),
        wall: start.elapsed(),
    }
}

/// Runs loom with a checkpoint file: with `interval == 1` the file holds the path of the last
/// execution started, so after a failure it names the failing one, and running again with the
/// same file replays it first.
pub fn loom_with_checkpoint(
    scenario: &'static Scenario,
    mutants: Mutants,
    file: &std::path::Path,
) -> Outcome {
    let (mutants, lacks) = under_kernel(mutants);
    let executions = Arc::new(AtomicUsize::new(0));
    let counter = executions.clone();
    let start = Instant::now();
    let file = file.to_path_buf();
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(loom_bound(scenario));
        builder.max_branches = LOOM_MAX_BRANCHES;
        builder.checkpoint_file = Some(file);
        builder.checkpoint_interval = 1;
        builder.check(move || {
            counter.fetch_add(1, Ordering::Relaxed);
            Loom::restart_choices();
            driver::run::<Loom>(scenario, mutants, lacks);
        });
    }));
    Outcome {
        engine: Engine::Loom,
        executions: executions.load(Ordering::Relaxed),
        failure: result.err().map(|payload| panic_message(&*payload)),
        wall: start.elapsed(),
    }
}
