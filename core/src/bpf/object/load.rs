//! Creating an object's maps on any [`BpfSys`] (mimic's world, the reference model, the live
//! kernel) the way libbpf creates them, so that the same loader puts the same object in each.
//!
//! In map order: a map-in-map's template is created from its `values` definition, handed as
//! `inner_map_fd` to the outer map and closed again; a global data map gets its section's
//! bytes at key 0, and `.rodata` is frozen after that (so the verifier may read it as
//! constants); once every map exists, each map-in-map's initial slots are filled with the fds
//! of the maps they name (libbpf fills a map's slots right after creating it, which needs the
//! inner maps defined first; filling at the end accepts either order and stores the same maps).
//! A `PROG_ARRAY`'s initial slots name programs: [`fill_prog_arrays`] fills them once the
//! caller has loaded those.
//!
//! Invariant: on an error every fd created so far is closed, and the error names the map and
//! the step.

use super::{Object, ObjectError};
use crate::uapi::{BpfSys, Fd, BPF_ANY};

/// The maps of an object once created: an fd per map, in the object's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedMaps {
    pub fds: Vec<Fd>,
}

impl LoadedMaps {
    /// Closes every map.
    pub fn close(self, sys: &mut dyn BpfSys) {
        for fd in self.fds {
            let _ = sys.close(fd);
        }
    }
}

/// Creates every map of `object` on `sys`, fills global data and initial slots.
pub fn create_maps(sys: &mut dyn BpfSys, object: &Object) -> Result<LoadedMaps, ObjectError> {
    let mut fds: Vec<Fd> = Vec::new();
    let fail = |sys: &mut dyn BpfSys, fds: &[Fd], e: ObjectError| {
        for &fd in fds {
            let _ = sys.close(fd);
        }
        Err(e)
    };
    for spec in &object.maps {
        let named = |what: String| ObjectError::new(what).at_symbol(&spec.name);
        let fd = match &spec.inner {
            Some(inner) => {
                let template = match sys.map_create(&inner.attr()) {
                    Ok(fd) => fd,
                    Err(e) => {
                        return fail(
                            sys,
                            &fds,
                            named(format!("creating its inner map template: {e}")),
                        )
                    }
                };
                let outer = sys.map_create(&spec.attr().inner(template));
                let _ = sys.close(template);
                match outer {
                    Ok(fd) => fd,
                    Err(e) => return fail(sys, &fds, named(format!("creating it: {e}"))),
                }
            }
            None => match sys.map_create(&spec.attr()) {
                Ok(fd) => fd,
                Err(e) => return fail(sys, &fds, named(format!("creating it: {e}"))),
            },
        };
        fds.push(fd);
        if let Some(data) = &spec.data {
            if let Err(e) = sys.map_update_elem(fd, &0u32.to_ne_bytes(), &data.bytes, BPF_ANY) {
                return fail(sys, &fds, named(format!("writing its initial value: {e}")));
            }
            if data.frozen {
                if let Err(e) = sys.map_freeze(fd) {
                    return fail(sys, &fds, named(format!("freezing it: {e}")));
                }
            }
        }
    }
    for (i, spec) in object.maps.iter().enumerate() {
        // A PROG_ARRAY's slots wait for its programs ([`fill_prog_arrays`]).
        if spec.kind() == Some(crate::uapi::MapType::ProgArray) {
            continue;
        }
        for (slot, name) in &spec.slots {
            let Some(target) = object.map_index(name) else {
                let e = ObjectError::new(format!("slot {slot} names `{name}`, which is no map"))
                    .at_symbol(&spec.name);
                return fail(sys, &fds, e);
            };
            let value = fds[target].to_ne_bytes();
            if let Err(e) = sys.map_update_elem(fds[i], &slot.to_ne_bytes(), &value, BPF_ANY) {
                let e = ObjectError::new(format!("filling slot {slot} with `{name}`: {e}"))
                    .at_symbol(&spec.name);
                return fail(sys, &fds, e);
            }
        }
    }
    Ok(LoadedMaps { fds })
}

/// Fills each `PROG_ARRAY`'s initial slots with the fds of the programs they name, once the
/// programs are loaded (libbpf's `bpf_object__init_prog_arrays`); `prog_fd` gives a loaded
/// program's fd by its function's name. A slot naming a program that is not loaded is an
/// error naming the map, the slot and the program.
pub fn fill_prog_arrays(
    sys: &mut dyn BpfSys,
    object: &Object,
    maps: &LoadedMaps,
    prog_fd: impl Fn(&str) -> Option<Fd>,
) -> Result<(), ObjectError> {
    for (spec, &fd) in object.maps.iter().zip(&maps.fds) {
        if spec.kind() != Some(crate::uapi::MapType::ProgArray) {
            continue;
        }
        for (slot, name) in &spec.slots {
            let named = |what: String| ObjectError::new(what).at_symbol(&spec.name);
            let Some(prog) = prog_fd(name) else {
                return Err(named(format!(
                    "slot {slot} names program `{name}`, which is not loaded"
                )));
            };
            sys.map_update_elem(fd, &slot.to_ne_bytes(), &prog.to_ne_bytes(), BPF_ANY)
                .map_err(|e| named(format!("filling slot {slot} with `{name}`: {e}")))?;
        }
    }
    Ok(())
}
