//! CubeCL kernels over GGUF blocks as the file stores them (uploaded as little-endian u32
//! words), compiled to WGSL for WebGPU/Vulkan.
//!
//! Every scale is decoded from its f16 bits with integer operations, so nothing needs the
//! `shader-f16` feature (SwiftShader has none). Each element decoder mirrors the host reference
//! in `gguf::dequant` operation by operation, so dequantization is bit-identical to ggml's.
//!
//! A row of a weight matrix is `cols / block_elements` consecutive blocks starting at byte
//! `row * row_bytes`; blocks are not word-aligned (Q4_0 is 18 bytes), so bytes are read by
//! shifting words.

use cubecl::prelude::*;

/// The formats, as comptime codes (GGML type ids).
pub const F32: u32 = 0;
/// GGML F16.
pub const F16: u32 = 1;
/// GGML Q4_0.
pub const Q4_0: u32 = 2;
/// GGML Q4_1.
pub const Q4_1: u32 = 3;
/// GGML Q5_0.
pub const Q5_0: u32 = 6;
/// GGML Q5_1.
pub const Q5_1: u32 = 7;
/// GGML Q8_0.
pub const Q8_0: u32 = 8;
/// GGML Q4_K.
pub const Q4_K: u32 = 12;
/// GGML Q5_K.
pub const Q5_K: u32 = 13;
/// GGML Q6_K.
pub const Q6_K: u32 = 14;
/// GGML BF16.
pub const BF16: u32 = 30;

/// Bytes in one block of `format` (host-side, for comptime use).
pub fn block_bytes(format: u32) -> usize {
    match format {
        F32 => 4,
        F16 | BF16 => 2,
        Q8_0 => 34,
        Q4_0 => 18,
        Q4_1 => 20,
        Q5_0 => 22,
        Q5_1 => 24,
        Q4_K => 144,
        Q5_K => 176,
        _ => 210, // Q6_K
    }
}

#[cube]
fn byte(w: &Tensor<u32>, at: usize) -> u32 {
    (w[at / 4] >> (((at % 4) * 8) as u32)) & 0xFF
}

#[cube]
fn u16_at(w: &Tensor<u32>, at: usize) -> u32 {
    byte(w, at) | (byte(w, at + 1) << 8)
}

/// The 4 bytes starting at byte `at` (any alignment; blocks of 18 or 34 bytes are 2-aligned),
/// little-endian: one or two word loads instead of four byte loads.
#[cube]
fn word_at(w: &Tensor<u32>, at: usize) -> u32 {
    let i = at / 4;
    let shift = ((at % 4) * 8) as u32;
    let mut word = w[i];
    if shift != 0 {
        word = (word >> shift) | (w[i + 1] << (32 - shift));
    }
    word
}

/// A byte as a signed 8-bit value.
#[cube]
fn i8_at(w: &Tensor<u32>, at: usize) -> i32 {
    let b = byte(w, at) as i32;
    let mut v = b;
    if b >= 128 {
        v = b - 256;
    }
    v
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

/// The 6-bit scale of sub-block `j` of a Q4_K/Q5_K super-block (ggml's `get_scale_min_k4`);
/// `at` is the first of the 12 scale bytes.
#[cube]
fn scale_k4(w: &Tensor<u32>, at: usize, j: usize) -> u32 {
    if j < 4 {
        byte(w, at + j) & 63
    } else {
        (byte(w, at + j + 4) & 0xF) | ((byte(w, at + j - 4) >> 6) << 4)
    }
}

/// The 6-bit min of sub-block `j`, as [`scale_k4`].
#[cube]
fn min_k4(w: &Tensor<u32>, at: usize, j: usize) -> u32 {
    if j < 4 {
        byte(w, at + j + 4) & 63
    } else {
        (byte(w, at + j + 4) >> 4) | ((byte(w, at + j) >> 6) << 4)
    }
}

/// The float element at byte `at`, for the unblocked formats F32, F16 and BF16.
#[cube]
fn float_element(w: &Tensor<u32>, at: usize, #[comptime] format: u32) -> f32 {
    if comptime![format == F32] {
        f32::reinterpret(u16_at(w, at) | (u16_at(w, at + 2) << 16))
    } else if comptime![format == F16] {
        f16_to_f32(u16_at(w, at))
    } else {
        f32::reinterpret(u16_at(w, at) << 16)
    }
}

/// `x[xi]`, times the norm weight `nw[ni]` when `normed`.
#[cube]
fn xv(x: &Tensor<f32>, xi: usize, nw: &Tensor<f32>, ni: usize, #[comptime] normed: bool) -> f32 {
    let mut v = x[xi];
    if comptime![normed] {
        v *= nw[ni];
    }
    v
}

/// `Σ_i x[xi + i] · W[row][32s + i]`, i < 32: the dot product of sub-block `s` (32 elements)
/// of the row whose bytes start at `base` — with each `x` value first multiplied by the RMSNorm
/// weight `nw[32s + i]` when `normed`. Every format divides into such sub-blocks (a Q4_0 block,
/// an eighth of a K-quant super-block, 32 floats). Scales are decoded once per sub-block; each
/// element is computed with the operations, in the order, of the host reference
/// (`gguf::dequant`), so it is the same f32 value.
#[cube]
pub fn subblock_dot(
    w: &Tensor<u32>,
    base: usize,
    s: usize,
    x: &Tensor<f32>,
    xi: usize,
    nw: &Tensor<f32>,
    #[comptime] normed: bool,
    #[comptime] format: u32,
) -> f32 {
    let ni = s * 32;
    let mut acc = 0.0f32;
    if comptime![format == Q8_0] {
        let at = base + s * 34;
        let d = f16_to_f32(u16_at(w, at));
        for j in 0..8usize {
            let word = word_at(w, at + 2 + 4 * j);
            for b in 0..4usize {
                let q = ((word >> ((8 * b) as u32)) & 0xFF) as i32;
                let mut v = q;
                if q >= 128 {
                    v = q - 256;
                }
                let i = 4 * j + b;
                acc += xv(x, xi + i, nw, ni + i, normed) * (f32::cast_from(v) * d);
            }
        }
    } else if comptime![format == Q4_0] {
        let at = base + s * 18;
        let d = f16_to_f32(u16_at(w, at));
        for k in 0..4usize {
            let word = word_at(w, at + 2 + 4 * k);
            for b in 0..4usize {
                let q = (word >> ((8 * b) as u32)) & 0xFF;
                let j = 4 * k + b;
                acc +=
                    xv(x, xi + j, nw, ni + j, normed) * (f32::cast_from((q & 0xF) as i32 - 8) * d);
                acc += xv(x, xi + j + 16, nw, ni + j + 16, normed)
                    * (f32::cast_from((q >> 4) as i32 - 8) * d);
            }
        }
    } else if comptime![format == Q4_1] {
        let at = base + s * 20;
        let d = f16_to_f32(u16_at(w, at));
        let m = f16_to_f32(u16_at(w, at + 2));
        for k in 0..4usize {
            let word = word_at(w, at + 4 + 4 * k);
            for b in 0..4usize {
                let q = (word >> ((8 * b) as u32)) & 0xFF;
                let j = 4 * k + b;
                acc += xv(x, xi + j, nw, ni + j, normed) * (f32::cast_from(q & 0xF) * d + m);
                acc +=
                    xv(x, xi + j + 16, nw, ni + j + 16, normed) * (f32::cast_from(q >> 4) * d + m);
            }
        }
    } else if comptime![format == Q5_0 || format == Q5_1] {
        let has_min = comptime![format == Q5_1];
        let header = comptime![if format == Q5_1 { 4usize } else { 2usize }];
        let at = base + s * comptime![block_bytes(format)];
        let d = f16_to_f32(u16_at(w, at));
        let qh = u16_at(w, at + header) | (u16_at(w, at + header + 2) << 16);
        let mut m = 0.0f32;
        if has_min {
            m = f16_to_f32(u16_at(w, at + 2));
        }
        for j in 0..16usize {
            let q = byte(w, at + header + 4 + j);
            let lo = (q & 0xF) | (((qh >> (j as u32)) << 4) & 0x10);
            let hi = (q >> 4) | ((qh >> (j as u32 + 12)) & 0x10);
            if has_min {
                acc += xv(x, xi + j, nw, ni + j, normed) * (f32::cast_from(lo) * d + m);
                acc += xv(x, xi + j + 16, nw, ni + j + 16, normed) * (f32::cast_from(hi) * d + m);
            } else {
                acc += xv(x, xi + j, nw, ni + j, normed) * (f32::cast_from(lo as i32 - 16) * d);
                acc += xv(x, xi + j + 16, nw, ni + j + 16, normed)
                    * (f32::cast_from(hi as i32 - 16) * d);
            }
        }
    } else if comptime![format == Q4_K || format == Q5_K] {
        let is_q5 = comptime![format == Q5_K];
        let qs = comptime![if format == Q5_K { 48usize } else { 16usize }];
        let at = base + (s / 8) * comptime![block_bytes(format)];
        let sub = s % 8;
        let d = f16_to_f32(u16_at(w, at));
        let dmin = f16_to_f32(u16_at(w, at + 2));
        let d1 = d * f32::cast_from(scale_k4(w, at + 4, sub));
        let m1 = dmin * f32::cast_from(min_k4(w, at + 4, sub));
        let shift = ((sub % 2) * 4) as u32;
        let from = at + qs + (sub / 2) * 32;
        for k in 0..8usize {
            let word = word_at(w, from + 4 * k) >> shift;
            for b in 0..4usize {
                let l = 4 * k + b;
                let mut q = (word >> ((8 * b) as u32)) & 0xF;
                if is_q5 {
                    q += ((byte(w, at + 16 + l) >> (sub as u32)) & 1) * 16;
                }
                acc += xv(x, xi + l, nw, ni + l, normed) * (d1 * f32::cast_from(q) - m1);
            }
        }
    } else if comptime![format == Q6_K] {
        // Sub-block `s % 8` is elements e0 .. e0 + 32 of the super-block: its low nibbles are
        // 32 consecutive bytes (shifted by `lo_shift`), its high bits 32 consecutive bytes too.
        let at = base + (s / 8) * 210;
        let d = f16_to_f32(u16_at(w, at + 208));
        let e0 = (s % 8) * 32;
        let half = e0 / 128;
        let r0 = e0 % 128;
        let lo_at = at + half * 64 + r0 % 64;
        let hi_at = at + 128 + half * 32;
        let lo_shift = ((r0 / 64) * 4) as u32;
        let hi_shift = ((r0 / 32) * 2) as u32;
        for k in 0..8usize {
            let lo_word = word_at(w, lo_at + 4 * k) >> lo_shift;
            let hi_word = word_at(w, hi_at + 4 * k) >> hi_shift;
            let dl = d * f32::cast_from(i8_at(w, at + 192 + (e0 + 4 * k) / 16));
            for b in 0..4usize {
                let l = 4 * k + b;
                let lo = (lo_word >> ((8 * b) as u32)) & 0xF;
                let hi = (hi_word >> ((8 * b) as u32)) & 3;
                let q = (lo | (hi << 4)) as i32 - 32;
                acc += xv(x, xi + l, nw, ni + l, normed) * (dl * f32::cast_from(q));
            }
        }
    } else {
        // F32, F16, BF16: 32 consecutive values.
        let size = comptime![block_bytes(format)];
        for i in 0..32usize {
            acc += xv(x, xi + i, nw, ni + i, normed)
                * float_element(w, base + (s * 32 + i) * size, format);
        }
    }
    acc
}

/// The roofline probe: every unit reads `per_unit` words `units` apart (coalesced) and writes
/// their xor, so the whole buffer is streamed once and nothing can be optimised away.
#[cube(launch)]
pub fn stream_read_kernel(
    input: &Tensor<u32>,
    out: &mut Tensor<u32>,
    units: usize,
    per_unit: usize,
    salt: u32,
) {
    let unit = ABSOLUTE_POS_X as usize;
    if unit >= units {
        terminate!();
    }
    let mut acc = salt;
    for k in 0..per_unit {
        acc ^= input[unit + k * units];
    }
    out[unit] = acc;
}
