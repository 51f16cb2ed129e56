//! Programs verified per second: the §9 programs and the seed program, each verified (and the
//! seed also fixed up) from scratch per iteration, and the pruning stress program.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use mimic_core::bpf::fixup::fixup;
use mimic_core::bpf::verifier::{verify, MapDesc, MapTable, VerifyOpts};
use mimic_core::isa::*;
use mimic_core::mutants::Mutants;
use mimic_core::uapi::{MapType, BPF_F_INNER_MAP};

#[path = "../tests/verifier_common/mod.rs"]
mod verifier_common;
use verifier_common::*;

fn seed() -> (Vec<Insn>, MapTable) {
    let maps = MapTable(vec![(
        3,
        MapDesc::new(MapType::ArrayOfMaps, 4, 4, 3, 0)
            .with_meta(MapDesc::new(MapType::Array, 4, 4, 1, BPF_F_INNER_MAP))
            .with_id(468, 0x3000_01d4_0000_0000),
    )]);
    let mut p = vec![
        Insn::mov32_imm(1, 0),
        Insn::stx_mem(BPF_W, 10, 1, -4),
        Insn::mov64_reg(2, 10),
        Insn::alu64_imm(BPF_ADD, 2, -4),
    ];
    p.extend(Insn::ld_map_fd(1, 3));
    p.extend([
        Insn::call_helper(1),
        Insn::mov32_imm(6, -1),
        Insn::jmp_imm(BPF_JEQ, 0, 0, 6),
        Insn::mov64_reg(2, 10),
        Insn::alu64_imm(BPF_ADD, 2, -4),
        Insn::mov64_reg(1, 0),
        Insn::call_helper(1),
        Insn::jmp_imm(BPF_JEQ, 0, 0, 1),
        Insn::ldx_mem(BPF_W, 6, 0, 0),
        Insn::mov32_reg(0, 6),
        Insn::exit(),
    ]);
    (p, maps)
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
