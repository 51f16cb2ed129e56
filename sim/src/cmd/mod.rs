//! Subcommand glue, one module per command.
pub mod conformance;
pub mod fuzz_replay;
pub mod kernel_check;
pub mod mutants;
pub mod replay;
pub mod run;
pub mod shrink;
pub mod verify;
