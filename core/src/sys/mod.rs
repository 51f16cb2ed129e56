//! The syscall layer: the `bpf(2)` map commands as methods on [`World`] (`&self`, so tasks can
//! call them concurrently), returning the kernel's errnos for every row of semantics.md, and
//! [`Process`], the [`BpfSys`] adapter the differential tests and fuzzers drive.
//!
//! Conventions the model fixes where the kernel reads raw user memory:
//! * a key or value buffer whose length is not the map's `key_size` / `value_size` is `-EINVAL`
//!   (the kernel would copy the wrong number of bytes or fault);
//! * outer maps take inner map fds (4 bytes LE) and return inner map ids (4 bytes LE);
//! * batch tokens: for hashes the bucket to resume from, for arrays the last key returned (the
//!   next call starts after it); empty array-of-maps slots are skipped by a lookup batch (the
//!   kernel retries them and may fail with `-EINTR`, which the model does not have);
//! * closing fds 0–2 is `-EINVAL`: they are not maps, and the model never frees them;
//! * per-CPU maps take and give `round_up(value_size, 8)` bytes per CPU of the world
//!   ([`crate::world::WorldConfig::cpus`] are the possible CPUs);
//! * `BPF_F_LOCK` is `-EINVAL` (no value has a spin lock), and so is any element flag of an
//!   update batch.
//!
//! Where the kernel (measured on 6.18) differs from semantics.md, the world follows the kernel,
//! as the sequential model does (docs/kernel-disagreements.md):
//! * D1/D3: `BPF_F_RDONLY`/`BPF_F_WRONLY` are accepted on every type (both together: `-EINVAL`,
//!   before anything else) and are not kept in `map_flags`; they set the access mode of the fd
//!   ([`FdAccess`]). A write (update, delete, update/delete batch) through a read-only fd or a
//!   read (lookup, get_next_key, lookup batch) through a write-only one is `-EPERM`, checked as
//!   the fd resolves; the lookup-and-delete commands need both.
//! * `map_info` of an fd that is not open is `-EBADFD`, not `-EBADF`.
//!
//! Every syscall first runs the deferred frees that are ready ([`World::poll`]), as a kernel's
//! softirqs would between syscalls. After a successful update or delete on a map-in-map (single
//! or batch), the call waits for an RCU grace period (mutant `no_wait_after_update` skips it).

use crate::errno::Errno;
use crate::fault::{Error, Fault, Result};
use crate::history::Feature;
use crate::maps::{self, Caller, Map};
use crate::mutants::Mutant;
use crate::rcu::Flavor;
use crate::sync::{Atomic64, Ordering, Platform};
use crate::uapi::*;
use crate::world::{FdAccess, OpenFd, World, FIRST_MAP_FD, INC_NOT_ZERO_TRIES};

/// `BPF_F_LOCK`: the only element flag a generic batch update accepts.
pub const BPF_F_LOCK: u64 = 4;

impl<P: Platform> World<P> {
    fn key_ok(map: &Map<P>, key: &[u8]) -> Result<()> {
        if key.len() != map.def.key_size as usize {
            return Err(Errno::EINVAL.into());
        }
        Ok(())
    }

    /// `maybe_wait_bpf_programs`: after a write to a map-in-map, no program may still use the
    /// old inner map when the syscall returns.
    fn wait_after_write(&self, map: &Map<P>) -> Result<()> {
        if map.def.map_type.is_map_in_map() && !self.mutants().on(Mutant::NoWaitAfterUpdate) {
            self.synchronize(Flavor::Rcu)?;
        }
        Ok(())
    }

    /// `fdget` + `__bpf_map_get`: the syscall's own reference, taken under the fd table lock,
    /// so a concurrent `close` of the same fd cannot free the map under the syscall (the kernel's
    /// file reference does that). Dropped by [`World::fdput`] at the end of the syscall.
    /// Then the fd's access mode (`map_get_sys_perms`): an operation that reads (`read`)
    /// through a write-only fd or writes (`write`) through a read-only one is `-EPERM`, before
    /// anything about keys, flags or the map type.
    fn fdget(
        &self,
        fd: Fd,
        read: bool,
        write: bool,
    ) -> Result<(crate::arena::Handle, P::Arc<Map<P>>)> {
        if (0..FIRST_MAP_FD).contains(&fd) {
            return Err(Errno::EINVAL.into());
        }
        P::lock(&self.fds, |fds| {
            let open = *fds.get(&fd).ok_or(Errno::EBADF)?;
            let handle = open.map()?;
            if !open.access.allows(read, write) {
                return Err(Errno::EPERM.into());
            }
            let map = self.map(handle)?;
            // `map_get_sys_perms`: a frozen map is read-only to user space.
            if write && map.is_frozen() {
                return Err(Errno::EPERM.into());
            }
            map.refcnt.fetch_add(1, Ordering::AcqRel);
            Ok((handle, map))
        })
    }

    fn fdput(&self, handle: crate::arena::Handle, map: &Map<P>) -> Result<()> {
        self.map_put(handle, map)
    }

    /// Runs a syscall body on the map behind `fd`, holding the syscall's reference; `read` and
    /// `write` say what the command needs of the fd ([`World::fdget`]).
    fn with_fd<R>(
        &self,
        fd: Fd,
        read: bool,
        write: bool,
        body: impl FnOnce(&Map<P>) -> Result<R>,
    ) -> Result<R> {
        self.poll()?;
        let (handle, map) = self.fdget(fd, read, write)?;
        let result = body(&map);
        self.fdput(handle, &map)?;
        result
    }

    fn install_fd(&self, handle: crate::arena::Handle, access: FdAccess) -> Fd {
        self.install(OpenFd {
            handle,
            access,
            prog: false,
        })
    }

    /// `BPF_MAP_CREATE`.
    pub fn map_create(&self, attr: &MapAttr) -> Result<Fd> {
        self.poll()?;
        // `bpf_get_file_flag` comes first, before the type is looked at; the access flags then
        // belong to the fd, not to the map (D3: not in `map_flags`, so not in the meta).
        if attr.map_flags & BPF_F_RDONLY != 0 && attr.map_flags & BPF_F_WRONLY != 0 {
            return Err(Errno::EINVAL.into());
        }
        let access = FdAccess::of_create_flags(attr.map_flags);
        let attr = MapAttr {
            map_flags: attr.map_flags & !(BPF_F_RDONLY | BPF_F_WRONLY),
            ..*attr
        };
        let (def, ops, header_len) = maps::alloc(self, &attr)?;
        let handle = self.insert_map(Map::new(def, header_len, ops));
        let id = self.ids.lock(
            self.lockdep(),
            || self.stamp(),
            |ids| {
                let id = ids.next_free()?;
                ids.live.insert(id, handle);
                Some(id)
            },
        )?;
        let map = self.map(handle)?;
        match id {
            Some(id) => map.set_id(id),
            None => {
                self.free_map(handle)?;
                return Err(Errno::ENOSPC.into());
            }
        }
        Ok(self.install_fd(handle, access))
    }

    /// A user-space lookup inside an RCU read-side section (the inner map of an outer map
    /// cannot be freed while its id is read).
    pub(crate) fn sys_lookup_value(&self, map: &Map<P>, key: &[u8]) -> Result<Vec<u8>> {
        if let Some(value) = map.ops.fd_sys_lookup_elem(self, key) {
            return value;
        }
        self.read_section(Flavor::Rcu, || match map.ops.lookup(self, key)? {
            Some(found) => map.ops.value_to_user(self, map, found),
            None => Err(Errno::ENOENT.into()),
        })
    }

    /// `BPF_MAP_LOOKUP_ELEM`.
    pub fn map_lookup_elem(&self, fd: Fd, key: &[u8]) -> Result<Vec<u8>> {
        self.with_fd(fd, true, false, |map| {
            Self::key_ok(map, key)?;
            self.sys_lookup_value(map, key)
        })
    }

    /// `BPF_MAP_UPDATE_ELEM`.
    pub fn map_update_elem(&self, fd: Fd, key: &[u8], value: &[u8], flags: u64) -> Result<()> {
        self.with_fd(fd, false, true, |map| {
            // No map in the model has a `bpf_spin_lock` in its value.
            if flags & BPF_F_LOCK != 0 {
                return Err(Errno::EINVAL.into());
            }
            Self::key_ok(map, key)?;
            if value.len() != map.sys_value_len() as usize {
                return Err(Errno::EINVAL.into());
            }
            map.ops
                .update(self, map, key, value, flags, Caller::Syscall)?;
            self.wait_after_write(map)
        })
    }

    /// `BPF_MAP_FREEZE`: needs write access (so freezing twice is `-EPERM`, the frozen map
    /// being read-only to user space).
    pub fn map_freeze(&self, fd: Fd) -> Result<()> {
        self.with_fd(fd, false, true, |map| {
            map.freeze();
            Ok(())
        })
    }

    /// `BPF_MAP_DELETE_ELEM`.
    pub fn map_delete_elem(&self, fd: Fd, key: &[u8]) -> Result<()> {
        self.with_fd(fd, false, true, |map| {
            Self::key_ok(map, key)?;
            map.ops.delete(self, map, key)?;
            self.wait_after_write(map)
        })
    }

    /// `BPF_MAP_LOOKUP_AND_DELETE_ELEM` (plain hashes only; `-ENOTSUPP` elsewhere).
    pub fn map_lookup_and_delete_elem(&self, fd: Fd, key: &[u8]) -> Result<Vec<u8>> {
        self.with_fd(fd, true, true, |map| {
            Self::key_ok(map, key)?;
            map.ops.lookup_and_delete(self, map, key)
        })
    }

    /// `BPF_MAP_GET_NEXT_KEY`.
    pub fn map_get_next_key(&self, fd: Fd, key: Option<&[u8]>) -> Result<Vec<u8>> {
        self.with_fd(fd, true, false, |map| {
            if let Some(key) = key {
                Self::key_ok(map, key)?;
            }
            map.ops.get_next_key(self, key)
        })
    }

    /// Batch ops on outer maps arrived in 5.19 (`history`): before, `-ENOTSUPP`.
    fn batch_ok(&self, map: &Map<P>) -> Result<()> {
        if map.ops.holds_maps() && self.config().lacks.lacks(Feature::BatchOnMapInMap) {
            return Err(Errno::ENOTSUPP.into());
        }
        Ok(())
    }

    /// `BPF_MAP_LOOKUP_BATCH`.
    pub fn map_lookup_batch(&self, fd: Fd, in_batch: Option<u32>, count: u32) -> Result<BatchOut> {
        self.with_fd(fd, true, false, |map| {
            self.batch_ok(map)?;
            map.ops.lookup_batch(self, map, in_batch, count, false)
        })
    }

    /// `BPF_MAP_LOOKUP_AND_DELETE_BATCH`.
    pub fn map_lookup_and_delete_batch(
        &self,
        fd: Fd,
        in_batch: Option<u32>,
        count: u32,
    ) -> Result<BatchOut> {
        self.with_fd(fd, true, true, |map| {
            self.batch_ok(map)?;
            let out = map.ops.lookup_batch(self, map, in_batch, count, true)?;
            self.wait_after_write(map)?;
            Ok(out)
        })
    }

    /// `BPF_MAP_UPDATE_BATCH` (`generic_map_update_batch`): stops at the first error and reports
    /// how many entries were applied before it.
    pub fn map_update_batch(
        &self,
        fd: Fd,
        keys: &[Vec<u8>],
        values: &[Vec<u8>],
        flags: u64,
    ) -> Result<u32, (u32, Error)> {
        self.poll().map_err(|e| (0, e))?;
        let (handle, map) = self.fdget(fd, false, true).map_err(|e| (0, e))?;
        let result = self.update_batch_body(&map, keys, values, flags);
        self.fdput(handle, &map).map_err(|e| (0, e))?;
        result
    }

    fn update_batch_body(
        &self,
        map: &Map<P>,
        keys: &[Vec<u8>],
        values: &[Vec<u8>],
        flags: u64,
    ) -> Result<u32, (u32, Error)> {
        if !map.ops.has_update_batch() {
            return Err((0, Errno::ENOTSUPP.into()));
        }
        self.batch_ok(map).map_err(|e| (0, e))?;
        // `elem_flags` may only be `BPF_F_LOCK`, and no map here has a spin lock.
        if flags != 0 || keys.len() != values.len() {
            return Err((0, Errno::EINVAL.into()));
        }
        let mut applied = 0;
        let mut failure = None;
        for (key, value) in keys.iter().zip(values) {
            let result = Self::key_ok(map, key).and_then(|()| {
                if value.len() != map.sys_value_len() as usize {
                    return Err(Errno::EINVAL.into());
                }
                map.ops
                    .update(self, map, key, value, flags, Caller::Syscall)
            });
            if let Err(e) = result {
                failure = Some(e);
                break;
            }
            applied += 1;
        }
        if applied > 0 {
            self.wait_after_write(map).map_err(|e| (applied, e))?;
        }
        match failure {
            Some(e) => Err((applied, e)),
            None => Ok(applied),
        }
    }

    /// `BPF_MAP_DELETE_BATCH` (`generic_map_delete_batch`).
    pub fn map_delete_batch(&self, fd: Fd, keys: &[Vec<u8>]) -> Result<u32, (u32, Error)> {
        self.poll().map_err(|e| (0, e))?;
        let (handle, map) = self.fdget(fd, false, true).map_err(|e| (0, e))?;
        let result = self.delete_batch_body(&map, keys);
        self.fdput(handle, &map).map_err(|e| (0, e))?;
        result
    }

    fn delete_batch_body(&self, map: &Map<P>, keys: &[Vec<u8>]) -> Result<u32, (u32, Error)> {
        if !map.ops.has_delete_batch() {
            return Err((0, Errno::ENOTSUPP.into()));
        }
        self.batch_ok(map).map_err(|e| (0, e))?;
        let mut applied = 0;
        let mut failure = None;
        for key in keys {
            if let Err(e) = Self::key_ok(map, key).and_then(|()| map.ops.delete(self, map, key)) {
                failure = Some(e);
                break;
            }
            applied += 1;
        }
        if applied > 0 {
            self.wait_after_write(map).map_err(|e| (applied, e))?;
        }
        match failure {
            Some(e) => Err((applied, e)),
            None => Ok(applied),
        }
    }

    /// `BPF_MAP_GET_FD_BY_ID`: `-ENOENT` once the map's refcnt has reached 0.
    pub fn map_get_fd_by_id(&self, id: MapId) -> Result<Fd> {
        self.poll()?;
        let found = self.ids.lock(
            self.lockdep(),
            || self.stamp(),
            |ids| -> Result<_> {
                let Some(&handle) = ids.live.get(&id) else {
                    return Ok(None);
                };
                let map = self.map(handle)?;
                // bpf_map_inc_not_zero: a map whose refcnt already dropped to 0 is gone.
                let mut current = map.refcnt.load(Ordering::Acquire);
                for _ in 0..INC_NOT_ZERO_TRIES {
                    if current == 0 {
                        return Ok(None);
                    }
                    match map.refcnt.compare_exchange(
                        current,
                        current + 1,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => {
                            map.uref.fetch_add(1, Ordering::AcqRel);
                            return Ok(Some(handle));
                        }
                        Err(seen) => current = seen,
                    }
                }
                Err(Fault::Liveness {
                    detail: format!("inc_not_zero on map id {id} never wins its CAS"),
                }
                .into())
            },
        )??;
        let handle = found.ok_or(Errno::ENOENT)?;
        // A fd opened by id reads and writes, whatever the creating fd's mode.
        Ok(self.install_fd(handle, FdAccess::READ_WRITE))
    }

    /// `BPF_OBJ_GET_INFO_BY_FD` for a map: an fd that is not open is `-EBADFD` here (the map
    /// commands say `-EBADF`); the fd's access mode does not matter.
    pub fn map_info(&self, fd: Fd) -> Result<MapInfo> {
        let info = self.with_fd(fd, false, false, |map| {
            Ok(MapInfo {
                id: map.id(),
                map_type: map.def.map_type as u32,
                key_size: map.def.key_size,
                value_size: map.def.value_size,
                max_entries: map.def.max_entries,
                map_flags: map.def.map_flags,
            })
        });
        info.map_err(|e| match e.errno() {
            Some(Errno::EBADF) => Errno::EBADFD.into(),
            _ => e,
        })
    }

    /// `close(fd)`: drops the fd's uref and refcnt (not deferred: the fd is not a reader).
    pub fn close(&self, fd: Fd) -> Result<()> {
        if (0..FIRST_MAP_FD).contains(&fd) {
            return Err(Errno::EINVAL.into());
        }
        let open = P::lock(&self.fds, |fds| fds.remove(&fd)).ok_or(Errno::EBADF)?;
        if open.prog {
            self.prog_put(open.handle)?;
            return self.poll();
        }
        let handle = open.handle;
        let map = self.map(handle)?;
        let urefs = map.uref.fetch_sub(1, Ordering::AcqRel);
        if urefs == 0 {
            map.uref.fetch_add(1, Ordering::AcqRel);
            return Err(Fault::DoublePut {
                object: format!("map {handle} (id {})", map.id()),
                counter: "uref",
                at: self.stamp(),
            }
            .into());
        }
        if urefs == 1 {
            map.ops.release_uref(self)?;
        }
        self.map_put(handle, &map)?;
        self.poll()
    }

    /// The fds open in the process, in order.
    pub fn open_fds(&self) -> Vec<Fd> {
        P::lock(&self.fds, |fds| fds.keys().copied().collect())
    }
}

/// A process of the modelled kernel: the [`BpfSys`] face of a shared [`World`]. Cheap to clone;
/// all clones share the world's fd table (one process, many threads).
pub struct Process<P: Platform> {
    world: P::Arc<World<P>>,
}

impl<P: Platform> Clone for Process<P> {
    fn clone(&self) -> Self {
        Process {
            world: self.world.clone(),
        }
    }
}

impl<P: Platform> Process<P> {
    pub fn new(world: P::Arc<World<P>>) -> Self {
        Process { world }
    }
    /// A process in a fresh world.
    pub fn create(mutants: crate::mutants::Mutants, config: crate::world::WorldConfig) -> Self {
        Process {
            world: P::arc(World::new(mutants, config)),
        }
    }
    pub fn world(&self) -> &P::Arc<World<P>> {
        &self.world
    }
}

impl<P: Platform> BpfSys for Process<P> {
    fn map_create(&mut self, attr: &MapAttr) -> Result<Fd> {
        self.world.map_create(attr)
    }
    fn map_lookup_elem(&mut self, fd: Fd, key: &[u8]) -> Result<Vec<u8>> {
        self.world.map_lookup_elem(fd, key)
    }
    fn map_update_elem(&mut self, fd: Fd, key: &[u8], value: &[u8], flags: u64) -> Result<()> {
        self.world.map_update_elem(fd, key, value, flags)
    }
    fn map_delete_elem(&mut self, fd: Fd, key: &[u8]) -> Result<()> {
        self.world.map_delete_elem(fd, key)
    }
    fn map_lookup_and_delete_elem(&mut self, fd: Fd, key: &[u8]) -> Result<Vec<u8>> {
        self.world.map_lookup_and_delete_elem(fd, key)
    }
    fn map_get_next_key(&mut self, fd: Fd, key: Option<&[u8]>) -> Result<Vec<u8>> {
        self.world.map_get_next_key(fd, key)
    }
    fn map_lookup_batch(&mut self, fd: Fd, in_batch: Option<u32>, count: u32) -> Result<BatchOut> {
        self.world.map_lookup_batch(fd, in_batch, count)
    }
    fn map_lookup_and_delete_batch(
        &mut self,
        fd: Fd,
        in_batch: Option<u32>,
        count: u32,
    ) -> Result<BatchOut> {
        self.world.map_lookup_and_delete_batch(fd, in_batch, count)
    }
    fn map_update_batch(
        &mut self,
        fd: Fd,
        keys: &[Vec<u8>],
        values: &[Vec<u8>],
        flags: u64,
    ) -> Result<u32, (u32, Error)> {
        self.world.map_update_batch(fd, keys, values, flags)
    }
    fn map_delete_batch(&mut self, fd: Fd, keys: &[Vec<u8>]) -> Result<u32, (u32, Error)> {
        self.world.map_delete_batch(fd, keys)
    }
    fn map_get_fd_by_id(&mut self, id: MapId) -> Result<Fd> {
        self.world.map_get_fd_by_id(id)
    }
    fn map_info(&mut self, fd: Fd) -> Result<MapInfo> {
        self.world.map_info(fd)
    }
    fn map_freeze(&mut self, fd: Fd) -> Result<()> {
        self.world.map_freeze(fd)
    }
    fn close(&mut self, fd: Fd) -> Result<()> {
        self.world.close(fd)
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod scenarios;
