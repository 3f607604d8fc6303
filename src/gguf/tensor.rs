//! The tensor table: names, shapes, block formats and where each tensor's bytes are.

use std::fmt;

use super::error::GgufError;

/// The tensor element formats llama-web reads (ids from ggml's `enum ggml_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(non_camel_case_types)] // ggml's own names, as every GGUF tool prints them
pub enum GgmlType {
    /// 0: 32-bit float.
    F32,
    /// 1: 16-bit IEEE float.
    F16,
    /// 2: blocks of 32: f16 scale, 16 bytes of 4-bit values (offset 8).
    Q4_0,
    /// 3: blocks of 32: f16 scale and min, 16 bytes of 4-bit values.
    Q4_1,
    /// 6: blocks of 32: f16 scale, 32 high bits, 16 bytes of low nibbles (offset 16).
    Q5_0,
    /// 7: blocks of 32: f16 scale and min, 32 high bits, 16 bytes of low nibbles.
    Q5_1,
    /// 8: blocks of 32: f16 scale, 32 signed bytes.
    Q8_0,
    /// 12: super-blocks of 256: f16 d and dmin, 12 bytes of 6-bit scales/mins, 128 bytes of nibbles.
    Q4_K,
    /// 13: super-blocks of 256: as Q4_K plus 32 bytes of high bits.
    Q5_K,
    /// 14: super-blocks of 256: 128 bytes low nibbles, 64 bytes high 2 bits, 16 i8 scales, f16 d.
    Q6_K,
    /// 30: bfloat16.
    BF16,
}

impl GgmlType {
    /// Every format llama-web reads.
    pub const ALL: [GgmlType; 11] = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::BF16,
        GgmlType::Q8_0,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
    ];

    /// The type for a ggml id, or `Err(name)` with ggml's name for a type we do not read.
    pub fn from_id(id: u32) -> Result<Self, &'static str> {
        use GgmlType::*;
        Ok(match id {
            0 => F32,
            1 => F16,
            2 => Q4_0,
            3 => Q4_1,
            6 => Q5_0,
            7 => Q5_1,
            8 => Q8_0,
            12 => Q4_K,
            13 => Q5_K,
            14 => Q6_K,
            30 => BF16,
            4 | 5 => return Err("Q4_2/Q4_3 (removed from ggml)"),
            9 => return Err("Q8_1"),
            10 => return Err("Q2_K"),
            11 => return Err("Q3_K"),
            15 => return Err("Q8_K"),
            16..=23 | 29 => return Err("IQ (importance) quantization"),
            24..=27 => return Err("integer tensor"),
            28 => return Err("F64"),
            34 | 35 => return Err("ternary quantization"),
            39 => return Err("MXFP4"),
            _ => return Err("unknown"),
        })
    }

    /// ggml's id for this type.
    pub fn id(self) -> u32 {
        use GgmlType::*;
        match self {
            F32 => 0,
            F16 => 1,
            Q4_0 => 2,
            Q4_1 => 3,
            Q5_0 => 6,
            Q5_1 => 7,
            Q8_0 => 8,
            Q4_K => 12,
            Q5_K => 13,
            Q6_K => 14,
            BF16 => 30,
        }
    }

    /// Elements per block (1 for plain floats).
    pub fn block_elements(self) -> u64 {
        use GgmlType::*;
        match self {
            F32 | F16 | BF16 => 1,
            Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 => 32,
            Q4_K | Q5_K | Q6_K => 256,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> u64 {
        use GgmlType::*;
        match self {
            F32 => 4,
            F16 | BF16 => 2,
            Q4_0 => 18,
            Q4_1 => 20,
            Q5_0 => 22,
            Q5_1 => 24,
            Q8_0 => 34,
            Q4_K => 144,
            Q5_K => 176,
            Q6_K => 210,
        }
    }

    /// ggml's name for the type.
    pub fn name(self) -> &'static str {
        use GgmlType::*;
        match self {
            F32 => "F32",
            F16 => "F16",
            Q4_0 => "Q4_0",
            Q4_1 => "Q4_1",
            Q5_0 => "Q5_0",
            Q5_1 => "Q5_1",
            Q8_0 => "Q8_0",
            Q4_K => "Q4_K",
            Q5_K => "Q5_K",
            Q6_K => "Q6_K",
            BF16 => "BF16",
        }
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The most dimensions a GGUF tensor has (ggml's `GGML_MAX_DIMS`).
pub const MAX_DIMS: usize = 4;

/// One entry of the tensor table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// The tensor's name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Dimensions innermost-first, as GGUF stores them (`ne`): a linear layer is
    /// `[in, out]`, i.e. PyTorch's `[out, in]` without any transpose of the data.
    pub dims: Vec<u64>,
    /// The element format.
    pub ggml_type: GgmlType,
    /// Absolute offset of the first byte in the file.
    pub offset: u64,
    /// Number of elements.
    pub n_elements: u64,
    /// Number of bytes.
    pub n_bytes: u64,
}

impl TensorInfo {
    /// Builds an entry, checking the shape against the type: no zero or overflowing dims,
    /// rows a whole number of blocks.
    pub(crate) fn new(
        name: String,
        dims: Vec<u64>,
        ggml_type: GgmlType,
        offset: u64,
    ) -> Result<Self, GgufError> {
        let bad = |detail: String| GgufError::BadTensor {
            name: name.clone(),
            detail,
        };
        if dims.is_empty() || dims.len() > MAX_DIMS {
            return Err(bad(format!(
                "{} dimensions (1..={MAX_DIMS} allowed)",
                dims.len()
            )));
        }
        if dims.contains(&0) {
            return Err(bad(format!("a zero dimension in {dims:?}")));
        }
        let n_elements = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| bad(format!("element count of {dims:?} overflows")))?;
        let block = ggml_type.block_elements();
        if !dims[0].is_multiple_of(block) {
            return Err(bad(format!(
                "row length {} is not a multiple of the {ggml_type} block ({block})",
                dims[0]
            )));
        }
        let n_bytes = (n_elements / block)
            .checked_mul(ggml_type.block_bytes())
            .ok_or_else(|| bad("byte size overflows".into()))?;
        Ok(Self {
            name,
            dims,
            ggml_type,
            offset,
            n_elements,
            n_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_ids_round_trip() {
        for id in 0..64 {
            if let Ok(t) = GgmlType::from_id(id) {
                assert_eq!(t.id(), id);
                assert_eq!(GgmlType::from_id(t.id()), Ok(t));
            }
        }
    }

    #[test]
    fn sizes_follow_the_block_layout() {
        let t = TensorInfo::new("w".into(), vec![576, 1536], GgmlType::Q4_1, 0).unwrap();
        assert_eq!(t.n_elements, 576 * 1536);
        assert_eq!(t.n_bytes, 576 * 1536 / 32 * 20);
        let k = TensorInfo::new("k".into(), vec![4096, 14336], GgmlType::Q4_K, 0).unwrap();
        assert_eq!(k.n_bytes, 4096 * 14336 / 256 * 144);
    }

    #[test]
    fn bad_shapes_are_rejected() {
        for dims in [
            vec![],
            vec![32, 0],
            vec![32, 1, 1, 1, 1],
            vec![33, 2],
            vec![u64::MAX / 2 + 32, 4],
        ] {
            assert!(
                matches!(
                    TensorInfo::new("t".into(), dims.clone(), GgmlType::Q8_0, 0),
                    Err(GgufError::BadTensor { .. })
                ),
                "{dims:?} accepted"
            );
        }
    }
}
