//! # llama-web
//!
//! Llama 3.1 8B Instruct in the browser: an OpenAI-shaped chat-completions API over a local
//! WebGPU backend (Burn + our own CubeCL kernels) or a remote OpenAI-compatible endpoint.
//! The same Rust code builds natively (Vulkan through wgpu, and a CPU device) for tests, the
//! CLI and benchmarks. `../shared/DESIGN.md` in the project is the target design.
//!
//! What exists today (the foundation):
//!
//! - [`model::device`]: picking and initialising a compute device — wgpu (WebGPU in the
//!   browser, Vulkan natively) or the pure-Rust CPU device — with typed errors.
//! - [`model::selftest`]: a matmul on that device, read back asynchronously, used as the
//!   start-up numeric self-test (a broken shader on wasm only logs; a wrong number is visible).
//! - `wasm` (wasm32 only): the JS-facing functions the demo page calls.
//!
//! ```no_run
//! # #[cfg(all(not(target_arch = "wasm32"), feature = "gpu"))]
//! # fn main() -> Result<(), llama_web::model::device::DeviceError> {
//! use llama_web::model::device::{ComputeDevice, DeviceChoice};
//! use llama_web::model::selftest::{Matrix, matmul_on_device};
//!
//! let device = ComputeDevice::init_native(DeviceChoice::Cpu)?;
//! let a = Matrix::new(1, 2, vec![1.0, 2.0])?;
//! let b = Matrix::new(2, 1, vec![3.0, 4.0])?;
//! let c = pollster::block_on(matmul_on_device(&device, &a, &b))?;
//! assert_eq!(c.values(), &[11.0]);
//! # Ok(())
//! # }
//! # #[cfg(any(target_arch = "wasm32", not(feature = "gpu")))]
//! # fn main() {}
//! ```
#![deny(missing_docs)]

#[cfg(feature = "gpu")]
pub mod engine;
pub mod gguf;
pub mod model;
pub mod npy;
pub mod tokenizer;

#[cfg(all(target_arch = "wasm32", feature = "gpu"))]
pub mod wasm;
