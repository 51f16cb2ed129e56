//! The Internet checksum as `bpf_csum_diff` computes it and `bpf_l3_csum_replace` /
//! `bpf_l4_csum_replace` update it: one's-complement sums of 16-bit words
//! (RFC 1071), little-endian as the CPU loads them, a last odd byte taken as the low byte of a
//! word. `csum_partial` returns a 32-bit partial sum; the helper's result is folded to 16 bits.
//!
//! Facts checked against Linux 6.18's `bpf_csum_diff` by test runs (kernel-check's packet
//! cases): any byte counts are accepted (no multiple-of-4 rule any more); with nothing to remove
//! the result is `fold(partial(to, seed))`, with nothing to add `fold(!partial(from, !seed))`,
//! otherwise `fold(partial(to, seed) - partial(from, 0))` in one's-complement arithmetic.
//!
//! A 32-bit partial sum is only defined up to the carries an architecture folds in when; what
//! is compared is the 16-bit fold, which every such sum agrees on.

/// The one's-complement sum of `bytes` added to `seed`, kept to 32 bits (`csum_partial`).
pub fn partial(bytes: &[u8], seed: u32) -> u32 {
    let mut sum = u64::from(seed);
    let mut words = bytes.chunks_exact(2);
    for w in &mut words {
        sum += u64::from(u16::from_le_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        sum += u64::from(*last);
    }
    fold32(sum)
}

/// A 64-bit sum folded into 32 bits, carries wrapped around.
fn fold32(mut sum: u64) -> u32 {
    while sum >> 32 != 0 {
        sum = (sum & 0xffff_ffff) + (sum >> 32);
    }
    sum as u32
}

/// One's-complement addition of two 32-bit partial sums (`csum_add`).
fn add(a: u32, b: u32) -> u32 {
    fold32(u64::from(a) + u64::from(b))
}

/// A 32-bit partial sum folded to 16 bits (`csum_from32to16`).
pub fn fold16(sum: u32) -> u16 {
    let sum = (sum & 0xffff) + (sum >> 16);
    ((sum & 0xffff) + (sum >> 16)) as u16
}

/// `bpf_csum_diff(from, from.len(), to, to.len(), seed)`.
pub fn diff(from: &[u8], to: &[u8], seed: u32) -> u16 {
    let sum = match (from.is_empty(), to.is_empty()) {
        (true, _) => partial(to, seed),
        (false, true) => !partial(from, !seed),
        (false, false) => add(partial(to, seed), !partial(from, 0)),
    };
    fold16(sum)
}

/// A 16-bit checksum (as the CPU loads it from the packet) updated for a 32-bit field changed
/// from `from` to `to` (`csum_replace4`: take `from` out, put `to` in, one's-complement
/// arithmetic on the complemented checksum).
pub fn replace4(check: u16, from: u32, to: u32) -> u16 {
    let taken = add(!u32::from(check), !from);
    !fold16(add(taken, to))
}

/// A 16-bit checksum updated for a 16-bit field changed from `from` to `to` (`csum_replace2`:
/// one's-complement arithmetic on 16 bits).
pub fn replace2(check: u16, from: u16, to: u16) -> u16 {
    let add16 = |a: u16, b: u16| {
        let (sum, carry) = a.overflowing_add(b);
        sum + u16::from(carry)
    };
    !add16(add16(!check, !from), to)
}

/// A 16-bit checksum updated by a 32-bit checksum difference `diff` (`csum_replace_by_diff`,
/// as `bpf_csum_diff` returns one).
pub fn replace_by_diff(check: u16, diff: u32) -> u16 {
    !fold16(add(diff, !u32::from(check)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values the 6.18 kernel's test runs returned for these arguments.
    #[test]
    fn diff_matches_the_kernels_results() {
        let le = |v: u64, n: usize| v.to_le_bytes()[..n].to_vec();
        let cases: [(u64, usize, u64, usize, u32, u16); 12] = [
            (0x0102030405060708, 8, 0x1112131415161718, 8, 0, 0x4040),
            (u64::MAX, 8, 1, 8, 0, 0x1),
            (0, 0, 0x8000000080000000, 8, 0, 0x1),
            (0x8000000080000000, 8, 0, 0, 0, 0xfffe),
            (
                0xdeadbeefcafebabe,
                4,
                0x0123456789abcdef,
                8,
                0x12345678,
                0x8114,
            ),
            (
                0xdeadbeefcafebabe,
                8,
                0x0123456789abcdef,
                4,
                0xffffffff,
                0x3440,
            ),
            (0x1, 1, 0, 0, 0, 0xfffe),
            (0x0201, 2, 0, 0, 0, 0xfdfe),
            (0x030201, 3, 0, 0, 0, 0xfdfb),
            (0, 0, 0x030201, 3, 0x10000, 0x205),
            (0, 0, 0, 0, 0x12345, 0x2346),
            (0x1, 3, 0x2, 4, 0, 0x1),
        ];
        for (from, fs, to, ts, seed, want) in cases {
            assert_eq!(
                diff(&le(from, fs), &le(to, ts), seed),
                want,
                "from {from:#x}/{fs} to {to:#x}/{ts} seed {seed:#x}"
            );
        }
    }

    /// An IPv4 header's checksum computed whole, against the same after an incremental update
    /// for a changed address (4 bytes), by the difference of that change (a 32-bit partial
    /// sum) and for a changed TTL-and-protocol word (2 bytes).
    #[test]
    fn an_incremental_update_matches_the_checksum_computed_again() {
        let mut ip: Vec<u8> = vec![
            0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0, 192, 168, 7, 9, 10, 0, 0, 1,
        ];
        let whole = |ip: &[u8]| {
            let mut zeroed = ip.to_vec();
            zeroed[10..12].fill(0);
            !fold16(partial(&zeroed, 0))
        };
        let word =
            |ip: &[u8], at: usize| u32::from_le_bytes([ip[at], ip[at + 1], ip[at + 2], ip[at + 3]]);
        let check = whole(&ip);
        let old = word(&ip, 16);
        ip[16..20].copy_from_slice(&[10, 1, 0, 5]);
        let new = word(&ip, 16);
        assert_eq!(replace4(check, old, new), whole(&ip));
        let sum = add(
            !partial(&old.to_le_bytes(), 0),
            partial(&new.to_le_bytes(), 0),
        );
        assert_eq!(replace_by_diff(check, sum), whole(&ip));
        let check = whole(&ip);
        let old16 = u16::from_le_bytes([ip[8], ip[9]]);
        ip[8] = 63;
        let new16 = u16::from_le_bytes([ip[8], ip[9]]);
        assert_eq!(replace2(check, old16, new16), whole(&ip));
    }
}
