//! The memory footprint of the Maglev scenario with dynamic (`BPF_F_INNER_MAP`) versus
//! fixed-size inner arrays, as the core charges it ([`World::footprint`]).
//!
//! Cilium's Maglev tables are prime-sized; a service's table only needs to be large relative to
//! its backend count. With fixed-size inner arrays every service pays for the largest table;
//! with dynamic inner arrays each pays for its own.

use mimic_core::mutants::Mutants;
use mimic_core::sync::Std;
use mimic_core::uapi::{MapAttr, MapType, BPF_ANY, BPF_F_INNER_MAP};
use mimic_core::world::{World, WorldConfig};
use serde::Serialize;

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

fn build(dynamic: bool) -> Result<u64, String> {
    let w = World::<Std>::new(Mutants::NONE, WorldConfig::default());
    let e = |e: mimic_core::fault::Error| e.to_string();
    let largest = TABLE_SIZES[TABLE_SIZES.len() - 1];
    let flags = if dynamic { BPF_F_INNER_MAP } else { 0 };
    let template = w
        .map_create(
            &MapAttr::new(MapType::Array, 4, 4, if dynamic { 1 } else { largest }).flags(flags),
        )
        .map_err(e)?;
    let outer = w
        .map_create(&MapAttr::new(MapType::HashOfMaps, 4, 4, SERVICES).inner(template))
        .map_err(e)?;
    let mut total = w.footprint(w.map_handle(outer).map_err(e)?).map_err(e)?;
    for service in 0..SERVICES {
        let entries = if dynamic {
            table_size(service)
        } else {
            largest
        };
        let inner = w
            .map_create(&MapAttr::new(MapType::Array, 4, 4, entries).flags(flags))
            .map_err(e)?;
        total += w.footprint(w.map_handle(inner).map_err(e)?).map_err(e)?;
        w.map_update_elem(outer, &service.to_le_bytes(), &inner.to_le_bytes(), BPF_ANY)
            .map_err(e)?;
        w.close(inner).map_err(e)?;
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
