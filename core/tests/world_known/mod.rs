//! The world's known disagreements with the kernel's answers (which the reference model and
//! the errno table follow), shared by the test crates that hold the world to the table:
//! errno_table.rs, differential.rs and world_conformance.rs. docs/kernel-disagreements.md, "The
//! core's world", describes them; the list shrinks as the world catches up.
#![allow(dead_code, reason = "each test crate uses part of it")]

use mimic_core::errno::Errno;
use mimic_core::fault::Error;
use mimic_core::sync::Std;
use mimic_core::sys::Process;
use mimic_core::uapi::{BatchOut, BpfSys, Fd, MapAttr, MapId, MapInfo};

/// Cases where the world (core/src/sys, core/src/maps) does not yet follow the kernel, as
/// measured on 6.18 (docs/kernel-disagreements.md, "The world"): it refuses the syscall-side
/// access flags `BPF_F_RDONLY`/`BPF_F_WRONLY` (`-EINVAL`, the model's former choice; D1/D3) and
/// says `-EBADF` instead of `-EBADFD` for `map_info` of a closed fd. Pinned so that a fix (or a
/// new disagreement) shows up here; the list shrinks as the world catches up.
pub const WORLD_KNOWN_DISAGREEMENTS: &[&str] = &[
    "map_info of a closed fd is EBADFD",
    "HASH accepts BPF_F_RDONLY (D1: not in §2's flag list)",
    "ARRAY: accepts BPF_F_WRONLY (D1)",
    "PERCPU_ARRAY: accepts BPF_F_WRONLY (D1)",
    "PROG_ARRAY: accepts BPF_F_WRONLY (D1)",
    "HASH: accepts BPF_F_WRONLY (D1)",
    "ARRAY_OF_MAPS accepts BPF_F_RDONLY (D1)",
    "HASH_OF_MAPS accepts BPF_F_WRONLY (D1)",
    "BPF_F_RDONLY is not kept in map_flags (D3: map_info omits it)",
    "HASH_OF_MAPS: meta_equal cannot see BPF_F_RDONLY (D3: not in the flags)",
    "ARRAY_OF_MAPS: a BPF_F_WRONLY template takes plain arrays (D3)",
    "update through a BPF_F_RDONLY fd is EPERM (D1)",
    "a BPF_F_RDONLY fd reads: lookup, get_next_key, lookup batch (D1)",
    "delete through a BPF_F_RDONLY fd is EPERM (D1)",
    "EPERM of a BPF_F_RDONLY fd comes before the BPF_F_LOCK check",
    "lookup_and_delete needs a fd that reads and writes: EPERM before ENOTSUPP",
    "batch updates and deletes through a BPF_F_RDONLY fd are EPERM before ENOTSUPP",
    "a BPF_F_WRONLY fd writes but lookup and get_next_key are EPERM (D1)",
    "get_fd_by_id opens a read-write fd on a map created BPF_F_RDONLY",
    "storing into an outer map through its BPF_F_RDONLY fd is EPERM",
    "an inner map's own BPF_F_RDONLY fd may be stored (the value fd is not checked)",
];

/// The world with its one known disagreement that the generator reaches normalised:
/// `map_info` of a closed fd says `-EBADF` where the kernel (and the model) say `-EBADFD`. The
/// disagreement itself is pinned, with the others, in errno_table.rs
/// (`WORLD_KNOWN_DISAGREEMENTS`); normalising it here lets the differential find the rest.
pub struct WorldAsKnown(pub Process<Std>);

impl BpfSys for WorldAsKnown {
    fn map_create(&mut self, attr: &MapAttr) -> Result<Fd, Error> {
        self.0.map_create(attr)
    }
    fn map_lookup_elem(&mut self, fd: Fd, key: &[u8]) -> Result<Vec<u8>, Error> {
        self.0.map_lookup_elem(fd, key)
    }
    fn map_update_elem(
        &mut self,
        fd: Fd,
        key: &[u8],
        value: &[u8],
        flags: u64,
    ) -> Result<(), Error> {
        self.0.map_update_elem(fd, key, value, flags)
    }
    fn map_delete_elem(&mut self, fd: Fd, key: &[u8]) -> Result<(), Error> {
        self.0.map_delete_elem(fd, key)
    }
    fn map_lookup_and_delete_elem(&mut self, fd: Fd, key: &[u8]) -> Result<Vec<u8>, Error> {
        self.0.map_lookup_and_delete_elem(fd, key)
    }
    fn map_get_next_key(&mut self, fd: Fd, key: Option<&[u8]>) -> Result<Vec<u8>, Error> {
        self.0.map_get_next_key(fd, key)
    }
    fn map_lookup_batch(
        &mut self,
        fd: Fd,
        in_batch: Option<u32>,
        count: u32,
    ) -> Result<BatchOut, Error> {
        self.0.map_lookup_batch(fd, in_batch, count)
    }
    fn map_lookup_and_delete_batch(
        &mut self,
        fd: Fd,
        in_batch: Option<u32>,
        count: u32,
    ) -> Result<BatchOut, Error> {
        self.0.map_lookup_and_delete_batch(fd, in_batch, count)
    }
    fn map_update_batch(
        &mut self,
        fd: Fd,
        keys: &[Vec<u8>],
        values: &[Vec<u8>],
        flags: u64,
    ) -> Result<u32, (u32, Error)> {
        self.0.map_update_batch(fd, keys, values, flags)
    }
    fn map_delete_batch(&mut self, fd: Fd, keys: &[Vec<u8>]) -> Result<u32, (u32, Error)> {
        self.0.map_delete_batch(fd, keys)
    }
    fn map_get_fd_by_id(&mut self, id: MapId) -> Result<Fd, Error> {
        self.0.map_get_fd_by_id(id)
    }
    fn map_info(&mut self, fd: Fd) -> Result<MapInfo, Error> {
        self.0.map_info(fd).map_err(|e| match e.errno() {
            Some(Errno::EBADF) => Error::Errno(Errno::EBADFD),
            _ => e,
        })
    }
    fn close(&mut self, fd: Fd) -> Result<(), Error> {
        self.0.close(fd)
    }
}
