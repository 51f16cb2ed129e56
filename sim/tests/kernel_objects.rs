//! The example BPF objects (examples/objects, built into target/bpf by ci/build-objects) loaded
//! by mimic's loader into the live kernel and into the world: every program gets the kernel's
//! verdict, processed-instruction count and xlated program, and runs to the same r0 and maps.
//! Skips (saying so) without bpf(); fails with one line when the objects are not built.
#![cfg(feature = "kernel")]

use mimic_core::bpf::object::Object;
use mimic_core::mutants::{Mutant, Mutants};
use mimic_sim::kernel::object::check_object;
use mimic_sim::kernel::profile::probed;
use mimic_sim::kernel::KernelSys;
use std::path::{Path, PathBuf};

/// Every built example object, by name.
fn objects() -> Vec<(PathBuf, Object)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bpf");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (run ci/build-objects)", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".bpf.o"))
        .collect();
    paths.sort();
    assert!(
        paths.len() >= 2,
        "{}: the example objects are not built (run ci/build-objects)",
        dir.display()
    );
    paths
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let object = Object::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, object)
        })
        .collect()
}

#[test]
fn every_example_object_loads_verifies_fixes_up_and_runs_as_on_the_kernel() {
    let Some(mut kernel) = KernelSys::or_skip("example objects on the kernel") else {
        return;
    };
    let profile = probed(&mut kernel);
    for (path, object) in objects() {
        let name = path.display().to_string();
        let checks = check_object(&mut kernel, &object, &path, profile, Mutants::NONE);
        for c in &checks {
            assert!(
                c.passed(),
                "{}: {:?}\n{}",
                c.name,
                c.disagreed,
                c.examples.join("\n")
            );
        }
        let programs = checks[0].cases;
        assert!(programs > 0, "{name}: no program compared");
        assert_eq!(
            checks[2].cases, programs,
            "{name}: every program accepted by both"
        );
    }
    assert_eq!(kernel.open_fds(), 0, "every map and program closed");
}

/// The seed's point, seen through its C program: with `inline_dynamic_inner` mimic inlines the
/// inner array lookup against the template, where the kernel keeps the call.
#[test]
fn inline_dynamic_inner_shows_in_the_seed_objects_xlated_program() {
    let Some(mut kernel) = KernelSys::or_skip("example objects on the kernel") else {
        return;
    };
    let profile = probed(&mut kernel);
    let (path, object) = objects()
        .into_iter()
        .find(|(p, _)| p.ends_with("seed004.bpf.o"))
        .expect("seed004.bpf.o is built");
    let mutants = Mutants::only(Mutant::InlineDynamicInner);
    let checks = check_object(&mut kernel, &object, &path, profile, mutants);
    let xlated = checks
        .iter()
        .find(|c| c.name.starts_with("object/xlated/"))
        .unwrap();
    assert!(
        xlated.disagreed.contains_key("slot differs"),
        "the mutant's inlined lookup went unseen: {xlated:?}"
    );
}
