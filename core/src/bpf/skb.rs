//! tc's data: `struct __sk_buff` as a `sched_cls` program reads and writes it, which of its
//! bytes such a program may touch and how (the kernel's `tc_cls_act_is_valid_access` over
//! `bpf_skb_is_valid_access`), mimic's own `sk_buff` the executor runs on, the rewrite of every
//! context access into an access of that `sk_buff` (the kernel's `bpf_convert_ctx_access`), and
//! the prologue the kernel puts before a program that writes the packet. It stands beside
//! [`crate::bpf::xdp`], below the executor and the verifier, which both read it.
//!
//! As for XDP, the program the executor runs is the one the kernel runs: `__sk_buff` is a view
//! that the kernel's fixups turn into loads and stores of `struct sk_buff` fields, each of the
//! kernel field's own size (a 16-bit `protocol`, an 8-bit `pkt_type` masked to 3 bits, the
//! device's `ifindex` through `skb->dev`). The offsets are mimic's own ([`buff`]): the kernel's
//! differ from build to build, and kernel-check compares the shape of the code and leaves the
//! offsets to the build ([`crate::bpf::fixup::Fixed::layout_slots`]). Where the kernel's code
//! depends on state mimic does not model (the timestamp's type bits, the shared info behind
//! `gso_segs`, `gso_size` and `hwtstamp`), mimic reads or writes the plain field.
//!
//! A narrow read (1 or 2 bytes of a 4-byte field) loads the field at its own size, then shifts
//! and masks when the read is narrower than that: the kernel's rule, including its quirk that
//! the upper half of a 16-bit field's slot reads the field itself.
//!
//! Main items: [`sk_buff_md`] (the uapi offsets), [`tc_access`] (the verifier's rule),
//! [`convert_ctx_access`], [`unclone_prologue`], [`SkbCtx`] (a context over a
//! [`Packet`], as a test run builds it). Invariant: [`SkbCtx`]'s pointers name the packet's
//! current window ([`sync_ctx`] after a helper moves it).

use crate::bpf::xdp::{self, Packet, RxInfo, XdpCtx, ETH_HLEN};
use crate::isa::{
    Insn, BPF_AND, BPF_B, BPF_DW, BPF_H, BPF_JEQ, BPF_JGE, BPF_MOV, BPF_RSH, BPF_W, BPF_XOR,
};
use crate::ptr::Ptr;

/// `struct __sk_buff`'s offsets (uapi `linux/bpf.h`).
pub mod sk_buff_md {
    pub const LEN: i64 = 0;
    pub const PKT_TYPE: i64 = 4;
    pub const MARK: i64 = 8;
    pub const QUEUE_MAPPING: i64 = 12;
    pub const PROTOCOL: i64 = 16;
    pub const VLAN_PRESENT: i64 = 20;
    pub const VLAN_TCI: i64 = 24;
    pub const VLAN_PROTO: i64 = 28;
    pub const PRIORITY: i64 = 32;
    pub const INGRESS_IFINDEX: i64 = 36;
    pub const IFINDEX: i64 = 40;
    pub const TC_INDEX: i64 = 44;
    /// `cb[5]`: 20 bytes of scratch the program owns.
    pub const CB: i64 = 48;
    pub const CB_END: i64 = 68;
    pub const HASH: i64 = 68;
    pub const TC_CLASSID: i64 = 72;
    pub const DATA: i64 = 76;
    pub const DATA_END: i64 = 80;
    pub const NAPI_ID: i64 = 84;
    /// `family` through `local_port`: socket fields only `sk_skb` programs see.
    pub const FAMILY: i64 = 88;
    pub const LOCAL_PORT_END: i64 = 140;
    pub const DATA_META: i64 = 140;
    pub const FLOW_KEYS: i64 = 144;
    pub const TSTAMP: i64 = 152;
    pub const WIRE_LEN: i64 = 160;
    pub const GSO_SEGS: i64 = 164;
    pub const SK: i64 = 168;
    pub const GSO_SIZE: i64 = 176;
    pub const TSTAMP_TYPE: i64 = 180;
    pub const HWTSTAMP: i64 = 184;
    /// `sizeof(struct __sk_buff)`.
    pub const SIZE: i64 = 192;
}

use sk_buff_md as md;

/// What a permitted context access gives the verifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtxField {
    /// A scalar read, or a write.
    Scalar,
    /// `data`: a packet pointer.
    Packet,
    /// `data_end`.
    PacketEnd,
    /// `data_meta`.
    PacketMeta,
    /// `sk`: the kernel gives a socket pointer that may be NULL, a type mimic does not model.
    Sock,
}

/// The u32 slots a tc program may write (`tstamp` and `cb` by their own size rules).
fn writable(off: i64) -> bool {
    let slot = off & !3;
    matches!(
        slot,
        md::MARK | md::TC_INDEX | md::PRIORITY | md::TC_CLASSID | md::QUEUE_MAPPING
    ) || (md::CB..md::CB_END).contains(&off)
        || (md::TSTAMP..md::TSTAMP + 8).contains(&off)
}

/// Whether a `sched_cls` program may access `size` bytes of `__sk_buff` at `off` (a write when
/// `write`), and what a read gives; `None` where the kernel says `invalid bpf_context access`.
pub fn tc_access(off: i64, size: i64, write: bool) -> Option<CtxField> {
    if !(0..md::SIZE).contains(&off) || size <= 0 || off % size != 0 {
        return None;
    }
    if write && !writable(off) {
        return None;
    }
    let slot = off & !3;
    let field = match slot {
        md::DATA => CtxField::Packet,
        md::DATA_END => CtxField::PacketEnd,
        md::DATA_META => CtxField::PacketMeta,
        _ => CtxField::Scalar,
    };
    if field != CtxField::Scalar {
        return (size == 4).then_some(field);
    }
    if (md::FAMILY..md::LOCAL_PORT_END).contains(&off) || (md::FLOW_KEYS..md::TSTAMP).contains(&off)
    {
        return None;
    }
    // tc may read the timestamp's type, one byte; the three bytes after it are padding.
    if (md::TSTAMP_TYPE..md::HWTSTAMP).contains(&off) {
        return (off == md::TSTAMP_TYPE && size == 1).then_some(CtxField::Scalar);
    }
    if (md::CB..md::CB_END).contains(&off) {
        return (off + size <= md::CB_END).then_some(CtxField::Scalar);
    }
    if (md::TSTAMP..md::TSTAMP + 8).contains(&off) {
        return (size == 8).then_some(CtxField::Scalar);
    }
    if (md::HWTSTAMP..md::SIZE).contains(&off) {
        return (!write && size == 8).then_some(CtxField::Scalar);
    }
    if (md::SK..md::SK + 8).contains(&off) {
        return (off == md::SK && !write && size == 8).then_some(CtxField::Sock);
    }
    // Every other field is a u32: written whole, read whole or narrower.
    let ok = if write {
        size == 4
    } else {
        size <= 4 && size.count_ones() == 1
    };
    ok.then_some(CtxField::Scalar)
}

/// Offsets of mimic's `sk_buff`: each field at the kernel field's size, at offsets of its own.
pub mod buff {
    pub const DATA: i16 = 0;
    /// `data_end` and `data_meta` live in the control buffer in the kernel; here beside `data`.
    pub const DATA_END: i16 = 8;
    pub const DATA_META: i16 = 16;
    /// A pointer to the device ([`DEV_INFO`]), as `skb->dev`.
    pub const DEV: i16 = 24;
    pub const LEN: i16 = 32;
    pub const MARK: i16 = 36;
    pub const PRIORITY: i16 = 40;
    pub const HASH: i16 = 44;
    /// `vlan_all`: the tag's protocol and TCI as one word, zero when there is no tag.
    pub const VLAN_ALL: i16 = 48;
    pub const SKB_IIF: i16 = 52;
    pub const NAPI_ID: i16 = 56;
    /// The qdisc control block's `pkt_len`.
    pub const WIRE_LEN: i16 = 60;
    pub const PROTOCOL: i16 = 64;
    pub const QUEUE_MAPPING: i16 = 66;
    pub const VLAN_TCI: i16 = 68;
    pub const VLAN_PROTO: i16 = 70;
    pub const TC_INDEX: i16 = 72;
    pub const TC_CLASSID: i16 = 74;
    pub const GSO_SEGS: i16 = 76;
    pub const GSO_SIZE: i16 = 78;
    /// `pkt_type`, in the low 3 bits of its byte.
    pub const PKT_TYPE: i16 = 80;
    pub const TSTAMP_TYPE: i16 = 81;
    /// The byte holding `cloned` ([`super::CLONED_MASK`]); never set in mimic.
    pub const CLONED: i16 = 82;
    /// The program's `cb[5]`.
    pub const CB: i16 = 88;
    pub const TSTAMP: i16 = 112;
    pub const HWTSTAMP: i16 = 120;
    /// The device: only its `ifindex`, at offset 0.
    pub const DEV_INFO: i16 = 128;
    pub const DEV_IFINDEX: i16 = 0;
    /// Bytes of the context.
    pub const LEN_BYTES: usize = 136;
}

/// `PKT_TYPE_MAX`: the bits of `pkt_type` in its byte.
const PKT_TYPE_MAX: i32 = 7;
/// `MIN_NAPI_ID` (`NR_CPUS + 1`, of the build's configuration; mimic's is 8,192 CPUs).
const MIN_NAPI_ID: i32 = 8193;
/// The bit of `cloned` in its byte.
pub const CLONED_MASK: i32 = 1;
/// `NO_QUEUE_MAPPING`: a `queue_mapping` write of this or more is ignored.
const NO_QUEUE_MAPPING: i32 = 0xffff;
/// `TC_ACT_SHOT`: the prologue's verdict when the packet cannot be made private.
pub const TC_ACT_SHOT: i32 = 2;
/// `TC_ACT_REDIRECT`: what `bpf_redirect` returns to a tc program.
pub const TC_ACT_REDIRECT: u64 = 7;
/// `BPF_FUNC_skb_pull_data`.
pub const SKB_PULL_DATA: i32 = 39;

/// The verdicts a tc program returns (`TC_ACT_*` of `linux/pkt_cls.h`), by name.
pub const ACTIONS: [(&str, u64); 10] = [
    ("TC_ACT_OK", 0),
    ("TC_ACT_RECLASSIFY", 1),
    ("TC_ACT_SHOT", 2),
    ("TC_ACT_PIPE", 3),
    ("TC_ACT_STOLEN", 4),
    ("TC_ACT_QUEUED", 5),
    ("TC_ACT_REPEAT", 6),
    ("TC_ACT_REDIRECT", 7),
    ("TC_ACT_TRAP", 8),
    ("TC_ACT_UNSPEC", u32::MAX as u64),
];

/// The name of a tc verdict (`r0`'s low 32 bits, as the kernel reads it), or the number.
pub fn action_name(value: u64) -> String {
    let low = value & u64::from(u32::MAX);
    ACTIONS
        .iter()
        .find(|(_, v)| *v == low)
        .map_or(value.to_string(), |(n, _)| n.to_string())
}

/// A context access to rewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `dst = *(size *)(src + off)`.
    Load { dst: u8, src: u8 },
    /// `*(size *)(dst + off) = src`.
    StoreReg { dst: u8, src: u8 },
    /// `*(size *)(dst + off) = imm`.
    StoreImm { dst: u8, imm: i32 },
}

/// The size code (`BPF_W`...) of an access of `bytes` bytes.
fn size_code(bytes: i64) -> Option<u8> {
    Some(match bytes {
        1 => BPF_B,
        2 => BPF_H,
        4 => BPF_W,
        8 => BPF_DW,
        _ => return None,
    })
}

/// The kernel's emitted access at mimic's offset `at`: a load into `dst`, or the store as
/// written (register or immediate) at size `code`.
fn emit(access: Access, code: u8, at: i16) -> Insn {
    match access {
        Access::Load { dst, src } => Insn::ldx_mem(code, dst, src, at),
        Access::StoreReg { dst, src } => Insn::stx_mem(code, dst, src, at),
        Access::StoreImm { dst, imm } => Insn::st_mem(code, dst, at, imm),
    }
}

/// A u32 field's plain home in mimic's `sk_buff`: its offset and size in bytes.
fn plain_field(slot: i64) -> Option<(i16, i64)> {
    Some(match slot {
        md::LEN => (buff::LEN, 4),
        md::MARK => (buff::MARK, 4),
        md::QUEUE_MAPPING => (buff::QUEUE_MAPPING, 2),
        md::PROTOCOL => (buff::PROTOCOL, 2),
        md::VLAN_TCI => (buff::VLAN_TCI, 2),
        md::VLAN_PROTO => (buff::VLAN_PROTO, 2),
        md::PRIORITY => (buff::PRIORITY, 4),
        md::INGRESS_IFINDEX => (buff::SKB_IIF, 4),
        md::TC_INDEX => (buff::TC_INDEX, 2),
        md::HASH => (buff::HASH, 4),
        md::TC_CLASSID => (buff::TC_CLASSID, 2),
        md::WIRE_LEN => (buff::WIRE_LEN, 4),
        md::GSO_SEGS => (buff::GSO_SEGS, 2),
        md::GSO_SIZE => (buff::GSO_SIZE, 2),
        _ => return None,
    })
}

/// The replacement of a verified access of `size` bytes at `__sk_buff` offset `off`, and which
/// of its instructions carry mimic's layout (an offset, or the mask of a bit field) where the
/// kernel's code carries its build's; `None` for an access [`tc_access`] refuses.
pub fn convert_ctx_access(off: i64, size: i64, access: Access) -> Option<(Vec<Insn>, Vec<usize>)> {
    let code = size_code(size)?;
    let load = matches!(access, Access::Load { .. });
    // Fields whose access keeps the program's own size.
    let keep = |at: i16| Some((vec![emit(access, code, at)], vec![0]));
    if (md::CB..md::CB_END).contains(&off) {
        return keep(buff::CB + (off - md::CB) as i16);
    }
    match off {
        md::DATA if load => return Some((dw(access, buff::DATA), vec![0])),
        md::DATA_END if load => return Some((dw(access, buff::DATA_END), vec![0])),
        md::DATA_META if load => return Some((dw(access, buff::DATA_META), vec![0])),
        md::TSTAMP => return keep(buff::TSTAMP),
        md::HWTSTAMP if load => return keep(buff::HWTSTAMP),
        md::TSTAMP_TYPE if load => return keep(buff::TSTAMP_TYPE),
        _ => {}
    }
    let slot = off & !3;
    if !load {
        if size != 4 {
            return None;
        }
        let (at, bytes) = plain_field(slot)?;
        let store = emit(access, size_code(bytes)?, at);
        if slot != md::QUEUE_MAPPING {
            return Some((vec![store], vec![0]));
        }
        // A queue at or past NO_QUEUE_MAPPING is not stored.
        return Some(match access {
            Access::StoreImm { imm, .. } if imm >= NO_QUEUE_MAPPING => (vec![Insn::ja(0)], vec![]),
            Access::StoreReg { src, .. } => (
                vec![Insn::jmp_imm(BPF_JGE, src, NO_QUEUE_MAPPING, 1), store],
                vec![1],
            ),
            _ => (vec![store], vec![0]),
        });
    }
    let Access::Load { dst, src } = access else {
        return None;
    };
    // The whole field, as the kernel loads it whatever the program's read size.
    let (mut code, mut layout, field_bytes) = match slot {
        md::PKT_TYPE => (
            vec![
                Insn::ldx_mem(BPF_B, dst, src, buff::PKT_TYPE),
                Insn::alu32_imm(BPF_AND, dst, PKT_TYPE_MAX),
            ],
            vec![0],
            1,
        ),
        md::VLAN_PRESENT => (
            vec![
                Insn::ldx_mem(BPF_W, dst, src, buff::VLAN_ALL),
                Insn::jmp_imm(BPF_JEQ, dst, 0, 1),
                Insn::alu32_imm(BPF_MOV, dst, 1),
            ],
            vec![0],
            4,
        ),
        // An id below MIN_NAPI_ID is the sending CPU sharing the field, and reads as 0.
        md::NAPI_ID => (
            vec![
                Insn::ldx_mem(BPF_W, dst, src, buff::NAPI_ID),
                Insn::jmp_imm(BPF_JGE, dst, MIN_NAPI_ID, 1),
                Insn::mov64_imm(dst, 0),
            ],
            vec![0, 1],
            4,
        ),
        md::IFINDEX => (
            vec![
                Insn::ldx_mem(BPF_DW, dst, src, buff::DEV),
                Insn::ldx_mem(BPF_W, dst, dst, buff::DEV_IFINDEX),
            ],
            vec![0, 1],
            4,
        ),
        _ => {
            let (at, bytes) = plain_field(slot)?;
            (
                vec![Insn::ldx_mem(size_code(bytes)?, dst, src, at)],
                vec![0],
                bytes,
            )
        }
    };
    if size < 4 && size < field_bytes {
        let shift = ((off & 3) * 8) as i32;
        if shift != 0 {
            code.push(Insn::alu32_imm(BPF_RSH, dst, shift));
        }
        code.push(Insn::alu32_imm(
            BPF_AND,
            dst,
            ((1i64 << (size * 8)) - 1) as i32,
        ));
    }
    layout.sort_unstable();
    Some((code, layout))
}

/// Whether an access at `off` is to a field mimic keeps plain where the kernel's code reaches
/// it another way (the timestamp through its type bits, the others through the shared info and
/// the kernel's hidden register `AX`, which mimic's ISA does not have): the code differs from
/// the kernel's xlated program, not what a program reads.
pub fn kept_plain(off: i64) -> bool {
    let slot = off & !3;
    (md::TSTAMP..md::TSTAMP + 8).contains(&off)
        || (md::HWTSTAMP..md::SIZE).contains(&off)
        || matches!(slot, md::GSO_SEGS | md::GSO_SIZE | md::TSTAMP_TYPE)
}

/// An 8-byte load of one of the packet pointers.
fn dw(access: Access, at: i16) -> Vec<Insn> {
    vec![emit(access, BPF_DW, at)]
}

/// What the kernel puts before the first instruction of a tc program that writes the packet
/// directly: when the packet is shared with a clone, `bpf_skb_pull_data(skb, 0)` makes it
/// private, and a failure drops it (`TC_ACT_SHOT`); `r6` is used as scratch before the program
/// starts. The returned slots carrying mimic's layout are the `cloned` byte's load and mask.
pub fn unclone_prologue() -> (Vec<Insn>, Vec<usize>) {
    let code = vec![
        Insn::ldx_mem(BPF_B, 6, 1, buff::CLONED),
        Insn::alu32_imm(BPF_AND, 6, CLONED_MASK),
        Insn::jmp_imm(BPF_JEQ, 6, 0, 7),
        Insn::mov64_reg(6, 1),
        Insn::alu64_reg(BPF_XOR, 2, 2),
        Insn::call_helper(SKB_PULL_DATA),
        Insn::jmp_imm(BPF_JEQ, 0, 0, 2),
        Insn::mov32_imm(0, TC_ACT_SHOT),
        Insn::exit(),
        Insn::mov64_reg(1, 6),
    ];
    (code, vec![0, 1])
}

/// `PACKET_*` values of `pkt_type`.
const PACKET_HOST: u8 = 0;
const PACKET_BROADCAST: u8 = 1;
const PACKET_MULTICAST: u8 = 2;
const PACKET_OTHERHOST: u8 = 3;

/// The lowest EtherType (`ETH_P_802_3_MIN`); a smaller value is an 802.3 length.
const ETH_P_802_3_MIN: u16 = 0x0600;
/// `ETH_P_802_3`, `ETH_P_802_2`: the protocols a frame with a length field gets.
const ETH_P_802_3: u16 = 0x0001;
const ETH_P_802_2: u16 = 0x0004;

/// What a test run's `sk_buff` says besides the packet: the device (the loopback device, whose
/// address is all zeroes) and the fields a caller's context may set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SkbInfo {
    pub ifindex: u32,
    pub ingress_ifindex: u32,
    pub mark: u32,
    pub priority: u32,
    /// The device's own address: `pkt_type` compares the destination with it.
    pub dev_addr: [u8; 6],
}

impl Default for SkbInfo {
    fn default() -> Self {
        SkbInfo {
            ifindex: 1,
            ingress_ifindex: 0,
            mark: 0,
            priority: 0,
            dev_addr: [0; 6],
        }
    }
}

/// `pkt_type` and `protocol` (in network order, as the field holds it) of an Ethernet frame
/// received by a device with address `dev_addr`, as `eth_type_trans` classifies it.
pub fn classify(frame: &[u8], dev_addr: [u8; 6]) -> (u8, u16) {
    let Some(dest) = frame.get(..6) else {
        return (PACKET_HOST, 0);
    };
    let pkt_type = if dest[0] & 1 != 0 {
        if dest.iter().all(|b| *b == 0xff) {
            PACKET_BROADCAST
        } else {
            PACKET_MULTICAST
        }
    } else if dest != dev_addr {
        PACKET_OTHERHOST
    } else {
        PACKET_HOST
    };
    let proto = frame
        .get(12..14)
        .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    let proto = if proto >= ETH_P_802_3_MIN {
        proto
    } else if frame.get(ETH_HLEN..ETH_HLEN + 2) == Some(&[0xff, 0xff]) {
        ETH_P_802_3
    } else {
        ETH_P_802_2
    };
    (pkt_type, proto.to_be())
}

/// Whether a frame's network header is whole, as a tc test run requires before it runs the
/// program: an IPv4 frame needs 20 bytes after the Ethernet header, an IPv6 one 40; any other
/// protocol needs nothing. (Measured on the kernel: 33- and 53-byte frames are `-EINVAL`, 34
/// and 54 run.)
pub fn network_header_whole(frame: &[u8]) -> bool {
    let (_, protocol) = classify(frame, [0; 6]);
    let after = frame.len().saturating_sub(ETH_HLEN);
    match u16::from_be(protocol) {
        ETH_P_IP => after >= 20,
        ETH_P_IPV6 => after >= 40,
        _ => true,
    }
}

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;

/// A tc context over a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkbCtx {
    pub bytes: [u8; buff::LEN_BYTES],
}

impl SkbCtx {
    /// The `sk_buff` a test run gives a program for `packet` (the whole frame, from its
    /// Ethernet header): its length, class and protocol, the device, and `info`'s fields.
    pub fn new(packet: &Packet, info: SkbInfo) -> SkbCtx {
        let mut ctx = SkbCtx {
            bytes: [0; buff::LEN_BYTES],
        };
        let (pkt_type, protocol) = classify(packet.data(), info.dev_addr);
        put(
            &mut ctx.bytes,
            buff::DEV,
            &Ptr::ctx(buff::DEV_INFO as u32).encode().to_le_bytes(),
        );
        put(
            &mut ctx.bytes,
            buff::DEV_INFO + buff::DEV_IFINDEX,
            &info.ifindex.to_le_bytes(),
        );
        put(
            &mut ctx.bytes,
            buff::SKB_IIF,
            &info.ingress_ifindex.to_le_bytes(),
        );
        put(&mut ctx.bytes, buff::MARK, &info.mark.to_le_bytes());
        put(&mut ctx.bytes, buff::PRIORITY, &info.priority.to_le_bytes());
        put(&mut ctx.bytes, buff::PKT_TYPE, &[pkt_type]);
        put(&mut ctx.bytes, buff::PROTOCOL, &protocol.to_le_bytes());
        ctx.sync(packet);
        ctx
    }

    /// Points the pointer fields at the packet's current window and sets `len` from it.
    pub fn sync(&mut self, packet: &Packet) {
        sync_ctx(&mut self.bytes, packet);
    }
}

/// Points a tc context's pointer fields (`bytes`, laid out as [`buff`]) at the packet's current
/// window and its `len` at the window's length.
pub fn sync_ctx(bytes: &mut [u8], packet: &Packet) {
    if bytes.len() < buff::LEN_BYTES {
        return;
    }
    let at = |i: usize| Ptr::packet(i as u32).encode().to_le_bytes();
    put(bytes, buff::DATA, &at(packet.data));
    put(bytes, buff::DATA_END, &at(packet.end));
    put(bytes, buff::DATA_META, &at(packet.meta));
    put(
        bytes,
        buff::LEN,
        &((packet.end - packet.data) as u32).to_le_bytes(),
    );
}

fn put(bytes: &mut [u8], at: i16, value: &[u8]) {
    let at = at as usize;
    bytes[at..at + value.len()].copy_from_slice(value);
}

/// A packet program's buffer and context for `frame`: a tc program's (`tc`) `sk_buff`, the
/// loopback device's as a test run builds it, after [`HEADROOM`]; an XDP program's `xdp_buff`,
/// received on `rx`, after [`crate::bpf::xdp::HEADROOM`]. Test runs, the simulator, the fuzz
/// target and the bench all run packet programs on what this gives.
pub fn on_frame(tc: bool, frame: &[u8], rx: RxInfo) -> (Packet, Vec<u8>) {
    if tc {
        let packet = Packet::new(HEADROOM, frame);
        let ctx = SkbCtx::new(&packet, SkbInfo::default()).bytes.to_vec();
        (packet, ctx)
    } else {
        let packet = Packet::new(xdp::HEADROOM, frame);
        let ctx = XdpCtx::new(&packet, rx).bytes.to_vec();
        (packet, ctx)
    }
}

/// A test run's headroom before an `sk_buff`'s frame (`NET_SKB_PAD + NET_IP_ALIGN` on x86-64).
pub const HEADROOM: usize = 64;
/// The longest frame a tc test run takes: a page less the headroom and the room the kernel keeps
/// after the packet for `struct skb_shared_info` (320 bytes on x86-64).
pub const MAX_PACKET: usize = 4096 - HEADROOM - 320;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::exec::{NoMaps, NoObserver, Program, Vm};

    fn read(off: i64, size: i64, ctx: &mut SkbCtx, packet: &mut Packet) -> u64 {
        let (mut insns, _) =
            convert_ctx_access(off, size, Access::Load { dst: 0, src: 1 }).expect("a field");
        insns.push(Insn::exit());
        let program = Program::new(&insns).expect("decodes");
        Vm::default()
            .run_packet(
                &program,
                &mut ctx.bytes,
                packet,
                &mut NoMaps,
                &mut NoObserver,
            )
            .expect("runs")
    }

    /// An IPv4 frame to `02:..`: another host's unicast address.
    fn frame() -> Vec<u8> {
        let mut f = vec![0u8; 34];
        f[0] = 0x02;
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f
    }

    #[test]
    fn converted_reads_give_the_frame_the_device_and_narrow_parts() {
        let mut packet = Packet::new(HEADROOM, &frame());
        let info = SkbInfo {
            ifindex: 3,
            mark: 0x1122_3344,
            ..SkbInfo::default()
        };
        let mut ctx = SkbCtx::new(&packet, info);
        let p = &mut packet;
        assert_eq!(read(md::LEN, 4, &mut ctx, p), 34);
        assert_eq!(
            read(md::DATA, 4, &mut ctx, p),
            Ptr::packet(HEADROOM as u32).encode()
        );
        assert_eq!(
            read(md::DATA_END, 4, &mut ctx, p),
            Ptr::packet(HEADROOM as u32 + 34).encode()
        );
        assert_eq!(read(md::IFINDEX, 4, &mut ctx, p), 3);
        assert_eq!(
            read(md::PKT_TYPE, 4, &mut ctx, p),
            u64::from(PACKET_OTHERHOST)
        );
        // `08 00` in network order, read as a little-endian word.
        assert_eq!(read(md::PROTOCOL, 4, &mut ctx, p), 0x0008);
        // Narrow reads of a 4-byte field shift and mask; of a 2-byte field's first byte too.
        assert_eq!(read(md::MARK + 1, 1, &mut ctx, p), 0x33);
        assert_eq!(read(md::MARK + 2, 2, &mut ctx, p), 0x1122);
        assert_eq!(read(md::PROTOCOL + 1, 1, &mut ctx, p), 0x00);
        assert_eq!(read(md::PROTOCOL, 1, &mut ctx, p), 0x08);
        // The upper half of a 16-bit field's slot reads the field (the kernel's quirk).
        assert_eq!(read(md::PROTOCOL + 2, 2, &mut ctx, p), 0x0008);
        assert_eq!(read(md::VLAN_PRESENT, 4, &mut ctx, p), 0);
        assert!(convert_ctx_access(md::SK, 8, Access::Load { dst: 0, src: 1 }).is_none());
    }

    #[test]
    fn the_access_rule_follows_the_fields() {
        use CtxField::*;
        let read = |off, size| tc_access(off, size, false);
        let write = |off, size| tc_access(off, size, true);
        assert_eq!(read(md::DATA, 4), Some(Packet));
        assert_eq!(read(md::DATA, 2), None);
        assert_eq!(read(md::DATA_END, 4), Some(PacketEnd));
        assert_eq!(read(md::DATA_META, 4), Some(PacketMeta));
        assert_eq!(read(md::LEN, 2), Some(Scalar));
        assert_eq!(read(md::LEN + 1, 2), None, "misaligned");
        assert_eq!(read(md::LEN, 8), None);
        assert_eq!(write(md::LEN, 4), None, "len is read-only");
        assert_eq!(write(md::MARK, 4), Some(Scalar));
        assert_eq!(write(md::MARK, 2), None, "writes are whole");
        assert_eq!(write(md::CB + 8, 8), Some(Scalar));
        assert_eq!(read(md::CB + 16, 8), None, "past cb[4]");
        assert_eq!(read(md::FAMILY, 4), None, "socket fields are sk_skb's");
        assert_eq!(read(md::FLOW_KEYS, 8), None);
        assert_eq!(read(md::TSTAMP, 8), Some(Scalar));
        assert_eq!(read(md::TSTAMP, 4), None);
        assert_eq!(write(md::HWTSTAMP, 8), None);
        assert_eq!(read(md::SK, 8), Some(Sock));
        assert_eq!(read(md::TSTAMP_TYPE, 1), Some(Scalar));
        assert_eq!(read(md::TSTAMP_TYPE + 1, 1), None, "padding");
        assert_eq!(read(md::SIZE, 4), None);
        assert_eq!(read(-4, 4), None);
    }

    #[test]
    fn a_queue_past_the_last_is_not_stored() {
        let (code, layout) = convert_ctx_access(
            md::QUEUE_MAPPING,
            4,
            Access::StoreImm {
                dst: 1,
                imm: 0xffff,
            },
        )
        .expect("a field");
        assert_eq!((code, layout), (vec![Insn::ja(0)], vec![]));
        let (code, _) =
            convert_ctx_access(md::QUEUE_MAPPING, 4, Access::StoreReg { dst: 1, src: 2 })
                .expect("a field");
        assert_eq!(code[0], Insn::jmp_imm(BPF_JGE, 2, 0xffff, 1));
        assert_eq!(code[1], Insn::stx_mem(BPF_H, 1, 2, buff::QUEUE_MAPPING));
    }

    #[test]
    fn frames_are_classified_as_eth_type_trans_does() {
        let zero = [0u8; 6];
        let mut f = frame();
        assert_eq!(classify(&f, zero), (PACKET_OTHERHOST, 0x0008));
        f[..6].fill(0);
        assert_eq!(classify(&f, zero).0, PACKET_HOST);
        f[..6].fill(0xff);
        assert_eq!(classify(&f, zero).0, PACKET_BROADCAST);
        f[..6].copy_from_slice(&[0x01, 0, 0x5e, 0, 0, 1]);
        assert_eq!(classify(&f, zero).0, PACKET_MULTICAST);
        // A length field, then an 802.2 header or raw 802.3's 0xffff.
        f[12..14].copy_from_slice(&[0x00, 0x40]);
        assert_eq!(classify(&f, zero).1, ETH_P_802_2.to_be());
        f[14..16].copy_from_slice(&[0xff, 0xff]);
        assert_eq!(classify(&f, zero).1, ETH_P_802_3.to_be());
    }

    #[test]
    fn a_test_run_wants_a_whole_network_header() {
        let mut f = frame();
        assert!(
            network_header_whole(&f),
            "34 bytes: IPv4's 20 after Ethernet's 14"
        );
        f.pop();
        assert!(!network_header_whole(&f));
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        f.resize(ETH_HLEN + 39, 0);
        assert!(!network_header_whole(&f));
        f.push(0);
        assert!(network_header_whole(&f));
        f.truncate(ETH_HLEN);
        f[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(network_header_whole(&f), "ARP: nothing needed");
    }
}
