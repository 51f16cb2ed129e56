//! The seed runners: a batch of seeds in one shuttle `Runner` under one of mimic's schedulers
//! (or shuttle's own, or a byte slice's), each seed's execution handed back as an [`Outcome`]
//! in seed order, a panic inside an execution reported as that seed's failure.

use super::*;

/// Runs `seeds` of `config` in one shuttle `Runner` per batch, calling `report` with each
/// seed's outcome in seed order. A panic inside an execution (a bug in the core or here) is
/// reported as that seed's failure and the remaining seeds run in a fresh runner.
pub fn run_seeds(config: &RunConfig, seeds: &[u64], report: &mut dyn FnMut(Outcome)) {
    let mut rest: Vec<u64> = seeds.to_vec();
    while !rest.is_empty() {
        let scheduler = config.scheduler.build(config.scenario.pct_steps);
        let done = run_batch(config, scheduler, &rest, report);
        rest = rest[done..].to_vec();
    }
}

/// Plain shuttle: the same runs under shuttle's own `RandomScheduler` (what
/// `shuttle::check_random` uses), one execution per seed, for the benchmarks.
pub fn run_seeds_shuttle_random(
    config: &RunConfig,
    seeds: &[u64],
    report: &mut dyn FnMut(Outcome),
) {
    let mut rest: Vec<u64> = seeds.to_vec();
    while !rest.is_empty() {
        let done = run_batch(config, ShuttleRandom::new(), &rest, report);
        rest = rest[done..].to_vec();
    }
}

/// Runs seeds until the first panic; returns how many seeds were consumed.
fn run_batch<S: Reseed + 'static>(
    config: &RunConfig,
    scheduler: S,
    seeds: &[u64],
    report: &mut dyn FnMut(Outcome),
) -> usize {
    let state = Arc::new(Mutex::new(ExecState::default()));
    let results: Arc<Mutex<Vec<SeedResult>>> = Arc::new(Mutex::new(Vec::new()));
    let finished: Arc<Mutex<Vec<ExecState>>> = Arc::new(Mutex::new(Vec::new()));
    let campaign = Finishing {
        inner: Campaign::new(
            scheduler,
            seeds.to_vec(),
            config.scenario.step_budget,
            state.clone(),
        ),
        state: state.clone(),
        finished: finished.clone(),
        started: false,
    };
    let mut shuttle_config = shuttle::Config::new();
    shuttle_config.failure_persistence = shuttle::FailurePersistence::None;
    shuttle_config.max_steps = shuttle::MaxSteps::None;
    shuttle_config.silence_warnings = true;
    // The executor and the syscall paths nest deeply in debug builds: shuttle's default 60 KiB
    // task stacks overflow there. The run's main task gets the stack the core gives the tasks
    // it spawns (continuations are pooled, so this is paid once per task slot).
    shuttle_config.stack_size = mimic_core::sync::TASK_STACK_BYTES;
    let runner = shuttle::Runner::new(campaign, shuttle_config);
    let body = {
        let (config, state, results) = (config.clone(), state.clone(), results.clone());
        move || {
            let seed = state.lock().unwrap_or_else(|p| p.into_inner()).seed;
            let options = Options::derive(seed, config.scheduler);
            let (verdict, trace, tables) = execute(&config, options);
            results.lock().unwrap_or_else(|p| p.into_inner()).push((
                seed,
                verdict,
                trace,
                options.to_string(),
                tables,
            ));
        }
    };
    let panicked =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runner.run(body))).err();
    let mut finished = std::mem::take(&mut *finished.lock().unwrap_or_else(|p| p.into_inner()));
    let mut results = std::mem::take(&mut *results.lock().unwrap_or_else(|p| p.into_inner()));
    let mut consumed = finished.len();
    if let Some(payload) = panicked {
        // The seed that panicked is the one running now; its state is still current.
        let current = std::mem::take(&mut *state.lock().unwrap_or_else(|p| p.into_inner()));
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "non-string panic".into());
        let kind = if message.contains("deadlock") {
            "deadlock"
        } else {
            "panic"
        };
        results.retain(|r| r.0 != current.seed);
        results.push((
            current.seed,
            Verdict::Fail {
                kind: kind.into(),
                detail: message,
            },
            Vec::new(),
            Options::derive(current.seed, config.scheduler).to_string(),
            Vec::new(),
        ));
        finished.push(current);
        consumed += 1;
    }
    for state in finished {
        let found = results.iter().position(|r| r.0 == state.seed);
        let (verdict, trace, options, tables) = match found {
            Some(i) => {
                let r = results.swap_remove(i);
                (if state.cut { Verdict::Cut } else { r.1 }, r.2, r.3, r.4)
            }
            None => (
                Verdict::Cut,
                Vec::new(),
                Options::derive(state.seed, config.scheduler).to_string(),
                Vec::new(),
            ),
        };
        let mut hash = Fnv::default();
        for line in &trace {
            hash.write(line.as_bytes());
            hash.write(b"\n");
        }
        report(Outcome {
            seed: state.seed,
            options,
            verdict,
            steps: state.steps,
            draws: state.draws,
            trace_hash: hash.0,
            schedule_hash: state.schedule_hash.0,
            trace: if config.keep_trace { trace } else { Vec::new() },
            tables,
        });
    }
    consumed.max(1)
}

/// Wraps a [`Campaign`] to hand each finished execution's counters back.
struct Finishing<S: Reseed> {
    inner: Campaign<S>,
    state: Arc<Mutex<ExecState>>,
    finished: Arc<Mutex<Vec<ExecState>>>,
    started: bool,
}

impl<S: Reseed> shuttle::scheduler::Scheduler for Finishing<S> {
    fn new_execution(&mut self) -> Option<shuttle::scheduler::Schedule> {
        if self.started {
            let previous =
                std::mem::take(&mut *self.state.lock().unwrap_or_else(|p| p.into_inner()));
            self.finished
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(previous);
        }
        let next = self.inner.new_execution();
        self.started = next.is_some();
        next
    }
    fn next_task(
        &mut self,
        r: &[&shuttle::scheduler::Task],
        c: Option<shuttle::scheduler::TaskId>,
        y: bool,
    ) -> Option<shuttle::scheduler::TaskId> {
        self.inner.next_task(r, c, y)
    }
    fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }
}

/// One seed, with its trace (replay).
pub fn run_one(config: &RunConfig, seed: u64) -> Outcome {
    let mut out = None;
    run_seeds(config, &[seed], &mut |o| out = Some(o));
    out.expect("run_seeds reports every seed")
}

/// One execution driven by bytes (the `sim_schedule` fuzz target's entry point).
pub fn run_bytes(config: &RunConfig, bytes: &[u8]) -> Outcome {
    let mut out = None;
    run_batch(
        config,
        crate::sim::scheduler::Bytes::new(bytes),
        &[0],
        &mut |o| out = Some(o),
    );
    out.expect("run_batch reports its seed")
}
