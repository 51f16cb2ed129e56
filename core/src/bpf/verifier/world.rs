//! The core's map world as the verifier's [`MapResolver`]: a program's fds resolve to the maps
//! of [`World`], with the shape, the array constants, the encoded map pointer the fixed-up
//! `lddw` loads, and for outer maps the meta the world built (so the meta mutants of the world
//! reach the fixups unchanged).

use super::{MapDesc, MapResolver};
use crate::maps::meta::MapMeta;
use crate::maps::{map_ptr, MapDef};
use crate::sync::Platform;
use crate::uapi::MapType;
use crate::world::World;

/// Bytes of an array-of-maps slot: one map pointer.
const MAP_PTR_SLOT: u32 = 8;

fn elem_size(def: &MapDef) -> u32 {
    match def.map_type {
        MapType::ArrayOfMaps | MapType::ProgArray => MAP_PTR_SLOT,
        MapType::Array | MapType::PercpuArray => def.value_size.div_ceil(8) * 8,
        _ => 0,
    }
}

fn from_meta(meta: &MapMeta) -> MapDesc {
    MapDesc {
        map_type: meta.map_type as u32,
        key_size: meta.key_size,
        value_size: meta.value_size,
        max_entries: meta.max_entries,
        map_flags: meta.map_flags,
        index_mask: meta.index_mask,
        // As recorded: 0 under `meta_elem_size_zero`, which is the point of that mutant.
        elem_size: meta.elem_size,
        inner_meta: None,
        id: 0,
        ptr: 0,
    }
}

impl<P: Platform> MapResolver for World<P> {
    fn map_by_fd(&self, fd: i32) -> Result<MapDesc, String> {
        let (handle, map) = self
            .fd_to_map(fd)
            .map_err(|e| format!("fd {fd} is not pointing to valid bpf_map ({e})"))?;
        let def = map.def;
        let meta = self.map_meta(handle).map_err(|e| e.to_string())?;
        let index_mask = self
            .map_index_mask(handle)
            .map_err(|e| e.to_string())?
            .unwrap_or(0);
        Ok(MapDesc {
            map_type: def.map_type as u32,
            key_size: def.key_size,
            value_size: def.value_size,
            max_entries: def.max_entries,
            map_flags: def.map_flags,
            index_mask,
            elem_size: elem_size(&def),
            inner_meta: meta.as_ref().map(|m| Box::new(from_meta(m))),
            id: map.id(),
            ptr: map_ptr(handle),
        })
    }
}

/// A program loaded into the world: the verifier's result, the fixed-up instructions the
/// executor runs, and the references it holds on its `used_maps` (outer maps, never the inner
/// maps reached through them).
#[derive(Debug)]
pub struct LoadedProg {
    pub verified: super::Verified,
    pub fixed: crate::bpf::fixup::Fixed,
    pub maps: Vec<crate::arena::Handle>,
    pub sleepable: bool,
}

/// Why a load failed.
#[derive(Debug)]
pub enum LoadError {
    /// The verifier refused (the log is in the rejection).
    Rejected(super::Rejection),
    Fixup(crate::bpf::fixup::FixupError),
    /// Taking the map references failed (a map freed under the loader: a model fault).
    World(crate::fault::Error),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Rejected(r) => write!(f, "verifier refused: {r}"),
            LoadError::Fixup(e) => write!(f, "fixup failed: {e}"),
            LoadError::World(e) => write!(f, "map references: {e}"),
        }
    }
}

impl std::error::Error for LoadError {}

/// `BPF_PROG_LOAD`: resolve the program's map fds in `world`, verify, apply the fixups (with
/// the world's mutants and `opts.mutants`), and hold a reference on each used map (marking them
/// used by a sleepable program when `opts.sleepable`, semantics.md §6).
pub fn prog_load<P: Platform>(
    world: &World<P>,
    insns: &[crate::isa::Insn],
    opts: super::VerifyOpts,
) -> Result<LoadedProg, LoadError> {
    let mutants = world
        .mutants()
        .iter()
        .fold(opts.mutants, crate::mutants::Mutants::with);
    let opts = super::VerifyOpts { mutants, ..opts };
    let verified = super::verify(insns, world, opts).map_err(LoadError::Rejected)?;
    let fixed = crate::bpf::fixup::fixup(&verified, mutants).map_err(LoadError::Fixup)?;
    let maps = verified
        .used_maps
        .iter()
        .map(|&i| world.resolve_map_ptr(verified.maps[i as usize].ptr))
        .collect::<Result<Vec<_>, _>>()
        .map_err(LoadError::World)?;
    world
        .prog_hold_maps(&maps, opts.sleepable)
        .map_err(LoadError::World)?;
    Ok(LoadedProg {
        verified,
        fixed,
        maps,
        sleepable: opts.sleepable,
    })
}

/// Why a test run gave no `r0`.
#[derive(Debug)]
pub enum TestRunError {
    /// Refused before the run, as the kernel does (`EINVAL`: a context shorter than the
    /// program's `max_ctx_offset`, or longer than `U16_MAX`).
    Errno(crate::errno::Errno),
    /// The executor stopped the program (a model fault or a verifier gap, never the kernel's).
    Exec(crate::bpf::exec::ExecError),
    /// The fixed-up program did not decode, or the read-side section failed.
    Setup(String),
}

impl std::fmt::Display for TestRunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TestRunError::Errno(e) => write!(f, "test run refused: {e}"),
            TestRunError::Exec(e) => write!(f, "program stopped: {e}"),
            TestRunError::Setup(e) => write!(f, "test run: {e}"),
        }
    }
}

impl std::error::Error for TestRunError {}

impl LoadedProg {
    /// `BPF_PROG_TEST_RUN` of a `BPF_PROG_TYPE_SYSCALL` program (the test run mimic models,
    /// applied to every loaded program): `ctx` must reach the program's `max_ctx_offset` and
    /// stay within `U16_MAX` bytes, else `EINVAL` before anything runs. The program runs on a
    /// copy of `ctx` inside the read-side section of its flavour (tasks-trace when sleepable),
    /// and the copy is written back into `ctx` afterwards, as the kernel copies the context
    /// back to the caller's buffer.
    pub fn test_run<P: Platform>(
        &self,
        world: &World<P>,
        ctx: &mut [u8],
    ) -> Result<u64, TestRunError> {
        use crate::bpf::exec::{NoObserver, Program, Vm};
        use crate::rcu::Flavor;
        let len = ctx.len() as u64;
        if len < u64::from(self.verified.max_ctx_offset) || len > u64::from(super::SYSCALL_CTX_MAX)
        {
            return Err(TestRunError::Errno(crate::errno::Errno::EINVAL));
        }
        let program = Program::new(&self.fixed.insns)
            .map_err(|e| TestRunError::Setup(format!("fixed-up program: {e}")))?;
        let flavor = if self.sleepable {
            Flavor::TasksTrace
        } else {
            Flavor::Rcu
        };
        let section = |e: crate::fault::Error| TestRunError::Setup(format!("read side: {e}"));
        world.rcu_read_lock(flavor).map_err(section)?;
        let mut copy = ctx.to_vec();
        let run = Vm::default().run(
            &program,
            &mut copy,
            &mut crate::bpf::world_env::WorldEnv::new(world),
            &mut NoObserver,
        );
        world.rcu_read_unlock(flavor).map_err(section)?;
        let r0 = run.map_err(TestRunError::Exec)?;
        ctx.copy_from_slice(&copy);
        Ok(r0)
    }

    /// Program unload: drop the references `prog_load` took.
    pub fn unload<P: Platform>(self, world: &World<P>) -> crate::fault::Result<()> {
        world.prog_release_maps(&self.maps, self.sleepable)
    }
}
