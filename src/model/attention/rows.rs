//! A KV-cache row in its format: stored from f32 values, loaded back as f32, or rounded in
//! registers exactly as a store and a load would round it (see `kernels` for the formats).

use cubecl::prelude::*;

use crate::model::plan::KvFormat;
use crate::model::quant::blocks::{f16_to_f32, f32_to_f16};

/// Writes `row` (`head_dim` f32 values) into cache row `slot` (f32 bits; f16: 2 values per word,
/// the first in the low half; or q8: 4 values per word as `round(x / scale) + 128`, then the
/// scale `max|x| / 127`).
#[cube]
pub fn store_row(
    row: &Array<f32>,
    cache: &mut Tensor<u32>,
    slot: usize,
    #[comptime] head_dim: usize,
    #[comptime] format: KvFormat,
) {
    if comptime![format == KvFormat::F32] {
        let dst = slot * head_dim;
        #[unroll]
        for d in 0..head_dim {
            cache[dst + d] = u32::reinterpret(row[d]);
        }
    } else if comptime![format == KvFormat::F16] {
        let dst = slot * comptime![head_dim / 2];
        #[unroll]
        for w in 0..comptime![head_dim / 2] {
            cache[dst + w] = f32_to_f16(row[2 * w]) | (f32_to_f16(row[2 * w + 1]) << 16);
        }
    } else {
        let row_words = comptime![head_dim / 4 + 1];
        let dst = slot * row_words;
        let amax = row_amax(row, head_dim);
        let scale = amax / 127.0f32;
        let inv = q8_inverse_step(amax);
        #[unroll]
        for w in 0..comptime![head_dim / 4] {
            let mut word = 0u32;
            #[unroll]
            for b in 0..4usize {
                let q = f32::round(row[w * 4 + b] * inv) + 128.0f32;
                word |= u32::cast_from(q) << ((b * 8) as u32);
            }
            cache[dst + w] = word;
        }
        cache[dst + comptime![head_dim / 4]] = u32::reinterpret(scale);
    }
}

/// Loads cache row `row` into `out` as f32. (`cache` is taken mutably only so that the kernel
/// that also stores rows can pass its binding: CubeCL has no reborrow of `&mut` as `&`.)
#[cube]
pub fn load_row(
    cache: &mut Tensor<u32>,
    row: usize,
    out: &mut Array<f32>,
    #[comptime] head_dim: usize,
    #[comptime] format: KvFormat,
) {
    if comptime![format == KvFormat::F32] {
        let at = row * head_dim;
        #[unroll]
        for d in 0..head_dim {
            out[d] = f32::reinterpret(cache[at + d]);
        }
    } else if comptime![format == KvFormat::F16] {
        let at = row * comptime![head_dim / 2];
        #[unroll]
        for w in 0..comptime![head_dim / 2] {
            let word = cache[at + w];
            out[2 * w] = f16_to_f32(word & 0xFFFF);
            out[2 * w + 1] = f16_to_f32(word >> 16);
        }
    } else {
        let row_words = comptime![head_dim / 4 + 1];
        let at = row * row_words;
        let scale = f32::reinterpret(cache[at + comptime![head_dim / 4]]);
        #[unroll]
        for w in 0..comptime![head_dim / 4] {
            let word = cache[at + w];
            #[unroll]
            for b in 0..4usize {
                let q = ((word >> ((b * 8) as u32)) & 0xFF) as i32 - 128;
                out[w * 4 + b] = f32::cast_from(q) * scale;
            }
        }
    }
}

/// `out` = `row` as [`store_row`] and then [`load_row`] would leave it: the same values in f32,
/// each rounded to f16 in f16, to its 8-bit step in q8 (`round(x / scale) · scale`, the same
/// operations).
#[cube]
pub fn round_trip(
    row: &Array<f32>,
    out: &mut Array<f32>,
    #[comptime] head_dim: usize,
    #[comptime] format: KvFormat,
) {
    let mut scale = 1.0f32;
    let mut inv = 1.0f32;
    if comptime![format == KvFormat::Q8] {
        let amax = row_amax(row, head_dim);
        scale = amax / 127.0f32;
        inv = q8_inverse_step(amax);
    }
    #[unroll]
    for d in 0..head_dim {
        if comptime![format == KvFormat::Q8] {
            out[d] = f32::round(row[d] * inv) * scale;
        } else if comptime![format == KvFormat::F16] {
            out[d] = f16_to_f32(f32_to_f16(row[d]));
        } else {
            out[d] = row[d];
        }
    }
}

/// The largest magnitude in `row`: the q8 scale is `amax / 127`.
#[cube]
fn row_amax(row: &Array<f32>, #[comptime] head_dim: usize) -> f32 {
    let mut amax = 0.0f32;
    #[unroll]
    for d in 0..head_dim {
        let a = f32::abs(row[d]);
        if a > amax {
            amax = a;
        }
    }
    amax
}

/// `127 / amax`, what a value is multiplied by before rounding (0 for a row of zeros).
#[cube]
fn q8_inverse_step(amax: f32) -> f32 {
    let mut inv = 0.0f32;
    if amax > 0.0f32 {
        inv = 127.0f32 / amax;
    }
    inv
}
