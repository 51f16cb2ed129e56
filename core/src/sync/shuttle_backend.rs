//! The shuttle backend: shuttle's primitives, so its schedulers (random, PCT, the simulator's)
//! pick every interleaving, and `choose` draws from the scheduler's random source, which a
//! schedule records and a replay reproduces.

use super::{impl_atomic64, impl_std_shaped, reduce, Ordering, Platform};
use shuttle::rand::RngCore;
use shuttle::sync::atomic::AtomicU64;
use shuttle::sync::{Arc, Mutex};
use std::cell::Cell;

/// The shuttle backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct Shuttle;

// shuttle runs its tasks as continuations on one OS thread: per-task state uses its thread locals.
shuttle::thread_local! {
    static CPU: Cell<usize> = Cell::new(0);
    static TASK: Cell<usize> = Cell::new(0);
}

impl_atomic64!(AtomicU64);

impl Platform for Shuttle {
    const NAME: &'static str = "shuttle";
    type Atomic = AtomicU64;
    type JoinHandle<R: Send + 'static> = shuttle::thread::JoinHandle<R>;

    impl_std_shaped!(Mutex, Arc);

    fn atomic(value: u64) -> Self::Atomic {
        AtomicU64::new(value)
    }
    fn spawn<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> Self::JoinHandle<R> {
        shuttle::thread::spawn(f)
    }
    fn join<R: Send + 'static>(handle: Self::JoinHandle<R>) -> R {
        handle
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
    fn yield_now() {
        shuttle::thread::yield_now()
    }
    fn spin_hint() {
        shuttle::hint::spin_loop()
    }
    fn fence() {
        shuttle::sync::atomic::fence(Ordering::SeqCst)
    }
    fn choose(n: usize) -> usize {
        reduce(shuttle::rand::thread_rng().next_u64(), n)
    }
    fn current_cpu() -> usize {
        CPU.with(Cell::get)
    }
    fn set_current_cpu(cpu: usize) {
        CPU.with(|c| c.set(cpu))
    }
    fn current_task() -> usize {
        TASK.with(Cell::get)
    }
    fn set_current_task(task: usize) {
        TASK.with(|t| t.set(task))
    }
}

#[allow(dead_code)]
const _: Ordering = Ordering::Relaxed;
