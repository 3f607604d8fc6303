//! The header reader's cursor: checked little-endian reads of GGUF's fields, strings and
//! (nested) metadata values, each bounded whatever the file claims.

use super::error::GgufError;
use super::source::{ByteSource, check_range};
use super::value::{MetadataValue, ValueType};

/// Arrays up to this many elements are read with the header; longer ones are only located.
const EAGER_ARRAY_MAX: u64 = 64;
/// The longest string accepted (chat templates are kilobytes; tokens are bytes).
const MAX_STRING_BYTES: u64 = 64 << 20;
/// The deepest nesting of arrays accepted.
const MAX_ARRAY_DEPTH: usize = 4;

/// A read position in a source, with checked little-endian field reads.
pub(super) struct Cursor<'a, S> {
    source: &'a S,
    /// The next byte to read.
    pub(super) pos: u64,
}

impl<'a, S: ByteSource> Cursor<'a, S> {
    pub(super) fn new(source: &'a S) -> Self {
        Self { source, pos: 0 }
    }

    pub(super) fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], GgufError> {
        let mut buf = [0u8; N];
        check_range(self.pos, N as u64, self.source.len(), what)?;
        self.source.read_exact_at(self.pos, &mut buf)?;
        self.pos += N as u64;
        Ok(buf)
    }

    pub(super) fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        self.array(what).map(u32::from_le_bytes)
    }

    pub(super) fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        self.array(what).map(u64::from_le_bytes)
    }

    fn remaining(&self) -> u64 {
        self.source.len().saturating_sub(self.pos)
    }

    /// Rejects a count whose items, at `min_item_bytes` each, cannot fit in the rest of the
    /// source, or that passes `limit`.
    pub(super) fn check_count(
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

    pub(super) fn string(&mut self, what: impl Fn() -> String) -> Result<String, GgufError> {
        let len = self.string_len(&what)?;
        let mut bytes = vec![0u8; len as usize];
        self.source.read_exact_at(self.pos, &mut bytes)?;
        self.pos += len;
        String::from_utf8(bytes).map_err(|_| GgufError::BadUtf8 { what: what() })
    }

    /// Reads one value of type `t` for `key`; arrays nest up to [`MAX_ARRAY_DEPTH`].
    pub(super) fn value(
        &mut self,
        key: &str,
        t: ValueType,
        depth: usize,
    ) -> Result<MetadataValue, GgufError> {
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
