//! The only unsafe code of the kernel oracle: thin wrappers over libbpf's low-level bpf()
//! calls (libbpf-sys), each turning libbpf's negative return into a [`KernelError`].
//!
//! Invariants the wrappers keep so the calls stay sound whatever the caller passes:
//! - every buffer handed to the kernel is sized by this module from the map's own
//!   `key_size`/`value_size` (the [`Shape`]), never from the caller's slice, so the kernel can
//!   neither read past a key nor write past a value buffer;
//! - a descriptor the kernel creates is wrapped in an [`OwnedFd`] at once, so it is closed
//!   exactly once, when the owner drops it; nothing here pins or closes a descriptor it does
//!   not own;
//! - libbpf 1.x returns `-errno` directly from these calls (no global errno to race on).
#![allow(unsafe_code)]

use super::error::KernelError;
use mimic_core::isa::Insn;
use mimic_core::uapi::{MapAttr, MapInfo};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::raw::{c_char, c_void};

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
        // SAFETY: takes no arguments; reads /sys once and caches the count.
        let cpus = check("libbpf_num_possible_cpus", unsafe {
            libbpf_sys::libbpf_num_possible_cpus()
        })?;
        let stride = value_size.div_ceil(PERCPU_VALUE_ALIGN) * PERCPU_VALUE_ALIGN;
        let value_size = stride.checked_mul(cpus as u32).ok_or(KernelError::Length {
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

/// The machine's possible CPUs: how many values a per-CPU map's syscall buffer holds.
pub fn possible_cpus() -> Result<u32, KernelError> {
    // SAFETY: takes no arguments; reads /sys once and caches the count.
    let cpus = check("libbpf_num_possible_cpus", unsafe {
        libbpf_sys::libbpf_num_possible_cpus()
    })?;
    Ok(cpus as u32)
}

/// libbpf's calls return `-errno` on failure and `>= 0` on success.
fn check(op: &'static str, ret: i32) -> Result<i32, KernelError> {
    if ret < 0 {
        Err(KernelError::from_raw(op, -ret))
    } else {
        Ok(ret)
    }
}

fn owned(op: &'static str, ret: i32) -> Result<OwnedFd, KernelError> {
    let fd = check(op, ret)?;
    // SAFETY: `fd` was just returned by the kernel for this call; no other owner exists, so
    // wrapping it transfers the only ownership to the OwnedFd (closed once, on drop).
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The sizes `opts` structs carry for libbpf's forward/backward compatibility checks.
macro_rules! zeroed_opts {
    ($ty:ty) => {{
        // SAFETY: libbpf's opts structs are plain C data (integers and nullable pointers);
        // all-zero is their documented "unset" value.
        let mut opts: $ty = unsafe { std::mem::zeroed() };
        opts.sz = std::mem::size_of::<$ty>() as _;
        opts
    }};
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
    let mut opts = zeroed_opts!(libbpf_sys::bpf_map_create_opts);
    opts.map_flags = attr.map_flags;
    opts.inner_map_fd = attr.inner_map_fd;
    // SAFETY: `opts` is a valid, fully initialised struct that outlives the call; a null name
    // is allowed (libbpf then sends no name).
    let ret = unsafe {
        libbpf_sys::bpf_map_create(
            attr.map_type,
            std::ptr::null(),
            attr.key_size,
            attr.value_size,
            attr.max_entries,
            &opts,
        )
    };
    owned("BPF_MAP_CREATE", ret)
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
    let ret = unsafe {
        libbpf_sys::bpf_map_update_elem(fd, key.as_ptr().cast(), value.as_ptr().cast(), flags)
    };
    check(OP, ret).map(drop)
}

pub fn map_lookup(fd: RawFd, shape: Shape, key: &[u8]) -> Result<Vec<u8>, KernelError> {
    const OP: &str = "BPF_MAP_LOOKUP_ELEM";
    let key = sized(OP, "key", key, shape.key_size)?;
    let mut value = vec![0u8; shape.value_size as usize];
    // SAFETY: `key` holds key_size bytes, `value` has room for value_size bytes (what the
    // kernel writes for the non-percpu types this backend is used with), both live across
    // the call.
    let ret = unsafe {
        libbpf_sys::bpf_map_lookup_elem(fd, key.as_ptr().cast(), value.as_mut_ptr().cast())
    };
    check(OP, ret).map(|_| value)
}

pub fn map_lookup_and_delete(fd: RawFd, shape: Shape, key: &[u8]) -> Result<Vec<u8>, KernelError> {
    const OP: &str = "BPF_MAP_LOOKUP_AND_DELETE_ELEM";
    let key = sized(OP, "key", key, shape.key_size)?;
    let mut value = vec![0u8; shape.value_size as usize];
    // SAFETY: as in `map_lookup`.
    let ret = unsafe {
        libbpf_sys::bpf_map_lookup_and_delete_elem(
            fd,
            key.as_ptr().cast(),
            value.as_mut_ptr().cast(),
        )
    };
    check(OP, ret).map(|_| value)
}

pub fn map_delete(fd: RawFd, shape: Shape, key: &[u8]) -> Result<(), KernelError> {
    const OP: &str = "BPF_MAP_DELETE_ELEM";
    let key = sized(OP, "key", key, shape.key_size)?;
    // SAFETY: `key` holds key_size bytes and lives across the call.
    let ret = unsafe { libbpf_sys::bpf_map_delete_elem(fd, key.as_ptr().cast()) };
    check(OP, ret).map(drop)
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
    let key_ptr: *const c_void = key
        .as_ref()
        .map_or(std::ptr::null(), |key| key.as_ptr().cast());
    let mut next = vec![0u8; shape.key_size as usize];
    // SAFETY: `key_ptr` is null or points at key_size bytes; `next` has room for key_size
    // bytes; both live across the call.
    let ret = unsafe { libbpf_sys::bpf_map_get_next_key(fd, key_ptr, next.as_mut_ptr().cast()) };
    check(OP, ret).map(|_| next)
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
    let op = if delete {
        "BPF_MAP_LOOKUP_AND_DELETE_BATCH"
    } else {
        "BPF_MAP_LOOKUP_BATCH"
    };
    let token_len = BATCH_TOKEN_BYTES.max(shape.key_size) as usize;
    let mut in_buf = vec![0u8; token_len];
    if let Some(token) = in_batch {
        in_buf[..4].copy_from_slice(&token.to_ne_bytes());
    }
    let in_ptr: *mut c_void = if in_batch.is_some() {
        in_buf.as_mut_ptr().cast()
    } else {
        std::ptr::null_mut()
    };
    let mut out_buf = vec![0u8; token_len];
    let mut keys = vec![0u8; shape.key_size as usize * count as usize];
    let mut values = vec![0u8; shape.value_size as usize * count as usize];
    let mut n = count;
    let opts = zeroed_opts!(libbpf_sys::bpf_map_batch_opts);
    // SAFETY: `keys`/`values` have room for `count` entries of key_size/value_size bytes (the
    // kernel writes at most `*count` entries); the batch tokens are at least key_size and 4
    // bytes; `in_ptr` is null (start) or points at `in_buf`; all live across the call.
    let ret = unsafe {
        if delete {
            libbpf_sys::bpf_map_lookup_and_delete_batch(
                fd,
                in_ptr,
                out_buf.as_mut_ptr().cast(),
                keys.as_mut_ptr().cast(),
                values.as_mut_ptr().cast(),
                &mut n,
                &opts,
            )
        } else {
            libbpf_sys::bpf_map_lookup_batch(
                fd,
                in_ptr,
                out_buf.as_mut_ptr().cast(),
                keys.as_mut_ptr().cast(),
                values.as_mut_ptr().cast(),
                &mut n,
                &opts,
            )
        }
    };
    let done = match check(op, ret) {
        Ok(_) => false,
        Err(KernelError::Errno(mimic_core::errno::Errno::ENOENT)) => true,
        Err(err) => return Err(err),
    };
    let n = n.min(count);
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
    op: &'static str,
    ret: i32,
    done: u32,
    count: u32,
) -> Result<u32, (u32, KernelError)> {
    check(op, ret).map(|_| done).map_err(|err| {
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
    let mut n = count;
    let mut opts = zeroed_opts!(libbpf_sys::bpf_map_batch_opts);
    opts.elem_flags = elem_flags;
    // SAFETY: the flat buffers hold exactly `count` keys and values of the map's sizes; `n`
    // and `opts` are valid for the call.
    let ret = unsafe {
        libbpf_sys::bpf_map_update_batch(
            fd,
            flat_keys.as_ptr().cast(),
            flat_values.as_ptr().cast(),
            &mut n,
            &opts,
        )
    };
    batch_result(OP, ret, n, count)
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
    let mut n = count;
    let opts = zeroed_opts!(libbpf_sys::bpf_map_batch_opts);
    // SAFETY: `flat_keys` holds exactly `count` keys of key_size bytes; `n` and `opts` are
    // valid for the call.
    let ret =
        unsafe { libbpf_sys::bpf_map_delete_batch(fd, flat_keys.as_ptr().cast(), &mut n, &opts) };
    batch_result(OP, ret, n, count)
}

pub fn map_get_fd_by_id(id: u32) -> Result<OwnedFd, KernelError> {
    // SAFETY: a plain syscall wrapper with no pointers.
    let ret = unsafe { libbpf_sys::bpf_map_get_fd_by_id(id) };
    owned("BPF_MAP_GET_FD_BY_ID", ret)
}

/// Whether a map with this id exists (`BPF_MAP_GET_NEXT_ID` from `id - 1` lands on it). Unlike
/// get-fd-by-id it takes no reference: opening and closing an fd on a PROG_ARRAY whose last
/// uref is gone would re-arm its clearing worker, which holds the map meanwhile.
pub fn map_id_exists(id: u32) -> Result<bool, KernelError> {
    let Some(start) = id.checked_sub(1) else {
        return Ok(false);
    };
    let mut next = 0u32;
    // SAFETY: `next` is a valid u32 out-parameter for the call.
    let ret = unsafe { libbpf_sys::bpf_map_get_next_id(start, &mut next) };
    match check("BPF_MAP_GET_NEXT_ID", ret) {
        Ok(_) => Ok(next == id),
        // No id above `start` at all.
        Err(KernelError::Errno(mimic_core::errno::Errno::ENOENT)) => Ok(false),
        Err(err) => Err(err),
    }
}

/// `BPF_OBJ_GET_INFO_BY_FD` on a map.
pub fn map_info(fd: RawFd) -> Result<MapInfo, KernelError> {
    // SAFETY: bpf_map_info is plain C data; all-zero asks for nothing extra.
    let mut info: libbpf_sys::bpf_map_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libbpf_sys::bpf_map_info>() as u32;
    // SAFETY: `info` has room for `len` bytes, which is all the kernel writes.
    let ret = unsafe {
        libbpf_sys::bpf_obj_get_info_by_fd(
            fd,
            (&mut info as *mut libbpf_sys::bpf_map_info).cast(),
            &mut len,
        )
    };
    check("BPF_OBJ_GET_INFO_BY_FD", ret)?;
    Ok(MapInfo {
        id: info.id,
        map_type: info.type_,
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

/// `BPF_PROG_LOAD` of raw instructions (pseudo map loads already carry real map fds), GPL
/// licence, with the verifier log at `log_level` (0 = only on failure: libbpf then retries
/// with level 1 so a failure always comes with a log).
pub fn prog_load(
    prog_type: u32,
    insns: &[Insn],
    log_level: u32,
    prog_flags: u32,
) -> Result<(OwnedFd, String), LoadFailure> {
    const OP: &str = "BPF_PROG_LOAD";
    // `u64` slots give the 8-byte size and (more than) the 4-byte alignment of bpf_insn while
    // keeping each slot's bytes in memory order.
    let slots: Vec<u64> = insns
        .iter()
        .map(|insn| u64::from_ne_bytes(insn.to_bytes()))
        .collect();
    let license = c"GPL";
    let mut log_len = LOG_BYTES;
    loop {
        let mut log = vec![0u8; log_len];
        let mut opts = zeroed_opts!(libbpf_sys::bpf_prog_load_opts);
        opts.log_level = log_level;
        opts.log_size = log.len() as u32;
        opts.log_buf = log.as_mut_ptr().cast::<c_char>();
        opts.prog_flags = prog_flags;
        // SAFETY: `slots` holds `insns.len()` 8-byte instructions laid out as bpf_insn
        // (align 8 >= 4); `license` is NUL-terminated; the log buffer has `log_size` bytes;
        // everything lives across the call; a null name is allowed.
        let ret = unsafe {
            libbpf_sys::bpf_prog_load(
                prog_type,
                std::ptr::null(),
                license.as_ptr(),
                slots.as_ptr().cast::<libbpf_sys::bpf_insn>(),
                slots.len() as _,
                &mut opts,
            )
        };
        let true_size = opts.log_true_size as usize;
        let text = log_text(&log);
        match owned(OP, ret) {
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

fn log_text(log: &[u8]) -> String {
    let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
    String::from_utf8_lossy(&log[..end]).into_owned()
}

/// The translated (xlated) program the kernel runs, via `BPF_OBJ_GET_INFO_BY_FD`. Needs the
/// right to see kernel addresses (root); otherwise the kernel reports a length of 0.
pub fn prog_xlated(fd: RawFd) -> Result<Vec<Insn>, KernelError> {
    const OP: &str = "BPF_OBJ_GET_INFO_BY_FD";
    // SAFETY: bpf_prog_info is plain C data; all-zero asks for no arrays.
    let mut info: libbpf_sys::bpf_prog_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libbpf_sys::bpf_prog_info>() as u32;
    // SAFETY: `info` has room for `len` bytes; no array pointers are set.
    let ret = unsafe {
        libbpf_sys::bpf_obj_get_info_by_fd(
            fd,
            (&mut info as *mut libbpf_sys::bpf_prog_info).cast(),
            &mut len,
        )
    };
    check(OP, ret)?;
    let bytes = info.xlated_prog_len as usize;
    if bytes == 0 {
        return Err(KernelError::NoXlated);
    }
    let mut slots = vec![0u64; bytes.div_ceil(8)];
    // SAFETY: as above.
    let mut again: libbpf_sys::bpf_prog_info = unsafe { std::mem::zeroed() };
    again.xlated_prog_len = (slots.len() * 8) as u32;
    again.xlated_prog_insns = slots.as_mut_ptr() as u64;
    let mut len = std::mem::size_of::<libbpf_sys::bpf_prog_info>() as u32;
    // SAFETY: `xlated_prog_insns` points at `xlated_prog_len` writable bytes that outlive the
    // call; the kernel copies at most that many.
    let ret = unsafe {
        libbpf_sys::bpf_obj_get_info_by_fd(
            fd,
            (&mut again as *mut libbpf_sys::bpf_prog_info).cast(),
            &mut len,
        )
    };
    check(OP, ret)?;
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
    /// The packet after the run (for packet program types), `data_in.len()` bytes at most.
    pub data_out: Vec<u8>,
    /// The context after the run: `BPF_PROG_TYPE_SYSCALL` programs write it back in place.
    pub ctx_after: Vec<u8>,
}

/// `BPF_PROG_TEST_RUN` with an input packet and/or context (empty = not passed).
pub fn prog_test_run(
    fd: RawFd,
    data_in: &[u8],
    ctx_in: &[u8],
    repeat: u32,
) -> Result<TestRun, KernelError> {
    const OP: &str = "BPF_PROG_TEST_RUN";
    // Owned, writable copies: some program types write results back through the *input*
    // pointers (`BPF_PROG_TYPE_SYSCALL` copies its context back to `ctx_in`), which must
    // never land in memory the caller only lent us read-only.
    let mut data = data_in.to_vec();
    let mut ctx = ctx_in.to_vec();
    let mut data_out = vec![0u8; data_in.len()];
    let mut opts = zeroed_opts!(libbpf_sys::bpf_test_run_opts);
    if !data.is_empty() {
        opts.data_in = data.as_mut_ptr().cast_const().cast();
        opts.data_size_in = data_in.len() as u32;
        opts.data_out = data_out.as_mut_ptr().cast();
        opts.data_size_out = data_out.len() as u32;
    }
    if !ctx.is_empty() {
        opts.ctx_in = ctx.as_mut_ptr().cast_const().cast();
        opts.ctx_size_in = ctx.len() as u32;
    }
    opts.repeat = i32::try_from(repeat).unwrap_or(i32::MAX);
    // SAFETY: the in-buffers are owned, writable and valid for their sizes (the kernel may
    // write the context back into `ctx`); `data_out` has room for `data_size_out` bytes (the
    // kernel copies at most that and reports the full size); all live across the call.
    let ret = unsafe { libbpf_sys::bpf_prog_test_run_opts(fd, &mut opts) };
    check(OP, ret)?;
    data_out.truncate((opts.data_size_out as usize).min(data_in.len()));
    Ok(TestRun {
        retval: opts.retval,
        duration_ns: opts.duration,
        data_out,
        ctx_after: ctx,
    })
}

/// The raw number of a descriptor this module handed out, for pseudo map loads and
/// `inner_map_fd`.
pub fn raw(fd: &OwnedFd) -> RawFd {
    fd.as_raw_fd()
}
