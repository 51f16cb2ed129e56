//! [`KernelSys`]: the real kernel behind [`BpfSys`], plus programs (load, xlated, test run).
//!
//! Invariants:
//! - every descriptor it creates (maps, programs, fds from get-fd-by-id) lives in its table and
//!   is closed exactly once: by [`BpfSys::close`] or when the `KernelSys` drops. Nothing is
//!   pinned, so once it drops and grace periods pass the kernel holds nothing of ours.
//! - it never touches a descriptor it does not own. A caller's fd that is not in the table is
//!   passed to the kernel as an fd that is never open (so the kernel answers `EBADF` in its
//!   own order of checks), except 0, 1 and 2, which the model also treats as "open, not a map" and which reach the
//!   kernel as they are (it answers `EINVAL`). This keeps tests running in parallel threads of
//!   one process from reaching each other's maps through a reused fd number.
//! - buffers are sized from the map's own key/value sizes (see `ffi`), so a caller's slice
//!   length never decides how many bytes the kernel copies.
//! - [`BpfSys::close`] returns once every map that the close left unreferenced by us is gone
//!   (bounded wait, see [`SETTLE_POLLS`]; skipped while we own a program, which may hold any
//!   map). The kernel releases a map's id at once when its refcnt drops, but some puts happen
//!   later in a worker: an outer map's free puts its inner maps, and a PROG_ARRAY whose last
//!   uref is gone is cleared by a worker holding a reference. Waiting gives callers the
//!   sequential effect semantics.md §1 and the model describe, so an id comparison right after
//!   the close does not race the worker. It polls with `BPF_MAP_GET_NEXT_ID`, which takes no
//!   reference (see `ffi::map_id_exists`).
#![forbid(unsafe_code)]

use super::error::KernelError;
use super::ffi::{self, LoadFailure, Shape, TestRun};
use mimic_core::errno::Errno;
use mimic_core::fault::Error;
use mimic_core::isa::Insn;
use mimic_core::uapi::{BatchOut, BpfSys, Fd, MapAttr, MapId, MapInfo, MapType};
use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::OwnedFd;
use std::time::Duration;

/// Descriptors below this are the process's stdio: "open, not a map" for the model and the
/// kernel alike, so they are passed through unchanged.
const STDIO_FDS: Fd = 3;
/// What an unknown descriptor is turned into: `i32::MAX` is above the largest fd table Linux
/// allows (`sysctl_nr_open_max` is rounded down from `INT_MAX`), so it is never open and the
/// map operations say `EBADF`. (`BPF_OBJ_GET_INFO_BY_FD` says `EBADFD` for it instead, which
/// is why `target` does not ask it about such an fd.)
const BAD_FD: Fd = i32::MAX;
/// The value size of outer maps: an fd on the way in, an id on the way out.
const OUTER_VALUE_SIZE: usize = 4;
/// Polls of an inner map id after its outer map was freed, until the kernel's free worker has
/// put it: with [`SETTLE_INTERVAL`], two seconds, far above the milliseconds the worker takes
/// on an idle machine. A map still alive after that is left for the caller's comparison to
/// report (as a leak).
pub const SETTLE_POLLS: u32 = 2000;
/// The pause between two polls.
pub const SETTLE_INTERVAL: Duration = Duration::from_millis(1);
/// The most memory the oracle lets one map ask of the live kernel. A privileged kernel tries to
/// allocate whatever `max_entries` says, and on a machine of this project's kind a map of tens of
/// gigabytes pushes everything else into the OOM killer; an array of maps past 2^31 slots also
/// oopses the 6.18.44-fc-v1300 kernel when it is freed, leaking its memory for good
/// (docs/kernel-disagreements.md, "Kernel bugs met"). The model refuses such maps anyway.
pub const MAX_KERNEL_MAP_BYTES: u64 = 1 << 30;

/// Keys of an outer map walked to learn its inner ids before its fd closes; a larger outer
/// map is closed without waiting.
const SETTLE_WALK_LIMIT: usize = 4096;

/// What an owned descriptor refers to.
#[derive(Debug)]
enum Object {
    Map { map_type: u32, shape: Shape },
    Prog,
}

#[derive(Debug)]
struct Owned {
    fd: OwnedFd,
    object: Object,
}

/// Why the kernel oracle cannot run here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable(pub String);

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "kernel checks skipped: {}", self.0)
    }
}

/// A program type that needs no attachment and runs under `BPF_PROG_TEST_RUN` with a packet
/// (`data_in` of at least an Ethernet header). Socket filters are loadable by any privileged
/// caller, need no BTF and no sleepable flag (unlike `BPF_PROG_TYPE_SYSCALL`), and the seed
/// program never reads its context.
pub const BPF_PROG_TYPE_SOCKET_FILTER: u32 = 1;
/// `BPF_PROG_TYPE_SYSCALL`: runs with a context buffer only; must be loaded sleepable.
pub const BPF_PROG_TYPE_SYSCALL: u32 = 31;
/// `BPF_F_SLEEPABLE` (prog_flags).
pub const BPF_F_SLEEPABLE: u32 = 1 << 4;
/// The smallest packet `BPF_PROG_TEST_RUN` accepts for skb programs (an Ethernet header).
pub const ETH_HLEN: usize = 14;

/// The real kernel as a [`BpfSys`].
#[derive(Debug, Default)]
pub struct KernelSys {
    owned: BTreeMap<Fd, Owned>,
}

/// Detects whether bpf() is usable here by creating a one-entry array map, reopening it by
/// id (the oracle compares inner maps by id, which needs `CAP_SYS_ADMIN`) and closing both.
pub fn probe() -> Result<(), Unavailable> {
    let attr = MapAttr::new(MapType::Array, 4, 4, 1);
    let refused = |call: &str, err: KernelError| match err {
        KernelError::Errno(Errno::EPERM) => Unavailable(format!(
            "bpf({call}) refused with EPERM (needs root, or CAP_BPF and CAP_SYS_ADMIN)"
        )),
        err => Unavailable(format!("bpf({call}) on a tiny array failed: {err}")),
    };
    let map = ffi::map_create(&attr).map_err(|err| refused("BPF_MAP_CREATE", err))?;
    let info =
        ffi::map_info(ffi::raw(&map)).map_err(|err| refused("BPF_OBJ_GET_INFO_BY_FD", err))?;
    let again =
        ffi::map_get_fd_by_id(info.id).map_err(|err| refused("BPF_MAP_GET_FD_BY_ID", err))?;
    drop(again);
    drop(map);
    Ok(())
}

/// The environment variable that turns a skipped kernel check into a failure: set where the
/// machine is known to allow bpf() (CI), so a check that silently stopped reaching the kernel
/// cannot pass.
pub const REQUIRE_KERNEL: &str = "MIMIC_REQUIRE_KERNEL";

/// Whether [`REQUIRE_KERNEL`] is set to `1`.
pub fn kernel_required() -> bool {
    std::env::var(REQUIRE_KERNEL).is_ok_and(|v| v == "1")
}

/// The value, or, when bpf() is unavailable, `None` after one line on stderr saying that `what`
/// was skipped and why. Panics instead when [`REQUIRE_KERNEL`] is set.
///
/// The line is written to the stderr file itself, not through `eprintln!`, which the test
/// harness captures: a skipped test must say so in `cargo test`'s output, where it counts as
/// passed.
pub fn require_or_skip<T>(what: &str, available: Result<T, Unavailable>) -> Option<T> {
    use std::io::Write;
    match available {
        Ok(value) => Some(value),
        Err(unavailable) if kernel_required() => {
            panic!("{what}: {unavailable}, and {REQUIRE_KERNEL}=1 requires the kernel")
        }
        Err(unavailable) => {
            let line = format!("SKIPPED {what}: {}\n", unavailable.0);
            let _ = std::io::stderr().write_all(line.as_bytes());
            None
        }
    }
}

/// Runs `check`, any check written over [`BpfSys`] (an errno table, a differential op
/// sequence), on a fresh kernel backend. `None`, after one line saying why, when bpf() is
/// refused. Returns what the check returned and how many fds it left open; the backend is
/// dropped afterwards, which closes them.
pub fn on_kernel<R>(what: &str, check: impl FnOnce(&mut dyn BpfSys) -> R) -> Option<(R, usize)> {
    let mut sys = KernelSys::or_skip(what)?;
    let result = check(&mut sys);
    Some((result, sys.open_fds()))
}

impl KernelSys {
    /// A backend after a successful [`probe`].
    pub fn new() -> Result<KernelSys, Unavailable> {
        probe()?;
        Ok(KernelSys::default())
    }

    /// For tests and benches that skip without bpf(): the backend, or `None` after saying
    /// that `what` is skipped (see [`require_or_skip`]).
    pub fn or_skip(what: &str) -> Option<KernelSys> {
        require_or_skip(what, KernelSys::new())
    }

    /// The machine's possible CPUs (per-CPU values hold one 8-byte-aligned value each).
    pub fn possible_cpus(&self) -> Result<u32, KernelError> {
        ffi::possible_cpus()
    }

    /// How many descriptors it currently owns (0 after everything was closed).
    pub fn open_fds(&self) -> usize {
        self.owned.len()
    }

    fn adopt(&mut self, fd: OwnedFd, object: Object) -> Fd {
        let raw = ffi::raw(&fd);
        self.owned.insert(raw, Owned { fd, object });
        raw
    }

    /// The fd to hand the kernel for a caller's fd (see the module doc).
    fn translate(&self, fd: Fd) -> Fd {
        if self.owned.contains_key(&fd) || (0..STDIO_FDS).contains(&fd) {
            fd
        } else {
            BAD_FD
        }
    }

    /// The kernel fd and buffer shape for a map operation on `fd` whose caller passes
    /// `key_len`/`value_len` bytes. A program fd goes to the kernel, which refuses it as not a
    /// map (`EINVAL`) before copying anything; an fd we do not own becomes the never-open fd,
    /// which the kernel refuses (`EBADF`) before copying anything: the caller's lengths are
    /// safe for both. Stdio is described by the kernel first (`EINVAL`: not
    /// a bpf object, as the map operation would say), so no buffer is sized by guesswork.
    fn target(
        &self,
        fd: Fd,
        key_len: usize,
        value_len: usize,
    ) -> Result<(Fd, Shape, Option<u32>), KernelError> {
        match self.owned.get(&fd) {
            Some(Owned {
                object: Object::Map { map_type, shape },
                ..
            }) => Ok((fd, *shape, Some(*map_type))),
            Some(Owned {
                object: Object::Prog,
                ..
            }) => Ok((fd, Shape::covering(key_len, value_len), None)),
            None if self.translate(fd) == BAD_FD => {
                Ok((BAD_FD, Shape::covering(key_len, value_len), None))
            }
            None => {
                let info = ffi::map_info(fd)?;
                Ok((
                    fd,
                    Shape::of(info.map_type, info.key_size, info.value_size)?,
                    Some(info.map_type),
                ))
            }
        }
    }

    /// `BPF_MAP_LOOKUP(_AND_DELETE)_BATCH`, entries split by the map's sizes.
    fn lookup_batch(
        &self,
        fd: Fd,
        in_batch: Option<u32>,
        count: u32,
        delete: bool,
    ) -> Result<BatchOut, KernelError> {
        let (fd, shape, _) = self.target(fd, 0, 0)?;
        let raw = ffi::map_lookup_batch(fd, shape, in_batch, count, delete)?;
        Ok(batch_out(raw, shape))
    }

    /// Outer maps take inner map fds as values, `PROG_ARRAY`s program fds: translate them like
    /// any other caller fd.
    fn translate_value(&self, map_type: Option<u32>, value: &[u8]) -> Vec<u8> {
        let is_outer = map_type
            .and_then(MapType::from_u32)
            .is_some_and(|t| t.is_map_in_map() || t == MapType::ProgArray);
        if !is_outer || value.len() != OUTER_VALUE_SIZE {
            return value.to_vec();
        }
        let fd = Fd::from_ne_bytes([value[0], value[1], value[2], value[3]]);
        self.translate(fd).to_ne_bytes().to_vec()
    }

    /// `BPF_PROG_LOAD`. `insns` are the core's instructions; pseudo map loads must carry fds this
    /// backend owns. Returns the program fd and the verifier log (empty at `log_level` 0).
    pub fn prog_load(
        &mut self,
        prog_type: u32,
        insns: &[Insn],
        log_level: u32,
        prog_flags: u32,
    ) -> Result<(Fd, String), LoadFailure> {
        let (fd, log) = ffi::prog_load(prog_type, insns, log_level, prog_flags)?;
        Ok((self.adopt(fd, Object::Prog), log))
    }

    fn prog_fd(&self, fd: Fd) -> Result<Fd, KernelError> {
        match self.owned.get(&fd) {
            Some(Owned {
                object: Object::Prog,
                ..
            }) => Ok(fd),
            Some(_) => Err(KernelError::Errno(Errno::EINVAL)),
            None => Err(KernelError::Errno(Errno::EBADF)),
        }
    }

    /// The verifier's `processed N insns` for a loaded program.
    pub fn verified_insns(&self, prog_fd: Fd) -> Result<u32, KernelError> {
        ffi::prog_verified_insns(self.prog_fd(prog_fd)?)
    }

    /// A loaded program's id.
    pub fn prog_id(&self, prog_fd: Fd) -> Result<u32, KernelError> {
        ffi::prog_id(self.prog_fd(prog_fd)?)
    }

    /// The kernel's translated program (after its fixups), one `Insn` per 8-byte slot.
    pub fn xlated(&self, prog_fd: Fd) -> Result<Vec<Insn>, KernelError> {
        ffi::prog_xlated(self.prog_fd(prog_fd)?)
    }

    /// `BPF_PROG_TEST_RUN`: `data_in` is the packet (packet program types), `ctx_in` the
    /// context (e.g. `BPF_PROG_TYPE_SYSCALL`); empty slices are not passed.
    pub fn test_run(
        &self,
        prog_fd: Fd,
        data_in: &[u8],
        ctx_in: &[u8],
        repeat: u32,
    ) -> Result<TestRun, KernelError> {
        ffi::prog_test_run(self.prog_fd(prog_fd)?, data_in, ctx_in, repeat)
    }

    /// The kernel's own execution time of a program, nanoseconds per run, measured by the
    /// kernel over `repeat` runs (JIT on if the machine enables it). For benches.
    pub fn ns_per_run(
        &self,
        prog_fd: Fd,
        data_in: &[u8],
        ctx_in: &[u8],
        repeat: u32,
    ) -> Result<u32, KernelError> {
        Ok(self
            .test_run(prog_fd, data_in, ctx_in, repeat.max(1))?
            .duration_ns)
    }

    /// The ids of the maps stored in the outer map with id `outer_id` (read through a fresh
    /// read-write fd, since the caller's may be write-only), or `None` when it cannot be walked.
    fn inner_ids(outer_id: MapId) -> Option<BTreeSet<MapId>> {
        let fd = ffi::map_get_fd_by_id(outer_id).ok()?;
        let raw = ffi::raw(&fd);
        let shape = Shape::of(MapType::ArrayOfMaps as u32, 4, OUTER_VALUE_SIZE as u32).ok()?;
        let mut ids = BTreeSet::new();
        let mut key: Option<Vec<u8>> = None;
        for _ in 0..SETTLE_WALK_LIMIT {
            match ffi::map_get_next_key(raw, shape, key.as_deref()) {
                Ok(next) => {
                    // An empty array slot says ENOENT: nothing stored there.
                    if let Ok(value) = ffi::map_lookup(raw, shape, &next) {
                        let bytes: [u8; 4] = value.as_slice().try_into().ok()?;
                        ids.insert(MapId::from_ne_bytes(bytes));
                    }
                    key = Some(next);
                }
                Err(KernelError::Errno(Errno::ENOENT)) => return Some(ids),
                Err(_) => return None,
            }
        }
        None
    }

    /// After the fd of a map was closed: waits until each map of `maps` (the closed map and,
    /// for an outer map, the maps stored in it) that still exists and that nothing of ours
    /// holds (an fd we own, or an outer map we own) is gone. What remains is held by a kernel
    /// worker that has not run yet: an outer map's free (which puts its inner maps), a
    /// PROG_ARRAY's clearing after its last uref.
    fn settle(&self, mut maps: BTreeSet<MapId>) {
        maps.retain(|id| ffi::map_id_exists(*id).unwrap_or(false));
        if maps.is_empty() {
            return;
        }
        let mut held = BTreeSet::new();
        for (fd, owned) in &self.owned {
            let Object::Map { map_type, .. } = owned.object else {
                continue;
            };
            let Ok(info) = ffi::map_info(*fd) else {
                continue;
            };
            held.insert(info.id);
            if MapType::from_u32(map_type).is_some_and(MapType::is_map_in_map) {
                held.extend(Self::inner_ids(info.id).unwrap_or_default());
            }
        }
        for id in maps.difference(&held) {
            for _ in 0..SETTLE_POLLS {
                if !ffi::map_id_exists(*id).unwrap_or(false) {
                    break;
                }
                std::thread::sleep(SETTLE_INTERVAL);
            }
        }
    }

    /// The kernel fd of an owned map, for pseudo map loads in program instructions.
    pub fn map_fd(&self, fd: Fd) -> Option<Fd> {
        matches!(
            self.owned.get(&fd),
            Some(Owned {
                object: Object::Map { .. },
                ..
            })
        )
        .then_some(fd)
    }
}

/// The bytes a map creation would make the kernel allocate, when above
/// [`MAX_KERNEL_MAP_BYTES`] and not refused before allocating. What the kernel refuses first
/// (its attribute and size checks, which mimic's `create_check` follows: `-EINVAL`, `-E2BIG`)
/// is safe to ask at any size.
fn too_big_to_ask(attr: &MapAttr) -> Option<u64> {
    let slot = |size: u32| u64::from(size).div_ceil(8) * 8;
    let bytes = u64::from(attr.max_entries) * (slot(attr.key_size) + slot(attr.value_size));
    let refused_first = mimic_core::maps::MapDef::from_attr(attr).is_some_and(|def| {
        matches!(
            mimic_core::maps::create_check(&def, true),
            Err(Error::Errno(Errno::EINVAL | Errno::E2BIG))
        )
    });
    (bytes > MAX_KERNEL_MAP_BYTES && !refused_first).then_some(bytes)
}

fn core<T>(result: Result<T, KernelError>) -> Result<T, Error> {
    result.map_err(KernelError::into_core)
}

fn batch_out(raw: ffi::RawBatch, shape: Shape) -> BatchOut {
    let keys = raw
        .keys
        .chunks(shape.key_size.max(1) as usize)
        .map(<[u8]>::to_vec)
        .collect();
    let values = raw
        .values
        .chunks(shape.value_size.max(1) as usize)
        .map(<[u8]>::to_vec)
        .collect();
    BatchOut {
        keys,
        values,
        next: raw.out_batch,
        done: raw.done,
    }
}

impl BpfSys for KernelSys {
    fn map_create(&mut self, attr: &MapAttr) -> Result<Fd, Error> {
        if let Some(bytes) = too_big_to_ask(attr) {
            return Err(Error::Fault(mimic_core::fault::Fault::Unmodelled {
                detail: format!(
                    "kernel oracle: not asking the kernel for a map of about {bytes} bytes \
                     (max_entries {}; the limit is {MAX_KERNEL_MAP_BYTES})",
                    attr.max_entries
                ),
            }));
        }
        let mut attr = *attr;
        if MapType::from_u32(attr.map_type).is_some_and(MapType::is_map_in_map) {
            attr.inner_map_fd = self.translate(attr.inner_map_fd as Fd) as u32;
        }
        let shape = core(Shape::of(attr.map_type, attr.key_size, attr.value_size))?;
        let fd = core(ffi::map_create(&attr))?;
        Ok(self.adopt(
            fd,
            Object::Map {
                map_type: attr.map_type,
                shape,
            },
        ))
    }

    fn map_lookup_elem(&mut self, fd: Fd, key: &[u8]) -> Result<Vec<u8>, Error> {
        let (fd, shape, _) = core(self.target(fd, key.len(), 0))?;
        core(ffi::map_lookup(fd, shape, key))
    }

    fn map_update_elem(
        &mut self,
        fd: Fd,
        key: &[u8],
        value: &[u8],
        flags: u64,
    ) -> Result<(), Error> {
        let (fd, shape, map_type) = core(self.target(fd, key.len(), value.len()))?;
        let value = self.translate_value(map_type, value);
        core(ffi::map_update(fd, shape, key, &value, flags))
    }

    fn map_delete_elem(&mut self, fd: Fd, key: &[u8]) -> Result<(), Error> {
        let (fd, shape, _) = core(self.target(fd, key.len(), 0))?;
        core(ffi::map_delete(fd, shape, key))
    }

    fn map_lookup_and_delete_elem(&mut self, fd: Fd, key: &[u8]) -> Result<Vec<u8>, Error> {
        let (fd, shape, _) = core(self.target(fd, key.len(), 0))?;
        core(ffi::map_lookup_and_delete(fd, shape, key))
    }

    fn map_get_next_key(&mut self, fd: Fd, key: Option<&[u8]>) -> Result<Vec<u8>, Error> {
        let (fd, shape, _) = core(self.target(fd, key.map_or(0, <[u8]>::len), 0))?;
        core(ffi::map_get_next_key(fd, shape, key))
    }

    fn map_lookup_batch(
        &mut self,
        fd: Fd,
        in_batch: Option<u32>,
        count: u32,
    ) -> Result<BatchOut, Error> {
        core(self.lookup_batch(fd, in_batch, count, false))
    }

    fn map_lookup_and_delete_batch(
        &mut self,
        fd: Fd,
        in_batch: Option<u32>,
        count: u32,
    ) -> Result<BatchOut, Error> {
        core(self.lookup_batch(fd, in_batch, count, true))
    }

    fn map_update_batch(
        &mut self,
        fd: Fd,
        keys: &[Vec<u8>],
        values: &[Vec<u8>],
        flags: u64,
    ) -> Result<u32, (u32, Error)> {
        let longest = |entries: &[Vec<u8>]| entries.iter().map(Vec::len).max().unwrap_or(0);
        let (fd, shape, map_type) = self
            .target(fd, longest(keys), longest(values))
            .map_err(|err| (0, err.into_core()))?;
        let values: Vec<Vec<u8>> = values
            .iter()
            .map(|value| self.translate_value(map_type, value))
            .collect();
        ffi::map_update_batch(fd, shape, keys, &values, flags)
            .map_err(|(n, err)| (n, err.into_core()))
    }

    fn map_delete_batch(&mut self, fd: Fd, keys: &[Vec<u8>]) -> Result<u32, (u32, Error)> {
        let longest = keys.iter().map(Vec::len).max().unwrap_or(0);
        let (fd, shape, _) = self
            .target(fd, longest, 0)
            .map_err(|err| (0, err.into_core()))?;
        ffi::map_delete_batch(fd, shape, keys).map_err(|(n, err)| (n, err.into_core()))
    }

    fn map_get_fd_by_id(&mut self, id: MapId) -> Result<Fd, Error> {
        let fd = core(ffi::map_get_fd_by_id(id))?;
        let info = core(ffi::map_info(ffi::raw(&fd)))?;
        let shape = core(Shape::of(info.map_type, info.key_size, info.value_size))?;
        Ok(self.adopt(
            fd,
            Object::Map {
                map_type: info.map_type,
                shape,
            },
        ))
    }

    fn map_info(&mut self, fd: Fd) -> Result<MapInfo, Error> {
        match self.owned.get(&fd) {
            Some(Owned {
                object: Object::Map { .. },
                ..
            }) => core(ffi::map_info(fd)),
            // A program fd is not a map: the model's answer; the kernel would describe the
            // program in a differently shaped struct.
            Some(Owned {
                object: Object::Prog,
                ..
            }) => Err(Error::Errno(Errno::EINVAL)),
            None => core(ffi::map_info(self.translate(fd))),
        }
    }

    fn map_freeze(&mut self, fd: Fd) -> Result<(), Error> {
        let (fd, _, _) = core(self.target(fd, 0, 0))?;
        core(ffi::map_freeze(fd))
    }

    fn close(&mut self, fd: Fd) -> Result<(), Error> {
        // Dropping the OwnedFd closes it. Descriptors not handed out here are never closed.
        let Some(owned) = self.owned.remove(&fd) else {
            return Err(Error::Errno(Errno::EBADF));
        };
        let programs = self
            .owned
            .values()
            .any(|o| matches!(o.object, Object::Prog));
        // A program may hold any map: its owner waits for what it expects.
        let pending = match owned.object {
            Object::Map { map_type, .. } if !programs => ffi::map_info(fd).ok().map(|info| {
                let mut maps = BTreeSet::from([info.id]);
                if MapType::from_u32(map_type).is_some_and(MapType::is_map_in_map) {
                    maps.extend(Self::inner_ids(info.id).unwrap_or_default());
                }
                maps
            }),
            _ => None,
        };
        drop(owned.fd);
        if let Some(maps) = pending {
            self.settle(maps);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_the_kernel_would_allocate_past_the_limit_are_never_asked_for() {
        // The array of maps that oopsed the kernel when freed, and a plain one as large.
        for ty in [MapType::ArrayOfMaps, MapType::Array] {
            let attr = MapAttr::new(ty, 4, 4, 3_000_000_000);
            let bytes = too_big_to_ask(&attr);
            assert!(
                bytes.is_some_and(|b| b >= 24_000_000_000),
                "{ty:?}: {bytes:?}"
            );
        }
        // Refused before any allocation (value past INT_MAX; a hash's bucket table): asked.
        assert_eq!(
            too_big_to_ask(&MapAttr::new(MapType::Array, 4, 1 << 31, 1)),
            None
        );
        assert_eq!(
            too_big_to_ask(&MapAttr::new(MapType::Hash, 4, 4, u32::MAX)),
            None
        );
        // Small maps: asked.
        assert_eq!(
            too_big_to_ask(&MapAttr::new(MapType::Array, 4, 8, 1 << 20)),
            None
        );
    }
}
