//! A small in-memory map world for the executor's own tests and benches: array maps only,
//! fd = index, with generation-checked pointers so a freed map's pointers fault like the core's.
//! The core's real map world (`maps`/`sys`) implements [`MapEnv`] for simulation runs.

use super::{EnvResult, ExecErrorKind, KeyArg, MapEnv};
use crate::arena::Handle;
use crate::errno::Errno;
use crate::fault::{Fault, Stamp};
use crate::ptr::Ptr;

/// Bytes before the first value in a fake map's region, so a map pointer (offset 0) never
/// equals a pointer to its first value; the header itself is not readable.
pub const FAKE_HEADER_SIZE: u32 = 64;

/// `BPF_NOEXIST` (uapi): an array element always exists, so the array refuses this flag.
const BPF_NOEXIST: u64 = 1;
/// Largest valid update flag (`BPF_F_LOCK` = 4).
const BPF_F_LOCK: u64 = 4;

/// The pointer an error path names, from its encoding. The error paths take the encoded `u64`
/// so that the hot paths never need `Ptr` in memory: a 12-byte `Ptr` passed by value goes
/// through memory, written field by field and read back whole (a store-forwarding stall on
/// every access, even when the error path is not taken). Map pointers come from decoding a
/// register, so the round trip is exact.
fn cold_ptr(raw: u64) -> Ptr {
    Ptr::decode(raw).unwrap_or(Ptr {
        kind: crate::ptr::RegionKind::Map,
        index: 0,
        gen: 0,
        offset: raw as u32,
    })
}

/// One array map.
#[derive(Debug, Clone)]
pub struct FakeArray {
    pub value_size: u32,
    pub max_entries: u32,
    values: Vec<u8>,
    gen: u32,
    freed: bool,
}

/// Array maps by fd.
#[derive(Debug, Clone, Default)]
pub struct FakeArrays {
    maps: Vec<FakeArray>,
    /// Lookups served (benches check the loop really called the helper).
    pub lookups: u64,
}

/// Array keys are `u32` indices.
const KEY_SIZE: u32 = 4;

impl FakeArrays {
    pub fn new() -> FakeArrays {
        FakeArrays::default()
    }

    /// Adds a zero-filled array map; returns its fd.
    pub fn add_array(&mut self, value_size: u32, max_entries: u32) -> i32 {
        let bytes = value_size as usize * max_entries as usize;
        self.maps.push(FakeArray {
            value_size,
            max_entries,
            values: vec![0; bytes],
            gen: 0,
            freed: false,
        });
        (self.maps.len() - 1) as i32
    }

    /// Frees map `fd`: its pointers now fault with a use after free.
    pub fn free(&mut self, fd: i32) {
        if let Some(map) = self.maps.get_mut(fd as usize) {
            map.freed = true;
            map.gen += 1;
        }
    }

    /// The value at `index` of map `fd`.
    pub fn value(&self, fd: i32, index: u32) -> Option<&[u8]> {
        let map = self.maps.get(fd as usize)?;
        let start = index as usize * map.value_size as usize;
        map.values.get(start..start + map.value_size as usize)
    }

    pub fn value_mut(&mut self, fd: i32, index: u32) -> Option<&mut [u8]> {
        let map = self.maps.get_mut(fd as usize)?;
        let start = index as usize * map.value_size as usize;
        map.values.get_mut(start..start + map.value_size as usize)
    }

    fn handle(&self, fd: usize) -> Handle {
        Handle {
            index: fd as u32,
            gen: self.maps[fd].gen,
        }
    }

    /// The live map a pointer names, or the fault/refusal.
    #[inline]
    fn map(&self, ptr: Ptr) -> EnvResult<(usize, &FakeArray)> {
        let fd = ptr.index as usize;
        match self.maps.get(fd) {
            Some(map)
                if !map.freed
                    && ptr.is_map(Handle {
                        index: ptr.index,
                        gen: map.gen,
                    }) =>
            {
                Ok((fd, map))
            }
            _ => Err(self.stale(ptr.encode())),
        }
    }

    /// Why `ptr` names no live map (out of line: the error path builds strings).
    #[cold]
    #[inline(never)]
    fn stale(&self, ptr: u64) -> ExecErrorKind {
        let ptr = cold_ptr(ptr);
        let fd = ptr.index as usize;
        if fd >= self.maps.len() {
            return ExecErrorKind::MapAccess(format!("{ptr}: no such map"));
        }
        ExecErrorKind::from(Fault::UseAfterFree {
            object: format!("fake array map {fd}"),
            freed_at: None,
            accessed_at: Stamp::default(),
        })
    }

    fn fd_map(&self, fd: i32) -> EnvResult<usize> {
        match self.maps.get(fd as usize) {
            Some(map) if fd >= 0 && !map.freed => Ok(fd as usize),
            _ => Err(ExecErrorKind::MapAccess(format!("bad map fd {fd}"))),
        }
    }

    /// Map and byte offset into its values of an access of `size` at `ptr`.
    #[inline]
    fn place(&self, ptr: Ptr, size: u8) -> EnvResult<(usize, usize)> {
        let (fd, map) = self.map(ptr)?;
        let start = (ptr.offset as usize).wrapping_sub(FAKE_HEADER_SIZE as usize);
        if ptr.offset >= FAKE_HEADER_SIZE && start + usize::from(size) <= map.values.len() {
            return Ok((fd, start));
        }
        Err(Self::out_of_bounds(ptr.encode(), size, map))
    }

    #[cold]
    #[inline(never)]
    fn bad_size(ptr: u64, size: u8) -> ExecErrorKind {
        let ptr = cold_ptr(ptr);
        ExecErrorKind::MapAccess(format!("{size}-byte access at {ptr}"))
    }

    #[cold]
    #[inline(never)]
    fn out_of_bounds(ptr: u64, size: u8, map: &FakeArray) -> ExecErrorKind {
        let ptr = cold_ptr(ptr);
        ExecErrorKind::OutOfBounds {
            ptr,
            size,
            region_len: u64::from(FAKE_HEADER_SIZE) + map.values.len() as u64,
        }
    }

    #[inline]
    fn index(key: &[u8]) -> u32 {
        let mut raw = [0u8; 4];
        raw.copy_from_slice(&key[..4]);
        u32::from_le_bytes(raw)
    }
}

impl MapEnv for FakeArrays {
    fn map_from_fd(&mut self, fd: i32) -> EnvResult<u64> {
        let fd = self.fd_map(fd)?;
        Ok(Ptr::map(self.handle(fd), 0).encode())
    }
    fn map_value_from_fd(&mut self, fd: i32, off: u32) -> EnvResult<u64> {
        let fd = self.fd_map(fd)?;
        Ok(Ptr::map(self.handle(fd), FAKE_HEADER_SIZE + off).encode())
    }
    fn map_key_size(&mut self, map: Ptr) -> EnvResult<u32> {
        self.map(map)?;
        Ok(KEY_SIZE)
    }
    fn map_value_size(&mut self, map: Ptr) -> EnvResult<u32> {
        Ok(self.map(map)?.1.value_size)
    }
    fn map_lookup(&mut self, map: Ptr, key: &[u8]) -> EnvResult<u64> {
        self.lookups += 1;
        let (fd, array) = self.map(map)?;
        let index = Self::index(key);
        if index >= array.max_entries {
            return Ok(0);
        }
        Ok(Ptr::map(self.handle(fd), FAKE_HEADER_SIZE + index * array.value_size).encode())
    }
    /// One map check for the whole lookup: the map, then the key (as the default would read
    /// it), then the index. Inlined for the same reason as `load`.
    #[inline(always)]
    fn map_lookup_at(&mut self, map: Ptr, elem: bool, key: KeyArg<'_>) -> EnvResult<u64> {
        let (fd, array) = self.map(map)?;
        let (max_entries, value_size, gen) = (array.max_entries, array.value_size, array.gen);
        let key = key.read(KEY_SIZE as usize)?;
        if elem {
            return self.map_lookup_elem(map, key);
        }
        self.lookups += 1;
        let index = Self::index(key);
        if index >= max_entries {
            return Ok(0);
        }
        let handle = Handle {
            index: fd as u32,
            gen,
        };
        Ok(Ptr::map(handle, FAKE_HEADER_SIZE + index * value_size).encode())
    }
    fn map_update(&mut self, map: Ptr, key: &[u8], value: &[u8], flags: u64) -> EnvResult<i64> {
        let (fd, array) = self.map(map)?;
        let index = Self::index(key);
        if flags > BPF_F_LOCK {
            return Ok(-i64::from(Errno::EINVAL.value()));
        }
        if index >= array.max_entries {
            return Ok(-i64::from(Errno::E2BIG.value()));
        }
        if flags == BPF_NOEXIST {
            return Ok(-i64::from(Errno::EEXIST.value()));
        }
        let start = index as usize * array.value_size as usize;
        self.maps[fd].values[start..start + value.len()].copy_from_slice(value);
        Ok(0)
    }
    fn map_delete(&mut self, map: Ptr, _key: &[u8]) -> EnvResult<i64> {
        self.map(map)?;
        // Array elements cannot be deleted.
        Ok(-i64::from(Errno::EINVAL.value()))
    }
    // Inlined into the interpreter: the size is a constant there, and `ptr` (12 bytes, passed
    // through memory) would otherwise be stored field by field and reloaded whole, a
    // store-forwarding stall that cost more than the access itself.
    #[inline(always)]
    fn load(&mut self, ptr: Ptr, size: u8) -> EnvResult<u64> {
        let (fd, at) = self.place(ptr, size)?;
        let values = &self.maps[fd].values;
        // Fixed-size reads: `place` checked `at + size` against the values.
        Ok(match size {
            1 => u64::from(values[at]),
            2 => u64::from(u16::from_le_bytes([values[at], values[at + 1]])),
            4 => u64::from(u32::from_le_bytes([
                values[at],
                values[at + 1],
                values[at + 2],
                values[at + 3],
            ])),
            8 => {
                let mut raw = [0u8; 8];
                raw.copy_from_slice(&values[at..at + 8]);
                u64::from_le_bytes(raw)
            }
            _ => return Err(Self::bad_size(ptr.encode(), size)),
        })
    }
    // Inlined for the same reason as `load`.
    #[inline(always)]
    fn store(&mut self, ptr: Ptr, size: u8, value: u64) -> EnvResult<()> {
        let (fd, at) = self.place(ptr, size)?;
        let size = usize::from(size);
        self.maps[fd].values[at..at + size].copy_from_slice(&value.to_le_bytes()[..size]);
        Ok(())
    }
}
