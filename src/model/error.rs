//! The model layer's error type.

use crate::gguf::GgufError;

use super::config::ConfigError;
use super::device::DeviceError;

/// What can go wrong while loading or running the model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The file is malformed or a tensor cannot be read.
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// The hyper-parameters are missing, unsupported or inconsistent.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The device failed, or is not available.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// The prompt and the tokens to generate do not fit in the context.
    #[error("context overflow: {needed} tokens needed, the context holds {context_size}")]
    ContextOverflow {
        /// Tokens the cache would have to hold.
        needed: usize,
        /// Tokens it can hold.
        context_size: usize,
    },
    /// Bad arguments to a forward pass (a token id outside the vocabulary, mismatched lengths)
    /// or a setting the device cannot honour (a q8 cache on the CPU device).
    #[error("bad input: {detail}")]
    BadInput {
        /// What was wrong.
        detail: String,
    },
    /// The file holds what our kernels cannot run (a tensor format or shape they do not take).
    #[error("unsupported model: {detail}")]
    Unsupported {
        /// What is not supported.
        detail: String,
    },
    /// The model or its KV cache does not fit what the GPU can bind or hold.
    #[error("too big for this GPU: {detail}")]
    TooBig {
        /// What does not fit.
        detail: String,
    },
}
