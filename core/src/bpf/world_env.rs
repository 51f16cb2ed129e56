//! The executor's view of the core's map world: [`MapEnv`] over [`World`].
//!
//! Programs reach maps only through encoded pointers ([`crate::ptr`]); every call here decodes
//! the pointer to a generation-checked handle and lets the world check it, so an inner map
//! freed under a running program is a [`Fault::UseAfterFree`] carried intact in
//! [`ExecErrorKind::Fault`], and a value access outside its element is a
//! [`Fault::OutOfBounds`]. Errnos the kernel's helpers return (`-EEXIST`, `-EBUSY`, ...) go back
//! to the program in `r0`, as in the kernel.
//!
//! The program runner (read-side section around the run, used maps held) is the caller's
//! business: this type only translates calls.

use super::exec::{EnvResult, ExecErrorKind, MapEnv, TailTarget};
use super::helpers::{DirectCall, MapFn, MapImpl};
use crate::arena::Handle;
use crate::fault::{Error, Fault};
use crate::isa::AtomicOp;
use crate::maps::prog_array::TailSlot;
use crate::maps::ARRAY_VALUE_OFFSET;
use crate::ptr::{Ptr, RegionKind};
use crate::sync::Platform;
use crate::uapi::MapType;
use crate::world::World;

/// A program's access to `world`.
pub struct WorldEnv<'w, P: Platform> {
    world: &'w World<P>,
}

impl<'w, P: Platform> WorldEnv<'w, P> {
    pub fn new(world: &'w World<P>) -> Self {
        WorldEnv { world }
    }

    fn handle(&self, ptr: Ptr) -> EnvResult<Handle> {
        if ptr.kind != RegionKind::Map {
            return Err(ExecErrorKind::MapAccess(format!(
                "{ptr} is not a map pointer"
            )));
        }
        self.world.resolve_map_ptr(ptr.encode()).map_err(into_exec)
    }

    /// A map argument must point at the map object itself, not into its values.
    fn map_arg(&self, map: Ptr) -> EnvResult<Handle> {
        if map.offset != 0 {
            return Err(ExecErrorKind::MapAccess(format!(
                "{map} points into a map, not at it"
            )));
        }
        self.handle(map)
    }
}

/// World errors become executor errors: faults stay faults, errnos become refusals.
fn into_exec(error: Error) -> ExecErrorKind {
    match error {
        Error::Fault(fault) => fault.into(),
        Error::Errno(errno) => ExecErrorKind::MapAccess(errno.to_string()),
    }
}

/// A helper's result in `r0`: 0, or the negated errno; faults stop the run.
fn helper_result(result: crate::fault::Result<()>) -> EnvResult<i64> {
    match result {
        Ok(()) => Ok(0),
        Err(Error::Errno(errno)) => Ok(-i64::from(errno.value())),
        Err(Error::Fault(fault)) => Err(fault.into()),
    }
}

/// The map implementation whose ops serve a map type, for checking fixed-up direct calls.
fn map_impl(map_type: MapType) -> Option<MapImpl> {
    crate::maps::kind::kind(map_type).direct
}

impl<P: Platform> MapEnv for WorldEnv<'_, P> {
    fn map_from_fd(&mut self, fd: i32) -> EnvResult<u64> {
        let handle = self.world.map_handle(fd).map_err(into_exec)?;
        Ok(Ptr::map(handle, 0).encode())
    }

    fn map_value_from_fd(&mut self, fd: i32, off: u32) -> EnvResult<u64> {
        let handle = self.world.map_handle(fd).map_err(into_exec)?;
        let def = self.world.map_def(handle).map_err(into_exec)?;
        if def.map_type != MapType::Array || off >= def.value_size {
            return Err(ExecErrorKind::MapAccess(format!(
                "map value load needs an array and an offset below value_size (fd {fd}, off {off})"
            )));
        }
        Ok(Ptr::map(handle, ARRAY_VALUE_OFFSET + off).encode())
    }

    fn map_key_size(&mut self, map: Ptr) -> EnvResult<u32> {
        let handle = self.map_arg(map)?;
        Ok(self.world.map_def(handle).map_err(into_exec)?.key_size)
    }

    fn map_value_size(&mut self, map: Ptr) -> EnvResult<u32> {
        let handle = self.map_arg(map)?;
        Ok(self.world.map_def(handle).map_err(into_exec)?.value_size)
    }

    fn map_lookup(&mut self, map: Ptr, key: &[u8]) -> EnvResult<u64> {
        let handle = self.map_arg(map)?;
        let found = self.world.prog_lookup(handle, key).map_err(into_exec)?;
        Ok(found.unwrap_or(0))
    }

    fn map_lookup_elem(&mut self, map: Ptr, key: &[u8]) -> EnvResult<u64> {
        let handle = self.map_arg(map)?;
        let found = self
            .world
            .prog_lookup_elem(handle, key)
            .map_err(into_exec)?;
        Ok(found.unwrap_or(0))
    }

    fn map_lookup_percpu(&mut self, map: Ptr, key: &[u8], cpu: u32) -> EnvResult<u64> {
        let handle = self.map_arg(map)?;
        let found = self
            .world
            .prog_lookup_percpu(handle, key, cpu)
            .map_err(into_exec)?;
        Ok(found.unwrap_or(0))
    }

    fn map_update(&mut self, map: Ptr, key: &[u8], value: &[u8], flags: u64) -> EnvResult<i64> {
        let handle = self.map_arg(map)?;
        helper_result(self.world.prog_update(handle, key, value, flags))
    }

    fn map_delete(&mut self, map: Ptr, key: &[u8]) -> EnvResult<i64> {
        let handle = self.map_arg(map)?;
        helper_result(self.world.prog_delete(handle, key))
    }

    fn load(&mut self, ptr: Ptr, size: u8) -> EnvResult<u64> {
        let handle = self.handle(ptr)?;
        self.world
            .load(handle, ptr.offset, u32::from(size))
            .map_err(into_exec)
    }

    fn store(&mut self, ptr: Ptr, size: u8, value: u64) -> EnvResult<()> {
        let handle = self.handle(ptr)?;
        self.world
            .store(handle, ptr.offset, u32::from(size), value)
            .map_err(into_exec)
    }

    fn atomic(&mut self, ptr: Ptr, size: u8, op: AtomicOp, src: u64, r0: u64) -> EnvResult<u64> {
        let handle = self.handle(ptr)?;
        self.world
            .atomic(handle, ptr.offset, u32::from(size), op, src, r0)
            .map_err(into_exec)
    }

    fn tail_call(&mut self, map: Ptr, index: u32) -> EnvResult<TailTarget> {
        let handle = self.map_arg(map)?;
        let map = self.world.map(handle).map_err(into_exec)?;
        Ok(match map.ops.tail_call_slot(index).map_err(into_exec)? {
            TailSlot::OutOfRange => TailTarget::OutOfRange,
            TailSlot::Empty => TailTarget::Empty,
            // The slot held a reference when it was read; the program is freed only after a
            // grace period, so one that left the slot since is still readable here.
            TailSlot::Prog(prog) => TailTarget::Prog {
                insns: self.world.prog(prog).map_err(into_exec)?.insns.clone(),
                token: prog.to_word(),
            },
        })
    }

    fn check_running(&mut self, token: u64) -> EnvResult<()> {
        let prog = Handle::from_word(token)
            .ok_or_else(|| ExecErrorKind::MapAccess(format!("{token:#x} names no program")))?;
        self.world.prog(prog).map(drop).map_err(into_exec)
    }

    fn check_direct_call(&mut self, call: DirectCall, map: Ptr) -> EnvResult<()> {
        let handle = self.map_arg(map)?;
        let map_type = self.world.map_def(handle).map_err(into_exec)?.map_type;
        // Hash-of-maps' inlined lookup calls the hash's `__htab_map_lookup_elem` too.
        let serves = match call.func {
            MapFn::LookupElem => matches!(map_type, MapType::Hash | MapType::HashOfMaps),
            MapFn::Lookup | MapFn::Update | MapFn::Delete | MapFn::LookupPercpu => {
                map_impl(map_type) == Some(call.map)
            }
        };
        if serves {
            Ok(())
        } else {
            Err(Fault::OutOfBounds {
                what: format!(
                    "direct call {} on a {} map (a miscompiled fixup)",
                    call.name(),
                    map_type.name()
                ),
                at: self.world.stamp(),
            }
            .into())
        }
    }
}
