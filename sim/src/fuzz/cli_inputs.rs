//! `cli_inputs`: every kind of file the `mimic` command reads, through the functions the
//! command reads it with: a map spec (`mimic verify --maps`, [`crate::maps_spec`]), a scenario
//! (`mimic run --scenario FILE`, `Scenario::parse`, then one seed of it), assembly (`mimic
//! verify FILE`, with the shipped seed-004 spec's map names, then the verifier), and a fuzz
//! crash file (`mimic fuzz-replay TARGET FILE`, [`replay`]).
//!
//! Properties (any violation panics, which libFuzzer reports as a crash):
//! * no input panics any of them;
//! * a refused input gets an error that names the file it came from and the place: the map
//!   spec's and the scenario's errors start with the file's name; an assembly error starts
//!   with `line:column`;
//! * a crash file replays to a report (a panic of the target is its crash, reported, never a
//!   panic of the replay).
//!
//! The first byte chooses the reader (and for a crash file the second byte the target); the
//! rest is the file, as text (lossy UTF-8) where the reader takes text. The seed corpus holds
//! the shipped examples and scenarios, so mutations start from real files.

use super::replay::{replay, TARGETS};
use crate::maps_spec;
use crate::sim::engine::{run_one, RunConfig};
use crate::sim::scenario::Scenario;
use crate::sim::scheduler::SchedulerKind;
use mimic_core::bpf::verifier::asm_maps::assemble_with_maps;
use mimic_core::bpf::verifier::{verify, MapTable, VerifyOpts};
use mimic_core::mutants::Mutants;
use mimic_core::profile::KernelProfile;

/// The readers, by the first byte modulo their count.
pub const READERS: [&str; 4] = ["maps-spec", "scenario", "assembly", "crash-file"];

/// The name errors must start with (what the command would print as the file).
pub const ORIGIN: &str = "input";

/// The map spec assembly is resolved against: seed 004's shipped spec.
const SEED_004_MAPS: &str = include_str!("../../../examples/seed_004/maps.json");

/// Scenarios larger than this many ops and runs are parsed but not run (a run of a generated
/// scenario of thousands of ops would dominate the target's time without reaching new code).
const RUN_SIZE_LIMIT: usize = 64;

/// The reader `data` picks, and the rest of the input.
pub fn pick(data: &[u8]) -> Option<(&'static str, &[u8])> {
    let (&first, rest) = data.split_first()?;
    Some((READERS[first as usize % READERS.len()], rest))
}

/// One input: panics on any property violation.
pub fn check(data: &[u8]) {
    if let Some((reader, rest)) = pick(data) {
        let _ = read(reader, rest);
    }
}

/// What `reader` makes of `rest`: what it read, or its refusal (checked to name the place).
/// Panics on a property violation.
pub fn read(reader: &str, rest: &[u8]) -> Result<String, String> {
    let text = String::from_utf8_lossy(rest);
    match reader {
        "maps-spec" => match maps_spec::parse(&text, ORIGIN, Mutants::NONE, true) {
            Ok(maps) => Ok(format!("{} maps", maps.len())),
            Err(e) => {
                assert_names_origin("map spec", &e);
                Err(e)
            }
        },
        "scenario" => match Scenario::parse(&text, ORIGIN) {
            Err(e) => {
                assert_names_origin("scenario", &e.to_string());
                Err(e.to_string())
            }
            Ok(scenario) => Ok(run_small(scenario)),
        },
        "assembly" => assembly(&text),
        _ => crash_file(rest),
    }
}

fn assert_names_origin(what: &str, error: &str) {
    assert!(
        error.starts_with(&format!("{ORIGIN}: ")) && error.len() > ORIGIN.len() + 2,
        "{what} error does not name the file and what is wrong: {error:?}"
    );
}

/// One seed of a parsed scenario, as `mimic run` would run it (a verdict, never a panic).
fn run_small(scenario: Scenario) -> String {
    let size: usize = scenario
        .tasks
        .iter()
        .map(|t| t.ops.len() + t.runs as usize + 1)
        .sum();
    if size > RUN_SIZE_LIMIT {
        return format!("parsed; not run ({size} ops and runs, more than {RUN_SIZE_LIMIT})");
    }
    let config = RunConfig {
        scenario,
        mutants: Mutants::NONE,
        scheduler: SchedulerKind::Random,
        keep_trace: false,
        profile: *KernelProfile::newest(),
        lacks: mimic_core::history::Lacks::NONE,
    };
    format!("seed 0: {:?}", run_one(&config, 0).verdict)
}

/// A program as `mimic verify FILE --maps examples/seed_004/maps.json` reads it.
fn assembly(text: &str) -> Result<String, String> {
    let maps = maps_spec::parse(
        SEED_004_MAPS,
        "examples/seed_004/maps.json",
        Mutants::NONE,
        true,
    )
    .expect("the shipped spec parses");
    let fd_of = |name: &str| maps.iter().find(|m| m.name == name).map(|m| m.fd);
    match assemble_with_maps(text, &fd_of) {
        Err(e) => {
            let shown = e.to_string();
            let place = shown.split(':').take(2).all(|n| n.parse::<usize>().is_ok());
            assert!(
                place,
                "assembly error does not start with line:column: {shown:?}"
            );
            Err(shown)
        }
        Ok(insns) => {
            let table = MapTable(maps.iter().map(|m| (m.fd, m.desc.clone())).collect());
            Ok(match verify(&insns, &table, VerifyOpts::default()) {
                Ok(v) => format!(
                    "{} insns, accepted ({} processed)",
                    insns.len(),
                    v.stats.processed
                ),
                Err(r) => format!(
                    "{} insns, refused at {}: {}",
                    insns.len(),
                    r.insn,
                    r.message
                ),
            })
        }
    }
}

/// A crash file of one of the other targets, replayed as `mimic fuzz-replay` does.
fn crash_file(rest: &[u8]) -> Result<String, String> {
    let Some((&which, file)) = rest.split_first() else {
        return Err("no target byte".to_string());
    };
    let target = TARGETS[which as usize % TARGETS.len()];
    if target == "cli_inputs" {
        return Ok("a cli_inputs file: not replayed inside itself".to_string());
    }
    match replay(target, file, Mutants::NONE) {
        Ok(report) => Ok(report.reason().map_or_else(
            || format!("{target}: no crash"),
            |r| format!("{target}: {r}"),
        )),
        Err(e) => panic!("replaying a {target} file failed: {e}"),
    }
}
