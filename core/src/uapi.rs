//! The user-space ABI of the model: map types, flags, attributes, and [`BpfSys`], the syscall
//! surface that the core's world, the sequential reference model and the kernel backend all
//! implement, so one differential test or fuzz target can drive any pair of them.
//!
//! Values are the kernel's (`include/uapi/linux/bpf.h`); semantics.md lists them.

use crate::fault::Error;

/// A file descriptor of the modelled process. 0, 1 and 2 are taken (not maps), as in a process.
pub type Fd = i32;
/// A map's global id.
pub type MapId = u32;

pub const BPF_ANY: u64 = 0;
pub const BPF_NOEXIST: u64 = 1;
pub const BPF_EXIST: u64 = 2;

pub const BPF_F_NO_PREALLOC: u32 = 1 << 0;
pub const BPF_F_NO_COMMON_LRU: u32 = 1 << 1;
pub const BPF_F_NUMA_NODE: u32 = 1 << 2;
pub const BPF_F_RDONLY: u32 = 1 << 3;
pub const BPF_F_WRONLY: u32 = 1 << 4;
pub const BPF_F_ZERO_SEED: u32 = 1 << 6;
pub const BPF_F_RDONLY_PROG: u32 = 1 << 7;
pub const BPF_F_WRONLY_PROG: u32 = 1 << 8;
pub const BPF_F_MMAPABLE: u32 = 1 << 10;
pub const BPF_F_INNER_MAP: u32 = 1 << 12;

/// Helper function ids (`enum bpf_func_id`) that map kinds restrict programs to.
pub const BPF_FUNC_MAP_LOOKUP_ELEM: u32 = 1;
pub const BPF_FUNC_TAIL_CALL: u32 = 12;

/// Map types the model knows. Others are refused at creation with `-EINVAL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MapType {
    Hash = 1,
    Array = 2,
    ProgArray = 3,
    PercpuHash = 5,
    PercpuArray = 6,
    ArrayOfMaps = 12,
    HashOfMaps = 13,
}

impl MapType {
    pub const ALL: [MapType; 7] = [
        MapType::Hash,
        MapType::Array,
        MapType::ProgArray,
        MapType::PercpuHash,
        MapType::PercpuArray,
        MapType::ArrayOfMaps,
        MapType::HashOfMaps,
    ];

    pub fn from_u32(value: u32) -> Option<MapType> {
        MapType::ALL.into_iter().find(|t| *t as u32 == value)
    }

    /// The kernel's name, as bpftool prints it.
    pub fn name(self) -> &'static str {
        match self {
            MapType::Hash => "hash",
            MapType::Array => "array",
            MapType::ProgArray => "prog_array",
            MapType::PercpuHash => "percpu_hash",
            MapType::PercpuArray => "percpu_array",
            MapType::ArrayOfMaps => "array_of_maps",
            MapType::HashOfMaps => "hash_of_maps",
        }
    }

    pub fn is_map_in_map(self) -> bool {
        matches!(self, MapType::ArrayOfMaps | MapType::HashOfMaps)
    }
}

/// `BPF_MAP_CREATE` attributes. `map_type` stays a raw number so unknown types can be refused
/// the way the kernel refuses them; `inner_map_fd` is read only by the map-in-map types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MapAttr {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    pub inner_map_fd: u32,
}

impl MapAttr {
    pub fn new(map_type: MapType, key_size: u32, value_size: u32, max_entries: u32) -> Self {
        MapAttr {
            map_type: map_type as u32,
            key_size,
            value_size,
            max_entries,
            ..Default::default()
        }
    }
    pub fn flags(mut self, map_flags: u32) -> Self {
        self.map_flags = map_flags;
        self
    }
    pub fn inner(mut self, inner_map_fd: Fd) -> Self {
        self.inner_map_fd = inner_map_fd as u32;
        self
    }
}

/// What `BPF_OBJ_GET_INFO_BY_FD` tells about a map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MapInfo {
    pub id: MapId,
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
}

/// One call of a batch lookup: the entries copied and where to resume.
///
/// The kernel returns `-ENOENT` together with the last entries when it reaches the end; the
/// model reports that as `done == true` with whatever entries came with it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BatchOut {
    pub keys: Vec<Vec<u8>>,
    pub values: Vec<Vec<u8>>,
    /// The `out_batch` token to pass as the next `in_batch`.
    pub next: u32,
    /// The kernel said `-ENOENT`: there is nothing after these entries.
    pub done: bool,
}

/// The map syscalls of one process. Outer maps take inner map fds as values on the way in and
/// give inner map ids on the way out (4 bytes, native endian), as the kernel does.
///
/// Errors are errnos as the kernel returns them; an implementation that checks invariants (the
/// core's world) may also return a fault.
pub trait BpfSys {
    fn map_create(&mut self, attr: &MapAttr) -> Result<Fd, Error>;
    fn map_lookup_elem(&mut self, fd: Fd, key: &[u8]) -> Result<Vec<u8>, Error>;
    fn map_update_elem(
        &mut self,
        fd: Fd,
        key: &[u8],
        value: &[u8],
        flags: u64,
    ) -> Result<(), Error>;
    fn map_delete_elem(&mut self, fd: Fd, key: &[u8]) -> Result<(), Error>;
    fn map_lookup_and_delete_elem(&mut self, fd: Fd, key: &[u8]) -> Result<Vec<u8>, Error>;
    /// `key == None` asks for the first key.
    fn map_get_next_key(&mut self, fd: Fd, key: Option<&[u8]>) -> Result<Vec<u8>, Error>;
    /// `BPF_MAP_LOOKUP_BATCH`: up to `count` entries from `in_batch` (`None` = from the start).
    /// `Err(ENOSPC)`: `count` is too small for the next bucket, retry larger. The end of the map
    /// is `Ok` with `done` set (the kernel's `-ENOENT`), possibly with entries.
    fn map_lookup_batch(
        &mut self,
        fd: Fd,
        in_batch: Option<u32>,
        count: u32,
    ) -> Result<BatchOut, Error>;
    /// `BPF_MAP_LOOKUP_AND_DELETE_BATCH`, same conventions.
    fn map_lookup_and_delete_batch(
        &mut self,
        fd: Fd,
        in_batch: Option<u32>,
        count: u32,
    ) -> Result<BatchOut, Error>;
    /// `BPF_MAP_UPDATE_BATCH`: returns how many entries were applied; on error, the number
    /// applied before it and the errno (the kernel's `count` out-parameter).
    fn map_update_batch(
        &mut self,
        fd: Fd,
        keys: &[Vec<u8>],
        values: &[Vec<u8>],
        flags: u64,
    ) -> Result<u32, (u32, Error)>;
    /// `BPF_MAP_DELETE_BATCH`, same conventions.
    fn map_delete_batch(&mut self, fd: Fd, keys: &[Vec<u8>]) -> Result<u32, (u32, Error)>;
    fn map_get_fd_by_id(&mut self, id: MapId) -> Result<Fd, Error>;
    fn map_info(&mut self, fd: Fd) -> Result<MapInfo, Error>;
    /// `BPF_MAP_FREEZE`: from now on user space may only read the map (writes, and freezing
    /// again, are `-EPERM`); programs write it unless it is `BPF_F_RDONLY_PROG`.
    fn map_freeze(&mut self, fd: Fd) -> Result<(), Error>;
    fn close(&mut self, fd: Fd) -> Result<(), Error>;
}
