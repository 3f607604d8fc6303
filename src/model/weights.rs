//! Loading a Llama's weights from GGUF onto a device, one tensor at a time.
//!
//! On the wgpu device, matrices stay in their GGUF block format ([`QuantMatrix`], our kernels);
//! F32 matrices and every matrix on the CPU device (which has no CubeCL runtime) are dense f32,
//! dequantized on the host with the reference dequantizers. Only one tensor's bytes are in host
//! memory at a time.

use burn::tensor::{Int, Tensor, TensorData};

use crate::gguf::{ByteSource, GgmlType, GgufHeader, TensorInfo, dequant};

use super::config::LlamaConfig;
use super::device::{ComputeDevice, DeviceChoice};
use super::error::ModelError;
use super::quant::QuantMatrix;

/// A weight matrix `W [out, in]` (GGUF's layout) on the device, dense or block-quantized.
#[derive(Debug, Clone)]
pub(crate) enum Linear {
    /// f32 values.
    Dense(Tensor<2>),
    /// The file's blocks, multiplied by our kernels.
    Quant(QuantMatrix),
}

impl Linear {
    /// `x [n, in] → x Wᵀ [n, out]`.
    pub(crate) fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        match self {
            Linear::Dense(w) => x.matmul(w.clone().transpose()),
            Linear::Quant(w) => w.matmul(x),
        }
    }

    /// Bytes the weights take on the device.
    pub(crate) fn device_bytes(&self) -> u64 {
        match self {
            Linear::Dense(w) => w.shape().num_elements() as u64 * 4,
            Linear::Quant(w) => w.device_bytes(),
        }
    }

    /// Rows `ids` of W in f32 (embedding lookups).
    pub(crate) fn rows(&self, ids: Tensor<1, Int>) -> Tensor<2> {
        match self {
            Linear::Dense(w) => w.clone().select(0, ids),
            Linear::Quant(w) => w.gather_rows(ids),
        }
    }
}

/// Loading progress, reported after each tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadProgress {
    /// Tensors uploaded so far.
    pub tensors_done: usize,
    /// Tensors to upload in all.
    pub tensors_total: usize,
    /// File bytes read so far.
    pub bytes_done: u64,
    /// File bytes to read in all.
    pub bytes_total: u64,
}

/// Reads the GGUF tensors a [`LlamaConfig`] names, in order, and hands each to the device.
pub(crate) struct TensorLoader<'a, S: ByteSource> {
    header: &'a GgufHeader,
    source: &'a S,
    device: &'a ComputeDevice,
    progress: LoadProgress,
    on_progress: &'a mut dyn FnMut(LoadProgress),
}

impl<'a, S: ByteSource> TensorLoader<'a, S> {
    /// A loader for the tensors of `config`, reporting to `on_progress`.
    pub(crate) fn new(
        header: &'a GgufHeader,
        source: &'a S,
        config: &LlamaConfig,
        device: &'a ComputeDevice,
        on_progress: &'a mut dyn FnMut(LoadProgress),
    ) -> Self {
        let (tensors_total, bytes_total) = config
            .expected_tensors()
            .iter()
            .filter_map(|(name, _)| header.tensor(name))
            .fold((0, 0), |(n, b), t| (n + 1, b + t.n_bytes));
        Self {
            header,
            source,
            device,
            progress: LoadProgress {
                tensors_done: 0,
                tensors_total,
                bytes_done: 0,
                bytes_total,
            },
            on_progress,
        }
    }

    /// The matrix `name` (`[rows, cols]`, GGUF's `ne` reversed): block-quantized on the wgpu
    /// device, dense f32 otherwise.
    pub(crate) fn linear(&mut self, name: &str) -> Result<Linear, ModelError> {
        let (info, bytes) = self.read_bytes(name)?;
        if self.device.choice() == DeviceChoice::Wgpu && info.ggml_type != GgmlType::F32 {
            return Ok(Linear::Quant(QuantMatrix::upload(
                info,
                &bytes,
                self.device,
            )?));
        }
        let values = dequantized(info, &bytes)?;
        let [cols, rows] =
            [info.dims[0], info.dims.get(1).copied().unwrap_or(1)].map(|d| d as usize);
        Ok(Linear::Dense(Tensor::from_data(
            TensorData::new(values, [rows, cols]),
            self.device.burn(),
        )))
    }

    /// The 1-D tensor `name` in f32, on the device.
    pub(crate) fn vector(&mut self, name: &str) -> Result<Tensor<1>, ModelError> {
        let values = self.host_vector(name)?;
        let n = values.len();
        Ok(Tensor::from_data(
            TensorData::new(values, [n]),
            self.device.burn(),
        ))
    }

    /// The 1-D tensor `name` in f32, kept on the host (small tables such as `rope_freqs`).
    pub(crate) fn host_vector(&mut self, name: &str) -> Result<Vec<f32>, ModelError> {
        Ok(self.read(name)?.1)
    }

    fn read(&mut self, name: &str) -> Result<(&'a TensorInfo, Vec<f32>), ModelError> {
        let (info, bytes) = self.read_bytes(name)?;
        Ok((info, dequantized(info, &bytes)?))
    }

    fn read_bytes(&mut self, name: &str) -> Result<(&'a TensorInfo, Vec<u8>), ModelError> {
        let header = self.header;
        let info = header
            .tensor(name)
            .ok_or_else(|| crate::gguf::GgufError::NoSuchTensor { name: name.into() })?;
        let bytes = header.read_tensor_bytes(self.source, name)?;
        self.progress.tensors_done += 1;
        self.progress.bytes_done += info.n_bytes;
        (self.on_progress)(self.progress);
        Ok((info, bytes))
    }
}

fn dequantized(info: &TensorInfo, bytes: &[u8]) -> Result<Vec<f32>, ModelError> {
    let mut values = vec![0f32; info.n_elements as usize];
    dequant::dequantize_into(info.ggml_type, bytes, &mut values)?;
    Ok(values)
}
