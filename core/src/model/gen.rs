//! Deterministic generation of [`Op`] sequences from any source of choices: a seed
//! ([`SeedChoices`], ChaCha8), fuzz bytes ([`ByteChoices`], an `arbitrary`-style reader that
//! answers 0 once the bytes run out) or proptest (generate byte chunks and call
//! [`ops_from_chunks`]; proptest then shrinks by dropping whole ops and lowering bytes, and 0 is
//! always the simplest choice).
//!
//! The [`Generator`] keeps a syntactic shadow of the slots (the attributes each `Create` asked
//! for), never an implementation's answers, so the same choices give the same ops whatever runs
//! them. It aims at small maps where every rule is reachable: full hashes, out-of-range indices,
//! meta mismatches, templates closed after use, ids resolved after frees.

use super::ops::{Create, FdRef, IdRef, Op, Val};
use crate::uapi::{
    MapType, BPF_ANY, BPF_EXIST, BPF_F_INNER_MAP, BPF_F_NO_PREALLOC, BPF_F_RDONLY_PROG, BPF_NOEXIST,
};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// A source of choices.
pub trait Choices {
    /// A value in `0..n` (`n >= 1`; `n == 0` is treated as 1).
    fn below(&mut self, n: u32) -> u32;
}

/// Choices from a seeded ChaCha8 stream.
pub struct SeedChoices(ChaCha8Rng);

impl SeedChoices {
    pub fn new(seed: u64) -> SeedChoices {
        SeedChoices(ChaCha8Rng::seed_from_u64(seed))
    }
}

impl Choices for SeedChoices {
    fn below(&mut self, n: u32) -> u32 {
        // Modulo bias over 64 bits is far below anything a test could notice.
        (self.0.next_u64() % n.max(1) as u64) as u32
    }
}

/// Choices read from a byte slice: one byte per choice below 256, four (little endian) above;
/// 0 once the bytes are exhausted.
pub struct ByteChoices<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> ByteChoices<'a> {
    pub fn new(bytes: &'a [u8]) -> ByteChoices<'a> {
        ByteChoices { bytes, pos: 0 }
    }
    pub fn is_exhausted(&self) -> bool {
        self.pos >= self.bytes.len()
    }
    fn byte(&mut self) -> u8 {
        let b = self.bytes.get(self.pos).copied().unwrap_or(0);
        self.pos = self.pos.saturating_add(1);
        b
    }
}

impl Choices for ByteChoices<'_> {
    fn below(&mut self, n: u32) -> u32 {
        let n = n.max(1);
        let raw = if n <= 256 {
            self.byte() as u32
        } else {
            u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
        };
        raw % n
    }
}

/// What the generator produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenConfig {
    /// Largest `max_entries` of a generated map (small, so maps fill up).
    pub max_entries: u32,
    /// Distinct hash keys (small, so keys collide with existing ones).
    pub key_space: u32,
    /// Keys and values of the wrong length (`-EINVAL` by the model's rule; a kernel backend
    /// cannot pass them through the real syscall).
    pub wrong_sizes: bool,
    /// Per-CPU maps (their value size depends on the implementation's possible CPUs).
    pub percpu: bool,
    /// Attributes the creation rules refuse.
    pub bad_attrs: bool,
    /// Ops on fds 0–2, -1 and never-opened fds.
    pub raw_fds: bool,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            max_entries: 4,
            key_space: 6,
            wrong_sizes: true,
            percpu: false,
            bad_attrs: true,
            raw_fds: true,
        }
    }
}

/// The generator's view of one slot: what its create asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shadow {
    create: Create,
    /// For outer maps, the template's create (syntactic).
    template: Option<Create>,
    /// A `Close` of this slot was generated, or the create is one of the refused attribute
    /// sets: ops rarely pick it (it mostly answers `-EBADF`).
    stale: bool,
}

impl Shadow {
    fn kind(&self) -> Option<MapType> {
        self.create.known_type()
    }
    fn is_outer(&self) -> bool {
        self.kind().is_some_and(MapType::is_map_in_map)
    }
    fn is_array_like(&self) -> bool {
        matches!(
            self.kind(),
            Some(MapType::Array | MapType::PercpuArray | MapType::ArrayOfMaps | MapType::ProgArray)
        )
    }
}

/// Generates ops one at a time, tracking slots syntactically.
#[derive(Debug, Clone)]
pub struct Generator {
    config: GenConfig,
    /// One entry per slot; `None` for slots whose shape is unknown (`GetFdById(NeverUsed)`).
    slots: Vec<Option<Shadow>>,
}

/// Update flags, weighted towards the valid ones.
const FLAG_CHOICES: [u64; 10] = [
    BPF_ANY,
    BPF_ANY,
    BPF_ANY,
    BPF_ANY,
    BPF_NOEXIST,
    BPF_NOEXIST,
    BPF_NOEXIST,
    BPF_EXIST,
    BPF_EXIST,
    3,
];

impl Generator {
    pub fn new(config: GenConfig) -> Generator {
        Generator {
            config,
            slots: Vec::new(),
        }
    }

    fn pick<T: Copy>(c: &mut dyn Choices, items: &[T]) -> T {
        items[c.below(items.len() as u32) as usize]
    }

    fn chance(c: &mut dyn Choices, percent: u32) -> bool {
        c.below(100) < percent
    }

    fn small(&self, c: &mut dyn Choices) -> u32 {
        1 + c.below(self.config.max_entries.max(1))
    }

    /// A slot with a known shape matching `want`, or any slot, or nothing.
    fn pick_slot(&self, c: &mut dyn Choices, want: impl Fn(&Shadow) -> bool) -> Option<u32> {
        let matching: Vec<u32> = (0..self.slots.len() as u32)
            .filter(|i| {
                self.slots[*i as usize]
                    .as_ref()
                    .is_some_and(|s| !s.stale && want(s))
            })
            .collect();
        if !matching.is_empty() && !Self::chance(c, 10) {
            return Some(Self::pick(c, &matching));
        }
        (!self.slots.is_empty()).then(|| c.below(self.slots.len() as u32))
    }

    fn fd_ref(&self, c: &mut dyn Choices, want: impl Fn(&Shadow) -> bool) -> FdRef {
        if self.config.raw_fds && Self::chance(c, 4) {
            return Self::pick(
                c,
                &[
                    FdRef::Raw(0),
                    FdRef::Raw(2),
                    FdRef::Raw(-1),
                    FdRef::NeverOpened,
                ],
            );
        }
        self.pick_slot(c, want)
            .map(FdRef::Slot)
            .unwrap_or(FdRef::NeverOpened)
    }

    fn shadow(&self, fd: FdRef) -> Option<Shadow> {
        match fd {
            FdRef::Slot(n) => self.slots.get(n as usize).copied().flatten(),
            _ => None,
        }
    }

    fn key_for(&self, c: &mut dyn Choices, shadow: Option<Shadow>) -> Vec<u8> {
        let Some(shadow) = shadow else {
            return 0u32.to_ne_bytes().to_vec();
        };
        let size = shadow.create.key_size.min(64) as usize;
        let mut key = if shadow.is_array_like() {
            // Indices up to one past the end.
            c.below(shadow.create.max_entries.saturating_add(1).max(1))
                .to_ne_bytes()
                .to_vec()
        } else {
            c.below(self.config.key_space.max(1)).to_ne_bytes().to_vec()
        };
        key.resize(size, 0);
        if self.config.wrong_sizes && Self::chance(c, 2) {
            key.push(0);
        }
        key
    }

    fn value_for(&self, c: &mut dyn Choices, shadow: Option<Shadow>) -> Val {
        let Some(shadow) = shadow else {
            return Val::Bytes(vec![1, 0, 0, 0]);
        };
        if shadow.is_outer() {
            let template = shadow.template;
            let fd = self.fd_ref(c, |s| template.is_some_and(|t| same_kind(&s.create, &t)));
            return Val::Fd(fd);
        }
        let per_cpu = matches!(
            shadow.kind(),
            Some(MapType::PercpuArray | MapType::PercpuHash)
        );
        let mut size = shadow.create.value_size.min(64) as usize;
        if per_cpu {
            size = size.div_ceil(8) * 8;
        }
        let byte = 1 + c.below(4) as u8;
        let mut value = vec![byte; size];
        if self.config.wrong_sizes && Self::chance(c, 2) {
            value.pop();
        }
        Val::Bytes(value)
    }

    fn flags(c: &mut dyn Choices) -> u64 {
        Self::pick(c, &FLAG_CHOICES)
    }

    fn create(&mut self, c: &mut dyn Choices) -> Op {
        let max = self.small(c);
        let prealloc = Self::pick(c, &[0, BPF_F_NO_PREALLOC]);
        let mut template = None;
        let mut stale = false;
        let create = match c.below(12) {
            0 | 1 => Create::new(MapType::Array, 4, Self::pick(c, &[4, 8]), max),
            2 => Create::new(MapType::Array, 4, 4, max).flags(BPF_F_INNER_MAP),
            3 | 4 => Create::new(
                MapType::Hash,
                Self::pick(c, &[4, 8]),
                Self::pick(c, &[4, 8]),
                max,
            )
            .flags(prealloc),
            5..=8 => {
                let outer = if c.below(2) == 0 {
                    MapType::ArrayOfMaps
                } else {
                    MapType::HashOfMaps
                };
                let flags = if outer == MapType::HashOfMaps {
                    prealloc
                } else {
                    0
                };
                let inner = self.fd_ref(c, |s| !s.is_outer());
                template = self.shadow(inner).map(|s| s.create);
                Create::new(outer, 4, 4, max).flags(flags).inner(inner)
            }
            9 => Create::new(MapType::ProgArray, 4, 4, max),
            10 if self.config.percpu => {
                let t = Self::pick(c, &[MapType::PercpuArray, MapType::PercpuHash]);
                Create::new(t, 4, Self::pick(c, &[4, 12]), max)
            }
            _ if self.config.bad_attrs => {
                stale = true;
                Self::pick(
                    c,
                    &[
                        Create::new(MapType::Array, 8, 4, 1),
                        Create::new(MapType::Array, 4, 4, 0),
                        Create::new(MapType::Hash, 4, 4, 2).flags(BPF_F_INNER_MAP),
                        Create::new(MapType::Hash, 0, 4, 2),
                        Create {
                            map_type: 0,
                            ..Create::new(MapType::Array, 4, 4, 1)
                        },
                        Create::new(MapType::ArrayOfMaps, 4, 8, 1).inner(FdRef::Slot(0)),
                        Create::new(MapType::ArrayOfMaps, 4, 4, 1)
                            .flags(BPF_F_RDONLY_PROG)
                            .inner(FdRef::Slot(0)),
                        Create::new(MapType::HashOfMaps, 4, 4, 1).inner(FdRef::NeverOpened),
                        Create::new(MapType::HashOfMaps, 4, 4, 1).inner(FdRef::Raw(1)),
                    ],
                )
            }
            _ => Create::new(MapType::Hash, 4, 4, max),
        };
        self.slots.push(Some(Shadow {
            create,
            template,
            stale,
        }));
        Op::Create(create)
    }

    /// The next op.
    pub fn next_op(&mut self, c: &mut dyn Choices) -> Op {
        if self.slots.is_empty() {
            return self.create(c);
        }
        let any = |_: &Shadow| true;
        let roll = c.below(100);
        if roll < 16 {
            return self.create(c);
        }
        let fd = self.fd_ref(c, any);
        let shadow = self.shadow(fd);
        match roll {
            16..=39 => {
                let key = self.key_for(c, shadow);
                let value = self.value_for(c, shadow);
                Op::Update {
                    fd,
                    key,
                    value,
                    flags: Self::flags(c),
                }
            }
            40..=51 => Op::Lookup {
                fd,
                key: self.key_for(c, shadow),
            },
            52..=57 => Op::Delete {
                fd,
                key: self.key_for(c, shadow),
            },
            58..=60 => Op::LookupAndDelete {
                fd,
                key: self.key_for(c, shadow),
            },
            61..=64 => {
                let key = (c.below(3) != 0).then(|| self.key_for(c, shadow));
                Op::GetNextKey { fd, key }
            }
            65..=67 => Op::WalkKeys { fd },
            68..=71 => Op::LookupBatchAll {
                fd,
                count: c.below(4),
            },
            72..=73 => Op::LookupAndDeleteBatchAll {
                fd,
                count: c.below(4),
            },
            74..=77 => {
                let n = 1 + c.below(3);
                let entries = (0..n)
                    .map(|_| (self.key_for(c, shadow), self.value_for(c, shadow)))
                    .collect();
                let flags = if Self::chance(c, 10) {
                    BPF_NOEXIST
                } else {
                    BPF_ANY
                };
                Op::UpdateBatch { fd, entries, flags }
            }
            78..=79 => {
                let n = 1 + c.below(3);
                Op::DeleteBatch {
                    fd,
                    keys: (0..n).map(|_| self.key_for(c, shadow)).collect(),
                }
            }
            80..=85 => {
                // Half the time a closed slot: whether its map is still alive (held by an outer
                // map or another fd) or freed is exactly the refcount rule under test.
                let stale: Vec<u32> = (0..self.slots.len() as u32)
                    .filter(|i| self.slots[*i as usize].is_some_and(|s| s.stale))
                    .collect();
                let id = match self.pick_slot(c, any) {
                    _ if !stale.is_empty() && c.below(2) == 0 => {
                        IdRef::OfSlot(Self::pick(c, &stale))
                    }
                    Some(n) if !Self::chance(c, 5) => IdRef::OfSlot(n),
                    _ => IdRef::NeverUsed,
                };
                let shadow = match id {
                    IdRef::OfSlot(n) => self.slots[n as usize],
                    IdRef::NeverUsed => None,
                };
                // A fresh fd on a live map is not stale, whatever happened to the slot it came from.
                self.slots
                    .push(shadow.map(|s| Shadow { stale: false, ..s }));
                Op::GetFdById { id }
            }
            86..=88 => Op::Info { fd },
            _ => {
                if let FdRef::Slot(n) = fd {
                    if let Some(Some(shadow)) = self.slots.get_mut(n as usize) {
                        shadow.stale = true;
                    }
                }
                Op::Close { fd }
            }
        }
    }
}

/// Whether two creates describe maps that a meta built from one accepts for the other, modulo
/// `max_entries` (the generator's bias towards storable inner maps).
fn same_kind(a: &Create, b: &Create) -> bool {
    a.map_type == b.map_type
        && a.key_size == b.key_size
        && a.value_size == b.value_size
        && a.map_flags == b.map_flags
}

/// `len` ops from a seed.
pub fn ops_from_seed(seed: u64, len: usize, config: GenConfig) -> Vec<Op> {
    let mut choices = SeedChoices::new(seed);
    let mut gen = Generator::new(config);
    (0..len).map(|_| gen.next_op(&mut choices)).collect()
}

/// Ops from fuzz bytes until they run out, at most `max_ops`.
pub fn ops_from_bytes(bytes: &[u8], max_ops: usize, config: GenConfig) -> Vec<Op> {
    let mut choices = ByteChoices::new(bytes);
    let mut gen = Generator::new(config);
    let mut ops = Vec::new();
    while !choices.is_exhausted() && ops.len() < max_ops {
        ops.push(gen.next_op(&mut choices));
    }
    ops
}

/// One op per chunk (each chunk read as [`ByteChoices`]): the proptest-friendly form, where
/// removing a chunk removes exactly one op.
pub fn ops_from_chunks(chunks: &[Vec<u8>], config: GenConfig) -> Vec<Op> {
    let mut gen = Generator::new(config);
    chunks
        .iter()
        .map(|chunk| gen.next_op(&mut ByteChoices::new(chunk)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_gives_same_ops_and_different_seeds_differ() {
        let a = ops_from_seed(7, 50, GenConfig::default());
        assert_eq!(
            a,
            ops_from_seed(7, 50, GenConfig::default()),
            "generation must be deterministic"
        );
        assert_ne!(
            a,
            ops_from_seed(8, 50, GenConfig::default()),
            "the seed must matter"
        );
    }

    #[test]
    fn exhausted_bytes_read_as_zero_and_the_first_op_creates() {
        let mut c = ByteChoices::new(&[5]);
        assert_eq!(c.below(3), 2);
        assert_eq!(c.below(1000), 0);
        let ops = ops_from_chunks(&[vec![], vec![]], GenConfig::default());
        assert!(matches!(ops[0], Op::Create(_)), "{ops:?}");
    }

    #[test]
    fn generated_sequences_reach_outer_maps_and_batches() {
        let ops = ops_from_seed(1, 2000, GenConfig::default());
        let outer = ops
            .iter()
            .filter(|op| matches!(op, Op::Create(c) if c.inner.is_some()))
            .count();
        let stores = ops
            .iter()
            .filter(|op| {
                matches!(
                    op,
                    Op::Update {
                        value: Val::Fd(_),
                        ..
                    }
                )
            })
            .count();
        let batches = ops
            .iter()
            .filter(|op| matches!(op, Op::LookupBatchAll { .. }))
            .count();
        assert!(
            outer > 50 && stores > 50 && batches > 20,
            "outer {outer} stores {stores} batches {batches}"
        );
    }
}
