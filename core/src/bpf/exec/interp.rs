//! The interpreter loop. One `match` per instruction over [`Inst`]; registers live in a local
//! 16-entry array indexed with `& 15` (decoded registers are at most 10), so register access
//! needs no bounds check; memory goes through [`Mem`], which checks the region of every access.

use super::compile::{Inst, Program, SlowOp};
use super::{
    ExecError, ExecErrorKind, KeyArg, MapEnv, Observer, Packet, StepView, TailTarget, Vm,
    MAX_CALL_FRAMES, MAX_TAIL_CALL_CNT, STACK_SIZE,
};
use crate::bpf::csum;
use crate::bpf::helpers::{Callee, DirectCall, HelperId, MapFn};
use crate::bpf::printk::{self, PrintkError};
use crate::errno::Errno;
use crate::isa::{AluOp, AtomicOp, Endian, Operand};
use crate::ptr::{Ptr, RegionKind};

/// The map pointer `addr` is, if it points into a map (the map world checks those accesses).
/// Loads and stores test this before [`locate`]: a `Ptr` that stays in registers is handed to
/// the map world directly, where one built inside `locate`'s result would be written to memory
/// field by field and read back whole (a store-forwarding stall on every map access).
#[inline(always)]
fn map_region(addr: u64) -> Option<Ptr> {
    Ptr::decode(addr).filter(|ptr| ptr.kind == RegionKind::Map)
}

/// Where a checked access lands.
pub(super) enum Place {
    /// Byte index into the whole stack (all frames).
    Stack(usize),
    /// Byte index into the input memory.
    Ctx(usize),
    /// Byte index into the packet buffer.
    Packet(usize),
    Map(Ptr),
}

/// Memory as the program sees it: stack frames, input memory, the map world.
struct Mem<'a, E> {
    stack: &'a mut [u8],
    ctx: &'a mut [u8],
    packet: &'a mut Packet,
    env: &'a mut E,
    /// Current call depth: frames above it are stale.
    depth: usize,
}

/// What only helper calls use, kept out of [`Mem`] (which the hot loop holds in registers):
/// a buffer for keys and values, the CPU `bpf_get_smp_processor_id` answers, the state of
/// `bpf_get_prandom_u32`'s xorshift64*, the clock `bpf_ktime_get_ns` reads, and whether id 5
/// is the conformance suite's identity instead.
struct CallState {
    scratch: Vec<u8>,
    cpu: u32,
    prandom: u64,
    clock_ns: u64,
    conformance: bool,
    tc: bool,
}

/// Flags of `bpf_skb_store_bytes`.
const BPF_F_RECOMPUTE_CSUM: u64 = 1;
const BPF_F_INVALIDATE_HASH: u64 = 2;
/// Flags of `bpf_l3_csum_replace` and `bpf_l4_csum_replace`: the field's size, then L4's own.
const BPF_F_HDR_FIELD_MASK: u64 = 0xf;
const BPF_F_PSEUDO_HDR: u64 = 1 << 4;
const BPF_F_MARK_MANGLED_0: u64 = 1 << 5;
const BPF_F_MARK_ENFORCE: u64 = 1 << 6;
const BPF_F_IPV6: u64 = 1 << 7;
/// What a UDP checksum of zero is written as (`CSUM_MANGLED_0`).
const CSUM_MANGLED_0: u16 = 0xffff;
/// `-EFAULT`, as a helper returns it.
const EFAULT: u64 = -14i64 as u64;

/// A helper's `-errno` return.
fn errno(e: Errno) -> u64 {
    -i64::from(e.value()) as u64
}

#[inline(always)]
fn read_le<const N: usize>(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    buf[..N].copy_from_slice(&bytes[..N]);
    u64::from_le_bytes(buf)
}

#[inline(always)]
fn write_le<const N: usize>(bytes: &mut [u8], value: u64) {
    bytes[..N].copy_from_slice(&value.to_le_bytes()[..N]);
}

/// Checks an access of `size` bytes at `addr` against the region it names (stack frames up to
/// `depth`, input memory of `ctx_len` bytes, the packet's window; map regions are the map
/// world's to check). The packet is only looked at for a packet pointer, so stack and input
/// accesses pay nothing for it.
#[inline(always)]
pub(super) fn locate(
    addr: u64,
    size: usize,
    depth: usize,
    ctx_len: usize,
    packet: &Packet,
) -> Result<Place, ExecErrorKind> {
    let Some(ptr) = Ptr::decode(addr) else {
        return Err(if addr == 0 {
            ExecErrorKind::NullDeref {
                addr,
                size: size as u8,
            }
        } else {
            ExecErrorKind::NotAPointer {
                addr,
                size: size as u8,
            }
        });
    };
    let off = ptr.offset as usize;
    match ptr.kind {
        RegionKind::Stack => {
            let frame = ptr.index as usize;
            if ptr.gen != 0 || off + size > STACK_SIZE || frame >= MAX_CALL_FRAMES {
                return Err(ExecErrorKind::OutOfBounds {
                    ptr,
                    size: size as u8,
                    region_len: STACK_SIZE as u64,
                });
            }
            if frame > depth {
                return Err(ExecErrorKind::StaleFrame { ptr, depth });
            }
            Ok(Place::Stack(frame * STACK_SIZE + off))
        }
        RegionKind::Ctx => {
            if ptr.gen != 0 || ptr.index != 0 || off + size > ctx_len {
                return Err(ExecErrorKind::OutOfBounds {
                    ptr,
                    size: size as u8,
                    region_len: ctx_len as u64,
                });
            }
            Ok(Place::Ctx(off))
        }
        RegionKind::Packet => packet_place(ptr, size, packet),
        RegionKind::Map => Ok(Place::Map(ptr)),
    }
}

/// A packet pointer's access, checked against the window (out of line: only packet programs
/// take it, and the stack and input accesses of every program stay short).
#[cold]
#[inline(never)]
fn packet_place(ptr: Ptr, size: usize, packet: &Packet) -> Result<Place, ExecErrorKind> {
    let (lo, hi) = packet.window();
    let off = ptr.offset as usize;
    if ptr.gen != 0 || ptr.index != 0 || off < lo || off + size > hi {
        return Err(ExecErrorKind::OutsidePacket {
            ptr,
            size: size as u8,
            data: (lo, hi),
        });
    }
    Ok(Place::Packet(off))
}

impl<E: MapEnv> Mem<'_, E> {
    #[inline(always)]
    fn locate(&self, addr: u64, size: usize) -> Result<Place, ExecErrorKind> {
        locate(addr, size, self.depth, self.ctx.len(), self.packet)
    }

    /// A load at byte `at` of the current frame (`r10 - STACK_SIZE + at`), which the compiler
    /// checked to fit: the frame is always live, so nothing can fail.
    #[inline(always)]
    fn fp_load<const N: usize>(&self, at: u16) -> u64 {
        let at = self.depth * STACK_SIZE + usize::from(at);
        read_le::<N>(&self.stack[at..at + N])
    }

    #[inline(always)]
    fn fp_store<const N: usize>(&mut self, at: u16, value: u64) {
        let at = self.depth * STACK_SIZE + usize::from(at);
        write_le::<N>(&mut self.stack[at..at + N], value);
    }

    #[inline(always)]
    fn load<const N: usize>(&mut self, addr: u64) -> Result<u64, ExecErrorKind> {
        if let Some(ptr) = map_region(addr) {
            return self.env.load(ptr, N as u8);
        }
        match self.locate(addr, N)? {
            Place::Stack(at) => Ok(read_le::<N>(&self.stack[at..at + N])),
            Place::Ctx(at) => Ok(read_le::<N>(&self.ctx[at..at + N])),
            Place::Packet(at) => Ok(read_le::<N>(&self.packet.buf[at..at + N])),
            Place::Map(ptr) => self.env.load(ptr, N as u8),
        }
    }

    #[inline(always)]
    fn store<const N: usize>(&mut self, addr: u64, value: u64) -> Result<(), ExecErrorKind> {
        if let Some(ptr) = map_region(addr) {
            return self.env.store(ptr, N as u8, value);
        }
        match self.locate(addr, N)? {
            Place::Stack(at) => write_le::<N>(&mut self.stack[at..at + N], value),
            Place::Ctx(at) => write_le::<N>(&mut self.ctx[at..at + N], value),
            Place::Packet(at) => write_le::<N>(&mut self.packet.buf[at..at + N], value),
            Place::Map(ptr) => self.env.store(ptr, N as u8, value)?,
        }
        Ok(())
    }

    fn store_sized(&mut self, size: u8, addr: u64, value: u64) -> Result<(), ExecErrorKind> {
        match size {
            1 => self.store::<1>(addr, value),
            2 => self.store::<2>(addr, value),
            4 => self.store::<4>(addr, value),
            _ => self.store::<8>(addr, value),
        }
    }

    fn load_sized(&mut self, size: u8, addr: u64) -> Result<u64, ExecErrorKind> {
        match size {
            1 => self.load::<1>(addr),
            2 => self.load::<2>(addr),
            4 => self.load::<4>(addr),
            _ => self.load::<8>(addr),
        }
    }

    /// Returns the old value.
    fn atomic(
        &mut self,
        size: u8,
        addr: u64,
        op: AtomicOp,
        src: u64,
        r0: u64,
    ) -> Result<u64, ExecErrorKind> {
        if let Place::Map(ptr) = self.locate(addr, usize::from(size))? {
            return self.env.atomic(ptr, size, op, src, r0);
        }
        let old = self.load_sized(size, addr)?;
        if let Some(new) = op.result(size, old, src, r0) {
            self.store_sized(size, addr, new)?;
        }
        Ok(old)
    }

    /// Copies `len` bytes at `addr` into `out` (helper arguments: keys, values).
    fn read_bytes(
        &mut self,
        addr: u64,
        len: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), ExecErrorKind> {
        out.clear();
        match self.locate(addr, len)? {
            Place::Stack(at) => out.extend_from_slice(&self.stack[at..at + len]),
            Place::Ctx(at) => out.extend_from_slice(&self.ctx[at..at + len]),
            Place::Packet(at) => out.extend_from_slice(&self.packet.buf[at..at + len]),
            Place::Map(ptr) => {
                for i in 0..len {
                    let offset =
                        ptr.offset
                            .checked_add(i as u32)
                            .ok_or(ExecErrorKind::OutOfBounds {
                                ptr,
                                size: len.min(255) as u8,
                                region_len: u64::from(u32::MAX),
                            })?;
                    out.push(self.env.load(Ptr { offset, ..ptr }, 1)? as u8);
                }
            }
        }
        Ok(())
    }

    /// A tc helper's first argument: the context of a program that runs on a packet.
    fn tc_packet_arg(&self, ctx: u64) -> Result<(), ExecErrorKind> {
        if ctx != Ptr::ctx(0).encode() || self.packet.buf.is_empty() {
            return Err(ExecErrorKind::BadArgument {
                arg: 1,
                what: "not the context of a packet program".into(),
            });
        }
        Ok(())
    }

    /// Where in the buffer `len` bytes at `offset` from the packet's start begin, when the
    /// packet has them (`bpf_try_make_writable`, `skb_header_pointer`: mimic's packet is linear
    /// and private, so only its length can fail the helper).
    fn writable_packet(&self, offset: u32, len: u32) -> Option<usize> {
        let end = u64::from(offset) + u64::from(len);
        (offset <= i32::MAX as u32 && end <= (self.packet.end - self.packet.data) as u64)
            .then_some(self.packet.data + offset as usize)
    }

    /// `bpf_l3_csum_replace` / `bpf_l4_csum_replace` on the 16-bit checksum at `offset`. A test
    /// run's packet carries no checksum state (`CHECKSUM_NONE`), so the pseudo-header flag
    /// changes nothing in the packet.
    fn csum_replace(&mut self, l4: bool, offset: u32, from: u64, to: u64, flags: u64) -> u64 {
        let allowed = if l4 {
            BPF_F_HDR_FIELD_MASK
                | BPF_F_PSEUDO_HDR
                | BPF_F_MARK_MANGLED_0
                | BPF_F_MARK_ENFORCE
                | BPF_F_IPV6
        } else {
            BPF_F_HDR_FIELD_MASK
        };
        if flags & !allowed != 0 {
            return errno(Errno::EINVAL);
        }
        if offset > 0xffff || offset & 1 != 0 {
            return EFAULT;
        }
        let Some(at) = self.writable_packet(offset, 2) else {
            return EFAULT;
        };
        let check = u16::from_le_bytes([self.packet.buf[at], self.packet.buf[at + 1]]);
        let mangled_zero = l4 && flags & BPF_F_MARK_MANGLED_0 != 0;
        if mangled_zero && flags & BPF_F_MARK_ENFORCE == 0 && check == 0 {
            return 0;
        }
        let mut new = match flags & BPF_F_HDR_FIELD_MASK {
            0 if from != 0 => return errno(Errno::EINVAL),
            0 => csum::replace_by_diff(check, to as u32),
            2 if l4 => csum::replace4(check, u32::from(from as u16), u32::from(to as u16)),
            2 => csum::replace2(check, from as u16, to as u16),
            4 => csum::replace4(check, from as u32, to as u32),
            _ => return errno(Errno::EINVAL),
        };
        if mangled_zero && new == 0 {
            new = CSUM_MANGLED_0;
        }
        self.packet.buf[at..at + 2].copy_from_slice(&new.to_le_bytes());
        0
    }

    /// A map pointer argument of a helper.
    fn map_arg(value: u64, arg: u8) -> Result<Ptr, ExecErrorKind> {
        match Ptr::decode(value) {
            Some(ptr) if ptr.kind == RegionKind::Map => Ok(ptr),
            _ => Err(ExecErrorKind::BadArgument {
                arg,
                what: format!("{value:#x} is not a map pointer"),
            }),
        }
    }

    /// The common lookup: the key is on the stack or in the input, so the map world checks
    /// `map`, reads the key in place (checked as a load of the key size) and looks it up in
    /// one call. Same checks, in the same order, as the general path of [`Mem::call`].
    #[inline(always)]
    fn lookup_at(
        &mut self,
        map: u64,
        direct: Option<DirectCall>,
        elem: bool,
        key: u64,
    ) -> Result<u64, ExecErrorKind> {
        let map = Self::map_arg(map, 1)?;
        if let Some(call) = direct {
            self.env.check_direct_call(call, map)?;
        }
        let key = KeyArg {
            addr: key,
            stack: &*self.stack,
            ctx: &*self.ctx,
            packet: &*self.packet,
            depth: self.depth,
        };
        self.env.map_lookup_at(map, elem, key)
    }

    /// Calls a helper or a direct map function with `r1`..`r5`; returns `r0`.
    #[inline(never)]
    fn call(
        &mut self,
        callee: Callee,
        regs: &[u64; 16],
        calls: &mut CallState,
    ) -> Result<u64, ExecErrorKind> {
        let (id, direct) = match callee {
            Callee::Helper(id) => (id, None),
            Callee::Direct(call) => (call.helper(), Some(call)),
        };
        match id {
            HelperId::KtimeGetNs if calls.conformance => return Ok(regs[1]),
            // The clock moves on by a nanosecond at each read: monotonic, and the same on
            // every replay of a run.
            HelperId::KtimeGetNs => {
                calls.clock_ns += 1;
                return Ok(calls.clock_ns);
            }
            HelperId::GetPrandomU32 => {
                let x = &mut calls.prandom;
                *x ^= *x >> 12;
                *x ^= *x << 25;
                *x ^= *x >> 27;
                return Ok(x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32);
            }
            HelperId::GetSmpProcessorId => return Ok(u64::from(calls.cpu)),
            // `XDP_REDIRECT`, or `XDP_ABORTED` for flags the helper does not know.
            // `TC_ACT_REDIRECT`, or `TC_ACT_SHOT` for a flag other than `BPF_F_INGRESS`.
            HelperId::Redirect if calls.tc => {
                return Ok(if regs[2] & !1 == 0 {
                    crate::bpf::skb::TC_ACT_REDIRECT
                } else {
                    crate::bpf::skb::TC_ACT_SHOT as u64
                })
            }
            HelperId::Redirect => return Ok(if regs[2] == 0 { 4 } else { 0 }),
            HelperId::SkbStoreBytes => {
                self.tc_packet_arg(regs[1])?;
                let (offset, len) = (regs[2] as u32, regs[4] as u32);
                if regs[5] & !(BPF_F_RECOMPUTE_CSUM | BPF_F_INVALIDATE_HASH) != 0 {
                    return Ok(errno(Errno::EINVAL));
                }
                let Some(at) = self.writable_packet(offset, len) else {
                    return Ok(EFAULT);
                };
                let scratch = &mut calls.scratch;
                self.read_bytes(regs[3], len as usize, scratch)?;
                self.packet.buf[at..at + len as usize].copy_from_slice(scratch);
                return Ok(0);
            }
            HelperId::SkbLoadBytes => {
                self.tc_packet_arg(regs[1])?;
                let (offset, to, len) = (regs[2] as u32, regs[3], regs[4] as u32);
                let at = self.writable_packet(offset, len);
                for i in 0..u64::from(len) {
                    let byte = at.map_or(0, |at| self.packet.buf[at + i as usize]);
                    self.store_sized(1, to.wrapping_add(i), u64::from(byte))?;
                }
                return Ok(if at.is_some() { 0 } else { EFAULT });
            }
            HelperId::L3CsumReplace | HelperId::L4CsumReplace => {
                self.tc_packet_arg(regs[1])?;
                let l4 = id == HelperId::L4CsumReplace;
                return Ok(self.csum_replace(l4, regs[2] as u32, regs[3], regs[4], regs[5]));
            }
            // mimic's packet is always linear and private: nothing moves, and only a length
            // past the packet's end fails.
            HelperId::SkbPullData => {
                self.tc_packet_arg(regs[1])?;
                let len = regs[2] as u32 as usize;
                return Ok(if len > self.packet.end - self.packet.data {
                    errno(Errno::ENOMEM)
                } else {
                    0
                });
            }
            HelperId::TracePrintk => {
                let mut fmt = Vec::new();
                self.read_bytes(regs[1], regs[2] as usize, &mut fmt)?;
                return match printk::format(&fmt, [regs[3], regs[4], regs[5]]) {
                    Ok(line) => {
                        let len = line.len() as u64;
                        self.env.trace_printk(&line);
                        Ok(len)
                    }
                    Err(PrintkError::Invalid) => Ok(-22i64 as u64),
                    Err(PrintkError::Unmodelled(c)) => Err(ExecErrorKind::BadArgument {
                        arg: 1,
                        what: format!("bpf_trace_printk's %{c} is not modelled"),
                    }),
                };
            }
            HelperId::CsumDiff => {
                let mut from = Vec::new();
                if regs[2] > 0 {
                    self.read_bytes(regs[1], regs[2] as usize, &mut from)?;
                }
                let scratch = &mut calls.scratch;
                scratch.clear();
                if regs[4] > 0 {
                    self.read_bytes(regs[3], regs[4] as usize, scratch)?;
                }
                return Ok(u64::from(csum::diff(&from, scratch, regs[5] as u32)));
            }
            // A tail call changes the program: it compiles to its own instruction, and only a
            // `callx` of helper 12 arrives here.
            HelperId::TailCall => {
                return Err(ExecErrorKind::Unsupported(
                    "bpf_tail_call through callx".to_string(),
                ))
            }
            HelperId::XdpAdjustHead => {
                if regs[1] != Ptr::ctx(0).encode() || self.packet.buf.is_empty() {
                    return Err(ExecErrorKind::BadArgument {
                        arg: 1,
                        what: "not the context of a packet program".into(),
                    });
                }
                let ret = self.packet.adjust_head(regs[2] as i32);
                crate::bpf::xdp::sync_ctx(self.ctx, self.packet);
                return Ok(ret as u64);
            }
            _ => {}
        }
        // `__htab_map_lookup_elem`: the element, not the value (an inlined hash lookup).
        let elem = matches!(
            direct,
            Some(DirectCall {
                func: MapFn::LookupElem,
                ..
            })
        );
        if id == HelperId::MapLookupElem && map_region(regs[2]).is_none() {
            return self.lookup_at(regs[1], direct, elem, regs[2]);
        }
        let map = Self::map_arg(regs[1], 1)?;
        if let Some(call) = direct {
            self.env.check_direct_call(call, map)?;
        }
        let scratch = &mut calls.scratch;
        let key_size = self.env.map_key_size(map)? as usize;
        self.read_bytes(regs[2], key_size, scratch)?;
        match id {
            HelperId::MapLookupElem if elem => self.env.map_lookup_elem(map, scratch),
            HelperId::MapLookupElem => self.env.map_lookup(map, scratch),
            HelperId::MapDeleteElem => self.env.map_delete(map, scratch).map(|ret| ret as u64),
            // The CPU is a `u32` argument: the upper half of the register is not read.
            HelperId::MapLookupPercpuElem => {
                self.env.map_lookup_percpu(map, scratch, regs[3] as u32)
            }
            HelperId::MapUpdateElem => {
                let value_size = self.env.map_value_size(map)? as usize;
                let mut value = Vec::with_capacity(value_size);
                self.read_bytes(regs[3], value_size, &mut value)?;
                self.env
                    .map_update(map, scratch, &value, regs[4])
                    .map(|ret| ret as u64)
            }
            HelperId::KtimeGetNs
            | HelperId::GetPrandomU32
            | HelperId::GetSmpProcessorId
            | HelperId::TracePrintk
            | HelperId::Redirect
            | HelperId::SkbStoreBytes
            | HelperId::SkbLoadBytes
            | HelperId::L3CsumReplace
            | HelperId::L4CsumReplace
            | HelperId::SkbPullData
            | HelperId::CsumDiff
            | HelperId::TailCall
            | HelperId::XdpAdjustHead => unreachable!("answered above"),
        }
    }
}

/// Division, modulo, their signed forms and `movsx` (and, for completeness, every other op).
fn alu_slow(wide: bool, op: AluOp, dst: u64, src: Operand, regs: &[u64; 16]) -> u64 {
    if wide {
        let b = match src {
            Operand::Reg(s) => regs[usize::from(s & 15)],
            Operand::Imm(imm) => imm as i64 as u64,
        };
        match op {
            AluOp::Div => dst.checked_div(b).unwrap_or(0),
            AluOp::Mod => dst.checked_rem(b).unwrap_or(dst),
            AluOp::SDiv if b == 0 => 0,
            AluOp::SDiv => (dst as i64).wrapping_div(b as i64) as u64,
            AluOp::SMod if b == 0 => dst,
            AluOp::SMod => (dst as i64).wrapping_rem(b as i64) as u64,
            AluOp::MovSx(8) => b as i8 as i64 as u64,
            AluOp::MovSx(16) => b as i16 as i64 as u64,
            AluOp::MovSx(_) => b as i32 as i64 as u64,
            AluOp::Add => dst.wrapping_add(b),
            AluOp::Sub => dst.wrapping_sub(b),
            AluOp::Mul => dst.wrapping_mul(b),
            AluOp::Or => dst | b,
            AluOp::And => dst & b,
            AluOp::Lsh => dst.wrapping_shl(b as u32),
            AluOp::Rsh => dst.wrapping_shr(b as u32),
            AluOp::Xor => dst ^ b,
            AluOp::Mov => b,
            AluOp::Arsh => (dst as i64).wrapping_shr(b as u32) as u64,
        }
    } else {
        let a = dst as u32;
        let b = match src {
            Operand::Reg(s) => regs[usize::from(s & 15)] as u32,
            Operand::Imm(imm) => imm as u32,
        };
        let value = match op {
            AluOp::Div => a.checked_div(b).unwrap_or(0),
            AluOp::Mod => a.checked_rem(b).unwrap_or(a),
            AluOp::SDiv if b == 0 => 0,
            AluOp::SDiv => (a as i32).wrapping_div(b as i32) as u32,
            AluOp::SMod if b == 0 => a,
            AluOp::SMod => (a as i32).wrapping_rem(b as i32) as u32,
            AluOp::MovSx(8) => b as i8 as i32 as u32,
            AluOp::MovSx(16) => b as i16 as i32 as u32,
            AluOp::MovSx(_) => b,
            AluOp::Add => a.wrapping_add(b),
            AluOp::Sub => a.wrapping_sub(b),
            AluOp::Mul => a.wrapping_mul(b),
            AluOp::Or => a | b,
            AluOp::And => a & b,
            AluOp::Lsh => a.wrapping_shl(b),
            AluOp::Rsh => a.wrapping_shr(b),
            AluOp::Xor => a ^ b,
            AluOp::Mov => b,
            AluOp::Arsh => (a as i32).wrapping_shr(b) as u32,
        };
        u64::from(value)
    }
}

fn byte_order(kind: Endian, bits: u8, value: u64) -> u64 {
    match (kind, bits) {
        (Endian::Le, 16) => u64::from(value as u16),
        (Endian::Le, 32) => u64::from(value as u32),
        (Endian::Le, _) => value,
        (_, 16) => u64::from((value as u16).swap_bytes()),
        (_, 32) => u64::from((value as u32).swap_bytes()),
        (_, _) => value.swap_bytes(),
    }
}

/// Executes a rare instruction; returns the extra slots it occupies (1 for `lddw`).
#[inline(never)]
fn slow<E: MapEnv>(
    op: SlowOp,
    regs: &mut [u64; 16],
    mem: &mut Mem<'_, E>,
) -> Result<usize, ExecErrorKind> {
    match op {
        SlowOp::Alu { wide, op, d, src } => {
            let d = usize::from(d & 15);
            regs[d] = alu_slow(wide, op, regs[d], src, regs);
            Ok(0)
        }
        SlowOp::Atomic {
            size,
            op,
            d,
            s,
            off,
        } => {
            let addr = regs[usize::from(d & 15)].wrapping_add(off as i64 as u64);
            let s = usize::from(s & 15);
            let old = mem.atomic(size, addr, op, regs[s], regs[0])?;
            match op {
                AtomicOp::Cmpxchg => regs[0] = old,
                op if op.fetches() => regs[s] = old,
                _ => {}
            }
            Ok(0)
        }
        SlowOp::LdMapFd { d, fd } => {
            regs[usize::from(d & 15)] = mem.env.map_from_fd(fd)?;
            Ok(1)
        }
        SlowOp::LdMapValue { d, fd, off } => {
            regs[usize::from(d & 15)] = mem.env.map_value_from_fd(fd, off)?;
            Ok(1)
        }
        SlowOp::CallUnknown { imm } => Err(ExecErrorKind::UnknownHelper(imm)),
        SlowOp::Unsupported { what } => Err(ExecErrorKind::Unsupported(what.to_string())),
    }
}

/// Saved state of a caller during a bpf-to-bpf call.
#[derive(Clone, Copy, Default)]
struct Frame {
    ret: usize,
    callee_saved: [u64; 4],
}

fn frame_pointer(depth: usize) -> u64 {
    Ptr::stack(depth as u32, STACK_SIZE as u32).encode()
}

pub(super) fn run<E: MapEnv, O: Observer>(
    vm: &mut Vm,
    program: &Program,
    ctx: &mut [u8],
    packet: &mut Packet,
    env: &mut E,
    observer: &mut O,
) -> Result<u64, ExecError> {
    vm.stack.fill(0);
    let budget = vm.config.budget;
    let mut remaining = i64::try_from(budget).unwrap_or(i64::MAX);
    let ctx_len = ctx.len() as u64;
    let mut mem = Mem {
        stack: &mut vm.stack,
        ctx,
        packet,
        env,
        depth: 0,
    };
    let mut calls = CallState {
        scratch: std::mem::take(&mut vm.scratch),
        cpu: vm.config.cpu,
        prandom: vm.config.prandom_seed | 1,
        clock_ns: vm.config.clock_ns,
        conformance: vm.config.conformance,
        tc: vm.config.tc,
    };
    let mut regs = [0u64; 16];
    regs[1] = Ptr::ctx(0).encode();
    regs[2] = ctx_len;
    regs[10] = frame_pointer(0);
    let mut frames = [Frame::default(); MAX_CALL_FRAMES];
    // The program a tail call continues in, and how many were made (`tail_call_cnt`).
    let mut tail_program: Option<Program> = None;
    // The world's token for the program a tail call runs: its code must stay allocated while
    // it runs, which the environment checks at each helper call and at the exit.
    let mut running: Option<u64> = None;
    let mut tail_calls = 0u32;
    let result = 'prog: loop {
        let program = tail_program.as_ref().unwrap_or(program);
        // Fused superinstructions skip a slot, which an observer must see: it gets plain code.
        let code = if O::ACTIVE {
            &program.code[..]
        } else {
            &program.fused[..]
        };
        let consts = &program.consts[..];
        let slow_ops = &program.slow[..];
        let mut pc = 0usize;
        let mut next: Option<(Program, u64)> = None;

        let result = 'run: loop {
            let cur = pc;
            macro_rules! tri {
                ($e:expr) => {
                    match $e {
                        Ok(value) => value,
                        Err(kind) => break 'run Err(ExecError { pc: cur, kind }),
                    }
                };
            }
            // The budget is checked at backward jumps, calls and exits only: every loop passes
            // one, so a run stops at most one straight-line stretch (shorter than the program)
            // past the budget, and straight-line code pays no branch for it.
            macro_rules! budget {
                () => {
                    if remaining < 0 {
                        break 'run Err(ExecError {
                            pc: cur,
                            kind: ExecErrorKind::Budget(budget),
                        });
                    }
                };
            }
            macro_rules! jump {
                ($t:expr) => {{
                    let target = $t as usize;
                    if target <= cur {
                        budget!();
                    }
                    pc = target;
                }};
            }
            macro_rules! jump_rel {
                ($off:expr) => {{
                    if $off < 0 {
                        budget!();
                    }
                    pc = pc.wrapping_add($off as isize as usize);
                }};
            }
            macro_rules! r {
                ($i:expr) => {
                    regs[usize::from($i & 15)]
                };
            }
            let Some(&inst) = code.get(pc) else {
                break Err(ExecError {
                    pc,
                    kind: ExecErrorKind::FellOffEnd,
                });
            };
            // Counted on every instruction, checked where control can go back (see `budget!`).
            remaining -= 1;
            if O::ACTIVE {
                observer.before(&StepView {
                    pc,
                    regs: &regs[..11],
                    depth: mem.depth,
                    stack: mem.stack,
                });
            }
            pc += 1;
            use Inst::*;
            match inst {
                Add64I { d, imm } => r!(d) = r!(d).wrapping_add(imm as i64 as u64),
                Add64R { d, s } => r!(d) = r!(d).wrapping_add(r!(s)),
                Sub64I { d, imm } => r!(d) = r!(d).wrapping_sub(imm as i64 as u64),
                Sub64R { d, s } => r!(d) = r!(d).wrapping_sub(r!(s)),
                Mul64I { d, imm } => r!(d) = r!(d).wrapping_mul(imm as i64 as u64),
                Mul64R { d, s } => r!(d) = r!(d).wrapping_mul(r!(s)),
                Or64I { d, imm } => r!(d) |= imm as i64 as u64,
                Or64R { d, s } => r!(d) |= r!(s),
                And64I { d, imm } => r!(d) &= imm as i64 as u64,
                And64R { d, s } => r!(d) &= r!(s),
                Lsh64I { d, imm } => r!(d) = r!(d).wrapping_shl(imm as u32),
                Lsh64R { d, s } => r!(d) = r!(d).wrapping_shl(r!(s) as u32),
                Rsh64I { d, imm } => r!(d) = r!(d).wrapping_shr(imm as u32),
                Rsh64R { d, s } => r!(d) = r!(d).wrapping_shr(r!(s) as u32),
                Xor64I { d, imm } => r!(d) ^= imm as i64 as u64,
                Xor64R { d, s } => r!(d) ^= r!(s),
                Mov64I { d, imm } => r!(d) = imm as i64 as u64,
                Mov64R { d, s } => r!(d) = r!(s),
                Arsh64I { d, imm } => r!(d) = (r!(d) as i64).wrapping_shr(imm as u32) as u64,
                Arsh64R { d, s } => r!(d) = (r!(d) as i64).wrapping_shr(r!(s) as u32) as u64,
                Add32I { d, imm } => r!(d) = u64::from((r!(d) as u32).wrapping_add(imm as u32)),
                Add32R { d, s } => r!(d) = u64::from((r!(d) as u32).wrapping_add(r!(s) as u32)),
                Sub32I { d, imm } => r!(d) = u64::from((r!(d) as u32).wrapping_sub(imm as u32)),
                Sub32R { d, s } => r!(d) = u64::from((r!(d) as u32).wrapping_sub(r!(s) as u32)),
                Mul32I { d, imm } => r!(d) = u64::from((r!(d) as u32).wrapping_mul(imm as u32)),
                Mul32R { d, s } => r!(d) = u64::from((r!(d) as u32).wrapping_mul(r!(s) as u32)),
                Or32I { d, imm } => r!(d) = u64::from(r!(d) as u32 | imm as u32),
                Or32R { d, s } => r!(d) = u64::from(r!(d) as u32 | r!(s) as u32),
                And32I { d, imm } => r!(d) = u64::from(r!(d) as u32 & imm as u32),
                And32R { d, s } => r!(d) = u64::from(r!(d) as u32 & r!(s) as u32),
                Lsh32I { d, imm } => r!(d) = u64::from((r!(d) as u32).wrapping_shl(imm as u32)),
                Lsh32R { d, s } => r!(d) = u64::from((r!(d) as u32).wrapping_shl(r!(s) as u32)),
                Rsh32I { d, imm } => r!(d) = u64::from((r!(d) as u32).wrapping_shr(imm as u32)),
                Rsh32R { d, s } => r!(d) = u64::from((r!(d) as u32).wrapping_shr(r!(s) as u32)),
                Xor32I { d, imm } => r!(d) = u64::from(r!(d) as u32 ^ imm as u32),
                Xor32R { d, s } => r!(d) = u64::from(r!(d) as u32 ^ r!(s) as u32),
                Mov32I { d, imm } => r!(d) = u64::from(imm as u32),
                Mov32R { d, s } => r!(d) = u64::from(r!(s) as u32),
                Arsh32I { d, imm } => {
                    r!(d) = u64::from((r!(d) as u32 as i32).wrapping_shr(imm as u32) as u32)
                }
                Arsh32R { d, s } => {
                    r!(d) = u64::from((r!(d) as u32 as i32).wrapping_shr(r!(s) as u32) as u32)
                }
                Neg64 { d } => r!(d) = r!(d).wrapping_neg(),
                Neg32 { d } => r!(d) = u64::from((r!(d) as u32).wrapping_neg()),
                End { kind, bits, d } => r!(d) = byte_order(kind, bits, r!(d)),
                LdImm { d, idx } => {
                    let Some(&value) = consts.get(idx as usize) else {
                        break Err(ExecError {
                            pc: cur,
                            kind: ExecErrorKind::Unsupported("lddw constant missing".into()),
                        });
                    };
                    r!(d) = value;
                    pc += 1;
                }
                LdxB { d, s, off } => {
                    r!(d) = tri!(mem.load::<1>(r!(s).wrapping_add(off as i64 as u64)))
                }
                LdxH { d, s, off } => {
                    r!(d) = tri!(mem.load::<2>(r!(s).wrapping_add(off as i64 as u64)))
                }
                LdxW { d, s, off } => {
                    r!(d) = tri!(mem.load::<4>(r!(s).wrapping_add(off as i64 as u64)))
                }
                LdxDW { d, s, off } => {
                    r!(d) = tri!(mem.load::<8>(r!(s).wrapping_add(off as i64 as u64)))
                }
                LdxSB { d, s, off } => {
                    r!(d) = tri!(mem.load::<1>(r!(s).wrapping_add(off as i64 as u64))) as i8 as i64
                        as u64
                }
                LdxSH { d, s, off } => {
                    r!(d) = tri!(mem.load::<2>(r!(s).wrapping_add(off as i64 as u64))) as i16 as i64
                        as u64
                }
                LdxSW { d, s, off } => {
                    r!(d) = tri!(mem.load::<4>(r!(s).wrapping_add(off as i64 as u64))) as i32 as i64
                        as u64
                }
                StxB { d, s, off } => {
                    tri!(mem.store::<1>(r!(d).wrapping_add(off as i64 as u64), r!(s)))
                }
                StxH { d, s, off } => {
                    tri!(mem.store::<2>(r!(d).wrapping_add(off as i64 as u64), r!(s)))
                }
                StxW { d, s, off } => {
                    tri!(mem.store::<4>(r!(d).wrapping_add(off as i64 as u64), r!(s)))
                }
                StxDW { d, s, off } => {
                    tri!(mem.store::<8>(r!(d).wrapping_add(off as i64 as u64), r!(s)))
                }
                StB { d, off, imm } => {
                    tri!(mem.store::<1>(r!(d).wrapping_add(off as i64 as u64), imm as u64))
                }
                StH { d, off, imm } => {
                    tri!(mem.store::<2>(r!(d).wrapping_add(off as i64 as u64), imm as u64))
                }
                StW { d, off, imm } => {
                    tri!(mem.store::<4>(r!(d).wrapping_add(off as i64 as u64), imm as u64))
                }
                StDW { d, off, imm } => {
                    tri!(mem.store::<8>(r!(d).wrapping_add(off as i64 as u64), imm as i64 as u64))
                }
                LdxFpB { d, at } => r!(d) = mem.fp_load::<1>(at),
                LdxFpH { d, at } => r!(d) = mem.fp_load::<2>(at),
                LdxFpW { d, at } => r!(d) = mem.fp_load::<4>(at),
                LdxFpDW { d, at } => r!(d) = mem.fp_load::<8>(at),
                StxFpB { s, at } => mem.fp_store::<1>(at, r!(s)),
                StxFpH { s, at } => mem.fp_store::<2>(at, r!(s)),
                StxFpW { s, at } => mem.fp_store::<4>(at, r!(s)),
                StxFpDW { s, at } => mem.fp_store::<8>(at, r!(s)),
                StFpB { at, imm } => mem.fp_store::<1>(at, imm as u64),
                StFpH { at, imm } => mem.fp_store::<2>(at, imm as u64),
                StFpW { at, imm } => mem.fp_store::<4>(at, imm as u64),
                StFpDW { at, imm } => mem.fp_store::<8>(at, imm as i64 as u64),
                Ja { t } => jump!(t),
                Jeq64I { d, off, imm } => {
                    let (a, b) = (r!(d), imm as i64 as u64);
                    if a == b {
                        jump_rel!(off);
                    }
                }
                Jeq64R { d, s, off } => {
                    let (a, b) = (r!(d), r!(s));
                    if a == b {
                        jump_rel!(off);
                    }
                }
                Jeq32I { d, off, imm } => {
                    let (a, b) = (r!(d) as u32, imm as u32);
                    if a == b {
                        jump_rel!(off);
                    }
                }
                Jeq32R { d, s, off } => {
                    let (a, b) = (r!(d) as u32, r!(s) as u32);
                    if a == b {
                        jump_rel!(off);
                    }
                }
                Jne64I { d, off, imm } => {
                    let (a, b) = (r!(d), imm as i64 as u64);
                    if a != b {
                        jump_rel!(off);
                    }
                }
                Jne64R { d, s, off } => {
                    let (a, b) = (r!(d), r!(s));
                    if a != b {
                        jump_rel!(off);
                    }
                }
                Jne32I { d, off, imm } => {
                    let (a, b) = (r!(d) as u32, imm as u32);
                    if a != b {
                        jump_rel!(off);
                    }
                }
                Jne32R { d, s, off } => {
                    let (a, b) = (r!(d) as u32, r!(s) as u32);
                    if a != b {
                        jump_rel!(off);
                    }
                }
                Jgt64I { d, off, imm } => {
                    let (a, b) = (r!(d), imm as i64 as u64);
                    if a > b {
                        jump_rel!(off);
                    }
                }
                Jgt64R { d, s, off } => {
                    let (a, b) = (r!(d), r!(s));
                    if a > b {
                        jump_rel!(off);
                    }
                }
                Jgt32I { d, off, imm } => {
                    let (a, b) = (r!(d) as u32, imm as u32);
                    if a > b {
                        jump_rel!(off);
                    }
                }
                Jgt32R { d, s, off } => {
                    let (a, b) = (r!(d) as u32, r!(s) as u32);
                    if a > b {
                        jump_rel!(off);
                    }
                }
                Jge64I { d, off, imm } => {
                    let (a, b) = (r!(d), imm as i64 as u64);
                    if a >= b {
                        jump_rel!(off);
                    }
                }
                Jge64R { d, s, off } => {
                    let (a, b) = (r!(d), r!(s));
                    if a >= b {
                        jump_rel!(off);
                    }
                }
                Jge32I { d, off, imm } => {
                    let (a, b) = (r!(d) as u32, imm as u32);
                    if a >= b {
                        jump_rel!(off);
                    }
                }
                Jge32R { d, s, off } => {
                    let (a, b) = (r!(d) as u32, r!(s) as u32);
                    if a >= b {
                        jump_rel!(off);
                    }
                }
                Jlt64I { d, off, imm } => {
                    let (a, b) = (r!(d), imm as i64 as u64);
                    if a < b {
                        jump_rel!(off);
                    }
                }
                Jlt64R { d, s, off } => {
                    let (a, b) = (r!(d), r!(s));
                    if a < b {
                        jump_rel!(off);
                    }
                }
                Jlt32I { d, off, imm } => {
                    let (a, b) = (r!(d) as u32, imm as u32);
                    if a < b {
                        jump_rel!(off);
                    }
                }
                Jlt32R { d, s, off } => {
                    let (a, b) = (r!(d) as u32, r!(s) as u32);
                    if a < b {
                        jump_rel!(off);
                    }
                }
                Jle64I { d, off, imm } => {
                    let (a, b) = (r!(d), imm as i64 as u64);
                    if a <= b {
                        jump_rel!(off);
                    }
                }
                Jle64R { d, s, off } => {
                    let (a, b) = (r!(d), r!(s));
                    if a <= b {
                        jump_rel!(off);
                    }
                }
                Jle32I { d, off, imm } => {
                    let (a, b) = (r!(d) as u32, imm as u32);
                    if a <= b {
                        jump_rel!(off);
                    }
                }
                Jle32R { d, s, off } => {
                    let (a, b) = (r!(d) as u32, r!(s) as u32);
                    if a <= b {
                        jump_rel!(off);
                    }
                }
                Jset64I { d, off, imm } => {
                    let (a, b) = (r!(d), imm as i64 as u64);
                    if a & b != 0 {
                        jump_rel!(off);
                    }
                }
                Jset64R { d, s, off } => {
                    let (a, b) = (r!(d), r!(s));
                    if a & b != 0 {
                        jump_rel!(off);
                    }
                }
                Jset32I { d, off, imm } => {
                    let (a, b) = (r!(d) as u32, imm as u32);
                    if a & b != 0 {
                        jump_rel!(off);
                    }
                }
                Jset32R { d, s, off } => {
                    let (a, b) = (r!(d) as u32, r!(s) as u32);
                    if a & b != 0 {
                        jump_rel!(off);
                    }
                }
                Jsgt64I { d, off, imm } => {
                    let (a, b) = (r!(d), imm as i64 as u64);
                    if (a as i64) > (b as i64) {
                        jump_rel!(off);
                    }
                }
                Jsgt64R { d, s, off } => {
                    let (a, b) = (r!(d), r!(s));
                    if (a as i64) > (b as i64) {
                        jump_rel!(off);
                    }
                }
                Jsgt32I { d, off, imm } => {
                    let (a, b) = (r!(d) as u32, imm as u32);
                    if (a as i32) > (b as i32) {
                        jump_rel!(off);
                    }
                }
                Jsgt32R { d, s, off } => {
                    let (a, b) = (r!(d) as u32, r!(s) as u32);
                    if (a as i32) > (b as i32) {
                        jump_rel!(off);
                    }
                }
                Jsge64I { d, off, imm } => {
                    let (a, b) = (r!(d), imm as i64 as u64);
                    if (a as i64) >= (b as i64) {
                        jump_rel!(off);
                    }
                }
                Jsge64R { d, s, off } => {
                    let (a, b) = (r!(d), r!(s));
                    if (a as i64) >= (b as i64) {
                        jump_rel!(off);
                    }
                }
                Jsge32I { d, off, imm } => {
                    let (a, b) = (r!(d) as u32, imm as u32);
                    if (a as i32) >= (b as i32) {
                        jump_rel!(off);
                    }
                }
                Jsge32R { d, s, off } => {
                    let (a, b) = (r!(d) as u32, r!(s) as u32);
                    if (a as i32) >= (b as i32) {
                        jump_rel!(off);
                    }
                }
                Jslt64I { d, off, imm } => {
                    let (a, b) = (r!(d), imm as i64 as u64);
                    if (a as i64) < (b as i64) {
                        jump_rel!(off);
                    }
                }
                Jslt64R { d, s, off } => {
                    let (a, b) = (r!(d), r!(s));
                    if (a as i64) < (b as i64) {
                        jump_rel!(off);
                    }
                }
                Jslt32I { d, off, imm } => {
                    let (a, b) = (r!(d) as u32, imm as u32);
                    if (a as i32) < (b as i32) {
                        jump_rel!(off);
                    }
                }
                Jslt32R { d, s, off } => {
                    let (a, b) = (r!(d) as u32, r!(s) as u32);
                    if (a as i32) < (b as i32) {
                        jump_rel!(off);
                    }
                }
                Jsle64I { d, off, imm } => {
                    let (a, b) = (r!(d), imm as i64 as u64);
                    if (a as i64) <= (b as i64) {
                        jump_rel!(off);
                    }
                }
                Jsle64R { d, s, off } => {
                    let (a, b) = (r!(d), r!(s));
                    if (a as i64) <= (b as i64) {
                        jump_rel!(off);
                    }
                }
                Jsle32I { d, off, imm } => {
                    let (a, b) = (r!(d) as u32, imm as u32);
                    if (a as i32) <= (b as i32) {
                        jump_rel!(off);
                    }
                }
                Jsle32R { d, s, off } => {
                    let (a, b) = (r!(d) as u32, r!(s) as u32);
                    if (a as i32) <= (b as i32) {
                        jump_rel!(off);
                    }
                }
                Call { callee } => {
                    if let Some(running) = running {
                        tri!(mem.env.check_running(running));
                    }
                    regs[0] = tri!(mem.call(callee, &regs, &mut calls))
                }
                Callx { r } => {
                    let target = r!(r);
                    let callee = i32::try_from(target).ok().and_then(Callee::from_imm);
                    let Some(callee) = callee else {
                        break Err(ExecError {
                            pc: cur,
                            kind: ExecErrorKind::BadCallx(target),
                        });
                    };
                    regs[0] = tri!(mem.call(callee, &regs, &mut calls));
                }
                CallLocal { t } => {
                    budget!();
                    if mem.depth + 1 >= MAX_CALL_FRAMES {
                        break Err(ExecError {
                            pc: cur,
                            kind: ExecErrorKind::CallDepth,
                        });
                    }
                    frames[mem.depth] = Frame {
                        ret: pc,
                        callee_saved: [regs[6], regs[7], regs[8], regs[9]],
                    };
                    mem.depth += 1;
                    regs[10] = frame_pointer(mem.depth);
                    jump!(t);
                }
                Exit => {
                    budget!();
                    if mem.depth == 0 {
                        if let Some(running) = running {
                            tri!(mem.env.check_running(running));
                        }
                        break Ok(regs[0]);
                    }
                    mem.depth -= 1;
                    let frame = frames[mem.depth];
                    regs[6..10].copy_from_slice(&frame.callee_saved);
                    regs[10] = frame_pointer(mem.depth);
                    pc = frame.ret;
                }
                AddJeq { da, off, imm } => {
                    let d = usize::from(da & 15);
                    regs[d] = regs[d].wrapping_add(((da as i8) >> 4) as i64 as u64);
                    remaining -= 1;
                    pc += 1;
                    if regs[d] == imm as i64 as u64 {
                        jump_rel!(off);
                    }
                }
                AddJne { da, off, imm } => {
                    let d = usize::from(da & 15);
                    regs[d] = regs[d].wrapping_add(((da as i8) >> 4) as i64 as u64);
                    remaining -= 1;
                    pc += 1;
                    if regs[d] != imm as i64 as u64 {
                        jump_rel!(off);
                    }
                }
                AddJlt { da, off, imm } => {
                    let d = usize::from(da & 15);
                    regs[d] = regs[d].wrapping_add(((da as i8) >> 4) as i64 as u64);
                    remaining -= 1;
                    pc += 1;
                    if regs[d] < imm as i64 as u64 {
                        jump_rel!(off);
                    }
                }
                AddJle { da, off, imm } => {
                    let d = usize::from(da & 15);
                    regs[d] = regs[d].wrapping_add(((da as i8) >> 4) as i64 as u64);
                    remaining -= 1;
                    pc += 1;
                    if regs[d] <= imm as i64 as u64 {
                        jump_rel!(off);
                    }
                }
                AddJgt { da, off, imm } => {
                    let d = usize::from(da & 15);
                    regs[d] = regs[d].wrapping_add(((da as i8) >> 4) as i64 as u64);
                    remaining -= 1;
                    pc += 1;
                    if regs[d] > imm as i64 as u64 {
                        jump_rel!(off);
                    }
                }
                AddJge { da, off, imm } => {
                    let d = usize::from(da & 15);
                    regs[d] = regs[d].wrapping_add(((da as i8) >> 4) as i64 as u64);
                    remaining -= 1;
                    pc += 1;
                    if regs[d] >= imm as i64 as u64 {
                        jump_rel!(off);
                    }
                }
                MovAdd64 { d, s, imm } => {
                    r!(d) = r!(s).wrapping_add(imm as i64 as u64);
                    remaining -= 1;
                    pc += 1;
                }
                Slow { idx } => {
                    let Some(&op) = slow_ops.get(idx as usize) else {
                        break Err(ExecError {
                            pc: cur,
                            kind: ExecErrorKind::Unsupported("slow op missing".into()),
                        });
                    };
                    pc += tri!(slow(op, &mut regs, &mut mem));
                }
                LddwTail => {
                    break Err(ExecError {
                        pc: cur,
                        kind: ExecErrorKind::Unsupported(
                            "execution reached the second slot of lddw".to_string(),
                        ),
                    })
                }
                TailCall => {
                    budget!();
                    // The x86-64 JIT's order (what a kernel with `bpf_jit_enable` runs): the index
                    // against `max_entries`, then the count, then the slot; only a call that finds
                    // a program counts (the interpreter also counts an empty slot).
                    let map = tri!(Ptr::decode(regs[2]).ok_or(ExecErrorKind::BadArgument {
                        arg: 2,
                        what: format!("{:#x} is not a map pointer", regs[2]),
                    }));
                    match tri!(mem.env.tail_call(map, regs[3] as u32)) {
                        TailTarget::OutOfRange => {}
                        _ if tail_calls >= MAX_TAIL_CALL_CNT => {}
                        TailTarget::Empty => {}
                        TailTarget::Prog { insns, token } => {
                            tail_calls += 1;
                            if mem.depth != 0 {
                                break Err(ExecError {
                                    pc: cur,
                                    kind: ExecErrorKind::Unsupported(
                                        "a tail call from a bpf-to-bpf callee".to_string(),
                                    ),
                                });
                            }
                            let program = tri!(Program::new(&insns).map_err(ExecErrorKind::Decode));
                            next = Some((program, token));
                            break Ok(0);
                        }
                    }
                    // Falling through leaves the caller-saved registers as a helper call does.
                    regs[0] = 0;
                }
            }
        };
        match next {
            Some((program, token)) => {
                // The same context, stack and `r1`; the callee's verifier assumed nothing else.
                tail_program = Some(program);
                running = Some(token);
                if O::ACTIVE {
                    observer.left_program();
                }
            }
            None => break 'prog result,
        }
    };
    vm.executed = (i64::try_from(budget).unwrap_or(i64::MAX) - remaining) as u64;
    vm.scratch = calls.scratch;
    result
}
