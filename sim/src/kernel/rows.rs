//! The errno rows of semantics.md (§2 creation, §3 storing, §4 reading and deleting) as
//! self-contained scenarios over any [`BpfSys`]: the real kernel ([`super::KernelSys`]), the
//! core's world or the sequential reference model all run the same table with
//! [`run_rows`], so "the model behaves like the kernel" is one call per backend.
//!
//! Each row builds its own maps, performs one operation under test and reports what it
//! returned; the row's expectation is what semantics.md says. A row never depends on another
//! and closes every fd it opened (a failing close is reported as a failure of the row).
//! Values of outer maps are fds on the way in and ids on the way out (4 bytes, native endian).
#![forbid(unsafe_code)]

use mimic_core::errno::Errno;
use mimic_core::fault::Error;
use mimic_core::uapi::{
    BpfSys, Fd, MapAttr, MapType, BPF_ANY, BPF_EXIST, BPF_F_INNER_MAP, BPF_F_MMAPABLE,
    BPF_F_NO_COMMON_LRU, BPF_F_NO_PREALLOC, BPF_F_RDONLY, BPF_F_RDONLY_PROG, BPF_F_WRONLY_PROG,
    BPF_F_ZERO_SEED, BPF_NOEXIST,
};
use std::fmt;

/// An fd no backend has opened (the kernel backend passes unknown fds as one that is never open): `EBADF`.
pub const NEVER_OPENED_FD: Fd = 999_999;
/// stderr: open, but not a map: `EINVAL`.
pub const NOT_A_MAP_FD: Fd = 2;
/// `BPF_F_LOCK`, the first update flag above `BPF_EXIST`.
const BPF_F_LOCK: u64 = 4;
/// u32 keys and values everywhere, as in the selftests.
const WORD: u32 = 4;

/// What semantics.md says the operation under test returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Ok,
    Err(Errno),
}

impl Expect {
    pub fn matches(self, observed: &Result<(), Error>) -> bool {
        match (self, observed) {
            (Expect::Ok, Ok(())) => true,
            (Expect::Err(want), Err(err)) => err.errno() == Some(want),
            _ => false,
        }
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expect::Ok => write!(f, "ok"),
            Expect::Err(errno) => write!(f, "{errno}"),
        }
    }
}

/// One row: a named scenario, the rule it pins and what the rule says it returns.
pub struct Row {
    pub name: &'static str,
    /// Where semantics.md states it.
    pub rule: &'static str,
    pub expect: Expect,
    /// Builds the scenario and returns the result of the operation under test, or why the
    /// scenario itself could not be built or checked.
    pub run: fn(&mut Scratch<'_>) -> Result<Result<(), Error>, String>,
}

/// What one row did on one backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowOutcome {
    pub name: &'static str,
    pub rule: &'static str,
    pub expect: Expect,
    /// The operation's result, or the setup/check failure (with the step that failed).
    pub observed: Result<Result<(), Error>, String>,
    /// Closing the row's fds failed (a leak or double close in the backend).
    pub close_failure: Option<String>,
}

impl RowOutcome {
    pub fn agrees(&self) -> bool {
        self.close_failure.is_none()
            && self
                .observed
                .as_ref()
                .is_ok_and(|observed| self.expect.matches(observed))
    }

    /// `ok`, `-EINVAL (22)`, a fault's text, or the setup failure.
    pub fn observed_text(&self) -> String {
        match &self.observed {
            Ok(Ok(())) => "ok".to_string(),
            Ok(Err(err)) => err.to_string(),
            Err(setup) => format!("scenario failed: {setup}"),
        }
    }
}

impl fmt::Display for RowOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): want {}, got {}",
            self.name,
            self.rule,
            self.expect,
            self.observed_text()
        )?;
        if let Some(close) = &self.close_failure {
            write!(f, "; closing failed: {close}")?;
        }
        Ok(())
    }
}

/// A row's view of the backend: creates maps, remembers every fd to close at the end.
pub struct Scratch<'a> {
    sys: &'a mut dyn BpfSys,
    fds: Vec<Fd>,
}

fn key(index: u32) -> Vec<u8> {
    index.to_ne_bytes().to_vec()
}

fn fd_value(fd: Fd) -> Vec<u8> {
    fd.to_ne_bytes().to_vec()
}

fn word(bytes: &[u8], what: &str) -> Result<u32, String> {
    let array: [u8; 4] = bytes
        .try_into()
        .map_err(|_| format!("{what} is {} bytes, not 4", bytes.len()))?;
    Ok(u32::from_ne_bytes(array))
}

impl<'a> Scratch<'a> {
    pub fn new(sys: &'a mut dyn BpfSys) -> Self {
        Scratch {
            sys,
            fds: Vec::new(),
        }
    }

    /// The backend, for steps the helpers do not cover.
    pub fn sys(&mut self) -> &mut dyn BpfSys {
        self.sys
    }

    /// A setup step: the map must be created.
    pub fn create(&mut self, attr: MapAttr, what: &str) -> Result<Fd, String> {
        let fd = self
            .sys
            .map_create(&attr)
            .map_err(|err| format!("creating {what} ({attr:?}): {err}"))?;
        self.fds.push(fd);
        Ok(fd)
    }

    /// The operation under test: a creation that may fail.
    pub fn try_create(&mut self, attr: MapAttr) -> Result<(), Error> {
        let fd = self.sys.map_create(&attr)?;
        self.fds.push(fd);
        Ok(())
    }

    /// A setup step: store `inner` at `index` of `outer`.
    pub fn store(&mut self, outer: Fd, index: u32, inner: Fd, flags: u64) -> Result<(), String> {
        self.sys
            .map_update_elem(outer, &key(index), &fd_value(inner), flags)
            .map_err(|err| format!("storing fd {inner} at {index} of fd {outer}: {err}"))
    }

    /// The operation under test: store an fd in an outer map.
    pub fn try_store(&mut self, outer: Fd, index: u32, inner: Fd, flags: u64) -> Result<(), Error> {
        self.sys
            .map_update_elem(outer, &key(index), &fd_value(inner), flags)
    }

    /// Closes an fd early (it is then not closed again at the end).
    pub fn close(&mut self, fd: Fd) -> Result<(), String> {
        self.fds.retain(|open| *open != fd);
        self.sys
            .close(fd)
            .map_err(|err| format!("closing fd {fd}: {err}"))
    }

    /// The id of the map behind `fd`.
    pub fn id(&mut self, fd: Fd) -> Result<u32, String> {
        self.sys
            .map_info(fd)
            .map(|info| info.id)
            .map_err(|err| format!("map_info of fd {fd}: {err}"))
    }

    fn finish(self) -> Option<String> {
        let Scratch { sys, fds } = self;
        let failures: Vec<String> = fds
            .into_iter()
            .rev()
            .filter_map(|fd| sys.close(fd).err().map(|err| format!("fd {fd}: {err}")))
            .collect();
        (!failures.is_empty()).then(|| failures.join(", "))
    }
}

fn array(max_entries: u32) -> MapAttr {
    MapAttr::new(MapType::Array, WORD, WORD, max_entries)
}
fn inner_array(max_entries: u32) -> MapAttr {
    array(max_entries).flags(BPF_F_INNER_MAP)
}
fn hash(max_entries: u32) -> MapAttr {
    MapAttr::new(MapType::Hash, WORD, WORD, max_entries)
}
fn array_of_maps(template: Fd, max_entries: u32) -> MapAttr {
    MapAttr::new(MapType::ArrayOfMaps, WORD, WORD, max_entries).inner(template)
}
fn hash_of_maps(template: Fd, max_entries: u32) -> MapAttr {
    MapAttr::new(MapType::HashOfMaps, WORD, WORD, max_entries).inner(template)
}

/// An outer map of `outer(template)` over a template of `template`, plus one inner of
/// `inner`: (outer, inner).
fn outer_with(
    s: &mut Scratch<'_>,
    template: MapAttr,
    outer: fn(Fd, u32) -> MapAttr,
    outer_max: u32,
    inner: MapAttr,
) -> Result<(Fd, Fd), String> {
    let template = s.create(template, "the template")?;
    let outer = s.create(outer(template, outer_max), "the outer map")?;
    let inner = s.create(inner, "the inner map")?;
    Ok((outer, inner))
}

/// Creating an outer map over `template`.
fn create_over(
    s: &mut Scratch<'_>,
    template: MapAttr,
    outer: fn(Fd, u32) -> MapAttr,
) -> Result<Result<(), Error>, String> {
    let template = s.create(template, "the template")?;
    Ok(s.try_create(outer(template, 3)))
}

/// Storing `inner` into a fresh outer map (3 slots) over `template`.
fn store_into(
    s: &mut Scratch<'_>,
    template: MapAttr,
    outer: fn(Fd, u32) -> MapAttr,
    inner: MapAttr,
) -> Result<Result<(), Error>, String> {
    let (outer, inner) = outer_with(s, template, outer, 3, inner)?;
    Ok(s.try_store(outer, 0, inner, BPF_ANY))
}

macro_rules! row {
    ($name:ident, $rule:expr, $expect:expr, |$s:ident| $body:expr) => {
        Row {
            name: stringify!($name),
            rule: $rule,
            expect: $expect,
            run: {
                // Bodies are blocks or single expressions; rustfmt braces some of either.
                #[allow(unused_braces)]
                fn $name($s: &mut Scratch<'_>) -> Result<Result<(), Error>, String> {
                    $body
                }
                $name
            },
        }
    };
}

use Errno::*;
use Expect::{Err as Fails, Ok as Succeeds};

/// The table. Names say the rule; `rule` points into semantics.md.
pub fn table() -> Vec<Row> {
    vec![
        // §2 creating maps.
        row!(
            inner_map_flag_on_hash_is_einval,
            "§2 BPF_F_INNER_MAP on non-ARRAY",
            Fails(EINVAL),
            |s| { Ok(s.try_create(hash(1).flags(BPF_F_INNER_MAP))) }
        ),
        row!(
            inner_map_flag_on_percpu_array_is_einval,
            "§2 BPF_F_INNER_MAP on non-ARRAY",
            Fails(EINVAL),
            |s| {
                Ok(s.try_create(
                    MapAttr::new(MapType::PercpuArray, WORD, WORD, 1).flags(BPF_F_INNER_MAP),
                ))
            }
        ),
        row!(
            inner_map_flag_on_array_of_maps_is_einval,
            "§2 BPF_F_INNER_MAP on non-ARRAY",
            Fails(EINVAL),
            |s| {
                let template = s.create(array(1), "the template")?;
                Ok(s.try_create(array_of_maps(template, 3).flags(BPF_F_INNER_MAP)))
            }
        ),
        row!(
            mmapable_on_hash_is_einval,
            "§2 BPF_F_MMAPABLE on non-ARRAY",
            Fails(EINVAL),
            |s| { Ok(s.try_create(hash(1).flags(BPF_F_MMAPABLE))) }
        ),
        row!(
            inner_map_flag_on_array_is_accepted,
            "§2 BPF_F_INNER_MAP on ARRAY",
            Succeeds,
            |s| { Ok(s.try_create(inner_array(1))) }
        ),
        row!(
            array_key_size_not_4_is_einval,
            "§2 ARRAY key_size == 4",
            Fails(EINVAL),
            |s| { Ok(s.try_create(MapAttr::new(MapType::Array, 8, WORD, 1))) }
        ),
        row!(
            array_zero_entries_is_einval,
            "§2 ARRAY max_entries > 0",
            Fails(EINVAL),
            |s| { Ok(s.try_create(array(0))) }
        ),
        row!(
            hash_zero_key_size_is_einval,
            "§2 HASH key_size > 0",
            Fails(EINVAL),
            |s| { Ok(s.try_create(MapAttr::new(MapType::Hash, 0, WORD, 1))) }
        ),
        row!(
            hash_zero_value_size_is_einval,
            "§2 HASH value_size > 0",
            Fails(EINVAL),
            |s| { Ok(s.try_create(MapAttr::new(MapType::Hash, WORD, 0, 1))) }
        ),
        row!(
            hash_zero_entries_is_einval,
            "§2 HASH max_entries > 0",
            Fails(EINVAL),
            |s| Ok(s.try_create(hash(0)))
        ),
        row!(
            array_of_maps_value_size_not_4_is_einval,
            "§2 ARRAY_OF_MAPS value_size == 4",
            Fails(EINVAL),
            |s| {
                let template = s.create(array(1), "the template")?;
                Ok(s.try_create(MapAttr::new(MapType::ArrayOfMaps, WORD, 8, 3).inner(template)))
            }
        ),
        row!(
            array_of_maps_key_size_not_4_is_einval,
            "§2 ARRAY_OF_MAPS key_size == 4",
            Fails(EINVAL),
            |s| {
                let template = s.create(array(1), "the template")?;
                Ok(s.try_create(MapAttr::new(MapType::ArrayOfMaps, 8, WORD, 3).inner(template)))
            }
        ),
        row!(
            array_of_maps_zero_entries_is_einval,
            "§2 ARRAY_OF_MAPS max_entries > 0",
            Fails(EINVAL),
            |s| {
                let template = s.create(array(1), "the template")?;
                Ok(s.try_create(array_of_maps(template, 0)))
            }
        ),
        row!(
            array_of_maps_rdonly_prog_is_einval,
            "§2 ARRAY_OF_MAPS RDONLY_PROG",
            Fails(EINVAL),
            |s| {
                let template = s.create(array(1), "the template")?;
                Ok(s.try_create(array_of_maps(template, 3).flags(BPF_F_RDONLY_PROG)))
            }
        ),
        row!(
            array_of_maps_wronly_prog_is_einval,
            "§2 ARRAY_OF_MAPS WRONLY_PROG",
            Fails(EINVAL),
            |s| {
                let template = s.create(array(1), "the template")?;
                Ok(s.try_create(array_of_maps(template, 3).flags(BPF_F_WRONLY_PROG)))
            }
        ),
        row!(
            hash_of_maps_value_size_not_4_is_einval,
            "§2 HASH_OF_MAPS value_size == 4",
            Fails(EINVAL),
            |s| {
                let template = s.create(array(1), "the template")?;
                Ok(s.try_create(MapAttr::new(MapType::HashOfMaps, WORD, 8, 3).inner(template)))
            }
        ),
        row!(
            hash_of_maps_no_prealloc_is_accepted,
            "§2 HASH_OF_MAPS prealloc or NO_PREALLOC",
            Succeeds,
            |s| {
                let template = s.create(array(1), "the template")?;
                Ok(s.try_create(hash_of_maps(template, 3).flags(BPF_F_NO_PREALLOC)))
            }
        ),
        row!(
            template_fd_never_opened_is_ebadf,
            "§2 meta: bad fd",
            Fails(EBADF),
            |s| { Ok(s.try_create(array_of_maps(NEVER_OPENED_FD, 3))) }
        ),
        row!(
            template_fd_not_a_map_is_einval,
            "§2 meta: fd that is not a map",
            Fails(EINVAL),
            |s| { Ok(s.try_create(array_of_maps(NOT_A_MAP_FD, 3))) }
        ),
        row!(
            template_array_of_maps_nesting_is_einval,
            "§2 meta: one level of nesting",
            Fails(EINVAL),
            |s| {
                let template = s.create(array(1), "the inner template")?;
                let nested = s.create(array_of_maps(template, 1), "the nested template")?;
                Ok(s.try_create(array_of_maps(nested, 3)))
            }
        ),
        row!(
            template_hash_of_maps_nesting_is_einval,
            "§2 meta: one level of nesting",
            Fails(EINVAL),
            |s| {
                let template = s.create(array(1), "the inner template")?;
                let nested = s.create(hash_of_maps(template, 1), "the nested template")?;
                Ok(s.try_create(hash_of_maps(nested, 3)))
            }
        ),
        row!(
            template_prog_array_is_enotsupp,
            "§2 meta: no map_meta_equal",
            Fails(ENOTSUPP),
            |s| {
                create_over(
                    s,
                    MapAttr::new(MapType::ProgArray, WORD, WORD, 1),
                    array_of_maps,
                )
            }
        ),
        row!(
            template_fd_may_be_closed_after_creation,
            "§2 meta holds no reference",
            Succeeds,
            |s| {
                let template = s.create(array(1), "the template")?;
                let outer = s.create(array_of_maps(template, 3), "the outer map")?;
                s.close(template)?;
                let inner = s.create(array(1), "the inner map")?;
                Ok(s.try_store(outer, 0, inner, BPF_ANY))
            }
        ),
        // §3 storing an inner map.
        row!(
            inner_map_template_accepts_bigger_flagged_inner,
            "§3 meta_equal: BPF_F_INNER_MAP",
            Succeeds,
            |s| { store_into(s, inner_array(1), array_of_maps, inner_array(3)) }
        ),
        row!(
            inner_map_template_refuses_inner_without_flag,
            "§3 meta_equal: flags equal",
            Fails(EINVAL),
            |s| { store_into(s, inner_array(1), array_of_maps, array(3)) }
        ),
        row!(
            inner_map_template_refuses_same_size_inner_without_flag,
            "§3 meta_equal: flags equal",
            Fails(EINVAL),
            |s| { store_into(s, inner_array(1), array_of_maps, array(1)) }
        ),
        row!(
            array_template_refuses_other_max_entries,
            "§3 array meta_equal compares max_entries",
            Fails(EINVAL),
            |s| { store_into(s, array(1), array_of_maps, array(2)) }
        ),
        row!(
            array_template_accepts_same_shape,
            "§3 array meta_equal",
            Succeeds,
            |s| { store_into(s, array(2), hash_of_maps, array(2)) }
        ),
        row!(
            hash_template_ignores_max_entries,
            "§3 generic meta_equal ignores max_entries",
            Succeeds,
            |s| { store_into(s, hash(2), array_of_maps, hash(7)) }
        ),
        row!(
            hash_template_refuses_other_value_size,
            "§3 meta_equal: value_size",
            Fails(EINVAL),
            |s| {
                store_into(
                    s,
                    hash(2),
                    array_of_maps,
                    MapAttr::new(MapType::Hash, WORD, 8, 2),
                )
            }
        ),
        row!(
            hash_template_refuses_other_key_size,
            "§3 meta_equal: key_size",
            Fails(EINVAL),
            |s| {
                store_into(
                    s,
                    hash(2),
                    hash_of_maps,
                    MapAttr::new(MapType::Hash, 8, WORD, 2),
                )
            }
        ),
        row!(
            hash_template_refuses_other_type,
            "§3 meta_equal: map_type",
            Fails(EINVAL),
            |s| { store_into(s, hash(2), array_of_maps, array(2)) }
        ),
        row!(
            hash_template_refuses_other_flags,
            "§3 meta_equal: map_flags",
            Fails(EINVAL),
            |s| { store_into(s, hash(2), array_of_maps, hash(2).flags(BPF_F_NO_PREALLOC)) }
        ),
        row!(
            store_fd_never_opened_is_ebadf,
            "§3 fd_get_ptr: bad fd",
            Fails(EBADF),
            |s| {
                let template = s.create(array(1), "the template")?;
                let outer = s.create(array_of_maps(template, 3), "the outer map")?;
                Ok(s.try_store(outer, 0, NEVER_OPENED_FD, BPF_ANY))
            }
        ),
        row!(
            store_fd_not_a_map_is_einval,
            "§3 fd_get_ptr: not a map",
            Fails(EINVAL),
            |s| {
                let template = s.create(array(1), "the template")?;
                let outer = s.create(hash_of_maps(template, 3), "the outer map")?;
                Ok(s.try_store(outer, 0, NOT_A_MAP_FD, BPF_ANY))
            }
        ),
        row!(
            array_of_maps_noexist_is_einval,
            "§3 ARRAY_OF_MAPS flags != ANY",
            Fails(EINVAL),
            |s| {
                let (outer, inner) = outer_with(s, array(1), array_of_maps, 3, array(1))?;
                Ok(s.try_store(outer, 0, inner, BPF_NOEXIST))
            }
        ),
        row!(
            array_of_maps_exist_is_einval,
            "§3 ARRAY_OF_MAPS flags != ANY",
            Fails(EINVAL),
            |s| {
                let (outer, inner) = outer_with(s, array(1), array_of_maps, 3, array(1))?;
                s.store(outer, 0, inner, BPF_ANY)?;
                Ok(s.try_store(outer, 0, inner, BPF_EXIST))
            }
        ),
        row!(
            array_of_maps_index_past_end_is_e2big,
            "§3 ARRAY_OF_MAPS index >= max_entries",
            Fails(E2BIG),
            |s| {
                let (outer, inner) = outer_with(s, array(1), array_of_maps, 3, array(1))?;
                Ok(s.try_store(outer, 3, inner, BPF_ANY))
            }
        ),
        row!(
            array_of_maps_replace_is_accepted,
            "§3 ARRAY_OF_MAPS xchg",
            Succeeds,
            |s| {
                let (outer, inner) = outer_with(s, array(1), array_of_maps, 3, array(1))?;
                let other = s.create(array(1), "a second inner map")?;
                s.store(outer, 1, inner, BPF_ANY)?;
                Ok(s.try_store(outer, 1, other, BPF_ANY))
            }
        ),
        row!(
            hash_of_maps_flag_above_exist_is_einval,
            "§3 HASH_OF_MAPS flags > EXIST",
            Fails(EINVAL),
            |s| {
                let (outer, inner) = outer_with(s, array(1), hash_of_maps, 3, array(1))?;
                Ok(s.try_store(outer, 0, inner, BPF_F_LOCK))
            }
        ),
        row!(
            hash_of_maps_noexist_on_present_is_eexist,
            "§3 HASH_OF_MAPS NOEXIST present",
            Fails(EEXIST),
            |s| {
                let (outer, inner) = outer_with(s, array(1), hash_of_maps, 3, array(1))?;
                s.store(outer, 0, inner, BPF_ANY)?;
                Ok(s.try_store(outer, 0, inner, BPF_NOEXIST))
            }
        ),
        row!(
            hash_of_maps_exist_on_missing_is_enoent,
            "§3 HASH_OF_MAPS EXIST missing",
            Fails(ENOENT),
            |s| {
                let (outer, inner) = outer_with(s, array(1), hash_of_maps, 3, array(1))?;
                Ok(s.try_store(outer, 0, inner, BPF_EXIST))
            }
        ),
        row!(
            hash_of_maps_exist_on_present_replaces,
            "§3 HASH_OF_MAPS in-place replace",
            Succeeds,
            |s| {
                let (outer, inner) = outer_with(s, array(1), hash_of_maps, 3, array(1))?;
                let other = s.create(array(1), "a second inner map")?;
                s.store(outer, 0, inner, BPF_ANY)?;
                Ok(s.try_store(outer, 0, other, BPF_EXIST))
            }
        ),
        row!(
            hash_of_maps_full_prealloc_is_e2big,
            "§3 HASH_OF_MAPS full (prealloc)",
            Fails(E2BIG),
            |s| {
                let (outer, inner) = outer_with(s, array(1), hash_of_maps, 1, array(1))?;
                s.store(outer, 0, inner, BPF_ANY)?;
                Ok(s.try_store(outer, 1, inner, BPF_ANY))
            }
        ),
        row!(
            hash_of_maps_full_no_prealloc_is_e2big,
            "§3 HASH_OF_MAPS full (NO_PREALLOC)",
            Fails(E2BIG),
            |s| {
                let template = s.create(array(1), "the template")?;
                let outer = s.create(
                    hash_of_maps(template, 1).flags(BPF_F_NO_PREALLOC),
                    "the outer map",
                )?;
                let inner = s.create(array(1), "the inner map")?;
                s.store(outer, 0, inner, BPF_ANY)?;
                Ok(s.try_store(outer, 1, inner, BPF_ANY))
            }
        ),
        row!(
            hash_of_maps_full_still_replaces_present_key,
            "§3/§7 replace uses the per-CPU spare",
            Succeeds,
            |s| {
                let (outer, inner) = outer_with(s, array(1), hash_of_maps, 1, array(1))?;
                s.store(outer, 0, inner, BPF_ANY)?;
                Ok(s.try_store(outer, 0, inner, BPF_ANY))
            }
        ),
        // §4 reading and deleting from user space.
        row!(
            array_of_maps_lookup_empty_slot_is_enoent,
            "§4 lookup empty slot",
            Fails(ENOENT),
            |s| {
                let template = s.create(array(1), "the template")?;
                let outer = s.create(array_of_maps(template, 3), "the outer map")?;
                Ok(s.sys().map_lookup_elem(outer, &key(1)).map(drop))
            }
        ),
        row!(
            array_of_maps_lookup_past_end_is_enoent,
            "§4 lookup index out of range",
            Fails(ENOENT),
            |s| {
                let template = s.create(array(1), "the template")?;
                let outer = s.create(array_of_maps(template, 3), "the outer map")?;
                Ok(s.sys().map_lookup_elem(outer, &key(3)).map(drop))
            }
        ),
        row!(
            hash_of_maps_lookup_missing_is_enoent,
            "§4 lookup missing key",
            Fails(ENOENT),
            |s| {
                let template = s.create(array(1), "the template")?;
                let outer = s.create(hash_of_maps(template, 3), "the outer map")?;
                Ok(s.sys().map_lookup_elem(outer, &key(1)).map(drop))
            }
        ),
        row!(
            lookup_returns_an_id_that_get_fd_by_id_resolves,
            "§4 lookup returns the inner id",
            Succeeds,
            |s| {
                let (outer, inner) = outer_with(s, array(1), hash_of_maps, 3, array(1))?;
                s.store(outer, 5, inner, BPF_ANY)?;
                let value = s
                    .sys()
                    .map_lookup_elem(outer, &key(5))
                    .map_err(|err| format!("lookup of key 5: {err}"))?;
                let id = word(&value, "the looked-up value")?;
                let want = s.id(inner)?;
                if id != want {
                    return Err(format!("lookup gave id {id}, the inner map's id is {want}"));
                }
                let resolved = match s.sys().map_get_fd_by_id(id) {
                    Ok(fd) => fd,
                    Err(err) => return Ok(Err(err)),
                };
                s.fds.push(resolved);
                let got = s.id(resolved)?;
                if got != want {
                    return Err(format!("get_fd_by_id({id}) opened map id {got}"));
                }
                Ok(Ok(()))
            }
        ),
        row!(
            hash_of_maps_lookup_and_delete_is_enotsupp,
            "§4 lookup_and_delete on HASH_OF_MAPS",
            Fails(ENOTSUPP),
            |s| {
                let (outer, inner) = outer_with(s, array(1), hash_of_maps, 3, array(1))?;
                s.store(outer, 0, inner, BPF_ANY)?;
                Ok(s.sys().map_lookup_and_delete_elem(outer, &key(0)).map(drop))
            }
        ),
        row!(
            array_of_maps_delete_past_end_is_e2big,
            "§4 delete index out of range",
            Fails(E2BIG),
            |s| {
                let template = s.create(array(1), "the template")?;
                let outer = s.create(array_of_maps(template, 3), "the outer map")?;
                Ok(s.sys().map_delete_elem(outer, &key(3)))
            }
        ),
        row!(
            array_of_maps_delete_empty_slot_is_enoent,
            "§4 delete empty slot",
            Fails(ENOENT),
            |s| {
                let template = s.create(array(1), "the template")?;
                let outer = s.create(array_of_maps(template, 3), "the outer map")?;
                Ok(s.sys().map_delete_elem(outer, &key(0)))
            }
        ),
        row!(
            array_of_maps_delete_present_then_lookup_is_enoent,
            "§4 delete xchg(NULL)",
            Fails(ENOENT),
            |s| {
                let (outer, inner) = outer_with(s, array(1), array_of_maps, 3, array(1))?;
                s.store(outer, 2, inner, BPF_ANY)?;
                s.sys()
                    .map_delete_elem(outer, &key(2))
                    .map_err(|err| format!("deleting slot 2: {err}"))?;
                Ok(s.sys().map_lookup_elem(outer, &key(2)).map(drop))
            }
        ),
        row!(
            hash_of_maps_delete_missing_is_enoent,
            "§4 hash delete missing key",
            Fails(ENOENT),
            |s| {
                let template = s.create(array(1), "the template")?;
                let outer = s.create(hash_of_maps(template, 3), "the outer map")?;
                Ok(s.sys().map_delete_elem(outer, &key(0)))
            }
        ),
        row!(
            hash_of_maps_delete_present_is_accepted,
            "§4 hash delete",
            Succeeds,
            |s| {
                let (outer, inner) = outer_with(s, array(1), hash_of_maps, 3, array(1))?;
                s.store(outer, 9, inner, BPF_ANY)?;
                Ok(s.sys().map_delete_elem(outer, &key(9)))
            }
        ),
        row!(
            hash_of_maps_batches_give_ids_out_and_take_fds_in,
            "§4 batch ops (HASH_OF_MAPS)",
            Succeeds,
            |s| { batch_round_trip(s, hash_of_maps, true) }
        ),
        row!(
            array_of_maps_batches_give_ids_out_and_take_fds_in,
            "§4 batch ops (ARRAY_OF_MAPS)",
            Succeeds,
            |s| { batch_round_trip(s, array_of_maps, false) }
        ),
        row!(
            array_of_maps_delete_batch_is_unsupported,
            "§4 ARRAY_OF_MAPS batch: lookup, update only",
            Fails(ENOTSUPP),
            |s| {
                let (outer, inner) = outer_with(s, array(1), array_of_maps, 3, array(1))?;
                s.store(outer, 0, inner, BPF_ANY)?;
                Ok(s.sys()
                    .map_delete_batch(outer, &[key(0)])
                    .map(drop)
                    .map_err(|(_, err)| err))
            }
        ),
        row!(
            lookup_batch_smaller_than_a_bucket_is_enospc,
            "§4 lookup batch: buffer too small for a bucket",
            Fails(ENOSPC),
            |s| {
                /// Keys tried as the second entry of a 2-bucket hash until one shares the
                /// first key's bucket (each does with probability 1/2).
                const TRIES: u32 = 32;
                let (outer, inner) = outer_with(s, array(1), hash_of_maps, 2, array(1))?;
                s.store(outer, 0, inner, BPF_ANY)?;
                for candidate in 1..=TRIES {
                    s.store(outer, candidate, inner, BPF_ANY)?;
                    match s.sys().map_lookup_batch(outer, None, 1) {
                        Ok(_) => {}
                        Err(err) => return Ok(Err(err)),
                    }
                    s.sys()
                        .map_delete_elem(outer, &key(candidate))
                        .map_err(|err| format!("deleting key {candidate}: {err}"))?;
                }
                Err(format!("no key of 1..={TRIES} shared key 0's bucket of a 2-bucket hash"))
            }
        ),
        row!(
            closing_the_last_fd_releases_the_id_at_once,
            "§1 refcnt 0: the id is released first",
            Fails(ENOENT),
            |s| {
                let map = s.create(array(1), "an array")?;
                let id = s.id(map)?;
                s.close(map)?;
                match s.sys().map_get_fd_by_id(id) {
                    Ok(fd) => {
                        s.fds.push(fd);
                        Ok(Ok(()))
                    }
                    Err(err) => Ok(Err(err)),
                }
            }
        ),
        row!(
            hash_rdonly_flag_is_refused_by_the_flag_list,
            "§2 HASH flags limited to NO_PREALLOC|NO_COMMON_LRU|NUMA|RDONLY_PROG|WRONLY_PROG|ZERO_SEED",
            Fails(EINVAL),
            |s| Ok(s.try_create(hash(1).flags(BPF_F_RDONLY)))
        ),
        row!(
            hash_no_common_lru_is_in_the_flag_list,
            "§2 HASH flags limited to NO_PREALLOC|NO_COMMON_LRU|NUMA|RDONLY_PROG|WRONLY_PROG|ZERO_SEED",
            Succeeds,
            |s| Ok(s.try_create(hash(1).flags(BPF_F_NO_COMMON_LRU)))
        ),
        row!(
            hash_zero_seed_is_in_the_flag_list,
            "§2 HASH flags limited to NO_PREALLOC|NO_COMMON_LRU|NUMA|RDONLY_PROG|WRONLY_PROG|ZERO_SEED",
            Succeeds,
            |s| Ok(s.try_create(hash(1).flags(BPF_F_ZERO_SEED)))
        ),
        row!(
            hash_of_maps_rdonly_prog_is_accepted,
            "§2 HASH_OF_MAPS: the hash rules (RDONLY_PROG allowed)",
            Succeeds,
            |s| {
                let template = s.create(array(1), "the template")?;
                Ok(s.try_create(hash_of_maps(template, 3).flags(BPF_F_RDONLY_PROG)))
            }
        ),
        row!(
            mmapable_on_array_of_maps_is_einval,
            "§2 BPF_F_MMAPABLE on non-ARRAY",
            Fails(EINVAL),
            |s| {
                let template = s.create(array(1), "the template")?;
                Ok(s.try_create(array_of_maps(template, 3).flags(BPF_F_MMAPABLE)))
            }
        ),
        row!(
            hash_template_refuses_inner_with_other_access_flags,
            "§3 meta_equal: map_flags equal exactly (BPF_F_RDONLY too)",
            Fails(EINVAL),
            |s| store_into(s, hash(2), hash_of_maps, hash(2).flags(BPF_F_RDONLY))
        ),
        // Orders of checks semantics.md does not state; the expectation is the kernel's
        // order (docs/kernel-disagreements.md, "orders"), so a model can follow it.
        row!(
            array_of_maps_checks_flags_before_the_fd,
            "§3 order (unstated): ARRAY_OF_MAPS flags, index, then fd",
            Fails(EINVAL),
            |s| {
                let template = s.create(array(1), "the template")?;
                let outer = s.create(array_of_maps(template, 3), "the outer map")?;
                Ok(s.try_store(outer, 0, NEVER_OPENED_FD, BPF_NOEXIST))
            }
        ),
        row!(
            array_of_maps_checks_the_index_before_the_fd,
            "§3 order (unstated): ARRAY_OF_MAPS flags, index, then fd",
            Fails(E2BIG),
            |s| {
                let template = s.create(array(1), "the template")?;
                let outer = s.create(array_of_maps(template, 3), "the outer map")?;
                Ok(s.try_store(outer, 3, NEVER_OPENED_FD, BPF_ANY))
            }
        ),
        row!(
            hash_of_maps_checks_the_fd_before_the_flags,
            "§3 order (unstated): HASH_OF_MAPS fd, meta, then flags",
            Fails(EBADF),
            |s| {
                let template = s.create(array(1), "the template")?;
                let outer = s.create(hash_of_maps(template, 3), "the outer map")?;
                Ok(s.try_store(outer, 0, NEVER_OPENED_FD, BPF_NOEXIST | BPF_EXIST))
            }
        ),
        row!(
            f_lock_without_a_spin_lock_is_einval_before_the_fd,
            "§3 order (unstated): BPF_F_LOCK refused first",
            Fails(EINVAL),
            |s| {
                let template = s.create(array(1), "the template")?;
                let outer = s.create(hash_of_maps(template, 3), "the outer map")?;
                Ok(s.try_store(outer, 0, NEVER_OPENED_FD, BPF_F_LOCK))
            }
        ),
        row!(
            hash_of_maps_checks_meta_before_fullness,
            "§3 order (unstated): HASH_OF_MAPS fd, meta, then flags",
            Fails(EINVAL),
            |s| {
                let (outer, inner) = outer_with(s, array(1), hash_of_maps, 1, array(1))?;
                s.store(outer, 0, inner, BPF_ANY)?;
                let misfit = s.create(array(2), "an inner map of another size")?;
                Ok(s.try_store(outer, 1, misfit, BPF_ANY))
            }
        ),
    ]
}

/// Inner maps stored by a batch update, read back by batch lookup (in steps of 2 so a
/// resume token is used), each id resolving to the map stored; for hashes, then a
/// lookup-and-delete batch empties the map.
fn batch_round_trip(
    s: &mut Scratch<'_>,
    outer: fn(Fd, u32) -> MapAttr,
    hash: bool,
) -> Result<Result<(), Error>, String> {
    /// Entries stored; the outer map has exactly this many slots.
    const ENTRIES: u32 = 3;
    /// Entries asked for per lookup call: fewer than ENTRIES, so the token is exercised.
    const STEP: u32 = 2;
    /// Bounds the lookup loop: a backend that never says "done" fails instead of hanging.
    const MAX_CALLS: usize = 16;
    let template = s.create(array(1), "the template")?;
    let outer = s.create(outer(template, ENTRIES), "the outer map")?;
    let mut inners = Vec::new();
    for _ in 0..ENTRIES {
        inners.push(s.create(array(1), "an inner map")?);
    }
    let keys: Vec<Vec<u8>> = (0..ENTRIES).map(key).collect();
    let values: Vec<Vec<u8>> = inners.iter().map(|fd| fd_value(*fd)).collect();
    match s.sys().map_update_batch(outer, &keys, &values, BPF_ANY) {
        Ok(n) if n == ENTRIES => {}
        Ok(n) => return Err(format!("update batch applied {n} of {ENTRIES}")),
        Err((_, err)) => return Ok(Err(err)),
    }
    let mut ids = Vec::new();
    let mut token = None;
    for _ in 0..MAX_CALLS {
        let out = match s.sys().map_lookup_batch(outer, token, STEP) {
            Ok(out) => out,
            Err(err) => return Ok(Err(err)),
        };
        for (k, v) in out.keys.iter().zip(&out.values) {
            ids.push((word(k, "a batch key")?, word(v, "a batch value")?));
        }
        if out.done {
            break;
        }
        token = Some(out.next);
    }
    ids.sort_unstable();
    let mut want = Vec::new();
    for (index, fd) in inners.iter().enumerate() {
        want.push((index as u32, s.id(*fd)?));
    }
    if ids != want {
        return Err(format!(
            "lookup batch gave (key, id) {ids:?}, stored {want:?}"
        ));
    }
    if hash {
        let out = match s
            .sys()
            .map_lookup_and_delete_batch(outer, None, ENTRIES + 1)
        {
            Ok(out) => out,
            Err(err) => return Ok(Err(err)),
        };
        if out.keys.len() != ENTRIES as usize {
            return Err(format!(
                "lookup-and-delete batch returned {} entries, want {ENTRIES}",
                out.keys.len()
            ));
        }
        if let Ok(value) = s.sys().map_lookup_elem(outer, &key(0)) {
            return Err(format!(
                "key 0 still present after lookup-and-delete batch: {value:?}"
            ));
        }
    }
    Ok(Ok(()))
}

/// Runs every row of [`table`] on `sys`, each with its own maps, closing them afterwards.
pub fn run_rows(sys: &mut dyn BpfSys) -> Vec<RowOutcome> {
    table()
        .into_iter()
        .map(|row| {
            let mut scratch = Scratch::new(&mut *sys);
            let observed = (row.run)(&mut scratch);
            let close_failure = scratch.finish();
            RowOutcome {
                name: row.name,
                rule: row.rule,
                expect: row.expect,
                observed,
                close_failure,
            }
        })
        .collect()
}

/// The rows that did not agree with semantics.md, one line each.
pub fn disagreements(outcomes: &[RowOutcome]) -> Vec<String> {
    outcomes
        .iter()
        .filter(|outcome| !outcome.agrees())
        .map(ToString::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_names_are_unique_and_cite_a_section() {
        let table = table();
        let mut names: Vec<&str> = table.iter().map(|row| row.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before, "duplicate row names");
        for row in &table {
            assert!(
                row.rule.starts_with('§'),
                "{} cites no section: {}",
                row.name,
                row.rule
            );
        }
    }

    #[test]
    fn expectations_match_only_their_own_result() {
        assert!(Expect::Ok.matches(&Ok(())));
        assert!(!Expect::Ok.matches(&Err(Error::Errno(Errno::EINVAL))));
        assert!(Expect::Err(Errno::E2BIG).matches(&Err(Error::Errno(Errno::E2BIG))));
        assert!(!Expect::Err(Errno::E2BIG).matches(&Err(Error::Errno(Errno::ENOENT))));
        assert!(!Expect::Err(Errno::E2BIG).matches(&Ok(())));
    }
}
