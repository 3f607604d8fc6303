//! The model layer: everything that touches Burn tensors. Burn types stay inside this module
//! (and the kernels, later); the layers above see plain Rust values.

pub mod device;
pub mod selftest;
