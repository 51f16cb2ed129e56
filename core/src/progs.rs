//! Loaded programs as objects of the world: what a `PROG_ARRAY` slot holds and a tail call
//! continues in.
//!
//! A program the verifier accepted and the fixups rewrote is installed here with an id (its own
//! id space, as the kernel's `prog_idr`), an fd in the process's one fd table (the lowest free
//! number), and a reference count: the fd holds one, each `PROG_ARRAY` slot
//! holding the program holds one. When the count reaches 0 the id goes first, then the program is
//! freed after an RCU grace period (tasks-trace, then RCU, for a sleepable one), as
//! `__bpf_prog_put_noref` defers `__bpf_prog_put_rcu`: a tail call that read the slot before the
//! program left it may still be running in it. Only the free drops the program's references on
//! its `used_maps`.
//!
//! The alternative, programs owned by whoever loaded them (as before tail calls), cannot express
//! a program outliving its fd inside a `PROG_ARRAY`, nor the read of a slot racing with its
//! replacement.
//!
//! # Invariants
//! * A program is freed at most once, and only from [`World::poll`] after its grace period(s);
//!   reading a freed one is a use-after-free fault with the stamp of its free (the arena's).
//! * The instructions stored are the fixed-up ones, what the executor runs; the type is the
//!   uapi `enum bpf_prog_type` number, what a `PROG_ARRAY`'s owner is compared by.

use crate::arena::{Arena, Handle};
use crate::errno::Errno;
use crate::fault::{Fault, Result};
use crate::isa::Insn;
use crate::rcu::{Object, Policy};
use crate::sync::{Atomic64, Ordering, Platform};
use crate::uapi::Fd;
use crate::world::{FdAccess, IdTable, OpenFd, World, FIRST_MAP_FD};

/// A program id (`prog->aux->id`).
pub type ProgId = u32;

/// One loaded program.
pub struct Prog<P: Platform> {
    pub id: ProgId,
    /// `enum bpf_prog_type`.
    pub prog_type: u32,
    pub sleepable: bool,
    /// The fixed-up instructions.
    pub insns: Vec<Insn>,
    /// The maps it holds a reference on (its `used_maps`).
    pub maps: Vec<Handle>,
    pub refcnt: P::Atomic,
}

/// The world's programs: the arena and the live ids (their fds are in the world's fd table).
pub(crate) struct ProgTable<P: Platform> {
    pub(crate) arena: Arena<P, Prog<P>>,
    pub(crate) ids: P::Mutex<IdTable>,
}

impl<P: Platform> ProgTable<P> {
    pub(crate) fn new() -> Self {
        ProgTable {
            arena: Arena::new("prog"),
            ids: P::mutex(IdTable::new()),
        }
    }
}

/// What [`World::prog_install`] gives back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Installed {
    pub fd: Fd,
    pub id: ProgId,
    pub handle: Handle,
}

impl<P: Platform> World<P> {
    /// Installs a loaded program: refcount 1 (its fd), a fresh id (allocated as map ids are,
    /// in its own space), the lowest free fd; `-ENOSPC` when every id is taken. The references
    /// on `maps` must already be held ([`World::prog_hold_maps`]); they pass to the program
    /// and are dropped when it is freed.
    pub fn prog_install(
        &self,
        prog_type: u32,
        sleepable: bool,
        insns: Vec<Insn>,
        maps: Vec<Handle>,
    ) -> Result<Installed> {
        let id = P::lock(&self.progs.ids, IdTable::next_free).ok_or(Errno::ENOSPC)?;
        let handle = self.progs.arena.insert(Prog {
            id,
            prog_type,
            sleepable,
            insns,
            maps,
            refcnt: P::atomic(1),
        });
        P::lock(&self.progs.ids, |ids| ids.live.insert(id, handle));
        let fd = self.install_prog_fd(handle);
        Ok(Installed { fd, id, handle })
    }

    /// The program behind `handle`, or the use-after-free fault.
    pub fn prog(&self, handle: Handle) -> Result<P::Arc<Prog<P>>> {
        Ok(self.progs.arena.get(handle, self.stamp())?)
    }

    /// `bpf_prog_get(fd)`: takes a reference. `-EBADF` for an fd that is not open, `-EINVAL`
    /// for one that is not a program (a map, or 0–2).
    pub fn prog_fd_get(&self, fd: Fd) -> Result<Handle> {
        if (0..FIRST_MAP_FD).contains(&fd) {
            return Err(Errno::EINVAL.into());
        }
        // Under the fd table lock, so a concurrent close cannot free the program in between.
        P::lock(&self.fds, |fds| -> Result<Handle> {
            let open = fds.get(&fd).ok_or(Errno::EBADF)?;
            if !open.prog {
                return Err(Errno::EINVAL.into());
            }
            self.prog(open.handle)?
                .refcnt
                .fetch_add(1, Ordering::AcqRel);
            Ok(open.handle)
        })
    }

    /// `bpf_prog_put`: drops a reference; at 0 the id goes, and the free waits for the grace
    /// period(s) of the program's flavour.
    pub fn prog_put(&self, handle: Handle) -> Result<()> {
        let prog = self.prog(handle)?;
        let before = prog.refcnt.fetch_sub(1, Ordering::AcqRel);
        if before == 0 {
            prog.refcnt.fetch_add(1, Ordering::AcqRel);
            return Err(Fault::DoublePut {
                object: format!("prog {handle} (id {})", prog.id),
                counter: "refcnt",
                at: self.stamp(),
            }
            .into());
        }
        if before != 1 {
            return Ok(());
        }
        P::lock(&self.progs.ids, |ids| ids.live.remove(&prog.id));
        let policy = if prog.sleepable {
            Policy::TasksTraceThenRcuGp
        } else {
            Policy::RcuGp
        };
        self.rcu().call(policy, Object::Prog(handle), self.stamp());
        Ok(())
    }

    /// `close(fd)` of a program fd; `None` when `fd` is not one (and then nothing is closed).
    pub(crate) fn prog_close(&self, fd: Fd) -> Option<Result<()>> {
        let handle = P::lock(&self.fds, |fds| match fds.get(&fd) {
            Some(open) if open.prog => fds.remove(&fd).map(|open| open.handle),
            _ => None,
        })?;
        Some(self.prog_put(handle))
    }

    /// `__bpf_prog_put_rcu`: frees the program and drops its map references.
    pub(crate) fn free_prog(&self, handle: Handle) -> Result<()> {
        let prog = self.progs.arena.free(handle, self.stamp())?;
        self.prog_release_maps(&prog.maps, prog.sleepable)
    }

    /// The id of a live program.
    pub fn prog_id(&self, handle: Handle) -> Result<ProgId> {
        Ok(self.prog(handle)?.id)
    }

    /// Programs not yet freed (live or waiting for their grace period).
    pub fn live_progs(&self) -> Vec<Handle> {
        self.progs.arena.live()
    }

    fn install_prog_fd(&self, handle: Handle) -> Fd {
        self.install(OpenFd {
            handle,
            access: FdAccess::READ_WRITE,
            prog: true,
        })
    }
}
