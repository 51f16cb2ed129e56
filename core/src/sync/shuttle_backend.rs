//! The shuttle backend: shuttle's primitives, so its schedulers (random, PCT, the simulator's)
//! pick every interleaving, and `choose` draws from the scheduler's random source, which a
//! schedule records and a replay reproduces.

use super::{impl_atomic64, impl_std_shaped, impl_std_tree, reduce, Platform};
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

    impl_std_shaped!(Mutex, Arc);
    impl_std_tree!(shuttle);

    fn choose(n: usize) -> usize {
        reduce(shuttle::rand::thread_rng().next_u64(), n)
    }
}
