//! The packet-program corpus shared by the verifier's tests and `mimic kernel-check`: XDP
//! programs (in mimic's assembly) that check packet bounds right, off by one or not at all,
//! in every comparison form, each with the verdict and first message Linux 6.18 gives, and the
//! packets every accepted one is test-run on. kernel-check loads them on the running kernel as
//! `BPF_PROG_TYPE_XDP` and compares verdicts, then `r0` and the packet after each run.

use super::ProgType;
use crate::bpf::asm::{assemble, AsmError};
use crate::isa::Insn;

/// What the kernel does with a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    /// Refused with this message among the log's last lines.
    Refuse(&'static str),
    /// Accepted by the kernel; refused by mimic with this message, because mimic does not
    /// model what the program uses (a known difference, listed in docs/kernel-disagreements.md).
    Unmodelled(&'static str),
}

/// One program.
#[derive(Debug, Clone, Copy)]
pub struct PacketCase {
    pub name: &'static str,
    pub source: &'static str,
    pub verdict: Verdict,
}

impl PacketCase {
    pub fn insns(&self) -> Result<Vec<Insn>, AsmError> {
        assemble(self.source)
    }

    /// The type it is loaded as: a case named `tc...` is a tc (`sched_cls`) program, every
    /// other one XDP (the tc set's `xdp: ...` cases are XDP programs calling tc helpers).
    pub fn prog_type(&self) -> ProgType {
        if self.name.starts_with("tc") {
            ProgType::SchedCls
        } else {
            ProgType::Xdp
        }
    }
}

/// `r2` = data, `r3` = data_end (read at the context offsets given), `r4` = data + 14 (an
/// Ethernet header), then the lines given.
macro_rules! bounds {
    ($data:literal, $end:literal; $($rest:literal)*) => {
        concat!(
            "ldxw %r2, [%r1+", $data, "]\nldxw %r3, [%r1+", $end,
            "]\nmov %r4, %r2\nadd %r4, 14\n",
            $($rest, "\n",)*
        )
    };
}

/// [`bounds!`] through `xdp_md`.
macro_rules! eth {
    ($($rest:literal)*) => {
        bounds!(0, 4; $($rest)*)
    };
}

/// Every case.
pub fn cases() -> Vec<PacketCase> {
    use Verdict::*;
    vec![
        PacketCase {
            name: "ethertype after `data + 14 > data_end`",
            source: eth!("jgt %r4, %r3, short" "ldxh %r0, [%r2+12]" "exit"
                "short:" "mov %r0, 1" "exit"),
            verdict: Accept,
        },
        PacketCase {
            name: "one byte past a `>` check",
            source: eth!("jgt %r4, %r3, short" "ldxb %r0, [%r2+14]" "exit"
                "short:" "mov %r0, 1" "exit"),
            verdict: Refuse("invalid access to packet, off=14 size=1, R2(id=0,off=14,r=14)"),
        },
        PacketCase {
            name: "no bounds check",
            source: "ldxw %r2, [%r1+0]\nldxw %r0, [%r2+0]\nexit\n",
            verdict: Refuse("invalid access to packet, off=0 size=4, R2(id=0,off=0,r=0)"),
        },
        PacketCase {
            name: "`<` is strict: its taken edge may read the byte at the offset",
            source: eth!("jlt %r4, %r3, long" "mov %r0, 1" "exit"
                "long:" "ldxb %r0, [%r2+14]" "exit"),
            verdict: Accept,
        },
        PacketCase {
            name: "`>=` falls through strictly below the end",
            source: eth!("jge %r4, %r3, short" "ldxb %r0, [%r2+14]" "exit"
                "short:" "mov %r0, 1" "exit"),
            verdict: Accept,
        },
        PacketCase {
            name: "`<=` is not strict: one byte past refused",
            source: eth!("jle %r4, %r3, long" "mov %r0, 1" "exit"
                "long:" "ldxb %r0, [%r2+14]" "exit"),
            verdict: Refuse("invalid access to packet, off=14 size=1, R2(id=0,off=14,r=14)"),
        },
        PacketCase {
            name: "`data_end > data + 14`, end on the left",
            source: eth!("jgt %r3, %r4, long" "mov %r0, 1" "exit"
                "long:" "ldxb %r0, [%r2+14]" "exit"),
            verdict: Accept,
        },
        PacketCase {
            name: "a 32-bit comparison teaches nothing",
            source: eth!("jgt32 %r4, %r3, short" "ldxb %r0, [%r2+0]" "exit"
                "short:" "mov %r0, 1" "exit"),
            verdict: Refuse("invalid access to packet, off=0 size=1, R2(id=0,off=0,r=0)"),
        },
        PacketCase {
            name: "arithmetic on data_end",
            source: "ldxw %r3, [%r1+4]\nadd %r3, -1\nmov %r0, 0\nexit\n",
            verdict: Refuse("R3 pointer arithmetic on pkt_end prohibited"),
        },
        PacketCase {
            name: "a load through data_end",
            source: "ldxw %r3, [%r1+4]\nldxb %r0, [%r3+0]\nexit\n",
            verdict: Refuse("R3 invalid mem access 'pkt_end'"),
        },
        PacketCase {
            name: "a write into the context",
            source: "stw [%r1+0], 5\nmov %r0, 2\nexit\n",
            verdict: Refuse("invalid bpf_context access off=0 size=4"),
        },
        PacketCase {
            name: "a sign-extended read of ingress_ifindex",
            source: "ldxsw %r0, [%r1+12]\nexit\n",
            verdict: Accept,
        },
        PacketCase {
            name: "a sign-extended read of data",
            source: "ldxsw %r2, [%r1+0]\nmov %r0, 2\nexit\n",
            verdict: Refuse("invalid bpf_context access off=0 size=4"),
        },
        PacketCase {
            name: "an 8-byte context read",
            source: "ldxdw %r2, [%r1+0]\nmov %r0, 2\nexit\n",
            verdict: Refuse("invalid bpf_context access off=0 size=8"),
        },
        PacketCase {
            name: "egress_ifindex outside a devmap program",
            source: "ldxw %r0, [%r1+20]\nexit\n",
            verdict: Refuse("invalid bpf_context access off=20 size=4"),
        },
        PacketCase {
            name: "a checked write into the packet",
            source: eth!("jgt %r4, %r3, short" "stb [%r2+0], 5" "ldxw %r5, [%r2+6]"
                "stxw [%r2+2], %r5" "mov %r0, 2" "exit" "short:" "mov %r0, 1" "exit"),
            verdict: Accept,
        },
        PacketCase {
            name: "an unknown offset loses the range",
            source: eth!("jgt %r4, %r3, short" "ldxb %r5, [%r2+0]" "and %r5, 7"
                "add %r2, %r5" "ldxb %r0, [%r2+0]" "exit" "short:" "mov %r0, 1" "exit"),
            verdict: Refuse("invalid access to packet, off=0 size=1, R2(id=1,off=0,r=0)"),
        },
        PacketCase {
            name: "an unknown offset checked again",
            source: eth!("jgt %r4, %r3, short" "ldxb %r5, [%r2+0]" "and %r5, 7"
                "add %r2, %r5" "mov %r4, %r2" "add %r4, 2" "jgt %r4, %r3, short"
                "ldxh %r0, [%r2+0]" "exit" "short:" "mov %r0, 1" "exit"),
            verdict: Accept,
        },
        PacketCase {
            name: "a copy made before the check shares its range",
            source: "ldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\nmov %r5, %r2\nmov %r4, %r2\n\
                     add %r4, 8\njgt %r4, %r3, short\nldxb %r0, [%r5+7]\nexit\n\
                     short:\nmov %r0, 1\nexit\n",
            verdict: Accept,
        },
        PacketCase {
            name: "metadata checked against data",
            source: "ldxw %r2, [%r1+8]\nldxw %r3, [%r1+0]\nmov %r4, %r2\nadd %r4, 4\n\
                     jgt %r4, %r3, none\nldxw %r0, [%r2+0]\nexit\nnone:\nmov %r0, 2\nexit\n",
            verdict: Accept,
        },
        PacketCase {
            name: "ingress_ifindex and rx_queue_index",
            source: "ldxw %r2, [%r1+12]\nldxw %r3, [%r1+16]\nlsh %r2, 4\nor %r2, %r3\n\
                     mov %r0, %r2\nexit\n",
            verdict: Accept,
        },
        PacketCase {
            name: "a pointer past the end decides its next comparison",
            source: "ldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\nmov %r4, %r2\nadd %r4, 8\n\
                     jgt %r4, %r3, out\nmov %r0, 0\nexit\nout:\njle %r4, %r3, dead\n\
                     mov %r0, 1\nexit\ndead:\nldxb %r0, [%r2+100]\nexit\n",
            verdict: Accept,
        },
        PacketCase {
            name: "the range of a pointer moved back by a constant",
            source: eth!("jgt %r4, %r3, short" "add %r4, -2" "ldxh %r0, [%r4+0]" "exit"
                "short:" "mov %r0, 1" "exit"),
            verdict: Accept,
        },
        PacketCase {
            name: "bpf_xdp_adjust_head grows the head by 4, then writes there",
            source: "mov %r6, %r1\nmov %r2, -4\ncall 44\njne %r0, 0, fail\n\
                     ldxw %r2, [%r6+0]\nldxw %r3, [%r6+4]\nmov %r4, %r2\nadd %r4, 4\n\
                     jgt %r4, %r3, fail\nstw [%r2+0], -1\nmov %r0, 2\nexit\n\
                     fail:\nmov %r0, 1\nexit\n",
            verdict: Accept,
        },
        PacketCase {
            name: "a packet pointer kept across bpf_xdp_adjust_head",
            source: "ldxw %r7, [%r1+0]\nldxw %r3, [%r1+4]\nmov %r4, %r7\nadd %r4, 1\n\
                     jgt %r4, %r3, out\nmov %r2, 0\ncall 44\nldxb %r0, [%r7+0]\nexit\n\
                     out:\nmov %r0, 1\nexit\n",
            verdict: Refuse("R7 invalid mem access 'scalar'"),
        },
        PacketCase {
            name: "bpf_xdp_adjust_head into the frame's own room, then to its edge",
            source: "mov %r6, %r1\nmov %r2, -217\ncall 44\nmov %r7, %r0\nand %r7, 255\n\
                     lsh %r7, 8\nmov %r1, %r6\nmov %r2, -216\ncall 44\nand %r0, 255\n\
                     or %r0, %r7\nexit\n",
            verdict: Accept,
        },
        PacketCase {
            name: "bpf_xdp_adjust_head with a moved context",
            source: "add %r1, 8\nmov %r2, 0\ncall 44\nexit\n",
            verdict: Refuse("dereference of modified ctx ptr R1 off=8 disallowed"),
        },
        PacketCase {
            name: "bpf_redirect with and without flags",
            source: "mov %r1, 1\nmov %r2, 1\ncall 23\nmov %r6, %r0\nlsh %r6, 8\n\
                     mov %r1, 1\nmov %r2, 0\ncall 23\nor %r0, %r6\nexit\n",
            verdict: Accept,
        },
        PacketCase {
            name: "bpf_get_prandom_u32 and bpf_get_smp_processor_id",
            source: "call 7\nmov %r6, %r0\ncall 8\nmov %r0, 2\nexit\n",
            verdict: Accept,
        },
        PacketCase {
            name: "bpf_ktime_get_ns never goes back",
            source: "call 5\nmov %r6, %r0\ncall 5\nmov %r7, %r0\nmov %r0, 2\n\
                     jge %r7, %r6, +1\nmov %r0, 1\nexit\n",
            verdict: Accept,
        },
        PacketCase {
            name: "bpf_csum_diff of two stack words",
            source: "lddw %r1, 0x0102030405060708\nstxdw [%r10-8], %r1\n\
                     lddw %r1, 0x1112131415161718\nstxdw [%r10-16], %r1\n\
                     mov %r1, %r10\nadd %r1, -8\nmov %r2, 8\nmov %r3, %r10\nadd %r3, -16\n\
                     mov %r4, 6\nmov %r5, 7\ncall 28\nexit\n",
            verdict: Accept,
        },
        PacketCase {
            name: "bpf_csum_diff over the IPv4 header, nothing removed",
            source: "ldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\nmov %r4, %r2\nadd %r4, 34\n\
                     jgt %r4, %r3, short\nmov %r1, 0\nmov %r3, %r2\nadd %r3, 14\n\
                     mov %r2, 0\nmov %r4, 20\nmov %r5, 0\ncall 28\nexit\n\
                     short:\nmov %r0, 1\nexit\n",
            verdict: Accept,
        },
        PacketCase {
            name: "bpf_csum_diff over the packet's first bytes, a size from the packet",
            source: "ldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\nmov %r4, %r2\nadd %r4, 16\n\
                     jgt %r4, %r3, short\nldxb %r4, [%r2+0]\nand %r4, 15\nmov %r1, 0\n\
                     mov %r3, %r2\nmov %r2, 0\nmov %r5, 0\ncall 28\nexit\n\
                     short:\nmov %r0, 1\nexit\n",
            verdict: Accept,
        },
        PacketCase {
            name: "bpf_csum_diff one byte past the checked packet",
            source: "ldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\nmov %r4, %r2\nadd %r4, 16\n\
                     jgt %r4, %r3, short\nmov %r1, %r2\nmov %r2, 17\nmov %r3, 0\n\
                     mov %r4, 0\nmov %r5, 0\ncall 28\nexit\n\
                     short:\nmov %r0, 1\nexit\n",
            verdict: Refuse("invalid access to packet, off=0 size=17, R1(id=0,off=0,r=16)"),
        },
        PacketCase {
            name: "bpf_csum_diff with NULL and a size",
            source: "mov %r1, 0\nmov %r2, 4\nmov %r3, 0\nmov %r4, 0\nmov %r5, 0\n\
                     call 28\nexit\n",
            verdict: Refuse("R1 type=scalar expected=fp"),
        },
        PacketCase {
            name: "bpf_csum_diff with NULL and no size",
            source: "mov %r1, 0\nmov %r2, 0\nmov %r3, 0\nmov %r4, 0\nmov %r5, 9\n\
                     call 28\nexit\n",
            verdict: Accept,
        },
        PacketCase {
            name: "bpf_csum_diff with an unbounded size",
            source: "ldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\nmov %r4, %r2\nadd %r4, 16\n\
                     jgt %r4, %r3, short\nldxw %r4, [%r2+0]\nmov %r1, 0\nmov %r2, 0\n\
                     mov %r3, %r10\nadd %r3, -8\nstdw [%r10-8], 0\nmov %r5, 0\ncall 28\nexit\n\
                     short:\nmov %r0, 1\nexit\n",
            verdict: Refuse("R4 unbounded memory access, use 'var &= const' or 'if (var < const)'"),
        },
        PacketCase {
            name: "bpf_csum_diff with a negative size",
            source: "stdw [%r10-8], 0\nmov %r1, %r10\nadd %r1, -8\nmov %r2, -1\nmov %r3, 0\n\
                     mov %r4, 0\nmov %r5, 0\ncall 28\nexit\n",
            verdict: Refuse("R2 min value is negative, either use unsigned or 'var &= const'"),
        },
        PacketCase {
            name: "bpf_csum_diff with a size past the stack",
            source: "stdw [%r10-8], 0\nmov %r1, %r10\nadd %r1, -8\nmov %r2, 9\nmov %r3, 0\n\
                     mov %r4, 0\nmov %r5, 0\ncall 28\nexit\n",
            verdict: Refuse("invalid read from stack R1 off=-8 size=9"),
        },
        PacketCase {
            name: "bpf_csum_diff with no bytes of the stack",
            source: "mov %r1, %r10\nadd %r1, -8\nmov %r2, 0\nmov %r3, 0\nmov %r4, 0\n\
                     mov %r5, 3\ncall 28\nexit\n",
            verdict: Accept,
        },
        PacketCase {
            name: "bpf_trace_printk of three numbers",
            source: "lddw %r1, 0x253d792064253d78\nstxdw [%r10-24], %r1\nlddw %r1, 0xa786c253d7a2075\nstxdw [%r10-16], %r1\nlddw %r1, 0x0\nstxdw [%r10-8], %r1\nmov %r1, %r10\nadd %r1, -24\nmov %r2, 17\nlddw %r3, 0xffffffff\nmov %r4, 7\nlddw %r5, 0x123456789\ncall 6\nexit\n",
            verdict: Accept,
        },
        PacketCase {
            name: "bpf_trace_printk with widths and flags",
            source: "lddw %r1, 0x342d257c6435255b\nstxdw [%r10-16], %r1\nlddw %r1, 0x5d783430257c75\nstxdw [%r10-8], %r1\nmov %r1, %r10\nadd %r1, -16\nmov %r2, 16\nmov %r3, 42\nmov %r4, 7\nmov %r5, 10\ncall 6\nexit\n",
            verdict: Accept,
        },
        PacketCase {
            name: "bpf_trace_printk of a character and a percent sign",
            source: "lddw %r1, 0x6325202525303031\nstxdw [%r10-16], %r1\nlddw %r1, 0x646c6c2520\nstxdw [%r10-8], %r1\nmov %r1, %r10\nadd %r1, -16\nmov %r2, 14\nmov %r3, 65\nlddw %r4, 0xffffffffffffffff\nmov %r5, 0\ncall 6\nexit\n",
            verdict: Accept,
        },
        PacketCase {
            name: "bpf_trace_printk with four conversions (-EINVAL)",
            source: "lddw %r1, 0x6425642564256425\nstxdw [%r10-16], %r1\nlddw %r1, 0x0\nstxdw [%r10-8], %r1\nmov %r1, %r10\nadd %r1, -16\nmov %r2, 9\nmov %r3, 1\nmov %r4, 2\nmov %r5, 3\ncall 6\nexit\n",
            verdict: Accept,
        },
        PacketCase {
            name: "bpf_trace_printk with an unknown conversion (-EINVAL)",
            source: "lddw %r1, 0x7125\nstxdw [%r10-8], %r1\nmov %r1, %r10\nadd %r1, -8\nmov %r2, 3\nmov %r3, 1\nmov %r4, 2\nmov %r5, 3\ncall 6\nexit\n",
            verdict: Accept,
        },
        PacketCase {
            name: "bpf_trace_printk without the NUL inside its size (-EINVAL)",
            source: "lddw %r1, 0x6867666564636261\nstxdw [%r10-16], %r1\nlddw %r1, 0x0\nstxdw [%r10-8], %r1\nmov %r1, %r10\nadd %r1, -16\nmov %r2, 4\nmov %r3, 0\nmov %r4, 0\nmov %r5, 0\ncall 6\nexit\n",
            verdict: Accept,
        },
        PacketCase {
            name: "bpf_trace_printk of zero bytes",
            source: "stdw [%r10-8], 0\nmov %r1, %r10\nadd %r1, -8\nmov %r2, 0\ncall 6\nexit\n",
            verdict: Refuse("R2 invalid zero-sized read: u64=[0,0]"),
        },
        PacketCase {
            name: "a negative offset from the start",
            source: eth!("jgt %r4, %r3, short" "ldxb %r0, [%r2-1]" "exit"
                "short:" "mov %r0, 1" "exit"),
            verdict: Refuse("invalid access to packet, off=-1 size=1, R2(id=0,off=-1,r=14)"),
        },
    ]
}

/// [`bounds!`] through a tc program's `__sk_buff`.
macro_rules! tc_eth {
    ($($rest:literal)*) => {
        bounds!(76, 80; $($rest)*)
    };
}

/// The tc (`sched_cls`) programs, loaded as `BPF_PROG_TYPE_SCHED_CLS`: packet access through
/// `__sk_buff`, its writable fields, the helpers tc has and XDP has not (and the reverse), and
/// what mimic does not model.
pub fn tc_cases() -> Vec<PacketCase> {
    use Verdict::*;
    vec![
        PacketCase {
            name: "tc: ethertype after `data + 14 > data_end`",
            source: tc_eth!("jgt %r4, %r3, short" "ldxh %r0, [%r2+12]" "exit"
                "short:" "mov %r0, 1" "exit"),
            verdict: Accept,
        },
        PacketCase {
            name: "tc: one byte past the check",
            source: tc_eth!("jgt %r4, %r3, short" "ldxb %r0, [%r2+14]" "exit"
                "short:" "mov %r0, 1" "exit"),
            verdict: Refuse("invalid access to packet, off=14 size=1, R2(id=0,off=14,r=14)"),
        },
        PacketCase {
            name: "tc: metadata checked against data",
            source: "ldxw %r2, [%r1+140]\nldxw %r3, [%r1+76]\nmov %r4, %r2\nadd %r4, 4\n\
                     jgt %r4, %r3, none\nldxw %r0, [%r2+0]\nexit\nnone:\nmov %r0, 2\nexit\n",
            verdict: Accept,
        },
        PacketCase {
            name: "tc: len, protocol and pkt_type",
            source: "ldxw %r2, [%r1+0]\nldxw %r3, [%r1+16]\nlsh %r3, 16\nor %r2, %r3\n\
                     ldxb %r3, [%r1+4]\nlsh %r3, 12\nor %r2, %r3\nmov %r0, %r2\nexit\n",
            verdict: Accept,
        },
        PacketCase {
            name: "tc: mark and priority written, then read back",
            source: "mov %r2, 0x1234\nstxw [%r1+8], %r2\nmov %r2, 0x56\nstxw [%r1+32], %r2\n\
                     ldxw %r0, [%r1+8]\nldxw %r3, [%r1+32]\nlsh %r3, 16\nor %r0, %r3\nexit\n",
            verdict: Accept,
        },
        PacketCase {
            name: "tc: an immediate stored into mark",
            source: "stw [%r1+8], 7\nldxw %r0, [%r1+8]\nexit\n",
            verdict: Accept,
        },
        PacketCase {
            name: "tc: cb written as 8 bytes, read a byte at a time",
            source: "lddw %r2, 0x0102030405060708\nstxdw [%r1+48], %r2\nldxb %r0, [%r1+53]\n\
                     ldxb %r3, [%r1+48]\nlsh %r3, 8\nor %r0, %r3\nexit\n",
            verdict: Accept,
        },
        PacketCase {
            name: "tc: mark and pkt_type read sign-extended",
            source: "mov %r2, -2\nstxw [%r1+8], %r2\nldxsb %r0, [%r1+8]\nldxsh %r3, [%r1+4]\n\
                     add %r0, %r3\nexit\n",
            verdict: Accept,
        },
        PacketCase {
            name: "tc: data read sign-extended",
            source: "ldxsw %r2, [%r1+76]\nmov %r0, 0\nexit\n",
            verdict: Refuse("invalid bpf_context access off=76 size=4"),
        },
        PacketCase {
            name: "tc: len is read-only",
            source: "stw [%r1+0], 7\nmov %r0, 0\nexit\n",
            verdict: Refuse("invalid bpf_context access off=0 size=4"),
        },
        PacketCase {
            name: "tc: a narrow write",
            source: "mov %r2, 1\nstxh [%r1+8], %r2\nmov %r0, 0\nexit\n",
            verdict: Refuse("invalid bpf_context access off=8 size=2"),
        },
        PacketCase {
            name: "tc: queue_mapping written in and out of range",
            source: "mov %r2, 3\nstxw [%r1+12], %r2\nldxw %r6, [%r1+12]\nmov %r2, 0xffff\n\
                     stxw [%r1+12], %r2\nstw [%r1+12], 0x10000\nldxw %r0, [%r1+12]\nlsh %r6, 8\n\
                     or %r0, %r6\nexit\n",
            verdict: Accept,
        },
        PacketCase {
            name: "tc: sk_skb's socket fields",
            source: "ldxw %r0, [%r1+92]\nexit\n",
            verdict: Refuse("invalid bpf_context access off=92 size=4"),
        },
        PacketCase {
            name: "tc: a checked write into the packet gets the unclone prologue",
            source: tc_eth!("jgt %r4, %r3, short" "stb [%r2+0], 5" "ldxw %r5, [%r2+6]"
                "stxw [%r2+2], %r5" "mov %r0, 0" "exit" "short:" "mov %r0, 2" "exit"),
            verdict: Accept,
        },
        PacketCase {
            name: "tc: bpf_redirect with a bad flag, BPF_F_INGRESS and none",
            source: "mov %r1, 1\nmov %r2, 2\ncall 23\nmov %r6, %r0\nlsh %r6, 8\n\
                     mov %r1, 1\nmov %r2, 1\ncall 23\nlsh %r0, 4\nor %r6, %r0\n\
                     mov %r1, 1\nmov %r2, 0\ncall 23\nor %r0, %r6\nexit\n",
            verdict: Accept,
        },
        PacketCase {
            name: "tc: bpf_skb_pull_data, then the range learned again",
            source: "mov %r6, %r1\nmov %r2, 0\ncall 39\nmov %r7, %r0\nmov %r1, %r6\n\
                     mov %r2, 100000\ncall 39\nmov %r8, %r0\n\
                     ldxw %r2, [%r6+76]\nldxw %r3, [%r6+80]\nmov %r4, %r2\nadd %r4, 14\n\
                     jgt %r4, %r3, short\nldxh %r0, [%r2+12]\nlsh %r7, 16\nor %r0, %r7\n\
                     and %r8, 0xff\nlsh %r8, 24\nor %r0, %r8\nexit\nshort:\nmov %r0, 1\nexit\n",
            verdict: Accept,
        },
        PacketCase {
            name: "tc: a packet pointer kept across bpf_skb_pull_data",
            source: tc_eth!("jgt %r4, %r3, short" "mov %r6, %r2" "mov %r2, 0" "call 39"
                "ldxb %r0, [%r6+0]" "exit" "short:" "mov %r0, 1" "exit"),
            verdict: Refuse("R6 invalid mem access 'scalar'"),
        },
        PacketCase {
            name: "tc: bpf_skb_store_bytes writes the destination address",
            source: "mov %r6, %r1\nstw [%r10-4], 0x0500010a\nmov %r2, 30\nmov %r3, %r10\n\
                     add %r3, -4\nmov %r4, 4\nmov %r5, 0\ncall 9\nmov %r7, %r0\n\
                     ldxw %r2, [%r6+76]\nldxw %r3, [%r6+80]\nmov %r4, %r2\nadd %r4, 34\n\
                     jgt %r4, %r3, short\nldxw %r0, [%r2+30]\nadd %r0, %r7\nexit\n\
                     short:\nmov %r0, %r7\nexit\n",
            verdict: Accept,
        },
        PacketCase {
            name: "tc: bpf_skb_store_bytes past the end and with an unknown flag",
            source: "mov %r6, %r1\nstw [%r10-4], 0\nmov %r2, 40\nmov %r3, %r10\nadd %r3, -4\n\
                     mov %r4, 4\nmov %r5, 0\ncall 9\nmov %r7, %r0\nmov %r1, %r6\nmov %r2, 0\n\
                     mov %r3, %r10\nadd %r3, -4\nmov %r4, 4\nmov %r5, 4\ncall 9\n\
                     and %r0, 0xff\nand %r7, 0xff\nlsh %r7, 8\nor %r0, %r7\nexit\n",
            verdict: Accept,
        },
        PacketCase {
            name: "tc: bpf_l3_csum_replace for a new destination, then the address stored",
            source: "mov %r6, %r1\nldxw %r2, [%r6+76]\nldxw %r3, [%r6+80]\nmov %r4, %r2\n\
                     add %r4, 34\njgt %r4, %r3, short\nldxw %r7, [%r2+30]\n\
                     stw [%r10-4], 0x0500010a\nmov %r1, %r6\nmov %r2, 24\nmov %r3, %r7\n\
                     ldxw %r4, [%r10-4]\nmov %r5, 4\ncall 10\nmov %r8, %r0\nmov %r1, %r6\n\
                     mov %r2, 30\nmov %r3, %r10\nadd %r3, -4\nmov %r4, 4\nmov %r5, 0\n\
                     call 9\nldxw %r2, [%r6+76]\nldxw %r3, [%r6+80]\nmov %r4, %r2\n\
                     add %r4, 34\njgt %r4, %r3, short\nldxh %r0, [%r2+24]\nor %r0, %r8\n\
                     exit\nshort:\nmov %r0, 1\nexit\n",
            verdict: Accept,
        },
        PacketCase {
            name: "tc: bpf_l4_csum_replace of a 2-byte field, a zero checksum kept or enforced",
            source: "mov %r6, %r1\nmov %r2, 40\nmov %r3, 0x1234\nmov %r4, 0x4321\n\
                     mov %r5, 0x22\ncall 11\nmov %r7, %r0\nmov %r1, %r6\nmov %r2, 40\n\
                     mov %r3, 0x1234\nmov %r4, 0x4321\nmov %r5, 0x72\ncall 11\nmov %r8, %r0\n\
                     ldxw %r2, [%r6+76]\nldxw %r3, [%r6+80]\nmov %r4, %r2\nadd %r4, 42\n\
                     jgt %r4, %r3, short\nldxh %r0, [%r2+40]\nand %r7, 0xff\nlsh %r7, 16\n\
                     or %r0, %r7\nand %r8, 0xff\nlsh %r8, 24\nor %r0, %r8\nexit\n\
                     short:\nmov %r0, 1\nexit\n",
            verdict: Accept,
        },
        PacketCase {
            name: "tc: checksum replacement errors and a replacement by difference",
            source: "mov %r6, %r1\nmov %r2, 25\nmov %r3, 0\nmov %r4, 0\nmov %r5, 2\ncall 10\n\
                     mov %r7, %r0\nmov %r1, %r6\nmov %r2, 24\nmov %r3, 1\nmov %r4, 5\n\
                     mov %r5, 0\ncall 10\nmov %r8, %r0\nmov %r1, %r6\nmov %r2, 24\n\
                     mov %r3, 0\nmov %r4, 0x1234\nmov %r5, 0\ncall 10\nmov %r9, %r0\n\
                     mov %r1, %r6\nmov %r2, 24\nmov %r3, 0\nmov %r4, 0\nmov %r5, 0x13\n\
                     call 10\nand %r0, 0xff\nand %r7, 0xff\nlsh %r7, 8\nor %r0, %r7\n\
                     and %r8, 0xff\nlsh %r8, 16\nor %r0, %r8\nand %r9, 0xff\nlsh %r9, 24\n\
                     or %r0, %r9\nexit\n",
            verdict: Accept,
        },
        PacketCase {
            name: "tc: a packet pointer kept across bpf_l3_csum_replace",
            source: tc_eth!("jgt %r4, %r3, short" "mov %r7, %r2" "mov %r6, %r1" "mov %r2, 24"
                "mov %r3, 0" "mov %r4, 0" "mov %r5, 0" "call 10" "ldxb %r0, [%r7+0]" "exit"
                "short:" "mov %r0, 1" "exit"),
            verdict: Refuse("R7 invalid mem access 'scalar'"),
        },
        PacketCase {
            name: "tc: bpf_skb_load_bytes of the ethertype onto the stack",
            source: "mov %r6, %r1\nmov %r2, 12\nmov %r3, %r10\nadd %r3, -8\nmov %r4, 2\n\
                     call 26\nmov %r7, %r0\nldxh %r0, [%r10-8]\nand %r7, 0xff\nlsh %r7, 16\n\
                     or %r0, %r7\nexit\n",
            verdict: Accept,
        },
        PacketCase {
            name: "tc: bpf_skb_load_bytes past the end zeroes its buffer",
            source: "stdw [%r10-8], -1\nmov %r2, 40\nmov %r3, %r10\nadd %r3, -8\nmov %r4, 8\n\
                     call 26\nmov %r7, %r0\nldxw %r0, [%r10-4]\nand %r7, 0xff\nlsh %r7, 24\n\
                     or %r0, %r7\nexit\n",
            verdict: Accept,
        },
        PacketCase {
            name: "tc: bpf_skb_load_bytes into the packet",
            source: tc_eth!("jgt %r4, %r3, short" "mov %r3, %r2" "mov %r2, 0" "mov %r4, 4"
                "call 26" "mov %r0, 0" "exit" "short:" "mov %r0, 1" "exit"),
            verdict: Refuse("helper access to the packet is not allowed"),
        },
        PacketCase {
            name: "tc: bpf_skb_load_bytes of no bytes",
            source: "mov %r2, 0\nmov %r3, %r10\nadd %r3, -8\nmov %r4, 0\ncall 26\nexit\n",
            verdict: Refuse("R4 invalid zero-sized read: u64=[0,0]"),
        },
        PacketCase {
            name: "tc: bpf_skb_load_bytes past the stack",
            source: "mov %r2, 0\nmov %r3, %r10\nadd %r3, -4\nmov %r4, 8\ncall 26\nexit\n",
            verdict: Refuse("invalid write to stack R3 off=-4 size=8"),
        },
        PacketCase {
            name: "tc: bpf_skb_load_bytes over a spilled context pointer",
            source: "stxdw [%r10-8], %r1\nmov %r2, 12\nmov %r3, %r10\nadd %r3, -8\nmov %r4, 2\n\
                     call 26\nldxdw %r1, [%r10-8]\nldxw %r0, [%r1+0]\nexit\n",
            verdict: Refuse("R1 invalid mem access 'scalar'"),
        },
        PacketCase {
            name: "tc: bpf_skb_store_bytes from the packet",
            source: tc_eth!("jgt %r4, %r3, short" "mov %r3, %r2" "mov %r2, 0" "mov %r4, 4"
                "mov %r5, 0" "call 9" "mov %r0, 0" "exit" "short:" "mov %r0, 1" "exit"),
            verdict: Refuse("helper access to the packet is not allowed"),
        },
        PacketCase {
            name: "xdp: bpf_skb_store_bytes is tc's",
            source: "stw [%r10-4], 0\nmov %r2, 0\nmov %r3, %r10\nadd %r3, -4\nmov %r4, 4\n\
                     mov %r5, 0\ncall 9\nmov %r0, 2\nexit\n",
            verdict: Refuse("program of this type cannot use helper bpf_skb_store_bytes#9"),
        },
        PacketCase {
            name: "tc: bpf_xdp_adjust_head is XDP's",
            source: "mov %r2, 0\ncall 44\nmov %r0, 0\nexit\n",
            verdict: Refuse("program of this type cannot use helper bpf_xdp_adjust_head#44"),
        },
        PacketCase {
            name: "xdp: bpf_skb_pull_data is tc's",
            source: "mov %r2, 0\ncall 39\nmov %r0, 2\nexit\n",
            verdict: Refuse("program of this type cannot use helper bpf_skb_pull_data#39"),
        },
        PacketCase {
            name: "tc: the socket behind the packet",
            source: "ldxdw %r2, [%r1+168]\nmov %r0, 0\nexit\n",
            verdict: Unmodelled(super::check::SK_UNMODELLED),
        },
        PacketCase {
            name: "tc: a BPF_LD_ABS load",
            source: "mov %r6, %r1\nldabsh 12\nexit\n",
            verdict: Unmodelled(super::check::LD_ABS_UNMODELLED),
        },
    ]
}

/// Every access of up to 8 bytes at every aligned offset of `__sk_buff` and just past it, read
/// and written (from a register and as an immediate), each as its own tc program; a read
/// returns what it loaded where mimic says the field is a scalar, so a test run compares the
/// field's value. kernel-check compares the kernel's verdict on each with mimic's rule
/// ([`crate::bpf::skb::tc_access`]).
pub fn tc_context_sweep() -> Vec<(String, Vec<Insn>)> {
    use crate::bpf::skb::{sk_buff_md, tc_access, CtxField};
    use crate::isa::{BPF_B, BPF_DW, BPF_H, BPF_W};
    let mut out = Vec::new();
    for (size, code) in [(1i64, BPF_B), (2, BPF_H), (4, BPF_W), (8, BPF_DW)] {
        for off in (0..sk_buff_md::SIZE + 8).step_by(size as usize) {
            let at = off as i16;
            let scalar = tc_access(off, size, false) == Some(CtxField::Scalar);
            let read = if scalar {
                vec![Insn::ldx_mem(code, 0, 1, at), Insn::exit()]
            } else {
                vec![
                    Insn::ldx_mem(code, 2, 1, at),
                    Insn::mov64_imm(0, 0),
                    Insn::exit(),
                ]
            };
            out.push((format!("tc context: read {size} at {off}"), read));
            let reg = vec![
                Insn::mov64_imm(2, 0x55),
                Insn::stx_mem(code, 1, 2, at),
                Insn::mov64_imm(0, 0),
                Insn::exit(),
            ];
            out.push((
                format!("tc context: write {size} from a register at {off}"),
                reg,
            ));
            let imm = vec![
                Insn::st_mem(code, 1, at, 0x55),
                Insn::mov64_imm(0, 0),
                Insn::exit(),
            ];
            out.push((
                format!("tc context: write {size} as an immediate at {off}"),
                imm,
            ));
        }
    }
    out
}

/// An Ethernet + IPv4 + TCP/UDP frame, in network order, with a correct IPv4 checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    pub saddr: [u8; 4],
    pub daddr: [u8; 4],
    /// `IPPROTO_TCP` (6) or `IPPROTO_UDP` (17); any other number gives a header-only frame.
    pub protocol: u8,
    pub sport: u16,
    pub dport: u16,
    /// 32-bit words of IPv4 options (IHL = 5 + this).
    pub option_words: u8,
}

impl Frame {
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00];
        let ihl = 5 + self.option_words;
        let l4 = match self.protocol {
            6 => 20,
            17 => 8,
            _ => 0,
        };
        let total = u16::from(ihl) * 4 + l4;
        let mut ip = vec![0x40 | ihl, 0];
        ip.extend_from_slice(&total.to_be_bytes());
        ip.extend_from_slice(&[0, 1, 0, 0, 64, self.protocol, 0, 0]);
        ip.extend_from_slice(&self.saddr);
        ip.extend_from_slice(&self.daddr);
        ip.resize(usize::from(ihl) * 4, 1);
        let sum = ip
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum::<u32>();
        let sum = (sum & 0xffff) + (sum >> 16);
        let sum = (sum & 0xffff) + (sum >> 16);
        ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        out.extend_from_slice(&ip);
        if l4 > 0 {
            let mut hdr = vec![0; usize::from(l4)];
            hdr[0..2].copy_from_slice(&self.sport.to_be_bytes());
            hdr[2..4].copy_from_slice(&self.dport.to_be_bytes());
            out.extend_from_slice(&hdr);
        }
        out
    }
}

/// The frames a simulated XDP run draws from, by kind (a scenario task's keys): IPv4 to and
/// around the Maglev example's services (examples/objects/maglev.bpf.c: 10.0.0.1 TCP 80 and UDP
/// 53, 10.0.0.2 TCP 443 which has no backend table), with options, truncated, with a bad header
/// length, not IP at all, and a bare Ethernet header. `sport` varies the flow.
pub fn frame(kind: u32, sport: u16) -> Vec<u8> {
    let vip = [10, 0, 0, 1];
    let web = Frame {
        saddr: [192, 168, 7, 9],
        daddr: vip,
        protocol: 6,
        sport,
        dport: 80,
        option_words: 0,
    };
    match kind % FRAME_KINDS {
        0 => web.bytes(),
        1 => Frame {
            protocol: 17,
            dport: 53,
            ..web
        }
        .bytes(),
        2 => Frame {
            daddr: [10, 0, 0, 2],
            dport: 443,
            ..web
        }
        .bytes(),
        3 => Frame {
            daddr: [10, 0, 0, 9],
            ..web
        }
        .bytes(),
        4 => Frame {
            option_words: 2,
            ..web
        }
        .bytes(),
        5 => {
            let mut truncated = web.bytes();
            truncated.truncate(14 + 20 + 2);
            truncated
        }
        6 => {
            let mut bad_ihl = web.bytes();
            bad_ihl[14] = 0x44;
            bad_ihl
        }
        7 => {
            let mut arp = web.bytes();
            arp[12..14].copy_from_slice(&[0x08, 0x06]);
            arp
        }
        _ => web.bytes()[..14].to_vec(),
    }
}

/// Kinds of [`frame`].
pub const FRAME_KINDS: u32 = 9;

/// The names of [`frame`]'s kinds, in order: what scenarios call them.
pub const FRAME_NAMES: [&str; FRAME_KINDS as usize] = [
    "web",
    "dns",
    "no_table",
    "other",
    "web_options",
    "truncated",
    "bad_ihl",
    "arp",
    "ethernet_only",
];

/// The frame of the kind named `name` ([`FRAME_NAMES`]), or `None` for an unknown name.
pub fn frame_named(name: &str, sport: u16) -> Option<Vec<u8>> {
    let kind = FRAME_NAMES.iter().position(|n| *n == name)?;
    Some(frame(kind as u32, sport))
}

/// The packets every accepted case and every example XDP program's test run gets: too short
/// for a test run (13 bytes), 64 patterned bytes, and each kind of [`frame`] (the first three
/// kinds with a second and third flow).
pub fn packets() -> Vec<Vec<u8>> {
    let mut out = vec![
        vec![0xaa; 13],
        (0u8..64).map(|b| b.wrapping_mul(37)).collect(),
    ];
    out.extend((0..FRAME_KINDS).map(|kind| frame(kind, 40000)));
    out.extend((0..3).map(|kind| frame(kind, 40001)));
    out.extend((0..3).map(|kind| frame(kind, 51234)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::csum;
    use crate::bpf::verifier::world::{prog_load, TestRunError};
    use crate::bpf::verifier::{verify, MapTable, ProgType, VerifyOpts};
    use crate::errno::Errno;
    use crate::mutants::Mutants;
    use crate::sync::Std;
    use crate::sys::Process;
    use crate::world::WorldConfig;

    fn opts() -> VerifyOpts {
        VerifyOpts {
            prog_type: ProgType::Xdp,
            privileged: true,
            ..VerifyOpts::default()
        }
    }

    fn case(prefix: &str) -> PacketCase {
        cases()
            .into_iter()
            .find(|c| c.name.starts_with(prefix))
            .unwrap_or_else(|| panic!("no case `{prefix}`"))
    }

    fn tc() -> VerifyOpts {
        VerifyOpts {
            prog_type: ProgType::SchedCls,
            ..opts()
        }
    }

    /// Each case's verdict (and first message) as the kernel gave it, or mimic's named gap.
    fn check_verdicts(cases: Vec<PacketCase>, opts: VerifyOpts) {
        for case in cases {
            let insns = case
                .insns()
                .unwrap_or_else(|e| panic!("{}: {e}", case.name));
            let opts = VerifyOpts {
                prog_type: case.prog_type(),
                ..opts
            };
            let got = verify(&insns, &MapTable(vec![]), opts);
            match (case.verdict, &got) {
                (Verdict::Accept, Ok(_)) => {}
                (Verdict::Refuse(message) | Verdict::Unmodelled(message), Err(r)) => {
                    assert_eq!(r.message, message, "{}", case.name)
                }
                (want, got) => panic!(
                    "{}: the kernel's verdict is {want:?}, mimic's {:?}",
                    case.name,
                    got.as_ref().map(|_| ())
                ),
            }
        }
    }

    #[test]
    fn every_case_gets_the_kernels_verdict_and_message() {
        check_verdicts(cases(), opts());
    }

    #[test]
    fn every_tc_case_gets_the_kernels_verdict_or_the_named_gap() {
        check_verdicts(tc_cases(), tc());
    }

    #[test]
    fn accepted_cases_run_on_packets_with_the_checks_they_wrote() {
        let sys = Process::<Std>::create(Mutants::NONE, WorldConfig::default());
        let world = sys.world();
        let run = |prefix: &str, packet: &[u8]| {
            let insns = case(prefix).insns().expect("assembles");
            let loaded = prog_load(world, &insns, opts()).expect("loads");
            let out = loaded.test_run_packet(world, packet);
            loaded.unload(world).expect("unloads");
            out
        };
        let packets = packets();
        let (short, eth, udp) = (&packets[0], &frame(8, 0), &frame(1, 40000));
        assert!(matches!(
            run("ethertype", short),
            Err(TestRunError::Errno(Errno::EINVAL))
        ));
        assert_eq!(udp.len(), 14 + 20 + 8);
        // The ethertype as a little-endian load of `08 00`, and the packet unchanged.
        assert_eq!(run("ethertype", udp).expect("runs"), (0x0008, udp.clone()));
        // Too short for the IPv4 header, not for the Ethernet one.
        assert_eq!(run("ethertype", eth).expect("runs").0, 0x0008);
        let (r0, out) = run("a checked write", udp).expect("runs");
        assert_eq!(r0, 2);
        assert_eq!(out[0], 5);
        assert_eq!(out[2..6], udp[6..10]);
        assert_eq!(run("ingress_ifindex", eth).expect("runs").0, 0x10);
        // No metadata in a test run: the check fails.
        assert_eq!(run("metadata", eth).expect("runs").0, 2);
        // The head grows into the headroom: four bytes written there, then the frame.
        let (r0, out) = run("bpf_xdp_adjust_head grows", udp).expect("runs");
        assert_eq!((r0, &out[..4], &out[4..]), (2, &[0xff; 4][..], &udp[..]));
        // 217 bytes would enter the kernel's xdp_frame (EINVAL); 216 is its edge (0).
        let (r0, out) = run("bpf_xdp_adjust_head into", eth).expect("runs");
        assert_eq!((r0, out.len()), (0xea00, 216 + eth.len()));
        assert_eq!(run("bpf_redirect", eth).expect("runs").0, 0x0004);
        // Byte 0 is 0x02: the unknown offset is 2 and bytes 2 and 3 (zero) are read.
        assert_eq!(run("an unknown offset checked", eth).expect("runs").0, 0);
    }

    /// The tc cases on frames, with what `mimic kernel-check`'s `exec/test-run/tc` line found
    /// the kernel returning for each.
    #[test]
    fn tc_cases_run_on_frames_as_the_kernel_runs_them() {
        let sys = Process::<Std>::create(Mutants::NONE, WorldConfig::default());
        let world = sys.world();
        let tc_cases = tc_cases();
        let run = |prefix: &str, packet: &[u8]| {
            let case = tc_cases
                .iter()
                .find(|c| c.name.starts_with(prefix))
                .unwrap_or_else(|| panic!("no case `{prefix}`"));
            let insns = case.insns().expect("assembles");
            let loaded = prog_load(world, &insns, tc()).expect("loads");
            let out = loaded.test_run_packet(world, packet);
            loaded.unload(world).expect("unloads");
            out
        };
        let (eth, udp) = (&frame(8, 0), &frame(1, 40000));
        // An IPv4 frame without its IPv4 header is refused before the run.
        assert!(matches!(
            run("tc: ethertype", eth),
            Err(TestRunError::Errno(Errno::EINVAL))
        ));
        assert_eq!(
            run("tc: ethertype", udp).expect("runs"),
            (0x0008, udp.clone())
        );
        // 42 bytes, IPv4 (`08 00` as a little-endian u16), to 02:00:00:00:00:01: another host.
        assert_eq!(
            run("tc: len, protocol", udp).expect("runs").0,
            42 | 0x0008 << 16 | 3 << 12
        );
        assert_eq!(
            run("tc: mark and priority", udp).expect("runs").0,
            0x56_1234
        );
        assert_eq!(run("tc: an immediate", udp).expect("runs").0, 7);
        // Byte 5 of the little-endian word is 0x03, byte 0 is 0x08.
        assert_eq!(run("tc: cb written", udp).expect("runs").0, 0x0803);
        // 3 stored; 0xffff (a register) and 0x10000 (an immediate) are not.
        assert_eq!(run("tc: queue_mapping", udp).expect("runs").0, 0x0303);
        let (r0, out) = run("tc: a checked write", udp).expect("runs");
        assert_eq!((r0, out[0], &out[2..6]), (0, 5, &udp[6..10]));
        // TC_ACT_SHOT for flag 2, TC_ACT_REDIRECT for BPF_F_INGRESS and for none.
        assert_eq!(run("tc: bpf_redirect", udp).expect("runs").0, 0x277);
        // Pulling nothing succeeds; pulling past the end is -ENOMEM (0xf4 in the top byte).
        assert_eq!(
            run("tc: bpf_skb_pull_data, then", udp).expect("runs").0,
            0xf400_0008
        );
        // 10.1.0.5 stored as the destination, read back as a little-endian word.
        let (r0, out) = run("tc: bpf_skb_store_bytes writes", udp).expect("runs");
        assert_eq!((r0, &out[30..34]), (0x0500_010a, &[10, 1, 0, 5][..]));
        // 4 bytes at 40 of a 42-byte frame: -EFAULT (0xf2); flag 4: -EINVAL (0xea).
        assert_eq!(
            run("tc: bpf_skb_store_bytes past", udp).expect("runs").0,
            0xf2ea
        );
        // The checksum updated for the new destination is the header's checksum computed again.
        let (r0, out) = run("tc: bpf_l3_csum_replace", udp).expect("runs");
        let mut header = out[14..34].to_vec();
        let updated = u16::from_le_bytes([header[10], header[11]]);
        header[10..12].fill(0);
        assert_eq!(r0, u64::from(updated));
        assert_eq!(updated, !csum::fold16(csum::partial(&header, 0)));
        // The UDP checksum is 0: kept by BPF_F_MARK_MANGLED_0, replaced under MARK_ENFORCE.
        let (r0, _) = run("tc: bpf_l4_csum_replace", udp).expect("runs");
        assert_eq!(r0, u64::from(csum::replace4(0, 0x1234, 0x4321)));
        // The ethertype copied onto the stack; 8 bytes from 40 of 42: -EFAULT, the buffer zeroed.
        assert_eq!(
            run("tc: bpf_skb_load_bytes of the", udp).expect("runs").0,
            0x0008
        );
        assert_eq!(
            run("tc: bpf_skb_load_bytes past", udp).expect("runs").0,
            0xf200_0000
        );
        // Odd offset -EFAULT, `from` with a size of 0 -EINVAL, an L4 flag on L3 -EINVAL, and
        // the replacement by a difference returns 0.
        assert_eq!(
            run("tc: checksum replacement errors", udp).expect("runs").0,
            0x00ea_f2ea
        );
    }

    /// `bpf_skb_load_bytes` into a map value: within the value it is accepted; past its end,
    /// or into a map programs may only read, refused with the kernel's words for a helper's
    /// write of the whole range (`check_map_access_type`, `check_mem_region_access`).
    #[test]
    fn bpf_skb_load_bytes_fills_a_writable_map_value_only() {
        use crate::bpf::verifier::asm_maps::assemble_with_maps;
        use crate::bpf::verifier::MapDesc;
        use crate::uapi::{MapType, BPF_F_RDONLY_PROG};
        let program = |len: u32| {
            format!(
                "stw [%r10-4], 0\nmov %r6, %r1\nmov %r2, %r10\nadd %r2, -4\n\
                 lddw %r1, map:values\ncall 1\njeq %r0, 0, out\nmov %r1, %r6\nmov %r2, 0\n\
                 mov %r3, %r0\nmov %r4, {len}\ncall 26\nout:\nmov %r0, 0\nexit\n"
            )
        };
        let verdict = |flags: u32, len: u32| {
            let insns =
                assemble_with_maps(&program(len), &|name: &str| (name == "values").then_some(7))
                    .expect("assembles");
            let maps = MapTable(vec![(7, MapDesc::new(MapType::Array, 4, 8, 1, flags))]);
            verify(&insns, &maps, tc())
                .map(|_| ())
                .map_err(|r| r.message)
        };
        assert_eq!(verdict(0, 8), Ok(()));
        assert_eq!(
            verdict(0, 12),
            Err("invalid access to map value, value_size=8 off=0 size=12".to_string())
        );
        assert_eq!(
            verdict(BPF_F_RDONLY_PROG, 8),
            Err("write into map forbidden, value_size=8 off=0 size=8".to_string())
        );
    }

    #[test]
    fn packet_helpers_are_refused_outside_packet_programs() {
        let insns = assemble("mov %r2, 0\ncall 44\nexit\n").expect("assembles");
        let syscall = VerifyOpts {
            prog_type: ProgType::Syscall,
            ..opts()
        };
        let refused = verify(&insns, &MapTable(vec![]), syscall).expect_err("refused");
        assert_eq!(
            refused.message,
            "program of this type cannot use helper bpf_xdp_adjust_head#44"
        );
        // The same call from XDP passes the context check and is accepted.
        let insns = assemble("mov %r2, 0\ncall 44\nmov %r0, 2\nexit\n").expect("assembles");
        assert!(verify(&insns, &MapTable(vec![]), opts()).is_ok());
    }
}
