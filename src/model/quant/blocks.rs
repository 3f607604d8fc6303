//! How a block's bytes become values, format by format, in the device layout of
//! [`super::layout`]: the elements dequantized ([`natural_values`], for every format) or, for
//! the quantized formats (those that [`factors`]), their integers and the scales of each chunk
//! ([`natural_quants`]; the K-quants' in [`super::k_quants`]).
//!
//! Every scale is decoded from its f16 bits with integer operations, so nothing needs the
//! `shader-f16` feature (SwiftShader has none). Each element decoder mirrors the host reference
//! in `gguf::dequant` operation by operation, so dequantization is bit-identical to ggml's.

use cubecl::prelude::*;

use super::k_quants::{k4_quants, q6_k_quants};
use super::kernels::{U32x4, natural_group};
use super::layout::{field_unit, superblock_blocks, superblock_units};
use crate::gguf::GgmlType;

/// `out[4u + c] = w[unit + u].c` for `u < units`: whole units as words.
#[cube]
pub(super) fn load_units(
    w: &Tensor<U32x4>,
    unit: usize,
    out: &mut Array<u32>,
    #[comptime] units: usize,
) {
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
pub(super) fn component(v: U32x4, c: usize) -> u32 {
    let mut out = select(c == 1, v.extract(1usize), v.extract(0usize));
    out = select(c == 2, v.extract(2usize), out);
    select(c == 3, v.extract(3usize), out)
}

/// The `len`-byte value (2 or 4 bytes, zero-extended) of block `j` of a superblock, in the field
/// of such values that starts at `unit`.
#[cube]
pub(super) fn small_field(w: &Tensor<U32x4>, unit: usize, j: usize, #[comptime] len: usize) -> u32 {
    field_in_unit(w[unit + j * len / 16], j, len)
}

/// [`small_field`] from `v`, the loaded unit of its field that holds block `j`'s value.
#[cube]
fn field_in_unit(v: U32x4, j: usize, #[comptime] len: usize) -> u32 {
    let byte = j * len;
    let word = component(v, (byte % 16) / 4);
    let mut out = word;
    if comptime![len == 2] {
        out = (word >> (((byte % 4) * 8) as u32)) & 0xFFFF;
    }
    out
}

/// Byte `b` (comptime) of a window of words.
#[cube]
pub(super) fn window_byte(win: &Array<u32>, #[comptime] b: usize) -> u32 {
    (win[b / 4] >> comptime![((b % 4) * 8) as u32]) & 0xFF
}

/// Byte `b` (comptime) of a window of words as an 8-bit two's-complement value: shifted to the
/// top of the word and back down arithmetically, two operations where a compare and a select
/// took three more (a Q8_0 element's cost on a software GPU, BENCHMARKS.md session 18).
#[cube]
pub(super) fn window_signed_byte(win: &Array<u32>, #[comptime] b: usize) -> i32 {
    let top = win[b / 4] << comptime![(24 - (b % 4) * 8) as u32];
    (top as i32) >> 24i32
}

/// IEEE half-precision bits to f32, exactly (subnormals, infinities and NaN payloads included):
/// the host reference's bits (`gguf::dequant::f16_to_f32`). Without branches — on a software
/// GPU both sides of a branch run on every lane — and in integer operations but one exact
/// subtraction: the half's exponent and mantissa shifted into f32's places and rebiased; a
/// subnormal `m · 2^-24` as `2^-14 · (1 + m/1024) − 2^-14`, exact since the two are within a
/// factor of two (Sterbenz), and never an f32 subnormal that a GPU may flush.
#[cube]
pub(crate) fn f16_to_f32(h: u32) -> f32 {
    let magnitude = (h & 0x7FFF) << 13;
    let exp = h & 0x7C00;
    let mut bits = magnitude + 0x3800_0000u32;
    let subnormal = f32::reinterpret(magnitude + 0x3880_0000u32) - f32::reinterpret(0x3880_0000u32);
    bits = select(exp == 0, u32::reinterpret(subnormal), bits);
    bits = select(exp == 0x7C00, magnitude | 0x7F80_0000u32, bits);
    f32::reinterpret(bits | ((h & 0x8000) << 16))
}

/// The IEEE half-precision bits nearest to `x` (ties to even; beyond the largest half ∞, NaN a
/// quiet NaN, below the smallest subnormal ±0), by integer operations: no `shader-f16` needed.
#[cube]
pub(crate) fn f32_to_f16(x: f32) -> u32 {
    let bits = u32::reinterpret(x);
    let sign = (bits >> 16) & 0x8000;
    let magnitude = bits & 0x7FFF_FFFF;
    let exp = magnitude >> 23;
    let mut half = 0x7C00u32; // ±∞: |x| ≥ 65536 (65520 and up reach it by rounding below)
    if magnitude > 0x7F80_0000 {
        half = 0x7E00u32;
    } else if exp >= 113 {
        if exp < 143 {
            // A normal half: rebias the exponent, keep 10 of the 23 mantissa bits, round the
            // other 13 to nearest even (a carry out of the mantissa steps the exponent, up to ∞).
            let rest = magnitude & 0x1FFF;
            half = ((exp - 112) << 10) | ((magnitude >> 13) & 0x3FF);
            if rest > 0x1000 || (rest == 0x1000 && (half & 1) == 1) {
                half += 1;
            }
        }
    } else {
        // A subnormal half (or zero): the 24-bit significand shifted down to units of 2^-24,
        // rounded to nearest even; from 25 places down nothing is left above a half.
        let significand = (magnitude & 0x7F_FFFF) | 0x80_0000;
        let mut shift = 126 - exp;
        if shift > 25 {
            shift = 25;
        }
        let rest = significand & ((1u32 << shift) - 1);
        let halfway = 1u32 << (shift - 1);
        half = significand >> shift;
        if rest > halfway || (rest == halfway && (half & 1) == 1) {
            half += 1;
        }
    }
    half | sign
}

/// Whether `format` is a quantized one: its natural groups ([`natural_quants`]) are small
/// integers under a scale (and a minimum) per chunk of [`chunk_len`] elements, so that a dot
/// product can be taken over the integers and scaled once a chunk: `d·Σq·x + m·Σx`. The float
/// formats are not.
pub fn factors(format: GgmlType) -> bool {
    !matches!(format, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16)
}

/// Elements under one scale in a format that [`factors`]: 16 for Q6_K, 32 for the others.
pub fn chunk_len(format: GgmlType) -> usize {
    match format {
        GgmlType::Q6_K => 16,
        _ => 32,
    }
}

/// Whether a format that [`factors`] has a minimum per chunk (`m` is 0 otherwise).
pub fn has_min(format: GgmlType) -> bool {
    matches!(
        format,
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4_K | GgmlType::Q5_K
    )
}

/// Natural group `s` ([`natural_values`]) of the row whose first block is block `first`, in a
/// format that [`factors`]: `q[at + i]` its integers (offset as the format defines, as f32),
/// `scales[at_scales + 2c]` and `[.. + 2c + 1]` chunk `c`'s `d` and `m` (0 without a minimum),
/// so that element `i` is `q_i · d + m` — bit for bit the host reference's value
/// (`gguf::dequant`), which [`natural_values`] computes so.
#[cube]
#[allow(clippy::too_many_arguments)]
pub fn natural_quants<A: Float>(
    w: &Tensor<U32x4>,
    first: usize,
    s: usize,
    q: &mut Array<A>,
    scales: &mut Array<f32>,
    #[comptime] at: usize,
    #[comptime] at_scales: usize,
    #[comptime] format: GgmlType,
) {
    if comptime![format == GgmlType::Q4_K || format == GgmlType::Q5_K] {
        k4_quants(w, first, s, q, scales, at, at_scales, format);
    } else if comptime![format == GgmlType::Q6_K] {
        q6_k_quants(w, first, s, q, scales, at, at_scales);
    } else {
        block_run_quants(w, first, s, q, scales, at, at_scales, 1usize, format);
    }
}

/// [`natural_quants`] for the 32-element formats, `blocks` of them at a time: blocks
/// `first + blocks·s + b`, b < `blocks`, which must lie in one superblock (as the groups of
/// [`super::kernels::dot_group`] do), so that the unit of their scales is loaded once for all
/// of them — on a software GPU every load is a gather, and the scales' took ~22 % of a Q4_1
/// matrix's time loaded once a block (BENCHMARKS.md, session 18). Block `b`'s integers go to
/// `out[at + 32b ..]`, its `d` and `m` to `scale[at_scales + 2b ..]`.
#[cube]
#[allow(clippy::too_many_arguments)]
pub(super) fn block_run_quants<A: Float>(
    w: &Tensor<U32x4>,
    first: usize,
    s: usize,
    out: &mut Array<A>,
    scale: &mut Array<f32>,
    #[comptime] at: usize,
    #[comptime] at_scales: usize,
    #[comptime] blocks: usize,
    #[comptime] format: GgmlType,
) {
    let has_min = comptime![has_min(format)];
    let head_len = comptime![if has_min { 4usize } else { 2usize }];
    let i0 = first + s * blocks;
    let base = superblock_unit(i0, format);
    let j0 = in_superblock(i0, format);
    let heads = w[base + j0 * head_len / 16];
    #[unroll]
    for b in 0..blocks {
        let head = field_in_unit(heads, j0 + b, head_len);
        block_quants(
            w,
            base,
            j0 + b,
            head,
            out,
            scale,
            comptime![at + 32 * b],
            comptime![at_scales + 2 * b],
            format,
        );
    }
}

/// Block `j` of the superblock at unit `base`, a 32-element format, its scale field `head`
/// already read: [`block_run_quants`] for one block.
#[cube]
#[allow(clippy::too_many_arguments)]
fn block_quants<A: Float>(
    w: &Tensor<U32x4>,
    base: usize,
    j: usize,
    head: u32,
    out: &mut Array<A>,
    scale: &mut Array<f32>,
    #[comptime] at: usize,
    #[comptime] at_scales: usize,
    #[comptime] format: GgmlType,
) {
    scale[comptime![at_scales + 1]] = 0.0f32;
    if comptime![format == GgmlType::Q8_0] {
        scale[at_scales] = f16_to_f32(head);
        let mut q = Array::<u32>::new(8usize);
        load_units(
            w,
            base + comptime![field_unit(format, 1)] + 2 * j,
            &mut q,
            2usize,
        );
        #[unroll]
        for i in 0..32usize {
            out[comptime![at + i]] = A::cast_from(window_signed_byte(&q, i));
        }
    } else {
        let has_min = comptime![has_min(format)];
        let five = comptime![format == GgmlType::Q5_0 || format == GgmlType::Q5_1];
        scale[at_scales] = f16_to_f32(head & 0xFFFF);
        if has_min {
            scale[comptime![at_scales + 1]] = f16_to_f32(head >> 16);
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
            out[comptime![at + i]] = A::cast_from(lo as i32 - offset);
            out[comptime![at + i + 16]] = A::cast_from(hi as i32 - offset);
        }
    }
}

/// The first unit of block `i`'s superblock.
#[cube]
pub(super) fn superblock_unit(i: usize, #[comptime] format: GgmlType) -> usize {
    (i / comptime![superblock_blocks(format)]) * comptime![superblock_units(format)]
}

/// Block `i`'s place in its superblock.
#[cube]
pub(super) fn in_superblock(i: usize, #[comptime] format: GgmlType) -> usize {
    i % comptime![superblock_blocks(format)]
}

/// `out[at + i] = W[row][32·n·s + i]`, i < 32·n: natural group `s` of the row whose first block
/// is block `first` — `n` = [`natural_group`] sub-blocks of 32 elements that share block bytes
/// (one for the 32-element formats, a pair for Q4_K/Q5_K, a 128-element half for Q6_K) —
/// dequantized into registers. Block data is read a whole unit at a time, each unit once;
/// scales are decoded once per group; each element is computed with the operations, in the
/// order, of the host reference (`gguf::dequant`), so it is the same f32 value (in `A` = f16,
/// the same operations on f16 operands).
#[cube]
pub(crate) fn natural_values<A: Float>(
    w: &Tensor<U32x4>,
    first: usize,
    s: usize,
    out: &mut Array<A>,
    #[comptime] at: usize,
    #[comptime] format: GgmlType,
) {
    if comptime![factors(format)] {
        // q · d (+ m): the integers and scales of `natural_quants`, in the host's order.
        let width = comptime![32 * natural_group(format)];
        let chunk = comptime![chunk_len(format)];
        let mut q = Array::<A>::new(comptime![32 * natural_group(format)]);
        let mut scales = Array::<f32>::new(comptime![
            2 * 32 * natural_group(format) / chunk_len(format)
        ]);
        natural_quants(w, first, s, &mut q, &mut scales, 0usize, 0usize, format);
        #[unroll]
        for i in 0..width {
            let d = A::cast_from(scales[comptime![2 * (i / chunk)]]);
            let mut v = q[i] * d;
            if comptime![has_min(format)] {
                v = q[i] * d + A::cast_from(scales[comptime![2 * (i / chunk) + 1]]);
            }
            out[comptime![at + i]] = v;
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
            out[comptime![at + i]] = A::cast_from(f32::reinterpret(v[i]));
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
            out[comptime![at + 2 * k]] = A::cast_from(v0);
            out[comptime![at + 2 * k + 1]] = A::cast_from(v1);
        }
    }
}
