//! The shortlist kernel: one cube finds a step's most likely logits and the softmax normalizer.

use cubecl::prelude::*;

/// Units of the one cube.
pub const UNITS: u32 = 256;

/// Logits each unit keeps of its share: its most likely.
pub const KEEP: u32 = 5;

/// Most likely logits written out.
pub const TOP: u32 = 128;

/// Words before the entries: the number of certain entries, whether a logit was not finite,
/// the largest logit and the normalizer (both as f32 bits).
pub const HEADER: u32 = 4;

/// The index of an empty entry.
const NONE: u32 = 0xFFFF_FFFF;

/// Whether `(value, index)` comes before `(other, other_index)` in the host's order: larger,
/// or as large and earlier. An empty entry (`NONE`) comes after everything.
#[cube]
fn before(value: f32, index: u32, other: f32, other_index: u32) -> bool {
    let mut wins = value > other || (value == other && index < other_index);
    if other_index == NONE {
        wins = index != NONE;
    } else if index == NONE {
        wins = false;
    }
    wins
}

/// Writes `out`: `[certain, not_finite, max bits, total bits]`, then the ids of the first
/// `min(certain, TOP)` logits in the host's order, then their values' bits, `TOP` words each
/// (see the module docs). `total` = Σ `exp((l − max) · inv_temperature)` over `logits[0 .. len]`.
#[cube(launch)]
pub fn shortlist_kernel(
    logits: &Tensor<f32>,
    out: &mut Tensor<u32>,
    len: usize,
    inv_temperature: f32,
) {
    let unit = UNIT_POS as usize;
    let units = comptime![UNITS as usize];
    let keep = comptime![KEEP as usize];
    let mut kept_values = Shared::<[f32]>::new_slice(comptime![(UNITS * KEEP) as usize]);
    let mut kept_ids = Shared::<[u32]>::new_slice(comptime![(UNITS * KEEP) as usize]);
    let mut bound_values = Shared::<[f32]>::new_slice(comptime![UNITS as usize]);
    let mut bound_ids = Shared::<[u32]>::new_slice(comptime![UNITS as usize]);
    let mut maxes = Shared::<[f32]>::new_slice(comptime![UNITS as usize]);
    let mut sums = Shared::<[f32]>::new_slice(comptime![UNITS as usize]);
    let mut broken = Shared::<[u32]>::new_slice(comptime![UNITS as usize]);

    // This unit's share, strided: its most likely, sorted, and how many finite logits it saw.
    let mut values = Array::<f32>::new(keep);
    let mut ids = Array::<u32>::new(keep);
    #[unroll]
    for j in 0..keep {
        values[j] = 0.0f32;
        ids[j] = u32::new(NONE as i64);
    }
    let mut seen = 0u32;
    let mut not_finite = 0u32;
    let mut i = unit;
    while i < len {
        let v = logits[i];
        if f32::is_nan(v) || f32::is_inf(v) {
            not_finite = 1u32;
        } else {
            seen += 1;
            if before(v, i as u32, values[keep - 1], ids[keep - 1]) {
                values[keep - 1] = v;
                ids[keep - 1] = i as u32;
                #[unroll]
                for step in 1..keep {
                    let j = keep - step;
                    if before(values[j], ids[j], values[j - 1], ids[j - 1]) {
                        let (v0, i0) = (values[j - 1], ids[j - 1]);
                        values[j - 1] = values[j];
                        ids[j - 1] = ids[j];
                        values[j] = v0;
                        ids[j] = i0;
                    }
                }
            }
        }
        i += units;
    }
    // The share's sum against its own largest logit (no rescaling while scanning).
    let mut max = values[0];
    if ids[0] == NONE {
        max = f32::new(-3.0e38);
    }
    let mut sum = 0.0f32;
    let mut i = unit;
    while i < len {
        let v = logits[i];
        if !(f32::is_nan(v) || f32::is_inf(v)) {
            sum += f32::exp((v - max) * inv_temperature);
        }
        i += units;
    }

    let base = unit * keep;
    #[unroll]
    for j in 0..keep {
        kept_values[base + j] = values[j];
        kept_ids[base + j] = ids[j];
    }
    // The share's bound: its worst kept entry, if it left some out.
    bound_values[unit] = values[keep - 1];
    bound_ids[unit] = ids[keep - 1];
    if seen <= comptime![KEEP] {
        bound_ids[unit] = u32::new(NONE as i64);
    }
    maxes[unit] = max;
    sums[unit] = sum;
    broken[unit] = not_finite;
    sync_cube();

    // log2(UNITS) halvings: the best bound, the largest logit and the sum against it.
    for level in 1..9u32 {
        let stride = (UNITS >> level) as usize;
        if unit < stride {
            let other = unit + stride;
            if before(
                bound_values[other],
                bound_ids[other],
                bound_values[unit],
                bound_ids[unit],
            ) {
                bound_values[unit] = bound_values[other];
                bound_ids[unit] = bound_ids[other];
            }
            let (ma, mb) = (maxes[unit], maxes[other]);
            let mut m = ma;
            if mb > ma {
                m = mb;
            }
            sums[unit] = sums[unit] * f32::exp((ma - m) * inv_temperature)
                + sums[other] * f32::exp((mb - m) * inv_temperature);
            maxes[unit] = m;
            broken[unit] |= broken[other];
        }
        sync_cube();
    }

    // Every kept entry not after the bound is certain; each writes itself at its rank.
    let (bound_value, bound_id) = (bound_values[0], bound_ids[0]);
    let entries = comptime![(UNITS * KEEP) as usize];
    #[unroll]
    for j in 0..keep {
        let (v, id) = (kept_values[base + j], kept_ids[base + j]);
        if id != NONE && !before(bound_value, bound_id, v, id) {
            let mut rank = 0u32;
            for k in 0..entries {
                if before(kept_values[k], kept_ids[k], v, id) {
                    rank += 1;
                }
            }
            if rank < comptime![TOP] {
                let at = comptime![HEADER as usize] + rank as usize;
                out[at] = id;
                out[at + comptime![TOP as usize]] = u32::reinterpret(v);
            }
        }
    }
    if unit == 0 {
        let mut certain = 0u32;
        for k in 0..entries {
            let id = kept_ids[k];
            if id != NONE && !before(bound_value, bound_id, kept_values[k], id) {
                certain += 1;
            }
        }
        out[0] = certain;
        out[1] = broken[0];
        out[2] = u32::reinterpret(maxes[0]);
        out[3] = u32::reinterpret(sums[0]);
    }
}
