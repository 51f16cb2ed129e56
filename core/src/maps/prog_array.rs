//! `BPF_MAP_TYPE_PROG_ARRAY` (the kernel's `prog_array_map_ops`): `max_entries` slots, each
//! empty or holding a reference on a loaded program ([`crate::progs`]), read by `bpf_tail_call`.
//!
//! * Updates come from user space only (the verifier lets a program pass a `PROG_ARRAY` to
//!   `bpf_tail_call` alone): flags other than `BPF_ANY` are `-EINVAL`, an index past the end
//!   `-E2BIG`, the value is a program fd (`-EBADF` when not open, `-EINVAL` when not a program).
//!   The new program replaces the old one with one exchange, and the old one is put afterwards:
//!   its free waits for a grace period, so a tail call that read the slot just before may still
//!   run it.
//! * The **owner**: the first program to be stored or loaded with a reference to the map fixes
//!   the program type (and sleepability) every later one must have, else `-EINVAL`
//!   (`bpf_prog_map_compatible`): a tail call never changes the context type under a program.
//! * A user-space lookup returns the program's id (`map_fd_sys_lookup_elem`); a delete empties
//!   the slot (`-ENOENT` when it was empty).
//! * When the last user reference goes (`map_release_uref`), every slot is emptied: programs
//!   hold the maps they use but not what is stored in them, so this is what breaks a cycle of a
//!   program tail-calling through the array that holds it.
//!
//! Slots are words holding an encoded program handle (0 = empty), written with an exchange and
//! read with one load, as the kernel's `xchg` and `READ_ONCE` of `array->ptrs[index]`.

use super::array::ArrayMap;
use super::{array_index, Caller, Found, Map, MapDef, MapOps};
use crate::arena::Handle;
use crate::errno::Errno;
use crate::fault::Result;
use crate::sync::{Atomic64, Ordering, Platform};
use crate::uapi::BPF_ANY;
use crate::world::World;

/// What a tail call finds at an index (the interpreter's three ways out of `JMP_TAIL_CALL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TailSlot {
    /// `index >= max_entries`: the call falls through before the tail-call count is touched.
    OutOfRange,
    Empty,
    Prog(Handle),
}

/// The program type and sleepability every program of the array must share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Owner {
    prog_type: u32,
    sleepable: bool,
}

pub struct ProgArray<P: Platform> {
    /// The array's shape: keys, next-key order and the footprint (one pointer per slot).
    array: ArrayMap<P>,
    slots: Vec<P::Atomic>,
    owner: P::Mutex<Option<Owner>>,
}

impl<P: Platform> ProgArray<P> {
    pub fn new(def: &MapDef) -> Result<Self> {
        Ok(ProgArray {
            array: ArrayMap::new(def)?,
            slots: (0..def.max_entries).map(|_| P::atomic(0)).collect(),
            owner: P::mutex(None),
        })
    }

    fn slot(&self, key: &[u8]) -> Result<&P::Atomic> {
        let index = array_index(key)?;
        self.slots
            .get(index as usize)
            .ok_or_else(|| Errno::E2BIG.into())
    }

    /// Empties one slot and puts what it held; whether it held a program.
    fn clear(&self, w: &World<P>, slot: &P::Atomic) -> Result<bool> {
        match Handle::from_word(slot.swap(0, Ordering::AcqRel)) {
            Some(old) => w.prog_put(old).map(|()| true),
            None => Ok(false),
        }
    }
}

impl<P: Platform> MapOps<P> for ProgArray<P> {
    /// `fd_array_map_lookup_elem`: a program may not look into a program array (the verifier
    /// allows only `bpf_tail_call`, so no verified program reaches this); user space reads ids
    /// through `fd_sys_lookup_elem`.
    fn lookup(&self, _w: &World<P>, _key: &[u8]) -> Result<Option<Found>> {
        Err(Errno::EOPNOTSUPP.into())
    }
    fn fd_sys_lookup_elem(&self, w: &World<P>, key: &[u8]) -> Option<Result<Vec<u8>>> {
        Some((|| {
            let slot = self.slot(key).map_err(|_| Errno::ENOENT)?;
            let handle = Handle::from_word(slot.load(Ordering::Acquire)).ok_or(Errno::ENOENT)?;
            Ok(w.prog_id(handle)?.to_le_bytes().to_vec())
        })())
    }
    fn update(
        &self,
        w: &World<P>,
        _map: &Map<P>,
        key: &[u8],
        value: &[u8],
        flags: u64,
        _caller: Caller,
    ) -> Result<()> {
        if flags != BPF_ANY {
            return Err(Errno::EINVAL.into());
        }
        let slot = self.slot(key)?;
        let handle = w.prog_fd_get(super::value_fd(value)?)?;
        let prog = w.prog(handle)?;
        if !self.owner_compatible(prog.prog_type, prog.sleepable) {
            w.prog_put(handle)?;
            return Err(Errno::EINVAL.into());
        }
        if let Some(old) = Handle::from_word(slot.swap(handle.to_word(), Ordering::AcqRel)) {
            w.prog_put(old)?;
        }
        Ok(())
    }
    fn delete(&self, w: &World<P>, _map: &Map<P>, key: &[u8]) -> Result<()> {
        let slot = self.slot(key)?;
        if self.clear(w, slot)? {
            Ok(())
        } else {
            Err(Errno::ENOENT.into())
        }
    }
    fn get_next_key(&self, _w: &World<P>, key: Option<&[u8]>) -> Result<Vec<u8>> {
        self.array.next_key(key)
    }
    fn free(&self, w: &World<P>, _map: &Map<P>) -> Result<()> {
        self.release_uref(w)
    }
    fn release_uref(&self, w: &World<P>) -> Result<()> {
        for slot in &self.slots {
            self.clear(w, slot)?;
        }
        Ok(())
    }
    fn owner_compatible(&self, prog_type: u32, sleepable: bool) -> bool {
        let theirs = Owner {
            prog_type,
            sleepable,
        };
        P::lock(&self.owner, |owner| *owner.get_or_insert(theirs) == theirs)
    }
    fn tail_call_slot(&self, index: u32) -> Result<TailSlot> {
        Ok(match self.slots.get(index as usize) {
            None => TailSlot::OutOfRange,
            Some(slot) => Handle::from_word(slot.load(Ordering::Acquire))
                .map_or(TailSlot::Empty, TailSlot::Prog),
        })
    }
    fn footprint(&self) -> u64 {
        self.array.footprint()
    }
    fn word(&self, _offset: u32) -> Option<&P::Atomic> {
        // Program pointers are not value memory a program may read.
        None
    }
}
