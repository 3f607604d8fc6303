//! The memory plan: from a GGUF header and a context size, the GPU bytes a model will take,
//! before any byte of it is downloaded. Auto mode compares this with the adapter.

use serde::Serialize;

use crate::gguf::GgufHeader;

use super::config::LlamaConfig;
use super::device::DeviceChoice;
use super::quant::{Cooperative, DecodeKernel, device_bytes_for};

/// How the KV cache stores keys and values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KvFormat {
    /// f32 values: exactly what the model computed (the fidelity reference; the CPU device's
    /// only format).
    F32,
    /// 8-bit values with one f32 scale per token and head (`max|x| / 127`): a quarter of the
    /// bytes (the default on the wgpu device; logits within ~5e-3 relative of the f32 cache on
    /// the tiny model, the same greedy answers on SmolLM2 — `tests/kv_cache.rs`).
    Q8,
    /// IEEE half-precision values, two a word (rounded to nearest even, written and read with
    /// integer operations, so no `shader-f16` is needed): half the f32 cache's bytes, and
    /// about 16× closer to it than the q8 cache on the tiny model (`tests/kv_cache.rs`) —
    /// the cache llama.cpp keeps by default.
    F16,
}

impl KvFormat {
    /// Every format, the exact one first.
    pub const ALL: [KvFormat; 3] = [KvFormat::F32, KvFormat::F16, KvFormat::Q8];

    /// The format a cache gets unless asked otherwise: q8 where the kernels run (wgpu), f32 on
    /// the CPU device.
    pub fn default_for(device: DeviceChoice) -> KvFormat {
        match device {
            DeviceChoice::Wgpu => KvFormat::Q8,
            DeviceChoice::Cpu => KvFormat::F32,
        }
    }

    /// Bytes of one token's keys (or values) for one KV head of `head_dim` values.
    pub fn row_bytes(self, head_dim: usize) -> u64 {
        match self {
            KvFormat::F32 => head_dim as u64 * 4,
            KvFormat::Q8 => head_dim as u64 + 4,
            KvFormat::F16 => head_dim as u64 * 2,
        }
    }

    /// The name used on the command line and in reports (`f32`, `f16`, `q8`).
    pub fn name(self) -> &'static str {
        match self {
            KvFormat::F32 => "f32",
            KvFormat::Q8 => "q8",
            KvFormat::F16 => "f16",
        }
    }

    /// The values a head's row must be a multiple of: a q8 word holds 4 values, an f16 word 2.
    pub fn values_per_word(self) -> usize {
        match self {
            KvFormat::F32 => 1,
            KvFormat::Q8 => 4,
            KvFormat::F16 => 2,
        }
    }
}

impl std::str::FromStr for KvFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KvFormat::ALL
            .into_iter()
            .find(|format| format.name() == s)
            .ok_or_else(|| format!("unknown KV cache format `{s}` (expected f32, f16 or q8)"))
    }
}

/// Tokens the engine runs through the model at once while prefilling.
pub const PREFILL_CHUNK: usize = 64;

/// Keys one unit of the attention kernel reads per query token on a software GPU (a hardware
/// GPU's: `DecodeKernel::segment_keys`).
pub const SEGMENT_KEYS: usize = 256;

/// How the attention kernels split `total` keys for `tokens` queries: `(segments, keys per
/// segment)`, `segment_keys` keys a query token (the device's `DecodeKernel::segment_keys`), so
/// that a long context still spreads over many units: for one token (decode) segments of
/// `segment_keys`, for a prefill chunk of 64 tokens 64 times as many (its queries are units too).
pub fn attention_segments(tokens: usize, total: usize, segment_keys: usize) -> (usize, usize) {
    let seg_len = segment_keys * tokens.max(1);
    (total.div_ceil(seg_len).max(1), seg_len)
}

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
    /// The KV cache, preallocated for the whole context.
    pub kv_cache_bytes: u64,
    /// The largest transient activations of a step: a prefill chunk of [`PREFILL_CHUNK`]
    /// tokens at the end of the full context (projections, the attention kernel's partial
    /// results, the MLP, the logits). The kernels keep no score matrix.
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
                        let bytes = device_bytes_for(t);
                        weight_bytes += bytes;
                        largest_tensor_bytes = largest_tensor_bytes.max(bytes);
                    }
                }
                _ => {
                    // 1-D tensors (norms) are uploaded as f32 whatever their file type;
                    // matrices as their blocks (counted as one chunk each).
                    let bytes = match t.dims.len() {
                        1 => t.n_elements * 4,
                        _ => device_bytes_for(t),
                    };
                    weight_bytes += bytes;
                    largest_tensor_bytes = largest_tensor_bytes.max(bytes);
                }
            }
        }
        let c = config;
        let ctx = context as u64;
        let kv_cache_bytes =
            c.n_layers as u64 * 2 * c.n_kv_heads as u64 * ctx * kv_format.row_bytes(c.head_dim);
        let p = PREFILL_CHUNK.min(context.max(1));
        // The most segments any device's default kernel makes (a hardware GPU's).
        let segment_keys = DecodeKernel::Cooperative(Cooperative::DEFAULT).segment_keys();
        let (segments, _) = attention_segments(p, context, segment_keys);
        let p = p as u64;
        let q_width = (c.n_heads * c.head_dim) as u64;
        let kv_width = (c.n_kv_heads * c.head_dim) as u64;
        let f32s = |n: u64| n * 4;
        let activation_bytes = f32s(p * (3 * c.hidden_size as u64 + 3 * q_width + 3 * kv_width)) // residual, norms, q/k/v before and after RoPE, attention out
            + f32s(c.n_heads as u64 * p * segments as u64 * (c.head_dim as u64 + 2)) // attention segments
            + f32s(3 * p * c.ffn_size as u64) // gate, up, product
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
