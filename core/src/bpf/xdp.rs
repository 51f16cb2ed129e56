//! XDP's data: `struct xdp_md` as programs read it, the packet buffer the executor's packet
//! region names, the context the executor runs a program on, and the rewrite of a program's
//! `xdp_md` reads into loads from that context (the kernel's `xdp_convert_ctx_access`). It
//! stands below the executor and the verifier (it needs only `isa` and `ptr`), which both read
//! it.
//!
//! A program reads `xdp_md` (`u32` fields); the kernel runs it against `struct xdp_buff`,
//! whose fields are pointers, and rewrites every context read when it loads the program. mimic
//! does the same, so the program the executor runs is the one the kernel runs and the xlated
//! dumps compare: `data`, `data_end` and `data_meta` become 8-byte loads at the kernel's
//! offsets; `rx_queue_index` a load through `rxq`, `ingress_ifindex` a load through
//! `rxq->dev` (the device's layout is mimic's own: the kernel's `net_device` offsets differ by
//! build). The alternative, an executor that knows about `xdp_md`, would run a program the
//! kernel never runs.
//!
//! [`Packet`] is the buffer the executor's packet region names; [`XdpCtx`] lays the context
//! out over it: pointer fields in the [`crate::ptr`]
//! encoding, `rxq` and `dev` pointing back into the context itself. Invariant: the pointers
//! always name the packet's current `meta`, `data` and `end` ([`XdpCtx::sync`] after a helper
//! moves them).

use crate::isa::{Insn, BPF_DW, BPF_W};
use crate::ptr::Ptr;

/// `struct xdp_md`'s fields a plain XDP program may read (`egress_ifindex`, the sixth, is for
/// devmap programs only).
pub mod xdp_md {
    pub const DATA: i64 = 0;
    pub const DATA_END: i64 = 4;
    pub const DATA_META: i64 = 8;
    pub const INGRESS_IFINDEX: i64 = 12;
    pub const RX_QUEUE_INDEX: i64 = 16;
    /// Bytes of the readable fields.
    pub const READABLE: i64 = 20;
}

/// A packet buffer: headroom, optional metadata, the packet, and room after it. Only
/// `buf[meta..end]` may be touched; `data` is where the packet proper starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Packet {
    pub buf: Vec<u8>,
    pub meta: usize,
    pub data: usize,
    pub end: usize,
}

impl Packet {
    /// `bytes` after `headroom` bytes of headroom, with no metadata and no tailroom.
    pub fn new(headroom: usize, bytes: &[u8]) -> Packet {
        let mut buf = vec![0; headroom];
        buf.extend_from_slice(bytes);
        Packet {
            meta: headroom,
            data: headroom,
            end: buf.len(),
            buf,
        }
    }
    /// The bytes a program may touch.
    pub fn window(&self) -> (usize, usize) {
        (self.meta, self.end)
    }
    /// The packet proper (`data..data_end`), as a test run returns it.
    pub fn data(&self) -> &[u8] {
        &self.buf[self.data..self.end]
    }

    /// `bpf_xdp_adjust_head`: moves the packet's start by `delta` bytes (negative: grows the
    /// head into the headroom), the metadata with it. The new start must leave room for the
    /// kernel's `struct xdp_frame` (and the metadata) at the buffer's start and an Ethernet
    /// header before the end; otherwise nothing moves and the result is `-EINVAL`.
    pub fn adjust_head(&mut self, delta: i32) -> i64 {
        let meta_len = self.data - self.meta;
        let data = self.data as i64 + i64::from(delta);
        let lowest = (XDP_FRAME_SIZE + meta_len) as i64;
        let highest = self.end as i64 - ETH_HLEN as i64;
        if data < lowest || data > highest {
            return -i64::from(crate::errno::Errno::EINVAL.value());
        }
        let data = data as usize;
        let meta = data - meta_len;
        self.buf.copy_within(self.meta..self.data, meta);
        (self.meta, self.data) = (meta, data);
        0
    }
}

/// `sizeof(struct xdp_frame)` on 64-bit kernels: the headroom a packet's start may not enter.
pub const XDP_FRAME_SIZE: usize = 40;
/// An Ethernet header: the least a packet keeps.
pub const ETH_HLEN: usize = 14;

/// The actions an XDP program returns (`enum xdp_action`), by name.
pub const ACTIONS: [(&str, u64); 5] = [
    ("XDP_ABORTED", 0),
    ("XDP_DROP", 1),
    ("XDP_PASS", 2),
    ("XDP_TX", 3),
    ("XDP_REDIRECT", 4),
];

/// The value of an action's name (`XDP_TX`), or of a number written in decimal.
pub fn action(name: &str) -> Option<u64> {
    ACTIONS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
        .or_else(|| name.parse().ok())
}

/// The name of an action, or the number for one outside `enum xdp_action`.
pub fn action_name(value: u64) -> String {
    ACTIONS
        .iter()
        .find(|(_, v)| *v == value)
        .map_or(value.to_string(), |(n, _)| n.to_string())
}

/// `XDP_PACKET_HEADROOM`: bytes before the packet a test run leaves for `bpf_xdp_adjust_head`.
pub const HEADROOM: usize = 256;
/// The longest packet a test run takes: a page less the headroom and the room the kernel keeps
/// after the packet for `struct skb_shared_info` (320 bytes on x86-64).
pub const MAX_PACKET: usize = 4096 - HEADROOM - 320;

/// Offsets of mimic's `xdp_buff` (the first six are the kernel's).
pub mod buff {
    pub const DATA: i16 = 0;
    pub const DATA_END: i16 = 8;
    pub const DATA_META: i16 = 16;
    pub const DATA_HARD_START: i16 = 24;
    pub const RXQ: i16 = 32;
    /// `struct xdp_rxq_info` inside the context: `dev` then `queue_index`, as the kernel's.
    pub const RXQ_INFO: i16 = 48;
    pub const RXQ_DEV: i16 = 0;
    pub const RXQ_QUEUE_INDEX: i16 = 8;
    /// The device: only its `ifindex`, at offset 0 here.
    pub const DEV: i16 = 64;
    pub const DEV_IFINDEX: i16 = 0;
    /// Bytes of the context.
    pub const LEN: usize = 72;
}

/// The receiving device and queue of a run (a test run's: the loopback device, queue 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxInfo {
    pub ifindex: u32,
    pub queue_index: u32,
}

impl Default for RxInfo {
    fn default() -> Self {
        RxInfo {
            ifindex: 1,
            queue_index: 0,
        }
    }
}

/// The replacement of a verified read of `xdp_md` field `field` into `dst` through `src`, or
/// `None` for an offset that is no field (the verifier refused it).
pub fn convert_ctx_access(field: i64, dst: u8, src: u8) -> Option<Vec<Insn>> {
    Some(match field {
        xdp_md::DATA => vec![Insn::ldx_mem(BPF_DW, dst, src, buff::DATA)],
        xdp_md::DATA_END => vec![Insn::ldx_mem(BPF_DW, dst, src, buff::DATA_END)],
        xdp_md::DATA_META => vec![Insn::ldx_mem(BPF_DW, dst, src, buff::DATA_META)],
        xdp_md::RX_QUEUE_INDEX => vec![
            Insn::ldx_mem(BPF_DW, dst, src, buff::RXQ),
            Insn::ldx_mem(BPF_W, dst, dst, buff::RXQ_QUEUE_INDEX),
        ],
        xdp_md::INGRESS_IFINDEX => vec![
            Insn::ldx_mem(BPF_DW, dst, src, buff::RXQ),
            Insn::ldx_mem(BPF_DW, dst, dst, buff::RXQ_DEV),
            Insn::ldx_mem(BPF_W, dst, dst, buff::DEV_IFINDEX),
        ],
        _ => return None,
    })
}

/// A context over a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdpCtx {
    pub bytes: [u8; buff::LEN],
}

impl XdpCtx {
    pub fn new(packet: &Packet, rx: RxInfo) -> XdpCtx {
        let mut ctx = XdpCtx {
            bytes: [0; buff::LEN],
        };
        ctx.put(buff::RXQ, Ptr::ctx(buff::RXQ_INFO as u32).encode());
        ctx.put(
            buff::RXQ_INFO + buff::RXQ_DEV,
            Ptr::ctx(buff::DEV as u32).encode(),
        );
        ctx.put32(buff::RXQ_INFO + buff::RXQ_QUEUE_INDEX, rx.queue_index);
        ctx.put32(buff::DEV + buff::DEV_IFINDEX, rx.ifindex);
        ctx.sync(packet);
        ctx
    }

    /// Points the pointer fields at the packet's current window.
    pub fn sync(&mut self, packet: &Packet) {
        sync_ctx(&mut self.bytes, packet);
    }

    fn put(&mut self, at: i16, value: u64) {
        put(&mut self.bytes, at, value);
    }
    fn put32(&mut self, at: i16, value: u32) {
        let at = at as usize;
        self.bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
    }
}

/// Points an XDP context's pointer fields (`bytes`, laid out as [`buff`]) at the packet's
/// current window: after a helper moved it, as the kernel's helpers update `xdp_buff`.
pub fn sync_ctx(bytes: &mut [u8], packet: &Packet) {
    if bytes.len() < buff::LEN {
        return;
    }
    let at = |i: usize| Ptr::packet(i as u32).encode();
    put(bytes, buff::DATA, at(packet.data));
    put(bytes, buff::DATA_END, at(packet.end));
    put(bytes, buff::DATA_META, at(packet.meta));
    put(bytes, buff::DATA_HARD_START, at(0));
}

fn put(bytes: &mut [u8], at: i16, value: u64) {
    let at = at as usize;
    bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::exec::{run, NoMaps, NoObserver, Program, Vm};

    /// The converted reads of every field, run against a context over a 20-byte packet.
    #[test]
    fn converted_reads_give_the_packet_window_and_the_rx_info() {
        let mut packet = Packet::new(HEADROOM, &[7; 20]);
        let rx = RxInfo {
            ifindex: 3,
            queue_index: 5,
        };
        let read = |field: i64, packet: &mut Packet| {
            let mut insns = convert_ctx_access(field, 0, 1).expect("a field");
            insns.push(Insn::exit());
            let program = Program::new(&insns).expect("decodes");
            let mut ctx = XdpCtx::new(packet, rx);
            Vm::default()
                .run_packet(
                    &program,
                    &mut ctx.bytes,
                    packet,
                    &mut NoMaps,
                    &mut NoObserver,
                )
                .expect("runs")
        };
        assert_eq!(
            read(xdp_md::DATA, &mut packet),
            Ptr::packet(HEADROOM as u32).encode()
        );
        assert_eq!(
            read(xdp_md::DATA_END, &mut packet),
            Ptr::packet(HEADROOM as u32 + 20).encode()
        );
        assert_eq!(
            read(xdp_md::DATA_META, &mut packet),
            Ptr::packet(HEADROOM as u32).encode()
        );
        assert_eq!(read(xdp_md::INGRESS_IFINDEX, &mut packet), 3);
        assert_eq!(read(xdp_md::RX_QUEUE_INDEX, &mut packet), 5);
        assert!(convert_ctx_access(20, 0, 1).is_none());
        // Without a packet, a packet pointer touches nothing.
        let insns = [
            Insn::ldx_mem(BPF_DW, 2, 1, buff::DATA),
            Insn::ldx_mem(BPF_W, 0, 2, 0),
            Insn::exit(),
        ];
        let program = Program::new(&insns).expect("decodes");
        let mut ctx = XdpCtx::new(&packet, rx);
        assert!(run(&program, &mut ctx.bytes).is_err());
    }
}
