//! Tail calls from a clang-built object: `examples/objects/dispatch.bpf.c` (built into
//! target/bpf by ci/build-objects) loaded into the world by mimic's loader, its `PROG_ARRAY`
//! filled from the object's `.values`, and the dispatcher run on frames: each EtherType reaches
//! the handler the object put in its slot, an empty slot falls through, and a slot the loader
//! cannot fill is an error naming the map, the slot and the program.

use mimic_core::bpf::object::load::{create_maps, fill_prog_arrays, LoadedMaps};
use mimic_core::bpf::object::Object;
use mimic_core::bpf::verifier::packet_cases::frame_named;
use mimic_core::bpf::verifier::world::{prog_load, LoadedProg};
use mimic_core::bpf::verifier::VerifyOpts;
use mimic_core::mutants::Mutants;
use mimic_core::sync::Std;
use mimic_core::sys::Process;
use mimic_core::uapi::BpfSys;
use mimic_core::world::WorldConfig;
use std::collections::BTreeMap;
use std::path::Path;

const XDP_DROP: u64 = 1;
const XDP_PASS: u64 = 2;
const XDP_TX: u64 = 3;

fn dispatch_object() -> Object {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bpf/dispatch.bpf.o");
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run ci/build-objects)", path.display()));
    Object::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// An IPv6 UDP frame.
fn ipv6_frame() -> Vec<u8> {
    let mut frame = vec![2u8; 6];
    frame.extend([4u8; 6]);
    frame.extend([0x86, 0xdd, 0x60, 0, 0, 0, 0, 8, 17, 64]);
    frame.extend([0u8; 32]);
    frame.extend([0x30, 0x39, 0, 53, 0, 8, 0, 0]);
    frame
}

/// The object's maps and every program, loaded into a fresh world.
fn load(object: &Object) -> (Process<Std>, LoadedMaps, BTreeMap<String, LoadedProg>) {
    let mut sys = Process::<Std>::create(Mutants::NONE, WorldConfig::default());
    let maps = create_maps(&mut sys, object).expect("the object's maps");
    let mut progs = BTreeMap::new();
    for program in &object.programs {
        let opts = program
            .kind
            .verify_opts(VerifyOpts::default())
            .expect("a modelled program type");
        let insns = program.with_fds(&maps.fds).expect("every map has an fd");
        let loaded = prog_load(sys.world(), &insns, opts)
            .unwrap_or_else(|e| panic!("{}: {e}", program.name));
        progs.insert(program.name.clone(), loaded);
    }
    (sys, maps, progs)
}

#[test]
fn the_dispatcher_reaches_the_handlers_its_prog_array_names() {
    let object = dispatch_object();
    let handlers = object
        .maps
        .iter()
        .find(|m| m.name == "handlers")
        .expect("the PROG_ARRAY");
    assert_eq!(
        handlers.slots,
        vec![
            (0, "handle_ipv4".to_string()),
            (1, "handle_ipv6".to_string())
        ]
    );
    let (mut sys, maps, progs) = load(&object);
    let run = |sys: &Process<Std>, frame: &[u8]| {
        progs["dispatch"]
            .test_run_packet(sys.world(), frame)
            .expect("runs")
            .0
    };
    let web = frame_named("web", 1234).expect("a generated frame");
    let arp = frame_named("arp", 1234).expect("a generated frame");
    assert_eq!(
        run(&sys, &web),
        XDP_PASS,
        "no slot filled yet: falls through"
    );
    fill_prog_arrays(&mut sys, &object, &maps, |name| {
        progs.get(name).map(|p| p.installed.fd)
    })
    .expect("both handlers are loaded");
    assert_eq!(run(&sys, &web), XDP_TX, "IPv4 reaches handle_ipv4");
    assert_eq!(
        run(&sys, &ipv6_frame()),
        XDP_DROP,
        "IPv6 reaches handle_ipv6"
    );
    assert_eq!(run(&sys, &arp), XDP_PASS, "ARP's slot is empty");
    let handlers_fd = maps.fds[0];
    sys.map_delete_elem(handlers_fd, &1u32.to_ne_bytes())
        .expect("the IPv6 slot was full");
    assert_eq!(run(&sys, &ipv6_frame()), XDP_PASS, "its slot emptied");
    // What each program counted: seen[0] and seen[1] the runs that reached handle_ipv4 and
    // handle_ipv6, seen[3] those that fell through (the first web run, ARP, the last IPv6).
    let seen_fd = maps.fds[1];
    let seen = |sys: &mut Process<Std>, slot: u32| {
        let v = sys.map_lookup_elem(seen_fd, &slot.to_ne_bytes()).unwrap();
        u64::from_ne_bytes(v[..8].try_into().unwrap())
    };
    assert_eq!(
        [0, 1, 2, 3].map(|s| seen(&mut sys, s)),
        [1, 1, 0, 3],
        "per-slot counts"
    );
}

#[test]
fn a_slot_naming_a_program_that_is_not_loaded_is_an_error_naming_the_map_slot_and_program() {
    let object = dispatch_object();
    let (mut sys, maps, progs) = load(&object);
    let err = fill_prog_arrays(&mut sys, &object, &maps, |name| {
        (name != "handle_ipv6")
            .then(|| progs.get(name).map(|p| p.installed.fd))
            .flatten()
    })
    .expect_err("handle_ipv6 is missing");
    let text = err.to_string();
    for part in ["handlers", "slot 1", "handle_ipv6", "not loaded"] {
        assert!(text.contains(part), "{part:?} missing from {text:?}");
    }
}
