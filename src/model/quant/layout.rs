//! How a matrix's blocks lie on the device: in 16-byte units, so that every kernel load is an
//! aligned `vec4<u32>` — one load a lane where a word at a time took four or more (on a software
//! GPU each load is a loop over the SIMD lanes: the hand-written floor's SmolLM2 step's matrices
//! took ~28 % less time this way, BENCHMARKS.md session 15).
//!
//! The K-quants (144 and 176 bytes) and the float formats (32 elements: 128 or 64 bytes) are
//! whole 16-byte units already and stay as the file has them. The others are repacked into
//! *superblocks* of [`superblock_blocks`] blocks, each block's [`fields`] taken apart and laid
//! field by field: Q4_1's four `d, m` words side by side (one unit), then the four 16-byte
//! nibble runs (a unit each). A superblock is exactly its blocks' bytes (8 × 34 for Q8_0 = 17
//! units), so the device holds the file's bytes plus the last superblock's padding. Blocks are
//! numbered row-major over a chunk of rows, so a superblock may span two rows.

use crate::gguf::GgmlType;

/// Elements and bytes of the unit a kernel decodes at a time: the format's block, or 32 values
/// of a float format (whose blocks are single values).
pub fn device_block(format: GgmlType) -> (usize, usize) {
    use GgmlType::*;
    match format {
        F32 => (32, 128),
        F16 | BF16 => (32, 64),
        _ => (
            format.block_elements() as usize,
            format.block_bytes() as usize,
        ),
    }
}

/// Device blocks in a row of `cols` elements of `format` (what a row's first block index is
/// multiplied by).
pub fn row_blocks(format: GgmlType, cols: usize) -> usize {
    cols / device_block(format).0
}

/// Blocks a superblock holds: enough that it is a whole number of 16-byte units.
pub fn superblock_blocks(format: GgmlType) -> usize {
    use GgmlType::*;
    match format {
        Q4_1 | Q5_1 => 4,
        Q4_0 | Q5_0 | Q8_0 | Q6_K => 8,
        F32 | F16 | BF16 | Q4_K | Q5_K => 1,
    }
}

/// The fields of a block as `(byte offset, length)`, in the order a superblock lays them out:
/// the scales first (a unit of them for the superblock), then the quants.
pub fn fields(format: GgmlType) -> &'static [(usize, usize)] {
    use GgmlType::*;
    match format {
        Q8_0 => &[(0, 2), (2, 32)],
        Q4_0 => &[(0, 2), (2, 16)],
        Q4_1 => &[(0, 4), (4, 16)],
        Q5_0 => &[(0, 2), (2, 4), (6, 16)],
        Q5_1 => &[(0, 4), (4, 4), (8, 16)],
        Q6_K => &[(208, 2), (0, 208)],
        F32 => &[(0, 128)],
        F16 | BF16 => &[(0, 64)],
        Q4_K => &[(0, 144)],
        Q5_K => &[(0, 176)],
    }
}

/// 16-byte units of one superblock.
pub fn superblock_units(format: GgmlType) -> usize {
    superblock_blocks(format) * device_block(format).1 / 16
}

/// The unit where field `field` of the superblock's blocks begins (each field of a superblock
/// is a whole number of units).
pub fn field_unit(format: GgmlType, field: usize) -> usize {
    let blocks = superblock_blocks(format);
    fields(format)[..field]
        .iter()
        .map(|&(_, len)| blocks * len / 16)
        .sum()
}

/// Bytes `file_bytes` of whole `format` blocks take on the device.
pub fn device_bytes(format: GgmlType, file_bytes: u64) -> u64 {
    let block = device_block(format).1 as u64;
    let superblock = superblock_blocks(format) as u64 * block;
    file_bytes.div_ceil(superblock) * superblock
}

/// The little-endian u32 words of `bytes` (whole blocks of `format`) in the device layout, the
/// last superblock padded with zero blocks.
pub fn repack(format: GgmlType, bytes: &[u8]) -> Vec<u32> {
    let block = device_block(format).1;
    let per = superblock_blocks(format);
    let mut out = Vec::with_capacity(device_bytes(format, bytes.len() as u64) as usize);
    for superblock in bytes.chunks(per * block) {
        for &(at, len) in fields(format) {
            for b in 0..per {
                match superblock.get(b * block..(b + 1) * block) {
                    Some(block) => out.extend_from_slice(&block[at..at + len]),
                    None => out.resize(out.len() + len, 0),
                }
            }
        }
    }
    out.chunks(4)
        .map(|c| u32::from_le_bytes(c.try_into().expect("whole words")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_superblock_is_whole_units_and_its_blocks_bytes() {
        for format in GgmlType::ALL {
            let (_, block) = device_block(format);
            let covered: usize = fields(format).iter().map(|&(_, len)| len).sum();
            assert_eq!(covered, block, "{format}: fields cover the block");
            for f in 0..fields(format).len() {
                let len = fields(format)[f].1 * superblock_blocks(format);
                assert_eq!(len % 16, 0, "{format}: field {f} is whole units");
            }
            assert_eq!(
                superblock_units(format) * 16,
                superblock_blocks(format) * block
            );
        }
    }

    #[test]
    fn q4_1_superblocks_put_the_scales_first_and_pad_the_last() {
        // Five blocks whose every byte says which block and byte it is.
        let bytes: Vec<u8> = (0..5 * 20)
            .map(|i| ((i / 20) << 5 | (i % 20)) as u8)
            .collect();
        let words = repack(GgmlType::Q4_1, &bytes);
        assert_eq!(words.len() * 4, 2 * 80, "two superblocks of four blocks");
        let at = |unit: usize, byte: usize| (words[unit * 4 + byte / 4] >> (8 * (byte % 4))) as u8;
        // Unit 0: d, m of blocks 0..4; unit 1 + j: block j's nibbles.
        assert_eq!(at(0, 4), 1 << 5, "block 1's first scale byte");
        assert_eq!(at(2, 3), (1 << 5) | 7, "block 1's fourth nibble byte");
        assert_eq!(at(5, 0), 4 << 5, "block 4 opens the second superblock");
        assert_eq!(at(6, 0), 4 << 5 | 4);
        assert!(
            (7..10).all(|unit| (0..16).all(|b| at(unit, b) == 0)),
            "padding"
        );
        assert_eq!(device_bytes(GgmlType::Q4_1, 100), 160);
    }

    #[test]
    fn q6_k_moves_its_scale_to_the_front() {
        let bytes: Vec<u8> = (0..210).map(|i| i as u8).collect();
        let words = repack(GgmlType::Q6_K, &bytes);
        assert_eq!(words.len() * 4, 8 * 210);
        assert_eq!(words[0] & 0xFFFF, 208 | 209 << 8, "d first");
        assert_eq!(words[4], u32::from_le_bytes([0, 1, 2, 3]), "then the block");
    }
}
