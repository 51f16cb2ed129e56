//! The loom backend: loom's primitives, so `loom::model` explores every interleaving of the
//! core's facade operations. loom cannot branch on data, so `choose` reads a script the model
//! sets per execution ([`Loom::set_choice_script`]); a test loops over the scripts it needs.

use super::{impl_atomic64, impl_std_shaped, Ordering, Platform};
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
    type Atomic = AtomicU64;
    type JoinHandle<R: Send + 'static> = loom::thread::JoinHandle<R>;

    impl_std_shaped!(Mutex, Arc);

    fn atomic(value: u64) -> Self::Atomic {
        AtomicU64::new(value)
    }
    fn spawn<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> Self::JoinHandle<R> {
        loom::thread::spawn(f)
    }
    fn join<R: Send + 'static>(handle: Self::JoinHandle<R>) -> R {
        handle
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
    fn yield_now() {
        loom::thread::yield_now()
    }
    fn spin_hint() {
        loom::hint::spin_loop()
    }
    fn fence() {
        loom::sync::atomic::fence(Ordering::SeqCst)
    }
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
