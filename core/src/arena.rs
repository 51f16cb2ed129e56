//! An arena of generation-checked handles: how the model makes use after free visible.
//!
//! Objects that readers can reach concurrently with their release (maps, and through them their
//! values) live in arena slots and are named by a [`Handle`] (slot index + generation). Freeing
//! poisons the slot: it keeps the stamp of the free, and every later `get` or `check` with the old
//! handle fails with [`Fault::UseAfterFree`]. Rust's own ownership would silently keep a freed
//! object alive for a late reader; the arena turns that into a finding.
//!
//! # Invariants
//! * A handle resolves only while its slot holds the same generation and is live.
//! * Freed slots sit in a FIFO quarantine ([`QUARANTINE_SLOTS`]) before reuse, like ASan's, so a
//!   late access usually still finds the exact free that it raced with (`freed_at`); after reuse
//!   the generation still differs and the access is still reported.

use crate::fault::{Fault, Stamp};
use crate::sync::{Atomic64, Ordering, Platform};
use std::collections::VecDeque;
use std::fmt;

/// How many freed slots wait before one is reused. Large enough that a test's late access finds
/// the precise free; small enough that long simulations do not grow without bound.
pub const QUARANTINE_SLOTS: usize = 64;

/// A generation-checked reference to an arena slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Handle {
    pub index: u32,
    pub gen: u32,
}

impl Handle {
    /// The handle as one nonzero word (`index + 1` above `gen`), for places that hold a handle
    /// in an atomic or pass it through a `u64`; 0 is free for "none".
    pub fn to_word(self) -> u64 {
        (u64::from(self.index) + 1) << 32 | u64::from(self.gen)
    }

    /// The handle [`Handle::to_word`] made, or `None` for 0.
    pub fn from_word(word: u64) -> Option<Handle> {
        (word >> 32 != 0).then(|| Handle {
            index: ((word >> 32) - 1) as u32,
            gen: word as u32,
        })
    }
}

impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}.{}", self.index, self.gen)
    }
}

enum State<P: Platform, T: Send + Sync + 'static> {
    Live(P::Arc<T>),
    Freed(Stamp),
}

struct Slot<P: Platform, T: Send + Sync + 'static> {
    gen: u32,
    state: State<P, T>,
}

struct Slots<P: Platform, T: Send + Sync + 'static> {
    slots: Vec<Slot<P, T>>,
    quarantine: VecDeque<u32>,
}

/// The arena. `T` is shared through the platform's `Arc`, so a reader can hold it across yields;
/// whether it may still *use* it is what [`Arena::check`] answers.
pub struct Arena<P: Platform, T: Send + Sync + 'static> {
    name: &'static str,
    inner: P::Mutex<Slots<P, T>>,
    /// Per-slot generation, readable without the lock: `check` is one atomic load. A live slot's
    /// word is `gen << 1 | 1`, a freed one `gen << 1`.
    live_words: P::Mutex<Vec<P::Arc<P::Atomic>>>,
}

impl<P: Platform, T: Send + Sync + 'static> Arena<P, T> {
    /// `name` labels the objects in fault reports ("map", "elem").
    pub fn new(name: &'static str) -> Self {
        Arena {
            name,
            inner: P::mutex(Slots {
                slots: Vec::new(),
                quarantine: VecDeque::new(),
            }),
            live_words: P::mutex(Vec::new()),
        }
    }

    fn describe(&self, handle: Handle) -> String {
        format!("{} {}", self.name, handle)
    }

    /// Stores `value` and returns its handle.
    pub fn insert(&self, value: T) -> Handle {
        let value = P::arc(value);
        let handle = P::lock(&self.inner, |slots| {
            let reuse = if slots.quarantine.len() > QUARANTINE_SLOTS {
                slots.quarantine.pop_front()
            } else {
                None
            };
            match reuse {
                Some(index) => {
                    let slot = &mut slots.slots[index as usize];
                    slot.gen += 1;
                    slot.state = State::Live(value);
                    Handle {
                        index,
                        gen: slot.gen,
                    }
                }
                None => {
                    let index = u32::try_from(slots.slots.len()).expect("arena index fits u32");
                    slots.slots.push(Slot {
                        gen: 0,
                        state: State::Live(value),
                    });
                    Handle { index, gen: 0 }
                }
            }
        });
        let word = u64::from(handle.gen) << 1 | 1;
        // Two inserts may reach this lock in the other order than they took their indices:
        // index the word by slot, never push (a push would give a later slot's word this index).
        P::lock(&self.live_words, |words| {
            let index = handle.index as usize;
            if words.len() <= index {
                words.resize_with(index + 1, || P::arc(P::atomic(0)));
            }
            words[index].store(word, Ordering::Release);
        });
        handle
    }

    /// The object, if the handle is still live.
    pub fn get(&self, handle: Handle, at: Stamp) -> Result<P::Arc<T>, Fault> {
        P::lock(&self.inner, |slots| {
            match slots.slots.get(handle.index as usize) {
                Some(Slot {
                    gen,
                    state: State::Live(value),
                }) if *gen == handle.gen => Ok(value.clone()),
                Some(Slot { gen, state }) => {
                    let freed_at = match state {
                        State::Freed(stamp) if *gen == handle.gen => Some(*stamp),
                        _ => None,
                    };
                    Err(Fault::UseAfterFree {
                        object: self.describe(handle),
                        freed_at,
                        accessed_at: at,
                    })
                }
                None => Err(Fault::UseAfterFree {
                    object: self.describe(handle),
                    freed_at: None,
                    accessed_at: at,
                }),
            }
        })
    }

    /// Is the handle still live? One atomic load when the slot is known, so hot paths (every
    /// map-value access of the executor) can afford it; the slow path finds `freed_at`.
    pub fn check(&self, handle: Handle, at: Stamp) -> Result<(), Fault> {
        let word = P::lock(&self.live_words, |words| {
            words.get(handle.index as usize).cloned()
        });
        match word {
            Some(word) if word.load(Ordering::Acquire) == (u64::from(handle.gen) << 1 | 1) => {
                Ok(())
            }
            _ => self.get(handle, at).map(|_| ()),
        }
    }

    /// Frees the slot. Freeing twice is a [`Fault::DoubleFree`].
    pub fn free(&self, handle: Handle, at: Stamp) -> Result<P::Arc<T>, Fault> {
        let freed = P::lock(&self.inner, |slots| {
            let slot = match slots.slots.get_mut(handle.index as usize) {
                Some(slot) if slot.gen == handle.gen => slot,
                _ => {
                    return Err(Fault::UseAfterFree {
                        object: self.describe(handle),
                        freed_at: None,
                        accessed_at: at,
                    })
                }
            };
            match std::mem::replace(&mut slot.state, State::Freed(at)) {
                State::Live(value) => {
                    slots.quarantine.push_back(handle.index);
                    Ok(value)
                }
                State::Freed(first) => {
                    slot.state = State::Freed(first);
                    Err(Fault::DoubleFree {
                        object: self.describe(handle),
                        first,
                        second: at,
                    })
                }
            }
        })?;
        P::lock(&self.live_words, |words| {
            if let Some(word) = words.get(handle.index as usize) {
                word.store(u64::from(handle.gen) << 1, Ordering::Release)
            }
        });
        Ok(freed)
    }

    /// Handles of every live object, in slot order (deterministic).
    pub fn live(&self) -> Vec<Handle> {
        P::lock(&self.inner, |slots| {
            slots
                .slots
                .iter()
                .enumerate()
                .filter(|(_, slot)| matches!(slot.state, State::Live(_)))
                .map(|(index, slot)| Handle {
                    index: index as u32,
                    gen: slot.gen,
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::Std;

    fn at(seq: u64) -> Stamp {
        Stamp {
            seq,
            task: 0,
            cpu: 0,
        }
    }

    #[test]
    fn access_after_free_reports_the_free() {
        let arena: Arena<Std, &str> = Arena::new("map");
        let handle = arena.insert("inner");
        assert_eq!(*arena.get(handle, at(1)).unwrap(), "inner");
        arena.check(handle, at(1)).unwrap();
        arena.free(handle, at(2)).unwrap();
        let fault = arena.check(handle, at(3)).unwrap_err();
        assert_eq!(
            fault,
            Fault::UseAfterFree {
                object: "map #0.0".into(),
                freed_at: Some(at(2)),
                accessed_at: at(3)
            }
        );
        assert!(
            matches!(arena.free(handle, at(4)), Err(Fault::DoubleFree { first, .. }) if first == at(2))
        );
        assert!(arena.live().is_empty());
    }

    /// `QUARANTINE_SLOTS` other objects come and go, then one more arrives: it takes the
    /// oldest quarantined slot.
    fn after_a_quarantine(arena: &Arena<Std, usize>, value: usize) -> Handle {
        for v in 0..QUARANTINE_SLOTS {
            let other = arena.insert(1000 + v);
            arena.free(other, at(9)).unwrap();
        }
        arena.insert(value)
    }

    #[test]
    fn a_stale_handle_never_reaches_a_later_generation_of_its_slot() {
        let arena: Arena<Std, usize> = Arena::new("elem");
        let g0 = arena.insert(10);
        arena.free(g0, at(1)).unwrap();
        let g1 = after_a_quarantine(&arena, 11);
        assert_eq!((g1.index, g1.gen), (g0.index, 1));
        // Freeing through the stale handle is refused, and the later object stays.
        assert!(matches!(
            arena.free(g0, at(2)),
            Err(Fault::UseAfterFree { freed_at: None, .. })
        ));
        assert_eq!(*arena.get(g1, at(2)).unwrap(), 11);
        arena.free(g1, at(3)).unwrap();
        // Each handle's fault names its own generation's free: g1's is known, g0's is not.
        assert!(matches!(
            arena.check(g1, at(4)),
            Err(Fault::UseAfterFree { freed_at: Some(s), .. }) if s == at(3)
        ));
        assert!(matches!(
            arena.check(g0, at(4)),
            Err(Fault::UseAfterFree { freed_at: None, .. })
        ));
        // A third generation, freed: no older handle reads as live.
        let g2 = after_a_quarantine(&arena, 12);
        assert_eq!((g2.index, g2.gen), (g0.index, 2));
        arena.free(g2, at(5)).unwrap();
        for stale in [g0, g1, g2] {
            assert!(arena.check(stale, at(6)).is_err(), "{stale} reads as live");
        }
    }

    #[test]
    fn a_freed_slot_waits_behind_quarantine_slots_others_before_reuse() {
        let arena: Arena<Std, usize> = Arena::new("elem");
        let first = arena.insert(0);
        arena.free(first, at(1)).unwrap();
        // `first` and QUARANTINE_SLOTS - 1 more wait: QUARANTINE_SLOTS in all, none reused yet.
        for v in 1..QUARANTINE_SLOTS {
            let h = arena.insert(v);
            assert_ne!(h.index, first.index, "insert {v} reused a quarantined slot");
            arena.free(h, at(2)).unwrap();
        }
        let fresh = arena.insert(100);
        assert_eq!(
            fresh.index as usize, QUARANTINE_SLOTS,
            "with QUARANTINE_SLOTS slots waiting, a new slot is taken"
        );
        arena.free(fresh, at(3)).unwrap();
        // One more than QUARANTINE_SLOTS wait: the oldest comes back.
        assert_eq!(arena.insert(101).index, first.index);
    }

    #[test]
    fn reused_slots_get_a_new_generation_and_old_handles_stay_dead() {
        let arena: Arena<Std, usize> = Arena::new("elem");
        let first = arena.insert(0);
        arena.free(first, at(1)).unwrap();
        let handles: Vec<Handle> = (1..=QUARANTINE_SLOTS + 1)
            .map(|v| arena.insert(v))
            .collect();
        for handle in &handles {
            arena.free(*handle, at(2)).unwrap();
        }
        let reused = arena.insert(99);
        assert_eq!(
            reused.index, first.index,
            "the oldest quarantined slot is reused first"
        );
        assert_eq!(reused.gen, first.gen + 1);
        assert!(matches!(
            arena.check(first, at(3)),
            Err(Fault::UseAfterFree { freed_at: None, .. })
        ));
        assert_eq!(*arena.get(reused, at(3)).unwrap(), 99);
    }
}
