//! The greedy-choice kernel.

use cubecl::prelude::*;

/// Units of the one cube.
pub const UNITS: u32 = 256;

/// The index of a unit that has seen no logit.
const NONE: u32 = 0xFFFF_FFFF;

/// Whether `(value, index)` beats `(best, best_index)`: larger, or as large and earlier;
/// a NaN never beats a number, and a number always beats a NaN.
/// `best_index == NONE` means nothing was seen yet, and anything beats it.
#[cube]
fn beats(value: f32, index: u32, best: f32, best_index: u32) -> bool {
    let mut wins = value > best || (value == best && index < best_index);
    if f32::is_nan(value) {
        wins = f32::is_nan(best) && index < best_index;
    } else if f32::is_nan(best) {
        wins = true;
    }
    if best_index == NONE {
        wins = true;
    }
    wins
}

/// `out[0]` = the index of the largest of `logits[0 .. len]` (the first on ties).
#[cube(launch)]
pub fn argmax_kernel(logits: &Tensor<f32>, out: &mut Tensor<u32>, len: usize) {
    let unit = UNIT_POS as usize;
    let units = comptime![UNITS as usize];
    let mut values = Shared::<[f32]>::new_slice(comptime![UNITS as usize]);
    let mut indices = Shared::<[u32]>::new_slice(comptime![UNITS as usize]);
    let mut best = f32::new(0.0);
    let mut best_index = u32::new(NONE as i64);
    let mut i = unit;
    while i < len {
        let v = logits[i];
        if beats(v, i as u32, best, best_index) {
            best = v;
            best_index = i as u32;
        }
        i += units;
    }
    values[unit] = best;
    indices[unit] = best_index;
    sync_cube();
    // log2(UNITS) halvings.
    for level in 1..9u32 {
        let stride = (UNITS >> level) as usize;
        if unit < stride {
            let v = values[unit + stride];
            let j = indices[unit + stride];
            if beats(v, j, values[unit], indices[unit]) {
                values[unit] = v;
                indices[unit] = j;
            }
        }
        sync_cube();
    }
    if unit == 0 {
        out[0] = indices[0];
    }
}
