//! The key/value cache: every past token's keys and values, per block.
//!
//! On the wgpu device the cache is preallocated for the whole context: per block, one buffer of
//! key rows and one of value rows (`[kv_heads, capacity, row]`), written in place by the
//! attention kernels, in f32, f16 or 8-bit with a scale per row ([`KvFormat`]). On the CPU device
//! (the reference) it is f32 tensors that grow by concatenation.

use burn::tensor::{DType, Int, Tensor};

use super::config::LlamaConfig;
use super::device::{ComputeDevice, DeviceChoice};
use super::error::ModelError;
use super::llama::GraphSlot;
use super::plan::{KvFormat, SEGMENT_KEYS};
use super::quant::{DecodeKernel, MAX_CHUNK_BYTES};

/// The shape of a preallocated cache, as the kernels see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvLayout {
    /// KV heads.
    pub kv_heads: usize,
    /// Values per head.
    pub head_dim: usize,
    /// Tokens each buffer holds.
    pub capacity: usize,
    /// How a row is stored.
    pub format: KvFormat,
    /// Units per cube of the cache kernels (`DecodeKernel::cube_units`: 8 on a software GPU, 64
    /// on hardware).
    pub cube_units: u32,
    /// Keys one unit of the attention reads a query token (`DecodeKernel::segment_keys`).
    pub segment_keys: usize,
}

impl KvLayout {
    /// u32 words in one block's key (or value) buffer.
    fn words(&self) -> usize {
        self.kv_heads * self.capacity * self.format.row_bytes(self.head_dim) as usize / 4
    }

    /// One block's keys (or values) in bytes, in 64 bits: on wasm32 a long context's count
    /// would overflow `usize` before it could be refused.
    fn bytes(&self) -> u64 {
        self.kv_heads as u64 * self.capacity as u64 * self.format.row_bytes(self.head_dim)
    }
}

/// Where the keys and values live.
#[derive(Debug, Clone)]
pub(crate) enum Store {
    /// Preallocated rows on the wgpu device, per block `(keys, values)`.
    Rows {
        layers: Vec<(Tensor<1, Int>, Tensor<1, Int>)>,
        layout: KvLayout,
    },
    /// `[kv_heads, tokens, head_dim]` f32 tensors per block (CPU device).
    Tensors(Vec<Option<(Tensor<3>, Tensor<3>)>>),
}

/// Keys and values of the tokens seen so far. A cache belongs to one sequence; start a new one
/// (or [`KvCache::clear`]) for the next.
#[derive(Debug, Clone)]
pub struct KvCache {
    pub(crate) store: Store,
    /// The decode step recorded against this cache's buffers, if any.
    pub(crate) decode_graph: GraphSlot,
    len: usize,
    capacity: usize,
}

impl KvCache {
    /// An empty cache for `config`'s blocks holding at most `capacity` tokens in `format`.
    /// On the wgpu device every row is allocated now; the CPU device keeps f32 only.
    pub fn new(
        config: &LlamaConfig,
        capacity: usize,
        format: KvFormat,
        device: &ComputeDevice,
    ) -> Result<Self, ModelError> {
        let store = match device.choice() {
            DeviceChoice::Cpu if format != KvFormat::F32 => {
                return Err(ModelError::BadInput {
                    detail: format!("a {} KV cache needs the wgpu device", format.name()),
                });
            }
            DeviceChoice::Cpu => Store::Tensors(vec![None; config.n_layers]),
            DeviceChoice::Wgpu => {
                let kernel = DecodeKernel::for_device(device);
                let layout = KvLayout {
                    kv_heads: config.n_kv_heads,
                    head_dim: config.head_dim,
                    capacity,
                    format,
                    cube_units: kernel.cube_units(),
                    segment_keys: kernel.segment_keys(),
                };
                let per_word = format.values_per_word();
                if !config.head_dim.is_multiple_of(per_word) {
                    return Err(ModelError::Unsupported {
                        detail: format!(
                            "a {} KV cache needs heads of a multiple of {per_word} values, not {}",
                            format.name(),
                            config.head_dim
                        ),
                    });
                }
                let bytes = layout.bytes();
                if bytes > MAX_CHUNK_BYTES as u64 {
                    return Err(ModelError::TooBig {
                        detail: format!(
                            "a {} KV cache of {capacity} tokens needs {bytes} bytes per block's keys, \
                             more than one storage binding holds ({MAX_CHUNK_BYTES}); \
                             use a smaller context or the q8 cache",
                            format.name()
                        ),
                    });
                }
                let buffer =
                    || Tensor::<1, Int>::zeros([layout.words()], (device.burn(), DType::U32));
                let layers = (0..config.n_layers).map(|_| (buffer(), buffer())).collect();
                Store::Rows { layers, layout }
            }
        };
        Ok(Self {
            store,
            decode_graph: GraphSlot::default(),
            len: 0,
            capacity,
        })
    }

    /// Tokens cached so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no token is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Tokens the cache can hold (the context size).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Keys one unit of the attention reads a query token on this cache (the segments the
    /// attention kernels split the cached keys into: `plan::attention_segments`).
    pub fn segment_keys(&self) -> usize {
        match &self.store {
            Store::Rows { layout, .. } => layout.segment_keys,
            Store::Tensors(_) => SEGMENT_KEYS,
        }
    }

    /// How keys and values are stored.
    pub fn format(&self) -> KvFormat {
        match &self.store {
            Store::Rows { layout, .. } => layout.format,
            Store::Tensors(_) => KvFormat::F32,
        }
    }

    /// Bytes the cache holds on its device now (preallocated rows: all of them).
    pub fn device_bytes(&self) -> u64 {
        let bytes = |t: &Tensor<1, Int>| t.shape().num_elements() as u64 * 4;
        match &self.store {
            Store::Rows { layers, .. } => layers.iter().map(|(k, v)| bytes(k) + bytes(v)).sum(),
            Store::Tensors(layers) => layers
                .iter()
                .flatten()
                .map(|(k, v)| (k.shape().num_elements() + v.shape().num_elements()) as u64 * 4)
                .sum(),
        }
    }

    /// Whether a decode step is recorded against this cache, so the next one replays it
    /// (`ComputeDevice::with_decode_graphs`).
    pub fn has_decode_graph(&self) -> bool {
        matches!(self.decode_graph, GraphSlot::Ready(_))
    }

    /// Whether the rows are preallocated on the device (wgpu), so that [`KvCache::advance`]
    /// over rows never written reads zeros (the warm-up's use).
    pub(crate) fn is_preallocated(&self) -> bool {
        matches!(self.store, Store::Rows { .. })
    }

    /// Whether attention over this cache needs an explicit causal mask (the CPU path).
    pub(crate) fn needs_mask(&self) -> bool {
        matches!(self.store, Store::Tensors(_))
    }

    /// Forgets every token (preallocated rows stay allocated and are overwritten).
    pub fn clear(&mut self) {
        self.truncate(0);
    }

    /// Forgets every token from the `n`-th on (nothing when it holds `n` or fewer): a cache kept
    /// from one request serves the next when their token sequences share their first `n`.
    pub fn truncate(&mut self, n: usize) {
        if n >= self.len {
            return;
        }
        if let Store::Tensors(layers) = &mut self.store {
            for layer in layers.iter_mut() {
                *layer = match (layer.take(), n) {
                    (Some((k, v)), 1..) => Some((k.narrow(1, 0, n), v.narrow(1, 0, n))),
                    _ => None,
                };
            }
        }
        self.len = n;
    }

    /// Records that `n` more tokens were appended to every block.
    pub(crate) fn advance(&mut self, n: usize) {
        self.len += n;
    }
}
