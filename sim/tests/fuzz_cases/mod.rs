//! Hand-built fuzz inputs shared by the fuzz tests: the `verify_exec` case that reads an inner
//! array through a map-in-map lookup, its encoding as the bytes the target decodes (so a test
//! can write a crash file), and a deterministic search for a `map_ops` input a mutant crashes.
#![allow(dead_code)]

use arbitrary::{Arbitrary, Unstructured};
use mimic_core::mutants::Mutants;
use mimic_sim::fuzz::verify_exec::{
    ArraySpec, Case, InnerSpec, Key, MapSel, Piece, Setup, Size, Slot, CTX_LEN,
};

/// ARRAY_OF_MAPS whose template is an array of 8 u32 (`inner_flag` as given) holding, at key 0,
/// an inner array of `inner_size` (0: half the template, 1: the template's size); the program
/// looks up `outer[0]`, then `inner[key]`, and adds the u32 it finds to r0.
pub fn inner_read(template_flag: bool, inner_size: u8, key: u8) -> Case {
    Case {
        setup: Setup {
            outer_hash: false,
            template: ArraySpec {
                entries: 7,
                words: 0,
                inner_flag: template_flag,
            },
            inners: vec![InnerSpec {
                size: inner_size,
                entries: 0,
                same_value_size: true,
                same_flags: true,
                slot: 0,
            }],
            array: ArraySpec {
                entries: 0,
                words: 0,
                inner_flag: false,
            },
        },
        ctx: [0; CTX_LEN],
        pieces: vec![
            Piece::Lookup {
                map: MapSel::Outer,
                key: Key::Const(0),
                dst: Slot::R8,
                null_check: true,
            },
            Piece::InnerLookup {
                src: Slot::R8,
                key: Key::Const(key),
                dst: Slot::R9,
                null_check: true,
            },
            Piece::Load {
                ptr: Slot::R9,
                off: 0,
                size: Size::W,
            },
        ],
    }
}

/// Writes values the way `arbitrary` 1.x reads them: integers little-endian, `bool` as a byte's
/// low bit, a derived enum's variant as a `u32` scaled to the variant count, `Vec` elements each
/// behind a "one more" byte.
#[derive(Default)]
pub struct Encoder(pub Vec<u8>);

impl Encoder {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn bool(&mut self, v: bool) {
        self.0.push(u8::from(v));
    }
    /// The smallest `u32` the derive maps to variant `index` of `count`
    /// (`(u64::from(x) * count) >> 32 == index`).
    fn variant(&mut self, index: u64, count: u64) {
        let x = (index << 32).div_ceil(count);
        self.0.extend((x as u32).to_le_bytes());
    }
    fn array(&mut self, a: ArraySpec) {
        self.u8(a.entries);
        self.u8(a.words);
        self.bool(a.inner_flag);
    }
    fn slot(&mut self, s: Slot) {
        self.variant(s as u64, 2);
    }
    fn key(&mut self, k: Key) {
        match k {
            Key::Const(v) => {
                self.variant(0, 3);
                self.u8(v);
            }
            Key::Ctx(v) => {
                self.variant(1, 3);
                self.u8(v);
            }
            Key::CtxBounded(v, b) => {
                self.variant(2, 3);
                self.u8(v);
                self.u8(b);
            }
        }
    }
}

/// Variants of [`Piece`], in declaration order (the derive numbers them so).
const PIECE_VARIANTS: u64 = 13;

/// The bytes `verify_exec` decodes into `case`. Only the pieces `inner_read` uses are encoded;
/// others are an error (the caller's test fails with the piece's name).
pub fn encode(case: &Case) -> Result<Vec<u8>, String> {
    let mut e = Encoder::default();
    e.bool(case.setup.outer_hash);
    e.array(case.setup.template);
    for inner in &case.setup.inners {
        e.bool(true);
        e.u8(inner.size);
        e.u8(inner.entries);
        e.bool(inner.same_value_size);
        e.bool(inner.same_flags);
        e.u8(inner.slot);
    }
    e.bool(false);
    e.array(case.setup.array);
    e.0.extend(case.ctx);
    for piece in &case.pieces {
        match *piece {
            Piece::Lookup {
                map,
                key,
                dst,
                null_check,
            } => {
                e.variant(0, PIECE_VARIANTS);
                e.variant(map as u64, 2);
                e.key(key);
                e.slot(dst);
                e.bool(null_check);
            }
            Piece::InnerLookup {
                src,
                key,
                dst,
                null_check,
            } => {
                e.variant(1, PIECE_VARIANTS);
                e.slot(src);
                e.key(key);
                e.slot(dst);
                e.bool(null_check);
            }
            Piece::Load { ptr, off, size } => {
                e.variant(3, PIECE_VARIANTS);
                e.slot(ptr);
                e.u8(off);
                e.variant(size as u64, 4);
            }
            ref other => return Err(format!("encode: {other:?} is not supported")),
        }
    }
    Ok(e.0)
}

/// `encode`, checked: the bytes decode back to the same case (else the encoder no longer
/// matches `arbitrary`'s format and the test says so).
pub fn encode_checked(case: &Case) -> Vec<u8> {
    let bytes = encode(case).unwrap_or_else(|e| panic!("{e}"));
    let back = Case::arbitrary_take_rest(Unstructured::new(&bytes))
        .unwrap_or_else(|e| panic!("encoded case does not decode: {e}"));
    assert_eq!(
        format!("{back:?}"),
        format!("{case:?}"),
        "the encoded bytes decode to another case"
    );
    bytes
}

/// The panic message of `f`, if it panics.
pub fn panic_of(f: impl FnOnce()) -> Option<String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .err()
        .map(|p| {
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        })
}

pub use mimic_sim::fuzz::pseudo_random;

/// Pseudo-random `map_ops` inputs (fixed xorshift seed) until one crashes with `mutants` on and
/// passes on the correct core; `None` after `tries`.
pub fn find_map_ops_crash(mutants: Mutants, tries: usize, len: usize) -> Option<(Vec<u8>, String)> {
    let mut state = 0x6d61_705f_6f70_7321u64;
    for _ in 0..tries {
        let data = pseudo_random(&mut state, len);
        let Some(why) = panic_of(|| mimic_sim::fuzz::map_ops::check_with(&data, mutants)) else {
            continue;
        };
        if panic_of(|| mimic_sim::fuzz::map_ops::check_with(&data, Mutants::NONE)).is_none() {
            return Some((data, why));
        }
    }
    None
}
