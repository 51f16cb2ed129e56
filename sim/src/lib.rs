//! # mimic-sim
//!
//! The simulator library behind the `mimic` command. `kernel` is the oracle that runs the same
//! syscalls and programs against the real Linux BPF of the machine; `sim` is the deterministic
//! simulator (scenarios, schedulers, oracles) behind `mimic run`, `replay`, `shrink`, `mutants`.
#![deny(unsafe_code)]

pub mod fuzz;
pub mod kernel;
pub mod maps_spec;
pub mod sim;
