//! The core's map world as the verifier's [`MapResolver`]: a program's fds resolve to the maps
//! of [`World`], with the shape, the array constants, the encoded map pointer the fixed-up
//! `lddw` loads, and for outer maps the meta the world built (so the meta mutants of the world
//! reach the fixups unchanged). Also the world's side of the soundness oracle:
//! [`classify_map_ptr`] tells a map pointer from a pointer into a map's values.

use super::oracle::Concrete;
use super::{MapDesc, MapResolver};
use crate::maps::meta::MapMeta;
use crate::maps::{map_ptr, MapDef};
use crate::ptr::{Ptr, RegionKind};
use crate::sync::Platform;
use crate::world::World;

fn elem_size(def: &MapDef) -> u32 {
    crate::maps::kind::kind(def.map_type).elem_size(def.value_size)
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
        frozen_value: None,
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
            frozen_value: self.frozen_value(&map),
        })
    }
}

impl<P: Platform> World<P> {
    /// The value the verifier may read as constants: that of a frozen single-entry array
    /// programs may only read (the kernel's `bpf_map_is_rdonly` with an array's
    /// `map_direct_value_addr`, which has one element).
    fn frozen_value(&self, map: &crate::maps::Map<P>) -> Option<Vec<u8>> {
        let def = map.def;
        let rdonly = def.map_type == crate::uapi::MapType::Array
            && def.max_entries == 1
            && def.map_flags & crate::uapi::BPF_F_RDONLY_PROG != 0
            && map.is_frozen();
        rdonly
            .then(|| self.sys_lookup_value(map, &0u32.to_ne_bytes()).ok())
            .flatten()
    }
}

/// What a map-region pointer is in `world`, for the soundness oracle
/// ([`super::oracle::OracleObserver::classify_map`]): offset 0 of a live map is the map itself
/// (`CONST_PTR_TO_MAP`, including an inner map read out of an outer map's slot) with its
/// shape; an offset in value memory is a value pointer (`PTR_TO_MAP_VALUE`) measured from the
/// start of the value it lands in, so a pointer to the first byte of a value is never taken for
/// the map; an offset inside the header is a value pointer before the first value (negative).
/// `None` for anything else (not a map region, a freed map): the oracle's fallback decides.
///
/// A value pointer moved back by exactly the header's size would alias the map pointer; the
/// verifier only allows that in privileged programs and the oracle then asserts nothing about
/// which element the pointer is in anyway.
pub fn classify_map_ptr<P: Platform>(world: &World<P>, ptr: Ptr) -> Option<Concrete> {
    if ptr.kind != RegionKind::Map {
        return None;
    }
    let handle = world.resolve_ptr(ptr).ok()?;
    let map = world.map(handle).ok()?;
    let def = map.def;
    let shape = Some((def.map_type as u32, def.key_size, def.value_size));
    if ptr.offset == 0 {
        return Some(Concrete::MapPtr { shape });
    }
    let off = if ptr.offset < map.header_len() {
        Some(i64::from(ptr.offset) - i64::from(map.header_len()))
    } else {
        map.ops
            .value_base(ptr.offset)
            .map(|base| i64::from(ptr.offset - base))
    };
    Some(Concrete::MapValue { off, shape })
}

/// A program loaded into the world: the verifier's result and the fixed-up instructions the
/// executor runs, and the world's program object ([`crate::progs`]) behind `fd`, which holds
/// the references on its `used_maps` (outer maps, never the inner maps reached through them)
/// and is what a `PROG_ARRAY` stores.
#[derive(Debug)]
pub struct LoadedProg {
    pub verified: super::Verified,
    pub fixed: crate::bpf::fixup::Fixed,
    pub maps: Vec<crate::arena::Handle>,
    pub sleepable: bool,
    /// The type it was verified as (its test run's context limit).
    pub prog_type: super::ProgType,
    /// The program's fd, id and object in the world.
    pub installed: crate::progs::Installed,
}

/// Why a load failed.
#[derive(Debug)]
pub enum LoadError {
    /// The verifier refused (the log is in the rejection).
    Rejected(super::Rejection),
    Fixup(crate::bpf::fixup::FixupError),
    /// Taking the map references failed (a map freed under the loader: a model fault).
    World(crate::fault::Error),
    /// A `PROG_ARRAY` the program uses belongs to programs of another type (the kernel's
    /// `bpf_check_tail_call` after verification: `-EINVAL`, nothing in the log).
    Incompatible {
        map_id: crate::uapi::MapId,
    },
}

impl LoadError {
    /// The errno `BPF_PROG_LOAD` returns.
    pub fn errno(&self) -> crate::errno::Errno {
        match self {
            LoadError::Rejected(r) => {
                crate::errno::Errno::from_value(r.errno).unwrap_or(crate::errno::Errno::EINVAL)
            }
            LoadError::Incompatible { .. } => crate::errno::Errno::EINVAL,
            LoadError::Fixup(_) | LoadError::World(_) => crate::errno::Errno::EINVAL,
        }
    }
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Rejected(r) => write!(f, "verifier refused: {r}"),
            LoadError::Fixup(e) => write!(f, "fixup failed: {e}"),
            LoadError::World(e) => write!(f, "map references: {e}"),
            LoadError::Incompatible { map_id } => write!(
                f,
                "map id {map_id}: a PROG_ARRAY owned by programs of another type (EINVAL)"
            ),
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
    // The world's release may lack verifier features too.
    let lacks = opts.lacks.union(world.config().lacks);
    let opts = super::VerifyOpts {
        mutants,
        lacks,
        ..opts
    };
    let verified = super::verify(insns, world, opts).map_err(LoadError::Rejected)?;
    let fixed = crate::bpf::fixup::fixup(&verified, mutants).map_err(LoadError::Fixup)?;
    let maps = verified
        .used_maps
        .iter()
        .map(|&i| world.resolve_map_ptr(verified.maps[i as usize].ptr))
        .collect::<Result<Vec<_>, _>>()
        .map_err(LoadError::World)?;
    let prog_type = opts.prog_type.uapi();
    for &handle in &maps {
        let map = world.map(handle).map_err(LoadError::World)?;
        if !map.ops.owner_compatible(prog_type, opts.sleepable) {
            return Err(LoadError::Incompatible { map_id: map.id() });
        }
    }
    world
        .prog_hold_maps(&maps, opts.sleepable)
        .map_err(LoadError::World)?;
    let installed = world
        .prog_install(prog_type, opts.sleepable, fixed.insns.clone(), maps.clone())
        .or_else(|e| {
            // No program took the references: give them back.
            world.prog_release_maps(&maps, opts.sleepable)?;
            Err(e)
        })
        .map_err(LoadError::World)?;
    Ok(LoadedProg {
        verified,
        fixed,
        maps,
        sleepable: opts.sleepable,
        prog_type: opts.prog_type,
        installed,
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
    /// `BPF_PROG_TEST_RUN` of a `BPF_PROG_TYPE_SYSCALL` or raw tracepoint program (the test
    /// runs mimic models; generic programs run as syscall ones): `ctx` must reach the program's
    /// `max_ctx_offset` and stay within the type's bound (`U16_MAX` bytes, 12 u64 arguments),
    /// else `EINVAL` before anything runs; a tracepoint program has no test run (`ENOTSUPP`). The program runs on a
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
        match self.prog_type {
            super::ProgType::Tracepoint => {
                return Err(TestRunError::Errno(crate::errno::Errno::ENOTSUPP))
            }
            // A packet program's run needs a packet ([`LoadedProg::test_run_packet`]).
            super::ProgType::Xdp | super::ProgType::SchedCls => {
                return Err(TestRunError::Errno(crate::errno::Errno::EINVAL))
            }
            _ => {}
        }
        if len < u64::from(self.verified.max_ctx_offset)
            || len > u64::from(self.prog_type.max_test_ctx())
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

    /// `BPF_PROG_TEST_RUN` of a packet program on the frame `data_in`, returning `r0` and the
    /// packet as it is afterwards (`data..data_end`). An XDP program's packet goes after
    /// [`crate::bpf::xdp::HEADROOM`] bytes of zeroed headroom and its context says the loopback
    /// device's queue 0; a tc program's `sk_buff` ([`crate::bpf::skb::SkbCtx`]) is the loopback
    /// device's, with the frame classified as `eth_type_trans` does. A frame shorter than an
    /// Ethernet header, or longer than a page leaves after the headroom and the kernel's
    /// tailroom, is `EINVAL`, and so is a tc frame whose IPv4 or IPv6 header is cut short.
    pub fn test_run_packet<P: Platform>(
        &self,
        world: &World<P>,
        data_in: &[u8],
    ) -> Result<(u64, Vec<u8>), TestRunError> {
        use crate::bpf::exec::{Config, NoObserver, Program, Vm};
        use crate::bpf::skb;
        use crate::bpf::xdp::{self, RxInfo, ETH_HLEN};
        let tc = match self.prog_type {
            super::ProgType::Xdp => false,
            super::ProgType::SchedCls => true,
            _ => return Err(TestRunError::Errno(crate::errno::Errno::EINVAL)),
        };
        let max = if tc { skb::MAX_PACKET } else { xdp::MAX_PACKET };
        if data_in.len() < ETH_HLEN || data_in.len() > max {
            return Err(TestRunError::Errno(crate::errno::Errno::EINVAL));
        }
        if tc && !skb::network_header_whole(data_in) {
            return Err(TestRunError::Errno(crate::errno::Errno::EINVAL));
        }
        let program = Program::new(&self.fixed.insns)
            .map_err(|e| TestRunError::Setup(format!("fixed-up program: {e}")))?;
        let (mut packet, mut ctx) = skb::on_frame(tc, data_in, RxInfo::default());
        let section = |e: crate::fault::Error| TestRunError::Setup(format!("read side: {e}"));
        world
            .rcu_read_lock(crate::rcu::Flavor::Rcu)
            .map_err(section)?;
        let run = Vm::new(Config {
            tc,
            ..Config::default()
        })
        .run_packet(
            &program,
            &mut ctx,
            &mut packet,
            &mut crate::bpf::world_env::WorldEnv::new(world),
            &mut NoObserver,
        );
        world
            .rcu_read_unlock(crate::rcu::Flavor::Rcu)
            .map_err(section)?;
        let r0 = run.map_err(TestRunError::Exec)?;
        Ok((r0, packet.data().to_vec()))
    }

    /// Program unload: closes the program's fd. Once no `PROG_ARRAY` holds it either, it is
    /// freed after a grace period, which drops the references `prog_load` took on its maps.
    pub fn unload<P: Platform>(self, world: &World<P>) -> crate::fault::Result<()> {
        match world.prog_close(self.installed.fd) {
            Some(closed) => closed?,
            None => return Err(crate::errno::Errno::EBADF.into()),
        }
        world.poll()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::verifier::oracle::concrete_of;
    use crate::maps::ARRAY_VALUE_OFFSET;
    use crate::mutants::Mutants;
    use crate::sync::Std;
    use crate::sys::Process;
    use crate::uapi::MapType;
    use crate::uapi::{BpfSys, MapAttr, BPF_ANY};
    use crate::world::WorldConfig;

    /// An array of 3 × 12-byte values (elem_size 16), an array-of-maps and a hash-of-maps
    /// each holding a 2 × 8-byte inner array at key 0, and a hash of 8-byte values.
    struct Maps {
        sys: Process<Std>,
        array: crate::arena::Handle,
        outer_array: crate::arena::Handle,
        outer_hash: crate::arena::Handle,
        inner: crate::arena::Handle,
        hash: crate::arena::Handle,
    }

    fn maps() -> Maps {
        let mut sys = Process::<Std>::create(Mutants::NONE, WorldConfig::default());
        let array = sys
            .map_create(&MapAttr::new(MapType::Array, 4, 12, 3))
            .expect("array");
        let inner = sys
            .map_create(&MapAttr::new(MapType::Array, 4, 8, 2))
            .expect("inner");
        let outer_array = sys
            .map_create(&MapAttr::new(MapType::ArrayOfMaps, 4, 4, 2).inner(inner))
            .expect("array of maps");
        let outer_hash = sys
            .map_create(&MapAttr::new(MapType::HashOfMaps, 4, 4, 2).inner(inner))
            .expect("hash of maps");
        let hash = sys
            .map_create(&MapAttr::new(MapType::Hash, 4, 8, 4))
            .expect("hash");
        let zero = 0u32.to_ne_bytes();
        for outer in [outer_array, outer_hash] {
            sys.map_update_elem(outer, &zero, &inner.to_ne_bytes(), BPF_ANY)
                .expect("inner stored");
        }
        sys.map_update_elem(hash, &zero, &[7; 8], BPF_ANY)
            .expect("hash element");
        let w = sys.world().clone();
        let h = |fd| w.map_handle(fd).expect("handle");
        Maps {
            array: h(array),
            outer_array: h(outer_array),
            outer_hash: h(outer_hash),
            inner: h(inner),
            hash: h(hash),
            sys,
        }
    }

    fn classify(m: &Maps, value: u64) -> Concrete {
        let world = m.sys.world();
        concrete_of(value, &|p| classify_map_ptr(world, p))
    }

    const ARRAY_SHAPE: Option<(u32, u32, u32)> = Some((MapType::Array as u32, 4, 12));
    const INNER_SHAPE: Option<(u32, u32, u32)> = Some((MapType::Array as u32, 4, 8));

    #[test]
    fn value_pointer_at_offset_zero_of_its_value_is_not_a_map_pointer() {
        let m = maps();
        let first = Ptr::map(m.array, ARRAY_VALUE_OFFSET).encode();
        assert_eq!(
            classify(&m, first),
            Concrete::MapValue {
                off: Some(0),
                shape: ARRAY_SHAPE
            },
            "&array[0] + 0"
        );
        // Element 2 (elem_size 16), byte 4; and the padding after a 12-byte value.
        let third = Ptr::map(m.array, ARRAY_VALUE_OFFSET + 2 * 16 + 4).encode();
        let padding = Ptr::map(m.array, ARRAY_VALUE_OFFSET + 12).encode();
        assert_eq!(
            (classify(&m, third), classify(&m, padding)),
            (
                Concrete::MapValue {
                    off: Some(4),
                    shape: ARRAY_SHAPE
                },
                Concrete::MapValue {
                    off: Some(12),
                    shape: ARRAY_SHAPE
                }
            ),
            "offsets are measured from the value the pointer lands in"
        );
        // A pointer into the header (a map pointer moved by arithmetic) is not the map.
        let header = Ptr::map(m.array, 24).encode();
        assert_eq!(
            classify(&m, header),
            Concrete::MapValue {
                off: Some(24 - i64::from(ARRAY_VALUE_OFFSET)),
                shape: ARRAY_SHAPE
            }
        );
    }

    #[test]
    fn map_pointer_carries_its_shape() {
        let m = maps();
        assert_eq!(
            classify(&m, Ptr::map(m.array, 0).encode()),
            Concrete::MapPtr { shape: ARRAY_SHAPE }
        );
    }

    #[test]
    fn inner_map_pointer_read_from_an_outer_slot_is_the_inner_map() {
        let m = maps();
        let world = m.sys.world();
        for outer in [m.outer_array, m.outer_hash] {
            let slot = world
                .prog_lookup(outer, &0u32.to_ne_bytes())
                .expect("lookup")
                .expect("inner stored at key 0");
            assert!(
                Ptr::decode(slot).is_some_and(|p| p.is_map(m.inner)),
                "the slot holds the inner map's pointer"
            );
            assert_eq!(
                classify(&m, slot),
                Concrete::MapPtr { shape: INNER_SHAPE },
                "outer {outer}: the slot's map pointer, not a value of the outer map"
            );
        }
    }

    #[test]
    fn hash_value_pointer_is_measured_from_its_value() {
        let m = maps();
        let world = m.sys.world();
        let value = world
            .prog_lookup(m.hash, &0u32.to_ne_bytes())
            .expect("lookup")
            .expect("present");
        let shape = Some((MapType::Hash as u32, 4, 8));
        assert_eq!(
            (classify(&m, value), classify(&m, value + 5)),
            (
                Concrete::MapValue {
                    off: Some(0),
                    shape
                },
                Concrete::MapValue {
                    off: Some(5),
                    shape
                }
            )
        );
    }

    #[test]
    fn null_scalars_and_other_regions_are_not_map_pointers() {
        let m = maps();
        assert_eq!(classify(&m, 0), Concrete::Null);
        assert_eq!(classify(&m, 42), Concrete::Scalar(42));
        assert_eq!(classify_map_ptr(m.sys.world(), Ptr::ctx(0)), None);
        assert_eq!(classify_map_ptr(m.sys.world(), Ptr::stack(0, 8)), None);
    }
}
