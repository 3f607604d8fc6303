//! The GGUF layer's error type.

use super::value::ValueType;

/// Why a GGUF file could not be read. Every variant says where, so that a user can tell a
/// truncated download from a file of a kind we do not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GgufError {
    /// The first four bytes are not `GGUF`.
    #[error("not a GGUF file (magic {found:02x?})")]
    BadMagic {
        /// The bytes found instead.
        found: [u8; 4],
    },
    /// A GGUF version other than 2 or 3.
    #[error("unsupported GGUF version {version} (supported: 2, 3)")]
    UnsupportedVersion {
        /// The version in the file.
        version: u32,
    },
    /// The file ends before a field that it announces.
    #[error(
        "file truncated: {what} needs bytes up to offset {needed_end}, the file has {file_len}"
    )]
    Truncated {
        /// What was being read.
        what: String,
        /// The offset one past the last byte needed.
        needed_end: u64,
        /// The size of the file (or of the part available).
        file_len: u64,
    },
    /// A count or length that the file could not possibly hold, or one past a fixed limit.
    #[error("implausible {what}: {value} (limit {limit})")]
    Implausible {
        /// What was counted.
        what: String,
        /// The value in the file.
        value: u64,
        /// The largest value accepted here.
        limit: u64,
    },
    /// A metadata value type id outside the GGUF specification.
    #[error("unknown metadata value type {type_id} for key `{key}`")]
    UnknownValueType {
        /// The key whose value has it.
        key: String,
        /// The type id in the file.
        type_id: u32,
    },
    /// A string that is not UTF-8.
    #[error("{what} is not valid UTF-8")]
    BadUtf8 {
        /// Which string.
        what: String,
    },
    /// The same metadata key twice.
    #[error("duplicate metadata key `{key}`")]
    DuplicateKey {
        /// The key.
        key: String,
    },
    /// The same tensor name twice.
    #[error("duplicate tensor `{name}`")]
    DuplicateTensor {
        /// The tensor's name.
        name: String,
    },
    /// A tensor type this crate does not read (ids from ggml's `ggml_type`).
    #[error("tensor `{name}` has type {type_id} ({type_name}), which llama-web does not support")]
    UnsupportedTensorType {
        /// The tensor's name.
        name: String,
        /// The ggml type id.
        type_id: u32,
        /// ggml's name for it, or "unknown".
        type_name: &'static str,
    },
    /// A tensor whose shape or placement is inconsistent.
    #[error("tensor `{name}`: {detail}")]
    BadTensor {
        /// The tensor's name.
        name: String,
        /// What is wrong.
        detail: String,
    },
    /// `general.alignment` is zero, not a power of two, or absurd.
    #[error("bad general.alignment {alignment}")]
    BadAlignment {
        /// The value in the file.
        alignment: u64,
    },
    /// A metadata key that is required but absent.
    #[error("missing metadata key `{key}`")]
    MissingKey {
        /// The key.
        key: String,
    },
    /// A metadata key whose value has the wrong type.
    #[error("metadata key `{key}` has type {found}, expected {expected}")]
    WrongType {
        /// The key.
        key: String,
        /// The type in the file.
        found: ValueType,
        /// The type wanted.
        expected: &'static str,
    },
    /// A tensor that the caller asked for is not in the file.
    #[error("no tensor named `{name}`")]
    NoSuchTensor {
        /// The name asked for.
        name: String,
    },
    /// The byte source failed (I/O error, network error).
    #[error("reading bytes {offset}..{end}: {reason}")]
    Source {
        /// First byte asked for.
        offset: u64,
        /// One past the last byte asked for.
        end: u64,
        /// The source's explanation.
        reason: String,
    },
}
