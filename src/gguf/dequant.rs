//! Reference CPU dequantizers: GGUF block formats to f32, bit-identical to ggml (and to
//! gguf-py's `gguf.quants.dequantize`, which the tests compare against).
//!
//! These are the ground truth for the GPU kernels, so they mirror ggml's
//! `dequantize_row_*` (ggml-quants.c) operation by operation, in f32, in the same order:
//! a reordered product rounds differently.

use super::error::GgufError;
use super::tensor::GgmlType;

/// Elements in a K-quant super-block.
const QK_K: usize = 256;

/// Dequantizes `bytes` of type `ggml_type` into `out`; `out.len()` must be a whole number of
/// blocks and `bytes` exactly as long as those blocks.
pub fn dequantize_into(
    ggml_type: GgmlType,
    bytes: &[u8],
    out: &mut [f32],
) -> Result<(), GgufError> {
    let block_elems = ggml_type.block_elements() as usize;
    let block_bytes = ggml_type.block_bytes() as usize;
    if !out.len().is_multiple_of(block_elems)
        || bytes.len() != out.len() / block_elems * block_bytes
    {
        return Err(GgufError::BadTensor {
            name: format!("{ggml_type} data"),
            detail: format!(
                "{} bytes cannot hold {} elements ({block_bytes} bytes per {block_elems})",
                bytes.len(),
                out.len()
            ),
        });
    }
    let blocks = bytes
        .chunks_exact(block_bytes)
        .zip(out.chunks_exact_mut(block_elems));
    match ggml_type {
        GgmlType::F32 => {
            blocks.for_each(|(b, y)| y[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        }
        GgmlType::F16 => {
            blocks.for_each(|(b, y)| y[0] = f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
        }
        GgmlType::BF16 => {
            blocks.for_each(|(b, y)| y[0] = bf16_to_f32(u16::from_le_bytes([b[0], b[1]])))
        }
        GgmlType::Q4_0 => blocks.for_each(|(b, y)| q4_0(b, y)),
        GgmlType::Q4_1 => blocks.for_each(|(b, y)| q4_1(b, y)),
        GgmlType::Q5_0 => blocks.for_each(|(b, y)| q5_0(b, y)),
        GgmlType::Q5_1 => blocks.for_each(|(b, y)| q5_1(b, y)),
        GgmlType::Q8_0 => blocks.for_each(|(b, y)| q8_0(b, y)),
        GgmlType::Q4_K => blocks.for_each(|(b, y)| q4_k(b, y)),
        GgmlType::Q5_K => blocks.for_each(|(b, y)| q5_k(b, y)),
        GgmlType::Q6_K => blocks.for_each(|(b, y)| q6_k(b, y)),
    }
    Ok(())
}

/// Dequantizes a whole buffer of `n_elements` values.
pub fn dequantize(
    ggml_type: GgmlType,
    bytes: &[u8],
    n_elements: usize,
) -> Result<Vec<f32>, GgufError> {
    let mut out = vec![0.0; n_elements];
    dequantize_into(ggml_type, bytes, &mut out)?;
    Ok(out)
}

/// IEEE half to f32, exactly (every half is representable), from the bits: the GPU kernels
/// decode scales the same way on adapters without shader-f16.
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let mant = (h & 0x3ff) as u32;
    let bits = match (exp, mant) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: value = m * 2^-24; normalise it for f32.
            let shift = m.leading_zeros() - 21; // bring the top set bit to bit 10
            let m = (m << shift) & 0x3ff;
            let e = 127 - 15 + 1 - shift;
            sign | (e << 23) | (m << 13)
        }
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

/// bfloat16 to f32: the top half of an f32.
pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

fn f16_at(b: &[u8], at: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[at], b[at + 1]]))
}

/// Q4_0: d, then 16 bytes; element j < 16 is the low nibble of byte j, j ≥ 16 the high nibble
/// of byte j - 16; value d · (q - 8).
fn q4_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for (j, &q) in b[2..18].iter().enumerate() {
        y[j] = ((q & 0x0f) as i32 - 8) as f32 * d;
        y[j + 16] = ((q >> 4) as i32 - 8) as f32 * d;
    }
}

/// Q4_1: d, m, 16 bytes of nibbles as Q4_0; value d · q + m.
fn q4_1(b: &[u8], y: &mut [f32]) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    for (j, &q) in b[4..20].iter().enumerate() {
        y[j] = (q & 0x0f) as f32 * d + m;
        y[j + 16] = (q >> 4) as f32 * d + m;
    }
}

/// Q5_0: d, 32 high bits (bit j for element j), 16 bytes of low nibbles; value d · (q - 16).
fn q5_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    for (j, &q) in b[6..22].iter().enumerate() {
        let lo = (q & 0x0f) as u32 | ((qh >> j) & 1) << 4;
        let hi = (q >> 4) as u32 | ((qh >> (j + 16)) & 1) << 4;
        y[j] = (lo as i32 - 16) as f32 * d;
        y[j + 16] = (hi as i32 - 16) as f32 * d;
    }
}

/// Q5_1: d, m, 32 high bits, 16 bytes of low nibbles; value d · q + m.
fn q5_1(b: &[u8], y: &mut [f32]) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    for (j, &q) in b[8..24].iter().enumerate() {
        let lo = (q & 0x0f) as u32 | ((qh >> j) & 1) << 4;
        let hi = (q >> 4) as u32 | ((qh >> (j + 16)) & 1) << 4;
        y[j] = lo as f32 * d + m;
        y[j + 16] = hi as f32 * d + m;
    }
}

/// Q8_0: d, 32 signed bytes; value q · d.
fn q8_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for (j, &q) in b[2..34].iter().enumerate() {
        y[j] = (q as i8) as f32 * d;
    }
}

/// The 6-bit scale and min of sub-block `j` (0..8) from the 12 packed bytes of Q4_K/Q5_K
/// (ggml's `get_scale_min_k4`).
fn scale_min_k4(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

/// Q4_K: d, dmin, 12 bytes of scales/mins, 128 bytes of nibbles. Sub-blocks of 32 come in
/// pairs over 32 bytes: low nibbles first, then high; value (d·sc) · q - (dmin·m).
fn q4_k(b: &[u8], y: &mut [f32]) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let scales = &b[4..16];
    let qs = &b[16..144];
    for pair in 0..QK_K / 64 {
        let q = &qs[pair * 32..pair * 32 + 32];
        for (half, shift) in [(0, 0), (1, 4)] {
            let (sc, m) = scale_min_k4(2 * pair + half, scales);
            let (dl, ml) = (d * sc as f32, dmin * m as f32);
            let out = &mut y[pair * 64 + half * 32..pair * 64 + half * 32 + 32];
            for (l, o) in out.iter_mut().enumerate() {
                *o = dl * ((q[l] >> shift) & 0x0f) as f32 - ml;
            }
        }
    }
}

/// Q5_K: as Q4_K plus 32 bytes of high bits: bit `j` of byte `l` is the fifth bit of element
/// `l` of sub-block `j`.
fn q5_k(b: &[u8], y: &mut [f32]) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let scales = &b[4..16];
    let qh = &b[16..48];
    let qs = &b[48..176];
    for pair in 0..QK_K / 64 {
        let q = &qs[pair * 32..pair * 32 + 32];
        for (half, shift) in [(0, 0), (1, 4)] {
            let sub = 2 * pair + half;
            let (sc, m) = scale_min_k4(sub, scales);
            let (dl, ml) = (d * sc as f32, dmin * m as f32);
            let out = &mut y[sub * 32..sub * 32 + 32];
            for (l, o) in out.iter_mut().enumerate() {
                let v = ((q[l] >> shift) & 0x0f) | (((qh[l] >> sub) & 1) << 4);
                *o = dl * v as f32 - ml;
            }
        }
    }
}

/// Q6_K: 128 bytes of low nibbles, 64 bytes of high 2-bit pairs, 16 signed scales, d.
/// Element `e` of each 128-element half `h`: low nibble from byte `h·64 + e%64` (high nibble
/// when `e%128 ≥ 64`), high bits from byte `h·32 + e%32` at shift `2·((e%128)/32)`;
/// value (d·scale[e/16]) · (q - 32).
fn q6_k(b: &[u8], y: &mut [f32]) {
    let ql = &b[0..128];
    let qh = &b[128..192];
    let scales = &b[192..208];
    let d = f16_at(b, 208);
    for (e, o) in y.iter_mut().enumerate() {
        let (h, r) = (e / 128, e % 128);
        let lo = (ql[h * 64 + r % 64] >> (4 * (r / 64))) & 0x0f;
        let hi = (qh[h * 32 + r % 32] >> (2 * (r / 32))) & 0x03;
        let q = (lo | (hi << 4)) as i32 - 32;
        let dl = d * (scales[e / 16] as i8) as f32;
        *o = dl * q as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_special_values() {
        assert_eq!(f16_to_f32(0x0000).to_bits(), 0.0f32.to_bits());
        assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x03ff), 1023.0 * 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x0400), 2f32.powi(-14));
        assert!(f16_to_f32(0x7c00).is_infinite());
        assert!(f16_to_f32(0x7e00).is_nan());
    }

    #[test]
    fn wrong_lengths_are_typed_errors() {
        let mut out = vec![0.0; 32];
        assert!(dequantize_into(GgmlType::Q8_0, &[0; 33], &mut out).is_err());
        let mut out = vec![0.0; 31];
        assert!(dequantize_into(GgmlType::Q8_0, &[0; 34], &mut out).is_err());
        let mut out = vec![0.0; 32];
        assert!(dequantize_into(GgmlType::Q8_0, &[0; 34], &mut out).is_ok());
    }
}
