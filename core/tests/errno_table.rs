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
    let spec_only = run_table(RefModel::new, &cases(), |c| c.source.starts_with('§'));
    assert!(spec_only.is_ok(), "{spec_only:?}");
}
