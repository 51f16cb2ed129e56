//! Programs verified per second: the §9 programs and the seed program, each verified (and the
//! seed also fixed up) from scratch per iteration, and the pruning stress program.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use mimic_core::bpf::fixup::fixup;
use mimic_core::bpf::verifier::{corpus, verify, MapTable, VerifyOpts};
use mimic_core::isa::*;
use mimic_core::mutants::Mutants;

#[path = "../tests/verifier_common/mod.rs"]
mod verifier_common;
use verifier_common::*;

fn seed() -> (Vec<Insn>, MapTable) {
    const OUTER_FD: i32 = 3;
    let prog = corpus::seed_004(OUTER_FD).expect("examples/seed_004/prog.s assembles");
    (prog, corpus::seed_004_maps(OUTER_FD))
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("verify");
    g.throughput(Throughput::Elements(1));
    let maps = maps();
    let freq = VerifyOpts {
        test_state_freq: true,
        ..VerifyOpts::default()
    };
    let programs: Vec<(&str, Vec<Insn>, VerifyOpts)> = vec![
        (
            "map_in_map_access",
            map_in_map_access(),
            VerifyOpts::default(),
        ),
        ("map_in_map_state_pruning", map_in_map_state_pruning(), freq),
        ("inner_lookup_diamonds_10", inner_lookup_diamonds(10), freq),
    ];
    for (name, prog, opts) in &programs {
        g.bench_function(*name, |b| {
            b.iter(|| verify(black_box(prog), &maps, *opts).expect("valid"))
        });
    }
    let (seed_prog, seed_maps) = seed();
    g.bench_function("seed_004_verify_and_fixup", |b| {
        b.iter(|| {
            let v =
                verify(black_box(&seed_prog), &seed_maps, VerifyOpts::default()).expect("valid");
            fixup(&v, Mutants::NONE).expect("fixups")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
