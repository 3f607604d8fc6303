//! Reading a GGUF header: metadata and tensor table, never tensor data.

use std::collections::HashMap;

use super::error::GgufError;
use super::source::{ByteSource, MemorySource, check_range};
use super::tensor::{GgmlType, MAX_DIMS, TensorInfo};
use super::value::{MetadataValue, ValueType};

/// Arrays up to this many elements are read with the header; longer ones are only located.
const EAGER_ARRAY_MAX: u64 = 64;
/// The longest string accepted (chat templates are kilobytes; tokens are bytes).
const MAX_STRING_BYTES: u64 = 64 << 20;
/// The deepest nesting of arrays accepted.
const MAX_ARRAY_DEPTH: usize = 4;
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

/// A read position in a source, with checked little-endian field reads.
struct Cursor<'a, S> {
    source: &'a S,
    pos: u64,
}

impl<'a, S: ByteSource> Cursor<'a, S> {
    fn new(source: &'a S) -> Self {
        Self { source, pos: 0 }
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], GgufError> {
        let mut buf = [0u8; N];
        check_range(self.pos, N as u64, self.source.len(), what)?;
        self.source.read_exact_at(self.pos, &mut buf)?;
        self.pos += N as u64;
        Ok(buf)
    }

    fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        self.array(what).map(u64::from_le_bytes)
    }

    fn remaining(&self) -> u64 {
        self.source.len().saturating_sub(self.pos)
    }

    /// Rejects a count whose items, at `min_item_bytes` each, cannot fit in the rest of the
    /// source, or that passes `limit`.
    fn check_count(
        &self,
        what: &str,
        count: u64,
        min_item_bytes: u64,
        limit: u64,
    ) -> Result<(), GgufError> {
        let fits = self.remaining() / min_item_bytes.max(1);
        let limit = limit.min(fits);
        if count > limit {
            return Err(GgufError::Implausible {
                what: what.into(),
                value: count,
                limit,
            });
        }
        Ok(())
    }

    /// Reads a string's length and checks it; returns it with the string's start.
    fn string_len(&mut self, what: &dyn Fn() -> String) -> Result<u64, GgufError> {
        let len = self.u64("string length")?;
        if len > MAX_STRING_BYTES {
            return Err(GgufError::Implausible {
                what: format!("length of {}", what()),
                value: len,
                limit: MAX_STRING_BYTES,
            });
        }
        check_range(self.pos, len, self.source.len(), &what())?;
        Ok(len)
    }

    fn string(&mut self, what: impl Fn() -> String) -> Result<String, GgufError> {
        let len = self.string_len(&what)?;
        let mut bytes = vec![0u8; len as usize];
        self.source.read_exact_at(self.pos, &mut bytes)?;
        self.pos += len;
        String::from_utf8(bytes).map_err(|_| GgufError::BadUtf8 { what: what() })
    }

    /// Reads one value of type `t` for `key`; arrays nest up to [`MAX_ARRAY_DEPTH`].
    fn value(&mut self, key: &str, t: ValueType, depth: usize) -> Result<MetadataValue, GgufError> {
        use MetadataValue as V;
        Ok(match t {
            ValueType::U8 => V::U8(u8::from_le_bytes(self.array(key)?)),
            ValueType::I8 => V::I8(i8::from_le_bytes(self.array(key)?)),
            ValueType::U16 => V::U16(u16::from_le_bytes(self.array(key)?)),
            ValueType::I16 => V::I16(i16::from_le_bytes(self.array(key)?)),
            ValueType::U32 => V::U32(u32::from_le_bytes(self.array(key)?)),
            ValueType::I32 => V::I32(i32::from_le_bytes(self.array(key)?)),
            ValueType::F32 => V::F32(f32::from_le_bytes(self.array(key)?)),
            ValueType::U64 => V::U64(u64::from_le_bytes(self.array(key)?)),
            ValueType::I64 => V::I64(i64::from_le_bytes(self.array(key)?)),
            ValueType::F64 => V::F64(f64::from_le_bytes(self.array(key)?)),
            ValueType::Bool => match self.array::<1>(key)? {
                [0] => V::Bool(false),
                [1] => V::Bool(true),
                [b] => {
                    return Err(GgufError::Implausible {
                        what: format!("boolean `{key}`"),
                        value: b.into(),
                        limit: 1,
                    });
                }
            },
            ValueType::String => V::String(self.string(|| format!("value of `{key}`"))?),
            ValueType::Array => self.array_value(key, depth)?,
        })
    }

    fn array_value(&mut self, key: &str, depth: usize) -> Result<MetadataValue, GgufError> {
        if depth >= MAX_ARRAY_DEPTH {
            return Err(GgufError::Implausible {
                what: format!("array nesting in `{key}`"),
                value: depth as u64 + 1,
                limit: MAX_ARRAY_DEPTH as u64,
            });
        }
        let type_id = self.u32("array element type")?;
        let element = ValueType::from_id(type_id).ok_or_else(|| GgufError::UnknownValueType {
            key: key.into(),
            type_id,
        })?;
        let count = self.u64("array length")?;
        self.check_count(
            &format!("length of array `{key}`"),
            count,
            element.min_size(),
            u64::MAX,
        )?;
        if count <= EAGER_ARRAY_MAX {
            let items = (0..count)
                .map(|_| self.value(key, element, depth + 1))
                .collect::<Result<_, _>>()?;
            return Ok(MetadataValue::Array(items));
        }
        // Locate a long array without reading it: fixed-size elements are skipped by
        // arithmetic, strings by their length prefixes alone.
        let offset = self.pos;
        match (element, element.fixed_size()) {
            (_, Some(size)) => {
                let bytes = count * size; // count * size <= remaining, checked above
                self.pos += bytes;
            }
            (ValueType::String, None) => {
                for _ in 0..count {
                    let len = self.string_len(&|| format!("element of `{key}`"))?;
                    self.pos += len;
                }
            }
            _ => {
                // Arrays of arrays this long are not GGUF practice: read them.
                self.pos = offset;
                let items = (0..count)
                    .map(|_| self.value(key, element, depth + 1))
                    .collect::<Result<_, _>>()?;
                return Ok(MetadataValue::Array(items));
            }
        }
        Ok(MetadataValue::LazyArray {
            element,
            count,
            offset,
            byte_len: self.pos - offset,
        })
    }
}
