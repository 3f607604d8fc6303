//! The dot products of the cooperative tile (hardware GPUs) for several tokens: 32 lanes share
//! one row, each lane taking every 32nd group of sub-blocks (for one token the lanes share up to
//! 4 rows instead, through `rows_tile`). With one row a unit there
//! is nothing to share an input load with, so the order is the other way round from the
//! software GPU's tile: each group is dequantized once, then each token's inputs are loaded and
//! dotted with it straight away. A lane then holds one group's weights and one token's inputs
//! (64–256 floats) instead of every token's (up to 1,024 for Q6_K over 8 tokens), which a GPU
//! keeps in registers rather than spilling to memory.

use cubecl::prelude::*;

use crate::gguf::GgmlType;
use crate::model::quant::blocks::{factors, has_min};
use crate::model::quant::kernels::{
    F32x4, U32x4, chunk_sums, factored_dot, group_chunks, group_quants, group_values, load_group_x,
};

use super::kernels::Tile;

/// Adds to `acc[slot + t]` the dot products of one row of `w` (its first block at `first`,
/// format `f`) with tokens `t` of the tile, over the groups `lane, lane + lanes, …` of `group`
/// sub-blocks. Blocks of a format that [`factors`] are dotted as integers and scaled once a
/// chunk, `d·Σq·x + m·Σx`, as the software GPU's tile does — but not for several tokens in a
/// format with a minimum, where each token's `Σx` would cost more than dequantizing once.
#[cube]
#[allow(clippy::too_many_arguments)]
pub fn shared_row_dots<A: Float>(
    w: &Tensor<U32x4>,
    first: usize,
    x: &Tensor<F32x4>,
    token_rows: &Array<usize>,
    nw: &Tensor<F32x4>,
    cols: usize,
    lane: usize,
    acc: &mut Array<f32>,
    #[comptime] slot: usize,
    #[comptime] tile: Tile,
    #[comptime] normed: bool,
    #[comptime] group: usize,
    #[comptime] runs: bool,
    #[comptime] f: GgmlType,
) {
    let width = comptime![32 * group];
    let chunks = comptime![group_chunks(f, group)];
    let factored = comptime![tile.integer_dots && factors(f) && (tile.tokens == 1 || !has_min(f))];
    let mut xs = Array::<A>::new(comptime![32 * group]);
    let mut wv = Array::<A>::new(comptime![32 * group]);
    let mut scales = Array::<f32>::new(comptime![2 * group_chunks(f, group)]);
    let mut sums = Array::<A>::new(comptime![group_chunks(f, group)]);
    let mut g = lane;
    while g < cols / width {
        if comptime![factored] {
            group_quants(w, first, g, &mut wv, &mut scales, group, runs, f);
        } else {
            group_values(w, first, g, &mut wv, group, f);
        }
        #[unroll]
        for t in 0..comptime![tile.tokens as usize] {
            load_group_x(x, token_rows[t], nw, g, &mut xs, 0usize, group, normed);
            if comptime![factored] {
                if comptime![has_min(f)] {
                    chunk_sums(
                        &xs,
                        &mut sums,
                        0usize,
                        0usize,
                        comptime![width / chunks],
                        chunks,
                    );
                }
                acc[comptime![slot + t]] +=
                    factored_dot(&xs, &wv, &scales, &sums, 0usize, 0usize, group, f);
            } else {
                let mut sum = A::new(0.0);
                #[unroll]
                for i in 0..width {
                    sum += xs[i] * wv[i];
                }
                acc[comptime![slot + t]] += f32::cast_from(sum);
            }
        }
        g += comptime![tile.lanes as usize];
    }
}
