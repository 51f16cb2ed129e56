//! The memory footprint of Maglev tables with dynamic (`BPF_F_INNER_MAP`) versus fixed-size
//! inner arrays, as the core charges it ([`World::footprint`]): for a synthetic balancer
//! ([`measure`]), and for a scenario's runs ([`TablesPeak`], noted by the engine).
//!
//! Cilium's Maglev tables are prime-sized; a service's table only needs to be large relative to
//! its backend count. With fixed-size inner arrays every service pays for the largest table;
//! with dynamic inner arrays each pays for its own.
//!
//! A shape's bytes are measured once per process on a scratch world ([`shape_bytes`]): the
//! core's charge is the one definition of a map's size, so nothing here restates it.

use super::oracle::AttrKey;
use mimic_core::mutants::Mutants;
use mimic_core::sync::Std;
use mimic_core::uapi::{MapAttr, MapType, BPF_F_INNER_MAP};
use mimic_core::world::{World, WorldConfig};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

/// Maglev table sizes (primes, as Cilium uses): small, medium and large services.
pub const TABLE_SIZES: [u32; 4] = [251, 1021, 4093, 16381];

/// Services in the measured load balancer: most small, a few large (the seed-004 motivation).
pub const SERVICES: u32 = 64;

#[derive(Debug, Clone, Serialize)]
pub struct Footprint {
    pub services: u32,
    pub fixed_bytes: u64,
    pub dynamic_bytes: u64,
}

/// Table size of service `i`: half the services small, a quarter medium, the rest larger.
pub fn table_size(i: u32) -> u32 {
    match i % 8 {
        0..=3 => TABLE_SIZES[0],
        4 | 5 => TABLE_SIZES[1],
        6 => TABLE_SIZES[2],
        _ => TABLE_SIZES[3],
    }
}

/// The outer HASH_OF_MAPS and its 64 tables: each its service's size (`dynamic`), or every one
/// the largest.
fn build(dynamic: bool) -> Result<u64, String> {
    let largest = TABLE_SIZES[TABLE_SIZES.len() - 1];
    let flags = if dynamic { BPF_F_INNER_MAP } else { 0 };
    let mut total = shape_bytes(&AttrKey::of(&MapAttr::new(
        MapType::HashOfMaps,
        4,
        4,
        SERVICES,
    )))?;
    for service in 0..SERVICES {
        let entries = if dynamic {
            table_size(service)
        } else {
            largest
        };
        total += shape_bytes(&AttrKey::of(
            &MapAttr::new(MapType::Array, 4, 4, entries).flags(flags),
        ))?;
    }
    Ok(total)
}

pub fn measure() -> Result<Footprint, String> {
    Ok(Footprint {
        services: SERVICES,
        fixed_bytes: build(false)?,
        dynamic_bytes: build(true)?,
    })
}

/// The bytes the core charges for a map of shape `attr`, measured on a scratch world once per
/// shape (a map-in-map gets a one-slot array template: an outer map's charge does not depend on
/// it), or why the scratch world refused the shape.
pub fn shape_bytes(attr: &AttrKey) -> Result<u64, String> {
    static BYTES: OnceLock<Mutex<BTreeMap<AttrKey, u64>>> = OnceLock::new();
    let cache = BYTES.get_or_init(Mutex::default);
    if let Some(&bytes) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(attr) {
        return Ok(bytes);
    }
    let bytes = measure_shape(attr)?;
    cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(*attr, bytes);
    Ok(bytes)
}

/// [`shape_bytes`] of a shape a run created, so the scratch world creates it too (0 if not).
pub fn bytes_of(attr: &AttrKey) -> u64 {
    shape_bytes(attr).unwrap_or(0)
}

fn measure_shape(attr: &AttrKey) -> Result<u64, String> {
    let e = |e: mimic_core::fault::Error| e.to_string();
    let w = World::<Std>::new(Mutants::NONE, WorldConfig::default());
    let kind = MapType::from_u32(attr.map_type)
        .ok_or(format!("map type {} is not modelled", attr.map_type))?;
    let mut create =
        MapAttr::new(kind, attr.key_size, attr.value_size, attr.max_entries).flags(attr.map_flags);
    if kind.is_map_in_map() {
        let template = w
            .map_create(&MapAttr::new(MapType::Array, 4, 4, 1))
            .map_err(e)?;
        create = create.inner(template);
    }
    let fd = w.map_create(&create).map_err(e)?;
    w.footprint(w.map_handle(fd).map_err(e)?).map_err(e)
}

/// One outer map's tables over a scenario's runs: the most bytes they took at once, against the
/// bytes had every table been as large as the largest it held (the fixed-size design).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TablesPeak {
    pub outer: String,
    /// Its template has `BPF_F_INNER_MAP`: its tables may each be of their own size.
    pub dynamic: bool,
    /// The outer map's own bytes.
    pub outer_bytes: u64,
    /// The outer map and the tables it held, at their largest at once.
    pub peak_bytes: u64,
    /// The most tables it held at once.
    pub most_tables: u32,
    /// Entries of the largest table it held.
    pub largest_entries: u32,
    /// The outer map and `most_tables` tables of the largest size.
    pub fixed_bytes: u64,
    /// At the end of the run (the control planes done): the outer map and its tables, and the
    /// same number of tables of the largest size.
    pub end_bytes: u64,
    pub end_fixed_bytes: u64,
}

impl TablesPeak {
    /// The larger of two runs' figures, each on its own (one outer map over many seeds).
    pub fn merge(&mut self, other: &TablesPeak) {
        self.peak_bytes = self.peak_bytes.max(other.peak_bytes);
        self.most_tables = self.most_tables.max(other.most_tables);
        self.largest_entries = self.largest_entries.max(other.largest_entries);
        self.fixed_bytes = self.fixed_bytes.max(other.fixed_bytes);
        self.end_bytes = self.end_bytes.max(other.end_bytes);
        self.end_fixed_bytes = self.end_fixed_bytes.max(other.end_fixed_bytes);
    }
}
