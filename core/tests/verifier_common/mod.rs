//! Shared fixtures of the verifier tests: the corpus in `mimic_core::bpf::verifier::corpus`
//! (the selftests' maps behind an in-memory resolver and the §9 programs).
#![allow(unused_imports)]

pub use mimic_core::bpf::verifier::corpus::*;
