//! The end of the projection kernel: a unit's dot products, added up across the lanes of a row
//! where several share it, scaled by the token's RMSNorm factor and stored through the
//! epilogue (as they are, plus the residual stream, or `silu(gate) · up`).

use cubecl::prelude::*;

use super::kernels::{ADD_RESIDUAL, SWIGLU, Tile};

/// Stores the tile of unit `unit` (rows `row0 ..` for tokens `t0 ..`) from its dot products
/// `acc` (`acc[t · rows + r]`, and the up rows' at `acc[(tokens + t) · rows + r]` under
/// [`SWIGLU`]) and the tokens' RMSNorm factors `scale`. With several lanes a row, each lane
/// holds partial sums: they are added with subgroup shuffles (`tile.subgroup`: every lane gets
/// the totals) or through workgroup memory (each by the lane that stores it), and lane `o`
/// stores output `o`. Must be reached by every unit of the cube
/// (a barrier or a subgroup operation in uniform control flow).
#[cube]
#[allow(clippy::too_many_arguments)]
pub fn store_tile(
    out: &mut Tensor<f32>,
    residual: &Tensor<f32>,
    acc: &Array<f32>,
    scale: &Array<f32>,
    unit: usize,
    row0: usize,
    t0: usize,
    rows: usize,
    n: usize,
    out_width: usize,
    offset: usize,
    #[comptime] tile: Tile,
    #[comptime] epilogue: u32,
) {
    let lanes = comptime![tile.lanes as usize];
    let per = comptime![tile.rows as usize];
    let outputs = comptime![(tile.rows * tile.tokens) as usize];
    let lane = unit % lanes;
    let swiglu = comptime![epilogue == SWIGLU];
    // Through workgroup memory: slot `i` of unit `u` at `i · (units + 1) + u` (padded: the
    // lanes reading one unit's slots hit different banks); the up rows' slots only under SWIGLU.
    let stride = comptime![tile.units as usize + 1];
    let slots = comptime![if swiglu { 2 * outputs } else { outputs }];
    let shared = comptime![tile.lanes > 1 && !tile.subgroup];
    let mut sums = Shared::<[f32]>::new_slice(comptime![if shared { slots * stride } else { 1 }]);
    if comptime![shared] {
        #[unroll]
        for i in 0..slots {
            sums[i * stride + unit] = acc[i];
        }
        sync_cube();
    }
    // Output `o` is token `o / rows`'s row `o % rows`; with several lanes a row, lane `o` stores it.
    #[unroll]
    for o in 0..outputs {
        let mut gate = acc[o];
        let mut up = acc[comptime![outputs + o]];
        let mut stores = true;
        if comptime![tile.lanes > 1] {
            stores = lane == o;
        }
        if comptime![tile.lanes > 1 && tile.subgroup] {
            gate = lanes_sum(gate, tile.lanes);
            if comptime![swiglu] {
                up = lanes_sum(up, tile.lanes);
            }
        }
        if comptime![shared] && stores {
            let first_lane = unit - lane;
            gate = 0.0f32;
            up = 0.0f32;
            for l in 0..lanes {
                gate += sums[comptime![o * stride] + first_lane + l];
                if comptime![swiglu] {
                    up += sums[comptime![(outputs + o) * stride] + first_lane + l];
                }
            }
        }
        if stores {
            store_output(
                out,
                residual,
                gate,
                up,
                scale[comptime![o / per]],
                row0 + comptime![o % per],
                t0 + comptime![o / per],
                rows,
                n,
                out_width,
                offset,
                epilogue,
            );
        }
    }
}

/// `Σ v` over the `lanes` lanes of a row (consecutive, aligned, in one subgroup): after
/// log₂(lanes) shuffles every lane holds the sum.
#[cube]
fn lanes_sum(v: f32, #[comptime] lanes: u32) -> f32 {
    let mut sum = v;
    #[unroll]
    for step in 0..comptime![lanes.trailing_zeros()] {
        sum += plane_shuffle_xor(sum, comptime![lanes >> (step + 1)]);
    }
    sum
}

/// Stores output `[tok, offset + row]` from its dot product `gate` (and, under [`SWIGLU`], the
/// up row's `up`), both scaled by the token's RMSNorm factor `scale`: `gate`, `silu(gate) · up`,
/// or `gate` plus the residual stream's value. Nothing past `rows` or the `n` tokens is stored.
#[cube]
#[allow(clippy::too_many_arguments)]
pub(super) fn store_output(
    out: &mut Tensor<f32>,
    residual: &Tensor<f32>,
    gate: f32,
    up: f32,
    scale: f32,
    row: usize,
    tok: usize,
    rows: usize,
    n: usize,
    out_width: usize,
    offset: usize,
    #[comptime] epilogue: u32,
) {
    if row < rows && tok < n {
        let mut value = gate * scale;
        if comptime![epilogue == SWIGLU] {
            value = value / (1.0f32 + f32::exp(-value)) * (up * scale);
        }
        let at = tok * out_width + offset + row;
        if comptime![epilogue == ADD_RESIDUAL] {
            value += residual[at];
        }
        out[at] = value;
    }
}
