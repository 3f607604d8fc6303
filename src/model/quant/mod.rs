//! GGUF weights kept in their block formats on the GPU, and the kernels that use them.
//!
//! A [`QuantMatrix`] is a weight matrix uploaded as the file's bytes (no re-quantization),
//! multiplied by activations with our CubeCL kernels through Burn's backend extension. This
//! works on the wgpu device (WebGPU in the browser, Vulkan natively); the CPU device has no
//! CubeCL runtime, so there the model keeps dequantized f32 weights instead.

mod kernels;

use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Dispatch, backend_extension};
use burn::tensor::{DType, Int, Shape, Tensor, TensorData};
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device;
use cubecl::prelude::*;

use crate::gguf::{GgmlType, TensorInfo};

use super::device::ComputeDevice;
use super::error::ModelError;

/// Where a matrix's rows lie in its word buffer, and their format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Output rows (GGUF `ne[1]`).
    pub rows: usize,
    /// Elements per row (GGUF `ne[0]`).
    pub cols: usize,
    /// Bytes per row.
    pub row_bytes: usize,
    /// The GGML type id (one of the `kernels` format codes).
    pub format: u32,
}

/// Threads per workgroup along a row of outputs.
const WORKGROUP: u32 = 64;

/// The kernels, as a Burn backend extension (implemented for the CubeCL backend; Fusion runs
/// them lazily in its stream).
#[backend_extension(Cube, Fusion)]
pub trait QuantOps: burn::backend::Backend {
    /// `x [n, cols] × Wᵀ → [n, rows]`.
    #[fusion(dtype = x, shape = Shape::new([x[0], layout.rows]))]
    fn quant_matmul(
        x: FloatTensor<Self>,
        words: IntTensor<Self>,
        layout: Layout,
    ) -> FloatTensor<Self>;

    /// Rows `ids` of W, dequantized: `[ids.len(), cols]`.
    #[fusion(dtype = DType::F32, shape = Shape::new([ids[0], layout.cols]))]
    fn quant_gather(
        words: IntTensor<Self>,
        ids: IntTensor<Self>,
        layout: Layout,
    ) -> FloatTensor<Self>;
}

impl QuantOps for CubeBackend {
    fn quant_matmul(
        x: FloatTensor<Self>,
        words: IntTensor<Self>,
        layout: Layout,
    ) -> FloatTensor<Self> {
        let x = into_contiguous(x);
        let n = x.meta.shape()[0];
        let client = x.client.clone();
        let out = empty_device::<f32>(
            client.clone(),
            x.device.clone(),
            Shape::new([n, layout.rows]),
        );
        let count = CubeCount::Static((layout.rows as u32).div_ceil(WORKGROUP), n as u32, 1);
        kernels::matmul_kernel::launch(
            &client,
            count,
            CubeDim::new_1d(WORKGROUP),
            x.into_tensor_arg(),
            words.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            layout.rows,
            layout.cols,
            layout.row_bytes,
            layout.format,
        );
        out
    }

    fn quant_gather(
        words: IntTensor<Self>,
        ids: IntTensor<Self>,
        layout: Layout,
    ) -> FloatTensor<Self> {
        let ids = into_contiguous(ids);
        let n = ids.meta.shape()[0];
        let client = words.client.clone();
        let out = empty_device::<f32>(
            client.clone(),
            words.device.clone(),
            Shape::new([n, layout.cols]),
        );
        let count = CubeCount::Static((layout.cols as u32).div_ceil(WORKGROUP), n as u32, 1);
        kernels::gather_rows_kernel::launch(
            &client,
            count,
            CubeDim::new_1d(WORKGROUP),
            words.into_tensor_arg(),
            ids.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            layout.cols,
            layout.row_bytes,
            layout.format,
        );
        out
    }
}

/// A weight matrix in its GGUF block format on the wgpu device.
#[derive(Debug, Clone)]
pub struct QuantMatrix {
    words: Tensor<1, Int>,
    layout: Layout,
}

impl QuantMatrix {
    /// Uploads a 2-D tensor's bytes as they are in the file.
    pub fn upload(
        info: &TensorInfo,
        bytes: &[u8],
        device: &ComputeDevice,
    ) -> Result<Self, ModelError> {
        let cols = info.dims[0] as usize;
        let rows = info.dims.get(1).copied().unwrap_or(1) as usize;
        let format = info.ggml_type.id();
        if !SUPPORTED.contains(&info.ggml_type) {
            return Err(ModelError::BadInput {
                detail: format!("no GPU kernel for {} (`{}`)", info.ggml_type, info.name),
            });
        }
        let row_bytes =
            cols / info.ggml_type.block_elements() as usize * info.ggml_type.block_bytes() as usize;
        let words: Vec<u32> = bytes
            .chunks(4)
            .map(|c| {
                let mut w = [0u8; 4];
                w[..c.len()].copy_from_slice(c);
                u32::from_le_bytes(w)
            })
            .collect();
        let n = words.len();
        let words =
            Tensor::<1, Int>::from_data(TensorData::new(words, [n]), (device.burn(), DType::U32));
        Ok(Self {
            words,
            layout: Layout {
                rows,
                cols,
                row_bytes,
                format,
            },
        })
    }

    /// Bytes the blocks take on the device (the file's bytes, padded to whole words).
    pub fn device_bytes(&self) -> u64 {
        self.words.shape().num_elements() as u64 * 4
    }

    /// The layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// `x [n, cols] → x Wᵀ [n, rows]`.
    pub fn matmul(&self, x: Tensor<2>) -> Tensor<2> {
        Tensor::from_dispatch(<Dispatch as QuantOps>::quant_matmul(
            x.into_dispatch(),
            self.words.clone().into_dispatch(),
            self.layout,
        ))
    }

    /// Rows `ids` dequantized to f32: `[ids.len(), cols]`.
    pub fn gather_rows(&self, ids: Tensor<1, Int>) -> Tensor<2> {
        Tensor::from_dispatch(<Dispatch as QuantOps>::quant_gather(
            self.words.clone().into_dispatch(),
            ids.into_dispatch(),
            self.layout,
        ))
    }
}

/// The formats the kernels decode.
pub const SUPPORTED: [GgmlType; 11] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q8_0,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];
