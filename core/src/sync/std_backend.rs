//! The production backend: real threads, `std::sync`, and a seeded ChaCha stream for `choose`.

use super::{impl_atomic64, impl_std_shaped, reduce, Ordering, Platform};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use std::cell::{Cell, RefCell};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

/// The std backend. Zero cost: every associated type is the std type itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct Std;

thread_local! {
    static CPU: Cell<usize> = const { Cell::new(0) };
    static TASK: Cell<usize> = const { Cell::new(0) };
    static CHOICES: RefCell<ChaCha8Rng> = RefCell::new(ChaCha8Rng::seed_from_u64(0));
}

impl Std {
    /// Reseeds the calling thread's choice stream: `choose` is a pure function of the seed and
    /// the number of earlier draws on this thread.
    pub fn seed_choices(seed: u64) {
        CHOICES.with(|rng| *rng.borrow_mut() = ChaCha8Rng::seed_from_u64(seed));
    }
}

impl_atomic64!(AtomicU64);

impl Platform for Std {
    const NAME: &'static str = "std";
    type Atomic = AtomicU64;
    type JoinHandle<R: Send + 'static> = std::thread::JoinHandle<R>;

    impl_std_shaped!(Mutex, Arc);

    fn atomic(value: u64) -> Self::Atomic {
        AtomicU64::new(value)
    }
    fn spawn<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> Self::JoinHandle<R> {
        std::thread::spawn(f)
    }
    fn join<R: Send + 'static>(handle: Self::JoinHandle<R>) -> R {
        handle
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
    fn yield_now() {
        std::thread::yield_now()
    }
    fn spin_hint() {
        std::hint::spin_loop()
    }
    fn fence() {
        std::sync::atomic::fence(Ordering::SeqCst)
    }
    fn choose(n: usize) -> usize {
        CHOICES.with(|rng| reduce(rng.borrow_mut().next_u64(), n))
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
