//! Builds the seed corpora of every fuzz target from the conformance suite and the shipped
//! examples, at run time (the corpus folders are not committed; the suite is not ours to copy).
//!
//! `cargo run --release -p mimic-sim --example seed_corpus -- [CONFORMANCE_DIR] [CORPUS_ROOT]`
//! (defaults: the suite as `mimic_core::bpf::suite_dir` finds it, `fuzz/corpus`). Writes
//! `CORPUS_ROOT/<target>/<name>` files and prints how many per target. It lives in the main
//! workspace (not in `fuzz/`) so that the test build compiles it once with everything else.

use std::fs;
use std::path::{Path, PathBuf};

use mimic_core::bpf::asm::assemble;
use mimic_core::isa;

/// The `-- asm` section of a conformance `.data` file.
fn asm_section(data: &str) -> Option<String> {
    let mut out = String::new();
    let mut inside = false;
    for line in data.lines() {
        if let Some(section) = line.strip_prefix("-- ") {
            inside = section.trim() == "asm";
            continue;
        }
        if inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    (!out.trim().is_empty()).then_some(out)
}

fn write(root: &Path, target: &str, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let dir = root.join(target);
    fs::create_dir_all(&dir)?;
    fs::write(dir.join(name), bytes)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let given = args.next().filter(|a| !a.is_empty()).map(PathBuf::from);
    // Run from the repository's root (as cargo run and ci/fuzz-smoke do): the shipped files
    // and the conformance lookup start there.
    let repo = std::env::current_dir()?;
    let tests = mimic_core::bpf::suite_dir::find(given.as_deref(), &repo)
        .map_err(|e| e.to_string())?
        .join("tests");
    let root = PathBuf::from(args.next().unwrap_or_else(|| "fuzz/corpus".to_string()));
    let mut entries: Vec<PathBuf> = fs::read_dir(&tests)
        .map_err(|e| format!("reading {}: {e}", tests.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "data"))
        .collect();
    entries.sort();
    let (mut text, mut bin) = (0, 0);
    for path in &entries {
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("x");
        let data = fs::read_to_string(path)?;
        let Some(asm) = asm_section(&data) else {
            continue;
        };
        write(&root, "asm_roundtrip", &format!("{stem}.s"), asm.as_bytes())?;
        text += 1;
        if let Ok(insns) = assemble(&asm) {
            write(
                &root,
                "asm_roundtrip",
                &format!("{stem}.bin"),
                &isa::to_bytes(&insns),
            )?;
            bin += 1;
        }
    }
    println!(
        "asm_roundtrip: {text} text seeds, {bin} binary seeds from {}",
        tests.display()
    );

    // cli_inputs: every shipped file the command reads, behind the byte that picks its reader.
    let readers = mimic_sim::fuzz::cli_inputs::READERS;
    let mut shipped = 0;
    for (dir, ext, reader) in [
        ("examples/seed_000", "json", "maps-spec"),
        ("examples/seed_004", "json", "maps-spec"),
        ("examples/seed_000", "s", "assembly"),
        ("examples/seed_004", "s", "assembly"),
        ("sim/scenarios", "toml", "scenario"),
    ] {
        let pick = readers.iter().position(|r| *r == reader).ok_or(reader)? as u8;
        let mut files: Vec<PathBuf> = fs::read_dir(repo.join(dir))
            .map_err(|e| format!("reading {dir}: {e}"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == ext))
            .collect();
        files.sort();
        for file in files {
            let mut bytes = vec![pick];
            bytes.extend(fs::read(&file)?);
            let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("file");
            let name = format!("{}-{stem}.{ext}", dir.replace('/', "-"));
            write(&root, "cli_inputs", &name, &bytes)?;
            shipped += 1;
        }
    }
    println!("cli_inputs: {shipped} shipped files");

    // object_load: the example objects as ci/build-objects builds them (build outputs, so
    // absent until it ran: then say so and go on).
    let built = repo.join("target/bpf");
    let mut objects: Vec<PathBuf> = fs::read_dir(&built)
        .map(|dir| {
            dir.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.to_string_lossy().ends_with(".bpf.o"))
                .collect()
        })
        .unwrap_or_default();
    objects.sort();
    for object in &objects {
        let name = object
            .file_name()
            .and_then(|s| s.to_str())
            .unwrap_or("object");
        write(&root, "object_load", name, &fs::read(object)?)?;
    }
    if objects.is_empty() {
        println!("object_load: no objects in target/bpf (run ci/build-objects for seeds)");
    } else {
        println!("object_load: {} example objects", objects.len());
    }

    // The structured targets read their input as a stream of choices: pseudo-random byte strings
    // of a few lengths are enough to start from every region of their input space.
    for (target, count, len) in RANDOM_SEEDS {
        let mut state = 0x6d69_6d69_635f_6675 ^ (*len as u64);
        for index in 0..*count {
            let bytes: Vec<u8> = (0..*len).map(|_| xorshift(&mut state) as u8).collect();
            write(&root, target, &format!("random-{index:03}"), &bytes)?;
        }
        println!("{target}: {count} pseudo-random seeds of {len} bytes");
    }
    // verify_exec's packet programs: the mode byte (XDP, then tc), then a short choice stream.
    use mimic_sim::fuzz::verify_exec::packet::{MODE, MODE_TC};
    for (mode, name) in [(MODE, "packet"), (MODE_TC, "packet-tc")] {
        let mut state = 0x7061_636b_6574_7321;
        for index in 0..32 {
            let mut bytes = vec![mode];
            bytes.extend((0..8 + index % 24).map(|_| xorshift(&mut state) as u8));
            write(&root, "verify_exec", &format!("{name}-{index:03}"), &bytes)?;
        }
    }
    println!("verify_exec: 32 XDP and 32 tc packet-program seeds");
    Ok(())
}

/// (target, seeds, bytes per seed) for the targets driven by choice streams.
const RANDOM_SEEDS: &[(&str, usize, usize)] = &[
    ("interp_diff", 16, 512),
    ("map_ops", 32, 256),
    ("verify_exec", 32, 192),
];

/// A fixed generator so the seeds are the same on every machine.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}
