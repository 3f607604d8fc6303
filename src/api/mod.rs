//! The OpenAI-shaped surface both backends share: request parameters, the objects a response is
//! made of, and the errors with their stable codes. Plain Rust and JSON values, no JS types:
//! the `wasm` layer converts at the boundary.

pub mod answer;
pub mod chunks;
pub mod error;
pub mod params;
pub mod shape;

pub use error::{ApiError, ErrorCode};
pub use params::ChatParams;
