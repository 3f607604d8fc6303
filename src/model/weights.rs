//! Loading a Llama's weights from GGUF onto a device, one tensor at a time.
//!
//! This stage dequantizes every tensor to f32 on the host (with the reference dequantizers)
//! before upload; the quantized kernels will upload the file's blocks as they are. Only one
//! tensor's bytes are in host memory at a time.

use burn::tensor::{Tensor, TensorData};

use crate::gguf::{ByteSource, GgufHeader, TensorInfo, dequant};

use super::config::LlamaConfig;
use super::device::ComputeDevice;
use super::error::ModelError;

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

    /// The tensor `name` dequantized to f32, as a `[rows, cols]` matrix (GGUF's `ne` reversed).
    pub(crate) fn matrix(&mut self, name: &str) -> Result<Tensor<2>, ModelError> {
        let (info, values) = self.read(name)?;
        let [cols, rows] =
            [info.dims[0], info.dims.get(1).copied().unwrap_or(1)].map(|d| d as usize);
        Ok(Tensor::from_data(
            TensorData::new(values, [rows, cols]),
            self.device.burn(),
        ))
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
        let header = self.header;
        let info = header
            .tensor(name)
            .ok_or_else(|| crate::gguf::GgufError::NoSuchTensor { name: name.into() })?;
        let bytes = header.read_tensor_bytes(self.source, name)?;
        let mut values = vec![0f32; info.n_elements as usize];
        dequant::dequantize_into(info.ggml_type, &bytes, &mut values)?;
        self.progress.tensors_done += 1;
        self.progress.bytes_done += info.n_bytes;
        (self.on_progress)(self.progress);
        Ok((info, values))
    }
}
