//! `object_load`: any bytes as a clang-built BPF object, through what `mimic verify FILE.o` and
//! an object scenario do with one: [`Object::parse`], the maps created on a fresh world by the
//! object loader ([`create_maps`]), each program of a type mimic models verified and fixed up,
//! then everything closed.
//!
//! Properties (a violation panics, which libFuzzer reports as a crash):
//! * no input panics the parser, the loader or the verifier;
//! * a refusal says what: an [`ObjectError`]'s text is not empty;
//! * allocation stays bounded: the parser sizes everything from the input's own length (its
//!   invariant), and a map is only allocated once the world's size check passed it (larger
//!   ones are `ENOMEM`, as for any map); an object whose maps together ask for more than
//!   [`MAPS_BUDGET_BYTES`] is not loaded at all (a few bytes of `max_entries` can ask the world
//!   for 128 MiB per map, as they would ask the kernel);
//! * a load that fails leaves no fd behind (the loader closes what it made), and once
//!   everything is closed and unloaded the world is quiescent: every map freed.
//!
//! Programs longer than [`MAX_VERIFIED_INSNS`] are parsed and relocated but not verified: a
//! mutated object can hold thousands of instructions whose verification (bounded by the
//! verifier's complexity limit, but slow) would dominate the target's time; the example
//! objects' programs are under 100.
//!
//! The seed corpus holds the example objects (`target/bpf/*.bpf.o`): libFuzzer's mutations of
//! real objects reach the BTF, map-definition and relocation paths random bytes never would.

use mimic_core::bpf::object::{load::create_maps, MapSpec, Object, ObjectError};
use mimic_core::bpf::verifier::world::{prog_load, LoadError};
use mimic_core::bpf::verifier::VerifyOpts;
use mimic_core::mutants::Mutants;
use mimic_core::sync::Std;
use mimic_core::sys::Process;
use mimic_core::uapi::MapType;
use mimic_core::world::WorldConfig;

/// Programs longer than this are not verified (see the module documentation).
pub const MAX_VERIFIED_INSNS: usize = 512;

/// The most an input's maps may ask for together (see the module documentation).
pub const MAPS_BUDGET_BYTES: u64 = 64 << 20;

/// An upper bound of what `spec` (and its template) asks the world for: every entry with its
/// key, value and an element header, once per CPU for a per-CPU map.
fn asks_for(spec: &MapSpec) -> u64 {
    let round8 = |n: u32| (u64::from(n) + 7) & !7;
    let copies = match spec.kind() {
        Some(MapType::PercpuArray | MapType::PercpuHash) => 64,
        _ => 1,
    };
    let own = u64::from(spec.max_entries)
        * (round8(spec.key_size) + round8(spec.value_size) * copies + 64);
    own + spec.inner.as_deref().map_or(0, asks_for)
}

/// One input: panics on any property violation.
pub fn check(data: &[u8]) {
    let _ = load(data);
}

fn named(e: &ObjectError) -> String {
    let text = e.to_string();
    assert!(
        !e.what.is_empty() && !text.is_empty(),
        "an empty refusal: {e:?}"
    );
    text
}

/// What loading `data` did, one line per step, or the refusal. Panics on a property violation.
pub fn load(data: &[u8]) -> Result<String, String> {
    let object = Object::parse(data).map_err(|e| named(&e))?;
    let asked: u64 = object
        .maps
        .iter()
        .map(asks_for)
        .fold(0, u64::saturating_add);
    if asked > MAPS_BUDGET_BYTES {
        return Err(format!(
            "its maps ask for about {asked} bytes, more than the {MAPS_BUDGET_BYTES} this target \
             allows an input"
        ));
    }
    let mut sys = Process::<Std>::create(Mutants::NONE, WorldConfig::default());
    let maps = match create_maps(&mut sys, &object) {
        Ok(maps) => maps,
        Err(e) => {
            let open = sys.world().open_fds();
            assert!(open.is_empty(), "a failed load left fds {open:?} open: {e}");
            return Err(named(&e));
        }
    };
    let mut lines = vec![format!("{} maps created", maps.fds.len())];
    for program in &object.programs {
        let base = VerifyOpts {
            ctx_size: 16,
            ..VerifyOpts::default()
        };
        let opts = match program.kind.verify_opts(base) {
            Ok(opts) => opts,
            Err(why) => {
                lines.push(format!("{}: not verified: {why}", program.name));
                continue;
            }
        };
        if program.insns.len() > MAX_VERIFIED_INSNS {
            lines.push(format!(
                "{}: {} insns, not verified",
                program.name,
                program.insns.len()
            ));
            continue;
        }
        let insns = program
            .with_fds(&maps.fds)
            .unwrap_or_else(|| panic!("{}: a relocation names a map with no fd", program.name));
        match prog_load(sys.world(), &insns, opts) {
            Ok(loaded) => {
                lines.push(format!(
                    "{}: accepted, {} insns processed",
                    program.name, loaded.verified.stats.processed
                ));
                loaded
                    .unload(sys.world())
                    .unwrap_or_else(|e| panic!("{}: unloading: {e}", program.name));
            }
            Err(LoadError::Rejected(r)) => {
                lines.push(format!(
                    "{}: refused at insn {}: {}",
                    program.name, r.insn, r.message
                ));
            }
            // An accepted program its fixups cannot rewrite is a verifier/fixup mismatch.
            Err(LoadError::Fixup(e)) => panic!("{}: accepted but not fixed up: {e}", program.name),
            Err(e @ (LoadError::World(_) | LoadError::Incompatible { .. })) => {
                lines.push(format!("{}: load failed: {e}", program.name))
            }
        }
    }
    maps.close(&mut sys);
    if let Err(e) = sys.world().audit_quiescent() {
        panic!("after closing every map and unloading every program: {e}");
    }
    Ok(lines.join("\n"))
}
