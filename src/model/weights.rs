//! Loading a Llama's weights from GGUF onto a device, one tensor at a time.
//!
//! On the wgpu device, matrices stay in their GGUF format ([`QuantMatrix`], our kernels, F32 ones
//! too); every matrix on the CPU device (which has no CubeCL runtime) is dense f32,
//! dequantized on the host with the reference dequantizers. Only one tensor's bytes are in host
//! memory at a time.

use burn::tensor::{Tensor, TensorData};

use crate::gguf::{ByteSource, GgmlType, GgufHeader, TensorInfo, dequant};

use super::config::LlamaConfig;
use super::device::{ComputeDevice, DeviceChoice};
use super::error::ModelError;
use super::quant::QuantMatrix;

/// A weight matrix `W [out, in]` (GGUF's layout) on the device, dense or block-quantized.
#[derive(Debug, Clone)]
pub(crate) enum Linear {
    /// f32 values (boxed: a Burn tensor is large beside a [`QuantMatrix`]).
    Dense(Box<Tensor<2>>),
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
}

/// The token-embedding table, kept on the host in the file's format: each lookup dequantizes
/// only the rows it needs (the 8B's table is 295 MB as Q4_K, and the GPU never needs it whole
/// unless the output head is tied to it).
#[derive(Debug, Clone)]
pub(crate) struct HostEmbedding {
    bytes: Vec<u8>,
    format: GgmlType,
    rows: usize,
    cols: usize,
    row_bytes: usize,
}

impl HostEmbedding {
    /// The table `info` describes, from its bytes.
    pub(crate) fn new(info: &TensorInfo, bytes: Vec<u8>) -> Self {
        let cols = info.dims[0] as usize;
        let rows = info.dims.get(1).copied().unwrap_or(1) as usize;
        Self {
            row_bytes: bytes.len() / rows.max(1),
            bytes,
            format: info.ggml_type,
            rows,
            cols,
        }
    }

    /// Rows `ids` in f32 on `device`, `[ids.len(), cols]`. Ids must be `< rows`.
    pub(crate) fn lookup(
        &self,
        ids: &[u32],
        device: &ComputeDevice,
    ) -> Result<Tensor<2>, ModelError> {
        Ok(Tensor::from_data(
            TensorData::new(self.rows(ids)?, [ids.len(), self.cols]),
            device.burn(),
        ))
    }

    /// Rows `ids` in f32 on the host, `[ids.len(), cols]` row-major. Ids must be `< rows`.
    pub(crate) fn rows(&self, ids: &[u32]) -> Result<Vec<f32>, ModelError> {
        let mut values = vec![0f32; ids.len() * self.cols];
        for (&id, out) in ids.iter().zip(values.chunks_mut(self.cols)) {
            let id = id as usize;
            debug_assert!(id < self.rows);
            let row = &self.bytes[id * self.row_bytes..(id + 1) * self.row_bytes];
            dequant::dequantize_into(self.format, row, out)?;
        }
        Ok(values)
    }

    /// Bytes held on the host.
    pub(crate) fn host_bytes(&self) -> u64 {
        self.bytes.len() as u64
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
    pub(crate) async fn linear(&mut self, name: &str) -> Result<Linear, ModelError> {
        let (info, bytes) = self.read_bytes(name).await?;
        self.linear_from(info, &bytes)
    }

    /// [`TensorLoader::linear`] from bytes already read.
    pub(crate) fn linear_from(
        &self,
        info: &TensorInfo,
        bytes: &[u8],
    ) -> Result<Linear, ModelError> {
        if self.device.choice() == DeviceChoice::Wgpu {
            return Ok(Linear::Quant(QuantMatrix::upload(
                info,
                bytes,
                self.device,
            )?));
        }
        let values = dequantized(info, bytes)?;
        let [cols, rows] =
            [info.dims[0], info.dims.get(1).copied().unwrap_or(1)].map(|d| d as usize);
        Ok(Linear::Dense(Box::new(Tensor::from_data(
            TensorData::new(values, [rows, cols]),
            self.device.burn(),
        ))))
    }

    /// The 1-D tensor `name` in f32, on the device.
    pub(crate) async fn vector(&mut self, name: &str) -> Result<Tensor<1>, ModelError> {
        let values = self.host_vector(name).await?;
        let n = values.len();
        Ok(Tensor::from_data(
            TensorData::new(values, [n]),
            self.device.burn(),
        ))
    }

    /// The 1-D tensor `name` in f32, kept on the host (small tables such as `rope_freqs`).
    pub(crate) async fn host_vector(&mut self, name: &str) -> Result<Vec<f32>, ModelError> {
        let (info, bytes) = self.read_bytes(name).await?;
        dequantized(info, &bytes)
    }

    /// The bytes of tensor `name`, exactly as stored (fetched: one Range request in the browser).
    pub(crate) async fn read_bytes(
        &mut self,
        name: &str,
    ) -> Result<(&'a TensorInfo, Vec<u8>), ModelError> {
        let header = self.header;
        let info = header
            .tensor(name)
            .ok_or_else(|| crate::gguf::GgufError::NoSuchTensor { name: name.into() })?;
        let bytes = header.fetch_tensor_bytes(self.source, name).await?;
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
