//! # llama-web
//!
//! Llama 3.1 8B Instruct in the browser: an OpenAI-shaped chat-completions API over a local
//! WebGPU backend (Burn + our own CubeCL kernels) or a remote OpenAI-compatible endpoint.
//! The same Rust code builds natively (Vulkan through wgpu, and a CPU device) for tests, the
//! CLI and benchmarks. `../shared/DESIGN.md` in the project is the target design.
//!
//! The layers, top to bottom of the data flow:
//!
//! - [`gguf`]: the GGUF reader over ranged byte sources, and reference dequantizers.
//! - [`tokenizer`]: the tokenizer from GGUF metadata, streaming detokenization, chat templates.
//! - [`model`]: the Llama hyper-parameters; with the `gpu` feature (default) the devices
//!   ([`model::device`]), the start-up self-test, and the forward pass ([`model::llama`]).
//! - `engine` (`gpu` feature): prefill/decode, sampling, stop conditions, usage, cancellation.
//! - [`store`]: the browser's model store, its plain-Rust parts (pieces, versions, checks).
//! - [`npy`]: `.npy` files of f32.
//! - `wasm` (wasm32 only): the JS-facing functions the demo page calls.
//!
//! What a Rust user needs is re-exported here: the [`Engine`] and its request and answer types,
//! the sampling parameters, the devices, the GGUF reader, the tokenizer, the OpenAI-shaped
//! [`ChatParams`], and each layer's error. Burn's types are not part of the public surface
//! (they stay inside `model/`), so a Burn upgrade is not a breaking change.
//!
//! Generating from a GGUF file natively:
//!
//! ```no_run
//! # #[cfg(all(not(target_arch = "wasm32"), feature = "gpu"))]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::ops::ControlFlow;
//! use llama_web::{ComputeDevice, DeviceChoice, Engine, FileSource, GenerateRequest, GgufHeader};
//! use llama_web::SamplingParams;
//!
//! let source = FileSource::open("models/SmolLM2-135M-Instruct.Q4_1.gguf")?;
//! let header = GgufHeader::read(&source)?;
//! let device = ComputeDevice::init_native(DeviceChoice::Wgpu)?;
//! let engine = pollster::block_on(Engine::load(&header, &source, &device, None, &mut |_| {}))?;
//! let messages = serde_json::json!([{"role": "user", "content": "Hi!"}]);
//! let request = GenerateRequest {
//!     prompt: engine.chat_prompt(&messages, None)?,
//!     max_tokens: 64,
//!     sampling: SamplingParams::greedy(),
//!     stop: vec![],
//!     ignore_eos: false,
//!     grammar: None,
//!     logprobs: None,
//! };
//! let done = pollster::block_on(engine.generate(&request, &mut |delta| {
//!     print!("{}", delta.text);
//!     ControlFlow::Continue(())
//! }))?;
//! println!("\n{:?}, {} tokens", done.finish_reason, done.usage.completion_tokens);
//! # Ok(())
//! # }
//! # #[cfg(any(target_arch = "wasm32", not(feature = "gpu")))]
//! # fn main() {}
//! ```
//!
//! The device self-test, the first thing a page runs on a new device:
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

// The OpenAI surface and the backends need the engine; without `gpu` the crate is the
// host-side layers alone (what the fuzz crate builds).
#[cfg(feature = "gpu")]
pub mod api;
#[cfg(feature = "gpu")]
pub mod engine;
pub mod gguf;
pub mod model;
pub mod npy;
#[cfg(feature = "gpu")]
pub mod remote;
pub mod rng;
#[cfg(feature = "gpu")]
pub mod store;
pub mod tokenizer;

#[cfg(all(target_arch = "wasm32", feature = "gpu"))]
pub mod wasm;

#[cfg(not(target_arch = "wasm32"))]
pub use gguf::FileSource;
pub use gguf::{ByteSource, GgufError, GgufHeader, MemorySource};
pub use model::config::{ConfigError, LlamaConfig};
pub use tokenizer::{ChatTemplate, TemplateError, Tokenizer, TokenizerError};

#[cfg(feature = "gpu")]
pub use api::{ApiError, ChatParams, ErrorCode};
#[cfg(feature = "gpu")]
pub use engine::sampling::SamplingParams;
#[cfg(feature = "gpu")]
pub use engine::{Completion, Delta, Engine, EngineError, FinishReason, GenerateRequest, Usage};
#[cfg(feature = "gpu")]
pub use model::device::{ComputeDevice, DeviceChoice, DeviceError};
#[cfg(feature = "gpu")]
pub use model::error::ModelError;
#[cfg(feature = "gpu")]
pub use model::plan::KvFormat;
