//! The memory plan: from a GGUF header and a context size, the GPU bytes a model will take,
//! before any byte of it is downloaded. Auto mode compares this with the adapter.

use serde::Serialize;

use crate::gguf::{GgmlType, GgufHeader};

use super::config::LlamaConfig;

/// How the KV cache stores keys and values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KvFormat {
    /// 4 bytes an element (what the engine uses today).
    F32,
    /// 2 bytes an element (needs `shader-f16`; planned).
    F16,
    /// 1 byte an element plus an f32 scale per 32 (planned).
    Q8,
}

impl KvFormat {
    /// Bytes for `elements` cached values.
    pub fn bytes(self, elements: u64) -> u64 {
        match self {
            KvFormat::F32 => elements * 4,
            KvFormat::F16 => elements * 2,
            KvFormat::Q8 => elements + elements.div_ceil(32) * 4,
        }
    }
}

/// Tokens the engine runs through the model at once while prefilling.
pub const PREFILL_CHUNK: usize = 64;

/// Where a model's bytes go, for one context size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemoryPlan {
    /// Context size planned for.
    pub context: usize,
    /// The KV cache's format.
    pub kv_format: KvFormat,
    /// Weights on the GPU: every matrix in its file format, norms in f32 (the token-embedding
    /// table only when the output head is tied to it).
    pub weight_bytes: u64,
    /// Weights kept on the host: the token-embedding table in its file format.
    pub host_bytes: u64,
    /// The KV cache, full.
    pub kv_cache_bytes: u64,
    /// The largest transient activations of a step: a prefill chunk of [`PREFILL_CHUNK`]
    /// tokens attending over the full context (scores and probabilities, projections, MLP).
    pub activation_bytes: u64,
    /// What the GPU must hold: weights + KV cache + activations.
    pub total_gpu_bytes: u64,
    /// The largest single tensor on the GPU (bound by the adapter's binding size, in chunks).
    pub largest_tensor_bytes: u64,
}

impl MemoryPlan {
    /// The plan for `config` (read from `header`) at `context` tokens.
    pub fn new(
        header: &GgufHeader,
        config: &LlamaConfig,
        context: usize,
        kv_format: KvFormat,
    ) -> Self {
        let mut weight_bytes = 0;
        let mut host_bytes = 0;
        let mut largest_tensor_bytes = 0;
        for (name, _) in config.expected_tensors() {
            let Some(t) = header.tensor(&name) else {
                continue;
            };
            match name.as_str() {
                "rope_freqs.weight" => host_bytes += t.n_bytes,
                "token_embd.weight" => {
                    host_bytes += t.n_bytes;
                    if config.tied_embeddings {
                        weight_bytes += t.n_bytes;
                        largest_tensor_bytes = largest_tensor_bytes.max(t.n_bytes);
                    }
                }
                _ => {
                    // 1-D tensors (norms) are uploaded as f32 whatever their file type.
                    let bytes = match t.dims.len() {
                        1 => t.n_elements * 4,
                        _ if t.ggml_type == GgmlType::F32 => t.n_bytes,
                        _ => t.n_bytes.next_multiple_of(4),
                    };
                    weight_bytes += bytes;
                    largest_tensor_bytes = largest_tensor_bytes.max(bytes);
                }
            }
        }
        let c = config;
        let ctx = context as u64;
        let kv_width = (c.n_kv_heads * c.head_dim) as u64;
        let kv_cache_bytes = kv_format.bytes(c.n_layers as u64 * 2 * kv_width * ctx);
        let p = PREFILL_CHUNK.min(context) as u64;
        let q_width = (c.n_heads * c.head_dim) as u64;
        let f32s = |n: u64| n * 4;
        let activation_bytes = f32s(2 * c.n_heads as u64 * p * ctx) // scores, probabilities
            + f32s(p * ctx) // causal mask
            + f32s(p * (3 * c.hidden_size as u64 + 2 * q_width + 2 * kv_width)) // residual, norms, q/k/v, attention out
            + f32s(3 * p * c.ffn_size as u64) // gate, up, product
            + f32s(2 * kv_width * ctx) // one block's keys and values while they grow
            + f32s(c.vocab_size as u64); // logits
        Self {
            context,
            kv_format,
            weight_bytes,
            host_bytes,
            kv_cache_bytes,
            activation_bytes,
            total_gpu_bytes: weight_bytes + kv_cache_bytes + activation_bytes,
            largest_tensor_bytes,
        }
    }
}
