//! The examples' READMEs promise outputs: run `mimic verify` on them and check the shape.

use std::process::Command;

fn mimic_verify(dir: &str, extra: &[&str]) -> (i32, String) {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/");
    let out = Command::new(env!("CARGO_BIN_EXE_mimic"))
        .arg("verify")
        .arg(format!("{root}{dir}/prog.s"))
        .arg("--maps")
        .arg(format!("{root}{dir}/maps.json"))
        .args(extra)
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn seed_004_example_prints_the_seed_dump_shape() {
    let (code, out) = mimic_verify("seed_004", &["--xlated"]);
    assert_eq!(code, 0, "{out}");
    for line in [
        "verdict: accepted (20 insns processed)",
        "   4: (18) r1 = map[id:468]",
        "   8: (35) if r0 >= 0x3 goto pc+5",
        "   9: (67) r0 <<= 3",
        "  11: (79) r0 = *(u64 *)(r0 +0)",
        "  16: (15) if r0 == 0x0 goto pc+6",
        "  24: (95) exit",
    ] {
        assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
    }
    assert!(
        out.contains("  20: (85) call array_map_lookup_elem#"),
        "{out}"
    );
}

#[test]
fn seed_000_example_inlines_the_outer_htab_lookup_and_the_inner_lookup_against_the_meta() {
    let (code, out) = mimic_verify("seed_000", &["--xlated"]);
    assert_eq!(code, 0, "{out}");
    for line in [
        "   7: (15) if r0 == 0x0 goto pc+2",
        "   8: (07) r0 += 56",
        "   9: (79) r0 = *(u64 *)(r0 +0)",
        "  18: (35) if r0 >= 0x4 goto pc+3",
        "  27: (95) exit",
    ] {
        assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
    }
    assert!(
        out.contains("   6: (85) call __htab_map_lookup_elem#"),
        "the outer lookup is inlined as htab_of_map_gen_lookup: {out}"
    );
}

#[test]
fn refusals_exit_1_with_the_kernels_message() {
    let (code, out) = mimic_verify("seed_004", &["--mutants", "no_such_bug"]);
    assert_eq!(code, 2, "unknown mutant is bad input: {out}");
    let dir = std::env::temp_dir().join("mimic_verify_refusal");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("prog.s"),
        "lddw %r1, map:outer_arr_dyn\nmov %r2, 0\nadd %r1, 8\nmov %r0, 0\nexit\n",
    )
    .unwrap();
    let root = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/seed_004/maps.json"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_mimic"))
        .args([
            "verify",
            dir.join("prog.s").to_str().unwrap(),
            "--maps",
            root,
        ])
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("refused at insn 3: R1 pointer arithmetic on map_ptr prohibited"),
        "{text}"
    );
}

/// `--xdp`: an assembly program verified as XDP, its context reads rewritten in the dump;
/// the same packet read without its bounds check is refused with the kernel's message.
#[test]
fn xdp_programs_in_assembly_verify_as_xdp() {
    let dir = std::env::temp_dir().join(format!("mimic-verify-xdp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let run = |name: &str, source: &str, extra: &[&str]| {
        let file = dir.join(name);
        std::fs::write(&file, source).expect("writes");
        let out = Command::new(env!("CARGO_BIN_EXE_mimic"))
            .arg("verify")
            .arg(&file)
            .args(extra)
            .output()
            .expect("runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let checked = "ldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\nmov %r4, %r2\nadd %r4, 14\n\
                   jgt %r4, %r3, out\nldxh %r0, [%r2+12]\nexit\nout:\nmov %r0, 2\nexit\n";
    let (code, out, _) = run("checked.s", checked, &["--xdp", "--xlated"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("r2 = *(u64 *)(r1 +0)"), "{out}");
    assert!(out.contains("r3 = *(u64 *)(r1 +8)"), "{out}");
    let unchecked = "ldxw %r2, [%r1+0]\nldxh %r0, [%r2+12]\nexit\n";
    let (code, out, _) = run("unchecked.s", unchecked, &["--xdp"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("invalid access to packet, off=12 size=2, R2(id=0,off=12,r=0)"),
        "{out}"
    );
    // Without --xdp the context is mimic's plain input memory: no packet pointer at all.
    let (code, out, _) = run("unchecked.s", unchecked, &[]);
    assert_eq!(code, 1, "{out}");
    let (code, _, err) = run("checked.s", checked, &["--xdp", "--syscall"]);
    assert_eq!(code, 2, "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
