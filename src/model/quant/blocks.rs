//! How a block's bytes become values, format by format, in the device layout of
//! [`super::layout`]: the elements dequantized ([`natural_values`], for every format) or, for
//! the formats that [`factors`], the block's integers and its scales ([`block_quants`]).
//!
//! Every scale is decoded from its f16 bits with integer operations, so nothing needs the
//! `shader-f16` feature (SwiftShader has none). Each element decoder mirrors the host reference
//! in `gguf::dequant` operation by operation, so dequantization is bit-identical to ggml's.

use cubecl::prelude::*;

use super::kernels::U32x4;
use super::layout::{field_unit, superblock_blocks, superblock_units};
use crate::gguf::GgmlType;

/// `out[4u + c] = w[unit + u].c` for `u < units`: whole units as words.
#[cube]
fn load_units(w: &Tensor<U32x4>, unit: usize, out: &mut Array<u32>, #[comptime] units: usize) {
    #[unroll]
    for u in 0..units {
        let v = w[unit + u];
        #[unroll]
        for c in 0..4usize {
            out[comptime![4 * u + c]] = v.extract(c);
        }
    }
}

/// Component `c` (< 4, known only at run time) of `v`, by selects.
#[cube]
fn component(v: U32x4, c: usize) -> u32 {
    let mut out = select(c == 1, v.extract(1usize), v.extract(0usize));
    out = select(c == 2, v.extract(2usize), out);
    select(c == 3, v.extract(3usize), out)
}

/// The `len`-byte value (2 or 4 bytes, zero-extended) of block `j` of a superblock, in the field
/// of such values that starts at `unit`.
#[cube]
fn small_field(w: &Tensor<U32x4>, unit: usize, j: usize, #[comptime] len: usize) -> u32 {
    let byte = j * len;
    let word = component(w[unit + byte / 16], (byte % 16) / 4);
    let mut out = word;
    if comptime![len == 2] {
        out = (word >> (((byte % 4) * 8) as u32)) & 0xFFFF;
    }
    out
}

/// Byte `b` (comptime) of a window of words.
#[cube]
fn window_byte(win: &Array<u32>, #[comptime] b: usize) -> u32 {
    (win[b / 4] >> comptime![((b % 4) * 8) as u32]) & 0xFF
}

/// An 8-bit two's-complement value as i32.
#[cube]
fn signed_byte(b: u32) -> i32 {
    let v = b as i32;
    let mut out = v;
    if v >= 128 {
        out = v - 256;
    }
    out
}

/// IEEE half-precision bits to f32, exactly (subnormals, infinities and NaN included).
#[cube]
fn f16_to_f32(h: u32) -> f32 {
    let sign = (h >> 15) & 1;
    let exp = (h >> 10) & 0x1F;
    let mant = h & 0x3FF;
    let mut bits = (sign << 31) | ((exp + 112u32) << 23) | (mant << 13);
    if exp == 31 {
        bits = (sign << 31) | (0xFFu32 << 23) | (mant << 13);
    }
    let mut value = f32::reinterpret(bits);
    if exp == 0 {
        // Zero or subnormal: mant × 2^-24 is exact in f32.
        value = f32::cast_from(mant) * 5.9604645e-8f32;
        if sign == 1 {
            value = -value;
        }
    }
    value
}

/// Whether `format`'s blocks are one scale (and a minimum) over 32 small integers, so that a
/// dot product can be taken over the integers and scaled once: `d·Σq·x + m·Σx`
/// ([`block_quants`]).
pub fn factors(format: GgmlType) -> bool {
    matches!(
        format,
        GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q8_0
    )
}

/// Block `first + s` of a format that [`factors`]: `out[i] = q_i` (its 32 integers, offset as
/// the format defines, as f32), `scale[0] = d`, `scale[1] = m` (0 without a minimum), so that
/// element `i` is `q_i · d + m`.
#[cube]
pub fn block_quants(
    w: &Tensor<U32x4>,
    first: usize,
    s: usize,
    out: &mut Array<f32>,
    scale: &mut Array<f32>,
    #[comptime] format: GgmlType,
) {
    let base = superblock_unit(first + s, format);
    let j = in_superblock(first + s, format);
    scale[1] = 0.0f32;
    if comptime![format == GgmlType::Q8_0] {
        scale[0] = f16_to_f32(small_field(w, base, j, 2usize));
        let mut q = Array::<u32>::new(8usize);
        load_units(
            w,
            base + comptime![field_unit(format, 1)] + 2 * j,
            &mut q,
            2usize,
        );
        #[unroll]
        for i in 0..32usize {
            out[i] = f32::cast_from(signed_byte(window_byte(&q, i)));
        }
    } else {
        let has_min = comptime![format == GgmlType::Q4_1 || format == GgmlType::Q5_1];
        let five = comptime![format == GgmlType::Q5_0 || format == GgmlType::Q5_1];
        let scale_len = comptime![if has_min { 4usize } else { 2usize }];
        let head = small_field(w, base, j, scale_len);
        scale[0] = f16_to_f32(head & 0xFFFF);
        if has_min {
            scale[1] = f16_to_f32(head >> 16);
        }
        let mut qh = 0u32;
        if five {
            qh = small_field(w, base + comptime![field_unit(format, 1)], j, 4usize);
        }
        let mut q = Array::<u32>::new(4usize);
        load_units(
            w,
            base + comptime![field_unit(format, if five { 2 } else { 1 })] + j,
            &mut q,
            1usize,
        );
        let offset = comptime![match (has_min, five) {
            (true, _) => 0i32,
            (false, false) => 8i32,
            (false, true) => 16i32,
        }];
        #[unroll]
        for i in 0..16usize {
            let b = window_byte(&q, i);
            let mut lo = b & 0xF;
            let mut hi = b >> 4;
            if five {
                lo |= ((qh >> comptime![i as u32]) << 4) & 0x10;
                hi |= (qh >> comptime![i as u32 + 12]) & 0x10;
            }
            out[i] = f32::cast_from(lo as i32 - offset);
            out[comptime![i + 16]] = f32::cast_from(hi as i32 - offset);
        }
    }
}

/// The first unit of block `i`'s superblock.
#[cube]
fn superblock_unit(i: usize, #[comptime] format: GgmlType) -> usize {
    (i / comptime![superblock_blocks(format)]) * comptime![superblock_units(format)]
}

/// Block `i`'s place in its superblock.
#[cube]
fn in_superblock(i: usize, #[comptime] format: GgmlType) -> usize {
    i % comptime![superblock_blocks(format)]
}

/// `out[at + i] = W[row][32·n·s + i]`, i < 32·n: natural group `s` of the row whose first block
/// is block `first` — `n` = [`natural_group`] sub-blocks of 32 elements that share block bytes
/// (one for the 32-element formats, a pair for Q4_K/Q5_K, a 128-element half for Q6_K) —
/// dequantized into registers. Block data is read a whole unit at a time, each unit once;
/// scales are decoded once per group; each element is computed with the operations, in the
/// order, of the host reference (`gguf::dequant`), so it is the same f32 value.
#[cube]
pub(crate) fn natural_values(
    w: &Tensor<U32x4>,
    first: usize,
    s: usize,
    out: &mut Array<f32>,
    #[comptime] at: usize,
    #[comptime] format: GgmlType,
) {
    if comptime![factors(format)] {
        // q · d (+ m): the integers and scales of `block_quants`, in the host's order.
        let has_min = comptime![format == GgmlType::Q4_1 || format == GgmlType::Q5_1];
        let mut q = Array::<f32>::new(32usize);
        let mut scale = Array::<f32>::new(2usize);
        block_quants(w, first, s, &mut q, &mut scale, format);
        #[unroll]
        for i in 0..32usize {
            let mut v = q[i] * scale[0];
            if has_min {
                v = q[i] * scale[0] + scale[1];
            }
            out[comptime![at + i]] = v;
        }
    } else if comptime![format == GgmlType::Q4_K || format == GgmlType::Q5_K] {
        // Pair `s % 4` of a super-block: sub-blocks 2p and 2p + 1, the low and high nibbles of
        // the same 32 bytes. Unit 0: d, dmin and the 12 scale bytes; Q5_K's 32 bytes of high
        // bits in units 1–2; the nibbles after them.
        let is_q5 = comptime![format == GgmlType::Q5_K];
        let qs_unit = comptime![if format == GgmlType::Q5_K {
            3usize
        } else {
            1usize
        }];
        let block = (first + s / 4) * comptime![superblock_units(format)];
        let pair = s % 4;
        let head = w[block];
        let d = f16_to_f32(head.extract(0usize) & 0xFFFF);
        let dmin = f16_to_f32(head.extract(0usize) >> 16);
        // ggml's get_scale_min_k4 over the 12 scale bytes (words 1–3), sub-blocks 2p, 2p + 1.
        let s1 = head.extract(1usize);
        let s2 = head.extract(2usize);
        let s3 = head.extract(3usize);
        let mut d1 = Array::<f32>::new(2usize);
        let mut m1 = Array::<f32>::new(2usize);
        #[unroll]
        for half in 0..2usize {
            let sub = 2 * pair + half;
            let byte_shift = ((sub % 4) * 8) as u32;
            let b1 = s1 >> byte_shift;
            let b2 = s2 >> byte_shift;
            let mut sc = b1 & 63;
            let mut mn = b2 & 63;
            if sub >= 4 {
                let b3 = s3 >> byte_shift;
                sc = (b3 & 0xF) | (((b1 >> 6) & 3) << 4);
                mn = ((b3 >> 4) & 0xF) | (((b2 >> 6) & 3) << 4);
            }
            d1[half] = d * f32::cast_from(sc);
            m1[half] = dmin * f32::cast_from(mn);
        }
        let mut qs = Array::<u32>::new(8usize);
        load_units(w, block + qs_unit + pair * 2, &mut qs, 2usize);
        let mut qh = Array::<u32>::new(8usize);
        if is_q5 {
            load_units(w, block + 1, &mut qh, 2usize);
        }
        #[unroll]
        for k in 0..8usize {
            let word = qs[k];
            let mut high = 0u32;
            if is_q5 {
                high = qh[k] >> ((2 * pair) as u32);
            }
            #[unroll]
            for half in 0..2usize {
                #[unroll]
                for b in 0..4usize {
                    let mut q = (word >> comptime![(8 * b + 4 * half) as u32]) & 0xF;
                    if is_q5 {
                        q += ((high >> comptime![(8 * b + half) as u32]) & 1) * 16;
                    }
                    out[comptime![at + 32 * half + 4 * k + b]] =
                        d1[half] * f32::cast_from(q) - m1[half];
                }
            }
        }
    } else if comptime![format == GgmlType::Q6_K] {
        // Half `s % 2` of a super-block (128 elements): element r takes its low nibble from
        // byte r % 64 of the half's 64 (the high nibble when r ≥ 64), its high bits from byte
        // r % 32 of the half's 32 at shift 2·(r / 32), its scale from byte r / 16 of 8. The
        // block's d is in its superblock's first unit, its other 208 bytes 13 units further on.
        let base = superblock_unit(first + s / 2, format);
        let j = in_superblock(first + s / 2, format);
        let half = s % 2;
        let d = f16_to_f32(small_field(w, base, j, 2usize));
        let body = base + comptime![field_unit(format, 1)] + 13 * j;
        let scale_unit = w[body + 12];
        let mut scales = Array::<u32>::new(2usize);
        scales[0] = component(scale_unit, 2 * half);
        scales[1] = component(scale_unit, 2 * half + 1);
        let mut lo = Array::<u32>::new(16usize);
        load_units(w, body + 4 * half, &mut lo, 4usize);
        let mut hi = Array::<u32>::new(8usize);
        load_units(w, body + 8 + 2 * half, &mut hi, 2usize);
        #[unroll]
        for quarter in 0..4usize {
            #[unroll]
            for k in 0..8usize {
                let lo_word = lo[comptime![(32 * quarter % 64) / 4 + k]];
                let hi_word = hi[k];
                let scale = signed_byte(window_byte(&scales, comptime![2 * quarter + k / 4]));
                let dl = d * f32::cast_from(scale);
                #[unroll]
                for b in 0..4usize {
                    let low = (lo_word >> comptime![(8 * b + 4 * (quarter / 2)) as u32]) & 0xF;
                    let high = (hi_word >> comptime![(8 * b + 2 * quarter) as u32]) & 3;
                    let q = (low | (high << 4)) as i32 - 32;
                    out[comptime![at + 32 * quarter + 4 * k + b]] = dl * f32::cast_from(q);
                }
            }
        }
    } else if comptime![format == GgmlType::F32] {
        let mut v = Array::<u32>::new(32usize);
        load_units(
            w,
            (first + s) * comptime![superblock_units(format)],
            &mut v,
            8usize,
        );
        #[unroll]
        for i in 0..32usize {
            out[comptime![at + i]] = f32::reinterpret(v[i]);
        }
    } else if comptime![format == GgmlType::F16 || format == GgmlType::BF16] {
        // Two values a word.
        let mut v = Array::<u32>::new(16usize);
        load_units(
            w,
            (first + s) * comptime![superblock_units(format)],
            &mut v,
            4usize,
        );
        #[unroll]
        for k in 0..16usize {
            let word = v[k];
            let mut v0 = f32::reinterpret(word << 16);
            let mut v1 = f32::reinterpret(word & 0xFFFF0000);
            if comptime![format == GgmlType::F16] {
                v0 = f16_to_f32(word & 0xFFFF);
                v1 = f16_to_f32(word >> 16);
            }
            out[comptime![at + 2 * k]] = v0;
            out[comptime![at + 2 * k + 1]] = v1;
        }
    }
}
