//! The model layer: the Llama hyper-parameters and everything that touches Burn tensors. Burn
//! types stay inside this module (and the kernels, later); the layers above see plain Rust values.

#[cfg(feature = "gpu")]
pub mod argmax;
#[cfg(feature = "gpu")]
pub mod attention;
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
pub mod project;
#[cfg(feature = "gpu")]
pub mod quant;
pub mod rope;
#[cfg(feature = "gpu")]
pub mod selftest;
pub mod synthetic;
#[cfg(feature = "gpu")]
pub mod weights;
