//! GGUF v2/v3: the file format that carries a model's hyper-parameters, tokenizer, chat
//! template and weights (<https://github.com/ggml-org/ggml/blob/master/docs/gguf.md>).
//!
//! Layout: magic `GGUF`, version, tensor count, metadata count; the metadata key/value pairs;
//! the tensor table (name, dims innermost-first, type, offset); padding to `general.alignment`;
//! the tensor data. Everything little-endian.
//!
//! The reader treats the file as hostile: every count and length is checked against what the
//! file can still hold before anything is allocated, offsets are checked, and every failure is a
//! [`GgufError`]. It reads through a ranged [`ByteSource`] and never touches tensor data while
//! reading the header; large metadata arrays (the tokenizer's vocabulary and merges) are only
//! located, and read on demand with [`GgufHeader::read_array`].

mod cursor;
pub mod dequant;
mod error;
mod header;
mod source;
mod tensor;
mod value;

pub use error::GgufError;
pub use header::GgufHeader;
#[cfg(not(target_arch = "wasm32"))]
pub use source::FileSource;
#[cfg(target_arch = "wasm32")]
pub(crate) use source::check_range;
pub use source::{ByteSource, CountingSource, MemorySource};
pub use tensor::{GgmlType, TensorInfo};
pub use value::{MetadataValue, ValueType};
