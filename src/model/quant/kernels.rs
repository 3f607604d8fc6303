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

#[cube]
fn byte(w: &Tensor<u32>, at: usize) -> u32 {
    (w[at / 4] >> (((at % 4) * 8) as u32)) & 0xFF
}

#[cube]
fn u16_at(w: &Tensor<u32>, at: usize) -> u32 {
    byte(w, at) | (byte(w, at + 1) << 8)
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

/// Element `k` of the row whose blocks start at byte `base`, in format `format`.
#[cube]
pub fn element(w: &Tensor<u32>, base: usize, k: usize, #[comptime] format: u32) -> f32 {
    let mut y = 0.0f32;
    if comptime![format == F32] {
        let at = base + k * 4;
        y = f32::reinterpret(u16_at(w, at) | (u16_at(w, at + 2) << 16));
    } else if comptime![format == F16] {
        y = f16_to_f32(u16_at(w, base + k * 2));
    } else if comptime![format == BF16] {
        y = f32::reinterpret(u16_at(w, base + k * 2) << 16);
    } else if comptime![format == Q8_0] {
        let at = base + (k / 32) * 34;
        let d = f16_to_f32(u16_at(w, at));
        y = f32::cast_from(i8_at(w, at + 2 + k % 32)) * d;
    } else if comptime![format == Q4_0] {
        let at = base + (k / 32) * 18;
        let i = k % 32;
        let d = f16_to_f32(u16_at(w, at));
        let q = byte(w, at + 2 + i % 16) >> (((i / 16) * 4) as u32);
        y = f32::cast_from((q & 0xF) as i32 - 8) * d;
    } else if comptime![format == Q4_1] {
        let at = base + (k / 32) * 20;
        let i = k % 32;
        let d = f16_to_f32(u16_at(w, at));
        let m = f16_to_f32(u16_at(w, at + 2));
        let q = byte(w, at + 4 + i % 16) >> (((i / 16) * 4) as u32);
        y = f32::cast_from(q & 0xF) * d + m;
    } else if comptime![format == Q5_0 || format == Q5_1] {
        let has_min = comptime![format == Q5_1];
        let block_bytes = comptime![if format == Q5_1 { 24usize } else { 22usize }];
        let header = comptime![if format == Q5_1 { 4usize } else { 2usize }];
        let at = base + (k / 32) * block_bytes;
        let i = k % 32;
        let j = i % 16;
        let d = f16_to_f32(u16_at(w, at));
        let qh = u16_at(w, at + header) | (u16_at(w, at + header + 2) << 16);
        let nibble = (byte(w, at + header + 4 + j) >> (((i / 16) * 4) as u32)) & 0xF;
        let high = ((qh >> (i as u32)) << 4) & 0x10;
        if has_min {
            let m = f16_to_f32(u16_at(w, at + 2));
            y = f32::cast_from(nibble | high) * d + m;
        } else {
            y = f32::cast_from((nibble | high) as i32 - 16) * d;
        }
    } else if comptime![format == Q4_K || format == Q5_K] {
        let is_q5 = comptime![format == Q5_K];
        let block_bytes = comptime![if format == Q5_K { 176usize } else { 144usize }];
        let at = base + (k / 256) * block_bytes;
        let i = k % 256;
        let d = f16_to_f32(u16_at(w, at));
        let dmin = f16_to_f32(u16_at(w, at + 2));
        let sub = i / 32; // sub-block: its scale and min
        let d1 = d * f32::cast_from(scale_k4(w, at + 4, sub));
        let m1 = dmin * f32::cast_from(min_k4(w, at + 4, sub));
        let chunk = i / 64; // 32 bytes of nibbles per 64 elements
        let l = i % 32;
        let qs = comptime![if format == Q5_K { 48usize } else { 16usize }];
        let mut q = (byte(w, at + qs + chunk * 32 + l) >> (((sub % 2) * 4) as u32)) & 0xF;
        if is_q5 {
            let high = (byte(w, at + 16 + l) >> (sub as u32)) & 1;
            q += high * 16;
        }
        y = d1 * f32::cast_from(q) - m1;
    } else if comptime![format == Q6_K] {
        let at = base + (k / 256) * 210;
        let i = k % 256;
        let half = i / 128; // ql advances 64 bytes, qh 32, scales 8 per half
        let r = i % 128;
        let quarter = r / 32; // which of the four 32-element groups
        let l = r % 32;
        let ql_at = at + half * 64 + l + (quarter % 2) * 32;
        let ql = (byte(w, ql_at) >> (((quarter / 2) * 4) as u32)) & 0xF;
        let qh = (byte(w, at + 128 + half * 32 + l) >> ((quarter * 2) as u32)) & 3;
        let q = (ql | (qh << 4)) as i32 - 32;
        let sc = i8_at(w, at + 192 + half * 8 + l / 16 + quarter * 2);
        let d = f16_to_f32(u16_at(w, at + 208));
        y = d * f32::cast_from(sc) * f32::cast_from(q);
    }
    y
}

/// `out[t, r] = Σ_k x[t, k] · W[r, k]` for `rows` rows of `row_bytes` bytes: one unit per
/// output element (unit x: row, cube y: token).
#[cube(launch)]
pub fn matmul_kernel(
    x: &Tensor<f32>,
    w: &Tensor<u32>,
    out: &mut Tensor<f32>,
    rows: usize,
    cols: usize,
    row_bytes: usize,
    #[comptime] format: u32,
) {
    let row = ABSOLUTE_POS_X as usize;
    let t = CUBE_POS_Y as usize;
    if row >= rows {
        terminate!();
    }
    let base = row * row_bytes;
    let mut acc = 0.0f32;
    for k in 0..cols {
        acc += x[t * cols + k] * element(w, base, k, format);
    }
    out[t * rows + row] = acc;
}
