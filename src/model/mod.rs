//! The model layer: the Llama hyper-parameters and everything that touches Burn tensors. Burn
//! types stay inside this module (and the kernels, later); the layers above see plain Rust values.

pub mod config;
#[cfg(feature = "gpu")]
pub mod device;
#[cfg(feature = "gpu")]
pub mod selftest;
