//! The sync facade: every primitive the core uses to share state or to make a nondeterministic
//! choice comes from here.
//!
//! The core is written once, generic over [`Platform`], and monomorphised per backend:
//!
//! * [`Std`]: real threads and `std::sync`, zero cost, for production-mode commands and benches.
//! * `Loom` (feature `loom`): loom's exhaustive model checker explores every interleaving of the
//!   facade operations, up to `LOOM_MAX_PREEMPTIONS`.
//! * `Shuttle` (feature `shuttle`): shuttle's randomized schedulers (random walk, PCT, or the
//!   simulator's own) pick the interleaving; its random source also answers [`Platform::choose`].
//!
//! The backends are impls of one trait, not a `cfg` switch, so features stay additive: one binary
//! can run `Std` for plain commands and `Shuttle` inside the simulator, and loom and shuttle models
//! share a test build.
//!
//! # Invariants
//! * **Only this module imports `std::sync`, `std::thread`, `loom` or `shuttle`.** The test
//!   `facade_is_the_only_door` in `core/tests/facade.rs` (which reads the parsed `use` trees
//!   and paths of every file) fails otherwise.
//! * Every nondeterministic input the core consumes (fault injection, spurious failures, the CPU
//!   a task runs on) flows through [`Platform::choose`], [`Platform::current_cpu`] and
//!   [`Platform::current_task`]; the core never reads a clock or an OS random source.
//! * Every wait loop in the core calls [`Platform::yield_now`], so a model checker can always run
//!   the task being waited for (no unbounded spinning).
//!
//! Locks use a closure API ([`Platform::lock`]) rather than guard types: it keeps the trait free of
//! lifetime-generic associated types, and a lock can never outlive the scope that took it. The
//! [`Platform::Cell`] is lock-backed for the same reason the core forbids `unsafe`: a raw
//! `UnsafeCell` would need `unsafe` to dereference.

mod std_backend;
pub use std_backend::Std;

#[cfg(feature = "loom")]
mod loom_backend;
#[cfg(feature = "loom")]
pub use loom_backend::Loom;

#[cfg(feature = "shuttle")]
mod shuttle_backend;
#[cfg(feature = "shuttle")]
pub use shuttle_backend::Shuttle;

pub use std::sync::atomic::Ordering;

use std::ops::Deref;

/// A 64-bit atomic word. The core models racy BPF memory (map values, keys, list links) as words
/// of these, so every access is a point where a model checker can interleave another task.
pub trait Atomic64: Send + Sync + 'static {
    fn load(&self, order: Ordering) -> u64;
    fn store(&self, value: u64, order: Ordering);
    fn swap(&self, value: u64, order: Ordering) -> u64;
    fn fetch_add(&self, value: u64, order: Ordering) -> u64;
    fn fetch_sub(&self, value: u64, order: Ordering) -> u64;
    fn fetch_and(&self, value: u64, order: Ordering) -> u64;
    fn fetch_or(&self, value: u64, order: Ordering) -> u64;
    fn fetch_xor(&self, value: u64, order: Ordering) -> u64;
    fn compare_exchange(
        &self,
        current: u64,
        new: u64,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u64, u64>;
}

/// A backend of the facade. See the module documentation.
pub trait Platform: Sized + Send + Sync + 'static {
    /// Short name used in reports ("std", "loom", "shuttle").
    const NAME: &'static str;

    type Atomic: Atomic64;
    type Mutex<T: Send + 'static>: Send + Sync + 'static;
    type Cell<T: Send + 'static>: Send + Sync + 'static;
    type Arc<T: Send + Sync + 'static>: Deref<Target = T> + Clone + Send + Sync + 'static;
    type JoinHandle<R: Send + 'static>: Send + 'static;

    fn atomic(value: u64) -> Self::Atomic;

    fn mutex<T: Send + 'static>(value: T) -> Self::Mutex<T>;
    /// Runs `f` with the lock held. A poisoned lock (a panicking holder) is still entered: the
    /// checker that panicked has already reported, and the model state is what it wants to see.
    fn lock<T: Send + 'static, R>(mutex: &Self::Mutex<T>, f: impl FnOnce(&mut T) -> R) -> R;

    fn cell<T: Send + 'static>(value: T) -> Self::Cell<T>;
    fn with<T: Send + 'static, R>(cell: &Self::Cell<T>, f: impl FnOnce(&T) -> R) -> R;
    fn with_mut<T: Send + 'static, R>(cell: &Self::Cell<T>, f: impl FnOnce(&mut T) -> R) -> R;

    fn arc<T: Send + Sync + 'static>(value: T) -> Self::Arc<T>;
    /// Number of strong references (leak audits use it).
    fn arc_strong_count<T: Send + Sync + 'static>(arc: &Self::Arc<T>) -> usize;

    fn spawn<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> Self::JoinHandle<R>;
    /// Waits for the task; a panic inside it is resumed in the caller so checkers see it.
    fn join<R: Send + 'static>(handle: Self::JoinHandle<R>) -> R;

    /// Gives other tasks a chance to run; every wait loop calls it.
    fn yield_now();
    /// A spin-loop hint, for busy waits that do not need to deschedule.
    fn spin_hint();
    /// A sequentially consistent fence (`smp_mb()`). RCU needs one on each side of the
    /// reader/updater handshake: SeqCst *accesses* alone still allow the store-buffering
    /// outcome where the reader misses the unpublish and the updater misses the reader, which
    /// loom models exactly (it treats SeqCst accesses as AcqRel but SeqCst fences precisely).
    fn fence();

    /// A nondeterministic choice in `0..n` (`n >= 1`). Shuttle draws it from its scheduler's random
    /// source, `Std` from a seeded ChaCha stream, loom from a per-execution script (loom cannot
    /// branch on data, so the model loops over the scripts).
    fn choose(n: usize) -> usize;

    /// The simulated CPU the calling task runs on; set by whoever runs the core.
    fn current_cpu() -> usize;
    fn set_current_cpu(cpu: usize);
    /// The calling task's slot (RCU reader slots are indexed by it); set by whoever runs the core.
    fn current_task() -> usize;
    fn set_current_task(task: usize);
}

/// Implements [`Atomic64`] for a backend's `AtomicU64`, whose inherent methods share std's names.
macro_rules! impl_atomic64 {
    ($ty:ty) => {
        impl $crate::sync::Atomic64 for $ty {
            fn load(&self, order: $crate::sync::Ordering) -> u64 {
                <$ty>::load(self, order)
            }
            fn store(&self, value: u64, order: $crate::sync::Ordering) {
                <$ty>::store(self, value, order)
            }
            fn swap(&self, value: u64, order: $crate::sync::Ordering) -> u64 {
                <$ty>::swap(self, value, order)
            }
            fn fetch_add(&self, value: u64, order: $crate::sync::Ordering) -> u64 {
                <$ty>::fetch_add(self, value, order)
            }
            fn fetch_sub(&self, value: u64, order: $crate::sync::Ordering) -> u64 {
                <$ty>::fetch_sub(self, value, order)
            }
            fn fetch_and(&self, value: u64, order: $crate::sync::Ordering) -> u64 {
                <$ty>::fetch_and(self, value, order)
            }
            fn fetch_or(&self, value: u64, order: $crate::sync::Ordering) -> u64 {
                <$ty>::fetch_or(self, value, order)
            }
            fn fetch_xor(&self, value: u64, order: $crate::sync::Ordering) -> u64 {
                <$ty>::fetch_xor(self, value, order)
            }
            fn compare_exchange(
                &self,
                current: u64,
                new: u64,
                success: $crate::sync::Ordering,
                failure: $crate::sync::Ordering,
            ) -> Result<u64, u64> {
                <$ty>::compare_exchange(self, current, new, success, failure)
            }
        }
    };
}
pub(crate) use impl_atomic64;

/// Implements the lock, cell and arc parts of [`Platform`] for a backend whose `Mutex` and `Arc`
/// have std's shape (`lock() -> LockResult<Guard>`, `Arc::new`, `Arc::strong_count`).
macro_rules! impl_std_shaped {
    ($mutex:ident, $arc:ident) => {
        type Mutex<T: Send + 'static> = $mutex<T>;
        type Cell<T: Send + 'static> = $mutex<T>;
        type Arc<T: Send + Sync + 'static> = $arc<T>;

        fn mutex<T: Send + 'static>(value: T) -> Self::Mutex<T> {
            $mutex::new(value)
        }
        fn lock<T: Send + 'static, R>(mutex: &Self::Mutex<T>, f: impl FnOnce(&mut T) -> R) -> R {
            let mut guard = match mutex.lock() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            f(&mut guard)
        }
        fn cell<T: Send + 'static>(value: T) -> Self::Cell<T> {
            $mutex::new(value)
        }
        fn with<T: Send + 'static, R>(cell: &Self::Cell<T>, f: impl FnOnce(&T) -> R) -> R {
            Self::lock(cell, |value| f(value))
        }
        fn with_mut<T: Send + 'static, R>(cell: &Self::Cell<T>, f: impl FnOnce(&mut T) -> R) -> R {
            Self::lock(cell, f)
        }
        fn arc<T: Send + Sync + 'static>(value: T) -> Self::Arc<T> {
            $arc::new(value)
        }
        fn arc_strong_count<T: Send + Sync + 'static>(arc: &Self::Arc<T>) -> usize {
            $arc::strong_count(arc)
        }
    };
}
pub(crate) use impl_std_shaped;

/// Stack of every task a platform spawns.
pub const TASK_STACK_BYTES: usize = 1 << 20;

/// Implements the thread, atomic and per-task parts of [`Platform`] for a backend whose crate
/// mirrors std's module tree (`$root::thread::spawn`, `$root::hint::spin_loop`,
/// `$root::sync::atomic::{AtomicU64, fence}`) and whose module declares `CPU` and `TASK` thread
/// locals of `Cell<usize>` with that backend's own `thread_local!` (loom and shuttle run their
/// tasks on one OS thread, so std's thread locals would be shared).
macro_rules! impl_std_tree {
    ($($root:ident)::+) => {
        type Atomic = $($root)::+::sync::atomic::AtomicU64;
        type JoinHandle<R: Send + 'static> = $($root)::+::thread::JoinHandle<R>;

        fn atomic(value: u64) -> Self::Atomic {
            <$($root)::+::sync::atomic::AtomicU64>::new(value)
        }
        fn spawn<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> Self::JoinHandle<R> {
            // The executor and the syscall paths nest deeply in unoptimised builds, where the
            // backends' default task stacks (loom's generators) overflow.
            $($root)::+::thread::Builder::new()
                .stack_size($crate::sync::TASK_STACK_BYTES)
                .spawn(f)
                .unwrap_or_else(|e| panic!("spawning a task: {e}"))
        }
        fn join<R: Send + 'static>(handle: Self::JoinHandle<R>) -> R {
            handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        }
        fn yield_now() {
            $($root)::+::thread::yield_now()
        }
        fn spin_hint() {
            $($root)::+::hint::spin_loop()
        }
        fn fence() {
            $($root)::+::sync::atomic::fence($crate::sync::Ordering::SeqCst)
        }
        fn current_cpu() -> usize {
            CPU.with(std::cell::Cell::get)
        }
        fn set_current_cpu(cpu: usize) {
            CPU.with(|c| c.set(cpu))
        }
        fn current_task() -> usize {
            TASK.with(std::cell::Cell::get)
        }
        fn set_current_task(task: usize) {
            TASK.with(|t| t.set(task))
        }
    };
}
pub(crate) use impl_std_tree;

/// Maps a uniformly random `u64` to `0..n` without the modulo bias mattering for small `n`.
pub(crate) fn reduce(random: u64, n: usize) -> usize {
    assert!(n >= 1, "choose(0): there is nothing to choose from");
    ((random as u128 * n as u128) >> 64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs one small program against the facade; used under every backend.
    pub(crate) fn counter_program<P: Platform>() -> u64 {
        let counter = P::arc(P::atomic(0));
        let total = P::arc(P::mutex(0u64));
        let handles: Vec<_> = (0..2)
            .map(|task| {
                let counter = counter.clone();
                let total = total.clone();
                P::spawn(move || {
                    P::set_current_task(task);
                    counter.fetch_add(1, Ordering::AcqRel);
                    P::lock(&total, |t| *t += 10);
                    P::current_task()
                })
            })
            .collect();
        let tasks: Vec<usize> = handles.into_iter().map(P::join).collect();
        assert_eq!(tasks, vec![0, 1], "each task keeps its own task slot");
        counter.load(Ordering::Acquire) + P::lock(&total, |t| *t)
    }

    #[test]
    fn std_backend_runs_the_counter_program() {
        assert_eq!(counter_program::<Std>(), 22);
    }

    #[cfg(feature = "loom")]
    #[test]
    fn loom_backend_runs_the_counter_program() {
        loom::model(|| assert_eq!(counter_program::<Loom>(), 22));
    }

    #[cfg(feature = "shuttle")]
    #[test]
    fn shuttle_backend_runs_the_counter_program() {
        shuttle::check_random(|| assert_eq!(counter_program::<Shuttle>(), 22), 100);
    }

    #[test]
    fn std_choose_is_a_function_of_the_seed() {
        let draw = |seed| {
            Std::seed_choices(seed);
            (0..32).map(|_| Std::choose(1000)).collect::<Vec<_>>()
        };
        let first = draw(7);
        assert_eq!(first, draw(7), "same seed, same choices");
        assert_ne!(first, draw(8), "another seed, other choices");
        assert!(first.iter().all(|&c| c < 1000));
    }

    #[cfg(feature = "loom")]
    #[test]
    fn loom_choose_follows_the_script() {
        Loom::set_choice_script(vec![2, 0, 1]);
        loom::model(|| {
            assert_eq!(
                (Loom::choose(3), Loom::choose(3), Loom::choose(3)),
                (2, 0, 1)
            );
            assert_eq!(
                Loom::choose(3),
                0,
                "past the script's end every choice is 0"
            );
        });
        Loom::set_choice_script(Vec::new());
    }
}
