//! kernel-check's tail-call lines: the XDP programs of
//! `mimic_core::bpf::verifier::tail_call_cases` loaded on the kernel and verified by mimic
//! (verdicts, and the fixed-up program against the xlated dump, where a tail call shows as
//! `call bpf_tail_call#12`), and the cases' `PROG_ARRAY` scenario run on both sides, compared
//! step by step (updates, lookups and deletes, test runs through tail calls, the array's owner,
//! the tail-call limit).
#![forbid(unsafe_code)]

use super::check::Check;
use super::packets::xdp_opts;
use super::verdicts::{compare_verdicts, EXEC_GATE, FIXUPS_GATE, VERDICTS_GATE};
use super::xlated::tally_loaded;
use super::KernelSys;
use mimic_core::bpf::verifier::tail_call_cases::{
    scenario, verdict_cases, CaseMaps, TailCallHost, WorldHost,
};
use mimic_core::bpf::verifier::{verify, ProgType};
use mimic_core::errno::Errno;
use mimic_core::isa::Insn;
use mimic_core::mutants::Mutants;
use mimic_core::profile::KernelProfile;
use mimic_core::sync::Std;
use mimic_core::sys::Process;
use mimic_core::uapi::{BpfSys, Fd, MapAttr, MapType};
use mimic_core::world::WorldConfig;
use std::collections::BTreeMap;

/// The kernel's side of the scenario.
struct KernelHost<'k> {
    kernel: &'k mut KernelSys,
}

impl TailCallHost for KernelHost<'_> {
    fn sys(&mut self) -> &mut dyn BpfSys {
        self.kernel
    }
    fn load(&mut self, insns: &[Insn], tc: bool) -> Result<Fd, Errno> {
        let prog_type = if tc {
            ProgType::SchedCls
        } else {
            ProgType::Xdp
        };
        match self.kernel.prog_load(prog_type.uapi(), insns, 0, 0) {
            Ok((fd, _)) => Ok(fd),
            Err(failure) => Err(match failure.error {
                super::KernelError::Errno(errno) => errno,
                _ => Errno::EINVAL,
            }),
        }
    }
    fn test_run(&mut self, prog: Fd, frame: &[u8]) -> Result<u32, String> {
        self.kernel
            .test_run(prog, frame, &[], 1)
            .map(|run| run.retval)
            .map_err(|e| e.to_string())
    }
    fn prog_id(&mut self, prog: Fd) -> Result<u32, String> {
        self.kernel.prog_id(prog).map_err(|e| e.to_string())
    }
    fn close_prog(&mut self, prog: Fd) -> Result<(), String> {
        self.kernel.close(prog).map_err(|e| e.to_string())
    }
}

/// A `PROG_ARRAY` of 4 and an `ARRAY` on one side, for the verdict cases.
fn case_maps(sys: &mut dyn BpfSys) -> Result<CaseMaps, String> {
    let prog_array = sys
        .map_create(&MapAttr::new(MapType::ProgArray, 4, 4, 4))
        .map_err(|e| format!("PROG_ARRAY: {e}"))?;
    let array = sys
        .map_create(&MapAttr::new(MapType::Array, 4, 8, 1))
        .map_err(|e| format!("ARRAY: {e}"))?;
    Ok(CaseMaps { prog_array, array })
}

pub fn run(kernel: &mut KernelSys, profile: KernelProfile) -> Vec<Check> {
    let mut verdicts = Check::new(
        "verifier/verdicts/tail-call",
        "kernel verifier vs mimic verify (XDP tail calls)",
        VERDICTS_GATE,
    );
    let mut fixups = Check::new(
        "fixups/xlated/tail-call",
        "kernel xlated vs mimic fixup (XDP tail calls)",
        FIXUPS_GATE,
    );
    let mut exec = Check::new(
        "exec/test-run/tail-call",
        "kernel vs world: PROG_ARRAY updates, lookups, owner, test runs through tail calls",
        EXEC_GATE,
    );
    let mut world = Process::<Std>::create(Mutants::NONE, WorldConfig::default());
    let maps = (case_maps(kernel), case_maps(&mut world));
    let (Ok(kmaps), Ok(wmaps)) = maps else {
        verdicts.note("setup", format!("maps: {maps:?}"));
        return vec![verdicts, fixups, exec];
    };
    // The maps' ids on each side, for the fixup comparison's map loads.
    let mut ids = BTreeMap::new();
    for (k, w) in [
        (kmaps.prog_array, wmaps.prog_array),
        (kmaps.array, wmaps.array),
    ] {
        if let (Ok(ki), Ok(wi)) = (kernel.map_info(k), world.map_info(w)) {
            ids.insert(wi.id, ki.id);
        }
    }
    let opts = xdp_opts(profile);
    for (kcase, wcase) in verdict_cases(kmaps).into_iter().zip(verdict_cases(wmaps)) {
        let name = kcase.name;
        verdicts.cases += 1;
        let theirs = kernel.prog_load(ProgType::Xdp.uapi(), &kcase.insns, 0, 0);
        let ours = verify(&wcase.insns, &**world.world(), opts);
        match compare_verdicts(&theirs, &ours) {
            Ok(()) => verdicts.agreed += 1,
            Err(d) => verdicts.note(d.kind, format!("{name}: {}", d.text)),
        }
        let (Ok((prog, _)), Ok(verified)) = (theirs, ours) else {
            continue;
        };
        fixups.cases += 1;
        tally_loaded(&mut fixups, kernel, prog, &verified, name, &ids);
        let _ = kernel.close(prog);
    }
    for fd in [kmaps.prog_array, kmaps.array] {
        let _ = kernel.close(fd);
    }
    let theirs = scenario(&mut KernelHost { kernel });
    let ours = scenario(&mut WorldHost::new(world));
    for (k, w) in theirs.iter().zip(&ours) {
        exec.cases += 1;
        if k == w {
            exec.agreed += 1;
        } else {
            exec.note(
                "step differs",
                format!(
                    "kernel {:?}: {:?}; mimic {:?}: {:?}",
                    k.step, k.outcome, w.step, w.outcome
                ),
            );
        }
    }
    if theirs.len() != ours.len() {
        exec.note(
            "scenario length differs",
            format!(
                "the kernel's run took {} steps, mimic's {}",
                theirs.len(),
                ours.len()
            ),
        );
    }
    vec![verdicts, fixups, exec]
}
