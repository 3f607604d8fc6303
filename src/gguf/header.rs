//! Reading a GGUF header: metadata and tensor table, never tensor data.

use std::collections::HashMap;

use super::cursor::Cursor;
use super::error::GgufError;
use super::source::{ByteSource, MemorySource, check_range};
use super::tensor::{GgmlType, MAX_DIMS, TensorInfo};
use super::value::{MetadataValue, ValueType};

/// Upper bounds on the table sizes, whatever the file's size.
const MAX_METADATA_ENTRIES: u64 = 1 << 20;
const MAX_TENSORS: u64 = 1 << 20;
/// The largest `general.alignment` accepted.
const MAX_ALIGNMENT: u64 = 1 << 20;
/// The alignment when `general.alignment` is absent (the specification's default).
const DEFAULT_ALIGNMENT: u64 = 32;

/// A GGUF file's header: version, metadata in file order, tensor table, data offset.
#[derive(Debug, Clone)]
pub struct GgufHeader {
    version: u32,
    metadata: Vec<(String, MetadataValue)>,
    metadata_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    alignment: u64,
    data_offset: u64,
}

impl GgufHeader {
    /// Reads the header from `source`: a few small reads, no tensor data, and only the length
    /// prefixes of long string arrays. Every inconsistency is a typed [`GgufError`].
    pub fn read(source: &impl ByteSource) -> Result<Self, GgufError> {
        let mut c = Cursor::new(source);
        let magic: [u8; 4] = c.array("magic")?;
        if &magic != b"GGUF" {
            return Err(GgufError::BadMagic { found: magic });
        }
        let version = c.u32("version")?;
        if !(2..=3).contains(&version) {
            return Err(GgufError::UnsupportedVersion { version });
        }
        let n_tensors = c.u64("tensor count")?;
        // Each tensor entry takes at least 8 (name) + 4 (dims) + 8 (one dim) + 4 + 8 bytes.
        c.check_count("tensor count", n_tensors, 32, MAX_TENSORS)?;
        let n_metadata = c.u64("metadata count")?;
        // Each entry takes at least 8 (key) + 4 (type) + 1 (smallest value) bytes.
        c.check_count("metadata count", n_metadata, 13, MAX_METADATA_ENTRIES)?;

        // Capacities are capped: counts are only plausible, not proven, until the entries are read.
        let mut metadata = Vec::with_capacity(n_metadata.min(1024) as usize);
        let mut metadata_index = HashMap::with_capacity(n_metadata.min(1024) as usize);
        for _ in 0..n_metadata {
            let key = c.string(|| "metadata key".into())?;
            let type_id = c.u32("metadata value type")?;
            let value_type =
                ValueType::from_id(type_id).ok_or_else(|| GgufError::UnknownValueType {
                    key: key.clone(),
                    type_id,
                })?;
            let value = c.value(&key, value_type, 0)?;
            if metadata_index.insert(key.clone(), metadata.len()).is_some() {
                return Err(GgufError::DuplicateKey { key });
            }
            metadata.push((key, value));
        }

        let alignment = match metadata_index.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(&i) => {
                let a = metadata[i].1.as_u64().ok_or(GgufError::WrongType {
                    key: "general.alignment".into(),
                    found: metadata[i].1.value_type(),
                    expected: "unsigned integer",
                })?;
                if a == 0 || !a.is_power_of_two() || a > MAX_ALIGNMENT {
                    return Err(GgufError::BadAlignment { alignment: a });
                }
                a
            }
        };

        let mut raw = Vec::with_capacity(n_tensors.min(1024) as usize);
        for _ in 0..n_tensors {
            let name = c.string(|| "tensor name".into())?;
            let n_dims = c.u32("tensor dimension count")?;
            if n_dims as usize > MAX_DIMS {
                return Err(GgufError::BadTensor {
                    name,
                    detail: format!("{n_dims} dimensions (at most {MAX_DIMS})"),
                });
            }
            let mut dims = Vec::with_capacity(MAX_DIMS);
            for _ in 0..n_dims {
                dims.push(c.u64("tensor dimension")?);
            }
            let type_id = c.u32("tensor type")?;
            let offset = c.u64("tensor offset")?;
            raw.push((name, dims, type_id, offset));
        }
        let data_offset = c
            .pos
            .checked_next_multiple_of(alignment)
            .ok_or(GgufError::BadAlignment { alignment })?;

        let mut tensors = Vec::with_capacity(raw.len());
        let mut tensor_index = HashMap::with_capacity(raw.len());
        for (name, dims, type_id, relative) in raw {
            let ggml_type = GgmlType::from_id(type_id).map_err(|type_name| {
                GgufError::UnsupportedTensorType {
                    name: name.clone(),
                    type_id,
                    type_name,
                }
            })?;
            if relative % alignment != 0 {
                return Err(GgufError::BadTensor {
                    name,
                    detail: format!(
                        "offset {relative} is not a multiple of the alignment {alignment}"
                    ),
                });
            }
            let offset = data_offset
                .checked_add(relative)
                .ok_or_else(|| GgufError::BadTensor {
                    name: name.clone(),
                    detail: "offset overflows".into(),
                })?;
            let info = TensorInfo::new(name, dims, ggml_type, offset)?;
            check_range(
                info.offset,
                info.n_bytes,
                source.len(),
                &format!("tensor `{}`", info.name),
            )?;
            if tensor_index
                .insert(info.name.clone(), tensors.len())
                .is_some()
            {
                return Err(GgufError::DuplicateTensor { name: info.name });
            }
            tensors.push(info);
        }

        Ok(Self {
            version,
            metadata,
            metadata_index,
            tensors,
            tensor_index,
            alignment,
            data_offset,
        })
    }

    /// The GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The metadata, in file order.
    pub fn metadata(&self) -> &[(String, MetadataValue)] {
        &self.metadata
    }

    /// The value of a metadata key.
    pub fn get(&self, key: &str) -> Option<&MetadataValue> {
        self.metadata_index.get(key).map(|&i| &self.metadata[i].1)
    }

    /// A required metadata value.
    pub fn require(&self, key: &str) -> Result<&MetadataValue, GgufError> {
        self.get(key)
            .ok_or_else(|| GgufError::MissingKey { key: key.into() })
    }

    /// A required non-negative integer.
    pub fn require_u64(&self, key: &str) -> Result<u64, GgufError> {
        let v = self.require(key)?;
        v.as_u64()
            .ok_or_else(|| wrong_type(key, v, "non-negative integer"))
    }

    /// A required float (f32 or f64).
    pub fn require_f64(&self, key: &str) -> Result<f64, GgufError> {
        let v = self.require(key)?;
        v.as_f64().ok_or_else(|| wrong_type(key, v, "float"))
    }

    /// A required string.
    pub fn require_str(&self, key: &str) -> Result<&str, GgufError> {
        let v = self.require(key)?;
        v.as_str().ok_or_else(|| wrong_type(key, v, "string"))
    }

    /// The tensor table, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// A tensor's entry by name.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    /// The data alignment (`general.alignment`, default 32).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Absolute offset where tensor data begins.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// The elements of an array value, reading them from `source` if the header only located
    /// them. `source` must be the file the header was read from.
    pub fn read_array(
        &self,
        source: &impl ByteSource,
        key: &str,
    ) -> Result<Vec<MetadataValue>, GgufError> {
        match self.require(key)? {
            MetadataValue::Array(items) => Ok(items.clone()),
            &MetadataValue::LazyArray {
                element,
                count,
                offset,
                byte_len,
            } => {
                check_range(offset, byte_len, source.len(), key)?;
                let len = usize::try_from(byte_len).map_err(|_| GgufError::Implausible {
                    what: format!("size of array `{key}`"),
                    value: byte_len,
                    limit: usize::MAX as u64,
                })?;
                let mut bytes = vec![0u8; len];
                source.read_exact_at(offset, &mut bytes)?;
                let memory = MemorySource::new(bytes);
                let mut c = Cursor::new(&memory);
                (0..count).map(|_| c.value(key, element, 1)).collect()
            }
            other => Err(wrong_type(key, other, "array")),
        }
    }

    /// Fetches one tensor's bytes, exactly as stored in the file, through
    /// [`ByteSource::fetch`] (what model loading uses: in the browser, one HTTP Range request).
    pub async fn fetch_tensor_bytes(
        &self,
        source: &impl ByteSource,
        name: &str,
    ) -> Result<Vec<u8>, GgufError> {
        let info = self.tensor_within(source, name)?;
        source.fetch(info.offset, info.n_bytes).await
    }

    /// Reads one tensor's bytes, exactly as stored in the file.
    pub fn read_tensor_bytes(
        &self,
        source: &impl ByteSource,
        name: &str,
    ) -> Result<Vec<u8>, GgufError> {
        let info = self.tensor_within(source, name)?;
        let mut bytes = vec![0u8; info.n_bytes as usize];
        source.read_exact_at(info.offset, &mut bytes)?;
        Ok(bytes)
    }

    /// Tensor `name`, checked to lie inside `source`.
    fn tensor_within(
        &self,
        source: &impl ByteSource,
        name: &str,
    ) -> Result<&TensorInfo, GgufError> {
        let info = self
            .tensor(name)
            .ok_or_else(|| GgufError::NoSuchTensor { name: name.into() })?;
        check_range(info.offset, info.n_bytes, source.len(), name)?;
        Ok(info)
    }
}

fn wrong_type(key: &str, value: &MetadataValue, expected: &'static str) -> GgufError {
    GgufError::WrongType {
        key: key.into(),
        found: value.value_type(),
        expected,
    }
}
