//! Greedy choice on the device: the index of the largest logit, so a greedy decode step reads
//! back one id (4 bytes) instead of the whole vocabulary's logits.
//!
//! One cube of 256 units: each scans a strided share of the logits keeping its first
//! largest, then a tree in shared memory keeps the larger of two, the lower index on ties —
//! the host's [`argmax`] rule (NaN never wins).

use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Dispatch, backend_extension};
use burn::tensor::{Int, Shape, Tensor};
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device;
mod kernels;

use cubecl::prelude::*;

/// The kernel as a Burn backend extension.
#[backend_extension(Cube)]
pub(crate) trait ArgmaxOps: burn::backend::Backend {
    /// `[1]`: the index of the largest of `logits`' values (all of them, row-major).
    fn argmax(logits: FloatTensor<Self>) -> IntTensor<Self>;
}

impl ArgmaxOps for CubeBackend {
    fn argmax(logits: FloatTensor<Self>) -> IntTensor<Self> {
        let (logits, len, out) = one_cube_over_logits(logits, 1);
        kernels::argmax_kernel::launch(
            &logits.client.clone(),
            CubeCount::Static(1, 1, 1),
            CubeDim::new_1d(kernels::UNITS),
            logits.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            len,
        );
        out
    }
}

/// What a one-cube kernel over a step's logits needs: the logits contiguous, how many there
/// are, and an output of `words` u32s on their device (here and in `model::top`).
pub(crate) fn one_cube_over_logits(
    logits: FloatTensor<CubeBackend>,
    words: usize,
) -> (FloatTensor<CubeBackend>, usize, IntTensor<CubeBackend>) {
    let logits = into_contiguous(logits);
    let len = logits.meta.shape().num_elements();
    let out = empty_device::<u32>(
        logits.client.clone(),
        logits.device.clone(),
        Shape::new([words]),
    );
    (logits, len, out)
}

/// Launches the argmax kernel over `logits` (wgpu): `[1]`, the index of the largest.
pub(crate) fn argmax_launch(logits: Tensor<2>) -> Tensor<1, Int> {
    Tensor::from_dispatch(<Dispatch as ArgmaxOps>::argmax(logits.into_dispatch()))
}

/// The index of the largest logit (the first one on ties; NaN never wins).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] || logits[best].is_nan() {
            best = i;
        }
    }
    best as u32
}
