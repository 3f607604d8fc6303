//! CubeCL kernels over GGUF blocks in the device layout of [`super::layout`] (every load an
//! aligned `vec4<u32>`), compiled to WGSL for WebGPU/Vulkan.
//!
//! The blocks themselves are decoded in [`super::blocks`].
//!
//! A row of a weight matrix is `layout::row_blocks` consecutive blocks: block `i` of a
//! chunk is row `i / row_blocks`'s; blocks are found through their superblock.

use cubecl::prelude::*;

use super::blocks::{
    block_run_quants, chunk_len, factors, has_min, natural_quants, natural_values,
};
use super::layout::{row_blocks, superblock_blocks};
use crate::gguf::GgmlType;

/// Four words, loaded together: the unit of every weight load.
pub type U32x4 = Vector<u32, Const<4>>;

/// Whether [`group_values`] decodes `format`: every [`GgmlType`], by an exhaustive match, so a
/// format added to the reader does not compile until the kernels decode it.
pub fn decodes(format: GgmlType) -> bool {
    use GgmlType::*;
    match format {
        F32 | F16 | BF16 | Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q4_K | Q5_K | Q6_K => true,
    }
}

/// Four f32 values, loaded together.
pub type F32x4 = Vector<f32, Const<4>>;

/// `xs[at + i] = x[xi + 32s + i]`, i < 32: the input values of sub-block `s`, each times the
/// RMSNorm weight `nw[32s + i]` when `normed` (`xi` and the tensors counted in fours). Loaded
/// once, four at a time, and shared by every row a unit computes: on a software GPU each load
/// is a loop over the SIMD lanes, so loads are what a dot product pays for.
#[cube]
pub fn load_subblock_x<A: Float>(
    x: &Tensor<F32x4>,
    xi: usize,
    nw: &Tensor<F32x4>,
    s: usize,
    xs: &mut Array<A>,
    #[comptime] at: usize,
    #[comptime] normed: bool,
) {
    let from = s * 8;
    #[unroll]
    for k in 0..8usize {
        let mut v = x[xi + from + k];
        if comptime![normed] {
            v *= nw[from + k];
        }
        #[unroll]
        for c in 0..4usize {
            xs[comptime![at + 4 * k + c]] = A::cast_from(v.extract(c));
        }
    }
}

/// `xs[at + 32c + i]`, c < `group`, i < 32: the input values of group `g`'s sub-blocks, each as
/// [`load_subblock_x`] loads it.
#[cube]
#[allow(clippy::too_many_arguments)]
pub fn load_group_x<A: Float>(
    x: &Tensor<F32x4>,
    xi: usize,
    nw: &Tensor<F32x4>,
    g: usize,
    xs: &mut Array<A>,
    #[comptime] at: usize,
    #[comptime] group: usize,
    #[comptime] normed: bool,
) {
    #[unroll]
    for c in 0..group {
        load_subblock_x(x, xi, nw, g * group + c, xs, comptime![at + 32 * c], normed);
    }
}

/// Sub-blocks of 32 elements that share block bytes (the nibbles of a Q4_K/Q5_K byte belong to
/// two sub-blocks, the bytes of a Q6_K half to four): a dot product steps over them together so
/// each byte is loaded once.
pub fn natural_group(format: GgmlType) -> usize {
    match format {
        GgmlType::Q4_K | GgmlType::Q5_K => 2,
        GgmlType::Q6_K => 4,
        _ => 1,
    }
}

/// `out[i] = W[row][32·group·g + i]`, i < 32·group: `group` consecutive sub-blocks (a multiple
/// of the format's [`natural_group`]) of the row whose first block is block `first` of the
/// chunk, dequantized.
#[cube]
pub fn group_values<A: Float>(
    w: &Tensor<U32x4>,
    first: usize,
    g: usize,
    out: &mut Array<A>,
    #[comptime] group: usize,
    #[comptime] format: GgmlType,
) {
    let n = comptime![natural_group(format)];
    let per = comptime![group / natural_group(format)];
    #[unroll]
    for c in 0..per {
        natural_values(w, first, g * per + c, out, comptime![32 * n * c], format);
    }
}

/// Chunks of [`chunk_len`] elements in a group of `group` sub-blocks of `format`.
pub fn group_chunks(format: GgmlType, group: usize) -> usize {
    32 * group / chunk_len(format)
}

/// Sub-blocks a dot product takes at a time in `format` over rows of `cols` elements: the
/// format's [`natural_group`], or for the 32-element quantized formats up to four blocks of one
/// superblock (a whole number of such groups in a row, so none leaves its superblock), whose
/// scales [`group_quants`] then loads once.
pub fn dot_group(format: GgmlType, cols: usize) -> usize {
    let natural = natural_group(format);
    if natural > 1 || !factors(format) {
        return natural;
    }
    let blocks = row_blocks(format, cols);
    [4, 2]
        .into_iter()
        .find(|&g| blocks.is_multiple_of(g) && superblock_blocks(format).is_multiple_of(g))
        .unwrap_or(1)
}

/// [`group_values`] as integers and chunk scales, for a format that `factors`: `q[i]` the
/// group's integers, `scales[2c]`, `scales[2c + 1]` chunk `c`'s `d` and `m`
/// ([`natural_quants`]). `runs`: the group is one of [`dot_group`]'s, its blocks in one
/// superblock.
#[cube]
#[allow(clippy::too_many_arguments)]
pub fn group_quants<A: Float>(
    w: &Tensor<U32x4>,
    first: usize,
    g: usize,
    q: &mut Array<A>,
    scales: &mut Array<f32>,
    #[comptime] group: usize,
    #[comptime] runs: bool,
    #[comptime] format: GgmlType,
) {
    let n = comptime![natural_group(format)];
    let per = comptime![group / natural_group(format)];
    if comptime![runs && n == 1] {
        block_run_quants(w, first, g, q, scales, 0usize, 0usize, group, format);
    } else {
        #[unroll]
        for c in 0..per {
            natural_quants(
                w,
                first,
                g * per + c,
                q,
                scales,
                comptime![32 * n * c],
                comptime![2 * group_chunks(format, natural_group(format)) * c],
                format,
            );
        }
    }
}

/// `sums[at_sums + c] = Σ_i xs[at + chunk·c + i]`, i < `chunk`, c < `chunks`: the input's sum
/// over each chunk, for the minimum's term of [`factored_dot`].
#[cube]
pub fn chunk_sums<A: Float>(
    xs: &Array<A>,
    sums: &mut Array<A>,
    #[comptime] at: usize,
    #[comptime] at_sums: usize,
    #[comptime] chunk: usize,
    #[comptime] chunks: usize,
) {
    #[unroll]
    for c in 0..chunks {
        let mut sum = A::new(0.0);
        #[unroll]
        for i in 0..chunk {
            sum += xs[comptime![at + chunk * c + i]];
        }
        sums[comptime![at_sums + c]] = sum;
    }
}

/// `Σ_c d_c · Σ_i xs[at + chunk·c + i] · q[chunk·c + i] (+ m_c · sums[at_sums + c])`: a group
/// of [`group_quants`] (its integers `q` and chunk scales) against one token's inputs `xs`,
/// each chunk's integer dot scaled once — one multiply an element fewer than dequantizing, and
/// equal to the dequantized product up to rounding. `sums` ([`chunk_sums`]) is read only in a
/// format with a minimum.
#[cube]
#[allow(clippy::too_many_arguments)]
pub fn factored_dot<A: Float>(
    xs: &Array<A>,
    q: &Array<A>,
    scales: &Array<f32>,
    sums: &Array<A>,
    #[comptime] at: usize,
    #[comptime] at_sums: usize,
    #[comptime] group: usize,
    #[comptime] format: GgmlType,
) -> f32 {
    let chunk = comptime![chunk_len(format)];
    let mut total = 0.0f32;
    #[unroll]
    for c in 0..comptime![group_chunks(format, group)] {
        let mut dot = A::new(0.0);
        #[unroll]
        for i in 0..chunk {
            dot += xs[comptime![at + chunk * c + i]] * q[comptime![chunk * c + i]];
        }
        total += scales[comptime![2 * c]] * f32::cast_from(dot);
        if comptime![has_min(format)] {
            total += scales[comptime![2 * c + 1]] * f32::cast_from(sums[comptime![at_sums + c]]);
        }
    }
    total
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
