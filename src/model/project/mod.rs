//! Projections: an input's RMSNorm, its product with one or more weight matrices, and what is
//! done to the result (a residual add, SwiGLU) — one kernel launch on the wgpu device, Burn
//! operations on the CPU device (the reference, step by step as HF transformers).
//!
//! This is how a decode step stays at a few dispatches per block: q/k/v are one launch over the
//! three matrices (each in its own block format), gate and up one launch storing
//! `silu(gate) · up`, the output and down projections add the residual stream as they store.

mod choose;
pub(crate) mod kernels;
mod rows_tile;
mod shared_row;
pub(crate) mod shared_tile;
mod store;
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;

use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Dispatch, backend_extension};
use burn::tensor::activation::silu;
use burn::tensor::{Int, Tensor};
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::into_contiguous;
use cubecl::prelude::*;

use super::llama::LogitsFor;
use super::quant::layout::{device_block, device_bytes, row_blocks};
use super::quant::{Arithmetic, Layout, QuantMatrix};
use super::weights::Linear;

/// RMSNorm with a learned scale, as HF: `w · x / sqrt(mean(x²) + eps)`.
#[derive(Debug, Clone)]
pub(crate) struct RmsNorm {
    /// The learned scale, `[width]`.
    pub(crate) weight: Tensor<1>,
    /// Added to the mean square.
    pub(crate) eps: f64,
}

impl RmsNorm {
    /// The norm alone, with Burn operations (the reference path, and traces of the residual
    /// stream).
    pub(crate) fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let variance = (x.clone() * x.clone()).mean_dim(1);
        let normed = x * (variance + self.eps).sqrt().recip();
        normed * self.weight.clone().unsqueeze_dim::<2>(0)
    }
}

/// What a projection does with its product before storing it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Epilogue<'a> {
    /// Store it.
    Store,
    /// Add it to this residual stream (`[tokens, rows]`).
    AddTo(&'a Tensor<2>),
    /// Two matrices, gate and up: store `silu(gate) · up`.
    SwiGlu,
}

/// `epilogue(norm(x)[tokens] · [W₀; W₁; …]ᵀ)`: `[tokens, Σ rows]` (`[tokens, rows]` for
/// [`Epilogue::SwiGlu`]). One launch per (up to three) matrix chunks when every matrix is on the
/// GPU in block form; Burn operations otherwise.
pub(crate) fn project(
    x: &Tensor<2>,
    norm: Option<&RmsNorm>,
    parts: &[&Linear],
    epilogue: Epilogue<'_>,
    tokens: LogitsFor,
) -> Tensor<2> {
    let quant: Option<Vec<&QuantMatrix>> = parts
        .iter()
        .map(|l| match l {
            Linear::Quant(m) => Some(m),
            Linear::Dense(_) => None,
        })
        .collect();
    match quant {
        Some(matrices) => project_quant(x, norm, &matrices, epilogue, tokens),
        None => project_reference(x, norm, parts, epilogue, tokens),
    }
}

/// The reference: HF's order of operations with Burn tensors.
fn project_reference(
    x: &Tensor<2>,
    norm: Option<&RmsNorm>,
    parts: &[&Linear],
    epilogue: Epilogue<'_>,
    tokens: LogitsFor,
) -> Tensor<2> {
    let mut h = match norm {
        Some(norm) => norm.forward(x.clone()),
        None => x.clone(),
    };
    if tokens == LogitsFor::Last {
        let n = h.dims()[0];
        h = h.narrow(0, n - 1, 1);
    }
    let mut outputs: Vec<Tensor<2>> = parts.iter().map(|l| l.forward(h.clone())).collect();
    match epilogue {
        Epilogue::SwiGlu => {
            let up = outputs.pop().expect("gate and up");
            silu(outputs.pop().expect("gate and up")) * up
        }
        Epilogue::AddTo(residual) => residual.clone() + concat(outputs),
        Epilogue::Store => concat(outputs),
    }
}

fn concat(mut outputs: Vec<Tensor<2>>) -> Tensor<2> {
    match outputs.len() {
        1 => outputs.pop().expect("one output"),
        _ => Tensor::cat(outputs, 1),
    }
}

/// The fused kernel over the matrices' row chunks: consecutive chunks are launched three at a
/// time, each launch writing its columns of the one output; SwiGLU pairs gate and up chunk by
/// chunk (they have the same rows, so the same split).
fn project_quant(
    x: &Tensor<2>,
    norm: Option<&RmsNorm>,
    matrices: &[&QuantMatrix],
    epilogue: Epilogue<'_>,
    tokens: LogitsFor,
) -> Tensor<2> {
    let total = x.dims()[0];
    let (first, n) = match tokens {
        LogitsFor::All => (0, total),
        LogitsFor::Last => (total - 1, 1),
    };
    let chunks: Vec<&(Tensor<1, Int>, Layout)> =
        matrices.iter().flat_map(|m| m.chunks().iter()).collect();
    let launches: Vec<Vec<&(Tensor<1, Int>, Layout)>> = match epilogue {
        Epilogue::SwiGlu => {
            let (gate, up) = (matrices[0].chunks(), matrices[1].chunks());
            gate.iter().zip(up).map(|(g, u)| vec![g, u]).collect()
        }
        _ => chunks.chunks(3).map(|c| c.to_vec()).collect(),
    };
    let rows_of = |launch: &[&(Tensor<1, Int>, Layout)]| match epilogue {
        Epilogue::SwiGlu => launch[0].1.rows,
        _ => launch.iter().map(|(_, l)| l.rows).sum(),
    };
    let width: usize = launches.iter().map(|l| rows_of(l)).sum();
    let mut out = Tensor::<2>::empty([n, width], &x.device());
    let (code, residual) = match epilogue {
        Epilogue::Store => (kernels::STORE, x),
        Epilogue::AddTo(residual) => (kernels::ADD_RESIDUAL, residual),
        Epilogue::SwiGlu => (kernels::SWIGLU, x),
    };
    let nw = norm.map_or_else(|| x.clone().reshape([-1]), |n| n.weight.clone());
    let mut offset = 0;
    for launch in launches {
        let layouts: Vec<Layout> = launch.iter().map(|(_, l)| *l).collect();
        let part = |i: usize| layouts[i.min(layouts.len() - 1)];
        let words = |i: usize| launch[i.min(launch.len() - 1)].0.clone().into_dispatch();
        let rows = rows_of(&launch);
        let spec = ProjectSpec {
            parts: [part(0), part(1), part(2)],
            part_count: launch.len() as u32,
            rows,
            tokens: n,
            first,
            out_width: width,
            offset,
            eps_bits: norm.map(|n| (n.eps as f32).to_bits()),
            epilogue: code,
        };
        out = Tensor::from_dispatch(<Dispatch as ProjectOps>::project(
            x.clone().into_dispatch(),
            nw.clone().into_dispatch(),
            words(0),
            words(1),
            words(2),
            residual.clone().into_dispatch(),
            out.into_dispatch(),
            spec,
        ));
        offset += rows;
    }
    out
}

/// One launch of the projection kernel, as the backend extension sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProjectSpec {
    /// The matrices' chunks (repeated past `part_count`; only the first `part_count` are read).
    pub parts: [Layout; 3],
    /// How many of `parts` this launch reads (1–3).
    pub part_count: u32,
    /// Output columns this launch writes.
    pub rows: usize,
    /// Tokens computed (cube y).
    pub tokens: usize,
    /// The input row of the first token computed.
    pub first: usize,
    /// Columns of the whole output.
    pub out_width: usize,
    /// The first output column this launch writes.
    pub offset: usize,
    /// RMSNorm's epsilon (f32 bits), when the input is normed first.
    pub eps_bits: Option<u32>,
    /// One of the `kernels` epilogue codes.
    pub epilogue: u32,
}

/// The projection kernel as a Burn backend extension. The result is written into `out`
/// (columns `offset ..`), which is returned.
#[backend_extension(Cube)]
pub(crate) trait ProjectOps: burn::backend::Backend {
    /// See [`ProjectSpec`] and the kernel's documentation.
    #[allow(clippy::too_many_arguments)]
    fn project(
        x: FloatTensor<Self>,
        norm_weight: FloatTensor<Self>,
        w0: IntTensor<Self>,
        w1: IntTensor<Self>,
        w2: IntTensor<Self>,
        residual: FloatTensor<Self>,
        out: FloatTensor<Self>,
        spec: ProjectSpec,
    ) -> FloatTensor<Self>;
}

impl ProjectOps for CubeBackend {
    fn project(
        x: FloatTensor<Self>,
        norm_weight: FloatTensor<Self>,
        w0: IntTensor<Self>,
        w1: IntTensor<Self>,
        w2: IntTensor<Self>,
        residual: FloatTensor<Self>,
        out: FloatTensor<Self>,
        spec: ProjectSpec,
    ) -> FloatTensor<Self> {
        let x = into_contiguous(x);
        let residual = into_contiguous(residual);
        let [p0, p1, p2] = spec.parts;
        let client = x.client.clone();
        // Launched without CubeCL's per-index bounds checks (a compare and a select on every
        // load, and a counter on every loop: ~3 % of a decode step's kernel time on lavapipe,
        // BENCHMARKS.md session 16). SAFETY: every index the kernel forms is in bounds by
        // construction — rows past a part's last read its last row, tokens past the input its
        // last token, sub-blocks stop at `cols`, and every store is guarded by `row < rows`
        // and `tok < n` — and `check_spec` refuses any spec whose parts do not fit the tensors
        // passed. (A browser's WebGPU adds its own bounds checks to every shader regardless.)
        check_spec(&spec, [&x, &norm_weight, &residual, &out], [&w0, &w1, &w2]);
        // The two kernels take the same arguments but their tile's.
        macro_rules! launch {
            ($kernel:path, $rows_per_cube:expr, $tokens_per_cube:expr, $units:expr, $tile:expr) => {
                unsafe {
                    $kernel(
                        &client,
                        CubeCount::Static(
                            (spec.rows as u32).div_ceil($rows_per_cube),
                            (spec.tokens as u32).div_ceil($tokens_per_cube),
                            1,
                        ),
                        CubeDim::new_1d($units),
                        x.into_tensor_arg(),
                        norm_weight.into_tensor_arg(),
                        w0.into_tensor_arg(),
                        w1.into_tensor_arg(),
                        w2.into_tensor_arg(),
                        residual.into_tensor_arg(),
                        out.clone().into_tensor_arg(),
                        spec.rows,
                        p0.rows,
                        p1.rows,
                        spec.first,
                        spec.tokens,
                        spec.out_width,
                        spec.offset,
                        f32::from_bits(spec.eps_bits.unwrap_or(0)),
                        $tile,
                        spec.eps_bits.is_some(),
                        spec.epilogue,
                        spec.part_count,
                        p0.format,
                        p1.format,
                        p2.format,
                        p0.cols,
                        arithmetic_type(p0.arithmetic),
                    )
                }
            };
        }
        if let Some(tile) = choose::shared_tile_for(&spec, p0.decode, &client) {
            launch!(
                shared_tile::shared_tile_kernel::launch_unchecked,
                tile.rows,
                tile.tokens,
                shared_tile::SHARED_TILE_UNITS,
                tile
            );
        } else {
            let tile = choose::tile_for(&spec, p0.decode, choose::subgroup_size(&client));
            launch!(
                kernels::project_kernel::launch_unchecked,
                tile.units / tile.lanes * tile.rows,
                tile.tokens,
                tile.units,
                tile
            );
        }
        out
    }
}

/// The kernel's element type for `arithmetic`.
fn arithmetic_type(arithmetic: Arithmetic) -> ElemType {
    ElemType::Float(match arithmetic {
        Arithmetic::F32 => cubecl::ir::FloatKind::F32,
        Arithmetic::F16 => cubecl::ir::FloatKind::F16,
    })
}

/// Panics unless every index the projection kernel forms for `spec` lies inside the tensors
/// passed (`x`, the norm weight, the residual stream, the output; the parts' words): the
/// invariant its unchecked launch rests on, kept by [`project_quant`].
fn check_spec(
    spec: &ProjectSpec,
    [x, nw, residual, out]: [&FloatTensor<CubeBackend>; 4],
    words: [&IntTensor<CubeBackend>; 3],
) {
    let len = |t: &FloatTensor<CubeBackend>| t.meta.shape().num_elements();
    let cols = spec.parts[0].cols;
    let used = &spec.parts[..spec.part_count as usize];
    let rows: usize = match spec.epilogue {
        kernels::SWIGLU => used[0].rows,
        _ => used.iter().map(|p| p.rows).sum(),
    };
    let fits = cols.is_multiple_of(32)
        && used
            .iter()
            .all(|p| p.cols == cols && p.arithmetic == used[0].arithmetic)
        && rows == spec.rows
        && len(x) >= (spec.first + spec.tokens) * cols
        && (spec.eps_bits.is_none() || len(nw) >= cols)
        && spec.offset + spec.rows <= spec.out_width
        && len(out) >= spec.tokens * spec.out_width
        && (spec.epilogue != kernels::ADD_RESIDUAL || len(residual) >= len(out))
        && used.iter().zip(words).all(|(p, w)| {
            let file_bytes = p.rows * row_blocks(p.format, cols) * device_block(p.format).1;
            w.meta.shape().num_elements() as u64 * 4 >= device_bytes(p.format, file_bytes as u64)
        });
    assert!(fits, "a projection launch outside its tensors: {spec:?}");
}
