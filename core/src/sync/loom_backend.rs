//! The loom backend: loom's primitives, so `loom::model` explores every interleaving of the
//! core's facade operations. loom cannot branch on data, so `choose` reads a script the model
//! sets per execution ([`Loom::set_choice_script`]); a test loops over the scripts it needs.

use super::{impl_atomic64, impl_std_shaped, impl_std_tree, Platform};
use loom::sync::atomic::AtomicU64;
use loom::sync::{Arc, Mutex};
use std::cell::Cell;

/// The loom backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct Loom;

// loom runs its threads on one OS thread, so per-task state must use loom's thread locals.
loom::thread_local! {
    static CPU: Cell<usize> = Cell::new(0);
    static TASK: Cell<usize> = Cell::new(0);
}

/// The choice script: read in order by every execution, restarted when an execution begins.
/// A plain std lock is right here: it is outside the model, like loom's own bookkeeping.
static SCRIPT: std::sync::Mutex<(Vec<usize>, usize)> = std::sync::Mutex::new((Vec::new(), 0));

impl Loom {
    /// Sets the answers `choose` gives, in order (0 past the end). Call before `loom::model`;
    /// each execution starts reading from the beginning (see [`Loom::restart_choices`]).
    pub fn set_choice_script(script: Vec<usize>) {
        *SCRIPT.lock().unwrap_or_else(|p| p.into_inner()) = (script, 0);
    }
    /// Rewinds the script; a model's closure calls it first so every execution sees the script.
    pub fn restart_choices() {
        SCRIPT.lock().unwrap_or_else(|p| p.into_inner()).1 = 0;
    }
}

impl_atomic64!(AtomicU64);

impl Platform for Loom {
    const NAME: &'static str = "loom";

    impl_std_shaped!(Mutex, Arc);
    impl_std_tree!(loom);

    fn choose(n: usize) -> usize {
        let mut script = SCRIPT.lock().unwrap_or_else(|p| p.into_inner());
        let (values, cursor) = &mut *script;
        let value = values.get(*cursor).copied().unwrap_or(0);
        *cursor += 1;
        assert!(
            value < n,
            "loom choice script gives {value} for choose({n})"
        );
        value
    }
}
