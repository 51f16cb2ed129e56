//! The kernel-history page is the table's output: `docs/kernel-history.md` is written by
//! `mimic history > docs/kernel-history.md` and must not drift from `core/src/history.rs`.

#[test]
fn the_kernel_history_page_is_the_tables_output() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/kernel-history.md");
    let page = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (write it with `mimic history`)", path.display()));
    assert!(
        page == mimic_core::history::markdown(),
        "{} differs from core/src/history.rs: regenerate it with \
         `cargo run --release -p mimic-sim -- history > docs/kernel-history.md`",
        path.display()
    );
}
