//! The model layer: the Llama hyper-parameters and everything that touches Burn tensors. Burn
//! types stay inside this module: the kernels (`argmax`, `attention`, `project`, `quant`, `top`) and
//! the weights are crate-private, and no public item takes or returns a Burn type, so a Burn
//! upgrade is not a breaking change; the layers above see plain Rust values.

#[cfg(feature = "gpu")]
pub(crate) mod argmax;
#[cfg(feature = "gpu")]
pub(crate) mod attention;
pub mod config;
#[cfg(feature = "gpu")]
pub mod device;
#[cfg(feature = "gpu")]
pub mod error;
#[cfg(feature = "gpu")]
pub mod kv_cache;
#[cfg(feature = "gpu")]
pub mod llama;
#[cfg(feature = "gpu")]
pub mod plan;
#[cfg(feature = "gpu")]
pub(crate) mod project;
#[cfg(feature = "gpu")]
pub(crate) mod quant;
pub mod rope;
#[cfg(feature = "gpu")]
pub mod selftest;
pub mod synthetic;
#[cfg(feature = "gpu")]
pub(crate) mod top;
#[cfg(feature = "gpu")]
pub(crate) mod weights;

#[cfg(feature = "gpu")]
pub use quant::{Arithmetic, Cooperative, DecodeKernel, Prefill, Subgroups};
#[cfg(feature = "gpu")]
pub use top::{Shortlist, TopLogits};
#[cfg(feature = "gpu")]
pub use weights::LoadProgress;
