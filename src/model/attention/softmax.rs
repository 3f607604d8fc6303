//! The online softmax of the attention kernels: one key and value row at a time, a running
//! maximum and sum, no score matrix.

use cubecl::prelude::*;

use super::rows::load_row;
use crate::model::plan::KvFormat;

/// The online softmax over cache slots `base + first .. base + end`: each key row scored against
/// `query` ([`score_update`]), each value row added with its weight ([`add_value`]). Starts
/// `acc` at 0 and `state` (running max, sum) at (−∞, 0).
#[cube]
#[allow(clippy::too_many_arguments)]
pub fn attend_cached(
    query: &Array<f32>,
    keys: &mut Tensor<u32>,
    values: &mut Tensor<u32>,
    base: usize,
    first: usize,
    end: usize,
    acc: &mut Array<f32>,
    state: &mut Array<f32>,
    scale: f32,
    #[comptime] head_dim: usize,
    #[comptime] format: KvFormat,
) {
    #[unroll]
    for d in 0..head_dim {
        acc[d] = 0.0f32;
    }
    // Below every score: a finite stand-in for −∞ (`exp(-3e38 - s)` is 0, never NaN).
    state[0] = f32::new(-3.0e38);
    state[1] = 0.0f32;
    let mut row = Array::<f32>::new(head_dim);
    for j in first..end {
        load_row(keys, base + j, &mut row, head_dim, format);
        let p = score_update(query, &row, acc, state, scale, head_dim);
        load_row(values, base + j, &mut row, head_dim, format);
        add_value(acc, &row, p, head_dim);
    }
}

/// Scores `key` against `query` (`s = (q · k) · scale`), rescales `acc` and the running sum
/// `state[1]` when `s` is a new maximum `state[0]`, adds `p = exp(s − max)` to the sum and
/// returns `p`.
#[cube]
pub fn score_update(
    query: &Array<f32>,
    key: &Array<f32>,
    acc: &mut Array<f32>,
    state: &mut Array<f32>,
    scale: f32,
    #[comptime] head_dim: usize,
) -> f32 {
    let mut dot = 0.0f32;
    #[unroll]
    for d in 0..head_dim {
        dot += query[d] * key[d];
    }
    let s = dot * scale;
    let mut max = state[0];
    let mut sum = state[1];
    if s > max {
        let correction = f32::exp(max - s);
        sum *= correction;
        #[unroll]
        for d in 0..head_dim {
            acc[d] *= correction;
        }
        max = s;
    }
    let p = f32::exp(s - max);
    state[0] = max;
    state[1] = sum + p;
    p
}

/// `acc += p · value`.
#[cube]
pub fn add_value(acc: &mut Array<f32>, value: &Array<f32>, p: f32, #[comptime] head_dim: usize) {
    #[unroll]
    for d in 0..head_dim {
        acc[d] += p * value[d];
    }
}

/// Writes unit `unit`'s result: `direct`, the output `acc / Σp` to `partial[token, head ·
/// head_dim ..]`; otherwise `acc`, the running max and the sum to `partial[unit]` (`head_dim
/// + 2` values) for `combine_kernel`.
#[cube]
#[allow(clippy::too_many_arguments)]
pub fn write_partial(
    partial: &mut Tensor<f32>,
    acc: &Array<f32>,
    state: &Array<f32>,
    unit: usize,
    token: usize,
    head: usize,
    heads: usize,
    #[comptime] head_dim: usize,
    #[comptime] direct: bool,
) {
    if comptime![direct] {
        // combine_kernel's arithmetic for one segment: its weight exp(max − max) is 1.
        let out = (token * heads + head) * head_dim;
        #[unroll]
        for d in 0..head_dim {
            partial[out + d] = acc[d] / state[1];
        }
    } else {
        let out = unit * comptime![head_dim + 2];
        #[unroll]
        for d in 0..head_dim {
            partial[out + d] = acc[d];
        }
        partial[out + head_dim] = state[0];
        partial[out + head_dim + 1] = state[1];
    }
}
