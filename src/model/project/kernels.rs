//! The fused projection kernel: one launch computes up to three matrices' rows for the same
//! input (q/k/v, or gate and up), with RMSNorm folded into the dot products and the
//! activation or residual add applied before the store.
//!
//! A cube is 64 units over `64 / lanes` rows of one token (cube y): with one lane a unit takes
//! a whole row (no barrier in the dot: software GPUs), with 32 lanes the lanes of a row read
//! neighbouring sub-blocks (coalesced: hardware GPUs) and one of them adds their sums.
//!
//! RMSNorm: `W · (nw ⊙ x · r) = r · (W · (nw ⊙ x))` with `r = 1/√(mean(x²) + eps)`; the cube
//! sums `x²` cooperatively (one barrier), every cube over the same partition, so every row
//! gets the same `r` bit for bit.

use cubecl::prelude::*;

use crate::model::quant::kernels::{F32x4, load_subblock_x, subblock_dot};

/// Units per cube.
pub const CUBE_UNITS: u32 = 64;

/// Epilogue codes (comptime): store the dot product as it is.
pub const STORE: u32 = 0;
/// Add the residual stream's value before storing.
pub const ADD_RESIDUAL: u32 = 1;
/// Rows of part 0 (gate) and part 1 (up) pair up: store `silu(gate) · up`.
pub const SWIGLU: u32 = 2;

/// Adds to `acc[r]` (`r < per_unit`) the dot products of rows `row0 + r` of `a` (rows of
/// `a_row_bytes` bytes in format `fa`) with the input, over the sub-blocks `lane, lane + lanes,
/// …` — and, when `paired`, those of the same rows of `b` to `acc[per_unit + r]` (gate and
/// up). Each sub-block's input values are loaded once for all the rows. Rows past `last` read
/// row `last` (their sums are not stored).
#[cube]
#[allow(clippy::too_many_arguments)]
fn rows_dot(
    a: &Tensor<u32>,
    a_row_bytes: usize,
    b: &Tensor<u32>,
    b_row_bytes: usize,
    row0: usize,
    last: usize,
    x: &Tensor<F32x4>,
    xi: usize,
    nw: &Tensor<F32x4>,
    cols: usize,
    lane: usize,
    acc: &mut Array<f32>,
    #[comptime] per_unit: usize,
    #[comptime] lanes: usize,
    #[comptime] normed: bool,
    #[comptime] paired: bool,
    #[comptime] fa: u32,
    #[comptime] fb: u32,
) {
    let mut xs = Array::<f32>::new(32usize);
    let mut s = lane;
    while s < cols / 32 {
        load_subblock_x(x, xi, nw, s, &mut xs, normed);
        #[unroll]
        for r in 0..per_unit {
            let mut row = row0 + r;
            if row > last {
                row = last;
            }
            acc[r] += subblock_dot(a, row * a_row_bytes, s, &xs, fa);
            if comptime![paired] {
                acc[comptime![per_unit + r]] += subblock_dot(b, row * b_row_bytes, s, &xs, fb);
            }
        }
        s += lanes;
    }
}

/// `out[t, offset + r] = epilogue(r_t · Σ_k x[first + t, k] · nw[k] · W[r, k])` for the rows
/// `r < rows` of the parts laid end to end (`W = [w0; w1; w2]`, part `i` having `rows_i` rows of
/// `row_bytes_i` bytes in format `f_i`), or, under [`SWIGLU`], `silu(gate_r) · up_r` with gate
/// rows from `w0` and up rows from `w1`. Without `normed`, `r_t = 1` and `nw` is not read;
/// `residual` is read only under [`ADD_RESIDUAL`] (same shape as `out`).
///
/// A unit computes `per_unit` consecutive rows (their input values loaded once: what a
/// software GPU pays for is loads); every part's row count must be a multiple of `per_unit`
/// except the last's, so the rows of one unit are in one part.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn project_kernel(
    x: &Tensor<F32x4>,
    nw: &Tensor<F32x4>,
    w0: &Tensor<u32>,
    w1: &Tensor<u32>,
    w2: &Tensor<u32>,
    residual: &Tensor<f32>,
    out: &mut Tensor<f32>,
    rows: usize,
    rows0: usize,
    rows1: usize,
    row_bytes0: usize,
    row_bytes1: usize,
    row_bytes2: usize,
    cols: usize,
    first: usize,
    out_width: usize,
    offset: usize,
    eps: f32,
    #[comptime] lanes: u32,
    #[comptime] per_unit: u32,
    #[comptime] normed: bool,
    #[comptime] epilogue: u32,
    #[comptime] parts: u32,
    #[comptime] f0: u32,
    #[comptime] f1: u32,
    #[comptime] f2: u32,
) {
    let units = comptime![CUBE_UNITS as usize];
    let lanes_n = comptime![lanes as usize];
    let per = comptime![per_unit as usize];
    let unit = UNIT_POS as usize;
    let lane = unit % lanes_n;
    let row0 =
        (CUBE_POS_X as usize * comptime![(CUBE_UNITS / lanes) as usize] + unit / lanes_n) * per;
    let t = CUBE_POS_Y as usize;
    // The input row, in fours.
    let xi = (first + t) * cols / 4;

    let mut scale = 1.0f32;
    if comptime![normed] {
        let mut squares = Shared::<[f32]>::new_slice(comptime![CUBE_UNITS as usize]);
        let mut ss = 0.0f32;
        let mut k = unit;
        while k < cols / 4 {
            let v = x[xi + k];
            #[unroll]
            for c in 0..4usize {
                let e = v.extract(c);
                ss += e * e;
            }
            k += units;
        }
        squares[unit] = ss;
        sync_cube();
        let mut total = 0.0f32;
        for i in 0..units {
            total += squares[i];
        }
        scale = 1.0f32 / f32::sqrt(total / f32::cast_from(cols) + eps);
    }

    // acc[r]: row row0 + r (the gate row under SWIGLU); acc[per + r]: the up row.
    let mut acc = Array::<f32>::new(comptime![2 * per_unit as usize]);
    #[unroll]
    for r in 0..comptime![2 * per_unit as usize] {
        acc[r] = 0.0f32;
    }
    if row0 < rows {
        if comptime![epilogue == SWIGLU] {
            rows_dot(
                w0,
                row_bytes0,
                w1,
                row_bytes1,
                row0,
                rows - 1,
                x,
                xi,
                nw,
                cols,
                lane,
                &mut acc,
                per,
                lanes_n,
                normed,
                true,
                f0,
                f1,
            );
        } else if row0 < rows0 {
            rows_dot(
                w0,
                row_bytes0,
                w0,
                row_bytes0,
                row0,
                rows0 - 1,
                x,
                xi,
                nw,
                cols,
                lane,
                &mut acc,
                per,
                lanes_n,
                normed,
                false,
                f0,
                f0,
            );
        } else if comptime![parts > 1] {
            if row0 < rows0 + rows1 {
                rows_dot(
                    w1,
                    row_bytes1,
                    w1,
                    row_bytes1,
                    row0 - rows0,
                    rows1 - 1,
                    x,
                    xi,
                    nw,
                    cols,
                    lane,
                    &mut acc,
                    per,
                    lanes_n,
                    normed,
                    false,
                    f1,
                    f1,
                );
            } else if comptime![parts > 2] {
                rows_dot(
                    w2,
                    row_bytes2,
                    w2,
                    row_bytes2,
                    row0 - rows0 - rows1,
                    rows - rows0 - rows1 - 1,
                    x,
                    xi,
                    nw,
                    cols,
                    lane,
                    &mut acc,
                    per,
                    lanes_n,
                    normed,
                    false,
                    f2,
                    f2,
                );
            }
        }
    }

    if comptime![lanes > 1] {
        // One row per unit here (per_unit is 1 on the cooperative path).
        let mut sums = Shared::<[f32]>::new_slice(comptime![CUBE_UNITS as usize]);
        let mut sums_up = Shared::<[f32]>::new_slice(comptime![CUBE_UNITS as usize]);
        sums[unit] = acc[0];
        sums_up[unit] = acc[1];
        sync_cube();
        if lane == 0 {
            let mut a = 0.0f32;
            let mut b = 0.0f32;
            for i in 0..lanes_n {
                a += sums[unit + i];
                b += sums_up[unit + i];
            }
            acc[0] = a;
            acc[1] = b;
        }
    }

    #[unroll]
    for r in 0..per {
        let row = row0 + r;
        if lane == 0 && row < rows {
            let mut value = acc[r] * scale;
            if comptime![epilogue == SWIGLU] {
                let up = acc[comptime![per + r]] * scale;
                value = value / (1.0f32 + f32::exp(-value)) * up;
            }
            let at = t * out_width + offset + row;
            if comptime![epilogue == ADD_RESIDUAL] {
                value += residual[at];
            }
            out[at] = value;
        }
    }
}
