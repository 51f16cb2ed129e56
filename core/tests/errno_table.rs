//! The errno table of semantics.md §2–4 (`mimic_core::model::cases`) against every `BpfSys` that
//! exists in this crate. The table is data in the library so a kernel backend runs the same rows.

use mimic_core::model::cases::{cases, errno_table, run_table};
use mimic_core::model::{FdPolicy, ModelConfig, RefModel};

#[test]
fn every_errno_row_holds_on_the_reference_model() {
    match errno_table(RefModel::new) {
        Ok(ran) => assert!(ran >= 150, "the table shrank to {ran} cases"),
        Err(report) => panic!("{report}"),
    }
}

#[test]
fn every_errno_row_holds_whatever_the_fd_and_id_numbering() {
    let config = ModelConfig {
        fd_policy: FdPolicy::Increasing { first: 500 },
        first_id: 77_000,
        id_step: 13,
        ..ModelConfig::default()
    };
    if let Err(report) = errno_table(|| RefModel::with_config(config)) {
        panic!("{report}");
    }
}

#[test]
fn every_case_names_its_source_and_checks_something() {
    for case in cases() {
        assert!(!case.steps.is_empty(), "{} has no steps", case.name);
        let known =
            case.source.starts_with('§') || case.source == "kernel" || case.source == "model";
        assert!(known, "{}: unknown source {:?}", case.name, case.source);
    }
    let names: std::collections::BTreeSet<_> = cases().into_iter().map(|c| c.name).collect();
    assert_eq!(names.len(), cases().len(), "case names must be unique");
}

#[test]
fn the_spec_rows_alone_pass_too() {
    // The rows semantics.md states (source `§N`), without the kernel-measured ones before them:
    // each row must hold on its own. A subset that shrank to nothing would prove nothing.
    let total = cases().len();
    let spec_rows = cases().iter().filter(|c| c.source.starts_with('§')).count();
    assert!(
        spec_rows >= 50 && spec_rows < total,
        "{spec_rows} spec rows of {total}"
    );
    match run_table(RefModel::new, &cases(), |c| c.source.starts_with('§')) {
        Ok(ran) => assert_eq!(ran, spec_rows, "every spec row ran"),
        Err(report) => panic!("{report}"),
    }
}

#[test]
fn the_table_expects_every_errno_of_sections_2_to_4_that_needs_no_race_or_fault() {
    use mimic_core::errno::Errno;
    use mimic_core::model::cases::Expect;
    let expected: std::collections::BTreeSet<Errno> = cases()
        .iter()
        .flat_map(|c| c.steps.iter())
        .filter_map(|s| match &s.expect {
            Expect::Err(e) => Some(*e),
            Expect::Count(Err((_, e))) => Some(*e),
            _ => None,
        })
        .collect();
    // EBUSY (re-entrancy) and ENOMEM (allocation failure) need concurrency or fault injection;
    // ENOSPC needs two keys in one bucket, which depends on the implementation's hash.
    for errno in [
        Errno::EINVAL,
        Errno::EBADF,
        Errno::ENOTSUPP,
        Errno::E2BIG,
        Errno::EEXIST,
        Errno::ENOENT,
    ] {
        assert!(expected.contains(&errno), "no case expects {errno}");
    }
}

/// A model that reports E2BIG as EINVAL: the table must notice.
struct E2bigAsEinval(RefModel);

macro_rules! forward {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        $(fn $name(&mut self, $($arg: $ty),*) -> $ret { self.0.$name($($arg),*) })*
    };
}

fn rewrite(e: mimic_core::fault::Error) -> mimic_core::fault::Error {
    use mimic_core::errno::Errno;
    match e.errno() {
        Some(Errno::E2BIG) => Errno::EINVAL.into(),
        _ => e,
    }
}

impl mimic_core::uapi::BpfSys for E2bigAsEinval {
    forward! {
        map_create(attr: &mimic_core::uapi::MapAttr) -> Result<i32, mimic_core::fault::Error>;
        map_lookup_elem(fd: i32, key: &[u8]) -> Result<Vec<u8>, mimic_core::fault::Error>;
        map_lookup_and_delete_elem(fd: i32, key: &[u8]) -> Result<Vec<u8>, mimic_core::fault::Error>;
        map_get_next_key(fd: i32, key: Option<&[u8]>) -> Result<Vec<u8>, mimic_core::fault::Error>;
        map_lookup_batch(fd: i32, in_batch: Option<u32>, count: u32) -> Result<mimic_core::uapi::BatchOut, mimic_core::fault::Error>;
        map_lookup_and_delete_batch(fd: i32, in_batch: Option<u32>, count: u32) -> Result<mimic_core::uapi::BatchOut, mimic_core::fault::Error>;
        map_update_batch(fd: i32, keys: &[Vec<u8>], values: &[Vec<u8>], flags: u64) -> Result<u32, (u32, mimic_core::fault::Error)>;
        map_delete_batch(fd: i32, keys: &[Vec<u8>]) -> Result<u32, (u32, mimic_core::fault::Error)>;
        map_get_fd_by_id(id: u32) -> Result<i32, mimic_core::fault::Error>;
        map_info(fd: i32) -> Result<mimic_core::uapi::MapInfo, mimic_core::fault::Error>;
        map_freeze(fd: i32) -> Result<(), mimic_core::fault::Error>;
        close(fd: i32) -> Result<(), mimic_core::fault::Error>;
    }
    fn map_update_elem(
        &mut self,
        fd: i32,
        key: &[u8],
        value: &[u8],
        flags: u64,
    ) -> Result<(), mimic_core::fault::Error> {
        self.0
            .map_update_elem(fd, key, value, flags)
            .map_err(rewrite)
    }
    fn map_delete_elem(&mut self, fd: i32, key: &[u8]) -> Result<(), mimic_core::fault::Error> {
        self.0.map_delete_elem(fd, key).map_err(rewrite)
    }
}

#[test]
fn the_table_fails_an_implementation_with_a_wrong_errno_and_names_the_rules() {
    let report = errno_table(|| E2bigAsEinval(RefModel::new()))
        .expect_err("E2BIG reported as EINVAL went unnoticed");
    assert!(report.contains("index >= max_entries is E2BIG"), "{report}");
    assert!(report.contains("full map is E2BIG"), "{report}");
    assert!(report.contains("expected Err(E2BIG)"), "{report}");
}

#[test]
#[ignore = "prints a sample failure report; run with --ignored --nocapture"]
fn show_a_table_failure_report() {
    println!(
        "{}",
        errno_table(|| E2bigAsEinval(RefModel::new())).unwrap_err()
    );
}

#[test]
fn every_errno_row_holds_when_closed_fds_are_never_reused() {
    use mimic_core::model::cases::run_case_with;
    use mimic_core::model::ops::FdMap;
    for case in cases() {
        if let Err(failure) =
            run_case_with(&mut RefModel::new(), &case, FdMap::closed_never_reused())
        {
            panic!("{failure}");
        }
    }
}

/// The core's world (`World<Std>` through its `Process` adapter): a fresh world per entry.
fn world() -> mimic_core::sys::Process<mimic_core::sync::Std> {
    mimic_core::sys::Process::create(
        mimic_core::mutants::Mutants::NONE,
        mimic_core::world::WorldConfig::default(),
    )
}

#[test]
fn every_errno_row_holds_on_the_world() {
    use mimic_core::model::cases::{run_case, scenarios};
    let mut unexpected = Vec::new();
    let mut ran = 0;
    for case in cases() {
        ran += 1;
        if let Err(failure) = run_case(&mut world(), &case) {
            unexpected.push(failure.to_string());
        }
    }
    for scenario in scenarios() {
        ran += 1;
        if let Err(why) = (scenario.run)(&mut world()) {
            unexpected.push(format!("[{}] {}: {why}", scenario.source, scenario.name));
        }
    }
    assert!(ran >= 190, "the table shrank to {ran} entries");
    assert!(
        unexpected.is_empty(),
        "{} cases fail on the world:\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
}
