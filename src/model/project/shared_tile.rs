//! The prefill tile for hardware GPUs: a cube computes a block of rows × tokens through
//! workgroup memory, the way GPU matrix multiplications are shaped.
//!
//! The inner dimension is walked a slab at a time (32–128 elements). For each slab the cube's 64
//! units first stage it together — the weights of the cube's rows dequantized once (each natural
//! group by one unit), the tokens' inputs loaded once and multiplied by the RMSNorm weight —
//! then, after a barrier, each unit multiplies its register tile (up to 4 rows × 4 tokens, both
//! matrices' rows under SwiGLU) from workgroup memory: 8 loads for 16 products, where the
//! cooperative tile loads an input from L1 for every product and dequantizes each weight again
//! for every 8 tokens. Every barrier is outside the branch on the cube's part, so the control
//! flow around it is uniform as WGSL requires.

use cubecl::prelude::*;

use crate::gguf::GgmlType;
use crate::model::quant::blocks::natural_values;
use crate::model::quant::kernels::{F32x4, U32x4, natural_group};
use crate::model::quant::layout::row_blocks;

use super::kernels::SWIGLU;
use super::store::store_output;

/// Units in a cube of the shared tile: 8 along the rows × 8 along the tokens.
pub const SHARED_TILE_UNITS: u32 = 64;

/// The block a cube computes with the shared tile, and how the inner dimension is staged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SharedTile {
    /// Rows a cube computes (of each matrix under SwiGLU): 8, 16 or 32, `rows / 8` a unit.
    pub rows: u32,
    /// Tokens a cube computes: 8, 16 or 32, `tokens / 8` a unit.
    pub tokens: u32,
    /// Elements of a row staged at a time: 32, 64 or 128, a multiple of every part's natural
    /// group (Q6_K's is 128) and a divisor of the row.
    pub slab: u32,
}

impl SharedTile {
    /// Bytes of workgroup memory the tile takes with `paired` matrices (gate and up): the
    /// staged weights and inputs (f32, the larger arithmetic) and the norm's partial sums.
    pub fn shared_bytes(self, paired: bool) -> usize {
        let matrices = if paired { 2 } else { 1 };
        let values = (matrices * self.rows + self.tokens) * self.slab;
        4 * (values + SHARED_TILE_UNITS) as usize
    }

    /// The largest tile for `tokens` tokens through `parts` (formats and row counts; `paired`:
    /// gate and up) over rows of `cols` elements that fits `max_shared` bytes of workgroup
    /// memory: rows first (each staged input used by more rows), then tokens (no more than the
    /// next power of two of `tokens` needs), then the slab (only the barriers' count). `None`
    /// where no tile fits, or every part but the last is not a whole number of 8 rows.
    pub fn choose(
        parts: &[(GgmlType, usize)],
        paired: bool,
        cols: usize,
        tokens: usize,
        max_shared: usize,
    ) -> Option<SharedTile> {
        let most_tokens = tokens.next_power_of_two().max(8);
        let widest = parts.iter().map(|&(f, _)| 32 * natural_group(f)).max()?;
        let inner = &parts[..parts.len() - 1];
        let whole =
            |rows: u32| paired || inner.iter().all(|&(_, r)| r.is_multiple_of(rows as usize));
        let slabs = [128u32, 64, 32]
            .into_iter()
            .filter(|&slab| slab as usize >= widest && cols.is_multiple_of(slab as usize));
        [32u32, 16, 8]
            .into_iter()
            .filter(|&rows| whole(rows))
            .flat_map(|rows| {
                [32u32, 16, 8]
                    .into_iter()
                    .filter(move |&tokens| tokens as usize <= most_tokens)
                    .map(move |tokens| (rows, tokens))
            })
            .flat_map(|(rows, tokens)| {
                slabs
                    .clone()
                    .map(move |slab| SharedTile { rows, tokens, slab })
            })
            .find(|tile| tile.shared_bytes(paired) <= max_shared)
    }
}

/// [`super::kernels::project_kernel`]'s result (same arguments, same epilogues) with the
/// [`SharedTile`]: cube x walks the rows, cube y the tokens. Every part but the last must be a
/// whole number of the tile's rows, so a cube's rows are in one part.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn shared_tile_kernel<A: Float>(
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
    #[comptime] tile: SharedTile,
    #[comptime] normed: bool,
    #[comptime] epilogue: u32,
    #[comptime] parts: u32,
    #[comptime] f0: GgmlType,
    #[comptime] f1: GgmlType,
    #[comptime] f2: GgmlType,
    #[comptime] cols: usize,
    #[define(A)] _arithmetic: ElemType,
) {
    let mats = comptime![if epilogue == SWIGLU { 2usize } else { 1usize }];
    let bm = comptime![tile.rows as usize];
    let bn = comptime![tile.tokens as usize];
    let slab = comptime![tile.slab as usize];
    let tm = comptime![(tile.rows / 8) as usize];
    let tn = comptime![(tile.tokens / 8) as usize];
    let outputs = comptime![(tile.rows / 8 * tile.tokens / 8) as usize];
    let unit = UNIT_POS as usize;
    // Units 8r .. 8r + 7 share rows (their loads of a staged weight are one broadcast).
    let (ur, ut) = (unit / 8, unit % 8);
    let row0 = CUBE_POS_X as usize * bm;
    let t0 = CUBE_POS_Y as usize * bn;

    // ws[k · mats·bm + m·bm + r]: element k of the slab, matrix m, row r; xs[k · bn + t].
    let mut ws = Shared::<[A]>::new_slice(comptime![mats * bm * slab]);
    let mut xs = Shared::<[A]>::new_slice(comptime![bn * slab]);
    // acc[(m · tn + t) · tm + r]: matrix m's row r for token t (the up rows' only under SwiGLU).
    let mut acc = Array::<f32>::new(comptime![2 * outputs]);
    let mut partial = Array::<A>::new(comptime![mats * outputs]);
    #[unroll]
    for i in 0..comptime![2 * outputs] {
        acc[i] = 0.0f32;
    }
    // The sum of squares of token `unit % bn`'s inputs over the parts of the row this unit
    // loads (`bn` divides the 64 units, so a unit's inputs are always that token's).
    let mut squares = 0.0f32;

    for s in 0..comptime![cols / slab] {
        // Under SwiGLU, gate and up both have `rows0` = `rows` rows (`check_spec`).
        if row0 < rows0 {
            stage_rows::<A>(
                w0,
                row0,
                rows0 - 1,
                s,
                &mut ws,
                unit,
                0usize,
                tile,
                mats,
                f0,
                cols,
            );
            if comptime![mats == 2] {
                stage_rows::<A>(
                    w1,
                    row0,
                    rows0 - 1,
                    s,
                    &mut ws,
                    unit,
                    1usize,
                    tile,
                    mats,
                    f1,
                    cols,
                );
            }
        } else if comptime![parts > 1 && mats == 1] {
            if row0 < rows0 + rows1 {
                let local = row0 - rows0;
                stage_rows::<A>(
                    w1,
                    local,
                    rows1 - 1,
                    s,
                    &mut ws,
                    unit,
                    0usize,
                    tile,
                    mats,
                    f1,
                    cols,
                );
            } else if comptime![parts > 2] {
                let local = row0 - rows0 - rows1;
                let last = rows - rows0 - rows1 - 1;
                stage_rows::<A>(
                    w2, local, last, s, &mut ws, unit, 0usize, tile, mats, f2, cols,
                );
            }
        }
        // The tokens' inputs, consecutive units on consecutive tokens (tokens past the input
        // read its last one; their sums are not stored).
        let mut item = unit;
        while item < comptime![bn * slab / 4] {
            let t = item % bn;
            let k4 = item / bn;
            let mut tok = t0 + t;
            if tok >= n {
                tok = n - 1;
            }
            let mut v = x[(first + tok) * comptime![cols / 4] + s * comptime![slab / 4] + k4];
            if comptime![normed] {
                #[unroll]
                for c in 0..4usize {
                    let e = v.extract(c);
                    squares += e * e;
                }
                v *= nw[s * comptime![slab / 4] + k4];
            }
            #[unroll]
            for c in 0..4usize {
                xs[(4 * k4 + c) * bn + t] = A::cast_from(v.extract(c));
            }
            item += comptime![SHARED_TILE_UNITS as usize];
        }
        sync_cube();

        #[unroll]
        for i in 0..comptime![mats * outputs] {
            partial[i] = A::new(0.0);
        }
        for k in 0..slab {
            let mut wv = Array::<A>::new(comptime![mats * tm]);
            let mut xv = Array::<A>::new(tn);
            #[unroll]
            for m in 0..mats {
                #[unroll]
                for r in 0..tm {
                    wv[comptime![m * tm + r]] =
                        ws[k * comptime![mats * bm] + comptime![m * bm] + ur * tm + r];
                }
            }
            #[unroll]
            for t in 0..tn {
                xv[t] = xs[k * bn + ut * tn + t];
            }
            #[unroll]
            for m in 0..mats {
                #[unroll]
                for t in 0..tn {
                    #[unroll]
                    for r in 0..tm {
                        let i = comptime![(m * tn + t) * tm + r];
                        partial[i] += wv[comptime![m * tm + r]] * xv[t];
                    }
                }
            }
        }
        // A slab's products summed in the arithmetic's type, the slabs' sums in f32.
        #[unroll]
        for i in 0..comptime![mats * outputs] {
            acc[i] += f32::cast_from(partial[i]);
        }
        sync_cube();
    }

    let mut scale = Array::<f32>::new(tn);
    #[unroll]
    for t in 0..tn {
        scale[t] = 1.0f32;
    }
    if comptime![normed] {
        let mut sums = Shared::<[f32]>::new_slice(comptime![SHARED_TILE_UNITS as usize]);
        sums[unit] = squares;
        sync_cube();
        #[unroll]
        for t in 0..tn {
            let mut total = 0.0f32;
            #[unroll]
            for p in 0..comptime![SHARED_TILE_UNITS as usize / bn] {
                total += sums[ut * tn + t + p * bn];
            }
            scale[t] = 1.0f32 / f32::sqrt(total / f32::cast_from(cols) + eps);
        }
    }

    #[unroll]
    for t in 0..tn {
        #[unroll]
        for r in 0..tm {
            store_output(
                out,
                residual,
                acc[comptime![t * tm + r]],
                acc[comptime![(tn + t) * tm + r]],
                scale[t],
                row0 + ur * tm + r,
                t0 + ut * tn + t,
                rows,
                n,
                out_width,
                offset,
                epilogue,
            );
        }
    }
}

/// Stages slab `s` of rows `row0 .. row0 + rows` (rows past `last` read row `last`) of `w`
/// (format `f`, rows of `cols` elements) as matrix `m` of `ws`: each unit dequantizes whole
/// natural groups, consecutive units consecutive rows.
#[cube]
#[allow(clippy::too_many_arguments)]
fn stage_rows<A: Float>(
    w: &Tensor<U32x4>,
    row0: usize,
    last: usize,
    s: usize,
    ws: &mut Shared<[A]>,
    unit: usize,
    #[comptime] m: usize,
    #[comptime] tile: SharedTile,
    #[comptime] mats: usize,
    #[comptime] f: GgmlType,
    #[comptime] cols: usize,
) {
    let bm = comptime![tile.rows as usize];
    let width = comptime![32 * natural_group(f)];
    let groups = comptime![tile.slab as usize / (32 * natural_group(f))];
    let blocks = comptime![row_blocks(f, cols)];
    let mut values = Array::<A>::new(comptime![32 * natural_group(f)]);
    let mut item = unit;
    while item < comptime![bm * groups] {
        let r = item % bm;
        let g = item / bm;
        let mut row = row0 + r;
        if row > last {
            row = last;
        }
        natural_values(w, row * blocks, s * groups + g, &mut values, 0usize, f);
        #[unroll]
        for i in 0..width {
            ws[(g * width + i) * comptime![mats * bm] + comptime![m * bm] + r] = values[i];
        }
        item += comptime![SHARED_TILE_UNITS as usize];
    }
}
