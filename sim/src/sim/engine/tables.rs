//! The inner maps (tables) each outer map holds through a run, and the most bytes they took at
//! once: what `mimic run --scenario S --footprint` reports, the memory a Maglev balancer's
//! control plane costs with its tables as they are, against fixed-size tables.
//!
//! The alternative, sampling the world's memory at every step, would add scheduling points and
//! could not say which outer map a map belongs to. The outer-map history already says exactly
//! what each outer map holds: a store or a delete enters it once it succeeded, in the order the
//! run completed them, and the object loader's initial slots enter it at setup. A table
//! swapped out but not yet freed (waiting for its grace period) no longer counts.
//!
//! Invariant: a table's bytes are the core's own charge for its shape
//! ([`footprint::bytes_of`]), so this report and `World::footprint` cannot disagree.

use super::super::footprint::{self, TablesPeak};
use super::super::oracle::AttrKey;
use mimic_core::uapi::{MapAttr, BPF_F_INNER_MAP};
use std::collections::BTreeMap;

/// Every outer map's tables in one run.
#[derive(Debug, Default)]
pub(super) struct Tables {
    outers: BTreeMap<String, Held>,
}

/// One outer map's tables now, and the most they ever were.
#[derive(Debug, Default)]
struct Held {
    tables: BTreeMap<u32, AttrKey>,
    peak_bytes: u64,
    most: u32,
    largest: Option<(u64, AttrKey)>,
}

impl Tables {
    /// `outer[key]` now holds a table of shape `attr` (`None`: the key was deleted).
    pub(super) fn store(&mut self, outer: &str, key: u32, attr: Option<AttrKey>) {
        let held = self.outers.entry(outer.to_string()).or_default();
        match attr {
            Some(attr) => {
                held.tables.insert(key, attr);
                let bytes = footprint::bytes_of(&attr);
                if held.largest.is_none_or(|(most, _)| bytes > most) {
                    held.largest = Some((bytes, attr));
                }
            }
            None => {
                held.tables.remove(&key);
            }
        }
        let bytes: u64 = held.tables.values().map(footprint::bytes_of).sum();
        held.peak_bytes = held.peak_bytes.max(bytes);
        held.most = held.most.max(held.tables.len() as u32);
    }

    /// The report of every outer map in `shapes` (its attributes and its template's).
    pub(super) fn report(&self, shapes: &BTreeMap<String, (MapAttr, MapAttr)>) -> Vec<TablesPeak> {
        shapes
            .iter()
            .map(|(name, (attr, template))| {
                let held = self.outers.get(name);
                let outer_bytes = footprint::bytes_of(&AttrKey::of(attr));
                let (largest_bytes, largest_entries) = held
                    .and_then(|h| h.largest)
                    .map_or((0, 0), |(bytes, attr)| (bytes, attr.max_entries));
                let most = held.map_or(0, |h| h.most);
                let now: Vec<u64> = held
                    .map(|h| h.tables.values().map(footprint::bytes_of).collect())
                    .unwrap_or_default();
                TablesPeak {
                    outer: name.clone(),
                    dynamic: template.map_flags & BPF_F_INNER_MAP != 0,
                    outer_bytes,
                    peak_bytes: outer_bytes + held.map_or(0, |h| h.peak_bytes),
                    most_tables: most,
                    largest_entries,
                    fixed_bytes: outer_bytes + u64::from(most) * largest_bytes,
                    end_bytes: outer_bytes + now.iter().sum::<u64>(),
                    end_fixed_bytes: outer_bytes + now.len() as u64 * largest_bytes,
                }
            })
            .collect()
    }
}

impl super::Ctx {
    /// `outer[key]` now holds a table of shape `attr` (`None`: deleted).
    pub(super) fn note_table(&self, outer: &str, key: u32, attr: Option<AttrKey>) {
        self.tables
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .store(outer, key, attr);
    }
}
