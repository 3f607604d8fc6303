//! The software GPU's tile (one lane a row): a unit takes up to 16 whole rows for up to 8
//! tokens, loading each token's inputs once for all its rows and dequantizing each group of
//! sub-blocks once for all its tokens — on a software GPU loads are what a dot product pays for.
//! The hardware GPU's GEMV for one token is the same tile with several lanes a row, each lane
//! taking every `lanes`-th group of the unit's rows: an input value loaded from the cache
//! once for up to 4 rows instead of once a row.

use cubecl::prelude::*;

use crate::gguf::GgmlType;
use crate::model::quant::blocks::{chunk_len, factors, has_min};
use crate::model::quant::kernels::{
    F32x4, U32x4, chunk_sums, factored_dot, group_chunks, group_quants, group_values, load_group_x,
};

use super::kernels::Tile;

/// `tile_dot` for whole rows, over the groups `lane, lane + lanes, …` of each (one lane a row
/// on software GPUs): each token's inputs loaded once for all the unit's rows, each group
/// dequantized once for all the tokens (and, in a format that [`factors`], each token's `Σx`
/// taken once a block for all the rows).
#[cube]
#[allow(clippy::too_many_arguments)]
pub fn rows_tile_dot<A: Float>(
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
    lane: usize,
    acc: &mut Array<f32>,
    #[comptime] tile: Tile,
    #[comptime] normed: bool,
    #[comptime] paired: bool,
    #[comptime] fa: GgmlType,
    #[comptime] fb: GgmlType,
    #[comptime] group: usize,
    #[comptime] runs_a: bool,
    #[comptime] runs_b: bool,
) {
    let rows = comptime![tile.rows as usize];
    let tokens = comptime![tile.tokens as usize];
    let width = comptime![32 * group];
    let mut xs = Array::<A>::new(comptime![32 * group * tile.tokens as usize]);
    let mut wv = Array::<A>::new(comptime![32 * group]);
    // Factored when both matrices are quantized with chunks of one length (gate and up are),
    // in f32 arithmetic.
    let factored = comptime![
        tile.integer_dots
            && factors(fa)
            && (!paired || (factors(fb) && chunk_len(fa) == chunk_len(fb)))
    ];
    let chunk = comptime![chunk_len(fa)];
    let chunks = comptime![group_chunks(fa, group)];
    let summed = comptime![factored && (has_min(fa) || (paired && has_min(fb)))];
    let mut sx = Array::<A>::new(comptime![group_chunks(fa, group) * tile.tokens as usize]);
    let mut scales = Array::<f32>::new(comptime![2 * group_chunks(fa, group)]);
    let mut g = lane;
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
        if comptime![summed] {
            // Each token's Σx over each chunk, for the minimum's term.
            #[unroll]
            for t in 0..tokens {
                chunk_sums(
                    &xs,
                    &mut sx,
                    comptime![width * t],
                    comptime![chunks * t],
                    chunk,
                    chunks,
                );
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
                group_quants(
                    a,
                    row * a_row_blocks,
                    g,
                    &mut wv,
                    &mut scales,
                    group,
                    runs_a,
                    fa,
                );
                add_factored_dots(&xs, &wv, &scales, &sx, acc, r, 0usize, tile, group, fa);
                if comptime![paired] {
                    group_quants(
                        b,
                        row * b_row_blocks,
                        g,
                        &mut wv,
                        &mut scales,
                        group,
                        runs_b,
                        fb,
                    );
                    add_factored_dots(&xs, &wv, &scales, &sx, acc, r, tokens, tile, group, fb);
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
        g += comptime![tile.lanes as usize];
    }
}

/// `Σ_i xs[width · t + i] · v[i]`, i < `width`: token `t`'s input values against a group's.
#[cube]
fn token_dot<A: Float>(
    xs: &Array<A>,
    v: &Array<A>,
    #[comptime] t: usize,
    #[comptime] width: usize,
) -> A {
    let mut dot = A::new(0.0);
    #[unroll]
    for i in 0..width {
        dot += xs[comptime![width * t + i]] * v[i];
    }
    dot
}

/// `acc[(slot + t) · rows + r] += Σ_i xs[width · t + i] · wv[i]` for every token `t` of the tile:
/// one dequantized group of row `r` against each token's input values.
#[cube]
fn add_token_dots<A: Float>(
    xs: &Array<A>,
    wv: &Array<A>,
    acc: &mut Array<f32>,
    r: usize,
    #[comptime] slot: usize,
    #[comptime] tile: Tile,
    #[comptime] width: usize,
) {
    let rows = comptime![tile.rows as usize];
    #[unroll]
    for t in 0..comptime![tile.tokens as usize] {
        acc[(slot + t) * rows + r] += f32::cast_from(token_dot(xs, wv, t, width));
    }
}

/// `acc[(slot + t) · rows + r] += factored_dot(…)` for every token `t` of the tile: one group
/// of row `r` as integers and chunk scales (`q`, `scales`) against each token's input values
/// and their chunk sums `sx`.
#[cube]
#[allow(clippy::too_many_arguments)]
fn add_factored_dots<A: Float>(
    xs: &Array<A>,
    q: &Array<A>,
    scales: &Array<f32>,
    sx: &Array<A>,
    acc: &mut Array<f32>,
    r: usize,
    #[comptime] slot: usize,
    #[comptime] tile: Tile,
    #[comptime] group: usize,
    #[comptime] format: GgmlType,
) {
    let rows = comptime![tile.rows as usize];
    let chunks = comptime![group_chunks(format, group)];
    #[unroll]
    for t in 0..comptime![tile.tokens as usize] {
        acc[(slot + t) * rows + r] += factored_dot(
            xs,
            q,
            scales,
            sx,
            comptime![32 * group * t],
            comptime![chunks * t],
            group,
            format,
        );
    }
}
