//! CubeCL kernels of the KV cache: storing new keys/values in place, and attention that reads
//! them in their cache format (f32, f16, or 8-bit with a scale per row).
//!
//! A cache row is one token's `head_dim` values for one KV head, in `row_words` u32 words:
//! - f32: `head_dim` words, the values' bits;
//! - f16: `head_dim / 2` words, each two values' half-precision bits (the first in the low
//!   half), rounded to nearest even and decoded with integer operations (`rows`);
//! - q8: `head_dim / 4` words of 4 bytes each (`round(x / scale) + 128`, little-endian), then
//!   the f32 bits of `scale = max|x| / 127`.
//!
//! For a prefill chunk, RoPE and the store happen in one kernel over the q/k/v projection, then
//! attention; for one token (decode) all three are one kernel ([`rope_attend_kernel`]).
//! Attention is one pass with an online softmax (no score matrix in memory, `softmax`): a unit
//! takes one query head, one query token and one segment of the keys it may see, and writes its
//! running maximum, sum and weighted values; [`combine_kernel`] merges the segments.
//!
//! Every loop over a row's values is unrolled (`head_dim` is comptime), so the rows live in
//! registers: a software GPU keeps a local array indexed by a loop variable in memory, each
//! access a gather over its SIMD lanes — unrolling took SmolLM2's decode step on lavapipe from
//! ~120 to ~80 ms (BENCHMARKS.md, session 14).

use cubecl::prelude::*;

use super::rows::{round_trip, store_row};
use super::softmax::{add_value, attend_cached, score_update, write_partial};
use crate::model::plan::KvFormat;

/// A step's attention parameters on the device (`u32`s), read by [`rope_attend_kernel`] and
/// [`combine_kernel`]: the cache slot of the step's first token (its position in the cache),
/// then the number of key segments each query attends over.
pub const STEP_WORDS: usize = 2;
/// Where [`STEP_WORDS`] keeps the step's first cache slot.
pub const STEP_PAST: usize = 0;
/// Where [`STEP_WORDS`] keeps the number of key segments.
pub const STEP_SEGMENTS: usize = 1;

/// RoPE and the cache store in one pass over the q/k/v projection `qkv` (`[n, (heads + 2 ·
/// kv_heads) · head_dim]`, each token's query heads, then key heads, then value heads). One unit
/// per (token, head): query heads are rotated into `q` (`[heads, n, head_dim]`, attention's
/// input), key heads rotated and value heads copied into cache slots `start + token`.
/// `angles` is `[2, n, head_dim / 2]`: every pair's cosine, then its sine; pair `(2j, 2j+1)`
/// turns as HF's `x·cos + rotate_half(x)·sin`.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn rope_store_kernel(
    qkv: &Tensor<f32>,
    angles: &Tensor<f32>,
    q: &mut Tensor<f32>,
    keys: &mut Tensor<u32>,
    values: &mut Tensor<u32>,
    heads: usize,
    kv_heads: usize,
    n: usize,
    capacity: usize,
    start: usize,
    #[comptime] head_dim: usize,
    #[comptime] format: KvFormat,
) {
    let unit = ABSOLUTE_POS_X as usize;
    let per_token = heads + 2 * kv_heads;
    if unit >= n * per_token {
        terminate!();
    }
    let token = unit / per_token;
    let head = unit % per_token;
    let half = comptime![head_dim / 2];
    let src = unit * head_dim;
    let mut row = Array::<f32>::new(head_dim);
    if head < heads + kv_heads {
        let cos_at = token * half;
        let sin_at = (n + token) * half;
        #[unroll]
        for j in 0..half {
            let a = qkv[src + 2 * j];
            let b = qkv[src + 2 * j + 1];
            let c = angles[cos_at + j];
            let s = angles[sin_at + j];
            row[2 * j] = a * c - b * s;
            row[2 * j + 1] = b * c + a * s;
        }
    } else {
        #[unroll]
        for d in 0..head_dim {
            row[d] = qkv[src + d];
        }
    }
    if head < heads {
        let dst = (head * n + token) * head_dim;
        #[unroll]
        for d in 0..head_dim {
            q[dst + d] = row[d];
        }
    } else if head < heads + kv_heads {
        store_row(
            &row,
            keys,
            (head - heads) * capacity + start + token,
            head_dim,
            format,
        );
    } else {
        let kv_head = head - heads - kv_heads;
        store_row(
            &row,
            values,
            kv_head * capacity + start + token,
            head_dim,
            format,
        );
    }
}

/// One segment of attention. Unit `((head · n) + token) · segments + segment` attends query
/// `q[head, token]` (`[heads, n, head_dim]`) to the keys `segment · seg_len ..` it may see (up to
/// cache slot `past + token`), over KV head `head / (heads / kv_heads)`, and writes to
/// `partial[unit]` (`head_dim + 2` values): `Σ p_j v_j`, then the running max, then `Σ p_j`,
/// where `p_j = exp(s_j − max)` and `s_j = (q · k_j) · scale`. When `direct` (one segment:
/// nothing to merge), it writes the attention output itself instead, `Σ p_j v_j / Σ p_j`, to
/// `partial[token, head · head_dim + d]` (`[n, heads · head_dim]`), as [`combine_kernel`] would.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn attend_kernel(
    q: &Tensor<f32>,
    keys: &mut Tensor<u32>,
    values: &mut Tensor<u32>,
    partial: &mut Tensor<f32>,
    heads: usize,
    kv_heads: usize,
    n: usize,
    past: usize,
    capacity: usize,
    segments: usize,
    seg_len: usize,
    scale: f32,
    #[comptime] head_dim: usize,
    #[comptime] format: KvFormat,
    #[comptime] direct: bool,
) {
    let unit = ABSOLUTE_POS_X as usize;
    if unit >= heads * n * segments {
        terminate!();
    }
    let segment = unit % segments;
    let token = (unit / segments) % n;
    let head = unit / (segments * n);
    let kv_head = head / (heads / kv_heads);

    let mut query = Array::<f32>::new(head_dim);
    let qa = (head * n + token) * head_dim;
    #[unroll]
    for d in 0..head_dim {
        query[d] = q[qa + d];
    }
    let mut acc = Array::<f32>::new(head_dim);
    let mut state = Array::<f32>::new(2usize);
    let first = segment * seg_len;
    let mut end = past + token + 1;
    if first + seg_len < end {
        end = first + seg_len;
    }
    attend_cached(
        &query,
        keys,
        values,
        kv_head * capacity,
        first,
        end,
        &mut acc,
        &mut state,
        scale,
        head_dim,
        format,
    );
    write_partial(
        partial, &acc, &state, unit, token, head, heads, head_dim, direct,
    );
}

/// [`attend_kernel`] for one new token (decode) with [`rope_store_kernel`] folded in, one launch
/// fewer a block: unit `head · segments + segment` rotates its query head from `qkv` (`[1,
/// (heads + 2 · kv_heads) · head_dim]`) itself and attends the cached keys of its segment; the
/// unit whose segment holds the new token's slot `past` rotates its KV head's new key and takes
/// the new value from `qkv` too, rounded through the cache's format exactly as a store and a load
/// would round them, and the first query head of each KV head stores them into slot `past` for
/// the steps that follow (nothing in this launch reads that slot from memory). `angles` is `[2,
/// 1, head_dim / 2]`. The new token's slot and the segment count come from `info` (see
/// [`STEP_PAST`]), so that a recorded decode step replays at any position. Equal to the two
/// launches bit for bit.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn rope_attend_kernel(
    qkv: &Tensor<f32>,
    angles: &Tensor<f32>,
    keys: &mut Tensor<u32>,
    values: &mut Tensor<u32>,
    partial: &mut Tensor<f32>,
    info: &Tensor<u32>,
    heads: usize,
    kv_heads: usize,
    capacity: usize,
    seg_len: usize,
    scale: f32,
    #[comptime] head_dim: usize,
    #[comptime] format: KvFormat,
    #[comptime] direct: bool,
) {
    let unit = ABSOLUTE_POS_X as usize;
    let past = info[STEP_PAST] as usize;
    let segments = info[STEP_SEGMENTS] as usize;
    if unit >= heads * segments {
        terminate!();
    }
    let segment = unit % segments;
    let head = unit / segments;
    let group = heads / kv_heads;
    let kv_head = head / group;

    let mut query = Array::<f32>::new(head_dim);
    rotate(qkv, head * head_dim, angles, &mut query, head_dim);
    let mut acc = Array::<f32>::new(head_dim);
    let mut state = Array::<f32>::new(2usize);
    let first = segment * seg_len;
    let mut end = past;
    if first + seg_len < end {
        end = first + seg_len;
    }
    attend_cached(
        &query,
        keys,
        values,
        kv_head * capacity,
        first,
        end,
        &mut acc,
        &mut state,
        scale,
        head_dim,
        format,
    );
    if past < first + seg_len {
        let slot = kv_head * capacity + past;
        let mut row = Array::<f32>::new(head_dim);
        rotate(
            qkv,
            (heads + kv_head) * head_dim,
            angles,
            &mut row,
            head_dim,
        );
        if head == kv_head * group {
            store_row(&row, keys, slot, head_dim, format);
        }
        let mut rounded = Array::<f32>::new(head_dim);
        round_trip(&row, &mut rounded, head_dim, format);
        let p = score_update(&query, &rounded, &mut acc, &mut state, scale, head_dim);
        let value_at = (heads + kv_heads + kv_head) * head_dim;
        #[unroll]
        for d in 0..head_dim {
            row[d] = qkv[value_at + d];
        }
        if head == kv_head * group {
            store_row(&row, values, slot, head_dim, format);
        }
        round_trip(&row, &mut rounded, head_dim, format);
        add_value(&mut acc, &rounded, p, head_dim);
    }
    write_partial(
        partial, &acc, &state, unit, 0, head, heads, head_dim, direct,
    );
}

/// `out = rotate(qkv[at .. at + head_dim])` by the first token's `angles` (`[2, 1, head_dim /
/// 2]`), as [`rope_store_kernel`] turns pair `(2j, 2j+1)`.
#[cube]
fn rotate(
    qkv: &Tensor<f32>,
    at: usize,
    angles: &Tensor<f32>,
    out: &mut Array<f32>,
    #[comptime] head_dim: usize,
) {
    let half = comptime![head_dim / 2];
    #[unroll]
    for j in 0..half {
        let a = qkv[at + 2 * j];
        let b = qkv[at + 2 * j + 1];
        let c = angles[j];
        let s = angles[half + j];
        out[2 * j] = a * c - b * s;
        out[2 * j + 1] = b * c + a * s;
    }
}

/// Merges the segments of [`attend_kernel`] (their count: `info[STEP_SEGMENTS]`): unit `(token · heads + head) · head_dim + d` writes
/// `out[token, head · head_dim + d]` (`[n, heads · head_dim]`, the output projection's input).
#[cube(launch)]
pub fn combine_kernel(
    partial: &Tensor<f32>,
    out: &mut Tensor<f32>,
    info: &Tensor<u32>,
    heads: usize,
    n: usize,
    #[comptime] head_dim: usize,
) {
    let unit = ABSOLUTE_POS_X as usize;
    let segments = info[STEP_SEGMENTS] as usize;
    if unit >= n * heads * head_dim {
        terminate!();
    }
    let d = unit % head_dim;
    let head = (unit / head_dim) % heads;
    let token = unit / (head_dim * heads);
    let stride = comptime![head_dim + 2];
    let base = (head * n + token) * segments;
    let mut max = f32::new(-3.0e38);
    for s in 0..segments {
        let m = partial[(base + s) * stride + head_dim];
        if m > max {
            max = m;
        }
    }
    let mut sum = 0.0f32;
    let mut value = 0.0f32;
    for s in 0..segments {
        let at = (base + s) * stride;
        let w = f32::exp(partial[at + head_dim] - max);
        sum += partial[at + head_dim + 1] * w;
        value += partial[at + d] * w;
    }
    out[unit] = value / sum;
}
