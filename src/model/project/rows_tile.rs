//! The software GPU's tile (one lane a row): a unit takes up to 16 whole rows for up to 8
//! tokens, loading each token's inputs once for all its rows and dequantizing each group of
//! sub-blocks once for all its tokens — on a software GPU loads are what a dot product pays for.

use cubecl::prelude::*;

use crate::gguf::GgmlType;
use crate::model::quant::blocks::{block_quants, factors};
use crate::model::quant::kernels::{F32x4, U32x4, group_values, load_group_x};

use super::kernels::Tile;

/// `tile_dot` for one lane a row (software GPUs): each token's inputs loaded once for all
/// the unit's rows, each group dequantized once for all the tokens (and, in a format that
/// [`factors`], each token's `Σx` taken once a block for all the rows).
#[cube]
#[allow(clippy::too_many_arguments)]
pub fn rows_tile_dot(
    a: &Tensor<U32x4>,
    a_row_blocks: usize,
    b: &Tensor<U32x4>,
    b_row_blocks: usize,
    row0: usize,
    last: usize,
    x: &Tensor<F32x4>,
    token_rows: &Array<usize>,
    nw: &Tensor<F32x4>,
    cols: usize,
    acc: &mut Array<f32>,
    #[comptime] tile: Tile,
    #[comptime] normed: bool,
    #[comptime] paired: bool,
    #[comptime] fa: GgmlType,
    #[comptime] fb: GgmlType,
    #[comptime] group: usize,
) {
    let rows = comptime![tile.rows as usize];
    let tokens = comptime![tile.tokens as usize];
    let width = comptime![32 * group];
    let mut xs = Array::<f32>::new(comptime![32 * group * tile.tokens as usize]);
    let mut wv = Array::<f32>::new(comptime![32 * group]);
    let factored = comptime![factors(fa) && (!paired || factors(fb))];
    let mut sx = Array::<f32>::new(comptime![tile.tokens as usize]);
    let mut scale = Array::<f32>::new(2usize);
    let mut g = 0usize;
    while g < cols / width {
        #[unroll]
        for t in 0..tokens {
            load_group_x(
                x,
                token_rows[t],
                nw,
                g,
                &mut xs,
                comptime![width * t],
                group,
                normed,
            );
        }
        if comptime![factored] {
            // Each token's Σx over the block, for the minimum's term.
            #[unroll]
            for t in 0..tokens {
                let mut sum = 0.0f32;
                #[unroll]
                for i in 0..32usize {
                    sum += xs[comptime![32 * t + i]];
                }
                sx[t] = sum;
            }
        }
        // Not unrolled: one copy of the dequantization per kernel. Unrolled per row it doubled
        // the compile time (SwiftShader's warm-up 25 s → 13 s) for no speed on lavapipe.
        for r in 0..rows {
            let mut row = row0 + r;
            if row > last {
                row = last;
            }
            if comptime![factored] {
                block_quants(a, row * a_row_blocks, g, &mut wv, &mut scale, fa);
                add_scaled_dots(&xs, &wv, &sx, &scale, acc, r, 0usize, tile);
                if comptime![paired] {
                    block_quants(b, row * b_row_blocks, g, &mut wv, &mut scale, fb);
                    add_scaled_dots(&xs, &wv, &sx, &scale, acc, r, tokens, tile);
                }
            } else {
                group_values(a, row * a_row_blocks, g, &mut wv, group, fa);
                add_token_dots(&xs, &wv, acc, r, 0usize, tile, width);
                if comptime![paired] {
                    group_values(b, row * b_row_blocks, g, &mut wv, group, fb);
                    add_token_dots(&xs, &wv, acc, r, tokens, tile, width);
                }
            }
        }
        g += 1usize;
    }
}

/// `Σ_i xs[width · t + i] · v[i]`, i < `width`: token `t`'s input values against a group's.
#[cube]
fn token_dot(
    xs: &Array<f32>,
    v: &Array<f32>,
    #[comptime] t: usize,
    #[comptime] width: usize,
) -> f32 {
    let mut dot = 0.0f32;
    #[unroll]
    for i in 0..width {
        dot += xs[comptime![width * t + i]] * v[i];
    }
    dot
}

/// `acc[(slot + t) · rows + r] += Σ_i xs[width · t + i] · wv[i]` for every token `t` of the tile:
/// one dequantized group of row `r` against each token's input values.
#[cube]
fn add_token_dots(
    xs: &Array<f32>,
    wv: &Array<f32>,
    acc: &mut Array<f32>,
    r: usize,
    #[comptime] slot: usize,
    #[comptime] tile: Tile,
    #[comptime] width: usize,
) {
    let rows = comptime![tile.rows as usize];
    #[unroll]
    for t in 0..comptime![tile.tokens as usize] {
        acc[(slot + t) * rows + r] += token_dot(xs, wv, t, width);
    }
}

/// `acc[(slot + t) · rows + r] += d · Σ_i xs[32t + i] · q[i] + m · sx[t]` for every token `t`
/// of the tile: one block of row `r` in a format that [`factors`] (`q` its integers, `scale`
/// its `d` and `m`) against each token's input values and their sum.
#[cube]
#[allow(clippy::too_many_arguments)]
fn add_scaled_dots(
    xs: &Array<f32>,
    q: &Array<f32>,
    sx: &Array<f32>,
    scale: &Array<f32>,
    acc: &mut Array<f32>,
    r: usize,
    #[comptime] slot: usize,
    #[comptime] tile: Tile,
) {
    let rows = comptime![tile.rows as usize];
    #[unroll]
    for t in 0..comptime![tile.tokens as usize] {
        acc[(slot + t) * rows + r] += scale[0] * token_dot(xs, q, t, 32usize) + scale[1] * sx[t];
    }
}
