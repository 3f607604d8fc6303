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

use crate::model::quant::kernels::subblock_dot;

/// Units per cube.
pub const CUBE_UNITS: u32 = 64;

/// Epilogue codes (comptime): store the dot product as it is.
pub const STORE: u32 = 0;
/// Add the residual stream's value before storing.
pub const ADD_RESIDUAL: u32 = 1;
/// Rows of part 0 (gate) and part 1 (up) pair up: store `silu(gate) · up`.
pub const SWIGLU: u32 = 2;

/// `Σ_s` over the sub-blocks `lane, lane + lanes, …` of one row of `w`.
#[cube]
fn row_dot(
    w: &Tensor<u32>,
    base: usize,
    x: &Tensor<f32>,
    xi: usize,
    nw: &Tensor<f32>,
    cols: usize,
    lane: usize,
    #[comptime] lanes: usize,
    #[comptime] normed: bool,
    #[comptime] format: u32,
) -> f32 {
    let mut acc = 0.0f32;
    let mut s = lane;
    while s < cols / 32 {
        acc += subblock_dot(w, base, s, x, xi + s * 32, nw, normed, format);
        s += lanes;
    }
    acc
}

/// `out[t, offset + r] = epilogue(r_t · Σ_k x[first + t, k] · nw[k] · W[r, k])` for the rows
/// `r < rows` of the parts laid end to end (`W = [w0; w1; w2]`, part `i` having `rows_i` rows of
/// `row_bytes_i` bytes in format `f_i`), or, under [`SWIGLU`], `silu(gate_r) · up_r` with gate
/// rows from `w0` and up rows from `w1`. Without `normed`, `r_t = 1` and `nw` is not read;
/// `residual` is read only under [`ADD_RESIDUAL`] (same shape as `out`).
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn project_kernel(
    x: &Tensor<f32>,
    nw: &Tensor<f32>,
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
    #[comptime] normed: bool,
    #[comptime] epilogue: u32,
    #[comptime] parts: u32,
    #[comptime] f0: u32,
    #[comptime] f1: u32,
    #[comptime] f2: u32,
) {
    let units = comptime![CUBE_UNITS as usize];
    let lanes_n = comptime![lanes as usize];
    let unit = UNIT_POS as usize;
    let lane = unit % lanes_n;
    let row = CUBE_POS_X as usize * comptime![(CUBE_UNITS / lanes) as usize] + unit / lanes_n;
    let t = CUBE_POS_Y as usize;
    let xi = (first + t) * cols;

    let mut scale = 1.0f32;
    if comptime![normed] {
        let mut squares = Shared::<[f32]>::new_slice(comptime![CUBE_UNITS as usize]);
        let mut ss = 0.0f32;
        let mut k = unit;
        while k < cols {
            let v = x[xi + k];
            ss += v * v;
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

    let mut acc = 0.0f32;
    let mut acc_up = 0.0f32;
    if row < rows {
        if comptime![epilogue == SWIGLU] {
            acc = row_dot(
                w0,
                row * row_bytes0,
                x,
                xi,
                nw,
                cols,
                lane,
                lanes_n,
                normed,
                f0,
            );
            acc_up = row_dot(
                w1,
                row * row_bytes1,
                x,
                xi,
                nw,
                cols,
                lane,
                lanes_n,
                normed,
                f1,
            );
        } else if row < rows0 {
            acc = row_dot(
                w0,
                row * row_bytes0,
                x,
                xi,
                nw,
                cols,
                lane,
                lanes_n,
                normed,
                f0,
            );
        } else if comptime![parts > 1] {
            if row < rows0 + rows1 {
                let r = row - rows0;
                acc = row_dot(
                    w1,
                    r * row_bytes1,
                    x,
                    xi,
                    nw,
                    cols,
                    lane,
                    lanes_n,
                    normed,
                    f1,
                );
            } else if comptime![parts > 2] {
                let r = row - rows0 - rows1;
                acc = row_dot(
                    w2,
                    r * row_bytes2,
                    x,
                    xi,
                    nw,
                    cols,
                    lane,
                    lanes_n,
                    normed,
                    f2,
                );
            }
        }
    }

    if comptime![lanes > 1] {
        let mut sums = Shared::<[f32]>::new_slice(comptime![CUBE_UNITS as usize]);
        let mut sums_up = Shared::<[f32]>::new_slice(comptime![CUBE_UNITS as usize]);
        sums[unit] = acc;
        sums_up[unit] = acc_up;
        sync_cube();
        if lane == 0 {
            let mut a = 0.0f32;
            let mut b = 0.0f32;
            for i in 0..lanes_n {
                a += sums[unit + i];
                b += sums_up[unit + i];
            }
            acc = a;
            acc_up = b;
        }
    }

    if lane == 0 && row < rows {
        let mut value = acc * scale;
        if comptime![epilogue == SWIGLU] {
            let up = acc_up * scale;
            value = value / (1.0f32 + f32::exp(-value)) * up;
        }
        let at = t * out_width + offset + row;
        if comptime![epilogue == ADD_RESIDUAL] {
            value += residual[at];
        }
        out[at] = value;
    }
}
