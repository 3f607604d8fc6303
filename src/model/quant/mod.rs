//! GGUF weights kept in their block formats on the GPU, and the kernels that use them.
//!
//! A [`QuantMatrix`] is a weight matrix uploaded as the file's blocks (no re-quantization; the
//! blocks' fields regrouped into 16-byte units by [`layout`], the same bytes), multiplied by
//! activations with our CubeCL kernels through Burn's backend extension. This works on the
//! wgpu device (WebGPU in the browser, Vulkan natively); the CPU device has no
//! CubeCL runtime, so there the model keeps dequantized f32 weights instead.

pub(crate) mod blocks;
mod choice;
pub(crate) mod k_quants;
pub(crate) mod kernels;
pub(crate) mod layout;
#[cfg(all(test, not(target_arch = "wasm32")))]
pub(crate) mod tests;

use burn::backend::tensor::IntTensor;
use burn::backend::{Dispatch, backend_extension};
use burn::tensor::{DType, Distribution, Float, Int, Shape, Tensor, TensorData};
use burn_cubecl::CubeBackend;
use burn_cubecl::ops::numeric::empty_device;
use cubecl::prelude::*;

use crate::gguf::{GgmlType, TensorInfo};

pub use choice::{Arithmetic, Cooperative, DecodeKernel, Prefill, Subgroups};

use super::device::{ComputeDevice, read_vec};
use super::error::ModelError;
use super::llama::LogitsFor;
use super::project::{Epilogue, project};
use super::weights::Linear;

/// Where a matrix's rows lie in its word buffer, and their format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Output rows (GGUF `ne[1]`).
    pub rows: usize,
    /// Elements per row (GGUF `ne[0]`).
    pub cols: usize,
    /// The block format.
    pub format: GgmlType,
    /// The kernel shape (by the kind of GPU).
    pub decode: DecodeKernel,
    /// The type the dot products are taken in (the device's).
    pub arithmetic: Arithmetic,
}

/// Threads per workgroup of the bandwidth probe.
const STREAM_WORKGROUP: u32 = 256;

/// Words each unit of the bandwidth probe reads: few, so that a hardware GPU has lanes enough
/// to keep its memory busy.
const STREAM_PER_UNIT: usize = 16;

/// The same on a software GPU, where each invocation has a fixed cost: SwiftShader reads 64 MiB
/// at 0.31 GB/s with 16 words a lane and 0.64 GB/s with 256 (hand-written WGSL, same page).
const STREAM_PER_UNIT_SOFTWARE: usize = 256;

/// Buffers a hardware GPU's probe reads in turn: four outgrow a large L2 (60 MB on an H200).
/// A software GPU reads one buffer once a run.
const STREAM_BUFFERS: usize = 4;

/// Reads per timed run on a hardware GPU: a run of ~4 GB dwarfs the submit and read-back round
/// trip (an H200 reads 120 MiB in ~30 µs).
const STREAM_READS_PER_RUN: usize = 32;

/// The bandwidth probe, as a Burn backend extension (implemented for the CubeCL backend).
#[backend_extension(Cube)]
pub(crate) trait QuantOps: burn::backend::Backend {
    /// Streams `words` once (the bandwidth probe): `[len / per_unit]` xors of `per_unit` words.
    fn stream_read(words: IntTensor<Self>, per_unit: usize, salt: u32) -> IntTensor<Self>;
}

impl QuantOps for CubeBackend {
    fn stream_read(words: IntTensor<Self>, per_unit: usize, salt: u32) -> IntTensor<Self> {
        let units = words.meta.shape()[0] / per_unit;
        let client = words.client.clone();
        let out = empty_device::<u32>(client.clone(), words.device.clone(), Shape::new([units]));
        kernels::stream_read_kernel::launch(
            &client,
            CubeCount::Static((units as u32).div_ceil(STREAM_WORKGROUP), 1, 1),
            CubeDim::new_1d(STREAM_WORKGROUP),
            words.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            units,
            per_unit,
            salt,
        );
        out
    }
}

/// The largest buffer one chunk of a matrix may take: lavapipe's (and many Android GPUs')
/// `maxStorageBufferBindingSize` is 128 MiB; SwiftShader allows 1 GiB, desktop GPUs 1–4 GiB.
/// Larger matrices (the 8B's 430 MB `output.weight`) are split into row chunks.
pub const MAX_CHUNK_BYTES: usize = 128 * 1024 * 1024 - 256;

/// A chunk of a split matrix holds a multiple of this many rows: the projection's largest tile
/// (`project`'s software-GPU tile takes up to 16 rows a unit, and only when every part but the
/// last is a multiple of them). The 8B's head in 39,945-row chunks ran one row a unit, 5× slower
/// an element than the other matrices on lavapipe (BENCHMARKS.md, session 18).
pub const CHUNK_ROW_MULTIPLE: usize = 16;

/// A weight matrix in its GGUF block format on the wgpu device, in row chunks that each fit
/// one storage-buffer binding.
#[derive(Debug, Clone)]
pub struct QuantMatrix {
    chunks: Vec<(Tensor<1, Int>, Layout)>,
}

impl QuantMatrix {
    /// Uploads a 2-D tensor's blocks as they are in the file, in the device [`layout`].
    pub fn upload(
        info: &TensorInfo,
        bytes: &[u8],
        device: &ComputeDevice,
    ) -> Result<Self, ModelError> {
        Self::upload_chunked(info, bytes, device, MAX_CHUNK_BYTES)
    }

    /// [`QuantMatrix::upload`] with chunks of at most `max_chunk_bytes` (tests use small ones).
    pub fn upload_chunked(
        info: &TensorInfo,
        bytes: &[u8],
        device: &ComputeDevice,
        max_chunk_bytes: usize,
    ) -> Result<Self, ModelError> {
        let t = info.ggml_type;
        if !kernels::decodes(t) {
            return Err(ModelError::Unsupported {
                detail: format!("no GPU kernel for {t} (`{}`)", info.name),
            });
        }
        let cols = info.dims[0] as usize;
        let rows = info.dims.get(1).copied().unwrap_or(1) as usize;
        let row_bytes = cols / t.block_elements() as usize * t.block_bytes() as usize;
        if !cols.is_multiple_of(32) {
            return Err(ModelError::Unsupported {
                detail: format!(
                    "`{}`: rows of {cols} are not whole 32-element groups",
                    info.name
                ),
            });
        }
        if layout::device_bytes(t, row_bytes as u64) > max_chunk_bytes as u64 {
            return Err(ModelError::TooBig {
                detail: format!(
                    "`{}`: one row is {row_bytes} bytes, more than a binding of {max_chunk_bytes}",
                    info.name
                ),
            });
        }
        if bytes.len() != rows * row_bytes {
            return Err(ModelError::Unsupported {
                detail: format!(
                    "`{}`: {} bytes for {rows} rows of {row_bytes}, chunks of {max_chunk_bytes}",
                    info.name,
                    bytes.len()
                ),
            });
        }
        let layout = Layout {
            rows,
            cols,
            format: t,
            decode: DecodeKernel::for_device(device),
            arithmetic: device.arithmetic(),
        };
        // As many rows as fit one binding with the last superblock's padding.
        let mut rows_per_chunk = max_chunk_bytes / row_bytes;
        while rows_per_chunk > 1
            && layout::device_bytes(t, (rows_per_chunk * row_bytes) as u64) > max_chunk_bytes as u64
        {
            rows_per_chunk -= 1;
        }
        if rows_per_chunk > CHUNK_ROW_MULTIPLE {
            rows_per_chunk -= rows_per_chunk % CHUNK_ROW_MULTIPLE;
        }
        let chunks = bytes
            .chunks(rows_per_chunk * row_bytes)
            .map(|chunk| {
                let words = layout::repack(t, chunk);
                let n = words.len();
                let tensor = Tensor::<1, Int>::from_data(
                    TensorData::new(words, [n]),
                    (device.burn(), DType::U32),
                );
                let layout = Layout {
                    rows: chunk.len() / row_bytes,
                    ..layout
                };
                (tensor, layout)
            })
            .collect();
        Ok(Self { chunks })
    }

    /// Bytes the blocks take on the device (the file's bytes, each chunk padded to a whole
    /// superblock: [`layout`]).
    pub fn device_bytes(&self) -> u64 {
        self.chunks
            .iter()
            .map(|(words, _)| words.shape().num_elements() as u64 * 4)
            .sum()
    }

    /// The same matrix multiplied by another decode kernel (tests run both on every format).
    #[cfg(test)]
    pub(crate) fn with_decode_kernel(mut self, decode: DecodeKernel) -> Self {
        self.chunks.iter_mut().for_each(|(_, l)| l.decode = decode);
        self
    }

    /// The same matrix multiplied in another arithmetic (tests compare f16 with f32).
    #[cfg(test)]
    pub(crate) fn with_arithmetic(mut self, arithmetic: Arithmetic) -> Self {
        self.chunks
            .iter_mut()
            .for_each(|(_, l)| l.arithmetic = arithmetic);
        self
    }

    /// The row chunks: each one's words and layout.
    pub(crate) fn chunks(&self) -> &[(Tensor<1, Int>, Layout)] {
        &self.chunks
    }

    /// `x [n, cols] → x Wᵀ [n, rows]` (the projection kernel with one matrix).
    pub(crate) fn matmul(&self, x: Tensor<2>) -> Tensor<2> {
        let linear = Linear::Quant(self.clone());
        project(&x, None, &[&linear], Epilogue::Store, LogitsFor::All)
    }
}

/// Measures the device's streaming-read bandwidth in GB/s (10^9 bytes): buffers of about
/// `bytes` each are read in turn (a warm-up, then `runs` timed runs, each read back at its end;
/// on a hardware GPU a run is [`STREAM_READS_PER_RUN`] reads over [`STREAM_BUFFERS`] buffers),
/// the roofline for the matmul kernels. `now` is a clock in seconds.
pub async fn streaming_read_gb_s(
    device: &ComputeDevice,
    bytes: usize,
    runs: usize,
    now: &dyn Fn() -> f64,
) -> Result<f64, ModelError> {
    let (per_unit, buffers, reads_per_run) = match device.is_software_gpu() {
        true => (STREAM_PER_UNIT_SOFTWARE, 1, 1),
        false => (STREAM_PER_UNIT, STREAM_BUFFERS, STREAM_READS_PER_RUN),
    };
    let units = (bytes / 4 / per_unit).max(1);
    let n = units * per_unit;
    // Not zeros: a fresh zeroed buffer can be the same physical page mapped over and over,
    // which a software GPU then reads from cache.
    let buffers: Vec<Tensor<1, Int>> = (0..buffers as u32)
        .map(|b| {
            let values: Vec<u32> = (0..n as u32)
                .map(|i| (i ^ b.rotate_left(24)).wrapping_mul(2_654_435_761))
                .collect();
            Tensor::<1, Int>::from_data(TensorData::new(values, [n]), (device.burn(), DType::U32))
        })
        .collect();
    // One run: every read queued, only the last one's first word read back.
    let run = |salt: u32| {
        let mut last = None;
        for read in 0..reads_per_run {
            let words = buffers[read % buffers.len()].clone();
            last = Some(Tensor::<1, Int>::from_dispatch(
                <Dispatch as QuantOps>::stream_read(words.into_dispatch(), per_unit, salt),
            ));
        }
        read_vec::<u32, 1, Int>(last.expect("at least one read a run").slice(0..1))
    };
    run(0).await?;
    let start = now();
    for salt in 1..=runs as u32 {
        run(salt).await?;
    }
    let seconds = now() - start;
    Ok((n * 4 * reads_per_run * runs) as f64 / seconds / 1e9)
}

/// Seconds Burn's own f32 matmul (its default kernel on this device; no autotune) takes for
/// `x[tokens, cols] · Wᵀ` over every `(rows, cols)` of `shapes`, on random dense weights: what
/// our prefill is compared with. A matrix over one binding is timed in row chunks that fit
/// ([`MAX_CHUNK_BYTES`]), each chunk shape once and counted as often as it occurs.
pub async fn f32_matmul_seconds(
    device: &ComputeDevice,
    shapes: &[(usize, usize)],
    tokens: usize,
    now: &dyn Fn() -> f64,
) -> Result<f64, ModelError> {
    let mut total = 0.0;
    for &(rows, cols) in shapes {
        let chunk_rows = (MAX_CHUNK_BYTES / (cols * 4)).clamp(1, rows);
        for (count, chunk) in [(rows / chunk_rows, chunk_rows), (1, rows % chunk_rows)] {
            if count > 0 && chunk > 0 {
                total += count as f64 * f32_matmul_once(device, chunk, cols, tokens, now).await?;
            }
        }
    }
    Ok(total)
}

/// One timed `x[tokens, cols] · W[rows, cols]ᵀ` in f32, after an untimed one (compiling).
async fn f32_matmul_once(
    device: &ComputeDevice,
    rows: usize,
    cols: usize,
    tokens: usize,
    now: &dyn Fn() -> f64,
) -> Result<f64, ModelError> {
    let uniform = Distribution::Uniform(-1.0, 1.0);
    let w = Tensor::<2>::random([rows, cols], uniform, device.burn());
    let x = Tensor::<2>::random([tokens, cols], uniform, device.burn());
    read_vec::<f32, 2, Float>(x.clone()).await?;
    read_vec::<f32, 2, Float>(w.clone().slice([0..1, 0..1])).await?;
    let product = || x.clone().matmul(w.clone().transpose()).slice([0..1, 0..1]);
    read_vec::<f32, 2, Float>(product()).await?;
    let start = now();
    read_vec::<f32, 2, Float>(product()).await?;
    Ok(now() - start)
}

/// Bytes `info`'s matrix takes on the device when uploaded as one chunk.
pub fn device_bytes_for(info: &TensorInfo) -> u64 {
    layout::device_bytes(info.ggml_type, info.n_bytes)
}
