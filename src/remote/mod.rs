//! The remote backend: an OpenAI-compatible chat-completions endpoint (the IONOS AI Model Hub
//! by default), streamed over `fetch`.
//!
//! The protocol — server-sent events in arbitrary pieces, chunks, bodies checked against what
//! was asked for, HTTP failures as typed errors, retries with backoff that honour `Retry-After`
//! — is plain Rust, tested natively; the transport
//! (`fetch` through gloo-net, abort, stall timeout) exists in the browser build only.

pub mod body;
pub mod protocol;
pub mod sse;

/// IONOS AI Model Hub's OpenAI-compatible base URL.
pub const IONOS_BASE_URL: &str = "https://openai.inference.de-txl.ionos.com/v1";

/// The model served there.
pub const IONOS_MODEL: &str = "meta-llama/Meta-Llama-3.1-8B-Instruct";

#[cfg(target_arch = "wasm32")]
pub mod abort;
#[cfg(target_arch = "wasm32")]
pub mod fetch;
