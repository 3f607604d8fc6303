//! The Llama hyper-parameters, read from GGUF metadata in exactly one place.
//!
//! Keys are llama.cpp's (`llama.*`); defaults are llama.cpp's where a key may be absent.
//! Llama 3's RoPE scaling is not metadata but the tensor `rope_freqs.weight` (one factor per
//! rotary pair), and tied embeddings show as a missing `output.weight`.

use serde::Serialize;

use crate::gguf::{GgufError, GgufHeader};

/// Why a GGUF file is not a model we can run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file itself is malformed, or a key is missing or mistyped.
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// `general.architecture` names a model family we do not run.
    #[error("architecture `{architecture}` is not supported (llama-web runs `llama`)")]
    UnsupportedArchitecture {
        /// The architecture in the file.
        architecture: String,
    },
    /// Hyper-parameters or tensor shapes that contradict each other.
    #[error("inconsistent model: {detail}")]
    Inconsistent {
        /// What does not fit.
        detail: String,
    },
}

/// The hyper-parameters of a Llama-architecture model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LlamaConfig {
    /// Transformer blocks (`llama.block_count`).
    pub n_layers: usize,
    /// Residual width (`llama.embedding_length`).
    pub hidden_size: usize,
    /// MLP inner width (`llama.feed_forward_length`).
    pub ffn_size: usize,
    /// Query heads (`llama.attention.head_count`).
    pub n_heads: usize,
    /// Key/value heads (`llama.attention.head_count_kv`; default: `n_heads`).
    pub n_kv_heads: usize,
    /// Width of one head (`llama.attention.key_length`; default: `hidden_size / n_heads`).
    pub head_dim: usize,
    /// Vocabulary size (`llama.vocab_size`; default: rows of `token_embd.weight`).
    pub vocab_size: usize,
    /// Trained context length (`llama.context_length`).
    pub context_length: usize,
    /// RMSNorm epsilon (`llama.attention.layer_norm_rms_epsilon`; default 1e-5).
    pub rms_eps: f64,
    /// RoPE base (`llama.rope.freq_base`; default 10000).
    pub rope_theta: f64,
    /// Whether `rope_freqs.weight` gives per-pair frequency divisors (Llama 3.1 scaling).
    pub rope_freqs: bool,
    /// Whether the output head reuses the token embedding (no `output.weight`).
    pub tied_embeddings: bool,
}

impl LlamaConfig {
    /// Reads and checks the hyper-parameters and the shapes of every tensor the forward pass
    /// needs. A non-Llama architecture is [`ConfigError::UnsupportedArchitecture`].
    pub fn from_gguf(h: &GgufHeader) -> Result<Self, ConfigError> {
        let architecture = h.require_str("general.architecture")?;
        if architecture != "llama" {
            return Err(ConfigError::UnsupportedArchitecture {
                architecture: architecture.into(),
            });
        }
        let usize_key =
            |key: &str| -> Result<usize, ConfigError> { to_usize(key, h.require_u64(key)?) };
        let optional_usize = |key: &str| -> Result<Option<usize>, ConfigError> {
            h.get(key).map(|_| usize_key(key)).transpose()
        };
        let optional_f64 = |key: &str, default: f64| -> Result<f64, ConfigError> {
            Ok(match h.get(key) {
                Some(_) => h.require_f64(key)?,
                None => default,
            })
        };

        let hidden_size = usize_key("llama.embedding_length")?;
        let n_heads = usize_key("llama.attention.head_count")?;
        if n_heads == 0 || hidden_size == 0 {
            return inconsistent(format!("{n_heads} heads, width {hidden_size}"));
        }
        let embd = h
            .tensor("token_embd.weight")
            .ok_or_else(|| GgufError::NoSuchTensor {
                name: "token_embd.weight".into(),
            })?;
        let config = Self {
            n_layers: usize_key("llama.block_count")?,
            hidden_size,
            ffn_size: usize_key("llama.feed_forward_length")?,
            n_heads,
            n_kv_heads: optional_usize("llama.attention.head_count_kv")?.unwrap_or(n_heads),
            head_dim: optional_usize("llama.attention.key_length")?
                .unwrap_or(hidden_size / n_heads),
            vocab_size: match optional_usize("llama.vocab_size")? {
                Some(v) => v,
                None => to_usize("rows of token_embd.weight", *embd.dims.get(1).unwrap_or(&0))?,
            },
            context_length: usize_key("llama.context_length")?,
            rms_eps: optional_f64("llama.attention.layer_norm_rms_epsilon", 1e-5)?,
            rope_theta: optional_f64("llama.rope.freq_base", 10_000.0)?,
            rope_freqs: h.tensor("rope_freqs.weight").is_some(),
            tied_embeddings: h.tensor("output.weight").is_none(),
        };
        config.check_hyper_parameters()?;
        // Each block has nine tensors: a block count beyond the tensor table is a corrupt
        // header, not a reason to list millions of expected names.
        if config.n_layers > h.tensors().len() / 9 {
            return inconsistent(format!(
                "{} blocks, but the file has only {} tensors",
                config.n_layers,
                h.tensors().len()
            ));
        }
        config.check_tensor_shapes(h)?;
        Ok(config)
    }

    fn check_hyper_parameters(&self) -> Result<(), ConfigError> {
        if self.n_layers == 0 || self.ffn_size == 0 || self.vocab_size == 0 || self.n_kv_heads == 0
        {
            return inconsistent(format!("zero-sized hyper-parameter in {self:?}"));
        }
        if !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return inconsistent(format!(
                "{} query heads for {} KV heads",
                self.n_heads, self.n_kv_heads
            ));
        }
        let widths = [self.n_heads, self.n_kv_heads].map(|heads| {
            heads
                .checked_mul(self.head_dim)
                .and_then(|w| w.checked_mul(2))
        });
        if widths.contains(&None) {
            return inconsistent(format!(
                "{} heads of width {} overflow",
                self.n_heads, self.head_dim
            ));
        }
        if self.head_dim == 0 || !self.head_dim.is_multiple_of(2) {
            return inconsistent(format!(
                "head width {} is not a positive even number",
                self.head_dim
            ));
        }
        if !(self.rms_eps > 0.0 && self.rope_theta > 0.0) {
            return inconsistent(format!(
                "rms_eps {} and rope_theta {} must be positive",
                self.rms_eps, self.rope_theta
            ));
        }
        Ok(())
    }

    /// Every tensor the forward pass reads, with its GGUF shape (innermost first).
    pub fn expected_tensors(&self) -> Vec<(String, Vec<u64>)> {
        let [d, f, v] = [self.hidden_size, self.ffn_size, self.vocab_size].map(|x| x as u64);
        let q = (self.n_heads * self.head_dim) as u64;
        let kv = (self.n_kv_heads * self.head_dim) as u64;
        let mut out = vec![
            ("token_embd.weight".to_string(), vec![d, v]),
            ("output_norm.weight".into(), vec![d]),
        ];
        if !self.tied_embeddings {
            out.push(("output.weight".into(), vec![d, v]));
        }
        if self.rope_freqs {
            out.push(("rope_freqs.weight".into(), vec![self.head_dim as u64 / 2]));
        }
        for i in 0..self.n_layers {
            let b = |n: &str| format!("blk.{i}.{n}.weight");
            out.extend([
                (b("attn_norm"), vec![d]),
                (b("attn_q"), vec![d, q]),
                (b("attn_k"), vec![d, kv]),
                (b("attn_v"), vec![d, kv]),
                (b("attn_output"), vec![q, d]),
                (b("ffn_norm"), vec![d]),
                (b("ffn_gate"), vec![d, f]),
                (b("ffn_up"), vec![d, f]),
                (b("ffn_down"), vec![f, d]),
            ]);
        }
        out
    }

    fn check_tensor_shapes(&self, h: &GgufHeader) -> Result<(), ConfigError> {
        for (name, dims) in self.expected_tensors() {
            let t = h
                .tensor(&name)
                .ok_or(GgufError::NoSuchTensor { name: name.clone() })?;
            if t.dims != dims {
                return inconsistent(format!(
                    "`{name}` has shape {:?}, the hyper-parameters say {dims:?}",
                    t.dims
                ));
            }
        }
        Ok(())
    }
}

fn to_usize(what: &str, v: u64) -> Result<usize, ConfigError> {
    usize::try_from(v).or_else(|_| inconsistent(format!("{what} = {v} does not fit this platform")))
}

fn inconsistent<T>(detail: String) -> Result<T, ConfigError> {
    Err(ConfigError::Inconsistent { detail })
}
