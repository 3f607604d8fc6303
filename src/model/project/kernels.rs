//! The fused projection kernel: one launch computes up to three matrices' rows for the same
//! input (q/k/v, or gate and up), with RMSNorm folded into the dot products and the
//! activation or residual add applied before the store.
//!
//! A cube is [`Tile::units`] units, each computing a [`Tile`]: with one lane a unit takes whole
//! rows for a few tokens (no barrier in the dot: software GPUs), with 32 lanes the lanes of a
//! row read neighbouring sub-blocks (coalesced: hardware GPUs) and then add up their partial
//! sums, one lane per output (`store`). Cube x walks the rows, cube y the tokens.
//!
//! RMSNorm: `W · (nw ⊙ x · r) = r · (W · (nw ⊙ x))` with `r = 1/√(mean(x²) + eps)`; the cube
//! sums `x²` cooperatively (one barrier), every cube over the same partition, so every row
//! gets the same `r` bit for bit — or, with [`Tile::solo_norm`], every unit alone in one order.

use cubecl::prelude::*;

use crate::gguf::GgmlType;
use crate::model::quant::kernels::{F32x4, U32x4, dot_group, natural_group};
use crate::model::quant::layout::row_blocks;

use super::rows_tile::rows_tile_dot;
use super::shared_row::shared_row_dots;
use super::store::store_tile;

/// Epilogue codes (comptime): store the dot product as it is.
pub const STORE: u32 = 0;
/// Add the residual stream's value before storing.
pub const ADD_RESIDUAL: u32 = 1;
/// Rows of part 0 (gate) and part 1 (up) pair up: store `silu(gate) · up`.
pub const SWIGLU: u32 = 2;

/// The tile a unit computes: `rows` consecutive rows (of each matrix, under SwiGLU) for
/// `tokens` consecutive tokens, with `lanes` units sharing each row's sub-blocks; and the
/// cube's size in units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tile {
    /// Units per cube (a multiple of `lanes`).
    pub units: u32,
    /// Units per row (1, or 32 for the cooperative GEMV).
    pub lanes: u32,
    /// Rows per unit.
    pub rows: u32,
    /// Tokens per unit.
    pub tokens: u32,
    /// With several lanes a row: their partial sums added with subgroup shuffles (the device
    /// has subgroups of at least `lanes`), not through workgroup memory.
    pub subgroup: bool,
    /// Whether the quantized formats' integers are dotted with the inputs and scaled once a
    /// chunk (`factored_dot`): in f32 arithmetic. In f16 every format is dequantized first —
    /// the integers' sums (`Σq·x`, q up to 127) outgrow f16's 65504 where the weights' own
    /// products do not (SmolLM2's logits turned NaN).
    pub integer_dots: bool,
    /// RMSNorm's `Σx²` summed by every unit alone over the whole row, not split across the
    /// cube and added up after a barrier: where a cube's units span several of the device's
    /// SIMD groups on a software GPU (SwiftShader's are 4 lanes wide), a barrier makes the
    /// whole shader a coroutine that switches between them — the projections took ~10 % longer
    /// with it in Chromium (BENCHMARKS.md, session 26). The sum's order is the same for every
    /// unit, so every row still gets the same `r` bit for bit.
    pub solo_norm: bool,
}

/// Adds to `acc[t · rows + r]` the dot products of rows `row0 + r` of `a` (rows of
/// `a_row_blocks` blocks in format `fa`) with tokens `t` of the tile, over the groups of
/// sub-blocks `lane, lane + lanes, …` — and, when `paired`, those of the same rows of `b` to
/// `acc[(tokens + t) · rows + r]` (gate and up). A group is the sub-blocks that share block
/// bytes ([`natural_group`]), so each byte is loaded once, and each group is dequantized once
/// for all the tokens: each token's input values are loaded once for all the unit's rows
/// (`rows_tile`: one lane a row, or for one token lanes sharing up to 4 rows); with lanes
/// sharing one row for several tokens, one token's at a time (`shared_row`). Blocks of the quantized formats (those that `factors`) are not dequantized:
/// their integers are dotted with the inputs and the sum scaled once a chunk of 32 (Q6_K: 16)
/// elements, `d·Σq·x + m·Σx` — one multiply an element fewer (two for the K-quants with a
/// minimum): ~6 % of a decode step's kernel time on lavapipe for the 32-element formats
/// (BENCHMARKS.md, session 16), 14–24 % of the 8B Q4_K_M's matrices (session 18); equal to the
/// dequantized product up to rounding. Rows past
/// `last` read row `last`, tokens past the input read its last token (their sums are not
/// stored).
#[cube]
#[allow(clippy::too_many_arguments)]
fn tile_dot<A: Float>(
    a: &Tensor<U32x4>,
    a_row_blocks: usize,
    b: &Tensor<U32x4>,
    b_row_blocks: usize,
    row0: usize,
    last: usize,
    x: &Tensor<F32x4>,
    token_rows: &Array<usize>,
    nw: &Tensor<F32x4>,
    #[comptime] cols: usize,
    lane: usize,
    acc: &mut Array<f32>,
    #[comptime] tile: Tile,
    #[comptime] normed: bool,
    #[comptime] paired: bool,
    #[comptime] fa: GgmlType,
    #[comptime] fb: GgmlType,
) {
    let tokens = comptime![tile.tokens as usize];
    // Several blocks at a time for one token only: a prefill tile's inputs for 8 tokens and 4
    // blocks, unrolled, took lavapipe 2.3× as long to compile (BENCHMARKS.md, session 18).
    let group = comptime![match (paired, fa == fb, tile.tokens) {
        (true, false, _) | (_, _, 2..) => natural_group(fa).max(natural_group(fb)),
        _ => dot_group(fa, cols),
    }];
    let runs_a = comptime![group == dot_group(fa, cols)];
    let runs_b = comptime![group == dot_group(fb, cols)];
    if comptime![tile.lanes > 1 && tile.tokens > 1] {
        // The cooperative tile for several tokens: one row a unit (see `shared_row`).
        let mut row = row0;
        if row > last {
            row = last;
        }
        shared_row_dots::<A>(
            a,
            row * a_row_blocks,
            x,
            token_rows,
            nw,
            cols,
            lane,
            acc,
            0usize,
            tile,
            normed,
            group,
            runs_a,
            fa,
        );
        if comptime![paired] {
            shared_row_dots::<A>(
                b,
                row * b_row_blocks,
                x,
                token_rows,
                nw,
                cols,
                lane,
                acc,
                tokens,
                tile,
                normed,
                group,
                runs_b,
                fb,
            );
        }
    } else {
        // One lane a row (software GPUs), or, for one token, the lanes of a row taking every
        // `lanes`-th group of its rows: each input value loaded once for `tile.rows` rows.
        rows_tile_dot::<A>(
            a,
            a_row_blocks,
            b,
            b_row_blocks,
            row0,
            last,
            x,
            token_rows,
            nw,
            cols,
            lane,
            acc,
            tile,
            normed,
            paired,
            fa,
            fb,
            group,
            runs_a,
            runs_b,
        );
    }
}

/// `Σ_k Σ_c x[at + k].c²` over the fours `k = from, from + step, …` below `fours`: a row's
/// squares for RMSNorm, by one unit (`step` 1) or by each unit of a cube in turn.
#[cube]
fn sum_squares(
    x: &Tensor<F32x4>,
    at: usize,
    from: usize,
    fours: usize,
    #[comptime] step: usize,
) -> f32 {
    let mut ss = 0.0f32;
    let mut k = from;
    while k < fours {
        let v = x[at + k];
        #[unroll]
        for c in 0..4usize {
            let e = v.extract(c);
            ss += e * e;
        }
        k += step;
    }
    ss
}

/// RMSNorm's `r = 1/√(Σx²/cols + eps)` from the row's sum of squares.
#[cube]
fn rms_scale(squares: f32, #[comptime] cols: usize, eps: f32) -> f32 {
    1.0f32 / f32::sqrt(squares / f32::cast_from(cols) + eps)
}

/// `out[t, offset + r] = epilogue(r_t · Σ_k x[first + t, k] · nw[k] · W[r, k])` for the rows
/// `r < rows` of the parts laid end to end (`W = [w0; w1; w2]`, part `i` having `rows_i` rows of
/// `cols` elements in format `f_i`, in the device layout) and the tokens `t < tokens`, or,
/// under [`SWIGLU`], `silu(gate_r) · up_r` with gate rows from `w0` and up rows from `w1`. Without `normed`,
/// `r_t = 1` and `nw` is not read; `residual` is read only under [`ADD_RESIDUAL`] (same shape
/// as `out`).
///
/// A unit computes a [`Tile`] of rows × tokens: what a software GPU pays for is loads, and a
/// tile loads each token's inputs once for its rows and dequantizes each sub-block once for its
/// tokens. Every part's row count must be a multiple of the tile's rows except the last's, so
/// the rows of one unit are in one part. `cols` is known when the kernel compiles (one kernel per
/// row width): its loop bounds and every row's offset are then constants, ~10 % of a decode
/// step's shader time on lavapipe (BENCHMARKS.md, session 16).
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn project_kernel<A: Float>(
    x: &Tensor<F32x4>,
    nw: &Tensor<F32x4>,
    w0: &Tensor<U32x4>,
    w1: &Tensor<U32x4>,
    w2: &Tensor<U32x4>,
    residual: &Tensor<f32>,
    out: &mut Tensor<f32>,
    rows: usize,
    rows0: usize,
    rows1: usize,
    first: usize,
    n: usize,
    out_width: usize,
    offset: usize,
    eps: f32,
    #[comptime] tile: Tile,
    #[comptime] normed: bool,
    #[comptime] epilogue: u32,
    #[comptime] parts: u32,
    #[comptime] f0: GgmlType,
    #[comptime] f1: GgmlType,
    #[comptime] f2: GgmlType,
    #[comptime] cols: usize,
    #[define(A)] _arithmetic: ElemType,
) {
    let row_blocks0 = comptime![row_blocks(f0, cols)];
    let row_blocks1 = comptime![row_blocks(f1, cols)];
    let row_blocks2 = comptime![row_blocks(f2, cols)];
    let units = comptime![tile.units as usize];
    let lanes = comptime![tile.lanes as usize];
    let per = comptime![tile.rows as usize];
    let tokens = comptime![tile.tokens as usize];
    let unit = UNIT_POS as usize;
    let lane = unit % lanes;
    let row0 =
        (CUBE_POS_X as usize * comptime![(tile.units / tile.lanes) as usize] + unit / lanes) * per;
    let t0 = CUBE_POS_Y as usize * tokens;

    // Each token's input row, in fours (tokens past the input read its last one).
    let mut token_rows = Array::<usize>::new(comptime![tile.tokens as usize]);
    #[unroll]
    for t in 0..tokens {
        let mut tok = t0 + t;
        if tok >= n {
            tok = n - 1;
        }
        token_rows[t] = (first + tok) * cols / 4;
    }

    let mut scale = Array::<f32>::new(comptime![tile.tokens as usize]);
    #[unroll]
    for t in 0..tokens {
        scale[t] = 1.0f32;
    }
    if comptime![normed && tile.solo_norm] {
        // Each unit sums every square itself, in one order, so every row gets the same r
        // without a barrier (see `Tile::solo_norm`).
        #[unroll]
        for t in 0..tokens {
            let ss = sum_squares(x, token_rows[t], 0usize, cols / 4, 1usize);
            scale[t] = rms_scale(ss, cols, eps);
        }
    } else if comptime![normed] {
        let mut squares =
            Shared::<[f32]>::new_slice(comptime![(tile.units * tile.tokens) as usize]);
        #[unroll]
        for t in 0..tokens {
            squares[t * units + unit] = sum_squares(x, token_rows[t], unit, cols / 4, units);
        }
        sync_cube();
        #[unroll]
        for t in 0..tokens {
            let mut total = 0.0f32;
            for i in 0..units {
                total += squares[t * units + i];
            }
            scale[t] = rms_scale(total, cols, eps);
        }
    }

    // acc[t · per + r]: row row0 + r for token t0 + t (the gate row under SWIGLU);
    // acc[(tokens + t) · per + r]: the up row.
    let mut acc = Array::<f32>::new(comptime![(2 * tile.rows * tile.tokens) as usize]);
    #[unroll]
    for i in 0..comptime![(2 * tile.rows * tile.tokens) as usize] {
        acc[i] = 0.0f32;
    }
    if row0 < rows {
        if comptime![epilogue == SWIGLU] {
            tile_dot::<A>(
                w0,
                row_blocks0,
                w1,
                row_blocks1,
                row0,
                rows - 1,
                x,
                &token_rows,
                nw,
                cols,
                lane,
                &mut acc,
                tile,
                normed,
                true,
                f0,
                f1,
            );
        } else if row0 < rows0 {
            tile_dot::<A>(
                w0,
                row_blocks0,
                w0,
                row_blocks0,
                row0,
                rows0 - 1,
                x,
                &token_rows,
                nw,
                cols,
                lane,
                &mut acc,
                tile,
                normed,
                false,
                f0,
                f0,
            );
        } else if comptime![parts > 1] {
            if row0 < rows0 + rows1 {
                tile_dot::<A>(
                    w1,
                    row_blocks1,
                    w1,
                    row_blocks1,
                    row0 - rows0,
                    rows1 - 1,
                    x,
                    &token_rows,
                    nw,
                    cols,
                    lane,
                    &mut acc,
                    tile,
                    normed,
                    false,
                    f1,
                    f1,
                );
            } else if comptime![parts > 2] {
                tile_dot::<A>(
                    w2,
                    row_blocks2,
                    w2,
                    row_blocks2,
                    row0 - rows0 - rows1,
                    rows - rows0 - rows1 - 1,
                    x,
                    &token_rows,
                    nw,
                    cols,
                    lane,
                    &mut acc,
                    tile,
                    normed,
                    false,
                    f2,
                    f2,
                );
            }
        }
    }

    store_tile(
        out, residual, &acc, &scale, unit, row0, t0, rows, n, out_width, offset, tile, epilogue,
    );
}
