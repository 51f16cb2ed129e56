//! # mimic-sim
//!
//! The simulator library behind the `mimic` command. `kernel` is the oracle that runs the same
//! syscalls and programs against the real Linux BPF of the machine.
#![deny(unsafe_code)]

pub mod kernel;
