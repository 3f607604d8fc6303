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
    /// Bad arguments to a forward pass (a token id outside the vocabulary, mismatched lengths).
    #[error("bad input: {detail}")]
    BadInput {
        /// What was wrong.
        detail: String,
    },
}
