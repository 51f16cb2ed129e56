//! Modelled kernel spinlocks and a tiny lockdep: how the core turns a self-deadlock or a
//! forbidden lock nesting into a [`Fault`] instead of a hang.
//!
//! A [`SpinLock`] is a platform mutex plus an **owner word** (`cpu + 1`, 0 when free) and a
//! [`LockClass`]. In the model only nested contexts (an interrupt-context program) share a CPU
//! with a running task, so a CPU that tries to take a lock its own CPU holds is exactly the
//! kernel's self-deadlock (the nested context would spin forever): [`Fault::Deadlock`], for the
//! classes held with interrupts off ([`LockClass::same_cpu_is_deadlock`]).
//!
//! [`Lockdep`] keeps, per task, how many raw spinlocks it holds and the class of the innermost.
//! Taking a lock that sleeps on PREEMPT_RT (a `spinlock_t`, e.g. the map id lock) while a raw
//! spinlock (an htab bucket lock) is held is what lockdep reports as an invalid wait context:
//! [`Fault::LockOrder`]. This is the check mutant `put_under_bucket_lock` trips.
//!
//! # Invariants
//! * The owner word is written only by the holder, after it has the mutex and before it drops
//!   it, so a stale owner can never name a CPU that no longer holds the lock.
//! * The closure API keeps lock and unlock paired: a lock can never outlive its scope, and the
//!   lockdep record is popped on every exit path.

use crate::fault::{Fault, Stamp};
use crate::sync::{Atomic64, Ordering, Platform};

/// A lock class: lockdep reasons about classes, not instances (all bucket locks are one class).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockClass {
    /// Index into [`CLASSES`]; recorded in the lockdep word.
    pub id: u8,
    pub name: &'static str,
    /// A `raw_spinlock_t`: never sleeps, not even on PREEMPT_RT.
    pub raw: bool,
    /// Held with preemption and interrupts off, so the only other context that can reach it on
    /// the same CPU is a nested one (an NMI-like program): a same-CPU acquisition is then a
    /// self-deadlock. Locks without it are never taken by programs, and two user tasks that
    /// the harness happens to run on one CPU number must not be reported.
    pub same_cpu_is_deadlock: bool,
}

/// The htab bucket lock (`raw_spinlock_t` in the kernel since 2020).
pub const BUCKET_LOCK: LockClass = LockClass {
    id: 1,
    name: "htab bucket lock (raw_spinlock_t)",
    raw: true,
    same_cpu_is_deadlock: true,
};
/// The map id lock (`map_idr_lock`, a `spinlock_t`: a sleeping lock on PREEMPT_RT).
pub const ID_LOCK: LockClass = LockClass {
    id: 2,
    name: "map_idr_lock (spinlock_t, sleeps on PREEMPT_RT)",
    raw: false,
    same_cpu_is_deadlock: false,
};
// The per-CPU freelist heads are plain platform mutexes, not modelled spinlocks: the kernel
// takes them with interrupts off (or `trylock` from NMI), so a nested context never spins on
// one, and in the model it may simply wait for its holder.

/// Every class, indexed by id (0 is "none").
pub const CLASSES: [Option<LockClass>; 3] = [None, Some(BUCKET_LOCK), Some(ID_LOCK)];

/// Bits of the lockdep word holding the innermost raw class id; the rest count raw locks held.
const CLASS_BITS: u32 = 8;

/// Per-task held-lock records. Only the owning task writes its word, so relaxed ordering is
/// enough; the word is still an atomic so it is `Sync` under every backend.
pub struct Lockdep<P: Platform> {
    held: Vec<P::Atomic>,
}

impl<P: Platform> Lockdep<P> {
    pub fn new(max_tasks: usize) -> Self {
        Lockdep {
            held: (0..max_tasks).map(|_| P::atomic(0)).collect(),
        }
    }

    /// The calling task's record; tasks beyond the world's `max_tasks` are not tracked (their
    /// RCU sections are refused, which reports the misconfiguration).
    fn word(&self) -> Option<&P::Atomic> {
        self.held.get(P::current_task())
    }

    /// Checks that `class` may be taken now, then records it (raw classes only).
    fn acquire(&self, class: LockClass, at: Stamp) -> Result<(), Fault> {
        let Some(word) = self.word() else {
            return Ok(());
        };
        let held = word.load(Ordering::Relaxed);
        if held >> CLASS_BITS > 0 && !class.raw {
            let innermost = CLASSES
                .get((held & ((1 << CLASS_BITS) - 1)) as usize)
                .copied()
                .flatten()
                .map_or("a raw spinlock", |c| c.name);
            return Err(Fault::LockOrder {
                held: innermost.to_string(),
                acquiring: class.name.to_string(),
                at,
            });
        }
        if class.raw {
            let count = (held >> CLASS_BITS) + 1;
            word.store(count << CLASS_BITS | u64::from(class.id), Ordering::Relaxed);
        }
        Ok(())
    }

    /// Forgets `class`; `previous` is the word before [`Lockdep::acquire`] (locks nest LIFO).
    fn release(&self, class: LockClass, previous: u64) {
        if class.raw {
            if let Some(word) = self.word() {
                word.store(previous, Ordering::Relaxed);
            }
        }
    }

    fn snapshot(&self) -> u64 {
        self.word().map_or(0, |w| w.load(Ordering::Relaxed))
    }

    /// Does the calling task hold any raw spinlock? (for assertions in tests)
    pub fn holds_raw(&self) -> bool {
        self.snapshot() >> CLASS_BITS > 0
    }
}

/// A modelled kernel spinlock guarding a `T`.
pub struct SpinLock<P: Platform, T: Send + 'static> {
    class: LockClass,
    owner: P::Atomic,
    inner: P::Mutex<T>,
}

impl<P: Platform, T: Send + 'static> SpinLock<P, T> {
    pub fn new(class: LockClass, value: T) -> Self {
        SpinLock {
            class,
            owner: P::atomic(0),
            inner: P::mutex(value),
        }
    }

    pub fn class(&self) -> LockClass {
        self.class
    }

    /// Takes the lock and runs `f`. `stamp` is called only to date a fault.
    ///
    /// Fails with [`Fault::Deadlock`] when the calling CPU already holds this lock, and with
    /// [`Fault::LockOrder`] when lockdep forbids taking this class now.
    pub fn lock<R>(
        &self,
        lockdep: &Lockdep<P>,
        stamp: impl Fn() -> Stamp,
        f: impl FnOnce(&mut T) -> R,
    ) -> Result<R, Fault> {
        let cpu = P::current_cpu();
        let me = cpu as u64 + 1;
        if self.class.same_cpu_is_deadlock && self.owner.load(Ordering::Acquire) == me {
            return Err(Fault::Deadlock {
                lock: self.class.name.to_string(),
                cpu,
                at: stamp(),
            });
        }
        let previous = lockdep.snapshot();
        lockdep
            .acquire(self.class, Stamp::default())
            .map_err(|fault| match fault {
                Fault::LockOrder {
                    held, acquiring, ..
                } => Fault::LockOrder {
                    held,
                    acquiring,
                    at: stamp(),
                },
                other => other,
            })?;
        let result = P::lock(&self.inner, |value| {
            self.owner.store(me, Ordering::Release);
            let result = f(value);
            self.owner.store(0, Ordering::Release);
            result
        });
        lockdep.release(self.class, previous);
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::Std;

    #[test]
    fn a_cpu_retaking_its_own_lock_is_a_deadlock_not_a_hang() {
        let lockdep = Lockdep::<Std>::new(2);
        let lock = SpinLock::<Std, u32>::new(BUCKET_LOCK, 0);
        Std::set_current_cpu(1);
        let nested = lock.lock(&lockdep, Stamp::default, |_| {
            lock.lock(&lockdep, Stamp::default, |_| ())
        });
        let fault = nested
            .expect("outer lock is free")
            .expect_err("inner acquisition must fault");
        assert!(matches!(fault, Fault::Deadlock { cpu: 1, .. }), "{fault}");
        assert!(
            lock.lock(&lockdep, Stamp::default, |v| *v += 1).is_ok(),
            "released after the closure"
        );
        Std::set_current_cpu(0);
    }

    #[test]
    fn sleeping_lock_under_a_raw_spinlock_is_a_lock_order_fault() {
        let lockdep = Lockdep::<Std>::new(1);
        let bucket = SpinLock::<Std, ()>::new(BUCKET_LOCK, ());
        let ids = SpinLock::<Std, ()>::new(ID_LOCK, ());
        let inside = bucket
            .lock(&lockdep, Stamp::default, |_| {
                ids.lock(&lockdep, Stamp::default, |_| ())
            })
            .unwrap();
        match inside {
            Err(Fault::LockOrder {
                held, acquiring, ..
            }) => {
                assert!(
                    held.contains("bucket") && acquiring.contains("map_idr_lock"),
                    "{held} / {acquiring}"
                )
            }
            other => panic!("expected a lock-order fault, got {other:?}"),
        }
        assert!(!lockdep.holds_raw(), "the bucket lock record is popped");
        assert!(
            ids.lock(&lockdep, Stamp::default, |_| ()).is_ok(),
            "the id lock alone is fine"
        );
        let other_bucket = SpinLock::<Std, ()>::new(BUCKET_LOCK, ());
        let raw_in_raw = bucket.lock(&lockdep, Stamp::default, |_| {
            other_bucket.lock(&lockdep, Stamp::default, |_| lockdep.holds_raw())
        });
        assert_eq!(raw_in_raw, Ok(Ok(true)), "raw spinlocks nest");
        assert!(!lockdep.holds_raw(), "both records are popped");
    }
}
