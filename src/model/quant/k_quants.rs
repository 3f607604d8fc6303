//! The K-quants' natural groups as integers and chunk scales ([`super::blocks::natural_quants`]
//! for Q4_K, Q5_K and Q6_K): a super-block of 256 elements, its scales packed in 6 or 8 bits,
//! read a whole 16-byte unit at a time.

use cubecl::prelude::*;

use super::blocks::{
    component, f16_to_f32, in_superblock, load_units, small_field, superblock_unit,
    window_signed_byte,
};
use super::kernels::U32x4;
use super::layout::{field_unit, superblock_units};
use crate::gguf::GgmlType;

/// [`natural_quants`] for Q4_K and Q5_K: pair `s % 4` of a super-block, sub-blocks 2p and
/// 2p + 1, the low and high nibbles of the same 32 bytes (chunks of 32). Unit 0: d, dmin and
/// the 12 scale bytes; Q5_K's 32 bytes of high bits in units 1–2; the nibbles after them.
/// Element `d·sc·q − dmin·mn`: `m = −dmin·mn`.
#[cube]
#[allow(clippy::too_many_arguments)]
pub(super) fn k4_quants<A: Float>(
    w: &Tensor<U32x4>,
    first: usize,
    s: usize,
    out: &mut Array<A>,
    scales: &mut Array<f32>,
    #[comptime] at: usize,
    #[comptime] at_scales: usize,
    #[comptime] format: GgmlType,
) {
    let is_q5 = comptime![format == GgmlType::Q5_K];
    let qs_unit = comptime![if is_q5 { 3usize } else { 1usize }];
    let block = (first + s / 4) * comptime![superblock_units(format)];
    let pair = s % 4;
    let head = w[block];
    let d = f16_to_f32(head.extract(0usize) & 0xFFFF);
    let dmin = f16_to_f32(head.extract(0usize) >> 16);
    // ggml's get_scale_min_k4 over the 12 scale bytes (words 1–3), sub-blocks 2p, 2p + 1.
    let s1 = head.extract(1usize);
    let s2 = head.extract(2usize);
    let s3 = head.extract(3usize);
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
        scales[comptime![at_scales + 2 * half]] = d * f32::cast_from(sc);
        scales[comptime![at_scales + 2 * half + 1]] = -(dmin * f32::cast_from(mn));
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
                out[comptime![at + 32 * half + 4 * k + b]] = A::cast_from(q as i32);
            }
        }
    }
}

/// [`natural_quants`] for Q6_K: half `s % 2` of a super-block (128 elements, chunks of 16).
/// Element r takes its low nibble from byte r % 64 of the half's 64 (the high nibble when
/// r ≥ 64), its high bits from byte r % 32 of the half's 32 at shift 2·(r / 32), its scale from
/// byte r / 16 of 8; the integer is that 6-bit value − 32, `d` is the block's d times the
/// signed scale, and there is no minimum. The block's d is in its superblock's first unit, its
/// other 208 bytes 13 units further on.
#[cube]
#[allow(clippy::too_many_arguments)]
pub(super) fn q6_k_quants<A: Float>(
    w: &Tensor<U32x4>,
    first: usize,
    s: usize,
    out: &mut Array<A>,
    scales: &mut Array<f32>,
    #[comptime] at: usize,
    #[comptime] at_scales: usize,
) {
    let format = comptime![GgmlType::Q6_K];
    let base = superblock_unit(first + s / 2, format);
    let j = in_superblock(first + s / 2, format);
    let half = s % 2;
    let d = f16_to_f32(small_field(w, base, j, 2usize));
    let body = base + comptime![field_unit(format, 1)] + 13 * j;
    let scale_unit = w[body + 12];
    let mut scale_bytes = Array::<u32>::new(2usize);
    scale_bytes[0] = component(scale_unit, 2 * half);
    scale_bytes[1] = component(scale_unit, 2 * half + 1);
    #[unroll]
    for c in 0..8usize {
        scales[comptime![at_scales + 2 * c]] =
            d * f32::cast_from(window_signed_byte(&scale_bytes, c));
        scales[comptime![at_scales + 2 * c + 1]] = 0.0f32;
    }
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
            #[unroll]
            for b in 0..4usize {
                let low = (lo_word >> comptime![(8 * b + 4 * (quarter / 2)) as u32]) & 0xF;
                let high = (hi_word >> comptime![(8 * b + 2 * quarter) as u32]) & 3;
                let q = (low | (high << 4)) as i32 - 32;
                out[comptime![at + 32 * quarter + 4 * k + b]] = A::cast_from(q);
            }
        }
    }
}
