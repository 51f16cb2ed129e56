//! The `bpf(2)` ABI as far as the kernel oracle uses it: command numbers and the `#[repr(C)]`
//! layouts of the attribute structs (members of the kernel's `union bpf_attr`) and of the info
//! structs the kernel fills in.
//!
//! Why hand-written and not generated (libbpf-sys, aya-obj's bindings): the oracle needs nine
//! commands and two info structs, a few hundred bytes of ABI that never changes once released
//! (the kernel only appends members). Writing them here keeps the build free of a C library
//! and of bindgen, and each layout is pinned twice: by the offsets of `linux/bpf.h` (the unit
//! tests below) and by the live kernel, which reports the size of its own info structs and must
//! read back what the oracle wrote (the tests of `ffi`).
//!
//! Invariants:
//! - every struct is plain integers with its padding spelled out as named fields, so every
//!   byte handed to the kernel is initialised (the kernel refuses non-zero bytes past the
//!   members a command knows, and Rust leaves implicit padding undefined); zerocopy's
//!   `IntoBytes` derive refuses to compile a struct with implicit padding;
//! - each struct stops at the last member the oracle uses: the kernel treats a shorter
//!   attribute as zero-filled up to its own size, which is how old binaries run on new kernels;
//! - pointers travel as `u64` (`__aligned_u64` in the header), filled by `ffi` from buffers it
//!   keeps alive across the call.
#![forbid(unsafe_code)]

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `enum bpf_cmd`: the commands the oracle issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Cmd {
    MapCreate = 0,
    MapLookupElem = 1,
    MapUpdateElem = 2,
    MapDeleteElem = 3,
    MapGetNextKey = 4,
    ProgLoad = 5,
    ProgTestRun = 10,
    MapGetNextId = 12,
    MapGetFdById = 14,
    ObjGetInfoByFd = 15,
    MapLookupAndDeleteElem = 21,
    MapFreeze = 22,
    MapLookupBatch = 24,
    MapLookupAndDeleteBatch = 25,
    MapUpdateBatch = 26,
    MapDeleteBatch = 27,
}

impl Cmd {
    /// The name the kernel's documentation uses, for error messages.
    pub fn name(self) -> &'static str {
        match self {
            Cmd::MapCreate => "BPF_MAP_CREATE",
            Cmd::MapLookupElem => "BPF_MAP_LOOKUP_ELEM",
            Cmd::MapUpdateElem => "BPF_MAP_UPDATE_ELEM",
            Cmd::MapDeleteElem => "BPF_MAP_DELETE_ELEM",
            Cmd::MapGetNextKey => "BPF_MAP_GET_NEXT_KEY",
            Cmd::ProgLoad => "BPF_PROG_LOAD",
            Cmd::ProgTestRun => "BPF_PROG_TEST_RUN",
            Cmd::MapGetNextId => "BPF_MAP_GET_NEXT_ID",
            Cmd::MapGetFdById => "BPF_MAP_GET_FD_BY_ID",
            Cmd::ObjGetInfoByFd => "BPF_OBJ_GET_INFO_BY_FD",
            Cmd::MapLookupAndDeleteElem => "BPF_MAP_LOOKUP_AND_DELETE_ELEM",
            Cmd::MapFreeze => "BPF_MAP_FREEZE",
            Cmd::MapLookupBatch => "BPF_MAP_LOOKUP_BATCH",
            Cmd::MapLookupAndDeleteBatch => "BPF_MAP_LOOKUP_AND_DELETE_BATCH",
            Cmd::MapUpdateBatch => "BPF_MAP_UPDATE_BATCH",
            Cmd::MapDeleteBatch => "BPF_MAP_DELETE_BATCH",
        }
    }
}

/// The length of `map_name` / `prog_name` (`BPF_OBJ_NAME_LEN`).
pub const OBJ_NAME_LEN: usize = 16;

/// A struct the syscall layer may hand to the kernel (an attribute, or an info struct to fill):
/// plain data with no padding, which zerocopy's derives prove at compile time.
pub trait Plain: IntoBytes + FromBytes + Immutable + KnownLayout {}
impl<T: IntoBytes + FromBytes + Immutable + KnownLayout> Plain for T {}

/// `BPF_MAP_CREATE`, up to `map_extra`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, IntoBytes, FromBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct MapCreateAttr {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    pub inner_map_fd: u32,
    pub numa_node: u32,
    pub map_name: [u8; OBJ_NAME_LEN],
    pub map_ifindex: u32,
    pub btf_fd: u32,
    pub btf_key_type_id: u32,
    pub btf_value_type_id: u32,
    pub btf_vmlinux_value_type_id: u32,
    pub map_extra: u64,
}

/// `BPF_MAP_{LOOKUP,UPDATE,DELETE}_ELEM`, `BPF_MAP_LOOKUP_AND_DELETE_ELEM` and
/// `BPF_MAP_GET_NEXT_KEY` (where `value` is `next_key`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, IntoBytes, FromBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct MapElemAttr {
    pub map_fd: u32,
    pub _pad: u32,
    pub key: u64,
    pub value: u64,
    pub flags: u64,
}

/// The batch commands (`BPF_MAP_*_BATCH`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, IntoBytes, FromBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct MapBatchAttr {
    pub in_batch: u64,
    pub out_batch: u64,
    pub keys: u64,
    pub values: u64,
    pub count: u32,
    pub map_fd: u32,
    pub elem_flags: u64,
    pub flags: u64,
}

/// `BPF_PROG_LOAD`, up to `log_true_size` (which the kernel writes back only when the
/// attribute is long enough to hold it).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, IntoBytes, FromBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct ProgLoadAttr {
    pub prog_type: u32,
    pub insn_cnt: u32,
    pub insns: u64,
    pub license: u64,
    pub log_level: u32,
    pub log_size: u32,
    pub log_buf: u64,
    pub kern_version: u32,
    pub prog_flags: u32,
    pub prog_name: [u8; OBJ_NAME_LEN],
    pub prog_ifindex: u32,
    pub expected_attach_type: u32,
    pub prog_btf_fd: u32,
    pub func_info_rec_size: u32,
    pub func_info: u64,
    pub func_info_cnt: u32,
    pub line_info_rec_size: u32,
    pub line_info: u64,
    pub line_info_cnt: u32,
    pub attach_btf_id: u32,
    pub attach_prog_fd: u32,
    pub core_relo_cnt: u32,
    pub fd_array: u64,
    pub core_relos: u64,
    pub core_relo_rec_size: u32,
    pub log_true_size: u32,
}

/// `BPF_PROG_TEST_RUN`, up to `batch_size`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, IntoBytes, FromBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct TestRunAttr {
    pub prog_fd: u32,
    pub retval: u32,
    pub data_size_in: u32,
    pub data_size_out: u32,
    pub data_in: u64,
    pub data_out: u64,
    pub repeat: u32,
    pub duration: u32,
    pub ctx_size_in: u32,
    pub ctx_size_out: u32,
    pub ctx_in: u64,
    pub ctx_out: u64,
    pub flags: u32,
    pub cpu: u32,
    pub batch_size: u32,
    pub _pad: u32,
}

/// `BPF_MAP_FREEZE`: the map's fd alone.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, IntoBytes, FromBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct FdAttr {
    pub map_fd: u32,
}

/// `BPF_MAP_GET_NEXT_ID` (`start_id` in, `next_id` out) and `BPF_MAP_GET_FD_BY_ID` (`id`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, IntoBytes, FromBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IdAttr {
    pub id: u32,
    pub next_id: u32,
    pub open_flags: u32,
}

/// `BPF_OBJ_GET_INFO_BY_FD`: `info_len` in (the buffer's size) and out (what was written).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, IntoBytes, FromBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct InfoAttr {
    pub bpf_fd: u32,
    pub info_len: u32,
    pub info: u64,
}

/// `struct bpf_map_info`, up to `map_extra`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, IntoBytes, FromBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct MapInfoRaw {
    pub map_type: u32,
    pub id: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    pub name: [u8; OBJ_NAME_LEN],
    pub ifindex: u32,
    pub btf_vmlinux_value_type_id: u32,
    pub netns_dev: u64,
    pub netns_ino: u64,
    pub btf_id: u32,
    pub btf_key_type_id: u32,
    pub btf_value_type_id: u32,
    pub btf_vmlinux_id: u32,
    pub map_extra: u64,
}

/// `struct bpf_prog_info`, up to `attach_btf_id`. Every array pointer stays 0 (with its count)
/// unless the caller asks for that array, or the kernel would copy to address 0.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, IntoBytes, FromBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct ProgInfoRaw {
    pub prog_type: u32,
    pub id: u32,
    pub tag: [u8; 8],
    pub jited_prog_len: u32,
    pub xlated_prog_len: u32,
    pub jited_prog_insns: u64,
    pub xlated_prog_insns: u64,
    pub load_time: u64,
    pub created_by_uid: u32,
    pub nr_map_ids: u32,
    pub map_ids: u64,
    pub name: [u8; OBJ_NAME_LEN],
    pub ifindex: u32,
    /// `gpl_compatible:1` and 31 reserved bits.
    pub gpl_compatible: u32,
    pub netns_dev: u64,
    pub netns_ino: u64,
    pub nr_jited_ksyms: u32,
    pub nr_jited_func_lens: u32,
    pub jited_ksyms: u64,
    pub jited_func_lens: u64,
    pub btf_id: u32,
    pub func_info_rec_size: u32,
    pub func_info: u64,
    pub nr_func_info: u32,
    pub nr_line_info: u32,
    pub line_info: u64,
    pub jited_line_info: u64,
    pub nr_jited_line_info: u32,
    pub line_info_rec_size: u32,
    pub jited_line_info_rec_size: u32,
    pub nr_prog_tags: u32,
    pub prog_tags: u64,
    pub run_time_ns: u64,
    pub run_cnt: u64,
    pub recursion_misses: u64,
    pub verified_insns: u32,
    pub attach_btf_obj_id: u32,
    pub attach_btf_id: u32,
    pub _pad: u32,
}

#[cfg(test)]
mod tests {
    //! The offsets and sizes of `include/uapi/linux/bpf.h`. A layout that drifts from them
    //! would send the kernel a field at the wrong place, which it may accept silently.
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn map_create_matches_the_uapi_offsets() {
        assert_eq!(offset_of!(MapCreateAttr, inner_map_fd), 20);
        assert_eq!(offset_of!(MapCreateAttr, map_name), 28);
        assert_eq!(offset_of!(MapCreateAttr, map_ifindex), 44);
        assert_eq!(offset_of!(MapCreateAttr, btf_vmlinux_value_type_id), 60);
        assert_eq!(offset_of!(MapCreateAttr, map_extra), 64);
        assert_eq!(size_of::<MapCreateAttr>(), 72);
    }

    #[test]
    fn elem_and_batch_attrs_match_the_uapi_offsets() {
        assert_eq!(offset_of!(MapElemAttr, key), 8);
        assert_eq!(offset_of!(MapElemAttr, value), 16);
        assert_eq!(offset_of!(MapElemAttr, flags), 24);
        assert_eq!(size_of::<MapElemAttr>(), 32);
        assert_eq!(offset_of!(MapBatchAttr, count), 32);
        assert_eq!(offset_of!(MapBatchAttr, map_fd), 36);
        assert_eq!(offset_of!(MapBatchAttr, elem_flags), 40);
        assert_eq!(size_of::<MapBatchAttr>(), 56);
    }

    #[test]
    fn prog_load_matches_the_uapi_offsets() {
        assert_eq!(offset_of!(ProgLoadAttr, log_buf), 32);
        assert_eq!(offset_of!(ProgLoadAttr, prog_flags), 44);
        assert_eq!(offset_of!(ProgLoadAttr, prog_name), 48);
        assert_eq!(offset_of!(ProgLoadAttr, expected_attach_type), 68);
        assert_eq!(offset_of!(ProgLoadAttr, func_info), 80);
        assert_eq!(offset_of!(ProgLoadAttr, line_info), 96);
        assert_eq!(offset_of!(ProgLoadAttr, attach_prog_fd), 112);
        assert_eq!(offset_of!(ProgLoadAttr, fd_array), 120);
        assert_eq!(offset_of!(ProgLoadAttr, log_true_size), 140);
        assert_eq!(size_of::<ProgLoadAttr>(), 144);
    }

    #[test]
    fn test_run_id_and_info_attrs_match_the_uapi_offsets() {
        assert_eq!(offset_of!(TestRunAttr, data_in), 16);
        assert_eq!(offset_of!(TestRunAttr, repeat), 32);
        assert_eq!(offset_of!(TestRunAttr, ctx_in), 48);
        assert_eq!(offset_of!(TestRunAttr, batch_size), 72);
        assert_eq!(size_of::<TestRunAttr>(), 80);
        assert_eq!(size_of::<IdAttr>(), 12);
        assert_eq!(offset_of!(InfoAttr, info), 8);
        assert_eq!(size_of::<InfoAttr>(), 16);
    }

    #[test]
    fn info_structs_match_the_uapi_offsets() {
        assert_eq!(offset_of!(MapInfoRaw, name), 24);
        assert_eq!(offset_of!(MapInfoRaw, netns_dev), 48);
        assert_eq!(offset_of!(MapInfoRaw, map_extra), 80);
        assert_eq!(size_of::<MapInfoRaw>(), 88);
        assert_eq!(offset_of!(ProgInfoRaw, xlated_prog_len), 20);
        assert_eq!(offset_of!(ProgInfoRaw, xlated_prog_insns), 32);
        assert_eq!(offset_of!(ProgInfoRaw, name), 64);
        assert_eq!(offset_of!(ProgInfoRaw, netns_dev), 88);
        assert_eq!(offset_of!(ProgInfoRaw, btf_id), 128);
        assert_eq!(offset_of!(ProgInfoRaw, prog_tags), 184);
        assert_eq!(offset_of!(ProgInfoRaw, verified_insns), 216);
        assert_eq!(size_of::<ProgInfoRaw>(), 232);
    }
}
