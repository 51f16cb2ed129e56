//! The only unsafe code of the project: the `bpf(2)` system call, issued through the `libc`
//! crate with the attribute layouts of [`abi`](super::abi), and one thin wrapper per command,
//! each turning a failed call's errno into a [`KernelError`].
//!
//! The alternative was libbpf (through libbpf-sys), which needs libelf and zlib to build; the
//! oracle uses none of libbpf's object loading, only its one-line syscall wrappers, so it
//! issues the calls itself. Where libbpf adds behaviour to a raw call (retrying a program load
//! for a log, or on `EAGAIN`), the wrapper says so and does the same.
//!
//! Invariants the wrappers keep so the calls stay sound whatever the caller passes:
//! - every buffer handed to the kernel is sized by this module from the map's own
//!   `key_size`/`value_size` (the [`Shape`]), never from the caller's slice, so the kernel can
//!   neither read past a key nor write past a value buffer;
//! - a descriptor the kernel creates is wrapped in an [`OwnedFd`] at once, so it is closed
//!   exactly once, when the owner drops it; nothing here pins or closes a descriptor it does
//!   not own;
//! - every pointer member of an attribute is 0 or the address of a buffer that the wrapper
//!   owns or borrows for the whole call, sized as the command reads or writes it;
//! - errno is read right after the call on the calling thread (it is thread-local).
#![allow(unsafe_code)]

use super::abi::{
    Cmd, FdAttr, IdAttr, InfoAttr, MapBatchAttr, MapCreateAttr, MapElemAttr, MapInfoRaw, Plain,
    ProgInfoRaw, ProgLoadAttr, TestRunAttr,
};
use super::error::KernelError;
use mimic_core::isa::Insn;
use mimic_core::uapi::{MapAttr, MapInfo};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// `bpf(cmd, attr, sizeof(*attr))`: the call's non-negative result, or its errno.
///
/// # Safety
/// Every pointer member of `attr` must be 0 or point at memory that stays valid, for the whole
/// call, for every byte `cmd` may read or write through it (see each wrapper).
unsafe fn sys_bpf<A: Plain>(cmd: Cmd, attr: &mut A) -> Result<i32, KernelError> {
    let size = std::mem::size_of::<A>() as libc::c_uint;
    let ptr = attr.as_mut_bytes().as_mut_ptr();
    // SAFETY: `ptr` points at `size` initialised bytes of `attr` (plain data without padding),
    // which the kernel reads and may write back; the caller vouches for the pointers inside.
    let ret = unsafe { libc::syscall(libc::SYS_bpf, cmd as libc::c_int, ptr, size) };
    if ret < 0 {
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        Err(KernelError::from_raw(cmd.name(), errno))
    } else {
        Ok(i32::try_from(ret).unwrap_or(i32::MAX))
    }
}

/// The address of a buffer as an attribute's `__aligned_u64`.
fn addr<T>(ptr: *const T) -> u64 {
    ptr as usize as u64
}

/// The sizes of one map's keys and values as the kernel copies them. Buffers are built from
/// these, since the kernel reads and writes exactly these many bytes per entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub key_size: u32,
    /// Bytes per value on the syscall boundary: `value_size`, or for per-CPU maps
    /// `round_up(value_size, 8) * possible CPUs` (one slot per CPU).
    pub value_size: u32,
}

/// Per-CPU map types (`PERCPU_HASH`, `PERCPU_ARRAY`, `LRU_PERCPU_HASH`) copy one value per
/// possible CPU through the syscall.
const PERCPU_MAP_TYPES: [u32; 3] = [5, 6, 10];
/// Per-CPU values are laid out at 8-byte strides.
const PERCPU_VALUE_ALIGN: u32 = 8;

impl Shape {
    /// Buffers covering the caller's own lengths: only for an fd the kernel refuses before
    /// copying anything (one that is never open).
    pub fn covering(key_len: usize, value_len: usize) -> Shape {
        let clamp = |len: usize| u32::try_from(len).unwrap_or(u32::MAX);
        Shape {
            key_size: clamp(key_len),
            value_size: clamp(value_len),
        }
    }

    /// The shape of a map of `map_type` with these sizes (queries the possible CPUs for
    /// per-CPU types).
    pub fn of(map_type: u32, key_size: u32, value_size: u32) -> Result<Shape, KernelError> {
        if !PERCPU_MAP_TYPES.contains(&map_type) {
            return Ok(Shape {
                key_size,
                value_size,
            });
        }
        let cpus = possible_cpus()?;
        let stride = value_size.div_ceil(PERCPU_VALUE_ALIGN) * PERCPU_VALUE_ALIGN;
        let value_size = stride.checked_mul(cpus).ok_or(KernelError::Length {
            op: "BPF_MAP_LOOKUP_ELEM",
            what: "per-cpu value",
            given: stride as usize,
            expected: u32::MAX as usize,
        })?;
        Ok(Shape {
            key_size,
            value_size,
        })
    }
}

/// Where the kernel lists the possible CPUs (`0-3`, `0,2-5`, ...).
const POSSIBLE_CPUS: &str = "/sys/devices/system/cpu/possible";

/// The machine's possible CPUs: how many values a per-CPU map's syscall buffer holds (the
/// kernel copies one per possible CPU).
pub fn possible_cpus() -> Result<u32, KernelError> {
    let text = std::fs::read_to_string(POSSIBLE_CPUS).map_err(|err| KernelError::Host {
        what: POSSIBLE_CPUS,
        detail: err.to_string(),
    })?;
    count_cpu_list(&text).ok_or_else(|| KernelError::Host {
        what: POSSIBLE_CPUS,
        detail: format!("not a CPU list: {:?}", text.trim()),
    })
}

/// Counts the CPUs of a kernel CPU list (`0-3,8`); `None` when it does not parse.
fn count_cpu_list(text: &str) -> Option<u32> {
    let mut count = 0u32;
    for part in text.trim().split(',') {
        let (lo, hi) = match part.split_once('-') {
            Some((lo, hi)) => (lo.parse::<u32>().ok()?, hi.parse::<u32>().ok()?),
            None => {
                let cpu = part.parse::<u32>().ok()?;
                (cpu, cpu)
            }
        };
        count = count.checked_add(hi.checked_sub(lo)?.checked_add(1)?)?;
    }
    (count > 0).then_some(count)
}

/// Wraps a descriptor the kernel just returned.
fn owned(fd: i32) -> OwnedFd {
    // SAFETY: `fd` was just returned by the kernel for a call that creates a descriptor; no
    // other owner exists, so wrapping it transfers the only ownership to the OwnedFd (closed
    // once, on drop).
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Copies `input` into a buffer of exactly `size` bytes. Any other length is refused: the
/// syscall ABI carries no lengths, so a longer key would silently lose bytes and a shorter one
/// would be read past its end (padding it would invent bytes the caller never gave).
fn sized(
    op: &'static str,
    what: &'static str,
    input: &[u8],
    size: u32,
) -> Result<Vec<u8>, KernelError> {
    let size = size as usize;
    if input.len() != size {
        return Err(KernelError::Length {
            op,
            what,
            given: input.len(),
            expected: size,
        });
    }
    let mut buf = vec![0u8; size];
    buf[..input.len()].copy_from_slice(input);
    Ok(buf)
}

/// `BPF_MAP_CREATE` with no name and no BTF.
pub fn map_create(attr: &MapAttr) -> Result<OwnedFd, KernelError> {
    let mut raw = MapCreateAttr {
        map_type: attr.map_type,
        key_size: attr.key_size,
        value_size: attr.value_size,
        max_entries: attr.max_entries,
        map_flags: attr.map_flags,
        inner_map_fd: attr.inner_map_fd,
        ..MapCreateAttr::default()
    };
    // SAFETY: the attribute holds no pointers.
    unsafe { sys_bpf(Cmd::MapCreate, &mut raw) }.map(owned)
}

/// One `BPF_MAP_*_ELEM` call on `fd` with a key and a value (or next-key) buffer.
///
/// # Safety
/// `key` must be null or point at the map's key_size bytes; `value` null or at as many bytes as
/// `cmd` reads or writes there (value_size, or key_size for the next key); both valid across
/// the call.
unsafe fn elem(
    cmd: Cmd,
    fd: RawFd,
    key: *const u8,
    value: *const u8,
    flags: u64,
) -> Result<i32, KernelError> {
    let mut attr = MapElemAttr {
        map_fd: fd as u32,
        key: addr(key),
        value: addr(value),
        flags,
        ..MapElemAttr::default()
    };
    // SAFETY: the caller vouches for `key` and `value`.
    unsafe { sys_bpf(cmd, &mut attr) }
}

pub fn map_update(
    fd: RawFd,
    shape: Shape,
    key: &[u8],
    value: &[u8],
    flags: u64,
) -> Result<(), KernelError> {
    const OP: &str = "BPF_MAP_UPDATE_ELEM";
    let key = sized(OP, "key", key, shape.key_size)?;
    let value = sized(OP, "value", value, shape.value_size)?;
    // SAFETY: `key` and `value` hold exactly the map's key_size and value_size bytes (the
    // kernel reads no more), and live across the call.
    unsafe { elem(Cmd::MapUpdateElem, fd, key.as_ptr(), value.as_ptr(), flags) }.map(drop)
}

pub fn map_lookup(fd: RawFd, shape: Shape, key: &[u8]) -> Result<Vec<u8>, KernelError> {
    const OP: &str = "BPF_MAP_LOOKUP_ELEM";
    let key = sized(OP, "key", key, shape.key_size)?;
    let mut value = vec![0u8; shape.value_size as usize];
    // SAFETY: `key` holds key_size bytes, `value` has room for the value bytes the kernel
    // writes (value_size, one slot per possible CPU for per-CPU maps: see `Shape::of`), both
    // live across the call.
    unsafe { elem(Cmd::MapLookupElem, fd, key.as_ptr(), value.as_mut_ptr(), 0) }.map(|_| value)
}

pub fn map_lookup_and_delete(fd: RawFd, shape: Shape, key: &[u8]) -> Result<Vec<u8>, KernelError> {
    const OP: &str = "BPF_MAP_LOOKUP_AND_DELETE_ELEM";
    let key = sized(OP, "key", key, shape.key_size)?;
    let mut value = vec![0u8; shape.value_size as usize];
    // SAFETY: as in `map_lookup`.
    unsafe {
        elem(
            Cmd::MapLookupAndDeleteElem,
            fd,
            key.as_ptr(),
            value.as_mut_ptr(),
            0,
        )
    }
    .map(|_| value)
}

pub fn map_delete(fd: RawFd, shape: Shape, key: &[u8]) -> Result<(), KernelError> {
    const OP: &str = "BPF_MAP_DELETE_ELEM";
    let key = sized(OP, "key", key, shape.key_size)?;
    // SAFETY: `key` holds key_size bytes and lives across the call; no value is passed.
    unsafe { elem(Cmd::MapDeleteElem, fd, key.as_ptr(), std::ptr::null(), 0) }.map(drop)
}

/// `key == None` asks for the first key (a null key pointer, as the ABI defines).
pub fn map_get_next_key(
    fd: RawFd,
    shape: Shape,
    key: Option<&[u8]>,
) -> Result<Vec<u8>, KernelError> {
    const OP: &str = "BPF_MAP_GET_NEXT_KEY";
    let key = key
        .map(|key| sized(OP, "key", key, shape.key_size))
        .transpose()?;
    let key_ptr = key.as_ref().map_or(std::ptr::null(), |key| key.as_ptr());
    let mut next = vec![0u8; shape.key_size as usize];
    // SAFETY: `key_ptr` is null or points at key_size bytes; `next` has room for key_size
    // bytes; both live across the call.
    unsafe { elem(Cmd::MapGetNextKey, fd, key_ptr, next.as_mut_ptr(), 0) }.map(|_| next)
}

/// What one `BPF_MAP_LOOKUP(_AND_DELETE)_BATCH` call returned: `count` entries (flat arrays),
/// the `out_batch` token, and whether the kernel said `-ENOENT` (end of the map).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawBatch {
    pub keys: Vec<u8>,
    pub values: Vec<u8>,
    pub count: u32,
    pub out_batch: u32,
    pub done: bool,
}

/// The batch token: hash maps use a u32 bucket index, arrays a key (key_size bytes, 4 for the
/// array types). A buffer of at least 8 bytes covers both; the token returned is its first u32.
const BATCH_TOKEN_BYTES: u32 = 8;

pub fn map_lookup_batch(
    fd: RawFd,
    shape: Shape,
    in_batch: Option<u32>,
    count: u32,
    delete: bool,
) -> Result<RawBatch, KernelError> {
    let cmd = if delete {
        Cmd::MapLookupAndDeleteBatch
    } else {
        Cmd::MapLookupBatch
    };
    let token_len = BATCH_TOKEN_BYTES.max(shape.key_size) as usize;
    let mut in_buf = vec![0u8; token_len];
    if let Some(token) = in_batch {
        in_buf[..4].copy_from_slice(&token.to_ne_bytes());
    }
    let in_ptr = if in_batch.is_some() {
        in_buf.as_ptr()
    } else {
        std::ptr::null()
    };
    let mut out_buf = vec![0u8; token_len];
    let mut keys = vec![0u8; shape.key_size as usize * count as usize];
    let mut values = vec![0u8; shape.value_size as usize * count as usize];
    let mut attr = MapBatchAttr {
        in_batch: addr(in_ptr),
        out_batch: addr(out_buf.as_mut_ptr()),
        keys: addr(keys.as_mut_ptr()),
        values: addr(values.as_mut_ptr()),
        count,
        map_fd: fd as u32,
        ..MapBatchAttr::default()
    };
    // SAFETY: `keys`/`values` have room for `count` entries of key_size/value_size bytes (the
    // kernel writes at most `count` entries); the batch tokens are at least key_size and 4
    // bytes; `in_ptr` is null (start) or points at `in_buf`; all live across the call.
    let done = match unsafe { sys_bpf(cmd, &mut attr) } {
        Ok(_) => false,
        Err(KernelError::Errno(mimic_core::errno::Errno::ENOENT)) => true,
        Err(err) => return Err(err),
    };
    let n = attr.count.min(count);
    keys.truncate(shape.key_size as usize * n as usize);
    values.truncate(shape.value_size as usize * n as usize);
    let out_batch = u32::from_ne_bytes([out_buf[0], out_buf[1], out_buf[2], out_buf[3]]);
    Ok(RawBatch {
        keys,
        values,
        count: n,
        out_batch,
        done,
    })
}

/// Flattens `entries` into one buffer of `size`-byte slots (what the batch ABI expects).
fn flatten(
    op: &'static str,
    what: &'static str,
    entries: &[Vec<u8>],
    size: u32,
) -> Result<Vec<u8>, KernelError> {
    let mut flat = Vec::with_capacity(entries.len() * size as usize);
    for entry in entries {
        flat.extend(sized(op, what, entry, size)?);
    }
    Ok(flat)
}

/// The entry count of a batch, which the ABI carries as a u32.
fn batch_len(op: &'static str, len: usize) -> Result<u32, KernelError> {
    u32::try_from(len).map_err(|_| KernelError::Length {
        op,
        what: "batch",
        given: len,
        expected: u32::MAX as usize,
    })
}

/// A batch call's result: how many entries the kernel processed (its `count` out-parameter,
/// also on error).
///
/// The kernel writes `count` back only once it has entered its per-entry loop, where a failure
/// at entry `i` writes `i < count`. Errors before the loop (a bad fd, `-EPERM`, a type without
/// the batch op: `-ENOTSUPP`, bad elem flags: `-EINVAL`) leave the caller's `count` as it was,
/// so an error with `count` unchanged means nothing was applied: reported as 0, the
/// [`BpfSys`](mimic_core::uapi::BpfSys) contract ("applied before the error").
fn batch_result(
    ret: Result<i32, KernelError>,
    done: u32,
    count: u32,
) -> Result<u32, (u32, KernelError)> {
    ret.map(|_| done).map_err(|err| {
        let applied = if done >= count { 0 } else { done };
        (applied, err)
    })
}

/// `BPF_MAP_UPDATE_BATCH`: `Ok(applied)` or `Err((applied, error))`.
pub fn map_update_batch(
    fd: RawFd,
    shape: Shape,
    keys: &[Vec<u8>],
    values: &[Vec<u8>],
    elem_flags: u64,
) -> Result<u32, (u32, KernelError)> {
    const OP: &str = "BPF_MAP_UPDATE_BATCH";
    let prepare = || {
        if keys.len() != values.len() {
            return Err(KernelError::Length {
                op: OP,
                what: "values",
                given: values.len(),
                expected: keys.len(),
            });
        }
        let count = batch_len(OP, keys.len())?;
        let flat_keys = flatten(OP, "key", keys, shape.key_size)?;
        Ok((
            count,
            flat_keys,
            flatten(OP, "value", values, shape.value_size)?,
        ))
    };
    let (count, flat_keys, flat_values) = prepare().map_err(|err| (0, err))?;
    let mut attr = MapBatchAttr {
        keys: addr(flat_keys.as_ptr()),
        values: addr(flat_values.as_ptr()),
        count,
        map_fd: fd as u32,
        elem_flags,
        ..MapBatchAttr::default()
    };
    // SAFETY: the flat buffers hold exactly `count` keys and values of the map's sizes and
    // live across the call; the kernel only reads them.
    let ret = unsafe { sys_bpf(Cmd::MapUpdateBatch, &mut attr) };
    batch_result(ret, attr.count, count)
}

/// `BPF_MAP_DELETE_BATCH`: `Ok(deleted)` or `Err((deleted, error))`.
pub fn map_delete_batch(
    fd: RawFd,
    shape: Shape,
    keys: &[Vec<u8>],
) -> Result<u32, (u32, KernelError)> {
    const OP: &str = "BPF_MAP_DELETE_BATCH";
    let count = batch_len(OP, keys.len()).map_err(|err| (0, err))?;
    let flat_keys = flatten(OP, "key", keys, shape.key_size).map_err(|err| (0, err))?;
    let mut attr = MapBatchAttr {
        keys: addr(flat_keys.as_ptr()),
        count,
        map_fd: fd as u32,
        ..MapBatchAttr::default()
    };
    // SAFETY: `flat_keys` holds exactly `count` keys of key_size bytes and lives across the
    // call; the kernel only reads it.
    let ret = unsafe { sys_bpf(Cmd::MapDeleteBatch, &mut attr) };
    batch_result(ret, attr.count, count)
}

pub fn map_get_fd_by_id(id: u32) -> Result<OwnedFd, KernelError> {
    let mut attr = IdAttr {
        id,
        ..IdAttr::default()
    };
    // SAFETY: the attribute holds no pointers.
    unsafe { sys_bpf(Cmd::MapGetFdById, &mut attr) }.map(owned)
}

/// Whether a map with this id exists (`BPF_MAP_GET_NEXT_ID` from `id - 1` lands on it). Unlike
/// get-fd-by-id it takes no reference: opening and closing an fd on a PROG_ARRAY whose last
/// uref is gone would re-arm its clearing worker, which holds the map meanwhile.
pub fn map_id_exists(id: u32) -> Result<bool, KernelError> {
    let Some(start) = id.checked_sub(1) else {
        return Ok(false);
    };
    let mut attr = IdAttr {
        id: start,
        ..IdAttr::default()
    };
    // SAFETY: the attribute holds no pointers; the kernel writes `next_id` into it.
    match unsafe { sys_bpf(Cmd::MapGetNextId, &mut attr) } {
        Ok(_) => Ok(attr.next_id == id),
        // No id above `start` at all.
        Err(KernelError::Errno(mimic_core::errno::Errno::ENOENT)) => Ok(false),
        Err(err) => Err(err),
    }
}

/// `BPF_OBJ_GET_INFO_BY_FD` into `info` (whose pointer members, if any, are the caller's):
/// returns how many bytes the kernel wrote (the smaller of its struct and ours).
///
/// # Safety
/// Every pointer member of `info` must be 0 or point at a buffer valid for the length its
/// count member gives, across the call.
unsafe fn obj_info<T: Plain>(fd: RawFd, info: &mut T) -> Result<u32, KernelError> {
    let bytes = info.as_mut_bytes();
    let mut attr = InfoAttr {
        bpf_fd: fd as u32,
        info_len: bytes.len() as u32,
        info: addr(bytes.as_mut_ptr()),
    };
    // SAFETY: `info` points at `info_len` bytes of `bytes`, all the kernel writes; the caller
    // vouches for the pointers inside it.
    unsafe { sys_bpf(Cmd::ObjGetInfoByFd, &mut attr) }?;
    Ok(attr.info_len)
}

/// `BPF_OBJ_GET_INFO_BY_FD` on a map.
pub fn map_info(fd: RawFd) -> Result<MapInfo, KernelError> {
    let mut info = MapInfoRaw::default();
    // SAFETY: a map info struct holds no pointers.
    unsafe { obj_info(fd, &mut info) }?;
    Ok(MapInfo {
        id: info.id,
        map_type: info.map_type,
        key_size: info.key_size,
        value_size: info.value_size,
        max_entries: info.max_entries,
        map_flags: info.map_flags,
    })
}

/// A failed `BPF_PROG_LOAD`: the error and the verifier's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadFailure {
    pub error: KernelError,
    pub log: String,
}

/// The verifier log buffer's first size; a load that reports a larger `log_true_size` is
/// retried once with that size.
const LOG_BYTES: usize = 1 << 20;
/// The kernel refuses log buffers above this (`UINT_MAX >> 2`).
const LOG_BYTES_MAX: usize = (u32::MAX >> 2) as usize;

/// How often a load that says `EAGAIN` is tried (libbpf's count: the verifier may ask to
/// be retried when it is interrupted).
const LOAD_ATTEMPTS: u32 = 5;

/// `BPF_PROG_LOAD` of raw instructions (pseudo map loads already carry real map fds), GPL
/// licence, with the verifier log at `log_level`. Level 0 loads without a log and, on failure,
/// loads again at level 1 so a failure always comes with a log (what libbpf does).
pub fn prog_load(
    prog_type: u32,
    insns: &[Insn],
    log_level: u32,
    prog_flags: u32,
) -> Result<(OwnedFd, String), LoadFailure> {
    // `u64` slots give the 8-byte size and (more than) the 4-byte alignment of bpf_insn while
    // keeping each slot's bytes in memory order.
    let slots: Vec<u64> = insns
        .iter()
        .map(|insn| u64::from_ne_bytes(insn.to_bytes()))
        .collect();
    let license = c"GPL";
    let attr = ProgLoadAttr {
        prog_type,
        insn_cnt: u32::try_from(slots.len()).unwrap_or(u32::MAX),
        insns: addr(slots.as_ptr()),
        license: addr(license.as_ptr()),
        prog_flags,
        ..ProgLoadAttr::default()
    };
    if log_level == 0 {
        let mut quiet = attr;
        // SAFETY: `insns` points at `insn_cnt` 8-byte instructions and `license` at a
        // NUL-terminated string, both alive across the call; no log buffer is passed.
        if let Ok(fd) = unsafe { load_retrying(&mut quiet) } {
            return Ok((fd, String::new()));
        }
    }
    let mut log_len = LOG_BYTES;
    loop {
        let mut log = vec![0u8; log_len];
        let mut with_log = ProgLoadAttr {
            log_level: log_level.max(1),
            log_size: log.len() as u32,
            log_buf: addr(log.as_mut_ptr()),
            ..attr
        };
        // SAFETY: `insns` and `license` as above; `log_buf` points at `log_size` writable
        // bytes alive across the call.
        let result = unsafe { load_retrying(&mut with_log) };
        let true_size = with_log.log_true_size as usize;
        let text = log_text(&log);
        match result {
            Ok(fd) => return Ok((fd, text)),
            Err(KernelError::Errno(mimic_core::errno::Errno::ENOSPC))
                if true_size > log_len && true_size <= LOG_BYTES_MAX =>
            {
                log_len = true_size;
            }
            Err(error) => return Err(LoadFailure { error, log: text }),
        }
    }
}

/// One load, tried again while the kernel says `EAGAIN`.
///
/// # Safety
/// As [`sys_bpf`] for `BPF_PROG_LOAD`: `insns`, `license` and `log_buf` valid for the lengths
/// the attribute gives.
unsafe fn load_retrying(attr: &mut ProgLoadAttr) -> Result<OwnedFd, KernelError> {
    let mut attempt = 1;
    loop {
        // SAFETY: the caller vouches for the attribute's buffers.
        match unsafe { sys_bpf(Cmd::ProgLoad, attr) } {
            Err(KernelError::Unmodelled { value: EAGAIN, .. }) if attempt < LOAD_ATTEMPTS => {
                attempt += 1;
            }
            result => return result.map(owned),
        }
    }
}

const EAGAIN: i32 = 11;

fn log_text(log: &[u8]) -> String {
    let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
    String::from_utf8_lossy(&log[..end]).into_owned()
}

/// `BPF_MAP_FREEZE`: user space may no longer write the map (libbpf freezes `.rodata`).
pub fn map_freeze(fd: RawFd) -> Result<(), KernelError> {
    let mut attr = FdAttr { map_fd: fd as u32 };
    // SAFETY: the attribute holds no pointers.
    unsafe { sys_bpf(Cmd::MapFreeze, &mut attr) }.map(drop)
}

/// How many instructions the verifier processed for a loaded program (`verified_insns` of its
/// info: the `processed N insns` of the log).
pub fn prog_verified_insns(fd: RawFd) -> Result<u32, KernelError> {
    Ok(prog_info(fd)?.verified_insns)
}

/// A loaded program's id.
pub fn prog_id(fd: RawFd) -> Result<u32, KernelError> {
    Ok(prog_info(fd)?.id)
}

/// `BPF_OBJ_GET_INFO_BY_FD` of a program, without its arrays.
fn prog_info(fd: RawFd) -> Result<ProgInfoRaw, KernelError> {
    let mut info = ProgInfoRaw::default();
    // SAFETY: all array pointers and counts are zero: the kernel copies no arrays.
    unsafe { obj_info(fd, &mut info) }?;
    Ok(info)
}

/// The translated (xlated) program the kernel runs, via `BPF_OBJ_GET_INFO_BY_FD`. Needs the
/// right to see kernel addresses (root); otherwise the kernel reports a length of 0.
pub fn prog_xlated(fd: RawFd) -> Result<Vec<Insn>, KernelError> {
    let mut info = ProgInfoRaw::default();
    // SAFETY: all array pointers and counts are zero: the kernel copies no arrays.
    unsafe { obj_info(fd, &mut info) }?;
    let bytes = info.xlated_prog_len as usize;
    if bytes == 0 {
        return Err(KernelError::NoXlated);
    }
    let mut slots = vec![0u64; bytes.div_ceil(8)];
    let mut again = ProgInfoRaw {
        xlated_prog_len: (slots.len() * 8) as u32,
        xlated_prog_insns: addr(slots.as_mut_ptr()),
        ..ProgInfoRaw::default()
    };
    // SAFETY: `xlated_prog_insns` points at `xlated_prog_len` writable bytes that outlive the
    // call (the kernel copies at most that many); every other array pointer is zero.
    unsafe { obj_info(fd, &mut again) }?;
    let written = (again.xlated_prog_len as usize).min(slots.len() * 8) / 8;
    Ok(slots[..written]
        .iter()
        .map(|slot| Insn::from_bytes(slot.to_ne_bytes()))
        .collect())
}

/// What `BPF_PROG_TEST_RUN` reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRun {
    /// The program's `r0` (32 bits, as the ABI reports it).
    pub retval: u32,
    /// Mean nanoseconds per run over `repeat` runs, measured by the kernel.
    pub duration_ns: u32,
    /// The packet after the run (for packet program types), which may have grown.
    pub data_out: Vec<u8>,
    /// The context after the run: `BPF_PROG_TYPE_SYSCALL` programs write it back in place.
    pub ctx_after: Vec<u8>,
}

/// Bytes past the input a test run's output may use: a page, more than any headroom.
const DATA_OUT_SLACK: usize = 4096;

/// `BPF_PROG_TEST_RUN` with an input packet and/or context (empty = not passed).
pub fn prog_test_run(
    fd: RawFd,
    data_in: &[u8],
    ctx_in: &[u8],
    repeat: u32,
) -> Result<TestRun, KernelError> {
    // Owned, writable copies: some program types write results back through the *input*
    // pointers (`BPF_PROG_TYPE_SYSCALL` copies its context back to `ctx_in`), which must
    // never land in memory the caller only lent us read-only.
    let mut data = data_in.to_vec();
    let mut ctx = ctx_in.to_vec();
    // Room for a packet the program grew (an XDP program may move its start into the
    // headroom): with less, the kernel copies what fits and fails the run with ENOSPC.
    let mut data_out = vec![0u8; data_in.len() + DATA_OUT_SLACK];
    let mut attr = TestRunAttr {
        prog_fd: fd as u32,
        repeat,
        ..TestRunAttr::default()
    };
    if !data.is_empty() {
        attr.data_in = addr(data.as_mut_ptr());
        attr.data_size_in = data.len() as u32;
        attr.data_out = addr(data_out.as_mut_ptr());
        attr.data_size_out = data_out.len() as u32;
    }
    if !ctx.is_empty() {
        attr.ctx_in = addr(ctx.as_mut_ptr());
        attr.ctx_size_in = ctx.len() as u32;
    }
    // SAFETY: the in-buffers are owned, writable and valid for their sizes (the kernel may
    // write the context back into `ctx`); `data_out` has room for `data_size_out` bytes (the
    // kernel copies at most that and reports the full size); all live across the call.
    unsafe { sys_bpf(Cmd::ProgTestRun, &mut attr) }?;
    data_out.truncate((attr.data_size_out as usize).min(data_out.len()));
    Ok(TestRun {
        retval: attr.retval,
        duration_ns: attr.duration,
        data_out,
        ctx_after: ctx,
    })
}

/// The raw number of a descriptor this module handed out, for pseudo map loads and
/// `inner_map_fd`.
pub fn raw(fd: &OwnedFd) -> RawFd {
    fd.as_raw_fd()
}

#[cfg(test)]
mod tests {
    //! The layouts of `abi` against the live kernel: what the oracle writes must come back in
    //! the same places, and the kernel's own info structs must be at least as long as ours.
    use super::*;
    use crate::kernel::sys::probe;
    use mimic_core::isa::{Insn, BPF_PSEUDO_MAP_FD};

    /// How many bytes of an info struct the kernel has: it writes the smaller of its struct
    /// and the buffer, so a buffer larger than any struct it knows returns its own size.
    fn kernel_info_len(fd: RawFd) -> u32 {
        let mut big = [0u64; 128];
        // SAFETY: a zeroed buffer holds no pointers.
        unsafe { obj_info(fd, &mut big) }.expect("BPF_OBJ_GET_INFO_BY_FD")
    }

    fn kernel_or_skip(what: &str) -> bool {
        crate::kernel::require_or_skip(what, probe()).is_some()
    }

    #[test]
    fn cpu_lists_count_as_the_kernel_prints_them() {
        assert_eq!(count_cpu_list("0\n"), Some(1));
        assert_eq!(count_cpu_list("0-3\n"), Some(4));
        assert_eq!(count_cpu_list("0,2-5,9"), Some(6));
        assert_eq!(count_cpu_list(""), None);
        assert_eq!(count_cpu_list("3-1"), None);
        assert_eq!(count_cpu_list("zero"), None);
    }

    #[test]
    fn map_create_fields_come_back_from_map_info_where_the_kernel_keeps_them() {
        if !kernel_or_skip("map attribute layout") {
            return;
        }
        // A hash without preallocation: every field distinct, so a field read from the wrong
        // offset shows.
        let attr = MapAttr {
            map_flags: 1,
            ..MapAttr::new(mimic_core::uapi::MapType::Hash, 4, 12, 7)
        };
        let map = map_create(&attr).expect("BPF_MAP_CREATE");
        let info = map_info(raw(&map)).expect("map info");
        assert_eq!(
            (
                info.map_type,
                info.key_size,
                info.value_size,
                info.max_entries,
                info.map_flags
            ),
            (1, 4, 12, 7, 1)
        );
        assert!(info.id > 0);
        let len = kernel_info_len(raw(&map)) as usize;
        assert!(
            len >= std::mem::size_of::<MapInfoRaw>(),
            "the kernel's bpf_map_info has {len} bytes, ours {}",
            std::mem::size_of::<MapInfoRaw>()
        );
    }

    #[test]
    fn prog_load_log_info_and_test_run_use_the_kernel_layouts() {
        if !kernel_or_skip("program attribute layout") {
            return;
        }
        let map = map_create(&MapAttr::new(mimic_core::uapi::MapType::Array, 4, 8, 1))
            .expect("BPF_MAP_CREATE");
        // r0 = 7; exit, preceded by a map load so the xlated program shows the map's id.
        let insns = [
            Insn::new(0x18, 1, BPF_PSEUDO_MAP_FD, 0, raw(&map)),
            Insn::new(0, 0, 0, 0, 0),
            Insn::new(0xb7, 0, 0, 0, 7),
            Insn::new(0x95, 0, 0, 0, 0),
        ];
        let (prog, log) = prog_load(1, &insns, 2, 0).expect("BPF_PROG_LOAD");
        assert!(log.contains("processed 3 insns"), "log at level 2: {log}");
        let len = kernel_info_len(raw(&prog)) as usize;
        assert!(
            len >= std::mem::size_of::<ProgInfoRaw>(),
            "bpf_prog_info: {len} bytes"
        );
        let mut info = ProgInfoRaw::default();
        // SAFETY: all array pointers are zero.
        unsafe { obj_info(raw(&prog), &mut info) }.expect("prog info");
        assert_eq!(info.prog_type, 1);
        assert_eq!(info.verified_insns, 3, "processed instructions");
        let xlated = prog_xlated(raw(&prog)).expect("xlated");
        assert_eq!(xlated.len(), 4);
        let run = prog_test_run(raw(&prog), &[0u8; 14], &[], 1).expect("BPF_PROG_TEST_RUN");
        assert_eq!(run.retval, 7);
        assert_eq!(run.data_out.len(), 14);
    }

    #[test]
    fn a_refused_load_at_level_0_still_comes_with_the_log() {
        if !kernel_or_skip("program load log") {
            return;
        }
        // exit with r0 unset.
        let failure = prog_load(1, &[Insn::new(0x95, 0, 0, 0, 0)], 0, 0).expect_err("refused");
        assert_eq!(
            failure.error,
            KernelError::Errno(mimic_core::errno::Errno::EACCES)
        );
        assert!(failure.log.contains("R0 !read_ok"), "{}", failure.log);
    }
}
