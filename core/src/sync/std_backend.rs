//! The production backend: real threads, `std::sync`, and a seeded ChaCha stream for `choose`.

use super::{impl_atomic64, impl_std_shaped, impl_std_tree, reduce, Platform};
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

    impl_std_shaped!(Mutex, Arc);
    impl_std_tree!(std);

    fn choose(n: usize) -> usize {
        CHOICES.with(|rng| reduce(rng.borrow_mut().next_u64(), n))
    }
}
