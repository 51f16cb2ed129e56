//! Subcommand glue, one module per command.
pub mod conformance;
