//! Scenarios as data: which maps exist, what set-up runs, which tasks race, what each task does,
//! and what each operation may legally return (semantics.md §7). [`crate::driver`] interprets a
//! [`Scenario`] on any `Platform`; the table [`SCENARIOS`] is the whole catalogue.
//!
//! Everything a scenario names is a small index: map slot `m` is the `m`-th entry of
//! [`Scenario::maps`] (its fd after set-up), program slot `p` the `p`-th [`Op::LoadProg`].
//! Keys of hash maps are chosen by role ([`Key::A`] .. [`Key::D`]) and resolved by the driver
//! against the hash's bucket count, so "same bucket" and "another bucket" stay true whatever the
//! hash function is.
//!
//! # Invariants
//! * Scenarios are tiny on purpose: loom explores every interleaving up to the preemption bound,
//!   so each extra operation multiplies the state space. Each tiny number says why it is enough.
//! * An [`Allow`] lists what §7 permits; anything else is a finding, never a silent pass.

use mimic_core::rcu::Flavor;
use mimic_core::uapi::{MapType, BPF_ANY, BPF_EXIST, BPF_F_INNER_MAP, BPF_F_NO_PREALLOC};
use mimic_core::world::{FaultPlan, WorldConfig};

/// Two CPUs (the smallest machine with a remote freelist and two spares) and four task slots:
/// the set-up task 0 plus up to three racing tasks.
pub const TINY: WorldConfig = WorldConfig {
    cpus: 2,
    max_tasks: 4,
    faults: FaultPlan {
        hash_alloc_fail_per_mille: 0,
    },
    lacks: mimic_core::history::Lacks::NONE,
};

/// One map of a scenario. `template` names the slot of the inner-map template (outer maps).
#[derive(Debug, Clone, Copy)]
pub struct MapDecl {
    pub name: &'static str,
    pub map_type: MapType,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
    pub template: Option<usize>,
}

/// An `ARRAY` of one 4-byte counter: the smallest inner map a program can write into.
const fn counter(name: &'static str) -> MapDecl {
    MapDecl {
        name,
        map_type: MapType::Array,
        value_size: 4,
        max_entries: 1,
        flags: 0,
        template: None,
    }
}

/// A dynamic inner array (`BPF_F_INNER_MAP`) of `max_entries` counters.
const fn dyn_array(name: &'static str, max_entries: u32) -> MapDecl {
    MapDecl {
        name,
        map_type: MapType::Array,
        value_size: 4,
        max_entries,
        flags: BPF_F_INNER_MAP,
        template: None,
    }
}

/// An outer map of `max_entries` slots over the template in slot 0.
const fn outer(name: &'static str, map_type: MapType, max_entries: u32, flags: u32) -> MapDecl {
    MapDecl {
        name,
        map_type,
        value_size: 4,
        max_entries,
        flags,
        template: Some(0),
    }
}

/// A plain `HASH` of `max_entries` 4-byte values (no inner maps).
const fn hash(name: &'static str, max_entries: u32, flags: u32) -> MapDecl {
    MapDecl {
        name,
        map_type: MapType::Hash,
        value_size: 4,
        max_entries,
        flags,
        template: None,
    }
}

/// A key by role. Hash keys: `A` and `B` share a bucket (and differ in `hash & 7`, so the
/// unmasked re-entrancy slot of `lock_slot_unmasked` tells them apart), `C` lives in another
/// bucket, `D` is a third key of `A`'s bucket. `Index(i)` is an array index (or a literal key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    A,
    B,
    C,
    D,
    Index(u32),
}

/// A value to store: an inner map (by slot: its fd goes in) or a plain number.
#[derive(Debug, Clone, Copy)]
pub enum Value {
    Map(usize),
    Num(u32),
}

/// What an operation may return besides success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allow {
    /// Only success.
    Ok,
    /// Success or `-ENOENT` (the key may be gone: a racing delete).
    OkOrEnoent,
    /// Success or `-EBUSY` (a nested context found the bucket's re-entrancy slot taken).
    OkOrEbusy,
    /// Success or `-EBADF` (the fd may have been closed by a racing task).
    OkOrEbadf,
}

/// What a program does with the inner map it found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InnerAccess {
    /// `inner[index] += 1` (an atomic add): a write into freed memory is a use after free.
    Add { index: u32 },
}

/// One operation. User-space operations are syscalls; `Prog*` run inside a read-side section.
#[derive(Debug, Clone, Copy)]
pub enum Op {
    /// A program is loaded naming `maps` (its `used_maps`), sleepable or not.
    LoadProg {
        maps: &'static [usize],
        sleepable: bool,
    },
    /// The program in slot `prog` is unloaded (its map references are dropped).
    UnloadProg {
        prog: usize,
    },
    Update {
        map: usize,
        key: Key,
        value: Value,
        flags: u64,
        allow: Allow,
    },
    Delete {
        map: usize,
        key: Key,
        allow: Allow,
    },
    /// A user-space lookup (an outer map answers an inner map id).
    Lookup {
        map: usize,
        key: Key,
        allow: Allow,
    },
    Close {
        map: usize,
    },
    /// User space reads the inner map id at `outer[key]` and opens it by id
    /// (`BPF_MAP_GET_FD_BY_ID`): `-ENOENT` once its refcnt reached 0 (the id goes first), else an
    /// fd whose map info names that id; the fd is closed again.
    OpenInnerById {
        outer: usize,
        key: Key,
    },
    /// `BPF_MAP_LOOKUP_AND_DELETE_BATCH` from the start until the end, `count` entries a call.
    LookupAndDeleteBatch {
        map: usize,
        count: u32,
    },
    /// User space reads `map[key]` (a counter) into register `reg` ("drain").
    Drain {
        map: usize,
        key: Key,
        reg: usize,
    },
    /// After the run: `map[key]` must still equal register `reg`; a program write that landed
    /// after the drain is a lost update.
    ExpectDrained {
        map: usize,
        key: Key,
        reg: usize,
    },
    /// A program of flavour `flavor` looks up `outer[key]` inside one read-side section and, if
    /// it finds an inner map, does `access` on it. `must_find`: the key is always present, so
    /// NULL is a missing key.
    ProgOuter {
        flavor: Flavor,
        outer: usize,
        key: Key,
        must_find: bool,
        access: InnerAccess,
    },
    /// A program looks up `map[key]` in a plain hash inside a section (a lockless bucket walk).
    ProgLookup {
        map: usize,
        key: Key,
        must_find: bool,
    },
    /// A program updates `map[key] = value` (helper 2) on a plain hash.
    ProgUpdate {
        map: usize,
        key: Key,
        value: u32,
        allow: Allow,
    },
    /// The real BPF path: the executor runs "inner = outer[0]; if inner: inner[index] += 1"
    /// through `WorldEnv`, inside an RCU section.
    BpfOuterAdd {
        outer: usize,
        index: u32,
    },
}

/// One racing task: the CPU it runs on and its operations, in order.
#[derive(Debug, Clone, Copy)]
pub struct TaskDecl {
    pub name: &'static str,
    /// Tasks on distinct CPUs are independent; two tasks on one CPU model a nested context (an
    /// interrupt-time program inside the other), which is what per-CPU state must survive.
    pub cpu: usize,
    pub ops: &'static [Op],
}

/// A concurrent scenario.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// The test name: says what races what.
    pub name: &'static str,
    /// One line on the race and the invariant it pins.
    pub race: &'static str,
    pub config: WorldConfig,
    /// Created in order during set-up; slot 0 is the template when there is an outer map.
    pub maps: &'static [MapDecl],
    /// Sequential, before the tasks start (task 0, CPU 0).
    pub setup: &'static [Op],
    pub tasks: &'static [TaskDecl],
    /// Sequential, after every task joined, before the quiescence audit.
    pub finally: &'static [Op],
    /// A lower loom preemption bound for this scenario, with the reason in the table. loom
    /// explores every choice between runnable threads after a `yield_now`, so two tasks that
    /// both wait for a grace period can be scheduled to yield to each other forever (loom has no
    /// fairness): such a scenario needs a bound under which that path is not explored.
    pub loom_bound_cap: Option<usize>,
}

impl Scenario {
    /// The scenario with this name.
    pub fn named(name: &str) -> Option<&'static Scenario> {
        SCENARIOS.iter().find(|s| s.name == name)
    }
}

/// A `BPF_ANY` update that stores inner map slot `inner`; only success is allowed.
const fn store(map: usize, key: Key, inner: usize) -> Op {
    Op::Update {
        map,
        key,
        value: Value::Map(inner),
        flags: BPF_ANY,
        allow: Allow::Ok,
    }
}

/// A `BPF_EXIST` update to inner map slot `inner`: the key is present, so this replaces its
/// inner map; only success is allowed.
const fn replace(map: usize, key: Key, inner: usize) -> Op {
    Op::Update {
        map,
        key,
        value: Value::Map(inner),
        flags: BPF_EXIST,
        allow: Allow::Ok,
    }
}

/// A plain `BPF_ANY` update of a number (an htab value); only success is allowed.
const fn update(map: usize, key: Key, value: u32) -> Op {
    Op::Update {
        map,
        key,
        value: Value::Num(value),
        flags: BPF_ANY,
        allow: Allow::Ok,
    }
}

/// A user-space delete; only success is allowed.
const fn delete(map: usize, key: Key) -> Op {
    Op::Delete {
        map,
        key,
        allow: Allow::Ok,
    }
}

/// A plain-RCU program that adds 1 to `inner[0]` of `outer[key]`.
const fn reader(outer: usize, key: Key, must_find: bool) -> Op {
    Op::ProgOuter {
        flavor: Flavor::Rcu,
        outer,
        key,
        must_find,
        access: InnerAccess::Add { index: 0 },
    }
}

/// A racing task named `name` that runs `ops` in order on `cpu`.
const fn task(name: &'static str, cpu: usize, ops: &'static [Op]) -> TaskDecl {
    TaskDecl { name, cpu, ops }
}

// Map slots shared by the map-in-map scenarios: 0 template, 1 outer, 2.. inner maps.
const TPL: usize = 0;
const OUTER: usize = 1;
const IN_A: usize = 2;
const IN_B: usize = 3;
const IN_C: usize = 4;
const IN_D: usize = 5;

/// The program that reads `outer[0]`, loaded in set-up as program 0.
const LOAD_READER: Op = Op::LoadProg {
    maps: &[OUTER],
    sleepable: false,
};

/// Set-up of the replace/delete scenarios: `outer[k] = A`, A's fd closed (so the outer map holds
/// its only reference: a replace or delete puts it to 0), the reader program loaded.
const PUBLISH_A_CLOSE: &[Op] = &[
    store(OUTER, Key::A, IN_A),
    Op::Close { map: IN_A },
    LOAD_READER,
];
const PUBLISH_A0_CLOSE: &[Op] = &[
    store(OUTER, Key::Index(0), IN_A),
    Op::Close { map: IN_A },
    LOAD_READER,
];

/// Set-up of the reader-behind-a-neighbour scenarios: `outer[A] = A`, then `outer[B] = B` (B,
/// inserted last, heads A's bucket, so a reader of A walks over it first), both fds closed, the
/// reader program loaded.
const PUBLISH_A_B_CLOSE: &[Op] = &[
    store(OUTER, Key::A, IN_A),
    store(OUTER, Key::B, IN_B),
    Op::Close { map: IN_A },
    Op::Close { map: IN_B },
    LOAD_READER,
];

/// Maps of the one-slot array-of-maps scenarios: the template, the outer map and the inner
/// counters A (stored in set-up) and B (stored over it by a racing task).
const AOM_ONE_SLOT_A_B: &[MapDecl] = &[
    counter("template"),
    outer("outer", MapType::ArrayOfMaps, 1, 0),
    counter("A"),
    counter("B"),
];

/// Maps of the two-entry (prealloc) hash-of-maps scenarios with three inner counters A, B, C.
const HOM_TWO_ENTRIES_A_B_C: &[MapDecl] = &[
    counter("template"),
    outer("outer", MapType::HashOfMaps, 2, 0),
    counter("A"),
    counter("B"),
    counter("C"),
];

/// Set-up of the htab walker scenarios (map 0): B, then A in the same bucket. A is inserted
/// last, so it is the bucket head: the walker stands on it first.
const HTAB_B_THEN_A: &[Op] = &[update(0, Key::B, 2), update(0, Key::A, 1)];

/// The walker of the htab scenarios: a program on CPU 1 looks up B (always present) in map 0,
/// walking over A first.
const WALKER_TO_B: TaskDecl = task(
    "walker",
    1,
    &[Op::ProgLookup {
        map: 0,
        key: Key::B,
        must_find: true,
    }],
);

/// The catalogue. Every scenario runs under loom, shuttle random and shuttle PCT.
pub static SCENARIOS: &[Scenario] = &[
    // 1. Array of maps: a program writes into outer[0]'s inner map while it is replaced.
    Scenario {
        name: "aom_reader_vs_replace",
        race: "program writes inner map of outer[0] while user space replaces outer[0] (grace period)",
        config: TINY,
        // One slot: the race is about one inner map's lifetime, more slots add nothing.
        maps: AOM_ONE_SLOT_A_B,
        setup: PUBLISH_A0_CLOSE,
        tasks: &[
            task("reader", 1, &[reader(OUTER, Key::Index(0), true)]),
            task("updater", 0, &[store(OUTER, Key::Index(0), IN_B)]),
        ],
        finally: &[],
        loom_bound_cap: None,
    },
    Scenario {
        name: "aom_reader_vs_delete",
        race: "program writes inner map of outer[0] while user space deletes outer[0] (grace period)",
        config: TINY,
        maps: &[
            counter("template"),
            outer("outer", MapType::ArrayOfMaps, 1, 0),
            counter("A"),
        ],
        setup: PUBLISH_A0_CLOSE,
        tasks: &[
            // §7: the slot may already be empty.
            task("reader", 1, &[reader(OUTER, Key::Index(0), false)]),
            task("deleter", 0, &[delete(OUTER, Key::Index(0))]),
        ],
        finally: &[],
        loom_bound_cap: None,
    },
    // 2. Hash of maps, prealloc and no-prealloc: in-place replace under a reader.
    Scenario {
        name: "hom_prealloc_reader_vs_replace",
        race: "program writes inner map of outer[A] while user space replaces it in place (prealloc htab)",
        config: TINY,
        // Two entries: room for the key and a spare-element swap on each CPU.
        maps: &[
            counter("template"),
            outer("outer", MapType::HashOfMaps, 2, 0),
            counter("A"),
            counter("B"),
        ],
        setup: PUBLISH_A_CLOSE,
        tasks: &[
            task("reader", 1, &[reader(OUTER, Key::A, true)]),
            task("updater", 0, &[replace(OUTER, Key::A, IN_B)]),
        ],
        finally: &[],
        loom_bound_cap: None,
    },
    Scenario {
        name: "hom_no_prealloc_reader_vs_replace",
        race: "program writes inner map of outer[A] while user space replaces it in place (BPF_F_NO_PREALLOC)",
        config: TINY,
        maps: &[
            counter("template"),
            outer("outer", MapType::HashOfMaps, 2, BPF_F_NO_PREALLOC),
            counter("A"),
            counter("B"),
        ],
        setup: PUBLISH_A_CLOSE,
        tasks: &[
            task("reader", 1, &[reader(OUTER, Key::A, true)]),
            task("updater", 0, &[replace(OUTER, Key::A, IN_B)]),
        ],
        finally: &[],
        loom_bound_cap: None,
    },
    Scenario {
        name: "hom_prealloc_reader_vs_delete",
        race: "program writes inner map of outer[A] while user space deletes the key (element back on the freelist)",
        config: TINY,
        maps: &[
            counter("template"),
            outer("outer", MapType::HashOfMaps, 2, 0),
            counter("A"),
        ],
        setup: PUBLISH_A_CLOSE,
        tasks: &[
            task("reader", 1, &[reader(OUTER, Key::A, false)]),
            task("deleter", 0, &[delete(OUTER, Key::A)]),
        ],
        finally: &[],
        loom_bound_cap: None,
    },
    // 3. Prealloc element reuse under a bucket walker.
    Scenario {
        name: "htab_walker_vs_reuse_into_other_bucket",
        race: "reader walks A -> B for B while A is deleted and its element reused for C in another bucket (nulls restart)",
        config: TINY,
        // Two entries, so two buckets: A and B share one, C has the other. Capacity 2 + 2 spares.
        maps: &[hash("htab", 2, 0)],
        setup: HTAB_B_THEN_A,
        tasks: &[
            WALKER_TO_B,
            // Same CPU for delete and insert: the per-CPU LIFO freelist hands A's element
            // straight back.
            task("reuser", 0, &[delete(0, Key::A), update(0, Key::C, 3)]),
        ],
        finally: &[],
        loom_bound_cap: None,
    },
    Scenario {
        name: "htab_walker_vs_reuse_into_same_bucket",
        race: "reader walks A -> B for B while A is deleted and its element reused for D in the same bucket",
        config: TINY,
        // Two entries, two buckets: D shares A's bucket, so the reused element stays in it.
        maps: &[hash("htab", 2, 0)],
        setup: HTAB_B_THEN_A,
        tasks: &[
            WALKER_TO_B,
            task("reuser", 0, &[delete(0, Key::A), update(0, Key::D, 4)]),
        ],
        finally: &[],
        loom_bound_cap: None,
    },
    Scenario {
        name: "htab_no_prealloc_walker_vs_reuse_into_other_bucket",
        race: "reader walks A -> B for B while A is deleted and its (type-stable, quickly reused) element goes to C in another bucket (BPF_F_NO_PREALLOC)",
        config: TINY,
        maps: &[hash("htab", 2, BPF_F_NO_PREALLOC)],
        setup: HTAB_B_THEN_A,
        tasks: &[
            WALKER_TO_B,
            task("reuser", 0, &[delete(0, Key::A), update(0, Key::C, 3)]),
        ],
        finally: &[],
        loom_bound_cap: None,
    },
    // 4. Sleepable reader (tasks-trace section) against replace.
    Scenario {
        name: "sleepable_reader_vs_replace",
        race: "sleepable program (tasks-trace section) writes outer[0]'s inner map while it is replaced",
        config: TINY,
        maps: AOM_ONE_SLOT_A_B,
        setup: &[
            store(OUTER, Key::Index(0), IN_A),
            Op::Close { map: IN_A },
            // A sleepable program uses the outer map: its sleepable_refcnt makes puts wait for
            // a tasks-trace grace period too.
            Op::LoadProg {
                maps: &[OUTER],
                sleepable: true,
            },
        ],
        tasks: &[
            task(
                "sleepable reader",
                1,
                &[Op::ProgOuter {
                    flavor: Flavor::TasksTrace,
                    outer: OUTER,
                    key: Key::Index(0),
                    must_find: true,
                    access: InnerAccess::Add { index: 0 },
                }],
            ),
            task("updater", 0, &[store(OUTER, Key::Index(0), IN_B)]),
        ],
        finally: &[],
        loom_bound_cap: None,
    },
    // 5. Two updaters replace one always-present key; a reader must always find it.
    Scenario {
        name: "hom_two_updaters_one_key_reader_always_finds_it",
        race: "two updaters replace outer[A] (B is A's bucket neighbour in front) while a reader must always find A",
        config: TINY,
        // Two entries: A and its same-bucket neighbour B, which the reader walks over first.
        maps: &[
            counter("template"),
            outer("outer", MapType::HashOfMaps, 2, 0),
            counter("A"),
            counter("B"),
            counter("C"),
            counter("D"),
        ],
        setup: PUBLISH_A_B_CLOSE,
        tasks: &[
            task("reader", 1, &[reader(OUTER, Key::A, true)]),
            task("updater 1", 0, &[replace(OUTER, Key::A, IN_C)]),
            // Its own CPU (the reader's, which takes no locks and uses no per-CPU state): the
            // two updaters each own a per-CPU spare, as two syscalls on two CPUs do.
            task("updater 2", 1, &[replace(OUTER, Key::A, IN_D)]),
        ],
        finally: &[],
        // Both updaters wait for the reader's grace period: at bound 2 loom schedules the
        // two waiters yielding to each other without end (no fairness). Bound 1 still covers
        // "reader preempted on the neighbour while one replace runs"; the two halves below run
        // at the full bound.
        loom_bound_cap: Some(1),
    },
    Scenario {
        name: "hom_replace_vs_reader_behind_neighbour_always_finds_key",
        race: "one updater replaces outer[A] while a reader walks over A's bucket neighbour B: A must always be found",
        config: TINY,
        maps: HOM_TWO_ENTRIES_A_B_C,
        setup: PUBLISH_A_B_CLOSE,
        tasks: &[
            task("reader", 1, &[reader(OUTER, Key::A, true)]),
            task("updater", 0, &[replace(OUTER, Key::A, IN_C)]),
        ],
        finally: &[],
        loom_bound_cap: None,
    },
    Scenario {
        name: "hom_two_updaters_replace_one_key",
        race: "two updaters on two CPUs replace outer[A] (spare elements, in-place update): refcounts and freelist stay exact",
        config: TINY,
        maps: &[
            counter("template"),
            outer("outer", MapType::HashOfMaps, 2, 0),
            counter("A"),
            counter("C"),
            counter("D"),
        ],
        setup: &[store(OUTER, Key::A, IN_A), Op::Close { map: IN_A }],
        tasks: &[
            task("updater 1", 0, &[replace(OUTER, Key::A, 3)]),
            task("updater 2", 1, &[replace(OUTER, Key::A, 4)]),
        ],
        finally: &[],
        loom_bound_cap: None,
    },
    // 6. Closing the outer map's last fd while inner maps are stored and a reader is active.
    Scenario {
        name: "close_outer_last_fd_vs_active_reader",
        race: "user space closes the outer map's last fd while a program (which then unloads) reads outer[0]",
        config: TINY,
        // Two slots, both filled: the outer map's free must put every stored inner map once.
        maps: &[
            counter("template"),
            outer("outer", MapType::ArrayOfMaps, 2, 0),
            counter("A"),
            counter("B"),
        ],
        setup: &[
            store(OUTER, Key::Index(0), IN_A),
            store(OUTER, Key::Index(1), IN_B),
            Op::Close { map: IN_A },
            Op::Close { map: IN_B },
            Op::Close { map: TPL },
            LOAD_READER,
        ],
        tasks: &[
            task(
                "reader, then unload",
                1,
                &[
                    reader(OUTER, Key::Index(0), true),
                    Op::UnloadProg { prog: 0 },
                ],
            ),
            task("closer", 0, &[Op::Close { map: OUTER }]),
        ],
        finally: &[],
        loom_bound_cap: None,
    },
    Scenario {
        name: "aom_user_lookup_vs_replace",
        race: "user space looks up outer[0] (an inner map id, read inside the syscall's RCU section) while another task replaces outer[0] and the old map's deferred free runs",
        config: TINY,
        maps: AOM_ONE_SLOT_A_B,
        setup: &[store(OUTER, Key::Index(0), IN_A), Op::Close { map: IN_A }],
        tasks: &[
            task(
                "user lookup",
                1,
                &[Op::Lookup {
                    map: OUTER,
                    key: Key::Index(0),
                    allow: Allow::Ok,
                }],
            ),
            task("updater", 0, &[store(OUTER, Key::Index(0), IN_B)]),
        ],
        finally: &[],
        loom_bound_cap: None,
    },
    Scenario {
        name: "get_fd_by_id_vs_last_put_of_replaced_inner",
        race: "user space opens outer[0]'s inner map by id while another task replaces outer[0], dropping that map's last reference (id released first)",
        config: TINY,
        maps: AOM_ONE_SLOT_A_B,
        setup: &[store(OUTER, Key::Index(0), IN_A), Op::Close { map: IN_A }],
        tasks: &[
            task(
                "opener",
                1,
                &[Op::OpenInnerById {
                    outer: OUTER,
                    key: Key::Index(0),
                }],
            ),
            task("updater", 0, &[store(OUTER, Key::Index(0), IN_B)]),
        ],
        finally: &[],
        loom_bound_cap: None,
    },
    // 7. Batch lookup-and-delete against a reader and an updater.
    Scenario {
        name: "hom_lookup_and_delete_batch_vs_reader",
        race: "user space drains outer by lookup-and-delete batch while a program writes outer[A]'s inner map",
        config: TINY,
        // Two entries: one key read by the program, one rewritten by the updater.
        maps: HOM_TWO_ENTRIES_A_B_C,
        setup: &[
            store(OUTER, Key::A, IN_A),
            store(OUTER, Key::C, IN_B),
            Op::Close { map: IN_A },
            Op::Close { map: IN_B },
            LOAD_READER,
        ],
        tasks: &[
            // One entry a call: the smallest buffer exercises the -ENOSPC retry and resume.
            task(
                "batch drainer",
                0,
                &[Op::LookupAndDeleteBatch {
                    map: OUTER,
                    count: 1,
                }],
            ),
            task("reader", 1, &[reader(OUTER, Key::A, false)]),
        ],
        finally: &[],
        loom_bound_cap: None,
    },
    Scenario {
        name: "hom_lookup_and_delete_batch_vs_updater",
        race: "user space drains outer by lookup-and-delete batch while another task re-stores outer[C]",
        config: TINY,
        maps: HOM_TWO_ENTRIES_A_B_C,
        setup: &[
            store(OUTER, Key::A, IN_A),
            store(OUTER, Key::C, IN_B),
            Op::Close { map: IN_A },
            Op::Close { map: IN_B },
        ],
        tasks: &[
            task(
                "batch drainer",
                0,
                &[Op::LookupAndDeleteBatch {
                    map: OUTER,
                    count: 1,
                }],
            ),
            task("updater", 1, &[store(OUTER, Key::C, IN_C)]),
        ],
        finally: &[],
        loom_bound_cap: None,
    },
    // 8. Dynamic inner arrays of different sizes swapped under a reader (a real BPF program).
    Scenario {
        name: "dynamic_inner_arrays_swapped_under_bpf_program",
        race: "a BPF program writes inner[2] of outer[0] while a 1-entry and a 3-entry BPF_F_INNER_MAP array are swapped",
        config: TINY,
        // Template of 1 entry, inner arrays of 1 and 3: index 2 is out of range in the small one
        // (the program must get NULL) and in range in the big one.
        maps: &[
            dyn_array("template", 1),
            outer("outer", MapType::ArrayOfMaps, 1, 0),
            dyn_array("small", 1),
            dyn_array("big", 3),
        ],
        setup: PUBLISH_A0_CLOSE,
        tasks: &[
            task(
                "bpf program",
                1,
                &[Op::BpfOuterAdd {
                    outer: OUTER,
                    index: 2,
                }],
            ),
            task("swapper", 0, &[store(OUTER, Key::Index(0), IN_B)]),
        ],
        finally: &[],
        loom_bound_cap: None,
    },
    // no_wait_after_update: user space swaps the inner map, then drains the old one.
    Scenario {
        name: "drain_old_inner_after_swap",
        race: "user space swaps outer[0] from A to B then drains A while a program adds to outer[0]'s counter (lost update)",
        config: TINY,
        maps: AOM_ONE_SLOT_A_B,
        // A's fd stays open: user space drains it after the swap.
        setup: &[store(OUTER, Key::Index(0), IN_A), LOAD_READER],
        tasks: &[
            task("counting program", 1, &[reader(OUTER, Key::Index(0), true)]),
            task(
                "swap then drain",
                0,
                &[
                    store(OUTER, Key::Index(0), IN_B),
                    Op::Drain {
                        map: IN_A,
                        key: Key::Index(0),
                        reg: 0,
                    },
                ],
            ),
        ],
        finally: &[Op::ExpectDrained {
            map: IN_A,
            key: Key::Index(0),
            reg: 0,
        }],
        loom_bound_cap: None,
    },
    // lock_slot_unmasked: an interrupt-time program updates a key of a bucket its CPU holds.
    Scenario {
        name: "nested_program_update_same_bucket_same_cpu",
        race: "a program nested on CPU 0 updates B while CPU 0's syscall updates A in the same bucket (-EBUSY, never a self-deadlock)",
        config: TINY,
        // Two entries, two buckets: the correct re-entrancy slot is the bucket (hash & 1).
        maps: &[hash("htab", 2, 0)],
        setup: &[],
        tasks: &[
            task(
                "syscall on cpu 0",
                0,
                &[Op::Update {
                    map: 0,
                    key: Key::A,
                    value: Value::Num(1),
                    flags: BPF_ANY,
                    allow: Allow::OkOrEbusy,
                }],
            ),
            task(
                "nested program on cpu 0",
                0,
                &[Op::ProgUpdate {
                    map: 0,
                    key: Key::B,
                    value: 2,
                    allow: Allow::OkOrEbusy,
                }],
            ),
        ],
        finally: &[],
        loom_bound_cap: None,
    },
];
